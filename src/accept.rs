//! Accepting connections on the server side (native only): [`accept`], [`accept_http`],
//! [`AcceptOptions`] and the upgrade hook.

use crate::compression::{Compression, CompressionOptions};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::backend::accept as imp;
use crate::conn::Conn;
use crate::dial::{DEFAULT_CLOSE_TIMEOUT, DEFAULT_READ_LIMIT, DEFAULT_WRITE_HIGH_WATER_MARK};
use crate::error::Result;

/// The default time limit for receiving a client's upgrade request in [`accept`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest upgrade request head (request line and headers) [`accept`] reads: 16 KiB.
pub const MAX_REQUEST_HEAD: usize = 16 << 10;

type Hook = dyn Fn(&UpgradeRequest<'_>) -> std::result::Result<Upgrade, Reject> + Send + Sync;

/// Options for [`accept`] and [`accept_http`].
///
/// # Examples
///
/// ```
/// use isosock::{AcceptOptions, Reject, Upgrade};
///
/// let opts = AcceptOptions::new()
///     .subprotocols(["chat.v1"])
///     .origin_patterns(["app.example.com", "*.example.org"])
///     .read_limit(1 << 20)
///     .on_request(|req| {
///         if req.path() != "/chat" {
///             return Err(Reject::new(404, "no such endpoint"));
///         }
///         Ok(Upgrade::new().header("x-server", "isosock"))
///     });
/// # let _ = opts;
/// ```
#[derive(Clone)]
pub struct AcceptOptions {
    pub(crate) subprotocols: Vec<String>,
    pub(crate) origin_patterns: Vec<String>,
    pub(crate) insecure_skip_verify: bool,
    pub(crate) read_limit: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) write_high_water_mark: usize,
    pub(crate) compression: CompressionOptions,
    pub(crate) engine: crate::Engine,
    pub(crate) hook: Option<Arc<Hook>>,
}

