//! Scenarios for the helpers on top of `Conn` (json, protobuf, ByteStream, split Stream/Sink,
//! Reconnecting, Heartbeat), written once and run natively and in headless Chromium against
//! the echo server of `examples/echo_server.rs`.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::{SinkExt, StreamExt};
use isosock::reconnect::{State, StateStream};
use isosock::{
    close_status, dial, ByteStream, DialOptions, ErrorKind, Heartbeat, Message, MessageType,
    ReconnectOptions, Reconnecting, StatusCode,
};

// ---- target glue: a timer and a random id (the only cfgs here) -----------------------------

/// Sleeps `ms` milliseconds.
#[cfg(not(target_arch = "wasm32"))]
pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Sleeps `ms` milliseconds.
#[cfg(target_arch = "wasm32")]
pub async fn sleep_ms(ms: u64) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &"setTimeout".into())
            .ok()
            .and_then(|f| wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f).ok());
        if let Some(f) = set_timeout {
            let _ = f.call2(&global, &resolve, &wasm_bindgen::JsValue::from(ms as f64));
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// An id no other test run uses, for the echo server's per-id connection count.
fn unique_id(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    #[cfg(not(target_arch = "wasm32"))]
    let salt = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(N.fetch_add(1, Ordering::Relaxed));
        h.finish()
    };
    #[cfg(target_arch = "wasm32")]
    let salt =
        (js_sys::Math::random() * 1e15) as u64 + u64::from(N.fetch_add(1, Ordering::Relaxed));
    format!("{name}-{salt:x}")
}

fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

async fn open(url: &str) -> isosock::Conn {
    match dial(url, &DialOptions::new()).await {
        Ok((conn, _)) => conn,
        Err(e) => panic!("dial {url}: {e:?}"),
    }
}

// ---- json ---------------------------------------------------------------------------------

