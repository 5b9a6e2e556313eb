//! Helpers for the native tests: servers on loopback port 0, bounded in time.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

/// Every test body runs under this limit, so nothing can hang the suite.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// The URL of a fresh in-process echo server whose connections run on `engine`: the echo
/// server as [`echo_url`] starts it for the own engine, without compression for an engine
/// that has none.
pub async fn echo_url_on(engine: isosock::Engine) -> String {
    if engine == isosock::Engine::Own {
        return echo_url().await;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let opts = crate::echo_server::options()
        .compression(isosock::Compression::Disabled)
        .engine(engine);
    tokio::spawn(crate::echo_server::serve_with(listener, opts));
    format!("ws://{addr}/echo")
}

/// Starts the echo server of `examples/echo_server.rs` on a free loopback port; returns its URL.
/// It stops when the test's runtime ends.
pub async fn echo_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(crate::echo_server::serve(listener));
    format!("ws://{addr}/echo")
}

/// Runs `fut` with the suite's time limit.
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, fut)
        .await
        .expect("test exceeded its time limit")
}
