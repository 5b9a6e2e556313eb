//! A callback-style server over [`accept`](crate::accept) (native only), in the manner of
//! eyesore/ws and Jochen Voss's handler: the application implements a [`Handler`]; the
//! [`Server`] runs the accept loop, one task per connection, the limits, and shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http::HeaderMap;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::accept::{accept, AcceptOptions, Reject, Upgrade, UpgradeRequest};
use crate::close::StatusCode;
use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;

/// The application side of a [`Server`]: one method per moment of a connection's life.
///
/// Every method but [`on_message`](Handler::on_message) has a default that does nothing (or
/// accepts). The async methods of one connection run one after another on its task, so
/// `on_message` is not called again until the previous call returned: that is the
/// connection's backpressure. Spawn a task to do slow work concurrently; [`Session`] is
/// cheap to clone and can write from anywhere.
///
/// A panic in a method ends that one connection, never the server, and always frees its
/// slot (it no longer counts toward [`ServerOptions::max_connections`] and leaves
/// [`ServerHandle::sessions`]):
///
/// - in [`on_connect`](Handler::on_connect): the client is refused with `500 Internal Server
///   Error`; no session existed, so no other method runs;
/// - in [`on_open`](Handler::on_open) or [`on_message`](Handler::on_message) (or anywhere
///   below them): the connection is closed with 1011 (internal error) "internal server
///   error", then [`on_close`](Handler::on_close) runs with a [`CloseInfo::error`] naming the
///   method and the panic's message, so the application can forget the session;
/// - in `on_close`: nothing more runs; the connection was already closed.
///
/// The panic's message still goes to the panic hook (stderr by default) as usual. A process
/// built with `panic = "abort"` aborts instead, as for any panic.
///
/// # Examples
///
/// ```no_run
/// use isosock::server::{CloseInfo, Handler, Server, ServerOptions, Session};
/// use isosock::{Message, Reject, Upgrade, UpgradeRequest};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     fn on_connect(&self, req: &UpgradeRequest<'_>) -> Result<Upgrade, Reject> {
///         match req.path() {
///             "/echo" => Ok(Upgrade::new()),
///             _ => Err(Reject::new(404, "no such endpoint")),
///         }
///     }
///
///     async fn on_message(&self, session: &Session, msg: Message) {
///         let _ = session.write(msg).await;
///     }
///
///     async fn on_close(&self, session: &Session, close: CloseInfo) {
///         println!("{} left: {close:?}", session.remote_addr());
///     }
/// }
///
/// # async fn demo() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// Server::new(Echo, ServerOptions::new()).serve(listener).await;
/// # Ok(()) }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Sees the upgrade request (path, query, headers, origin, offered subprotocols) after
    /// the protocol and origin checks: `Ok` upgrades (optionally picking the subprotocol or
    /// adding response headers), `Err` answers with the rejection's status and reason.
    /// Default: accept.
    fn on_connect(&self, request: &UpgradeRequest<'_>) -> std::result::Result<Upgrade, Reject> {
        let _ = request;
        Ok(Upgrade::new())
    }

    /// Called once the connection is open, before any message.
    fn on_open(&self, session: &Session) -> impl Future<Output = ()> + Send {
        let _ = session;
        async {}
    }

    /// Called for each message received.
    fn on_message(&self, session: &Session, msg: Message) -> impl Future<Output = ()> + Send;

    /// Called once when the connection has ended, however it ended.
    fn on_close(&self, session: &Session, close: CloseInfo) -> impl Future<Output = ()> + Send {
        let _ = (session, close);
        async {}
    }
}

/// How a connection ended, for [`Handler::on_close`].
#[derive(Debug, Clone)]
pub struct CloseInfo {
    clean: bool,
    code: Option<StatusCode>,
    reason: String,
    error: Option<Error>,
}

impl CloseInfo {
    /// Whether the connection ended with a close handshake (the peer's close frame arrived).
    pub fn was_clean(&self) -> bool {
        self.clean
    }

    /// The close code the peer sent, if it sent a close frame.
    pub fn code(&self) -> Option<StatusCode> {
        self.code
    }

    /// The close reason the peer sent (empty without a close frame).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Why the connection ended, unless it was a close handshake started by the peer: the
    /// transport failed, a limit was exceeded, the server closed it, a handler method
    /// panicked (kind [`ErrorKind::Closed`], the message naming the method and the panic),
    /// ...
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// After a panic in a handler method: whatever close frame the peer sent, and the panic
    /// as the error (kind [`ErrorKind::Closed`]: the server closed the connection).
    fn from_panic(conn: &Conn, why: String) -> Self {
        let frame = conn.peer_close_frame();
        CloseInfo {
            clean: frame.is_some(),
            code: frame.as_ref().map(|f| f.code),
            reason: frame.map(|f| f.reason).unwrap_or_default(),
            error: Some(Error::new(ErrorKind::Closed, why)),
        }
    }

