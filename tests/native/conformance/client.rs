//! isosock's client (`dial`) against a raw TCP server that answers the handshake by hand and
//! sends hand-built frames: RFC 6455 sections 4.1 (client handshake), 5 and 7 from the
//! client's side.

use isosock::{close_status, dial, Conn, DialOptions, ErrorKind, Message, MessageType, StatusCode};
use tokio::net::{TcpListener, TcpStream};

use super::{
    accept_key, expect_close, expect_eof, failure, frames, header, read_frame, read_http_head, row,
    send, unbase64, Failure, Frame, Len, Received, BINARY, CLOSE, CONT, PING, PONG, TEXT,
};
use crate::util::bounded;

/// Runs `dial` against a raw server that reads the upgrade request and writes whatever
/// `respond` returns for it; gives back the dial's result, the server's socket and the
/// request head.
pub(super) async fn handshake_with(
    opts: DialOptions,
    respond: impl FnOnce(&str) -> Vec<u8>,
) -> (isosock::Result<Conn>, TcpStream, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "ws://{}/conformance?q=1",
        listener.local_addr().expect("addr")
    );
    let server = async {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let head = read_http_head(&mut tcp).await.expect("upgrade request");
        send(&mut tcp, &respond(&head)).await;
        (tcp, head)
    };
    let (dialed, (tcp, head)) = tokio::join!(dial(&url, &opts), server);
    (dialed.map(|(conn, _)| conn), tcp, head)
}

/// A correct `101` for the request `head`, with `extra` header lines (each ending in CRLF).
pub(super) fn switching(head: &str, extra: &str) -> Vec<u8> {
    let key = header(head, "sec-websocket-key").expect("the request has a key");
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
        accept_key(&key)
    )
    .into_bytes()
}

/// An open client connection and the raw server side of it.
async fn open(opts: DialOptions) -> (Conn, TcpStream) {
    let (conn, tcp, _) = handshake_with(opts, |head| switching(head, "")).await;
    (conn.expect("dial"), tcp)
}

/// Checks that a dial whose handshake was answered with `respond` fails with `Handshake`.
pub(super) async fn expect_handshake_error(
    opts: DialOptions,
    respond: impl FnOnce(&str) -> Vec<u8>,
) -> isosock::Error {
    let (res, _tcp, _) = handshake_with(opts, respond).await;
    let err = res.expect_err("the handshake must fail");
    assert_eq!(err.kind(), ErrorKind::Handshake, "{err:?}");
    err
}

/// Reads one client frame and checks that it is masked (RFC 6455 5.1/5.3).
pub(super) async fn read_client_frame(tcp: &mut TcpStream) -> Received {
    let f = read_frame(tcp).await.expect("a client frame");
    assert!(f.mask.is_some(), "client frame not masked: {f:?}");
    f
}

/// Sends `bytes` from the server and checks that the client's read fails with `kind` and
/// that it sends a masked close frame with `code` and then closes the connection.
async fn expect_client_failure(bytes: &[u8], code: u16, kind: ErrorKind) {
    let (conn, mut tcp) = open(DialOptions::new().read_limit(1000)).await;
    send(&mut tcp, bytes).await;
    let err = conn
        .read()
        .await
        .expect_err("the client must fail the connection");
    assert_eq!(err.kind(), kind, "{err:?}");
    let f = read_client_frame(&mut tcp).await;
    assert_eq!(f.opcode, CLOSE, "{f:?}");
    assert_eq!(f.close_code(), Some(code), "{f:?}");
    expect_eof(&mut tcp).await;
}

/// A server frame: unmasked, final.
pub(super) fn server_frame(opcode: u8, payload: impl Into<Vec<u8>>) -> Frame {
    Frame::new(opcode, payload).unmasked()
}

// ---- 4.1 Client handshake -----------------------------------------------------------------

