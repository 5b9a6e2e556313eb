//! The chat demo's server: serves `www/` over HTTP and relays chat messages over WebSocket at
//! `/ws`, with isosock's `accept_http` inside a hyper 1.x service.
//!
//! Usage: `cargo run --example chat_server --features hyper -- [PORT] [WWW_DIR]`
//! (default port 8080, 0 picks a free one; default directory `www`). The first line on stdout
//! is `chat server on http://127.0.0.1:PORT/`.
//!
//! Protocol (JSON text messages): the client sends `{"type":"hello","nick":"ann"}` once, then
//! `{"type":"say","text":"hi"}`; the server broadcasts `{"type":"msg","nick":..,"text":..}`
//! and `{"type":"system","text":..,"online":n}`. The messages and limits are typed once in
//! `examples/chat-protocol` (crate `isosock-chat-protocol`), which every client shares.
//!
//! Compression: the server accepts permessage-deflate without context takeover, which every
//! browser offers; messages of 512 bytes and more are compressed (isosock's threshold for the
//! mode), shorter ones go out as they are. One line per chat client on stdout, once it said
//! hello, says what was agreed: `client 3 (ann) joined; extensions: permessage-deflate; ...`
//! (`none` for a client that did not offer it).
//!
//! Limits: messages over 4 KiB close the connection with 1009 (isosock's read limit, which
//! counts a compressed message's inflated size); more than
//! 10 messages in a burst or 5 per second sustained closes it with 1008; a client whose 256
//! pending outgoing messages are not drained is closed at once instead of buffered without
//! bound; Ctrl-C closes every connection with 1001 (going away).
//!
//! Slow and idle clients, each settable by an environment variable (in milliseconds, or a
//! count; unset or unreadable means the default):
//! - `CHAT_HEAD_TIMEOUT_MS` (default 10000): an HTTP connection that has not sent a whole
//!   request head this long after connecting, or after its previous response, is closed;
//! - `CHAT_HELLO_TIMEOUT_MS` (default 10000): a WebSocket client that has not sent its hello
//!   this long after the upgrade is closed with 1008;
//! - `CHAT_IDLE_TIMEOUT_MS` (default 60000): a WebSocket client from which nothing arrives
//!   for about this long (no message and no pong: the server pings it every half of this) is
//!   dropped as gone;
//! - `CHAT_MAX_CONNECTIONS` (default 1000): at most this many connections (HTTP and
//!   WebSocket together) at once; one more is answered `503 Service Unavailable` and closed.
//!   Keep it below the open-file limit (`ulimit -n`).
//!
//! When accepting fails for lack of file descriptors or memory (`EMFILE`, `ENFILE`,
//! `ENOBUFS`, `ENOMEM`), the server waits (10 ms, doubling up to 1 s) and keeps serving; a
//! connection that failed before it was accepted is skipped.

// Native only: `cargo test --target wasm32-unknown-unknown` builds the examples too.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)] // unused where the tests include this file as a module
fn main() -> Result<(), Box<dyn std::error::Error>> {
    native::run()
}

#[cfg(not(target_arch = "wasm32"))]
#[allow(unused_imports)]
pub use native::*;