impl fmt::Debug for AcceptOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcceptOptions")
            .field("subprotocols", &self.subprotocols)
            .field("origin_patterns", &self.origin_patterns)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("read_limit", &self.read_limit)
            .field("close_timeout", &self.close_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("write_high_water_mark", &self.write_high_water_mark)
            .field("compression", &self.compression)
            .field("engine", &self.engine)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Default for AcceptOptions {
    fn default() -> Self {
        AcceptOptions {
            subprotocols: Vec::new(),
            origin_patterns: Vec::new(),
            insecure_skip_verify: false,
            read_limit: DEFAULT_READ_LIMIT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            write_high_water_mark: DEFAULT_WRITE_HIGH_WATER_MARK,
            compression: CompressionOptions {
                mode: Compression::Disabled,
                threshold: None,
            },
            engine: crate::Engine::Own,
            hook: None,
        }
    }
}

impl AcceptOptions {
    /// Creates options with every default: no subprotocols, same-origin only, 32 KiB read
    /// limit, 5 s close timeout, 10 s handshake timeout, no hook.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets whether to accept permessage-deflate when the client offers it, and in which
    /// mode. Default: [`Compression::Disabled`], since browsers offer compression on every
    /// connection and it costs 2–4× the CPU per message (see [`Compression`]);
    /// [`Compression::NoContextTakeover`] is the mode to pick for browser clients (no state
    /// between messages).
    ///
    /// Browsers offer it on every connection. The server takes the first offer it can
    /// honour and declines the others (an unknown parameter or a window size outside 8..=15);
    /// a `Sec-WebSocket-Extensions` header that does not parse is refused with 400.
    /// [`Conn::extensions`] tells what was agreed. See [`Compression`] for what each mode
    /// costs.
    ///
    /// # Examples
    ///
    /// ```
    /// use isosock::{AcceptOptions, Compression};
    ///
    /// let opts = AcceptOptions::new().compression(Compression::NoContextTakeover);
    /// ```
    pub fn compression(mut self, mode: Compression) -> Self {
        self.compression.mode = mode;
        self
    }

    /// Sets the size, in bytes, below which a message is sent uncompressed when compression
    /// was agreed. Default: the mode's ([`Compression::default_threshold`]: 512 bytes
    /// without context takeover, 128 with it). `0` compresses every message.
    pub fn compression_threshold(mut self, bytes: usize) -> Self {
        self.compression.threshold = Some(bytes);
        self
    }

    /// Sets the protocol engine that carries the connection's frames after the handshake.
    /// Default: [`Engine::Own`](crate::Engine::Own), isosock's own engine.
    ///
    /// An engine without permessage-deflate (tungstenite) cannot be combined with
    /// [`compression`](Self::compression) other than [`Compression::Disabled`]: `accept`
    /// then answers the client with `500` and fails with
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument).
    pub fn engine(mut self, engine: crate::Engine) -> Self {
        self.engine = engine;
        self
    }

    /// Sets the subprotocols the server supports, most preferred first.
    ///
    /// The first one of these that the client offered is selected; if none matches, the
    /// connection proceeds with no subprotocol (check [`Conn::subprotocol`] and close with
    /// [`StatusCode::POLICY_VIOLATION`](crate::StatusCode::POLICY_VIOLATION) if you need one).
    pub fn subprotocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Allows browser origins other than the server's own host.
    ///
    /// By default a request whose `Origin` header names another host than its `Host` header is
    /// refused with 403, which stops cross-site WebSocket hijacking. Each pattern is matched,
    /// case-insensitively, against the origin's `host[:port]`; `*` matches any run of
    /// characters and `?` one character (`"*.example.com"`, `"localhost:*"`). Requests
    /// without an `Origin` header (non-browser clients) are always allowed.
    pub fn origin_patterns<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origin_patterns = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Turns the origin check off entirely: any site's pages may connect.
    ///
    /// Only for endpoints that do their own authentication on every message; a cookie- or
    /// session-authenticated endpoint without the check can be driven by any web page.
    pub fn insecure_skip_verify(mut self, skip: bool) -> Self {
        self.insecure_skip_verify = skip;
        self
    }

    /// Sets the largest message, in bytes, the connection reads. Default: 32 KiB.
    pub fn read_limit(mut self, bytes: usize) -> Self {
        self.read_limit = bytes;
        self
    }

    /// Sets the time limit for each half of [`Conn::close`]. Default: 5 seconds each.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets how many written bytes may wait for the socket before [`Conn::write`] waits.
    /// Default: 1 MiB ([`DEFAULT_WRITE_HIGH_WATER_MARK`]).
    ///
    /// A write normally completes only once the socket took its message, so the queue is
    /// empty between writes. A write cancelled while it waits (a `select!` or a timeout
    /// around it) leaves its message queued; the next write, ping or writer frame first waits
    /// until the queue is at or below this mark, so a loop of cancelled writes against a peer
    /// that stopped reading holds at most this many bytes plus one message. `0` waits until
    /// everything queued before is written. The same option exists on
    /// [`DialOptions::write_high_water_mark`](crate::DialOptions::write_high_water_mark).
    ///
    /// On the tungstenite engine the mark does not apply: a write first flushes what a
    /// cancelled write left in tungstenite's buffer, so at most one message waits there (as
    /// with a mark of `0`).
    pub fn write_high_water_mark(mut self, bytes: usize) -> Self {
        self.write_high_water_mark = bytes;
        self
    }

    /// Sets the time limit for receiving the upgrade request and sending the answer in
    /// [`accept`]. Default: 10 seconds. (In [`accept_http`] the HTTP server reads the
    /// request.)
    ///
    /// `Duration::ZERO` (or a few nanoseconds) may expire before the request is read, or not,
    /// depending on whether it has already arrived (the client then gets 408);
    /// `Duration::MAX` means no limit, which lets a client that never finishes its request
    /// hold the connection.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Installs a hook that sees every upgrade request after the protocol and origin checks
    /// and decides: `Ok(Upgrade)` accepts (optionally picking the subprotocol and adding
    /// response headers), `Err(Reject)` answers with its status, headers and reason.
    pub fn on_request<F>(mut self, hook: F) -> Self
    where
        F: Fn(&UpgradeRequest<'_>) -> std::result::Result<Upgrade, Reject> + Send + Sync + 'static,
    {
        self.hook = Some(Arc::new(hook));
        self
    }
}

/// A client's upgrade request, as the [`AcceptOptions::on_request`] hook sees it.
///
/// Its `Debug` output leaves out the values of headers that may carry credentials
/// (`Authorization`, `Cookie`, ...) and the query string.
#[derive(Clone, Copy)]
pub struct UpgradeRequest<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
}

impl std::fmt::Debug for UpgradeRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradeRequest")
            .field("method", self.method)
            .field("path", &self.uri.path())
            .field("query", &self.uri.query().map(|_| "…"))
            .field("headers", &crate::redact::Headers::map(self.headers))
            .finish()
    }
}

impl<'a> UpgradeRequest<'a> {
    /// Returns the request method (always `GET` by the time the hook runs).
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// Returns the request target.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// Returns the path of the request target.
    pub fn path(&self) -> &'a str {
        self.uri.path()
    }

    /// Returns the query string, without the `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.uri.query()
    }

    /// Returns the request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// Returns the `Origin` header, if the client sent one (browsers always do).
    pub fn origin(&self) -> Option<&'a str> {
        self.headers
            .get(http::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
    }

    /// Returns the subprotocols the client offered, in its order.
    pub fn subprotocols(&self) -> Vec<&'a str> {
        imp::offered_subprotocols(self.headers)
    }
}