/// RFC 6455 4.1: the client's request is a GET over HTTP/1.1 for the URL's resource name
/// (path and query), with `Host`, `Upgrade: websocket`, `Connection: Upgrade`,
/// `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key` that decodes to 16 bytes, "randomly
/// selected" afresh for each connection; offered subprotocols go in `Sec-WebSocket-Protocol`.
#[tokio::test]
async fn request_is_a_valid_opening_handshake_with_a_fresh_key() {
    bounded(async {
        let mut keys = Vec::new();
        for _ in 0..2 {
            let opts = DialOptions::new().subprotocols(["a.v1", "b.v2"]);
            let (conn, _tcp, head) = handshake_with(opts, |head| {
                switching(head, "Sec-WebSocket-Protocol: b.v2\r\n")
            })
            .await;
            let conn = conn.expect("dial");
            assert_eq!(conn.subprotocol(), Some("b.v2"));
            let first = head.lines().next().unwrap_or("");
            assert_eq!(first, "GET /conformance?q=1 HTTP/1.1", "{head}");
            assert!(header(&head, "host").is_some_and(|h| h.starts_with("127.0.0.1:")));
            assert_eq!(
                header(&head, "upgrade").map(|v| v.to_ascii_lowercase()),
                Some("websocket".into())
            );
            assert!(header(&head, "connection")
                .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")));
            assert_eq!(
                header(&head, "sec-websocket-version").as_deref(),
                Some("13")
            );
            assert_eq!(
                header(&head, "sec-websocket-protocol").as_deref(),
                Some("a.v1, b.v2")
            );
            let key = header(&head, "sec-websocket-key").expect("key");
            assert_eq!(unbase64(&key).map(|k| k.len()), Some(16), "key {key:?}");
            keys.push(key);
        }
        assert_ne!(keys[0], keys[1], "each connection gets a new nonce");
    })
    .await;
}

/// RFC 6455 4.1 (client requirement 4): a `Sec-WebSocket-Accept` that is not
/// base64(SHA-1(key + GUID)) fails the connection: `ErrorKind::Handshake`. Covers a wrong
/// value, the value for another key, and none at all.
#[tokio::test]
async fn wrong_or_missing_accept_fails_the_handshake() {
    bounded(async {
        expect_handshake_error(DialOptions::new(), |_| {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                .to_vec()
        })
        .await;
        expect_handshake_error(DialOptions::new(), |head| {
            String::from_utf8(switching(head, ""))
                .expect("ascii")
                .replace("Accept: ", "Accept: x")
                .into_bytes()
        })
        .await;
        expect_handshake_error(DialOptions::new(), |_| {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_vec()
        })
        .await;
    })
    .await;
}

/// RFC 6455 4.1 (client requirements 2 and 3): a 101 without `Upgrade: websocket` or without
/// `Connection: Upgrade` fails the connection: `ErrorKind::Handshake`.
#[tokio::test]
async fn missing_upgrade_or_connection_in_the_101_fails_the_handshake() {
    bounded(async {
        for (from, to) in [
            ("Upgrade: websocket\r\n", ""),
            ("Upgrade: websocket\r\n", "Upgrade: h2c\r\n"),
            // Requirement 2 asks for the value "websocket", not a list containing it.
            ("Upgrade: websocket\r\n", "Upgrade: websocket, h2c\r\n"),
            ("Connection: Upgrade\r\n", ""),
            ("Connection: Upgrade\r\n", "Connection: keep-alive\r\n"),
        ] {
            expect_handshake_error(DialOptions::new(), |head| {
                String::from_utf8(switching(head, ""))
                    .expect("ascii")
                    .replacen(from, to, 1)
                    .into_bytes()
            })
            .await;
        }
    })
    .await;
}

/// Regression: a 101 with two `Sec-WebSocket-Accept` headers was accepted when the first was
/// right (browsers refuse it). RFC 6455 11.3.3 and 11.3.4: `Sec-WebSocket-Accept` and
/// `Sec-WebSocket-Protocol` "MUST NOT appear more than once in an HTTP response"; repeated,
/// the combined value is no accept key (4.1 requirement 4) and no single offered subprotocol
/// (requirement 6), and a repeated `Upgrade` is no longer the value "websocket"
/// (requirement 2): `ErrorKind::Handshake`. `Connection` is a token list (requirement 3), so
/// a second one is fine. Rows: (header lines added after the correct ones, refused?, what).
#[tokio::test]
async fn repeated_single_valued_headers_in_the_101_fail_the_handshake() {
    // `{ACCEPT}` stands for the right accept value of the request's key.
    let rows: [(&str, bool, &str); 5] = [
        (
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
            true,
            "a second, wrong Sec-WebSocket-Accept after the right one",
        ),
        (
            "Sec-WebSocket-Accept: {ACCEPT}\r\n",
            true,
            "the right Sec-WebSocket-Accept twice",
        ),
        (
            "Sec-WebSocket-Protocol: a.v1\r\nSec-WebSocket-Protocol: a.v1\r\n",
            true,
            "the offered subprotocol twice",
        ),
        ("Upgrade: websocket\r\n", true, "Upgrade: websocket twice"),
        (
            "Connection: keep-alive\r\n",
            false,
            "a second Connection header",
        ),
    ];
    bounded(async {
        for (extra, refused, what) in rows {
            let opts = DialOptions::new().subprotocols(["a.v1"]);
            let (res, _tcp, _) = handshake_with(opts, |head| {
                let key = header(head, "sec-websocket-key").expect("the request has a key");
                switching(head, &extra.replace("{ACCEPT}", &accept_key(&key)))
            })
            .await;
            match res {
                Err(err) if refused => {
                    assert_eq!(err.kind(), ErrorKind::Handshake, "{what}: {err:?}");
                    assert!(err.to_string().contains("more than one"), "{what}: {err}");
                }
                Ok(_) if !refused => {}
                other => panic!("{what}: refused {refused} expected, got {other:?}"),
            }
        }
    })
    .await;
}

/// RFC 6455 4.1 (client requirement 1): any status other than 101 means the handshake did not
/// complete: `ErrorKind::Handshake` with the status (200 and 403 here).
#[tokio::test]
async fn non_101_status_fails_the_handshake() {
    bounded(async {
        for status in [200u16, 403] {
            let err = expect_handshake_error(DialOptions::new(), |_| {
                format!("HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\n\r\n").into_bytes()
            })
            .await;
            assert_eq!(err.http_status(), Some(status));
        }
    })
    .await;
}

/// RFC 6455 4.1 (client requirement 6): a subprotocol "that was not present in the client's
/// handshake" fails the connection: `ErrorKind::Handshake`, whether the client offered others
/// or none at all.
#[tokio::test]
async fn subprotocol_not_offered_fails_the_handshake() {
    bounded(async {
        expect_handshake_error(DialOptions::new().subprotocols(["a.v1"]), |head| {
            switching(head, "Sec-WebSocket-Protocol: evil.v9\r\n")
        })
        .await;
        expect_handshake_error(DialOptions::new(), |head| {
            switching(head, "Sec-WebSocket-Protocol: a.v1\r\n")
        })
        .await;
    })
    .await;
}

/// RFC 6455 4.1 (client requirement 6) only forbids a subprotocol that was not offered; a
/// server selecting none is allowed. Choice: isosock accepts that with `subprotocol()` `None`
/// (Chromium instead fails such a handshake).
#[tokio::test]
async fn no_subprotocol_selected_is_accepted() {
    bounded(async {
        let (conn, _tcp, _) = handshake_with(DialOptions::new().subprotocols(["a.v1"]), |head| {
            switching(head, "")
        })
        .await;
        assert_eq!(conn.expect("dial").subprotocol(), None);
    })
    .await;
}

/// RFC 6455 4.1 (client requirement 5): an extension "not present in the client's handshake"
/// fails the connection: `ErrorKind::Handshake` (with compression disabled isosock offers
/// none; tests/native/conformance/deflate.rs covers the offers it makes by default).
#[tokio::test]
async fn extension_not_offered_fails_the_handshake() {
    bounded(async {
        let opts = DialOptions::new().compression(isosock::Compression::Disabled);
        expect_handshake_error(opts, |head| {
            switching(head, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
        })
        .await;
    })
    .await;
}

/// RFC 6455 4.1/5.2: frames the server sends right behind its 101, in the same segment, are
/// part of the connection and reach the first read.
#[tokio::test]
async fn frames_right_behind_the_101_are_read() {
    bounded(async {
        let (conn, _tcp, _) = handshake_with(DialOptions::new(), |head| {
            let mut out = switching(head, "");
            out.extend(server_frame(TEXT, "first").encode());
            out
        })
        .await;
        assert_eq!(
            conn.expect("dial").read().await.expect("read"),
            Message::text("first")
        );
    })
    .await;
}

// ---- 5.1 / 5.3 Masking --------------------------------------------------------------------

/// RFC 6455 5.1/5.3: "a client MUST mask all frames that it sends to the server", each with a
/// fresh, unpredictable key: text and binary at every length encoding, the frames of a
/// streamed message, a ping, the pong answering the server's ping, and the close frame are
/// all masked, unmask to the right payload, and do not all share one key.
#[tokio::test]
async fn every_client_frame_is_masked() {
    bounded(async {
        let (conn, mut tcp) = open(DialOptions::new()).await;
        let mut keys = Vec::new();
        for len in [0usize, 125, 126, 65535, 65536] {
            conn.write(vec![0x5a; len]).await.expect("write binary");
            let f = read_client_frame(&mut tcp).await;
            assert_eq!((f.opcode, f.fin, f.rsv), (BINARY, true, 0));
            assert!(f.payload == vec![0x5a; len], "binary of {len}");
            keys.extend(f.mask);
        }
        conn.write("héllo").await.expect("write text");
        let f = read_client_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload.as_slice()), (TEXT, "héllo".as_bytes()));
        keys.extend(f.mask);

        // A streamed message: one frame per 16 KiB, then a final frame.
        let mut w = conn.writer(MessageType::Binary).await.expect("writer");
        tokio::io::AsyncWriteExt::write_all(&mut w, &vec![1u8; 40 << 10])
            .await
            .expect("stream");
        w.finish().await.expect("finish");
        let mut total = 0;
        let mut first = true;
        loop {
            let f = read_client_frame(&mut tcp).await;
            assert_eq!(f.opcode, if first { BINARY } else { CONT }, "{f:?}");
            first = false;
            total += f.payload.len();
            keys.extend(f.mask);
            if f.fin {
                break;
            }
        }
        assert_eq!(total, 40 << 10);

        // conn.ping() and the pong answering the server's ping, while something reads.
        send(&mut tcp, &server_frame(PING, "srv").encode()).await;
        let pinger = async {
            tokio::select! {
                r = conn.ping() => r.expect("ping"),
                r = conn.read() => panic!("unexpected read {r:?}"),
            }
        };
        let answerer = async {
            let mut saw = (false, false);
            while saw != (true, true) {
                let f = read_client_frame(&mut tcp).await;
                keys.extend(f.mask);
                match f.opcode {
                    PONG => {
                        assert_eq!(f.payload, b"srv", "pong echoes the ping's payload");
                        saw.0 = true;
                    }
                    PING => {
                        send(&mut tcp, &server_frame(PONG, f.payload).encode()).await;
                        saw.1 = true;
                    }
                    other => panic!("unexpected opcode {other}"),
                }
            }
        };
        tokio::join!(pinger, answerer);

        let closer = conn.close(StatusCode::NORMAL_CLOSURE, "done");
        let server = async {
            let f = read_client_frame(&mut tcp).await;
            assert_eq!((f.opcode, f.close_code()), (CLOSE, Some(1000)));
            assert_eq!(&f.payload[2..], b"done");
            keys.extend(f.mask);
            send(&mut tcp, &server_frame(CLOSE, vec![0x03, 0xe8]).encode()).await;
        };
        let (closed, ()) = tokio::join!(closer, server);
        closed.expect("close handshake");

        keys.sort_unstable();
        keys.dedup();
        assert!(keys.len() > 1, "every frame used the same masking key");
    })
    .await;
}

