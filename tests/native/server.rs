//! The callback server (`isosock::server`): the handler's calls in order with what they see,
//! rejection, concurrent writers, limits (connections, message rate), clean and abnormal ends,
//! graceful shutdown of many sessions, panicking handlers; and the ping heartbeat against a
//! silent peer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use isosock::server::{CloseInfo, Handler, Server, ServerHandle, ServerOptions, Session};
use isosock::{
    accept, dial, AcceptOptions, DialOptions, ErrorKind, Heartbeat, Message, Reject, StatusCode,
    Upgrade, UpgradeRequest,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::util::bounded;

/// What the test handler saw, in order.
#[derive(Debug)]
enum Event {
    Connect {
        path: String,
        query: Option<String>,
        offered: Vec<String>,
    },
    Open {
        path: String,
        subprotocol: Option<String>,
    },
    Message(Message),
    Close(CloseInfo),
}

struct Recorder {
    events: mpsc::UnboundedSender<Event>,
}

impl Handler for Recorder {
    fn on_connect(&self, req: &UpgradeRequest<'_>) -> Result<Upgrade, Reject> {
        let _ = self.events.send(Event::Connect {
            path: req.path().to_owned(),
            query: req.query().map(str::to_owned),
            offered: req.subprotocols().into_iter().map(str::to_owned).collect(),
        });
        if req.query() == Some("token=bad") {
            return Err(Reject::new(401, "bad token").header("WWW-Authenticate", "Token"));
        }
        if req.subprotocols().contains(&"chat.v2") {
            return Ok(Upgrade::new().subprotocol("chat.v2"));
        }
        Ok(Upgrade::new())
    }

    async fn on_open(&self, session: &Session) {
        let _ = self.events.send(Event::Open {
            path: session.path().to_owned(),
            subprotocol: session.subprotocol().map(str::to_owned),
        });
    }

    async fn on_message(&self, session: &Session, msg: Message) {
        let _ = self.events.send(Event::Message(msg.clone()));
        if msg.as_text() == Some("fan out") {
            // Ten tasks write concurrently through clones of the session.
            let tasks: Vec<_> = (0..10)
                .map(|i| {
                    let s = session.clone();
                    tokio::spawn(async move { s.write(format!("part {i}")).await })
                })
                .collect();
            for t in tasks {
                t.await.expect("task").expect("write");
            }
            return;
        }
        let _ = session.write(msg).await;
    }

    async fn on_close(&self, _session: &Session, close: CloseInfo) {
        let _ = self.events.send(Event::Close(close));
    }
}

async fn start(options: ServerOptions) -> (String, ServerHandle, mpsc::UnboundedReceiver<Event>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    let server = Server::new(Recorder { events: tx }, options);
    let handle = server.handle();
    tokio::spawn(server.serve(listener));
    (format!("ws://{addr}"), handle, rx)
}

fn permissive() -> ServerOptions {
    ServerOptions::new().accept_options(AcceptOptions::new().insecure_skip_verify(true))
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the server is running")
}

#[tokio::test]
async fn server_calls_the_handler_in_order_with_what_it_sees() {
    bounded(async {
        let (url, _handle, mut events) = start(permissive()).await;
        let (conn, resp) = dial(
            &format!("{url}/room/7?user=ann"),
            &DialOptions::new().subprotocols(["chat.v1", "chat.v2"]),
        )
        .await
        .expect("dial");
        assert_eq!(resp.subprotocol(), Some("chat.v2"));
        match next(&mut events).await {
            Event::Connect {
                path,
                query,
                offered,
            } => {
                assert_eq!(path, "/room/7");
                assert_eq!(query.as_deref(), Some("user=ann"));
                assert_eq!(offered, ["chat.v1", "chat.v2"]);
            }
            other => panic!("{other:?}"),
        }
        match next(&mut events).await {
            Event::Open { path, subprotocol } => {
                assert_eq!(path, "/room/7");
                assert_eq!(subprotocol.as_deref(), Some("chat.v2"));
            }
            other => panic!("{other:?}"),
        }
        conn.write("hello").await.expect("write");
        assert!(
            matches!(next(&mut events).await, Event::Message(m) if m == Message::text("hello"))
        );
        assert_eq!(conn.read().await.expect("echo"), Message::text("hello"));

        conn.write("fan out").await.expect("write");
        let _ = next(&mut events).await;
        let mut parts: Vec<String> = Vec::new();
        for _ in 0..10 {
            parts.push(
                conn.read()
                    .await
                    .expect("part")
                    .as_text()
                    .expect("text")
                    .to_owned(),
            );
        }
        parts.sort();
        let mut want: Vec<String> = (0..10).map(|i| format!("part {i}")).collect();
        want.sort();
        assert_eq!(parts, want, "whole messages from concurrent writers");

        conn.close(StatusCode::from(4000), "bye")
            .await
            .expect("close");
        match next(&mut events).await {
            Event::Close(info) => {
                assert!(info.was_clean());
                assert_eq!(info.code(), Some(StatusCode::from(4000)));
                assert_eq!(info.reason(), "bye");
                assert!(info.error().is_none(), "{info:?}");
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn server_rejection_reaches_the_client_as_http() {
    bounded(async {
        let (url, handle, _events) = start(permissive()).await;
        let err = dial(&format!("{url}/?token=bad"), &DialOptions::new())
            .await
            .expect_err("rejected");
        assert_eq!(err.kind(), ErrorKind::Handshake);
        assert_eq!(err.http_status(), Some(401));
        assert_eq!(err.http_body(), Some(&b"bad token\n"[..]));
        assert_eq!(handle.connections(), 0);
    })
    .await;
}

#[tokio::test]
async fn server_abnormal_end_is_not_clean() {
    bounded(async {
        let (url, _handle, mut events) = start(permissive()).await;
        let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
        let _ = next(&mut events).await; // connect
        let _ = next(&mut events).await; // open
        conn.close_now();
        match next(&mut events).await {
            Event::Close(info) => {
                assert!(!info.was_clean());
                assert_eq!(info.code(), None);
                let err = info.error().expect("an error");
                assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err:?}");
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

/// `ServerOptions::engine` puts every session on that engine, and a later `accept_options`
/// replaces it with its own.
#[cfg(feature = "tungstenite")]
#[tokio::test]
async fn server_runs_its_sessions_on_the_engine_chosen() {
    use isosock::Engine;
    bounded(async {
        for (options, want) in [
            (
                permissive().engine(Engine::Tungstenite),
                Engine::Tungstenite,
            ),
            (
                ServerOptions::new()
                    .engine(Engine::Tungstenite)
                    .accept_options(AcceptOptions::new().insecure_skip_verify(true)),
                Engine::Own,
            ),
        ] {
            let (url, handle, mut events) = start(options).await;
            let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
            conn.write("hi").await.expect("write");
            assert_eq!(conn.read().await.expect("echo"), Message::text("hi"));
            assert!(matches!(next(&mut events).await, Event::Connect { .. }));
            assert!(matches!(next(&mut events).await, Event::Open { .. }));
            let sessions = handle.sessions();
            assert_eq!(sessions.len(), 1);
            assert_eq!(sessions[0].conn().engine(), want);
        }
    })
    .await;
}

#[tokio::test]
async fn server_refuses_connections_over_the_limit_with_503() {
    bounded(async {
        let (url, handle, _events) = start(permissive().max_connections(2)).await;
        let a = dial(&url, &DialOptions::new()).await.expect("first");
        let b = dial(&url, &DialOptions::new()).await.expect("second");
        // Let the server register both sessions.
        while handle.connections() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let err = dial(&url, &DialOptions::new()).await.expect_err("third");
        assert_eq!(err.http_status(), Some(503), "{err:?}");
        drop((a, b));
    })
    .await;
}

#[tokio::test]
async fn server_closes_a_client_over_the_message_rate_with_1008() {
    bounded(async {
        let (url, _handle, _events) = start(permissive().message_rate(1.0, 5)).await;
        let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
        for i in 0..20 {
            if conn.write(format!("m{i}")).await.is_err() {
                break;
            }
        }
        let err = loop {
            match conn.read().await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(
            isosock::close_status(&err),
            Some(StatusCode::POLICY_VIOLATION),
            "{err:?}"
        );
        assert_eq!(
            err.close_frame().map(|f| f.reason.as_str()),
            Some("rate limit exceeded")
        );
    })
    .await;
}

#[tokio::test]
async fn server_shutdown_closes_every_session_with_going_away() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let (tx, _rx) = mpsc::unbounded_channel();
        let server = Server::new(Recorder { events: tx }, permissive());
        let handle = server.handle();
        let serving = tokio::spawn(server.serve(listener));
        const N: usize = 200;
        let mut conns = Vec::new();
        for _ in 0..N {
            conns.push(dial(&url, &DialOptions::new()).await.expect("dial").0);
        }
        while handle.connections() < N {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let readers: Vec<_> = conns
            .into_iter()
            .map(|c| tokio::spawn(async move { c.read().await }))
            .collect();
        handle.shutdown(StatusCode::GOING_AWAY, "restarting").await;
        for r in readers {
            let err = r.await.expect("task").expect_err("closed");
            assert_eq!(
                isosock::close_status(&err),
                Some(StatusCode::GOING_AWAY),
                "{err:?}"
            );
        }
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("serve returns after shutdown")
            .expect("task");
        assert_eq!(handle.connections(), 0);
        assert!(
            dial(&url, &DialOptions::new()).await.is_err(),
            "no longer accepting"
        );
    })
    .await;
}

/// Where a [`Panicker`] panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PanicIn {
    Connect,
    Open,
    Message,
    Close,
}

/// A handler that panics in one method (and otherwise echoes); reports each `on_close`.
struct Panicker {
    at: PanicIn,
    closes: mpsc::UnboundedSender<CloseInfo>,
}

impl Handler for Panicker {
    fn on_connect(&self, _req: &UpgradeRequest<'_>) -> Result<Upgrade, Reject> {
        assert_ne!(
            self.at,
            PanicIn::Connect,
            "test handler: panic in on_connect"
        );
        Ok(Upgrade::new())
    }

    async fn on_open(&self, _session: &Session) {
        assert_ne!(self.at, PanicIn::Open, "test handler: panic in on_open");
    }

    async fn on_message(&self, session: &Session, msg: Message) {
        assert_ne!(
            self.at,
            PanicIn::Message,
            "test handler: panic in on_message"
        );
        let _ = session.write(msg).await;
    }

    async fn on_close(&self, _session: &Session, close: CloseInfo) {
        let _ = self.closes.send(close);
        assert_ne!(self.at, PanicIn::Close, "test handler: panic in on_close");
    }
}

/// A [`Panicker`] server allowing one connection at a time.
async fn start_panicker(at: PanicIn) -> (String, ServerHandle, mpsc::UnboundedReceiver<CloseInfo>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (closes, rx) = mpsc::unbounded_channel();
    let server = Server::new(Panicker { at, closes }, permissive().max_connections(1));
    let handle = server.handle();
    tokio::spawn(server.serve(listener));
    (format!("ws://{addr}"), handle, rx)
}

/// Waits until the server holds no session (the last one's slot is free again).
async fn until_no_sessions(handle: &ServerHandle) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while handle.connections() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the ended connection's session was never removed: its slot leaked");
}

/// The next read of `conn`, which must fail within 10 s.
async fn read_end(conn: &isosock::Conn) -> isosock::Error {
    tokio::time::timeout(Duration::from_secs(10), conn.read())
        .await
        .expect("the server neither closed nor answered")
        .expect_err("the server closes the connection")
}

/// Regression: a connection task that panicked (here in `on_message`) used to leave its
/// session in the server's map, with its socket open, so with `max_connections(1)` every
/// later client got 503 until restart. Now the panic closes the connection with 1011
/// (internal error), `on_close` runs with the panic as its error, and the slot is free.
#[tokio::test]
async fn panicking_handler_frees_its_connection_slot() {
    bounded(async {
        let (url, handle, mut closes) = start_panicker(PanicIn::Message).await;
        for client in ["first", "next"] {
            let (conn, _) = dial(&url, &DialOptions::new())
                .await
                .unwrap_or_else(|e| panic!("the {client} client was not accepted: {e:?}"));
            conn.write("boom").await.expect("write");
            let err = read_end(&conn).await;
            assert_eq!(
                isosock::close_status(&err),
                Some(StatusCode::INTERNAL_ERROR),
                "{client}: {err:?}"
            );
            let info = tokio::time::timeout(Duration::from_secs(10), closes.recv())
                .await
                .expect("on_close ran")
                .expect("server running");
            let why = info.error().expect("the panic is the error").to_string();
            assert!(why.contains("Handler::on_message panicked"), "{why}");
            assert!(why.contains("test handler: panic in on_message"), "{why}");
            until_no_sessions(&handle).await;
        }
    })
    .await;
}

/// A panic in each other handler method also ends only its own connection and frees the one
/// slot, so a second client gets the same treatment as the first: `on_connect` is answered
/// with 500 (no session existed), `on_open` closes with 1011, and a panicking `on_close` (after
/// a clean close by the client) still frees the slot.
#[tokio::test]
async fn panic_in_any_handler_method_ends_only_its_connection() {
    bounded(async {
        for at in [PanicIn::Connect, PanicIn::Open, PanicIn::Close] {
            let (url, handle, _closes) = start_panicker(at).await;
            for client in ["first", "second"] {
                let dialed = dial(&url, &DialOptions::new()).await;
                match at {
                    PanicIn::Connect => {
                        let err = dialed.expect_err("refused");
                        assert_eq!(err.http_status(), Some(500), "{at:?} {client}: {err:?}");
                    }
                    PanicIn::Open => {
                        let (conn, _) = dialed.unwrap_or_else(|e| panic!("{at:?} {client}: {e:?}"));
                        let err = read_end(&conn).await;
                        assert_eq!(
                            isosock::close_status(&err),
                            Some(StatusCode::INTERNAL_ERROR),
                            "{at:?} {client}: {err:?}"
                        );
                    }
                    PanicIn::Close | PanicIn::Message => {
                        let (conn, _) = dialed.unwrap_or_else(|e| panic!("{at:?} {client}: {e:?}"));
                        conn.write("hi").await.expect("write");
                        assert_eq!(conn.read().await.expect("echo"), Message::text("hi"));
                        conn.close(StatusCode::NORMAL_CLOSURE, "bye")
                            .await
                            .expect("close");
                    }
                }
                until_no_sessions(&handle).await;
            }
        }
    })
    .await;
}

/// The ping heartbeat notices a peer that completed the handshake and then went silent (it
/// never reads, so it never answers pings): reads fail with Timeout instead of hanging.
#[tokio::test]
async fn ping_heartbeat_detects_a_half_open_connection() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let silent = Arc::new(Mutex::new(None));
        let keep = silent.clone();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let conn = accept(tcp, &AcceptOptions::new().insecure_skip_verify(true))
                .await
                .expect("upgrade");
            // Hold the connection without ever reading it.
            *keep.lock().expect("lock") = Some(conn);
        });
        let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
        let conn = Arc::new(conn);
        Heartbeat::ping(Duration::from_millis(50), Duration::from_millis(200))
            .start(&conn)
            .expect("start");
        let err = conn
            .read()
            .await
            .expect_err("the heartbeat fails the connection");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert!(err.to_string().contains("heartbeat"), "{err}");
    })
    .await;
}

/// Against a peer that reads (and so answers pings), the ping heartbeat keeps quiet.
#[tokio::test]
async fn ping_heartbeat_keeps_a_live_connection() {
    bounded(async {
        let url = crate::util::echo_url().await;
        let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
        let conn = Arc::new(conn);
        let hb = Heartbeat::ping(Duration::from_millis(20), Duration::from_millis(500))
            .start(&conn)
            .expect("start");
        // Ten probes' worth of time, reading all along (pongs are seen while reading).
        let reading = tokio::time::timeout(Duration::from_millis(400), conn.read()).await;
        assert!(reading.is_err(), "nothing but pongs arrived: {reading:?}");
        conn.write("still up").await.expect("write");
        assert_eq!(conn.read().await.expect("read"), Message::text("still up"));
        hb.stop();
    })
    .await;
}
