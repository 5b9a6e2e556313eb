//! Native-only behaviour: ping, cancel safety of `read`, timeouts, the streaming writer's
//! failure modes, refused handshakes, header checks, and `Send` futures.

use std::sync::Arc;
use std::time::Duration;

use isosock::{
    close_status, dial, AcceptOptions, DialOptions, ErrorKind, Message, MessageType, StatusCode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::accept::server;
use crate::util::{bounded, echo_url};

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn conn_and_its_futures_are_send() {
    bounded(async {
        let url = echo_url().await;
        let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
        let conn = Arc::new(conn);
        assert_send(&conn.read());
        assert_send(&conn.write("x"));
        assert_send(&conn.writer(MessageType::Text));
        assert_send(&conn.close(StatusCode::NORMAL_CLOSURE, ""));
        assert_send(&conn.ping());
        assert_send(&dial(&url, &DialOptions::new()));
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
        let (addr, mut rx) = server(AcceptOptions::new()).await;
        let (client, _) = dial(&format!("ws://{addr}/"), &DialOptions::new())
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

/// A raw server sends a message in three fragments 100 ms apart; the client reads with a 10 ms
/// timeout over and over. Every dropped read must leave the stream intact.
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
        let (conn, _) = dial(
            &format!("ws://{addr}/"),
            &DialOptions::new().read_limit(1 << 20),
        )
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

#[tokio::test]
async fn dial_times_out_against_a_silent_server() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hold = tokio::spawn(async move {
            let (_tcp, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let opts = DialOptions::new().timeout(Duration::from_millis(300));
        let err = dial(&format!("ws://{addr}/"), &opts)
            .await
            .expect_err("silent server");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        hold.abort();
    })
    .await;
}

#[tokio::test]
async fn refused_handshake_carries_status_and_body() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let body = "no websocket here; try /chat".repeat(100);
            let resp = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            tcp.write_all(resp.as_bytes()).await.expect("head");
            tokio::time::sleep(Duration::from_millis(50)).await;
            tcp.write_all(body.as_bytes()).await.expect("body");
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let err = dial(&format!("ws://{addr}/"), &DialOptions::new())
            .await
            .expect_err("404");
        assert_eq!(err.kind(), ErrorKind::Handshake);
        assert_eq!(err.http_status(), Some(404));
        let body = err.http_body().expect("body");
        assert_eq!(
            body.len(),
            isosock::HTTP_BODY_PREFIX,
            "the first 1 KiB is kept"
        );
        assert!(body.starts_with(b"no websocket here"));
    })
    .await;
}

#[tokio::test]
async fn invalid_and_reserved_headers_refused() {
    bounded(async {
        let url = echo_url().await;
        for (name, value) in [
            ("Sec-WebSocket-Key", "x"),
            ("host", "evil"),
            ("bad name", "x"),
            ("x-ok", "line\nbreak"),
        ] {
            let err = dial(&url, &DialOptions::new().header(name, value))
                .await
                .expect_err(name);
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{name}");
        }
    })
    .await;
}

#[tokio::test]
async fn writer_dropped_mid_message_fails_the_connection() {
    bounded(async {
        let url = echo_url().await;
        let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
        {
            let mut w = conn.writer(MessageType::Binary).await.expect("writer");
            // 40 KB: the first 16 KiB frames are already on the wire.
            w.write_all(&[1u8; 40_000]).await.expect("write");
        }
        let err = conn.write("after").await.expect_err("connection failed");
        assert_eq!(err.kind(), ErrorKind::AlreadyClosed, "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn writer_dropped_before_sending_discards_the_message() {
    bounded(async {
        let url = echo_url().await;
        let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
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
        let url = echo_url().await;
        let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
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
        let (addr, mut rx) = server(AcceptOptions::new()).await;
        let opts = DialOptions::new().close_timeout(Duration::from_millis(300));
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
        let url = echo_url().await;
        let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
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
        let (addr, mut rx) = server(AcceptOptions::new()).await;
        let (client, _) = dial(&format!("ws://{addr}/"), &DialOptions::new())
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
        let (addr, mut rx) = server(AcceptOptions::new()).await;
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
        let url = echo_url().await;
        let opts = DialOptions::new().read_limit(1 << 20);
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
        let url = echo_url().await;
        let opts = DialOptions::new().read_limit(1 << 20);
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

/// A stream that counts the writes that took bytes.
struct CountingWrites<S> {
    inner: S,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for CountingWrites<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for CountingWrites<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Concurrent writers on one `Conn` share writes: while the socket is busy, the frames they
/// queue go out together (group commit). 16 tasks write 50 messages each through a 256-byte
/// pipe. One write per message would be 800 writes; with sharing it is 433 here (the
/// schedule of a current-thread runtime over an in-memory pipe is deterministic): a writer
/// that finds room writes at once, alone, and the frames queued while the pipe was full go
/// out together when it drains.
#[tokio::test]
async fn concurrent_writers_share_socket_writes() {
    bounded(async {
        let (mut client, server) = tokio::io::duplex(256);
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stream = CountingWrites {
            inner: server,
            writes: writes.clone(),
        };
        let accepting = tokio::spawn(async move { isosock::accept(stream, &AcceptOptions::new()).await });
        client
            .write_all(
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .await
            .expect("request");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(client.read_u8().await.expect("response"));
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        let conn = Arc::new(accepting.await.expect("join").expect("accept"));
        let before = writes.load(std::sync::atomic::Ordering::Relaxed);

        const WRITERS: u8 = 16;
        const EACH: u8 = 50;
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let conn = conn.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..EACH {
                    conn.write(Message::binary(vec![w, i, 7, 7, 7, 7, 7, 7, 7, 7]))
                        .await
                        .expect("write");
                }
            }));
        }
        // Read as a peer would, whatever has arrived; each frame: FIN + binary, unmasked
        // length 10, then the payload.
        let total = WRITERS as usize * EACH as usize * 12;
        let mut bytes = Vec::with_capacity(total);
        let mut chunk = [0u8; 4096];
        while bytes.len() < total {
            let n = client.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the server ended the stream early");
            bytes.extend_from_slice(&chunk[..n]);
        }
        let mut next = [0u8; WRITERS as usize];
        for frame in bytes.chunks_exact(12) {
            assert_eq!(frame[..2], [0x82, 10], "frame header");
            let (w, i) = (frame[2] as usize, frame[3]);
            assert_eq!(i, next[w], "writer {w}'s messages out of order");
            next[w] += 1;
        }
        for t in tasks {
            t.await.expect("writer task");
        }
        let used = writes.load(std::sync::atomic::Ordering::Relaxed) - before;
        assert!(
            used <= 600,
            "800 messages took {used} socket writes: concurrent writers did not share them"
        );
    })
    .await;
}

/// What a task that awaits `accept` or `dial` and then reads and writes carries for its whole
/// life: the handshakes run boxed, so their buffers (about 5 KiB for accept, 4 KiB for dial
/// before they were boxed) are freed when they finish instead of sizing every connection's
/// task. This is most of the idle memory per connection (6.6 KiB before, see BENCHMARKS.md).
#[tokio::test]
async fn connection_futures_stay_small() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let accept_opts = AcceptOptions::new();
        let dial_opts = DialOptions::new();
        let url = format!("ws://{addr}/");
        let accepting = isosock::accept(tcp, &accept_opts);
        let dialing = dial(&url, &dial_opts);
        let sizes = [
            ("accept", std::mem::size_of_val(&accepting)),
            ("dial", std::mem::size_of_val(&dialing)),
        ];
        for (what, size) in sizes {
            assert!(size <= 256, "the {what} future is {size} bytes");
        }
        drop((accepting, dialing));
        let (conn, _) = dial(&echo_url().await, &dial_opts).await.expect("dial");
        let reading = conn.read();
        let writing = conn.write("x");
        for (what, size) in [
            ("read", std::mem::size_of_val(&reading)),
            ("write", std::mem::size_of_val(&writing)),
        ] {
            assert!(size <= 512, "the {what} future is {size} bytes");
        }
    })
    .await;
}
