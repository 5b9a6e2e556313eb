//! Opening a client connection: [`dial`] and [`DialOptions`].

use std::time::Duration;

use crate::backend::{self, Dial};
use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};

/// The default read limit: 32 KiB, as in coder/websocket.
pub const DEFAULT_READ_LIMIT: usize = 32 << 10;
/// The default time limit for opening a connection (TCP, TLS and the HTTP upgrade).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time limit for each half of the close handshake (sending ours, awaiting theirs).
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The default write high-water mark: 1 MiB (see [`DialOptions::write_high_water_mark`]).
pub const DEFAULT_WRITE_HIGH_WATER_MARK: usize = 1 << 20;

/// Options for [`dial`].
///
/// Built with chained setters; every option has a documented default, so
/// `DialOptions::new()` is ready to use.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use isosock::DialOptions;
///
/// let opts = DialOptions::new()
///     .subprotocols(["chat.v1"])
///     .read_limit(1 << 20)
///     .timeout(Duration::from_secs(10));
/// assert_eq!(opts.get_read_limit(), 1 << 20);
/// ```
#[derive(Clone)]
pub struct DialOptions {
    pub(crate) subprotocols: Vec<String>,
    pub(crate) read_limit: usize,
    pub(crate) timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) write_high_water_mark: usize,
    /// What only the backend's dial takes (natively headers and TLS settings; nothing in the
    /// browser).
    pub(crate) extras: backend::DialExtras,
}

impl std::fmt::Debug for DialOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("DialOptions");
        d.field("subprotocols", &self.subprotocols)
            .field("read_limit", &self.read_limit)
            .field("timeout", &self.timeout)
            .field("close_timeout", &self.close_timeout)
            .field("write_high_water_mark", &self.write_high_water_mark);
        self.extras.debug_fields(&mut d);
        d.finish()
    }
}

impl Default for DialOptions {
    fn default() -> Self {
        DialOptions {
            subprotocols: Vec::new(),
            read_limit: DEFAULT_READ_LIMIT,
            timeout: DEFAULT_DIAL_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            write_high_water_mark: DEFAULT_WRITE_HIGH_WATER_MARK,
            extras: backend::DialExtras::default(),
        }
    }
}

impl DialOptions {
    /// Creates options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the subprotocols to offer, most preferred first (`Sec-WebSocket-Protocol`).
    ///
    /// The server picks at most one; [`Conn::subprotocol`] tells which. Default: none.
    /// Each must be an HTTP token (letters, digits and ``!#$%&'*+-.^_`|~``), or `dial`
    /// fails with [`ErrorKind::InvalidArgument`].
    pub fn subprotocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the largest message, in bytes, the connection will read. Default: 32 KiB.
    ///
    /// A bigger message closes the connection with 1009 and fails the read with
    /// [`ErrorKind::MessageTooBig`]. See [`Conn::set_read_limit`] for changing it later.
    pub fn read_limit(mut self, bytes: usize) -> Self {
        self.read_limit = bytes;
        self
    }

    /// Returns the read limit these options set.
    pub fn get_read_limit(&self) -> usize {
        self.read_limit
    }