/// The hook's "yes": accept the upgrade, optionally choosing the subprotocol and adding
/// response headers.
#[derive(Debug, Clone, Default)]
pub struct Upgrade {
    pub(crate) subprotocol: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl Upgrade {
    /// Accepts with the default subprotocol choice ([`AcceptOptions::subprotocols`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Selects this subprotocol; it must be one the client offered, or the upgrade fails
    /// with 500 (a server bug, reported as [`ErrorKind::InvalidArgument`](crate::ErrorKind)).
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocol = Some(protocol.into());
        self
    }

    /// Adds a header to the `101 Switching Protocols` response. An invalid name or value
    /// fails the upgrade with 500.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The hook's "no": the HTTP response to send instead of upgrading.
#[derive(Debug, Clone)]
pub struct Reject {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) reason: String,
}

impl Reject {
    /// Refuses with `status` (400–599; anything else is sent as 403) and `reason` as a
    /// `text/plain` body.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Reject {
            status,
            headers: Vec::new(),
            reason: reason.into(),
        }
    }

    /// Adds a header to the refusal (for example `WWW-Authenticate` or `Retry-After`).
    /// Invalid names or values are left out.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Performs the server side of the opening handshake on `stream` and returns the connection.
///
/// Reads the HTTP upgrade request (at most [`MAX_REQUEST_HEAD`] bytes, within the handshake
/// timeout), checks it (HTTP/1.1, method, upgrade headers, version 13, key, `Host`, origin),
/// runs the hook, selects the subprotocol and answers `101 Switching Protocols`. Any refused
/// request is answered with a proper HTTP error and `Connection: close`; it never hangs:
///
/// - 400: malformed HTTP, a missing, repeated or malformed `Sec-WebSocket-Key`, a missing or
///   repeated `Host`. Refused as soon as the bytes show it, without waiting for the rest of
///   the head: a line ending in a bare LF instead of CRLF, and a first byte that cannot start
///   an HTTP request, such as the `0x16` of a TLS ClientHello (a `wss://` client on a
///   plain-text port; the body says so);
/// - 403: an `Origin` that is not allowed (see [`AcceptOptions::origin_patterns`]);
/// - 405: a method other than `GET`;
/// - 408: no complete request head within the handshake timeout;
/// - 426: no `Upgrade: websocket` / `Connection: Upgrade`, or a `Sec-WebSocket-Version` other
///   than one `13`;
/// - 431: a head over [`MAX_REQUEST_HEAD`] bytes or 64 headers;
/// - 505: a version other than HTTP/1.1 (RFC 6455 4.1 asks for at least 1.1, and HTTP/1.1 is
///   the only one that can upgrade this way);
/// - the hook's status, or 500 when the hook's [`Upgrade`] is invalid.
///
/// `stream` is any tokio byte stream: a `TcpStream`, a TLS stream from tokio-rustls, an
/// in-memory `tokio::io::duplex`.
///
/// # Errors
///
/// - [`ErrorKind::Rejected`](crate::ErrorKind::Rejected): the request was refused; the
///   message says why.
/// - [`ErrorKind::Timeout`](crate::ErrorKind::Timeout): no complete request in time.
/// - [`ErrorKind::ConnectionLost`](crate::ErrorKind::ConnectionLost): the client went away.
///
/// # Cancel safety
///
/// Dropping the future drops `stream`, closing the connection.
///
/// # Examples
///
/// ```no_run
/// use isosock::{accept, AcceptOptions, Conn};
/// use tokio::net::TcpListener;
///
/// async fn echo(conn: Conn) -> isosock::Result<()> {
///     loop {
///         let msg = conn.read().await?;
///         conn.write(msg).await?;
///     }
/// }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = TcpListener::bind("127.0.0.1:9001").await?;
/// loop {
///     let (tcp, _) = listener.accept().await?;
///     tokio::spawn(async move {
///         match accept(tcp, &AcceptOptions::new()).await {
///             Ok(conn) => drop(echo(conn).await),
///             Err(e) => eprintln!("upgrade refused: {e}"),
///         }
///     });
/// }
/// # }
/// ```
pub async fn accept<S>(stream: S, opts: &AcceptOptions) -> Result<Conn>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    // Boxed: the handshake's buffers live on the heap only while it runs, instead of
    // enlarging (by about 5 KiB) every task that awaits `accept` for its whole life.
    let inner = Box::pin(imp::accept_stream(stream, opts)).await?;
    Ok(Conn::from_backend(inner))
}

