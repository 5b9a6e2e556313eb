//! Scenarios written once against the public API, run natively (tests/native) and in headless
//! Chromium (tests/wasm) against the echo server of `examples/echo_server.rs`.
#![allow(dead_code)]

pub mod helpers;

/// The list of shared scenarios, written once: `for_each_scenario!(wrapper)` invokes the
/// target's `wrapper!` macro once per group, as `wrapper!(url, module path, [names])` for the
/// scenarios that take the echo server's URL and `wrapper!(no_url, module path, [names])` for
/// those that need no server. Each target's wrapper turns every name into a test with its own
/// attribute (`#[tokio::test]` in tests/native/scenarios.rs, `#[wasm_bindgen_test]` in
/// tests/wasm/main.rs), so a new scenario is added here and nowhere else. Names may carry
/// `#[cfg]` attributes, passed on to the test.
///
/// Compression comes from the target's `dial_options`: natively every scenario runs once per
/// `Compression` mode (tests/native/scenarios.rs); in the browser once, always compressed,
/// since the browser offers permessage-deflate by itself and the echo server accepts it.
macro_rules! for_each_scenario {
    ($wrapper:ident) => {
        $wrapper!(
            url,
            common,
            [
                echo_text,
                echo_binary,
                echo_empty,
                echo_large,
                streaming_writer_and_reader,
                concurrent_writers,
                peer_close_code_reaches_reader,
                peer_normal_closure,
                peer_drop_is_connection_lost,
                client_close_handshake,
                close_while_reading,
                close_arguments_validated,
                read_limit_enforced,
                set_read_limit_lowers,
                subprotocol_negotiated,
                invalid_subprotocol_rejected,
                close_now_is_final,
                close_read_sees_peer_close,
                write_batch_in_order,
            ]
        );
        $wrapper!(no_url, common, [bad_urls_rejected, refused_connection]);
        $wrapper!(
            url,
            common::helpers,
            [
                #[cfg(feature = "json")]
                json_round_trip_and_errors,
                #[cfg(feature = "protobuf")]
                protobuf_round_trip_and_errors,
                byte_stream_spans_messages_and_ends,
                http_over_byte_stream,
                split_stream_and_sink,
                reconnect_after_drop_once_per_disconnect,
                reconnect_on_open_runs_first_on_every_connection,
                reconnect_stops_on_a_final_code,
                reconnect_offline_queue,
                heartbeat_message_mode_detects_a_silent_peer,
            ]
        );
    };
}
pub(crate) use for_each_scenario;

use futures_util::future::join_all;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use isosock::{close_status, dial, DialOptions, ErrorKind, Message, MessageType, StatusCode};

async fn open(url: &str) -> isosock::Conn {
    open_with(url, crate::dial_options()).await
}

async fn open_with(url: &str, opts: DialOptions) -> isosock::Conn {
    match dial(url, &opts).await {
        Ok((conn, _)) => conn,
        Err(e) => panic!("dial {url}: {e:?}"),
    }
}

/// A deterministic, non-repeating byte pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

pub async fn echo_text(url: &str) {
    let conn = open(url).await;
    for text in ["hello", "ünïcödé ✓ 🦀", &"x".repeat(1000)] {
        conn.write(text).await.expect("write");
        assert_eq!(conn.read().await.expect("read"), Message::text(text));
    }
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");
}

pub async fn echo_binary(url: &str) {
    let conn = open(url).await;
    let data = pattern(4096);
    conn.write(data.clone()).await.expect("write");
    let got = conn.read().await.expect("read");
    assert_eq!(got.message_type(), MessageType::Binary);
    assert_eq!(got.as_bytes(), &data[..]);
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");
}

pub async fn echo_empty(url: &str) {
    let conn = open(url).await;
    conn.write("").await.expect("write empty text");
    assert_eq!(conn.read().await.expect("read"), Message::text(""));
    conn.write(Vec::new()).await.expect("write empty binary");
    assert_eq!(
        conn.read().await.expect("read"),
        Message::binary(Vec::new())
    );
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");
}

/// 1 MiB + 1 byte each way: above every default frame and buffer size.
pub async fn echo_large(url: &str) {
    let conn = open_with(url, crate::dial_options().read_limit(4 << 20)).await;
    let data = pattern((1 << 20) + 1);
    conn.write(data.clone()).await.expect("write");
    let got = conn.read().await.expect("read");
    assert_eq!(got.len(), data.len());
    assert!(got.as_bytes() == &data[..], "large message corrupted");
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");
}

/// A 100 KiB message written in 1000-byte pieces through `writer`, read back through `reader`.
pub async fn streaming_writer_and_reader(url: &str) {
    let conn = open_with(url, crate::dial_options().read_limit(1 << 20)).await;
    let data = pattern(100_000);
    let mut w = conn.writer(MessageType::Binary).await.expect("writer");
    for chunk in data.chunks(1000) {
        w.write_all(chunk).await.expect("write chunk");
    }
    w.finish().await.expect("finish");
    let mut r = conn.reader().await.expect("reader");
    assert_eq!(r.message_type(), MessageType::Binary);
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.expect("read_to_end");
    assert!(got == data, "streamed message differs");

    // Text split inside a multi-byte character is still one valid message.
    let text = "é".repeat(20_000);
    let mut w = conn.writer(MessageType::Text).await.expect("writer");
    for chunk in text.as_bytes().chunks(999) {
        w.write_all(chunk).await.expect("write chunk");
    }
    w.finish().await.expect("finish");
    assert_eq!(conn.read().await.expect("read"), Message::text(text));
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");
}