    /// Sets the time limit for opening the connection, from the first DNS lookup to the
    /// server's `101` response. Default: 30 seconds.
    ///
    /// `Duration::ZERO` (or a few nanoseconds) may expire before anything is sent, or not,
    /// depending on how fast the connection opens; `Duration::MAX` means no limit natively.
    /// In the browser a timer cannot exceed about 24.8 days (`i32::MAX` milliseconds), so any
    /// longer limit means that.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the time limit for each half of [`Conn::close`]: sending our close frame, then
    /// awaiting the peer's. Default: 5 seconds each.
    ///
    /// `Duration::ZERO` does not wait for the peer's close frame (`close` then reports
    /// [`ErrorKind::Timeout`] unless the peer's frame had already arrived); `Duration::MAX`
    /// waits as long as the peer keeps the connection open (in the browser at most about 24.8
    /// days, the longest timer it has).
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets how many written bytes may wait to be sent before [`Conn::write`] waits.
    /// Default: 1 MiB ([`DEFAULT_WRITE_HIGH_WATER_MARK`]).
    ///
    /// A write (or a [`Writer`](crate::Writer)'s frame, or a ping) queues its message only
    /// while the bytes waiting for the network are at or below this mark, so at most this many
    /// bytes plus one message are held, however fast the application produces and however
    /// many writes it cancels. `0` waits until everything queued before has been sent.
    ///
    /// # Platform notes
    ///
    /// - Natively the mark bounds the connection's own outgoing queue. A write normally
    ///   completes only once the socket took its message (or, answering a peer that
    ///   pipelines, once it is queued behind at most 64 KiB of deferred replies: see
    ///   [`Conn::write`]), so the queue is nearly empty between writes; the mark matters when
    ///   a write is cancelled (a `select!` or a timeout around it): its message stays queued
    ///   and is sent, in order, by the next write, ping, pong or close on the connection (no
    ///   task writes a cancelled write's message in the background), and that next write
    ///   first waits until the queue is at or below the mark.
    /// - In the browser the mark bounds the socket's `bufferedAmount`: a message is handed to
    ///   `WebSocket.send` only while `bufferedAmount` is at or below it. The browser has no
    ///   "drain" event, so a waiting write re-checks `bufferedAmount` every 5 ms. Chromium and
    ///   Firefox count every byte not yet written to the socket, so a producer is held to the
    ///   network's pace (with a peer that reads nothing, writes stop after a few MiB).
    ///   **WebKit (Safari) counts only the bytes its page process has not yet passed to its
    ///   network process, which buffers without bound**: sending 64 MiB to a peer that read
    ///   nothing, WebKitGTK 2.50's `bufferedAmount` was back at 0 after 1.4 s. There the mark
    ///   bounds the page's memory and holds a producer to the pace of that hand-off (about
    ///   45 MiB/s here), not to the network's, and no signal the page can see tells more. An
    ///   application that must not outrun a slow peer in Safari needs acknowledgements of its
    ///   own (the peer answering every N messages, for example).
    /// - On the tungstenite engine the mark does not apply: a write first flushes what a
    ///   cancelled write left in tungstenite's buffer, so at most one message waits there
    ///   (as with a mark of `0`).
    pub fn write_high_water_mark(mut self, bytes: usize) -> Self {
        self.write_high_water_mark = bytes;
        self
    }

    /// Returns the write high-water mark these options set.
    pub fn get_write_high_water_mark(&self) -> usize {
        self.write_high_water_mark
    }