// ---- Server frames that fail the connection: one table ------------------------------------

/// The rows of [`server_frames_that_fail_the_connection`], by RFC section; each group's
/// comment gives the RFC's reasoning. The client reads with a 1000-byte limit.
fn failures() -> Vec<Failure> {
    use ErrorKind::{InvalidData, MessageTooBig, Protocol};
    let mut rows = vec![
        // 5.1: "A client MUST close a connection if it detects a masked frame" from the server,
        // with 1002 (7.4.1).
        failure(
            "masked_server_frame",
            "5.1",
            Frame::text("masked").encode(),
            1002,
            Protocol,
        ),
        // 5.2: with no extension negotiated, RSV1-3 set on a server frame fails the connection
        // with 1002; so do reserved opcodes (0x3-0x7, 0xB-0xF).
    ];

    for rsv in [0b100, 0b010, 0b001] {
        rows.push(failure(
            format!("reserved_bits_from_the_server (rsv {rsv:#05b})"),
            "5.2",
            server_frame(TEXT, "x").rsv(rsv).encode(),
            1002,
            Protocol,
        ));
    }
    for opcode in (0x3..=0x7).chain(0xB..=0xF) {
        rows.push(failure(
            format!("reserved_opcode_from_the_server ({opcode:#x})"),
            "5.2",
            server_frame(opcode, "x").encode(),
            1002,
            Protocol,
        ));
    }

    // 5.4/5.5: a continuation with nothing to continue, a fragmented ping and a 126-byte ping
    // from the server each fail the connection with 1002.
    for (what, f) in [
        ("orphan continuation", server_frame(CONT, "orphan")),
        ("fragmented ping", server_frame(PING, "p").fin(false)),
        ("126-byte ping", server_frame(PING, vec![0; 126])),
    ] {
        rows.push(failure(
            format!("framing_error_from_the_server ({what})"),
            "5.4/5.5",
            f.encode(),
            1002,
            Protocol,
        ));
    }

    // 8.1: invalid UTF-8 in a text message from the server fails the connection with 1007,
    // whole or split across fragments: `ErrorKind::InvalidData`.
    rows.push(failure(
        "invalid_utf8_from_the_server (whole)",
        "8.1",
        server_frame(TEXT, &b"bad \xc3\x28"[..]).encode(),
        1007,
        InvalidData,
    ));
    rows.push(failure(
        "invalid_utf8_from_the_server (split across fragments)",
        "8.1",
        frames(&[
            server_frame(TEXT, &b"ok \xe2\x82"[..]).fin(false),
            server_frame(CONT, &b"\x28"[..]),
        ]),
        1007,
        InvalidData,
    ));

    // 5.2/10.4: a server frame header claiming 2^63-1 bytes is refused at once with 1009 (the
    // read limit), without waiting for (or allocating) the payload.
    rows.push(failure(
        "huge_length_from_the_server",
        "5.2/10.4",
        server_frame(BINARY, vec![])
            .len(Len::Claim(i64::MAX as u64))
            .encode(),
        1009,
        MessageTooBig,
    ));
    rows
}

