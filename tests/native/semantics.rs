//! Close, limit and error semantics and cancel safety that hold on each engine: ping, dropped
//! reads, the streaming writer's failure modes, close timeouts, `close_now`, `close_read`,
//! pipelined frames, large payloads, concurrent writers, `Send` futures. Included once per
//! engine (see `main.rs`): `super::ENGINE` carries isosock's end of every connection.

use std::sync::Arc;
use std::time::Duration;

use isosock::{
    close_status, dial, AcceptOptions, DialOptions, Engine, ErrorKind, Message, MessageType,
    StatusCode,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::accept::server;
use crate::util::bounded;

/// A client on this module's engine.
fn client() -> DialOptions {
    DialOptions::new().engine(super::ENGINE)
}

/// A server on this module's engine.
fn server_options() -> AcceptOptions {
    AcceptOptions::new().engine(super::ENGINE)
}

/// A fresh echo server on this module's engine.
async fn echo() -> String {
    crate::util::echo_url_on(super::ENGINE).await
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn conn_and_its_futures_are_send() {
    bounded(async {
        let url = echo().await;
        let (conn, _) = dial(&url, &client()).await.expect("dial");
        let conn = Arc::new(conn);
        assert_send(&conn.read());
        assert_send(&conn.write("x"));
        assert_send(&conn.writer(MessageType::Text));
        assert_send(&conn.close(StatusCode::NORMAL_CLOSURE, ""));
        assert_send(&conn.ping());
        assert_send(&dial(&url, &client()));
        // And usable from a spawned task.
        let c = conn.clone();
        tokio::spawn(async move { c.write("from a task").await })
            .await
            .expect("join")
            .expect("write");
        assert_eq!(
            conn.read().await.expect("read"),
            Message::text("from a task")
        );
    })
    .await;
}

#[tokio::test]
async fn ping_waits_for_pong_both_directions() {
    bounded(async {
        let (addr, mut rx) = server(server_options()).await;
        let (client, _) = dial(&format!("ws://{addr}/"), &client())
            .await
            .expect("dial");
        let server_conn = rx.recv().await.expect("task").expect("accepted");
        // The pong is seen while the other side reads and we read too.
        for _ in 0..3 {
            tokio::select! {
                r = client.ping() => r.expect("client ping"),
                r = client.read() => panic!("unexpected read result {r:?}"),
                r = server_conn.read() => panic!("unexpected server read {r:?}"),
            }
            tokio::select! {
                r = server_conn.ping() => r.expect("server ping"),
                r = client.read() => panic!("unexpected read result {r:?}"),
                r = server_conn.read() => panic!("unexpected server read {r:?}"),
            }
        }
    })
    .await;
}

/// A server sends a message in three fragments 100 ms apart; the client reads with a 10 ms
/// timeout over and over. Every dropped read must leave the stream intact. The client is on
/// this module's engine; the server is on the own engine, whose `Writer` streams the
/// fragments (the tungstenite engine's would send the message whole).
#[tokio::test]
async fn dropped_reads_lose_nothing() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let conn = isosock::accept(tcp, &AcceptOptions::new())
                .await
                .expect("upgrade");
            // Each 20 KB piece goes out as its own frames, 100 ms apart.
            for round in 0..2u8 {
                let mut w = conn.writer(MessageType::Binary).await.expect("writer");
                for part in 0..3u8 {
                    w.write_all(&vec![round * 10 + part; 20_000])
                        .await
                        .expect("write");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                w.finish().await.expect("finish");
            }
            let _ = conn.read().await;
        });
        let (conn, _) = dial(&format!("ws://{addr}/"), &client().read_limit(1 << 20))
            .await
            .expect("dial");
        for round in 0..2u8 {
            let mut timeouts = 0;
            let msg = loop {
                match tokio::time::timeout(Duration::from_millis(10), conn.read()).await {
                    Ok(r) => break r.expect("read"),
                    Err(_) => timeouts += 1,
                }
            };
            assert!(
                timeouts >= 10,
                "reads were not actually cancelled mid-message ({timeouts})"
            );
            let expected: Vec<u8> = (0..3u8)
                .flat_map(|p| vec![round * 10 + p; 20_000])
                .collect();
            assert_eq!(msg.len(), expected.len());
            assert!(msg.as_bytes() == &expected[..], "message {round} corrupted");
        }
    })
    .await;
}