    fn from_end(conn: &Conn, err: Error) -> Self {
        let frame = conn.peer_close_frame();
        let peer_started = err.kind() == ErrorKind::Closed && !conn.closed_locally();
        CloseInfo {
            clean: frame.is_some(),
            code: frame.as_ref().map(|f| f.code),
            reason: frame.map(|f| f.reason).unwrap_or_default(),
            error: (!peer_started).then_some(err),
        }
    }
}

/// One connection of a [`Server`]: what the request asked for, and a handle to write and
/// close. Clones share the connection, so any task may write (writes are serialized, whole
/// messages never interleave).
#[derive(Debug, Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

#[derive(Debug)]
struct SessionInner {
    id: u64,
    conn: Arc<Conn>,
    remote: SocketAddr,
    request: RequestInfo,
}

#[derive(Clone, Default)]
struct RequestInfo {
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

impl std::fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestInfo")
            .field("path", &self.path)
            .field("query", &self.query.as_ref().map(|_| "…"))
            .field("headers", &crate::redact::Headers::map(&self.headers))
            .finish()
    }
}

impl Session {
    /// A number unique among this server's sessions.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The client's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote
    }

    /// The path of the upgrade request.
    pub fn path(&self) -> &str {
        &self.inner.request.path
    }

    /// The query string of the upgrade request, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.inner.request.query.as_deref()
    }

    /// The headers of the upgrade request.
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.request.headers
    }

    /// The negotiated subprotocol.
    pub fn subprotocol(&self) -> Option<&str> {
        self.inner.conn.subprotocol()
    }

    /// The connection, for everything else (ping, `set_read_limit`, a `Writer`). Reading it
    /// directly would take messages from [`Handler::on_message`].
    pub fn conn(&self) -> &Arc<Conn> {
        &self.inner.conn
    }

    /// Sends a message; see [`Conn::write`].
    ///
    /// # Errors
    ///
    /// As [`Conn::write`].
    ///
    /// # Cancel safety
    ///
    /// As [`Conn::write`].
    pub async fn write(&self, msg: impl Into<Message>) -> Result<()> {
        self.inner.conn.write(msg).await
    }

    /// Closes the connection with a close handshake; see [`Conn::close`].
    /// [`Handler::on_close`] follows.
    ///
    /// # Errors
    ///
    /// As [`Conn::close`].
    ///
    /// # Cancel safety
    ///
    /// As [`Conn::close`].
    pub async fn close(&self, code: StatusCode, reason: &str) -> Result<()> {
        self.inner.conn.close(code, reason).await
    }

    /// Closes the connection at once; see [`Conn::close_now`].
    pub fn close_now(&self) {
        self.inner.conn.close_now();
    }
}

/// The default largest number of open connections of a [`Server`]: 10,000.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Options for a [`Server`].
///
/// Defaults: [`AcceptOptions::new()`] (32 KiB read limit, same-origin only, 10 s handshake
/// timeout), at most 10,000 open connections (more are refused with `503 Service
/// Unavailable`), no message rate limit.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    accept: AcceptOptions,
    max_connections: usize,
    rate: Option<(f64, f64)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            accept: AcceptOptions::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            rate: None,
        }
    }
}

impl ServerOptions {
    /// Creates options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the per-connection upgrade options: subprotocols, origin policy, read limit,
    /// timeouts, engine. Their `on_request` hook is replaced by [`Handler::on_connect`].
    pub fn accept_options(mut self, options: AcceptOptions) -> Self {
        self.accept = options;
        self
    }

    /// Sets the protocol engine of every connection, as [`AcceptOptions::engine`] does on
    /// the upgrade options (a later [`accept_options`](Self::accept_options) replaces it with
    /// its own). Default: [`Engine::Own`](crate::Engine::Own).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tungstenite")]
    /// let opts = isosock::server::ServerOptions::new().engine(isosock::Engine::Tungstenite);
    /// ```
    pub fn engine(mut self, engine: crate::Engine) -> Self {
        self.accept = self.accept.engine(engine);
        self
    }