/// RFC 6455 5, 8.1 and 10.4: each row of [`failures`] (a masked frame, reserved bits and
/// opcodes, framing errors, invalid UTF-8, a huge length) is sent by the server on a fresh
/// connection, and the client fails it: its read fails with the row's error kind, and it sends
/// a masked close frame with the row's code, then closes the connection. A failing row fails
/// the test with its name and RFC section.
#[tokio::test]
async fn server_frames_that_fail_the_connection() {
    bounded(async {
        for f in failures() {
            row(
                &f.name,
                f.rfc,
                expect_client_failure(&f.bytes, f.code, f.kind),
            )
            .await;
        }
    })
    .await;
}

// ---- 8.1 UTF-8 and 10.4 limits ------------------------------------------------------------

/// RFC 6455 10.4 lets an endpoint limit message size and 7.4.1 names 1009 for "a message that
/// is too big for it to process": with a 1000-byte read limit, a 1000-byte message (single or
/// fragmented) is read and a 1001-byte one fails with 1009 (`ErrorKind::MessageTooBig`),
/// single or fragmented.
#[tokio::test]
async fn read_limit_from_the_client_side_is_exact() {
    bounded(async {
        let (conn, mut tcp) = open(DialOptions::new().read_limit(1000)).await;
        send(
            &mut tcp,
            &frames(&[
                server_frame(BINARY, vec![1; 1000]),
                server_frame(BINARY, vec![2; 600]).fin(false),
                server_frame(CONT, vec![2; 400]),
            ]),
        )
        .await;
        assert_eq!(conn.read().await.expect("at the limit").len(), 1000);
        assert_eq!(conn.read().await.expect("fragmented").len(), 1000);

        expect_client_failure(
            &server_frame(BINARY, vec![0; 1001]).encode(),
            1009,
            ErrorKind::MessageTooBig,
        )
        .await;
        expect_client_failure(
            &frames(&[
                server_frame(TEXT, "a".repeat(600)).fin(false),
                server_frame(CONT, "a".repeat(401)),
            ]),
            1009,
            ErrorKind::MessageTooBig,
        )
        .await;
    })
    .await;
}

