//! Native-only behaviour of the handshake and the own engine: dial timeouts, refused
//! handshakes, header checks, concurrent writers sharing socket writes, the size of the
//! connection futures. (What holds on every engine is in `semantics.rs`.)

use std::sync::Arc;
use std::time::Duration;

use isosock::{dial, AcceptOptions, DialOptions, ErrorKind, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::util::{bounded, echo_url};

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