/// 50 writers on one connection at once: every message arrives whole, none interleaved.
pub async fn concurrent_writers(url: &str) {
    let conn = open_with(url, crate::dial_options().read_limit(1 << 20)).await;
    let n = 50;
    let writes = (0..n).map(|i| {
        let conn = &conn;
        async move {
            let mut w = conn.writer(MessageType::Text).await.expect("writer");
            let body = format!("{i:03}:") + &"ab".repeat(20_000);
            for chunk in body.as_bytes().chunks(7_000) {
                w.write_all(chunk).await.expect("write");
            }
            w.finish().await.expect("finish");
            conn.write(format!("short {i}")).await.expect("write short");
        }
    });
    let reads = async {
        let mut seen = Vec::new();
        for _ in 0..2 * n {
            let msg = conn.read().await.expect("read");
            let text = msg.as_text().expect("text").to_owned();
            if let Some(rest) = text.strip_prefix("short ") {
                seen.push(rest.parse::<usize>().expect("number") + 1000);
            } else {
                assert_eq!(text.len(), 4 + 40_000, "interleaved or torn message");
                assert!(text[4..].bytes().eq("ab".repeat(20_000).bytes()));
                seen.push(text[..3].parse::<usize>().expect("number"));
            }
        }
        seen.sort_unstable();
        seen
    };
    let (_, seen) = futures_util::join!(join_all(writes), reads);
    let expected: Vec<usize> = (0..n).chain(1000..1000 + n).collect();
    assert_eq!(seen, expected);
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");
}

/// The server closes with 4001 "bye": the reader gets exactly that, not a generic error.
pub async fn peer_close_code_reaches_reader(url: &str) {
    let conn = open(url).await;
    conn.write("!close 4001 bye now").await.expect("write");
    let err = conn.read().await.expect_err("read after server close");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err:?}");
    assert_eq!(close_status(&err), Some(StatusCode::from(4001)));
    assert_eq!(
        err.close_frame().map(|f| f.reason.as_str()),
        Some("bye now")
    );
    assert_eq!(conn.peer_close_frame().map(|f| f.code.as_u16()), Some(4001));
    // Later reads keep reporting the same close.
    let again = conn.read().await.expect_err("second read");
    assert_eq!(close_status(&again), Some(StatusCode::from(4001)));
    // A write after the peer closed fails instead of hanging.
    conn.write("late")
        .await
        .expect_err("write after peer close");
}

/// A server-sent NORMAL_CLOSURE is a clean close, not a failure.
pub async fn peer_normal_closure(url: &str) {
    let conn = open(url).await;
    conn.write("!close 1000").await.expect("write");
    let err = conn.read().await.expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(close_status(&err), Some(StatusCode::NORMAL_CLOSURE));
}

/// The server drops the TCP connection without a close frame: the reader gets
/// `ConnectionLost` and no close status (the browser's close event says 1006, not clean), the
/// same on every engine and in every browser.
pub async fn peer_drop_is_connection_lost(url: &str) {
    let conn = open(url).await;
    conn.write("!drop").await.expect("write");
    let err = conn
        .read()
        .await
        .expect_err("the server dropped the connection");
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err:?}");
    assert_eq!(close_status(&err), None, "{err:?}");
    assert_eq!(conn.peer_close_frame(), None);
    let again = conn.read().await.expect_err("second read");
    assert_eq!(again.kind(), ErrorKind::ConnectionLost, "{again:?}");
}

/// We close; the server answers; later writes are a distinct usage error.
pub async fn client_close_handshake(url: &str) {
    let conn = open(url).await;
    conn.write("before").await.expect("write");
    assert_eq!(conn.read().await.expect("read"), Message::text("before"));
    conn.close(StatusCode::from(4321), "client done")
        .await
        .expect("close");
    // The echo server answers our close with the same code.
    assert_eq!(conn.peer_close_frame().map(|f| f.code.as_u16()), Some(4321));
    let err = conn.write("after").await.expect_err("write after close");
    assert_eq!(err.kind(), ErrorKind::AlreadyClosed, "{err:?}");
    let err = conn
        .close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect_err("second close");
    assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
}

/// `close` from one future while another is blocked in `read` on the same connection.
pub async fn close_while_reading(url: &str) {
    let conn = open(url).await;
    let (read, close) = futures_util::join!(
        conn.read(),
        conn.close(StatusCode::NORMAL_CLOSURE, "from another task")
    );
    close.expect("close");
    let err = read.expect_err("reader sees the close");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err:?}");
    assert_eq!(close_status(&err), Some(StatusCode::NORMAL_CLOSURE));
}