    /// Sets the largest number of open connections; upgrade requests beyond it are refused
    /// with `503 Service Unavailable` and `Retry-After: 1`. Default: 10,000.
    ///
    /// `0` refuses every upgrade; `usize::MAX` means no limit (file descriptors and memory
    /// run out first).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Limits each connection to `per_second` messages on average, with bursts of `burst`
    /// (a token bucket); a connection over it is closed with 1008 (policy violation)
    /// "rate limit exceeded". Default: no limit.
    ///
    /// Any `f64` is taken, failing closed: `0.0`, a negative rate, and NaN (a rate computed
    /// from a 0/0, say) all mean 0, so a connection may send `burst` messages in its whole life
    /// and is closed at the next. `f64::INFINITY` means no limit. A `burst` of `0` means 1.
    pub fn message_rate(mut self, per_second: f64, burst: u32) -> Self {
        self.rate = if per_second == f64::INFINITY {
            None
        } else {
            // `f64::max` returns the other operand for NaN: NaN becomes 0 here.
            Some((per_second.max(0.0), f64::from(burst.max(1))))
        };
        self
    }
}

struct ServerState {
    sessions: Mutex<HashMap<u64, Session>>,
    next_id: AtomicU64,
    stopping: std::sync::atomic::AtomicBool,
    stop: Notify,
    /// Woken whenever a session ends.
    ended: Notify,
}

impl ServerState {
    fn sessions(&self) -> MutexGuard<'_, HashMap<u64, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A WebSocket server that calls a [`Handler`]; see the trait for an example.
pub struct Server<H: Handler> {
    handler: Arc<H>,
    options: ServerOptions,
    state: Arc<ServerState>,
}

impl<H: Handler> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("options", &self.options)
            .field("open", &self.state.sessions().len())
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Server<H> {
    /// Creates a server that calls `handler`.
    pub fn new(handler: H, options: ServerOptions) -> Self {
        Server {
            handler: Arc::new(handler),
            options,
            state: Arc::new(ServerState {
                sessions: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                stopping: std::sync::atomic::AtomicBool::new(false),
                stop: Notify::new(),
                ended: Notify::new(),
            }),
        }
    }

    /// A handle to count, reach and shut down this server's sessions from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            state: self.state.clone(),
        }
    }

    /// Accepts connections on `listener` until [`ServerHandle::shutdown`], then waits for
    /// every session to end.
    ///
    /// Each connection runs on its own tokio task: the upgrade (with
    /// [`Handler::on_connect`]), `on_open`, `on_message` per message, `on_close`. Failed
    /// upgrades are answered with their HTTP error and otherwise ignored. A panic in a
    /// handler method ends only its connection (`500` before the upgrade, a 1011 close
    /// after it) and frees its slot; see [`Handler`].
    ///
    /// Errors of `listener.accept()` never end it: one about a single connection is skipped,
    /// any other (running out of file descriptors, say) is retried after 100 ms.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops accepting; sessions already open go on.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = self.wait_stopping() => break,
            };
            let (tcp, remote) = match accepted {
                Ok(x) => x,
                Err(e) if is_per_connection(&e) => continue,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (handler, options, state) = (
                self.handler.clone(),
                self.options.clone(),
                self.state.clone(),
            );
            tokio::spawn(connection(handler, options, state, tcp, remote));
        }
        // Shutting down: wait until every session has ended.
        loop {
            let ended = self.state.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.state.sessions().is_empty() {
                return;
            }
            ended.await;
        }
    }

    async fn wait_stopping(&self) {
        loop {
            let notified = self.state.stop.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.stopping.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused | K::Interrupted
    )
}