/// A `Writer` dropped after part of its message was written: on the own engine the first
/// 16 KiB frames are already on the wire, so the connection fails (a peer cannot be told to
/// forget half a message); the tungstenite engine sends a `Writer`'s message whole on
/// `finish`, so nothing was sent, the message is discarded and the connection goes on.
#[tokio::test]
async fn writer_dropped_mid_message() {
    bounded(async {
        let url = echo().await;
        let (conn, _) = dial(&url, &client()).await.expect("dial");
        {
            let mut w = conn.writer(MessageType::Binary).await.expect("writer");
            w.write_all(&[1u8; 40_000]).await.expect("write");
        }
        let after = conn.write("after").await;
        if super::ENGINE == Engine::Own {
            let err = after.expect_err("connection failed");
            assert_eq!(err.kind(), ErrorKind::AlreadyClosed, "{err:?}");
        } else {
            after.expect("the connection goes on");
            assert_eq!(conn.read().await.expect("read"), Message::text("after"));
        }
    })
    .await;
}

#[tokio::test]
async fn writer_dropped_before_sending_discards_the_message() {
    bounded(async {
        let url = echo().await;
        let (conn, _) = dial(&url, &client()).await.expect("dial");
        {
            let mut w = conn.writer(MessageType::Text).await.expect("writer");
            w.write_all(b"never sent").await.expect("write");
        }
        conn.write("sent").await.expect("write");
        assert_eq!(conn.read().await.expect("read"), Message::text("sent"));
    })
    .await;
}

#[tokio::test]
async fn text_writer_rejects_invalid_utf8() {
    bounded(async {
        let url = echo().await;
        let (conn, _) = dial(&url, &client()).await.expect("dial");
        let mut w = conn.writer(MessageType::Text).await.expect("writer");
        w.write_all(b"ok \xff").await.expect("buffered");
        let err = w.finish().await.expect_err("invalid UTF-8");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let mut w = conn.writer(MessageType::Text).await.expect("writer");
        w.write_all("half of é".as_bytes().split_last().expect("bytes").1)
            .await
            .expect("buffered");
        let err = w.finish().await.expect_err("ends inside a character");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        conn.write("still fine").await.expect("write");
        assert_eq!(
            conn.read().await.expect("read"),
            Message::text("still fine")
        );
    })
    .await;
}

#[tokio::test]
async fn close_times_out_when_the_peer_never_answers() {
    bounded(async {
        let (addr, mut rx) = server(server_options()).await;
        let opts = client().close_timeout(Duration::from_millis(300));
        let (conn, _) = dial(&format!("ws://{addr}/"), &opts).await.expect("dial");
        // The server never reads, so it never answers our close frame.
        let _server_conn = rx.recv().await.expect("task").expect("accepted");
        let err = conn
            .close(StatusCode::NORMAL_CLOSURE, "")
            .await
            .expect_err("no answer");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        let err = conn.write("x").await.expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
    })
    .await;
}