/// Codes the wire (or the browser) refuses and over-long reasons fail before anything is sent.
pub async fn close_arguments_validated(url: &str) {
    let conn = open(url).await;
    for code in [0u16, 999, 1005, 1006, 1015, 2000, 5000] {
        let err = conn
            .close(StatusCode::from(code), "")
            .await
            .expect_err("invalid code");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "code {code}");
    }
    let err = conn
        .close(StatusCode::NORMAL_CLOSURE, &"é".repeat(62))
        .await
        .expect_err("124-byte reason");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    // Nothing was sent: the connection still works.
    conn.write("still open").await.expect("write");
    assert_eq!(
        conn.read().await.expect("read"),
        Message::text("still open")
    );
    conn.close(StatusCode::NORMAL_CLOSURE, &"é".repeat(61))
        .await
        .expect("122-byte reason is fine");
}

/// A message over the read limit fails the read with MessageTooBig and ends the connection.
pub async fn read_limit_enforced(url: &str) {
    let conn = open_with(url, crate::dial_options().read_limit(1000)).await;
    conn.write("!big 1000").await.expect("write");
    assert_eq!(conn.read().await.expect("at the limit").len(), 1000);
    conn.write("!big 1001").await.expect("write");
    let err = conn.read().await.expect_err("over the limit");
    assert_eq!(err.kind(), ErrorKind::MessageTooBig, "{err:?}");
    let again = conn.read().await.expect_err("connection is closed");
    assert_eq!(again.kind(), ErrorKind::MessageTooBig);
}

/// `set_read_limit` lowers the limit of an open connection.
pub async fn set_read_limit_lowers(url: &str) {
    let conn = open(url).await;
    conn.set_read_limit(100);
    conn.write("!big 101").await.expect("write");
    let err = conn.read().await.expect_err("over the lowered limit");
    assert_eq!(err.kind(), ErrorKind::MessageTooBig, "{err:?}");
}

/// The server picks the first of its protocols that we offer.
pub async fn subprotocol_negotiated(url: &str) {
    let (conn, resp) = dial(
        url,
        &crate::dial_options().subprotocols(["nope.v9", "chat.v1"]),
    )
    .await
    .expect("dial");
    assert_eq!(conn.subprotocol(), Some("chat.v1"));
    assert_eq!(resp.subprotocol(), Some("chat.v1"));
    conn.write("!subprotocol").await.expect("write");
    assert_eq!(conn.read().await.expect("read"), Message::text("chat.v1"));
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");

    let (conn, _) = dial(url, &crate::dial_options()).await.expect("dial");
    assert_eq!(conn.subprotocol(), None, "none offered, none selected");
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");
}

pub async fn invalid_subprotocol_rejected(url: &str) {
    let err = dial(url, &crate::dial_options().subprotocols(["has space"]))
        .await
        .expect_err("invalid token");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

pub async fn bad_urls_rejected() {
    for url in [
        "",
        "http://127.0.0.1:1/",
        "ws://",
        "127.0.0.1:80",
        "ws://h/#frag",
    ] {
        let err = dial(url, &crate::dial_options()).await.expect_err(url);
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{url}: {err:?}");
    }
}

/// Nothing listens on port 1 of loopback.
pub async fn refused_connection() {
    let err = dial("ws://127.0.0.1:1/", &crate::dial_options())
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
}

/// `close_now` fails pending and later operations with AlreadyClosed and never blocks.
pub async fn close_now_is_final(url: &str) {
    let conn = open(url).await;
    conn.close_now();
    let err = conn.write("x").await.expect_err("write after close_now");
    assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
    let err = conn.read().await.expect_err("read after close_now");
    assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
    conn.close_now();
}

/// With `close_read`, a write-only connection still completes the server's close.
pub async fn close_read_sees_peer_close(url: &str) {
    let conn = open(url).await;
    let closed = conn.close_read();
    conn.write("!close 4002 done").await.expect("write");
    let err = closed.await;
    assert_eq!(close_status(&err), Some(StatusCode::from(4002)), "{err:?}");
}

/// `write_batch` sends its messages in order, and two batches from different tasks never
/// interleave.
pub async fn write_batch_in_order(url: &str) {
    let conn = open_with(url, crate::dial_options().read_limit(1 << 20)).await;
    let a: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
    let b: Vec<Message> = (0..50u8).map(|i| Message::binary(vec![i; 100])).collect();
    let (ra, rb) = futures_util::join!(conn.write_batch(a.clone()), conn.write_batch(b.clone()));
    ra.expect("batch a");
    rb.expect("batch b");
    let mut got = Vec::new();
    for _ in 0..100 {
        got.push(conn.read().await.expect("read"));
    }
    let a_msgs: Vec<Message> = a.into_iter().map(Message::text).collect();
    let a_first = got[..50] == a_msgs[..] && got[50..] == b[..];
    let b_first = got[..50] == b[..] && got[50..] == a_msgs[..];
    assert!(a_first || b_first, "the batches interleaved or reordered");
    conn.write_batch(Vec::<Message>::new())
        .await
        .expect("an empty batch is fine");
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");
}
