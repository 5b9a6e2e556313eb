//! `accept_http` inside a real hyper 1.x server: upgrade, echo, and refusals as HTTP responses
//! (to `dial`, and to raw requests over TCP).

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use isosock::{accept_http, dial, AcceptOptions, DialOptions, ErrorKind, Message, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::util::bounded;

async fn handle(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let opts = AcceptOptions::new()
        .subprotocols(["echo.v1"])
        .read_limit(1 << 20);
    let resp = match accept_http(&mut req, &opts) {
        Ok((resp, upgrading)) => {
            tokio::spawn(async move {
                if let Ok(conn) = upgrading.await {
                    let _ = crate::echo_server::echo(&conn).await;
                }
            });
            resp
        }
        Err(rejection) => {
            assert_eq!(rejection.error().kind(), ErrorKind::Rejected);
            rejection.into_response()
        }
    };
    Ok(resp.map(|body| Full::new(Bytes::from(body))))
}

async fn hyper_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(handle))
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr.to_string()
}

#[tokio::test]
async fn upgrade_inside_hyper_and_echo() {
    bounded(async {
        let addr = hyper_server().await;
        let opts = DialOptions::new()
            .subprotocols(["echo.v1"])
            .read_limit(1 << 20);
        let (conn, resp) = dial(&format!("ws://{addr}/ws"), &opts).await.expect("dial");
        assert_eq!(resp.subprotocol(), Some("echo.v1"));
        for msg in [
            Message::text("through hyper"),
            Message::binary(vec![9u8; 70_000]),
        ] {
            conn.write(msg.clone()).await.expect("write");
            assert_eq!(conn.read().await.expect("read"), msg);
        }
        conn.write("!close 4010 hyper bye").await.expect("write");
        let err = conn.read().await.expect_err("closed");
        assert_eq!(isosock::close_status(&err), Some(StatusCode::from(4010)));
    })
    .await;
}

#[tokio::test]
async fn hyper_refusals_are_http_responses() {
    bounded(async {
        let addr = hyper_server().await;
        let opts = DialOptions::new().header("Origin", "https://evil.example");
        let err = dial(&format!("ws://{addr}/ws"), &opts)
            .await
            .expect_err("cross-origin");
        assert_eq!(err.http_status(), Some(403));
        assert!(String::from_utf8_lossy(err.http_body().unwrap_or(b"")).contains("origin"));
    })
    .await;
}

/// Regression: `accept_http` answered an HTTP/1.0 upgrade request with `HTTP/1.0 101` (and
/// hyper then dropped the connection), where `accept` refuses it with 505; they now share the
/// version check. The request is otherwise a valid upgrade, sent raw over TCP.
#[tokio::test]
async fn hyper_refuses_an_http_1_0_upgrade_with_505() {
    bounded(async {
        let addr = hyper_server().await;
        let mut tcp = TcpStream::connect(&addr).await.expect("connect");
        let request = crate::conformance::REQUEST
            .replacen("HTTP/1.1", "HTTP/1.0", 1)
            .replace("Host: 127.0.0.1", &format!("Host: {addr}"));
        crate::conformance::send(&mut tcp, request.as_bytes()).await;
        let head = crate::conformance::read_http_head(&mut tcp)
            .await
            .expect("a response");
        assert_eq!(crate::conformance::status(&head), 505, "{head}");
        let mut body = Vec::new();
        let _ = tokio::time::timeout(crate::conformance::STEP, tcp.read_to_end(&mut body)).await;
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("HTTP/1.1"), "{body:?}");
    })
    .await;
}
