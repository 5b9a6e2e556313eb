//! A WebSocket echo server built on `isosock::accept`: the peer the browser tests and the
//! interop tests talk to.
//!
//! Usage: `cargo run --example echo_server -- [PORT]` (default 9001; 0 picks a free port).
//! The first line on stdout is `listening on ws://127.0.0.1:PORT`.
//!
//! Every message is echoed back with its type, except these text commands:
//! - `!close <code> <reason...>`: the server closes with that code and reason;
//! - `!big <n>`: the server sends one binary message of `n` bytes (0xAB), at most 1 MiB
//!   (`BIG_MAX`; larger `n` get 1 MiB). Every reply is a slice of one shared buffer, so a
//!   client that asks and then stops reading pins no memory of its own;
//! - `!subprotocol`: the server answers with the negotiated subprotocol (or `none`);
//! - `!extensions`: the server answers with the negotiated extensions (or `none`);
//! - `!engine`: the server answers with the engine carrying the connection (`Own`,
//!   `Tungstenite`);
//! - `!url`: the server answers with the path and query the client connected to;
//! - `!count`: the server answers with how many connections it accepted for the same `id=`
//!   query parameter (for counting reconnect attempts). It remembers the 1024 (`MAX_IDS`)
//!   most recently connected ids; an id forgotten since starts again at 1;
//! - `!drop`: the server drops the connection without a close frame (an abnormal closure);
//! - `!mute <ms>`: the server stops reading (and so answering pings and echoing) for `ms`
//!   milliseconds, at most 60 s, like a peer behind a dead path.
//!
//! A connection to a path starting with `/http` instead carries HTTP/1.1 over an
//! `isosock::ByteStream` (binary messages), served by hyper: `GET` answers
//! `hello over websocket: <path>`, `POST` echoes the request body. The tests run a real
//! protocol through the byte stream this way.
//!
//! It offers the subprotocols `echo.v1` and `chat.v1`, accepts permessage-deflate with
//! context takeover and compresses every message it sends (threshold 0, so even short
//! echoes exercise the compressor; `ISOSOCK_ECHO_COMPRESSION=off` turns it off), reads
//! messages up to 16 MiB, and
//! allows any origin (it holds no secrets; pages of any port may connect). A connection that
//! does not finish its handshake within 10 s is closed. When accepting fails for lack of file
//! descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`), the server waits
//! (10 ms, doubling up to 1 s) and keeps serving; a connection that failed before it was
//! accepted is skipped.

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
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;

    use bytes::Bytes;

    use isosock::{
        accept, AcceptOptions, ByteStream, Compression, Conn, ErrorKind, Message, MessageType,
        StatusCode, Upgrade,
    };
    use tokio::net::{TcpListener, TcpStream};

    /// Largest reply to `!big`, in bytes.
    pub const BIG_MAX: usize = 1 << 20;
    /// How many `id=` values `!count` remembers; beyond it the least recently connected one is
    /// forgotten.
    pub const MAX_IDS: usize = 1024;

    /// The example's entry point.
    #[tokio::main]
    pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
        let port: u16 = match std::env::args().nth(1) {
            Some(p) => p.parse().map_err(|_| format!("not a port number: {p:?}"))?,
            None => 9001,
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on ws://{}", listener.local_addr()?);
        serve(listener).await;
        Ok(())
    }

    /// The options the echo server accepts with: permessage-deflate with context takeover
    /// unless the environment variable `ISOSOCK_ECHO_COMPRESSION` is `off` (the browser
    /// benchmark sets it, to measure the WebSocket path alone).
    pub fn options() -> AcceptOptions {
        let compression = match std::env::var("ISOSOCK_ECHO_COMPRESSION").as_deref() {
            Ok("off") => Compression::Disabled,
            _ => Compression::ContextTakeover,
        };
        AcceptOptions::new()
            .subprotocols(["echo.v1", "chat.v1"])
            .compression(compression)
            .compression_threshold(0)
            .read_limit(16 << 20)
            .insecure_skip_verify(true)
            .handshake_timeout(Duration::from_secs(10))
    }

    /// Accepts connections on `listener` forever, echoing on each.
    pub async fn serve(listener: TcpListener) {
        serve_with(listener, options()).await
    }

    /// `serve`, accepting with `base` (plus a hook that learns each connection's URL) instead
    /// of [`options`].
    pub async fn serve_with(listener: TcpListener, base: AcceptOptions) {
        let counts: Arc<Mutex<Counts>> = Arc::default();
        loop {
            let (tcp, peer) = accept_next(&listener).await;
            let counts = counts.clone();
            let base = base.clone();
            tokio::spawn(async move {
                // A hook per connection, to learn the URL it asked for.
                let url = Arc::new(Mutex::new(String::new()));
                let seen = url.clone();
                let opts = base.clone().on_request(move |req| {
                    if let Ok(mut u) = seen.lock() {
                        *u = match req.query() {
                            Some(q) => format!("{}?{q}", req.path()),
                            None => req.path().to_owned(),
                        };
                    }
                    Ok(Upgrade::new())
                });
                match accept(tcp, &opts).await {
                    Ok(conn) => {
                        let url = url.lock().map(|u| u.clone()).unwrap_or_default();
                        serve_conn(conn, url, &counts, &peer.to_string()).await;
                    }
                    Err(e) => eprintln!("{peer}: handshake: {e}"),
                }
            });
        }
    }

    /// Serves one accepted connection that asked for `url` (path and query): HTTP over it for
    /// `/http...`, the echo session otherwise. `counts` is shared by one server's
    /// connections; `peer` names the client in error messages.
    pub async fn serve_conn(conn: Conn, url: String, counts: &Mutex<Counts>, peer: &str) {
        let id = id_of(&url);
        let count = counts.lock().unwrap_or_else(|e| e.into_inner()).add(id);
        if url.starts_with("/http") {
            if let Err(e) = serve_http(conn).await {
                eprintln!("{peer}: http over websocket: {e}");
            }
            return;
        }
        let session = Session { url, count };
        if let Err(e) = echo_session(&conn, &session, counts).await {
            eprintln!("{peer}: {e}");
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

    /// Connections accepted per `id=`, for `!count`: at most [`MAX_IDS`] ids.
    #[derive(Debug, Default)]
    pub struct Counts {
        /// Per id: the connections accepted, and when the last one was (in `add` calls).
        ids: HashMap<String, (u64, u64)>,
        clock: u64,
    }

    impl Counts {
        /// Counts a connection for `id`; returns its count so far. Forgets the least recently
        /// connected id when a new one would exceed [`MAX_IDS`].
        fn add(&mut self, id: String) -> u64 {
            self.clock += 1;
            if !self.ids.contains_key(&id) && self.ids.len() >= MAX_IDS {
                let oldest = self.ids.iter().min_by_key(|(_, (_, at))| *at);
                if let Some(oldest) = oldest.map(|(k, _)| k.clone()) {
                    self.ids.remove(&oldest);
                }
            }
            let (n, at) = self.ids.entry(id).or_insert((0, 0));
            *n += 1;
            *at = self.clock;
            *n
        }

        fn get(&self, id: &str) -> Option<u64> {
            self.ids.get(id).map(|(n, _)| *n)
        }
    }

    /// The `n` bytes of 0xAB that `!big n` answers, at most [`BIG_MAX`]: a slice of one
    /// buffer allocated on first use and shared by every reply.
    fn big(n: usize) -> Bytes {
        static BIG: OnceLock<Bytes> = OnceLock::new();
        BIG.get_or_init(|| Bytes::from(vec![0xAB; BIG_MAX]))
            .slice(..n.min(BIG_MAX))
    }

    /// Serves HTTP/1.1 with hyper over `conn` as a byte stream, until the client is done.
    async fn serve_http(conn: Conn) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        use http_body_util::{BodyExt, Full};
        use hyper::body::{Bytes, Incoming};
        use hyper::{Method, Request, Response};

        async fn answer(
            req: Request<Incoming>,
        ) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
            let path = req.uri().path().to_owned();
            let body = match *req.method() {
                Method::POST => req.into_body().collect().await?.to_bytes(),
                _ => Bytes::from(format!("hello over websocket: {path}")),
            };
            Ok(Response::new(Full::new(body)))
        }

        let io = hyper_util::rt::TokioIo::new(ByteStream::new(conn, MessageType::Binary));
        hyper::server::conn::http1::Builder::new()
            .serve_connection(io, hyper::service::service_fn(answer))
            .await?;
        Ok(())
    }

    /// What the echo server knows of one connection.
    #[derive(Debug, Default)]
    pub struct Session {
        /// The path and query the client connected to.
        pub url: String,
        /// How many connections were accepted for this URL's `id=` so far, this one included.
        pub count: u64,
    }

    /// The `id=` query parameter of a request target, or `""`.
    fn id_of(url: &str) -> String {
        url.split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("id="))
            .unwrap_or("")
            .to_owned()
    }

    /// Echoes messages on `conn` until it closes, obeying the `!` commands.
    pub async fn echo(conn: &Conn) -> isosock::Result<()> {
        echo_session(conn, &Session::default(), &Mutex::default()).await
    }

    async fn echo_session(
        conn: &Conn,
        session: &Session,
        counts: &Mutex<Counts>,
    ) -> isosock::Result<()> {
        loop {
            let msg = match conn.read().await {
                Ok(m) => m,
                // A clean close by the client is the normal end of a session.
                Err(e) if e.kind() == ErrorKind::Closed => return Ok(()),
                Err(e) => return Err(e),
            };
            if let Some(cmd) = msg.as_text().and_then(|t| t.strip_prefix('!')) {
                let mut parts = cmd.splitn(3, ' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("close"), Some(code), reason) => {
                        let code = code.parse::<u16>().unwrap_or(1000);
                        return conn
                            .close(StatusCode::from(code), reason.unwrap_or(""))
                            .await;
                    }
                    (Some("big"), Some(n), _) => {
                        let n = n.parse::<usize>().unwrap_or(0);
                        conn.write(Message::binary(big(n))).await?;
                        continue;
                    }
                    (Some("subprotocol"), _, _) => {
                        conn.write(conn.subprotocol().unwrap_or("none").to_owned())
                            .await?;
                        continue;
                    }
                    (Some("extensions"), _, _) => {
                        let ext = match conn.extensions() {
                            "" => "none",
                            e => e,
                        };
                        conn.write(ext.to_owned()).await?;
                        continue;
                    }
                    (Some("engine"), _, _) => {
                        conn.write(format!("{:?}", conn.engine())).await?;
                        continue;
                    }
                    (Some("url"), _, _) => {
                        conn.write(session.url.clone()).await?;
                        continue;
                    }
                    (Some("count"), _, _) => {
                        let id = id_of(&session.url);
                        let n = counts
                            .lock()
                            .map(|c| c.get(&id).unwrap_or(session.count))
                            .unwrap_or(session.count);
                        conn.write(n.to_string()).await?;
                        continue;
                    }
                    (Some("drop"), _, _) => {
                        conn.close_now();
                        return Ok(());
                    }
                    (Some("mute"), Some(ms), _) => {
                        let ms = ms.parse::<u64>().unwrap_or(0).min(60_000);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        continue;
                    }
                    _ => {}
                }
            }
            conn.write(msg).await?;
        }
    }
}
