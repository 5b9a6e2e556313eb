//! Server side: the upgrade checks of `accept` (HTTP errors for bad requests, timeouts, origin
//! policy, the on_request hook) and the close codes the server sends for bad input.

use std::time::Duration;

use isosock::{
    accept, close_status, dial, AcceptOptions, Conn, DialOptions, ErrorKind, Reject, StatusCode,
    Upgrade,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::util::bounded;

/// A server accepting with `opts`; every `accept` result goes to the returned channel.
pub async fn server(
    opts: AcceptOptions,
) -> (String, mpsc::UnboundedReceiver<isosock::Result<Conn>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tx, opts) = (tx.clone(), opts.clone());
            tokio::spawn(async move {
                let _ = tx.send(accept(tcp, &opts).await);
            });
        }
    });
    (addr.to_string(), rx)
}

/// Sends `request` raw and returns everything the server answered until it closed.
async fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("send");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut out))
        .await
        .expect("server never closed the connection")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn next_result(
    rx: &mut mpsc::UnboundedReceiver<isosock::Result<Conn>>,
) -> isosock::Result<Conn> {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("accept did not finish")
        .expect("server task")
}

const UPGRADE: &str = "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[tokio::test]
async fn plain_http_request_gets_426_not_a_hang() {
    bounded(async {
        let (addr, mut rx) = server(AcceptOptions::new()).await;
        let resp = raw_exchange(&addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.1 426 "), "{resp}");
        assert!(
            resp.to_ascii_lowercase().contains("upgrade: websocket"),
            "{resp}"
        );
        let err = next_result(&mut rx).await.expect_err("not an upgrade");
        assert_eq!(err.kind(), ErrorKind::Rejected);
    })
    .await;
}

#[tokio::test]
async fn malformed_requests_get_http_errors() {
    bounded(async {
        let (addr, mut rx) = server(AcceptOptions::new()).await;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"hello there\r\n\r\n".to_vec(), "400"),
            (
                format!("{UPGRADE}\r\n").replace("GET", "POST").into_bytes(),
                "405",
            ),
            (
                format!("{UPGRADE}\r\n")
                    .replace("Version: 13", "Version: 8")
                    .into_bytes(),
                "426",
            ),
            (
                format!("{UPGRADE}\r\n")
                    .replace("dGhlIHNhbXBsZSBub25jZQ==", "short")
                    .into_bytes(),
                "400",
            ),
            (
                format!("{UPGRADE}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
                    .into_bytes(),
                "400",
            ),
            (
                format!("{UPGRADE}X-Big: {}\r\n\r\n", "a".repeat(20_000)).into_bytes(),
                "431",
            ),
        ];
        for (req, status) in cases {
            let resp = raw_exchange(&addr, &req).await;
            assert!(
                resp.starts_with(&format!("HTTP/1.1 {status} ")),
                "expected {status} for {:?}: {resp}",
                String::from_utf8_lossy(&req[..req.len().min(60)])
            );
            assert!(resp.contains("Connection: close") || resp.contains("connection: close"));
            let err = next_result(&mut rx).await.expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::Rejected, "{err:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn slow_client_gets_408_after_handshake_timeout() {
    bounded(async {
        let opts = AcceptOptions::new().handshake_timeout(Duration::from_millis(300));
        let (addr, mut rx) = server(opts).await;
        // Half a request line, then silence.
        let resp = raw_exchange(&addr, b"GET /chat HTT").await;
        assert!(resp.starts_with("HTTP/1.1 408 "), "{resp}");
        let err = next_result(&mut rx).await.expect_err("timed out");
        assert_eq!(err.kind(), ErrorKind::Timeout);
    })
    .await;
}

#[tokio::test]
async fn origin_same_host_only_by_default() {
    bounded(async {
        let (addr, mut rx) = server(AcceptOptions::new()).await;
        let url = format!("ws://{addr}/");
        // Same origin: allowed.
        let same = DialOptions::new().header("Origin", format!("http://{addr}"));
        let (conn, _) = dial(&url, &same).await.expect("same origin");
        next_result(&mut rx).await.expect("accepted");
        conn.close_now();
        // No Origin (non-browser client): allowed.
        dial(&url, &DialOptions::new()).await.expect("no origin");
        next_result(&mut rx).await.expect("accepted");
        // Another site: refused with 403.
        for evil in [
            "https://evil.example",
            &format!("http://{addr}.evil.example"),
            "null",
            "http://127.0.0.1:1",
        ] {
            let opts = DialOptions::new().header("Origin", evil);
            let err = dial(&url, &opts).await.expect_err(evil);
            assert_eq!(err.kind(), ErrorKind::Handshake, "{evil}: {err:?}");
            assert_eq!(err.http_status(), Some(403), "{evil}");
            let server_err = next_result(&mut rx).await.expect_err("refused");
            assert_eq!(server_err.kind(), ErrorKind::Rejected);
        }
    })
    .await;
}

#[tokio::test]
async fn origin_patterns_and_skip_verify() {
    bounded(async {
        let opts = AcceptOptions::new().origin_patterns(["*.example.com", "localhost:*"]);
        let (addr, mut rx) = server(opts).await;
        let url = format!("ws://{addr}/");
        for (origin, ok) in [
            ("https://app.example.com", true),
            ("https://a.b.EXAMPLE.com", true),
            ("http://localhost:3000", true),
            ("https://example.com", false),
            ("https://example.com.evil.net", false),
            ("https://evil.net/.example.com", false),
            ("https://user@app.example.com", false),
        ] {
            let res = dial(&url, &DialOptions::new().header("Origin", origin)).await;
            assert_eq!(res.is_ok(), ok, "{origin}: {res:?}");
            let _ = next_result(&mut rx).await;
        }
        let (addr, mut rx) = server(AcceptOptions::new().insecure_skip_verify(true)).await;
        let opts = DialOptions::new().header("Origin", "https://anything.example");
        dial(&format!("ws://{addr}/"), &opts)
            .await
            .expect("skip verify");
        next_result(&mut rx).await.expect("accepted");
    })
    .await;
}

#[tokio::test]
async fn hook_rejects_with_status_headers_and_reason() {
    bounded(async {
        let opts = AcceptOptions::new().on_request(|req| {
            if req.headers().get("authorization").is_none() {
                return Err(Reject::new(401, "token required").header("WWW-Authenticate", "Bearer"));
            }
            Ok(Upgrade::new())
        });
        let (addr, mut rx) = server(opts).await;
        let url = format!("ws://{addr}/");
        let err = dial(&url, &DialOptions::new()).await.expect_err("no token");
        assert_eq!(err.kind(), ErrorKind::Handshake);
        assert_eq!(err.http_status(), Some(401));
        assert_eq!(err.http_body(), Some(&b"token required\n"[..]));
        let server_err = next_result(&mut rx).await.expect_err("rejected");
        assert_eq!(server_err.kind(), ErrorKind::Rejected);
        assert!(server_err.to_string().contains("token required"));

        let resp = raw_exchange(&addr, format!("{UPGRADE}\r\n").as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 401 "), "{resp}");
        assert!(
            resp.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{resp}"
        );
        let _ = next_result(&mut rx).await;

        let opts = DialOptions::new().header("Authorization", "Bearer t");
        dial(&url, &opts).await.expect("with token");
        next_result(&mut rx).await.expect("accepted");
    })
    .await;
}

#[tokio::test]
async fn hook_sees_request_and_picks_subprotocol() {
    bounded(async {
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        let opts = AcceptOptions::new()
            .subprotocols(["a.v1"])
            .on_request(move |req| {
                let _ = seen_tx.send((
                    req.path().to_owned(),
                    req.query().map(str::to_owned),
                    req.origin().map(str::to_owned),
                    req.subprotocols()
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                    req.headers().get("x-token").cloned(),
                ));
                Ok(Upgrade::new()
                    .subprotocol("b.v2")
                    .header("x-hello", "world"))
            });
        let (addr, mut rx) = server(opts).await;
        let url = format!("ws://{addr}/room/7?user=ann");
        let dopts = DialOptions::new()
            .subprotocols(["a.v1", "b.v2"])
            .header("x-token", "secret")
            .header("Origin", format!("http://{addr}"));
        let (conn, resp) = dial(&url, &dopts).await.expect("dial");
        assert_eq!(conn.subprotocol(), Some("b.v2"), "the hook's pick wins");
        assert_eq!(
            resp.headers().get("x-hello").map(|v| v.as_bytes()),
            Some(&b"world"[..])
        );
        let server_conn = next_result(&mut rx).await.expect("accepted");
        assert_eq!(server_conn.subprotocol(), Some("b.v2"));
        let (path, query, origin, protos, token) = seen_rx.recv().await.expect("hook ran");
        assert_eq!(path, "/room/7");
        assert_eq!(query.as_deref(), Some("user=ann"));
        assert_eq!(origin, Some(format!("http://{addr}")));
        assert_eq!(protos, ["a.v1", "b.v2"]);
        assert_eq!(token.as_ref().map(|v| v.as_bytes()), Some(&b"secret"[..]));
    })
    .await;
}

#[tokio::test]
async fn hook_picking_an_unoffered_subprotocol_is_a_500() {
    bounded(async {
        let opts =
            AcceptOptions::new().on_request(|_| Ok(Upgrade::new().subprotocol("never.offered")));
        let (addr, mut rx) = server(opts).await;
        let err = dial(
            &format!("ws://{addr}/"),
            &DialOptions::new().subprotocols(["x"]),
        )
        .await
        .expect_err("server bug");
        assert_eq!(err.http_status(), Some(500));
        let server_err = next_result(&mut rx).await.expect_err("refused");
        assert_eq!(server_err.kind(), ErrorKind::InvalidArgument);
    })
    .await;
}

#[tokio::test]
async fn server_read_limit_closes_with_1009() {
    bounded(async {
        let (addr, mut rx) = server(AcceptOptions::new().read_limit(100)).await;
        let (client, _) = dial(&format!("ws://{addr}/"), &DialOptions::new())
            .await
            .expect("dial");
        let server_conn = next_result(&mut rx).await.expect("accepted");
        client.write(vec![7u8; 101]).await.expect("write");
        let (server_err, client_err) = tokio::join!(server_conn.read(), client.read());
        let server_err = server_err.expect_err("too big");
        assert_eq!(
            server_err.kind(),
            ErrorKind::MessageTooBig,
            "{server_err:?}"
        );
        let client_err = client_err.expect_err("closed by the server");
        assert_eq!(
            close_status(&client_err),
            Some(StatusCode::MESSAGE_TOO_BIG),
            "{client_err:?}"
        );
    })
    .await;
}

/// Builds one masked client frame.
pub fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Upgrades a raw TCP connection by hand; returns it ready for frames.
pub async fn raw_upgrade(addr: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(format!("{UPGRADE}\r\n").as_bytes())
        .await
        .expect("send");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await.expect("read response");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// Reads one unmasked server frame: (opcode, payload).
pub async fn read_server_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    tcp.read_exact(&mut h).await.expect("frame header");
    assert_eq!(h[1] & 0x80, 0, "server frames must not be masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            tcp.read_exact(&mut l).await.expect("len");
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            tcp.read_exact(&mut l).await.expect("len");
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).await.expect("payload");
    (h[0] & 0x0f, payload)
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007() {
    bounded(async {
        let (addr, mut rx) = server(AcceptOptions::new()).await;
        let mut tcp = raw_upgrade(&addr).await;
        let conn = next_result(&mut rx).await.expect("accepted");
        tcp.write_all(&client_frame(0x1, true, &[b'o', b'k', 0xff]))
            .await
            .expect("send");
        let err = conn.read().await.expect_err("invalid UTF-8");
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{err:?}");
        let (op, payload) = read_server_frame(&mut tcp).await;
        assert_eq!(op, 0x8, "a close frame");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1007);
    })
    .await;
}

#[tokio::test]
async fn unmasked_client_frame_closes_with_1002() {
    bounded(async {
        let (addr, mut rx) = server(AcceptOptions::new()).await;
        let mut tcp = raw_upgrade(&addr).await;
        let conn = next_result(&mut rx).await.expect("accepted");
        tcp.write_all(&[0x81, 0x02, b'h', b'i'])
            .await
            .expect("send unmasked");
        let err = conn.read().await.expect_err("unmasked");
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        let (op, payload) = read_server_frame(&mut tcp).await;
        assert_eq!(op, 0x8);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
    })
    .await;
}