/// One connection, from upgrade to `on_close`.
async fn connection<H: Handler>(
    handler: Arc<H>,
    options: ServerOptions,
    state: Arc<ServerState>,
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
) {
    let request = Arc::new(Mutex::new(RequestInfo::default()));
    let hook = {
        let (handler, request, state) = (handler.clone(), request.clone(), state.clone());
        let max = options.max_connections;
        move |req: &UpgradeRequest<'_>| {
            if state.stopping.load(Ordering::Acquire) {
                return Err(Reject::new(503, "the server is shutting down"));
            }
            if state.sessions().len() >= max {
                return Err(Reject::new(503, "too many connections").header("Retry-After", "1"));
            }
            // A panic here would unwind through `accept` and drop the client without an
            // answer: refuse with 500 instead. No session exists yet, so nothing else to undo.
            let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| handler.on_connect(req)))
                .unwrap_or_else(|_| Err(Reject::new(500, "internal server error")));
            if verdict.is_ok() {
                if let Ok(mut r) = request.lock() {
                    *r = RequestInfo {
                        path: req.path().to_owned(),
                        query: req.query().map(str::to_owned),
                        headers: req.headers().clone(),
                    };
                }
            }
            verdict
        }
    };
    let accept_options = options.accept.clone().on_request(hook);
    let Ok(conn) = accept(tcp, &accept_options).await else {
        return;
    };
    let request = request.lock().map(|r| r.clone()).unwrap_or_default();
    let session = Session {
        inner: Arc::new(SessionInner {
            id: state.next_id.fetch_add(1, Ordering::Relaxed),
            conn: Arc::new(conn),
            remote,
            request,
        }),
    };
    state.sessions().insert(session.id(), session.clone());
    // A shutdown that began during the upgrade missed this session: close it here.
    if state.stopping.load(Ordering::Acquire) {
        let _ = session
            .close(StatusCode::GOING_AWAY, "server shutting down")
            .await;
    }

    // From here on every way out (the peer leaving, an error, a panic in any handler method
    // or below one) reaches the end of this function, which frees the session's slot: a
    // panic is caught, not left to end the task with the session still in the map.
    let mut stage = "Handler::on_open";
    let ran = AssertUnwindSafe(session_loop(&*handler, &session, &options, &mut stage))
        .catch_unwind()
        .await;
    let info = match ran {
        Ok(end) => CloseInfo::from_end(session.conn(), end),
        Err(payload) => {
            let why = format!(
                "{stage} panicked ({}); the server closed the connection with 1011 \
                 (internal error) if it was still open",
                panic_message(payload.as_ref())
            );
            drop(payload);
            let _ = session
                .close(StatusCode::INTERNAL_ERROR, "internal server error")
                .await;
            CloseInfo::from_panic(session.conn(), why)
        }
    };
    // A panic in `on_close` has nothing left to clean up but the slot below.
    let _ = AssertUnwindSafe(handler.on_close(&session, info))
        .catch_unwind()
        .await;
    state.sessions().remove(&session.id());
    state.ended.notify_waiters();
}

/// `on_open`, then one `on_message` per message until the connection ends; returns why it
/// ended. `stage` names what is running (a handler method, or the read between them), for
/// the message of a panic.
async fn session_loop<H: Handler>(
    handler: &H,
    session: &Session,
    options: &ServerOptions,
    stage: &mut &'static str,
) -> Error {
    *stage = "Handler::on_open";
    handler.on_open(session).await;
    let mut bucket = options
        .rate
        .map(|(rate, burst)| (rate, burst, burst, Instant::now()));
    loop {
        *stage = "reading the next message";
        let msg = match session.conn().read().await {
            Ok(msg) => msg,
            Err(e) => return e,
        };
        if let Some((rate, burst, tokens, last)) = &mut bucket {
            let now = Instant::now();
            // Finite rate and elapsed time, so no NaN: a huge product only saturates to
            // infinity, which `min` caps at the burst.
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * *rate).min(*burst);
            *last = now;
            if *tokens < 1.0 {
                let _ = session
                    .close(StatusCode::POLICY_VIOLATION, "rate limit exceeded")
                    .await;
                return Error::new(
                    ErrorKind::Protocol,
                    "the client exceeded the message rate limit; closed with 1008",
                );
            }
            *tokens -= 1.0;
        }
        *stage = "Handler::on_message";
        handler.on_message(session, msg).await;
    }
}

/// The text of a panic's payload (`panic!` with a literal or a format string), if it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a non-string payload"
    }
}

/// Reaches a [`Server`]'s sessions from anywhere: count them, list them, shut down.
#[derive(Clone)]
pub struct ServerHandle {
    state: Arc<ServerState>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("open", &self.connections())
            .finish()
    }
}

impl ServerHandle {
    /// The number of open sessions.
    pub fn connections(&self) -> usize {
        self.state.sessions().len()
    }

    /// The open sessions (for a broadcast, say).
    pub fn sessions(&self) -> Vec<Session> {
        self.state.sessions().values().cloned().collect()
    }

    /// Stops accepting and closes every session with `code` and `reason` (a close handshake
    /// each, concurrently, bounded by the close timeout); [`Server::serve`] then returns once
    /// every `on_close` has run. Use [`StatusCode::GOING_AWAY`] (1001) for a restart.
    pub async fn shutdown(&self, code: StatusCode, reason: &str) {
        self.state.stopping.store(true, Ordering::Release);
        self.state.stop.notify_waiters();
        let sessions = self.sessions();
        let closes = sessions.iter().map(|s| s.close(code, reason));
        futures_util::future::join_all(closes).await;
    }
}