#[cfg(feature = "json")]
pub async fn json_round_trip_and_errors(url: &str) {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Chat {
        nick: String,
        text: String,
        n: u32,
    }
    let conn = open(url).await;
    let sent = Chat {
        nick: "ann".into(),
        text: "ünïcödé".into(),
        n: 7,
    };
    isosock::json::write(&conn, &sent).await.expect("write");
    let got: Chat = isosock::json::read(&conn).await.expect("read");
    assert_eq!(got, sent);

    // Not JSON for the type: a Decode error with serde's message; the connection stays open.
    conn.write(r#"{"nick":"bob"}"#).await.expect("write");
    let err = isosock::json::read::<Chat>(&conn)
        .await
        .expect_err("missing fields");
    assert_eq!(err.kind(), ErrorKind::Decode, "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("missing field"),
        "serde's message is kept: {text}"
    );
    assert!(text.contains("Chat"), "the type is named: {text}");
    conn.write("still open")
        .await
        .expect("write after a decode error");
    assert_eq!(
        conn.read().await.expect("read"),
        Message::text("still open")
    );

    // The read limit still applies before decoding.
    conn.set_read_limit(16);
    isosock::json::write(&conn, &sent).await.expect("write");
    let err = isosock::json::read::<Chat>(&conn)
        .await
        .expect_err("over the limit");
    assert_eq!(err.kind(), ErrorKind::MessageTooBig, "{err:?}");
}

// ---- protobuf -----------------------------------------------------------------------------

#[cfg(feature = "protobuf")]
pub async fn protobuf_round_trip_and_errors(url: &str) {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Point {
        #[prost(int32, tag = "1")]
        x: i32,
        #[prost(string, tag = "2")]
        label: String,
    }
    let conn = open(url).await;
    let sent = Point {
        x: -42,
        label: "here".into(),
    };
    isosock::protobuf::write(&conn, &sent).await.expect("write");
    let got: Point = isosock::protobuf::read(&conn).await.expect("read");
    assert_eq!(got, sent);

    conn.write("text, not protobuf").await.expect("write");
    let err = isosock::protobuf::read::<Point>(&conn)
        .await
        .expect_err("a text message");
    assert_eq!(err.kind(), ErrorKind::Decode, "{err:?}");
    assert!(err.to_string().contains("text message"), "{err}");

    conn.write(vec![0xFFu8; 12]).await.expect("write");
    let err = isosock::protobuf::read::<Point>(&conn)
        .await
        .expect_err("garbage bytes");
    assert_eq!(err.kind(), ErrorKind::Decode, "{err:?}");
    conn.write("open").await.expect("still open");
    assert_eq!(conn.read().await.expect("read"), Message::text("open"));
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");
}

// ---- ByteStream ---------------------------------------------------------------------------

pub async fn byte_stream_spans_messages_and_ends(url: &str) {
    let mut stream = ByteStream::new(open(url).await, MessageType::Binary);
    // Two writes are two messages; reads cross their boundary.
    stream.write_all(b"hello ").await.expect("write");
    stream.write_all(b"world").await.expect("write");
    stream.flush().await.expect("flush");
    let mut buf = [0u8; 11];
    stream.read_exact(&mut buf).await.expect("read_exact");
    assert_eq!(&buf, b"hello world");

    // A normal close by the peer reads as end-of-file.
    stream
        .conn()
        .write("!close 1000 done")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let n = stream
        .read_to_end(&mut rest)
        .await
        .expect("EOF, not an error");
    assert_eq!(n, 0);

    // Any other close code is an error carrying the close.
    let mut stream = ByteStream::new(open(url).await, MessageType::Text);
    stream
        .conn()
        .write("!close 4000 tunnel broke")
        .await
        .expect("write");
    let err = stream.read(&mut [0u8; 8]).await.expect_err("a 4000 close");
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<isosock::Error>())
        .expect("the isosock error inside");
    assert_eq!(close_status(inner), Some(StatusCode::from(4000)));

    // Text streams refuse writes that are not UTF-8 on their own.
    let mut stream = ByteStream::new(open(url).await, MessageType::Text);
    let err = stream.write(&[0xC3]).await.expect_err("half a character");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    stream.close().await.expect("shutdown closes with 1000");
    stream.close().await.expect("shutdown twice is fine");
}

/// hyper::rt I/O over a futures-io stream (hyper does not ship this adapter).
struct HyperIo<T>(T);

impl<T: futures_io::AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut tmp = [0u8; 8192];
        let want = tmp.len().min(buf.remaining());
        let n = std::task::ready!(Pin::new(&mut self.0).poll_read(cx, &mut tmp[..want]))?;
        buf.put_slice(&tmp[..n]);
        Poll::Ready(Ok(()))
    }
}

impl<T: futures_io::AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// A real protocol through the byte stream: hyper's HTTP/1.1 client here, hyper's server in
/// the echo server (its `/http` path), several requests on one connection.
pub async fn http_over_byte_stream(url: &str) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;

    // The same server, path `/http`.
    let authority_end = url
        .find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(url.len());
    let http_url = format!("{}/http", &url[..authority_end]);
    let stream = ByteStream::new(open(&http_url).await, MessageType::Binary);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(HyperIo(stream))
            .await
            .expect("HTTP/1.1 handshake");
    let requests = async move {
        let req = hyper::Request::get("/greeting")
            .header("host", "isosock.test")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = sender.send_request(req).await.expect("GET");
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"hello over websocket: /greeting");

        // A body bigger than one message of the stream's reads, echoed back whole.
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let req = hyper::Request::post("/echo")
            .header("host", "isosock.test")
            .body(Full::new(Bytes::from(big.clone())))
            .expect("request");
        let resp = sender.send_request(req).await.expect("POST");
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], &big[..]);
    };
    // The connection task runs beside the requests; dropping the sender ends it.
    let (_, conn_result) = futures_util::join!(requests, connection);
    conn_result.expect("the HTTP connection ended cleanly");
}