    /// Adds an HTTP header to the upgrade request (for example `Authorization`).
    ///
    /// The name and value are checked when dialing; an invalid one fails with
    /// [`ErrorKind::InvalidArgument`]. Headers the handshake sets itself (`Host`,
    /// `Upgrade`, `Connection`, `Sec-WebSocket-*`) are refused the same way; use
    /// [`subprotocols`](Self::subprotocols) for `Sec-WebSocket-Protocol`.
    ///
    /// # Platform notes
    ///
    /// Native only: the browser's `WebSocket` cannot send headers. In the browser, carry a
    /// token in a subprotocol or the query string instead.
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extras.headers.push((name.into(), value.into()));
        self
    }

    /// Sets whether to offer permessage-deflate, and in which mode. Default:
    /// [`Compression::NoContextTakeover`](crate::Compression::NoContextTakeover), like a
    /// browser, which offers compression on every connection: free unless the server agrees,
    /// and no DEFLATE state kept between messages. Pass
    /// [`Compression::Disabled`](crate::Compression::Disabled) to offer nothing.
    ///
    /// The server decides: [`Response::extensions`] and [`Conn::extensions`] tell whether it
    /// agreed. `dial` fails with [`ErrorKind::Handshake`] if the server answers with an
    /// agreement the offer did not allow. See [`Compression`](crate::Compression) for what
    /// each mode costs.
    ///
    /// # Platform notes
    ///
    /// Native only: the browser always offers permessage-deflate itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use isosock::{Compression, DialOptions};
    ///
    /// let opts = DialOptions::new()
    ///     .compression(Compression::ContextTakeover)
    ///     .compression_threshold(256);
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub fn compression(mut self, mode: crate::Compression) -> Self {
        self.extras.compression.mode = mode;
        self.extras.compression_set = true;
        self
    }

    /// Sets the protocol engine that carries the connection's frames after the handshake.
    /// Default: [`Engine::Own`](crate::Engine::Own), isosock's own engine.
    ///
    /// An engine without permessage-deflate (tungstenite) does not offer it; asking for
    /// compression with [`compression`](Self::compression) as well fails the dial with
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) before anything is
    /// sent.
    ///
    /// Native only: the browser is its own engine.
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub fn engine(mut self, engine: crate::Engine) -> Self {
        self.extras.engine = engine;
        self
    }

    /// Sets the size, in bytes, below which a message is sent uncompressed when compression
    /// was agreed. Default: the mode's
    /// ([`Compression::default_threshold`](crate::Compression::default_threshold): 512
    /// bytes without context takeover, 128 with it). `0` compresses every message.
    ///
    /// The streaming [`Writer`](crate::Writer) compresses every message longer than its
    /// 16 KiB frame, and a shorter one by this threshold.
    ///
    /// # Platform notes
    ///
    /// Native only, like [`compression`](Self::compression).
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub fn compression_threshold(mut self, bytes: usize) -> Self {
        self.extras.compression.threshold = Some(bytes);
        self
    }

    /// Dials through this proxy, whatever the environment says: `http://host:port` (HTTP
    /// `CONNECT`), `socks5://host:port` (SOCKS5, the server's name resolved here) or
    /// `socks5h://host:port` (SOCKS5, the name resolved by the proxy), with optional
    /// percent-encoded `user:password@` (Basic for HTTP, RFC 1929 for SOCKS5). Default port:
    /// 80 for `http://`, 1080 for SOCKS. `wss://` runs TLS to the server inside the tunnel, so
    /// the proxy sees only the server's name and encrypted bytes.
    ///
    /// Without this call, the dial reads the proxy from the environment (`https_proxy`,
    /// `http_proxy`, `all_proxy`, `no_proxy`, as curl does); see the crate docs' "Proxies".
    /// [`no_proxy`](Self::no_proxy) turns both off. The URL is checked when dialing: one that
    /// is not usable (another scheme, `https://`, a bad port) fails with
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument); a proxy that
    /// cannot be reached or refuses the tunnel, with
    /// [`ErrorKind::Proxy`](crate::ErrorKind::Proxy). The dial's
    /// [`timeout`](Self::timeout) covers the proxy's part too.
    ///
    /// # Platform notes
    ///
    /// Native only: the browser uses the proxy its user configured and tells pages nothing
    /// about it.
    ///
    /// # Examples
    ///
    /// ```
    /// use isosock::DialOptions;
    ///
    /// let opts = DialOptions::new().proxy("http://alice:s3cret@proxy.internal:3128");
    /// // The password stays out of logs.
    /// assert!(!format!("{opts:?}").contains("s3cret"));
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.extras.proxy = backend::ProxySetting::Url(url.into());
        self
    }

    /// Dials directly, ignoring the proxy environment variables (and any earlier
    /// [`proxy`](Self::proxy) call).
    ///
    /// # Platform notes
    ///
    /// Native only, like [`proxy`](Self::proxy).
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub fn no_proxy(mut self) -> Self {
        self.extras.proxy = backend::ProxySetting::Direct;
        self
    }

    /// Uses this rustls client configuration for `wss://` instead of the default one.
    ///
    /// The default trusts the Mozilla roots (feature `webpki-roots`, on by default) and, with
    /// feature `native-roots`, the system's roots. Pass your own to trust a private CA or a
    /// self-signed test certificate. isosock always builds its default with the `ring`
    /// provider explicitly, so no process-wide rustls `CryptoProvider` has to be installed.
    ///
    /// # Platform notes
    ///
    /// Native only: the browser does TLS itself.
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub fn tls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.extras.tls_config = Some(config);
        self
    }
}

/// What the server answered to a successful opening handshake.
///
/// Its `Debug` output leaves out the values of headers that may carry credentials
/// (`Set-Cookie`, ...).
#[derive(Clone)]
pub struct Response {
    pub(crate) subprotocol: Option<String>,
    /// The server's `Sec-WebSocket-Extensions` (empty when none).
    pub(crate) extensions: String,
    /// What only one backend can report (natively the HTTP headers).
    pub(crate) extras: backend::ResponseExtras,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Response");
        d.field("status", &self.status())
            .field("subprotocol", &self.subprotocol)
            .field("extensions", &self.extensions);
        self.extras.debug_fields(&mut d);
        d.finish()
    }
}

impl Response {
    /// Returns the HTTP status of the handshake response: always 101 (Switching Protocols),
    /// since any other status fails the dial with [`ErrorKind::Handshake`].
    pub fn status(&self) -> u16 {
        101
    }

    /// Returns the subprotocol the server selected, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Returns the extensions the server selected, as its `Sec-WebSocket-Extensions` header
    /// stated them (for example `"permessage-deflate; server_no_context_takeover"`); empty
    /// when none. The same as [`Conn::extensions`].
    pub fn extensions(&self) -> &str {
        &self.extensions
    }

    /// Returns the response's HTTP headers.
    ///
    /// # Platform notes
    ///
    /// Native only: the browser does not show handshake headers to scripts.
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub fn headers(&self) -> &http::HeaderMap {
        &self.extras.headers
    }
}