#[cfg(feature = "hyper")]
pub use self::hyper_accept::{accept_http, Rejection, Upgrading};

#[cfg(feature = "hyper")]
mod hyper_accept {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::AcceptOptions;
    use crate::backend::accept as imp;
    use crate::conn::Conn;
    use crate::error::{Error, Result};

    /// Checks an upgrade request inside a hyper 1.x (or axum) service and prepares the
    /// connection.
    ///
    /// On success returns the `101` response for the service to return and an [`Upgrading`]
    /// future that resolves to the [`Conn`] once hyper hands over the connection (spawn a task
    /// to await it). On refusal returns a [`Rejection`] whose response the service should
    /// return. The checks, the hook and the subprotocol choice are those of [`accept`] (one
    /// shared check), with the same statuses; in particular a request that is not HTTP/1.1
    /// (an HTTP/1.0 upgrade, or an HTTP/2 extended CONNECT, which isosock does not support)
    /// is refused with `505 HTTP Version Not Supported`. Reading the request, and so its size
    /// limits and timeout, is hyper's job.
    ///
    /// Requires the `hyper` feature; the request must come from a hyper server with
    /// upgrades enabled (`serve_connection(...).with_upgrades()`).
    ///
    /// [`accept`]: crate::accept
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use isosock::{accept_http, AcceptOptions};
    ///
    /// fn handle(mut req: http::Request<()>) -> http::Response<String> {
    ///     match accept_http(&mut req, &AcceptOptions::new()) {
    ///         Ok((response, upgrading)) => {
    ///             tokio::spawn(async move {
    ///                 if let Ok(conn) = upgrading.await {
    ///                     while let Ok(msg) = conn.read().await {
    ///                         if conn.write(msg).await.is_err() {
    ///                             break;
    ///                         }
    ///                     }
    ///                 }
    ///             });
    ///             response
    ///         }
    ///         Err(rejection) => rejection.into_response(),
    ///     }
    /// }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
    #[allow(clippy::result_large_err)]
    pub fn accept_http<B>(
        req: &mut http::Request<B>,
        opts: &AcceptOptions,
    ) -> std::result::Result<(http::Response<String>, Upgrading), Rejection> {
        match imp::negotiate(req.method(), req.version(), req.uri(), req.headers(), opts) {
            Ok((response, negotiated)) => {
                let on_upgrade = hyper::upgrade::on(req);
                let settings = imp::settings(opts);
                let engine = opts.engine;
                let fut = async move {
                    let upgraded = on_upgrade.await.map_err(|e| {
                        Error::with_source(
                            crate::ErrorKind::ConnectionLost,
                            "hyper did not hand over the upgraded connection",
                            e,
                        )
                    })?;
                    let io = hyper_util::rt::TokioIo::new(upgraded);
                    let conn = imp::wrap_server(io, Vec::new(), negotiated, settings, engine).await;
                    Ok(Conn::from_backend(conn))
                };
                Ok((
                    response.map(|()| String::new()),
                    Upgrading { fut: Box::pin(fut) },
                ))
            }
            Err(refusal) => {
                let (response, error) = *refusal;
                Err(Rejection { response, error })
            }
        }
    }

    /// Resolves to the [`Conn`] once hyper has switched the connection; from [`accept_http`].
    #[must_use = "the connection is only available by awaiting this"]
    pub struct Upgrading {
        fut: Pin<Box<dyn Future<Output = Result<Conn>> + Send>>,
    }

    impl std::fmt::Debug for Upgrading {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Upgrading").finish_non_exhaustive()
        }
    }

    impl Future for Upgrading {
        type Output = Result<Conn>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Conn>> {
            self.fut.as_mut().poll(cx)
        }
    }

    /// A refused upgrade from [`accept_http`]: the HTTP response to send and why.
    #[derive(Debug)]
    pub struct Rejection {
        response: http::Response<String>,
        error: Error,
    }

    impl Rejection {
        /// Returns why the request was refused (kind
        /// [`ErrorKind::Rejected`](crate::ErrorKind::Rejected)).
        pub fn error(&self) -> &Error {
            &self.error
        }

        /// Returns the HTTP response to send to the client.
        pub fn into_response(self) -> http::Response<String> {
            self.response
        }
    }
}

/// Internal: header name/value pairs to `http` types, skipping invalid ones.
pub(crate) fn to_header_pairs(pairs: &[(String, String)]) -> Vec<(HeaderName, HeaderValue)> {
    pairs
        .iter()
        .filter_map(|(n, v)| {
            Some((
                HeaderName::from_bytes(n.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect()
}