// ---- split Stream/Sink --------------------------------------------------------------------

pub async fn split_stream_and_sink(url: &str) {
    let (mut tx, mut rx) = open(url).await.split();
    let mut outgoing =
        futures_util::stream::iter(["one", "two", "three"].map(|t| Ok(Message::text(t))));
    tx.send_all(&mut outgoing).await.expect("send_all");
    let got: Vec<Message> = (&mut rx)
        .take(3)
        .map(|m| m.expect("message"))
        .collect()
        .await;
    assert_eq!(got, ["one", "two", "three"].map(Message::text));

    // Closing from the writing half, with a code of our choosing, ends the stream cleanly.
    tx.close_with(StatusCode::from(4001), "from the sink")
        .await
        .expect("close_with");
    assert!(rx.next().await.is_none(), "the stream ends after our close");
    assert_eq!(
        rx.conn().peer_close_frame().map(|f| f.code),
        Some(StatusCode::from(4001))
    );

    // Regression: a stream left idle with a read in flight (a `select!` branch that lost)
    // held the read lock, so a close from the sink could not see the peer's close frame and
    // ended in a Timeout.
    let (conn, _) = dial(
        url,
        &DialOptions::new().close_timeout(Duration::from_secs(3)),
    )
    .await
    .expect("dial");
    let (mut tx, mut rx) = conn.split();
    assert!(futures_util::poll!(rx.next()).is_pending());
    tx.close_with(StatusCode::NORMAL_CLOSURE, "idle stream")
        .await
        .expect("close completes while the stream is idle");

    // A 1001 close by the peer ends it too; another code is yielded once as an error.
    let (mut tx, mut rx) = open(url).await.split();
    tx.send(Message::text("!close 1001 going away"))
        .await
        .expect("send");
    assert!(rx.next().await.is_none());
    let (mut tx, mut rx) = open(url).await.split();
    tx.send(Message::text("!close 4002 not normal"))
        .await
        .expect("send");
    let err = rx.next().await.expect("an item").expect_err("an error");
    assert_eq!(close_status(&err), Some(StatusCode::from(4002)));
    assert!(rx.next().await.is_none(), "then the stream ends");

    // forward: one connection's messages into another's sink, which forward then closes.
    // The forwarded message is a command that makes b's server close with 4005: that close
    // code coming back proves the message arrived before forward's own close. (Reading b's
    // echo instead would not work in the browser, which drops data arriving after close().)
    let (mut tx_a, rx_a) = open(url).await.split();
    let (tx_b, rx_b) = open(url).await.split();
    // Binary, so a's server echoes it instead of obeying it; turned into text on its way to b.
    tx_a.send(Message::binary(&b"!close 4005 relayed"[..]))
        .await
        .expect("send");
    let as_text = |m: isosock::Result<Message>| {
        m.map(|msg| Message::text(String::from_utf8_lossy(msg.as_bytes()).into_owned()))
    };
    rx_a.take(1)
        .map(as_text)
        .forward(tx_b)
        .await
        .expect("forward");
    assert_eq!(
        rx_b.conn().peer_close_frame().map(|f| (f.code, f.reason)),
        Some((StatusCode::from(4005), "relayed".to_owned()))
    );
}

// ---- Reconnecting -------------------------------------------------------------------------

/// Waits (bounded by a number of state changes) for a state matching `want`.
async fn wait_state(states: &mut StateStream, what: &str, want: impl Fn(&State) -> bool) -> State {
    for _ in 0..50 {
        match states.next().await {
            Some(s) if want(&s) => return s,
            Some(_) => {}
            None => break,
        }
    }
    panic!("the client never reached {what}");
}

fn is_open(s: &State) -> bool {
    matches!(s, State::Open)
}

