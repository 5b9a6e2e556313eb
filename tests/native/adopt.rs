//! `Conn::from_tungstenite`: streams from tokio-tungstenite's `accept_async` and
//! `connect_async`, adopted, run the shared scenarios and isosock's helpers.

use std::sync::{Arc, Mutex};

use isosock::{Conn, ErrorKind, Message, StatusCode};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common;
use crate::util::{bounded, echo_url};

/// The subprotocols the adopting server supports, most preferred first (the echo server's).
const SUBPROTOCOLS: [&str; 2] = ["echo.v1", "chat.v1"];

/// A server whose every connection is a tokio-tungstenite stream (`accept_hdr_async`, which
/// picks a subprotocol as the echo server does), adopted with `Conn::from_tungstenite` and
/// served as the echo example serves its connections.
async fn adopting_echo_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counts: Arc<Mutex<crate::echo_server::Counts>> = Arc::default();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                return;
            };
            let counts = counts.clone();
            tokio::spawn(async move {
                let url: Arc<Mutex<String>> = Arc::default();
                let asked = url.clone();
                let picked: Arc<Mutex<Option<String>>> = Arc::default();
                let seen = picked.clone();
                // tungstenite's callback type returns its large `ErrorResponse`.
                #[allow(clippy::result_large_err)]
                let pick = move |req: &Request, mut resp: Response| {
                    *asked.lock().expect("lock") = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default();
                    let offered: Vec<String> = req
                        .headers()
                        .get_all("sec-websocket-protocol")
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
                        .collect();
                    let choice = SUBPROTOCOLS
                        .iter()
                        .find(|p| offered.iter().any(|o| o == *p));
                    if let Some(p) = choice {
                        resp.headers_mut()
                            .insert("sec-websocket-protocol", HeaderValue::from_static(p));
                        *seen.lock().expect("lock") = Some((*p).to_owned());
                    }
                    Ok(resp)
                };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, pick).await else {
                    return;
                };
                let subprotocol = picked.lock().expect("lock").clone();
                let conn = Conn::from_tungstenite(ws, subprotocol.as_deref());
                let url = url.lock().expect("lock").clone();
                crate::echo_server::serve_conn(conn, url, &counts, &peer.to_string()).await;
            });
        }
    });
    format!("ws://{addr}/echo")
}

/// Turns each group of `common::for_each_scenario!` into `#[tokio::test]`s against the
/// adopting server (the client is isosock's own engine, without compression).
macro_rules! adopted_scenarios {
    (url, $module:path, [$($(#[$attr:meta])* $name:ident),* $(,)?]) => {$(
        $(#[$attr])*
        #[tokio::test]
        async fn $name() {
            use $module as shared;
            let url = adopting_echo_url().await;
            let run = crate::COMPRESSION.scope(
                isosock::Compression::Disabled,
                bounded(shared::$name(&url)),
            );
            run.await;
        }
    )*};
    (no_url, $module:path, [$($(#[$attr:meta])* $name:ident),* $(,)?]) => {};
}

/// Every URL scenario against a server of adopted `accept_async` streams.
mod accept_async {
    use super::*;
    common::for_each_scenario!(adopted_scenarios);
}

/// A `connect_async` stream, adopted: messages, a helper over it, and the close handshake
/// with the echo server (isosock's own engine).
#[tokio::test]
async fn connect_async_stream_adopted() {
    bounded(async {
        let url = echo_url().await;
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect_async");
        let conn = Conn::from_tungstenite(ws, None);
        assert_eq!(conn.engine(), isosock::Engine::Tungstenite);
        assert_eq!(conn.subprotocol(), None);
        assert_eq!(conn.extensions(), "");
        conn.write("hello").await.expect("write");
        assert_eq!(conn.read().await.expect("read"), Message::text("hello"));
        let big = common::pattern(1 << 20);
        conn.write(Message::binary(big.clone())).await.expect("big");
        assert_eq!(conn.read().await.expect("read big"), Message::binary(big));
        conn.close(StatusCode::NORMAL_CLOSURE, "bye")
            .await
            .expect("close");
        let err = conn.write("late").await.expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
    })
    .await;
}
