//! Regression tests for the native engine's hardening: hostile length headers, fragmented
//! messages against the read limit, mid-frame UTF-8 failure and the bounded write queue.

use futures_util::FutureExt;
use isosock::{accept, dial, AcceptOptions, DialOptions, ErrorKind, Message};
use tokio::io::DuplexStream;
use tokio::net::{TcpListener, TcpStream};

use crate::conformance::{
    accept_key, expect_close, expect_eof, header, read_frame, read_http_head, send, EchoServer,
    Frame, Len, BINARY, REQUEST,
};
use crate::util::bounded;

/// A client `Conn` dialed with `limit` to a raw server that answered the handshake by hand,
/// and that server's socket.
async fn client_and_raw_server(limit: usize) -> (isosock::Conn, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/hardening", listener.local_addr().expect("addr"));
    let server = async {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let head = read_http_head(&mut tcp).await.expect("upgrade request");
        let key = header(&head, "sec-websocket-key").expect("the request has a key");
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(&key)
        );
        send(&mut tcp, answer.as_bytes()).await;
        tcp
    };
    let opts = DialOptions::new().read_limit(limit);
    let (dialed, tcp) = tokio::join!(dial(&url, &opts), server);
    (dialed.expect("dial").0, tcp)
}

/// Sends `frames` to a server `Conn` and to a client `Conn`, both with read limit `limit`
/// (masked towards the server, unmasked towards the client), and checks that each fails the
/// connection with close code `code` and error `kind` without the peer sending another byte:
/// a failure that waited for more bytes would wait forever here.
async fn both_ends_fail_at_once(frames: &[Frame], limit: usize, code: u16, kind: ErrorKind) {
    let to_server: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
    let mut server = EchoServer::start(AcceptOptions::new().read_limit(limit)).await;
    let mut tcp = server.connect().await;
    send(&mut tcp, &to_server).await;
    expect_close(&mut tcp, code).await;
    expect_eof(&mut tcp).await;
    server.expect_end(kind).await;

    let to_client: Vec<u8> = frames
        .iter()
        .flat_map(|f| f.clone().unmasked().encode())
        .collect();
    let (conn, mut tcp) = client_and_raw_server(limit).await;
    send(&mut tcp, &to_client).await;
    let err = conn
        .read()
        .await
        .expect_err("the client must fail the connection");
    assert_eq!(err.kind(), kind, "client side: {err:?}");
    let close = read_frame(&mut tcp)
        .await
        .expect("the client's close frame");
    assert_eq!(close.close_code(), Some(code), "client side: {close:?}");
}

/// Defect: with `read_limit(usize::MAX)`, a 64-bit length near 2^64 overflowed the header
/// size + length sum and panicked the reading task, on both ends. RFC 6455 5.2: the most
/// significant bit of a 64-bit length MUST be 0, so such a header is a protocol error (1002),
/// whatever the limit.
#[tokio::test]
async fn usize_max_read_limit_and_a_2_pow_64_length_fail_with_1002_not_a_panic() {
    bounded(async {
        for claim in [u64::MAX, u64::MAX - 13, 1 << 63] {
            let frames = [Frame::binary(vec![]).len(Len::Claim(claim))];
            both_ends_fail_at_once(&frames, usize::MAX, 1002, ErrorKind::Protocol).await;
        }
    })
    .await;
}

/// With no limit, the largest legal claim (2^63 - 1) is accepted from its header, nothing is
/// allocated for it up front, and a peer that then goes away ends the connection as lost.
#[tokio::test]
async fn usize_max_read_limit_accepts_the_largest_legal_length_until_the_peer_leaves() {
    bounded(async {
        let mut server = EchoServer::start(AcceptOptions::new().read_limit(usize::MAX)).await;
        let mut tcp = server.connect().await;
        let mut bytes = Frame::binary(vec![])
            .len(Len::Claim(i64::MAX as u64))
            .encode();
        bytes.extend_from_slice(&[0x5A; 100]);
        send(&mut tcp, &bytes).await;
        drop(tcp);
        server.expect_end(ErrorKind::ConnectionLost).await;
    })
    .await;
}

/// Defect: the total of a fragmented message was checked only once a fragment was buffered
/// whole, so a last fragment claiming `limit` bytes after `limit` bytes of fragments was read
/// (twice the limit in memory) before the 1009. It is now refused from its header.
#[tokio::test]
async fn fragment_that_takes_a_message_past_the_limit_fails_from_its_header() {
    bounded(async {
        let limit = 1000;
        let frames = [
            Frame::binary(vec![1; 600]).fin(false),
            Frame::cont(vec![2; 400]).fin(false),
            // 1000 bytes so far: a continuation claiming one more byte is over the limit.
            Frame::cont(vec![]).len(Len::Claim(1)),
        ];
        both_ends_fail_at_once(&frames, limit, 1009, ErrorKind::MessageTooBig).await;
        // Exactly at the limit is fine.
        let server = EchoServer::start(AcceptOptions::new().read_limit(limit)).await;
        let mut tcp = server.connect().await;
        let ok = [
            Frame::binary(vec![1; 600]).fin(false),
            Frame::cont(vec![2; 400]),
        ];
        send(&mut tcp, &crate::conformance::frames(&ok)).await;
        let echo = read_frame(&mut tcp).await.expect("the echo");
        assert_eq!(echo.payload.len(), limit);
    })
    .await;
}

