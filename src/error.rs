//! The one error type of isosock, identical on every target.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::close::{CloseFrame, StatusCode};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely enough to `match` on the same way on every target.
///
/// Every kind exists on every target, even where one target never produces it (for example
/// [`ErrorKind::Rejected`] comes from `accept`, which the browser does not have), so code that
/// matches on kinds compiles for native and wasm alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL is not a valid `ws://` or `wss://` URL.
    InvalidUrl,
    /// An argument was refused before anything was sent: a close code that may not be sent,
    /// a close reason over 123 bytes, a header or subprotocol that is not a valid token, an
    /// option out of range, or text that is not UTF-8.
    InvalidArgument,
    /// The server could not be reached: name resolution, TCP connect or TLS failed. In the
    /// browser every failure before the socket opens has this kind, since the browser tells
    /// scripts nothing more.
    Connect,
    /// The server answered the opening handshake with something other than a valid
    /// `101 Switching Protocols`; [`Error::http_status`] and [`Error::http_body`] say what.
    Handshake,
    /// An operation did not finish within its time limit (dial timeout, close handshake).
    Timeout,
    /// `accept` refused the client's request (not a WebSocket upgrade, origin not allowed,
    /// refused by the hook); the client was sent an HTTP error response.
    Rejected,
    /// The connection was closed with a close handshake. [`Error::close_frame`] holds the
    /// peer's close frame when the peer sent one; this is how a clean close by the peer is
    /// reported to readers, not as a mystery failure.
    Closed,
    /// The operation was attempted after this side had closed the connection (`close`,
    /// `close_now`, or a write after close): a usage error, not a network event.
    AlreadyClosed,
    /// The connection ended without a close handshake: reset, EOF, or an I/O error
    /// (close code 1006, "abnormal closure").
    ConnectionLost,
    /// A received message exceeded the read limit; the connection was closed with 1009 (in the
    /// browser, which refuses 1009: 1000 "message too big"). In the browser also: unread
    /// messages exceeded the inbound bound (closed with 1000 "reader too slow").
    MessageTooBig,
    /// A received text message was not valid UTF-8; the connection was closed with 1007.
    InvalidData,
    /// The peer violated RFC 6455 (bad framing, masking, opcodes, or a data message after
    /// `close_read`); the connection was closed with 1002 (or 1008 after `close_read`; 1000
    /// in the browser, which refuses both).
    Protocol,
    /// The environment lacks what isosock needs: on wasm32, a JavaScript runtime without a
    /// global `WebSocket` (Node.js before 22 without `--experimental-websocket`, or a worklet);
    /// natively, an operating system whose random number generator fails (no handshake key or
    /// masking key is made without it).
    Unsupported,
    /// A received message could not be decoded into the requested type (the `json` and
    /// `protobuf` helpers); the message was consumed and the connection stays open.
    Decode,
    /// The proxy the dial went through could not be reached or would not open the tunnel: an
    /// HTTP proxy answered `CONNECT` with something other than 2xx ([`Error::http_status`]
    /// has the status; on 407 the message names the `Proxy-Authenticate` challenge), a SOCKS5
    /// proxy replied with a failure or refused the credentials, or the proxy broke the
    /// protocol. The message names the proxy, credentials left out. Native only: the browser
    /// does its own proxying and never reports it.
    Proxy,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::InvalidUrl => "invalid URL",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Connect => "connection failed",
            ErrorKind::Handshake => "WebSocket handshake failed",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Rejected => "upgrade request rejected",
            ErrorKind::Closed => "connection closed",
            ErrorKind::AlreadyClosed => "connection already closed",
            ErrorKind::ConnectionLost => "connection lost",
            ErrorKind::MessageTooBig => "message too big",
            ErrorKind::InvalidData => "invalid message data",
            ErrorKind::Protocol => "protocol violation",
            ErrorKind::Unsupported => "unsupported environment",
            ErrorKind::Decode => "message could not be decoded",
            ErrorKind::Proxy => "proxy failed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The error type of every fallible isosock operation.
///
/// It is cheap to clone (a connection that failed keeps returning the same error) and carries:
/// its [`kind`](Error::kind), a message, the peer's [close frame](Error::close_frame) when
/// the connection was closed by a close handshake, the HTTP status and first bytes of the body
/// when a handshake was refused, and the backend's error as [`source`](StdError::source).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(conn: isosock::Conn) {
/// use isosock::{ErrorKind, StatusCode};
///
/// match conn.read().await {
///     Ok(msg) => println!("got {} bytes", msg.len()),
///     Err(e) if isosock::close_status(&e) == Some(StatusCode::NORMAL_CLOSURE) => {
///         println!("peer said goodbye");
///     }
///     Err(e) if e.kind() == ErrorKind::ConnectionLost => println!("network dropped: {e}"),
///     Err(e) => println!("error: {e}"),
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    close: Option<CloseFrame>,
    http: Option<(u16, Bytes)>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// How many bytes of a refused handshake's response body an [`Error`] keeps.