async fn ask(client: &Reconnecting, cmd: &str) -> String {
    client.write(cmd).await.expect("write");
    match client.read().await.expect("read") {
        Message::Text(t) => t,
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn reconnect_after_drop_once_per_disconnect(url: &str) {
    let id = unique_id("drop");
    let calls = Arc::new(AtomicU32::new(0));
    let provider_calls = calls.clone();
    let base = url.to_owned();
    let opts = ReconnectOptions::provider(move || {
        let n = provider_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let target = with_query(&base, &format!("id={id}&token={n}"));
        async move { Ok((target, DialOptions::new())) }
    })
    .backoff(Duration::from_millis(20), Duration::from_millis(100));
    let client = Reconnecting::start(opts).expect("start");
    let mut states = client.states();
    wait_state(&mut states, "open", is_open).await;
    assert_eq!(ask(&client, "!count").await, "1");
    assert!(ask(&client, "!url").await.ends_with("token=1"));

    // The server drops the connection without a close frame: one new attempt, with a fresh
    // token from the provider.
    client.write("!drop").await.expect("write");
    let down = wait_state(&mut states, "disconnected", |s| {
        matches!(s, State::Disconnected { .. })
    })
    .await;
    if let State::Disconnected { error, retry_in } = down {
        assert_eq!(error.kind(), ErrorKind::ConnectionLost, "{error:?}");
        assert!(retry_in <= Duration::from_millis(100));
    }
    wait_state(&mut states, "open again", is_open).await;
    assert_eq!(
        ask(&client, "!count").await,
        "2",
        "exactly one new connection"
    );
    assert!(ask(&client, "!url").await.ends_with("token=2"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    client
        .close(StatusCode::NORMAL_CLOSURE, "bye")
        .await
        .expect("close");
    wait_state(&mut states, "closed", |s| {
        matches!(s, State::Closed { error: None })
    })
    .await;
    assert_eq!(
        client.write("late").await.expect_err("closed").kind(),
        ErrorKind::AlreadyClosed
    );
    assert_eq!(
        client.read().await.expect_err("closed").kind(),
        ErrorKind::AlreadyClosed
    );
}

/// `on_open` runs first on every connection: it greets the server and reads the answer before
/// the client counts as open (so `read` never sees that answer); a hook that fails is a
/// failed attempt, retried with backoff, its error kept as the source.
pub async fn reconnect_on_open_runs_first_on_every_connection(url: &str) {
    let id = unique_id("on-open");
    let calls = Arc::new(AtomicU32::new(0));
    let hook_calls = calls.clone();
    let opts = ReconnectOptions::new(with_query(url, &format!("id={id}")), DialOptions::new())
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .on_open(move |conn| {
            let n = hook_calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let hello = format!("hello {n}");
                conn.write(hello.as_str()).await?;
                let answer = conn.read().await?;
                if answer != Message::text(hello) {
                    return Err(format!("unexpected answer {answer:?}").into());
                }
                if n == 2 {
                    return Err("the second greeting is refused".into());
                }
                Ok(())
            }
        });
    let client = Reconnecting::start(opts).expect("start");
    let mut states = client.states();
    wait_state(&mut states, "open", is_open).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The hook took its answer: the first message `read` sees is the reply to this.
    assert_eq!(ask(&client, "!count").await, "1");

    client.write("!drop").await.expect("write");
    let refused = wait_state(
        &mut states,
        "the refused greeting",
        |s| matches!(s, State::Disconnected { error, .. } if error.kind() == ErrorKind::Connect),
    )
    .await;
    if let State::Disconnected { error, .. } = refused {
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("the second greeting is refused"));
    }
    wait_state(&mut states, "open again", is_open).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        ask(&client, "!count").await,
        "3",
        "one connection per hook call"
    );
    client
        .close(StatusCode::NORMAL_CLOSURE, "bye")
        .await
        .expect("close");
}

pub async fn reconnect_stops_on_a_final_code(url: &str) {
    let id = unique_id("final");
    let target = with_query(url, &format!("id={id}"));
    let opts = ReconnectOptions::new(target.clone(), DialOptions::new())
        .backoff(Duration::from_millis(20), Duration::from_millis(50))
        .final_codes([StatusCode::from(4403)]);
    let client = Reconnecting::start(opts).expect("start");
    let mut states = client.states();
    wait_state(&mut states, "open", is_open).await;
    client.write("!close 4403 banned").await.expect("write");
    let closed = wait_state(&mut states, "closed", |s| matches!(s, State::Closed { .. })).await;
    let State::Closed { error: Some(error) } = closed else {
        panic!("closed without the final error: {closed:?}");
    };
    assert_eq!(close_status(&error), Some(StatusCode::from(4403)));
    let err = client.read().await.expect_err("stopped");
    assert_eq!(close_status(&err), Some(StatusCode::from(4403)));
    // Longer than several backoff delays: no retry may have happened. A fresh connection with
    // the same id is then the second one the server saw.
    sleep_ms(300).await;
    let probe = open(&target).await;
    probe.write("!count").await.expect("write");
    assert_eq!(probe.read().await.expect("read"), Message::text("2"));
}

pub async fn reconnect_offline_queue(url: &str) {
    let id = unique_id("queue");
    let target = with_query(url, &format!("id={id}"));

    // Off by default: writes while disconnected fail.
    let opts = ReconnectOptions::new(target.clone(), DialOptions::new())
        .backoff(Duration::from_millis(200), Duration::from_millis(300));
    let client = Reconnecting::start(opts).expect("start");
    let mut states = client.states();
    wait_state(&mut states, "open", is_open).await;
    client.write("!drop").await.expect("write");
    wait_state(&mut states, "disconnected", |s| {
        matches!(s, State::Disconnected { .. })
    })
    .await;
    let err = client.write("lost").await.expect_err("no queue");
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err:?}");
    drop(client);

    // On: queued in order, bounded, sent before later writes once reconnected.
    let opts = ReconnectOptions::new(target, DialOptions::new())
        .backoff(Duration::from_millis(200), Duration::from_millis(300))
        .queue_while_offline(2);
    let client = Reconnecting::start(opts).expect("start");
    let mut states = client.states();
    wait_state(&mut states, "open", is_open).await;
    client.write("!drop").await.expect("write");
    wait_state(&mut states, "disconnected", |s| {
        matches!(s, State::Disconnected { .. })
    })
    .await;
    client.write("queued 1").await.expect("queued");
    client.write("queued 2").await.expect("queued");
    let err = client.write("queued 3").await.expect_err("queue full");
    assert_eq!(err.kind(), ErrorKind::ConnectionLost);
    assert!(err.to_string().contains("full"), "{err}");
    wait_state(&mut states, "open again", is_open).await;
    client.write("after").await.expect("write");
    for want in ["queued 1", "queued 2", "after"] {
        assert_eq!(client.read().await.expect("read"), Message::text(want));
    }
    client
        .close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .expect("close");
}

// ---- Heartbeat ----------------------------------------------------------------------------

pub async fn heartbeat_message_mode_detects_a_silent_peer(url: &str) {
    let conn = Arc::new(open(url).await);
    let hb = Heartbeat::message(
        Duration::from_millis(50),
        Duration::from_millis(300),
        Message::text("heartbeat"),
    )
    .start(&conn)
    .expect("start");
    // While the peer answers (echoes), the connection stays up through several probes.
    for _ in 0..4 {
        assert_eq!(
            conn.read().await.expect("echoed probe"),
            Message::text("heartbeat")
        );
    }
    // Then the peer goes silent for longer than the timeout.
    conn.write("!mute 5000").await.expect("write");
    let err = loop {
        match conn.read().await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(err.to_string().contains("heartbeat"), "{err}");
    assert_eq!(
        conn.write("x").await.expect_err("failed").kind(),
        ErrorKind::Timeout
    );
    hb.stop();
}