/// Autobahn 6.4.3/6.4.4 (RFC 6455 8.1, "fail fast"): invalid UTF-8 inside one frame fails the
/// connection with 1007 as soon as the offending bytes arrive, not when the frame ends; in a
/// single frame and in a continuation of a fragmented text message.
#[tokio::test]
async fn invalid_utf8_fails_with_1007_before_the_frame_ends() {
    bounded(async {
        // A frame claiming 100 bytes, of which only a valid start and one bad byte are sent.
        let single = [Frame::text(b"hello \xF4\x90".to_vec()).len(Len::Claim(100))];
        both_ends_fail_at_once(&single, 1 << 20, 1007, ErrorKind::InvalidData).await;
        // A character split across fragments, then an impossible continuation byte.
        let fragmented = [
            Frame::text("h\u{e9}llo \u{20ac}".as_bytes()[..9].to_vec()).fin(false),
            Frame::cont(b"\xAC ok \xC3\x28".to_vec()).len(Len::Claim(50)),
        ];
        both_ends_fail_at_once(&fragmented, 1 << 20, 1007, ErrorKind::InvalidData).await;
    })
    .await;
}

/// Valid text that arrives in pieces, with characters split between the pieces and between
/// fragments, is delivered whole (the mid-frame check must not reject what is only
/// incomplete).
#[tokio::test]
async fn text_split_anywhere_is_delivered_whole() {
    bounded(async {
        let text = "aé€😀z".repeat(50);
        let bytes = text.as_bytes();
        let server = EchoServer::start(AcceptOptions::new()).await;
        for cut in [1, 2, 3, 5, 7] {
            let mut tcp = server.connect().await;
            let (a, b) = bytes.split_at(bytes.len() / 2 + cut);
            let wire = crate::conformance::frames(&[
                Frame::text(a.to_vec()).fin(false),
                Frame::cont(b.to_vec()),
            ]);
            // Byte by byte at the split points, so each piece ends mid-character.
            for chunk in wire.chunks(wire.len() / 3 + cut) {
                send(&mut tcp, chunk).await;
                tokio::task::yield_now().await;
            }
            let echo = read_frame(&mut tcp).await.expect("the echo");
            assert_eq!(echo.payload, bytes, "cut {cut}");
        }
    })
    .await;
}

/// Defect: `write` queued its message and then waited, so a write cancelled while the peer
/// was not reading left its message queued, and a loop of cancelled writes grew the queue
/// without bound. Now a write waits for the queue to fall to the high-water mark before it
/// queues. Pins, too, what becomes of a cancelled write natively: its message was queued
/// whole and goes out, in order, with the next write.
#[tokio::test]
async fn cancelled_writes_do_not_grow_the_queue_past_the_high_water_mark() {
    const MSG: usize = 16 << 10;
    const MARK: usize = 64 << 10;
    let opts = AcceptOptions::new().write_high_water_mark(MARK);
    bounded(cancelled_writes_queue_at_most(opts, MSG, MARK / MSG + 2)).await;
}

/// The same on the tungstenite engine, where the mark does not apply: a write flushes what a
/// cancelled one left in tungstenite's buffer before it queues its own, so exactly one of the
/// cancelled messages (the first, queued whole) goes out.
#[cfg(feature = "tungstenite")]
#[tokio::test]
async fn cancelled_writes_on_the_tungstenite_engine_queue_one_message() {
    let opts = AcceptOptions::new().engine(isosock::Engine::Tungstenite);
    bounded(cancelled_writes_queue_at_most(opts, 16 << 10, 1)).await;
}

/// Writes `msg`-byte messages 200 times to a peer that reads nothing, polling each write once
/// and dropping it; then the peer reads and one more write goes: checks that what went out
/// is whole, in order, and at most `most` of the cancelled messages.
async fn cancelled_writes_queue_at_most(opts: AcceptOptions, msg_len: usize, most: usize) {
    const ATTEMPTS: usize = 200;
    let (conn, mut peer) = server_over_duplex(opts).await;
    // The peer reads nothing yet: every write stays pending, and is polled once and dropped.
    let mut completed = 0;
    for i in 0..ATTEMPTS {
        let msg = Message::binary(vec![i as u8; msg_len]);
        if let Some(done) = conn.write(msg).now_or_never() {
            done.expect("write");
            completed += 1;
        }
    }
    assert_eq!(completed, 0, "the 4 KiB pipe cannot take a 16 KiB message");
    let reader = async {
        let mut got = Vec::new();
        loop {
            let f = read_frame(&mut peer).await.expect("a frame");
            assert_eq!((f.opcode, f.fin), (BINARY, true), "{f:?}");
            if f.payload == [0xEE] {
                return got;
            }
            got.push(f.payload);
        }
    };
    let (got, last) = tokio::join!(reader, conn.write(Message::binary(vec![0xEE])));
    last.expect("the write after the cancelled ones");
    assert!(
        !got.is_empty(),
        "the first cancelled write was queued and must arrive"
    );
    for (i, payload) in got.iter().enumerate() {
        assert_eq!(
            payload,
            &vec![i as u8; msg_len],
            "message {i} whole and in order"
        );
    }
    assert!(
        got.len() <= most,
        "{} of {ATTEMPTS} cancelled {msg_len}-byte writes were queued; at most {most} may be",
        got.len()
    );
}

/// A server `Conn` accepted over an in-memory pipe of 4 KiB, and the raw client end.
async fn server_over_duplex(opts: AcceptOptions) -> (isosock::Conn, DuplexStream) {
    let (server_io, mut peer) = tokio::io::duplex(4096);
    let handshake = async {
        send(&mut peer, REQUEST.as_bytes()).await;
        let head = read_http_head(&mut peer).await.expect("a response");
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    };
    let (conn, ()) = tokio::join!(accept(server_io, &opts), handshake);
    (conn.expect("accept"), peer)
}