pub const HTTP_BODY_PREFIX: usize = 1024;

impl Error {
    /// Makes an error of `kind` with `message` (no close frame, HTTP status or source), for
    /// code built on isosock that reports its own failures in isosock's error type: a
    /// framework hook's send before a connection exists, a protocol layer's refusal.
    ///
    /// # Examples
    ///
    /// ```
    /// use isosock::{Error, ErrorKind};
    ///
    /// let err = Error::new(ErrorKind::Unsupported, "no connection during server rendering");
    /// assert_eq!(err.kind(), ErrorKind::Unsupported);
    /// assert!(err.to_string().contains("server rendering"));
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            inner: Arc::new(Inner {
                kind,
                message: message.into(),
                close: None,
                http: None,
                source: None,
            }),
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<Cow<'static, str>>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        let mut e = Error::new(kind, message);
        if let Some(inner) = Arc::get_mut(&mut e.inner) {
            inner.source = Some(source.into());
        }
        e
    }

    /// A clean close by the peer (or the close handshake we started, answered by the peer).
    pub(crate) fn closed(frame: CloseFrame) -> Self {
        let mut e = Error::new(
            ErrorKind::Closed,
            format!("peer closed the connection ({frame})"),
        );
        if let Some(inner) = Arc::get_mut(&mut e.inner) {
            inner.close = Some(frame);
        }
        e
    }

    /// A proxy that would not open the tunnel, with the HTTP status of its refusal if any.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn proxy(message: String, status: Option<u16>) -> Self {
        let mut e = Error::new(ErrorKind::Proxy, message);
        if let (Some(inner), Some(status)) = (Arc::get_mut(&mut e.inner), status) {
            inner.http = Some((status, Bytes::new()));
        }
        e
    }

    /// A refused upgrade: the HTTP status and the first bytes of the body (the browser never
    /// shows them, so natively only).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn handshake_status(status: u16, body: &[u8]) -> Self {
        let body = Bytes::copy_from_slice(&body[..body.len().min(HTTP_BODY_PREFIX)]);
        let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        let mut e = Error::new(
            ErrorKind::Handshake,
            format!("server answered the upgrade with HTTP {status}: {snippet:?}"),
        );
        if let Some(inner) = Arc::get_mut(&mut e.inner) {
            inner.http = Some((status, body));
        }
        e
    }

    /// Returns what kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Returns the close frame the peer sent, when the connection ended by a close handshake.
    ///
    /// Its code is [`StatusCode::NO_STATUS_RCVD`] (1005) when the frame carried no code. An
    /// abnormal closure (no close frame, kind [`ErrorKind::ConnectionLost`]) returns `None`.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.inner.close.as_ref()
    }

    /// Returns the HTTP status of a refused opening handshake (kind [`ErrorKind::Handshake`]),
    /// or of an HTTP proxy's refusal to open the tunnel (kind [`ErrorKind::Proxy`]).
    ///
    /// Always `None` in the browser, which hides the status from scripts.
    pub fn http_status(&self) -> Option<u16> {
        self.inner.http.as_ref().map(|(s, _)| *s)
    }

    /// Returns the first bytes (at most [`HTTP_BODY_PREFIX`]) of the body of a refused
    /// opening handshake, as far as the server had sent them with its headers.
    pub fn http_body(&self) -> Option<&[u8]> {
        self.inner.http.as_ref().map(|(_, b)| &b[..])
    }
}

/// Returns the status code of the peer's close frame, if `err` reports a close handshake.
///
/// This is coder/websocket's `CloseStatus`: the way to tell a peer's deliberate
/// `NORMAL_CLOSURE` from a failure.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(conn: isosock::Conn) -> isosock::Result<()> {
/// use isosock::StatusCode;
///
/// loop {
///     match conn.read().await {
///         Ok(msg) => println!("{msg:?}"),
///         Err(e) if isosock::close_status(&e) == Some(StatusCode::NORMAL_CLOSURE) => return Ok(()),
///         Err(e) => return Err(e),
///     }
/// }
/// # }
/// ```
pub fn close_status(err: &Error) -> Option<StatusCode> {
    err.close_frame().map(|f| f.code)
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(c) = &self.inner.close {
            d.field("close", c);
        }
        if let Some((s, _)) = &self.inner.http {
            d.field("http_status", s);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.kind, self.inner.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| &**s as &(dyn StdError + 'static))
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::Timeout => std::io::ErrorKind::TimedOut,
            ErrorKind::ConnectionLost => std::io::ErrorKind::ConnectionReset,
            ErrorKind::Closed | ErrorKind::AlreadyClosed => std::io::ErrorKind::NotConnected,
            ErrorKind::InvalidArgument | ErrorKind::InvalidUrl => std::io::ErrorKind::InvalidInput,
            ErrorKind::InvalidData | ErrorKind::MessageTooBig => std::io::ErrorKind::InvalidData,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
