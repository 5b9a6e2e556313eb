//! The shared scenarios of tests/common, natively, against the in-process echo server.

use crate::common;
use crate::util::{bounded, echo_url};

/// Turns each group of `common::for_each_scenario!` into `#[tokio::test]`s, each bounded in
/// time, the URL-taking ones against a fresh in-process echo server (which accepts
/// permessage-deflate), and each dialing with `compression` and `engine` (see
/// `crate::dial_options`).
macro_rules! tokio_scenarios {
    ($compression:expr, $engine:expr; url, $module:path, [$($(#[$attr:meta])* $name:ident),* $(,)?]) => {$(
        $(#[$attr])*
        #[tokio::test]
        async fn $name() {
            use $module as shared;
            let url = server_url().await;
            let run = crate::COMPRESSION.scope($compression, bounded(shared::$name(&url)));
            crate::ENGINE.scope($engine, run).await;
        }
    )*};
    ($compression:expr, $engine:expr; no_url, $module:path, [$($(#[$attr:meta])* $name:ident),* $(,)?]) => {$(
        $(#[$attr])*
        #[tokio::test]
        async fn $name() {
            use $module as shared;
            let run = crate::COMPRESSION.scope($compression, bounded(shared::$name()));
            crate::ENGINE.scope($engine, run).await;
        }
    )*};
}

/// Every scenario without compression.
mod plain {
    use super::*;
    use crate::util::echo_url as server_url;
    macro_rules! scenarios {
        ($($t:tt)*) => {
            tokio_scenarios!(isosock::Compression::Disabled, isosock::Engine::Own; $($t)*);
        };
    }
    common::for_each_scenario!(scenarios);
}

/// Every scenario on the tokio-tungstenite engine, client and echo server alike. It has no
/// compression, so this is the only mode it runs in.
#[cfg(feature = "tungstenite")]
mod tungstenite_engine {
    use super::*;

    /// An echo server on the tungstenite engine too, so both roles run on it.
    async fn server_url() -> String {
        crate::util::echo_url_on(isosock::Engine::Tungstenite).await
    }
    macro_rules! scenarios {
        ($($t:tt)*) => {
            tokio_scenarios!(isosock::Compression::Disabled, isosock::Engine::Tungstenite; $($t)*);
        };
    }
    common::for_each_scenario!(scenarios);
}

/// Every scenario again with permessage-deflate, no context kept between messages, every
/// message compressed (threshold 0).
mod deflate_no_context {
    use super::*;
    use crate::util::echo_url as server_url;
    macro_rules! scenarios {
        ($($t:tt)*) => { tokio_scenarios!(isosock::Compression::NoContextTakeover, isosock::Engine::Own; $($t)*); };
    }
    common::for_each_scenario!(scenarios);
}

/// And with the window kept from message to message in both directions.
mod deflate_context {
    use super::*;
    use crate::util::echo_url as server_url;
    macro_rules! scenarios {
        ($($t:tt)*) => { tokio_scenarios!(isosock::Compression::ContextTakeover, isosock::Engine::Own; $($t)*); };
    }
    common::for_each_scenario!(scenarios);
}

// ---- native-only ----------------------------------------------------------------------------
// The targets differ here, so this case is not in the shared list; its browser counterpart is
// `chromium_refuses_when_no_offered_subprotocol_is_picked` in tests/wasm/main.rs.

/// RFC 6455 lets a server select none of the offered subprotocols; natively that is a
/// successful dial without one. (Chromium refuses such a handshake: see tests/wasm.)
#[tokio::test]
async fn no_common_subprotocol_is_accepted() {
    bounded(async {
        let url = echo_url().await;
        let (conn, resp) =
            isosock::dial(&url, &isosock::DialOptions::new().subprotocols(["nope.v9"]))
                .await
                .expect("dial with no common protocol");
        assert_eq!(conn.subprotocol(), None);
        assert_eq!(resp.subprotocol(), None);
    })
    .await;
}

/// The harness itself: inside a scenario module's scope, `dial_options` and the echo server
/// really put both ends on that module's engine (else the tungstenite modules could pass on
/// the own engine).
#[tokio::test]
async fn scenario_modules_run_both_ends_on_their_engine() {
    use isosock::Engine;
    let engines = [
        Engine::Own,
        #[cfg(feature = "tungstenite")]
        Engine::Tungstenite,
    ];
    for engine in engines {
        let url = match engine {
            #[cfg(feature = "tungstenite")]
            Engine::Tungstenite => crate::util::echo_url_on(engine).await,
            _ => echo_url().await,
        };
        let check = async {
            let (conn, _) = isosock::dial(&url, &crate::dial_options())
                .await
                .expect("dial");
            assert_eq!(conn.engine(), engine, "client");
            conn.write("!engine").await.expect("write");
            let server = conn.read().await.expect("read");
            assert_eq!(
                server,
                isosock::Message::text(format!("{engine:?}")),
                "server"
            );
        };
        bounded(crate::ENGINE.scope(engine, check)).await;
    }
}

/// The tungstenite engine has no permessage-deflate: asking for both fails with
/// `InvalidArgument` (dial: before connecting; accept: the client gets a 500), while a
/// client's default offer is simply not made.
#[cfg(feature = "tungstenite")]
#[tokio::test]
async fn compression_with_the_tungstenite_engine_is_refused() {
    use isosock::{AcceptOptions, Compression, DialOptions, Engine, ErrorKind};
    bounded(async {
        let url = echo_url().await;
        let opts = DialOptions::new()
            .engine(Engine::Tungstenite)
            .compression(Compression::NoContextTakeover);
        let err = isosock::dial(&url, &opts).await.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);

        // The default offer is dropped: the echo server would accept it.
        let opts = DialOptions::new().engine(Engine::Tungstenite);
        let (conn, resp) = isosock::dial(&url, &opts).await.expect("dial");
        assert_eq!(resp.extensions(), "");
        assert_eq!(conn.extensions(), "");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let opts = AcceptOptions::new()
                .engine(Engine::Tungstenite)
                .compression(Compression::ContextTakeover);
            isosock::accept(tcp, &opts).await
        });
        let err = isosock::dial(&format!("ws://{addr}/"), &DialOptions::new())
            .await
            .expect_err("500");
        assert_eq!(err.kind(), ErrorKind::Handshake);
        assert_eq!(err.http_status(), Some(500));
        let err = server.await.expect("server task").expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    })
    .await;
}