#[tokio::test]
async fn close_now_wakes_a_blocked_reader() {
    bounded(async {
        let url = echo().await;
        let (conn, _) = dial(&url, &client()).await.expect("dial");
        let conn = Arc::new(conn);
        let reader = tokio::spawn({
            let conn = conn.clone();
            async move { conn.read().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.close_now();
        let err = reader.await.expect("join").expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::AlreadyClosed, "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn server_close_read_answers_data_with_1008() {
    bounded(async {
        let (addr, mut rx) = server(server_options()).await;
        let (client, _) = dial(&format!("ws://{addr}/"), &client())
            .await
            .expect("dial");
        let server_conn = rx.recv().await.expect("task").expect("accepted");
        let closed = server_conn.close_read();
        server_conn.write("write-only stream").await.expect("write");
        assert_eq!(
            client.read().await.expect("read"),
            Message::text("write-only stream")
        );
        client.write("unexpected").await.expect("write");
        let err = closed.await;
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
        let err = client.read().await.expect_err("closed by server");
        assert_eq!(close_status(&err), Some(StatusCode::POLICY_VIOLATION));
    })
    .await;
}

/// Data the client sends right behind its upgrade request reaches the server's first read.
#[tokio::test]
async fn frame_pipelined_with_the_handshake_is_kept() {
    bounded(async {
        let (addr, mut rx) = server(server_options()).await;
        let mut tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            .to_vec();
        req.extend(crate::accept::client_frame(0x1, true, b"early"));
        tcp.write_all(&req).await.expect("send");
        let conn = rx.recv().await.expect("task").expect("accepted");
        assert_eq!(conn.read().await.expect("read"), Message::text("early"));
    })
    .await;
}

/// `len` bytes tagged with `tag` (so a frame from another writer or a corrupted one shows).
fn tagged(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag ^ (i % 251) as u8).collect()
}

#[tokio::test]
async fn large_payloads_are_sent_intact_and_the_callers_bytes_untouched() {
    bounded(async {
        let url = echo().await;
        let opts = client().read_limit(1 << 20);
        let (conn, _) = dial(&url, &opts).await.expect("dial");
        // Held by the caller too: the client must not mask it in place.
        let held = bytes::Bytes::from(tagged(1, 300_000));
        conn.write(Message::Binary(held.clone()))
            .await
            .expect("write");
        assert_eq!(
            held[..],
            tagged(1, 300_000)[..],
            "the caller's bytes changed"
        );
        assert_eq!(conn.read().await.expect("read"), Message::binary(held));
        // Owned by the write alone: masked in place, still arrives as sent.
        conn.write(Message::binary(tagged(2, 270_000)))
            .await
            .expect("write");
        assert_eq!(
            conn.read().await.expect("read"),
            Message::binary(tagged(2, 270_000))
        );
        let text = "é".repeat(150_000);
        conn.write(Message::text(text.clone()))
            .await
            .expect("write");
        assert_eq!(conn.read().await.expect("read"), Message::text(text));
    })
    .await;
}

/// Message `i` of writer `w`: copied (small) and shared (large) payloads alternate; the first
/// byte names the writer and the second the message's index.
fn writer_message(w: u8, i: usize) -> Vec<u8> {
    let len = if i % 2 == 0 { 10 } else { 270_000 + i };
    let mut data = tagged(w.wrapping_mul(37).wrapping_add(i as u8), len);
    data[0] = w;
    data[1] = i as u8;
    data
}

#[tokio::test]
async fn concurrent_writers_of_small_and_large_messages_keep_order_and_content() {
    bounded(async {
        let url = echo().await;
        let opts = client().read_limit(1 << 20);
        let (conn, _) = dial(&url, &opts).await.expect("dial");
        let conn = Arc::new(conn);
        const WRITERS: u8 = 4;
        const EACH: usize = 25;
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let conn = conn.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..EACH {
                    conn.write(Message::binary(writer_message(w, i)))
                        .await
                        .expect("write");
                }
            }));
        }
        let mut next = [0usize; WRITERS as usize];
        for _ in 0..WRITERS as usize * EACH {
            let Message::Binary(got) = conn.read().await.expect("read") else {
                panic!("expected a binary echo");
            };
            let (w, i) = (got[0], got[1] as usize);
            assert_eq!(i, next[w as usize], "writer {w}'s messages out of order");
            next[w as usize] += 1;
            assert!(
                got[..] == writer_message(w, i)[..],
                "writer {w} message {i} corrupted"
            );
        }
        for t in tasks {
            t.await.expect("writer task");
        }
    })
    .await;
}