#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)] // the native tests include this file as a module and use parts of it
mod native {
    use std::collections::HashMap;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response, StatusCode as HttpStatus};
    use hyper_util::rt::{TokioIo, TokioTimer};
    use isosock::{accept_http, AcceptOptions, Compression, Conn, Heartbeat, Message, StatusCode};
    use isosock_chat_protocol::{self as protocol, ClientMsg, ServerMsg};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

    /// Largest chat message accepted, in bytes.
    const READ_LIMIT: usize = protocol::MAX_MESSAGE_BYTES;
    /// Outgoing messages queued per client before it counts as too slow.
    const QUEUE: usize = 256;
    /// Rate limit: a burst of 10, refilled at 5 per second.
    const BURST: f64 = protocol::RATE_BURST;
    const PER_SECOND: f64 = protocol::RATE_PER_SECOND;

    /// The answer to a connection beyond [`Limits::max_connections`].
    const BUSY: &[u8] =
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

    /// How long clients may take and how many may connect; see the top of this file.
    #[derive(Debug, Clone)]
    pub struct Limits {
        /// Time for a whole HTTP request head, from connecting or from the previous response.
        pub head_timeout: Duration,
        /// Time for a WebSocket client's hello, from the upgrade.
        pub hello_timeout: Duration,
        /// Time after which a WebSocket client that sends nothing (no pong either) is dropped.
        pub idle_timeout: Duration,
        /// Connections at once, HTTP and WebSocket together.
        pub max_connections: usize,
    }

    impl Default for Limits {
        fn default() -> Self {
            Limits {
                head_timeout: Duration::from_secs(10),
                hello_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                max_connections: 1000,
            }
        }
    }

    impl Limits {
        /// The defaults, overridden by the `CHAT_*` environment variables that are set.
        pub fn from_env() -> Self {
            fn var(name: &str) -> Option<u64> {
                let v = std::env::var(name).ok()?;
                match v.parse() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        eprintln!("ignoring {name}={v:?}: not a number above 0");
                        None
                    }
                }
            }
            let ms = |name, default| var(name).map_or(default, Duration::from_millis);
            let d = Limits::default();
            Limits {
                head_timeout: ms("CHAT_HEAD_TIMEOUT_MS", d.head_timeout),
                hello_timeout: ms("CHAT_HELLO_TIMEOUT_MS", d.hello_timeout),
                idle_timeout: ms("CHAT_IDLE_TIMEOUT_MS", d.idle_timeout),
                max_connections: var("CHAT_MAX_CONNECTIONS")
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(d.max_connections),
            }
        }
    }

    /// Everyone in the chat.
    #[derive(Debug, Default)]
    pub struct Room {
        next_id: AtomicU64,
        clients: Mutex<HashMap<u64, Client>>,
    }

    #[derive(Debug)]
    struct Client {
        tx: mpsc::Sender<Arc<str>>,
        conn: Arc<Conn>,
    }

    impl Room {
        fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Client>> {
            self.clients.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Sends `msg` to everyone; a client whose queue is full is disconnected, not waited for.
        fn broadcast(&self, msg: &ServerMsg) {
            let text: Arc<str> = match serde_json::to_string(msg) {
                Ok(text) => text.into(),
                // Only `ServerMsg::Unknown` cannot be encoded, and the server never makes one.
                Err(e) => {
                    eprintln!("cannot encode {msg:?}: {e}");
                    return;
                }
            };
            let mut slow = Vec::new();
            let mut clients = self.clients();
            for (id, c) in clients.iter() {
                if c.tx.try_send(text.clone()).is_err() {
                    slow.push(*id);
                }
            }
            for id in slow {
                if let Some(c) = clients.remove(&id) {
                    eprintln!("client {id} is too slow; closing it");
                    c.conn.close_now();
                }
            }
        }

        /// How many clients are in the room, for `ServerMsg::System`.
        fn online_count(&self) -> u32 {
            u32::try_from(self.clients().len()).unwrap_or(u32::MAX)
        }
    }

    /// The example's entry point.
    #[tokio::main]
    pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
        let mut args = std::env::args().skip(1);
        let port: u16 = match args.next() {
            Some(p) => p.parse().map_err(|_| format!("not a port number: {p:?}"))?,
            None => 8080,
        };
        let www: PathBuf = args.next().unwrap_or_else(|| "www".to_owned()).into();
        if !www.join("index.html").exists() {
            return Err(format!("{} has no index.html", www.display()).into());
        }
        let limits = Limits::from_env();
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("chat server on http://{}/", listener.local_addr()?);
        let room = Arc::new(Room::default());
        tokio::select! {
            _ = serve(listener, www, limits, room.clone()) => {}
            _ = tokio::signal::ctrl_c() => {
                let conns: Vec<_> = room.clients().values().map(|c| c.conn.clone()).collect();
                println!("shutting down: closing {} connections with 1001", conns.len());
                let closes = conns.iter().map(|c| c.close(StatusCode::GOING_AWAY, "server shutting down"));
                let _ = tokio::time::timeout(Duration::from_secs(5), futures_util::future::join_all(closes)).await;
            }
        }
        Ok(())
    }

    /// Serves `www` and the chat room on `listener` forever, within `limits`.
    pub async fn serve(listener: TcpListener, www: PathBuf, limits: Limits, room: Arc<Room>) {
        let www = Arc::new(www);
        let limits = Arc::new(limits);
        let slots = Arc::new(Semaphore::new(
            limits.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        loop {
            let (tcp, peer) = accept_next(&listener).await;
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // A fresh socket's send buffer is empty: this write does not wait, or fails.
                let _ = tcp.try_write(BUSY);
                eprintln!(
                    "{peer}: over {} connections; refused",
                    limits.max_connections
                );
                continue;
            };
            // Held by the HTTP connection and, after an upgrade, by its chat session.
            let slot = Arc::new(slot);
            let (room, www, limits) = (room.clone(), www.clone(), limits.clone());
            tokio::spawn(async move {
                let head_timeout = limits.head_timeout;
                let service = service_fn(move |req| {
                    handle(req, room.clone(), www.clone(), limits.clone(), slot.clone())
                });
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(head_timeout)
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    }

    /// Waits for the next connection on `listener`. A connection that failed before it was
    /// accepted is skipped; any other error (out of file descriptors or memory) is waited out,
    /// 10 ms doubling up to 1 s, so that the server neither exits nor spins a core at its limit.
    async fn accept_next(listener: &TcpListener) -> (TcpStream, SocketAddr) {
        use std::io::ErrorKind::{
            ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted,
        };
        let mut delay = Duration::from_millis(10);
        loop {
            match listener.accept().await {
                Ok(accepted) => return accepted,
                Err(e)
                    if matches!(
                        e.kind(),
                        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
                    ) => {}
                Err(e) => {
                    eprintln!("accept: {e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn handle(
        mut req: Request<Incoming>,
        room: Arc<Room>,
        www: Arc<PathBuf>,
        limits: Arc<Limits>,
        slot: Arc<OwnedSemaphorePermit>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        if req.uri().path() == protocol::WS_PATH {
            // Pages are served from this same origin, so the default same-origin check applies.
            // Compression without context takeover: a browser-facing server holds many idle
            // connections, and in this mode a connection holds DEFLATE state only while one of
            // its messages is being compressed or inflated. With context takeover each one
            // would keep about 340 KiB for its lifetime (340 MB at the default 1000
            // connections), to compress short chat lines better.
            let opts = AcceptOptions::new()
                .read_limit(READ_LIMIT)
                .compression(Compression::NoContextTakeover);
            let resp = match accept_http(&mut req, &opts) {
                Ok((resp, upgrading)) => {
                    tokio::spawn(async move {
                        if let Ok(conn) = upgrading.await {
                            session(Arc::new(conn), room, &limits).await;
                        }
                        drop(slot);
                    });
                    resp
                }
                Err(rejection) => rejection.into_response(),
            };
            return Ok(resp.map(|b| Full::new(Bytes::from(b))));
        }
        Ok(static_file(&www, req.uri().path()).await)
    }

    async fn static_file(www: &Path, path: &str) -> Response<Full<Bytes>> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "index.html" } else { rel };
        let reply = |status: HttpStatus, ctype: &str, body: Bytes| {
            let mut r = Response::new(Full::new(body));
            *r.status_mut() = status;
            if let Ok(v) = ctype.parse() {
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            r
        };
        if rel
            .split('/')
            .any(|seg| seg == ".." || seg.starts_with('.'))
        {
            return reply(
                HttpStatus::NOT_FOUND,
                "text/plain",
                Bytes::from("not found\n"),
            );
        }
        let ctype = match Path::new(rel).extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js" | "mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("wasm") => "application/wasm",
            Some("png") => "image/png",
            Some("json") => "application/json",
            _ => "application/octet-stream",
        };
        match tokio::fs::read(www.join(rel)).await {
            Ok(body) => reply(HttpStatus::OK, ctype, Bytes::from(body)),
            Err(_) => reply(
                HttpStatus::NOT_FOUND,
                "text/plain",
                Bytes::from("not found\n"),
            ),
        }
    }

    /// One chat client, from its hello to its close.
    async fn session(conn: Arc<Conn>, room: Arc<Room>, limits: &Limits) {
        // The first message must be the hello with a nickname, in time.
        let nick = match tokio::time::timeout(limits.hello_timeout, conn.read()).await {
            Ok(Ok(Message::Text(t))) => match serde_json::from_str(&t) {
                Ok(ClientMsg::Hello { nick }) => protocol::clean_nick(&nick),
                _ => None,
            },
            _ => None,
        };
        let Some(nick) = nick else {
            let _ = conn
                .close(
                    StatusCode::POLICY_VIOLATION,
                    "expected a hello with a nickname",
                )
                .await;
            return;
        };
        // From now on a client that goes silent, not even answering pings, is dropped.
        let half = limits.idle_timeout / 2;
        if let Err(e) = Heartbeat::ping(half, half).start(&conn) {
            eprintln!("no idle timeout for {nick}: {e}");
        }
        let id = room.next_id.fetch_add(1, Ordering::Relaxed);
        let extensions = match conn.extensions() {
            "" => "none",
            ext => ext,
        };
        println!("client {id} ({nick}) joined; extensions: {extensions}");
        let (tx, mut rx) = mpsc::channel::<Arc<str>>(QUEUE);
        room.clients().insert(
            id,
            Client {
                tx,
                conn: conn.clone(),
            },
        );
        room.broadcast(&ServerMsg::System {
            text: format!("{nick} joined"),
            online: room.online_count(),
        });

        let writer = {
            let conn = conn.clone();
            tokio::spawn(async move {
                while let Some(text) = rx.recv().await {
                    if conn.write(Message::text(&*text)).await.is_err() {
                        break;
                    }
                }
            })
        };

        let mut tokens = BURST;
        let mut last = Instant::now();
        loop {
            let msg = match conn.read().await {
                Ok(Message::Text(t)) => t,
                Ok(Message::Binary(_)) => {
                    let _ = conn
                        .close(StatusCode::UNSUPPORTED_DATA, "text messages only")
                        .await;
                    break;
                }
                Err(_) => break,
            };
            let now = Instant::now();
            tokens = (tokens + now.duration_since(last).as_secs_f64() * PER_SECOND).min(BURST);
            last = now;
            if tokens < 1.0 {
                let _ = conn
                    .close(StatusCode::POLICY_VIOLATION, "rate limit exceeded")
                    .await;
                break;
            }
            tokens -= 1.0;
            // Anything but a well-formed `say` (a second hello, an unknown type) is ignored.
            if let Ok(ClientMsg::Say { text }) = serde_json::from_str(&msg) {
                room.broadcast(&ServerMsg::Msg {
                    nick: nick.clone(),
                    text: protocol::clip_text(&text),
                });
            }
        }
        room.clients().remove(&id);
        writer.abort();
        room.broadcast(&ServerMsg::System {
            text: format!("{nick} left"),
            online: room.online_count(),
        });
    }
}