// ---- 5.5 Control frames and 7 Closing -----------------------------------------------------

/// RFC 6455 5.5.2/5.5.3: a ping from the server is answered by a masked pong with identical
/// payload while the application reads, between the fragments of a message too.
#[tokio::test]
async fn server_ping_is_answered_with_a_masked_pong() {
    bounded(async {
        let (conn, mut tcp) = open(DialOptions::new()).await;
        send(
            &mut tcp,
            &frames(&[
                server_frame(TEXT, "a").fin(false),
                server_frame(PING, vec![7; 125]),
                server_frame(CONT, "b"),
            ]),
        )
        .await;
        assert_eq!(conn.read().await.expect("read"), Message::text("ab"));
        let f = read_client_frame(&mut tcp).await;
        assert_eq!((f.opcode, f.payload), (PONG, vec![7; 125]));
    })
    .await;
}

/// RFC 6455 5.5.1: the client answers a server's close frame with a masked close frame,
/// echoing the code (choice: and the reason), and the application sees a clean close with
/// the server's code.
#[tokio::test]
async fn server_close_is_echoed() {
    bounded(async {
        let (conn, mut tcp) = open(DialOptions::new()).await;
        send(
            &mut tcp,
            &server_frame(CLOSE, [&[0x0f, 0xa0][..], b"later"].concat()).encode(),
        )
        .await;
        let err = conn.read().await.expect_err("closed");
        assert_eq!(close_status(&err), Some(StatusCode::from(4000)));
        assert_eq!(expect_close(&mut tcp, 4000).await, b"later");
    })
    .await;
}

/// RFC 6455 7.4.1/7.4.2: a close frame from the server with a code that may not be sent
/// (1005 here; 0-999, 1004, 1006, 1015, 1016-2999 and 5000+ alike) or a 1-byte body is a
/// protocol violation: the client answers 1002.
#[tokio::test]
async fn invalid_close_from_the_server_is_answered_with_1002() {
    bounded(async {
        for body in [vec![0x03, 0xed], vec![0x00, 0x00], vec![0x03]] {
            let (conn, mut tcp) = open(DialOptions::new()).await;
            send(&mut tcp, &server_frame(CLOSE, body.clone()).encode()).await;
            let _ = conn.read().await.expect_err("closed");
            let f = read_client_frame(&mut tcp).await;
            assert_eq!(
                (f.opcode, f.close_code()),
                (CLOSE, Some(1002)),
                "body {body:?}"
            );
        }
    })
    .await;
}