/// Opens a WebSocket connection to `url` (`ws://` or `wss://`).
///
/// Returns the connection and the server's handshake [`Response`].
///
/// # Errors
///
/// - [`ErrorKind::InvalidUrl`]: not an absolute `ws://` / `wss://` URL with a host, or it has
///   a `#fragment`.
/// - [`ErrorKind::InvalidArgument`]: a subprotocol or header is not valid.
/// - [`ErrorKind::Connect`]: DNS, TCP or TLS failed (in the browser: any failure before the
///   socket opened).
/// - [`ErrorKind::Handshake`]: the server refused the upgrade, or answered with an invalid
///   `101` (a wrong or repeated `Sec-WebSocket-Accept`, a repeated `Sec-WebSocket-Protocol`
///   or `Upgrade`, an `Upgrade` other than `websocket`, an unoffered subprotocol, a head with
///   bare-LF line ends or that is not HTTP); natively the error carries the HTTP status and the
///   first bytes of the body.
/// - [`ErrorKind::Unsupported`]: natively, the operating system's random number generator
///   failed, so no handshake key could be made.
/// - [`ErrorKind::Timeout`]: the connection was not open within [`DialOptions::timeout`].
///
/// # Cancel safety
///
/// Dropping the future abandons the attempt and closes whatever socket it had opened.
///
/// # Platform notes
///
/// In the browser, handshake headers and TLS settings are not available, and the browser does
/// not tell scripts why a connection failed: a refused upgrade and an unreachable host are both
/// [`ErrorKind::Connect`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> isosock::Result<()> {
/// use isosock::{dial, DialOptions, Message, StatusCode};
///
/// let (conn, resp) = dial("ws://127.0.0.1:9001/echo", &DialOptions::new()).await?;
/// println!("subprotocol: {:?}", resp.subprotocol());
/// conn.write(Message::text("hello")).await?;
/// let reply = conn.read().await?;
/// println!("{reply:?}");
/// conn.close(StatusCode::NORMAL_CLOSURE, "bye").await?;
/// # Ok(()) }
/// ```
pub async fn dial(url: &str, opts: &DialOptions) -> Result<(Conn, Response)> {
    let target = WsUrl::parse(url)?;
    for p in &opts.subprotocols {
        check_token(p, "subprotocol")?;
    }
    // Boxed: the handshake's state lives on the heap only while it runs, instead of
    // enlarging every task that awaits `dial` for its whole life.
    let (inner, response) = Box::pin(backend::Conn::dial(&target, opts)).await?;
    Ok((Conn::from_backend(inner), response))
}

/// A `ws://` or `wss://` URL, checked the same way on every target.
#[derive(Debug, Clone)]
pub(crate) struct WsUrl<'a> {
    /// The URL as given (scheme lower-cased where it mattered is the backend's business).
    pub(crate) full: &'a str,
    /// `wss://`: natively, TLS and port 443 by default.
    #[allow(
        dead_code,
        reason = "the browser backend hands `full` to the browser and never reads this"
    )]
    pub(crate) secure: bool,
}

impl<'a> WsUrl<'a> {
    pub(crate) fn parse(url: &'a str) -> Result<Self> {
        let bad = |why: &str| {
            let shown = crate::redact::url(url);
            Error::new(ErrorKind::InvalidUrl, format!("{shown:?}: {why}"))
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected ws://host or wss://host"))?;
        let secure = if scheme.eq_ignore_ascii_case("ws") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") {
            true
        } else {
            return Err(bad("the scheme must be ws or wss"));
        };
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') {
            return Err(bad("missing host"));
        }
        if url.contains('#') {
            return Err(bad("a WebSocket URL may not have a #fragment"));
        }
        if url
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Err(bad("contains whitespace or control characters"));
        }
        Ok(WsUrl { full: url, secure })
    }
}

/// Checks that `s` is an HTTP token (RFC 9110 `tchar`s), as subprotocols must be.
pub(crate) fn check_token(s: &str, what: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} {s:?} is not an HTTP token"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_checks() {
        assert!(WsUrl::parse("ws://127.0.0.1:80/x?y=1").is_ok());
        assert!(WsUrl::parse("WSS://example.com")
            .map(|u| u.secure)
            .unwrap_or(false));
        for bad in [
            "",
            "http://x",
            "ws://",
            "ws:///path",
            "ws://:80",
            "ws://x/#frag",
            "ws://x y",
            "127.0.0.1:80",
        ] {
            let e = WsUrl::parse(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidUrl, "{bad}");
        }
    }

    #[test]
    fn tokens() {
        assert!(check_token("chat.v1", "subprotocol").is_ok());
        assert!(check_token("a b", "subprotocol").is_err());
        assert!(check_token("", "subprotocol").is_err());
        assert!(check_token("a,b", "subprotocol").is_err());
    }
}
