//! Native client side: TCP (+ rustls for `wss://`), then the opening handshake.

use std::fmt;
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use http::header::{
    HeaderName, HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use http::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::extensions;
use super::frame::Role;
use super::handshake::{derive_accept_key, generate_key};
use super::http1::{has_token, read_head, HeadReadError};
use super::io::Transport;
use super::proxy::{self, Proxy, ProxySetting};
use super::{Conn, Negotiated, Settings};
use crate::compression::{Compression, CompressionOptions};
use crate::dial::{DialOptions, Response, WsUrl};
use crate::error::{Error, ErrorKind, Result, HTTP_BODY_PREFIX};

/// What the native dial takes beyond the shared [`DialOptions`]: `DialOptions` holds one of
/// these on every target (the browser's is empty), so the options struct is declared once.
#[derive(Clone)]
pub(crate) struct DialExtras {
    /// Extra headers for the upgrade request (`DialOptions::header`), checked when dialing.
    pub(crate) headers: Vec<(String, String)>,
    /// The rustls configuration for `wss://` (`DialOptions::tls_config`); `None`: the default.
    pub(crate) tls_config: Option<Arc<rustls::ClientConfig>>,
    /// permessage-deflate (`DialOptions::compression`).
    pub(crate) compression: CompressionOptions,
    /// Whether `DialOptions::compression` was called: the default offer is dropped for an
    /// engine without compression, an explicit one is refused.
    pub(crate) compression_set: bool,
    /// The engine that carries the frames (`DialOptions::engine`).
    pub(crate) engine: crate::Engine,
    /// The proxy to dial through (`DialOptions::proxy`, `no_proxy`; the environment's by default).
    pub(crate) proxy: ProxySetting,
}

impl Default for DialExtras {
    fn default() -> Self {
        DialExtras {
            headers: Vec::new(),
            tls_config: None,
            // Offered like a browser offers it; see `Compression` for the reason.
            compression: CompressionOptions {
                mode: Compression::NoContextTakeover,
                threshold: None,
            },
            compression_set: false,
            engine: crate::Engine::default(),
            proxy: ProxySetting::Env,
        }
    }
}

impl DialExtras {
    /// Adds these fields to `DialOptions`' `Debug` output, header values that may be
    /// credentials redacted.
    pub(crate) fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("headers", &crate::redact::Headers::pairs(&self.headers))
            .field("tls_config", &self.tls_config.is_some())
            .field("compression", &self.compression)
            .field("engine", &self.engine)
            .field("proxy", &self.proxy);
    }
}

impl fmt::Debug for DialExtras {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("DialExtras");
        self.debug_fields(&mut d);
        d.finish()
    }
}

/// What the native dial's `Response` holds beyond the shared fields: the HTTP headers.
#[derive(Clone, Default)]
pub(crate) struct ResponseExtras {
    pub(crate) headers: http::HeaderMap,
}

impl ResponseExtras {
    /// Adds the headers to `Response`'s `Debug` output, values that may be credentials
    /// redacted.
    pub(crate) fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("headers", &crate::redact::Headers::map(&self.headers));
    }
}

/// Headers the handshake sets itself; a caller may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-accept",
];

pub(crate) async fn dial(url: &WsUrl<'_>, opts: &DialOptions) -> Result<(Conn, Response)> {
    compression_mode(&opts.extras)?;
    let (uri, host, port) = target(url)?;
    let proxy = proxy::choose(&opts.extras.proxy, url.secure, bare(&host))?;
    let limit = opts.timeout;
    let dialing = dial_inner(url.secure, opts, proxy.as_ref(), (uri, host, port));
    match tokio::time::timeout(limit, dialing).await {
        Ok(r) => r,
        Err(_) => {
            let through = match &proxy {
                Some(p) => format!(" through the proxy {}", p.shown),
                None => String::new(),
            };
            Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the connection to {}{through} was not open within {limit:?}",
                    crate::redact::url(url.full)
                ),
            ))
        }
    }
}

/// A URL's host as sockets, rustls and proxies want it: IPv6 literals without brackets.
fn bare(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The request URI, host and port a URL dials.
pub(crate) fn target(url: &WsUrl<'_>) -> Result<(http::Uri, String, u16)> {
    let uri: http::Uri = url.full.parse().map_err(|e| {
        let shown = crate::redact::url(url.full);
        Error::with_source(ErrorKind::InvalidUrl, format!("{shown:?}"), e)
    })?;
    let host = uri
        .host()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidUrl,
                format!("{:?}: missing host", crate::redact::url(url.full)),
            )
        })?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if url.secure { 443 } else { 80 });
    Ok((uri, host, port))
}

/// Connects (directly or through `proxy`) to `target` (URI, host, port), then runs TLS if
/// `secure` and the opening handshake.
async fn dial_inner(
    secure: bool,
    opts: &DialOptions,
    proxy: Option<&Proxy>,
    target: (http::Uri, String, u16),
) -> Result<(Conn, Response)> {
    let (uri, host, port) = target;
    let mut extra = HeaderMap::new();
    if !opts.subprotocols.is_empty() {
        let value = HeaderValue::from_str(&opts.subprotocols.join(", ")).map_err(|e| {
            Error::with_source(ErrorKind::InvalidArgument, "invalid subprotocol", e)
        })?;
        extra.insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    for (name, value) in &opts.extras.headers {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("header {name:?}: {why}"),
            )
        };
        let hname = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("not a valid name"))?;
        if RESERVED_HEADERS.contains(&hname.as_str()) {
            return Err(bad("set by the WebSocket handshake itself"));
        }
        let hvalue = HeaderValue::from_str(value).map_err(|_| bad("not a valid value"))?;
        extra.append(hname, hvalue);
    }

    let bare_host = bare(&host).to_owned();
    let tcp = match proxy {
        // The tunnel carries the same bytes a direct connection would, TLS included.
        Some(proxy) => proxy.connect(&bare_host, port).await?,
        None => TcpStream::connect((bare_host.as_str(), port))
            .await
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Connect,
                    format!("could not connect to {host}:{port}"),
                    e,
                )
            })?,
    };
    let _ = tcp.set_nodelay(true);
    let mut transport = if secure {
        let config = match &opts.extras.tls_config {
            Some(c) => c.clone(),
            None => default_tls_config()?,
        };
        let name = rustls::pki_types::ServerName::try_from(bare_host.clone()).map_err(|e| {
            Error::with_source(
                ErrorKind::InvalidUrl,
                format!("{host:?} is not a TLS server name"),
                e,
            )
        })?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Connect,
                    format!("TLS handshake with {host}:{port} failed"),
                    e,
                )
            })?;
        Transport::new(tls)
    } else {
        Transport::new(tcp)
    };

    let settings = Settings {
        read_limit: opts.read_limit,
        close_timeout: opts.close_timeout,
        write_high_water_mark: opts.write_high_water_mark,
        compression_threshold: opts.extras.compression.threshold(),
    };
    let mode = compression_mode(&opts.extras)?;
    if let Some(offer) = extensions::client_offer(mode) {
        extra.insert(
            http::header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(offer),
        );
    }
    let (leftover, headers, negotiated) =
        client_handshake(&mut transport, &uri, &extra, &opts.subprotocols, mode).await?;
    let response = Response {
        subprotocol: negotiated.subprotocol.clone(),
        extensions: negotiated.extensions.clone(),
        extras: ResponseExtras { headers },
    };
    let conn = Conn::upgraded(
        opts.extras.engine,
        transport,
        leftover,
        Role::Client,
        negotiated,
        settings,
    )
    .await;
    Ok((conn, response))
}

/// The compression to offer: the one asked for, none by default with an engine that cannot
/// compress, and `InvalidArgument` when compression was asked for with such an engine.
fn compression_mode(extras: &DialExtras) -> Result<Compression> {
    let mode = extras.compression.mode;
    if extras.engine.compresses() || mode == Compression::Disabled {
        return Ok(mode);
    }
    if extras.compression_set {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "compression ({mode:?}) was asked for with the {:?} engine, which has no \
                 permessage-deflate",
                extras.engine
            ),
        ));
    }
    Ok(Compression::Disabled)
}

/// How long a refused handshake waits for the first bytes of the response body.
const BODY_WAIT: Duration = Duration::from_secs(2);
/// The largest handshake response head read.
const MAX_RESPONSE_HEAD: usize = 16 << 10;

type Handshake = (Vec<u8>, HeaderMap, Negotiated);

/// Sends the upgrade request and checks the answer (RFC 6455 section 4.1). A server that
/// selects none of the offered subprotocols is accepted, as RFC 6455 and Firefox allow. A
/// response head with a bare-LF line end, or one that does not start like HTTP, is refused
/// as soon as those bytes arrive rather than at the dial timeout. A 101 with a repeated
/// `Sec-WebSocket-Accept`, `Sec-WebSocket-Protocol` or `Upgrade` is refused, as browsers do.
async fn client_handshake(
    io: &mut Transport,
    uri: &http::Uri,
    extra: &HeaderMap,
    offered: &[String],
    compression: Compression,
) -> Result<Handshake> {
    let lost = |what: &'static str| {
        move |e: std::io::Error| Error::with_source(ErrorKind::Connect, what, e)
    };
    let key = generate_key()?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    )
    .into_bytes();
    for (name, value) in extra {
        req.extend_from_slice(name.as_str().as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    io.write_all(&req)
        .await
        .map_err(lost("sending the upgrade request failed"))?;
    io.flush()
        .await
        .map_err(lost("sending the upgrade request failed"))?;

    let (mut buf, len) = read_head(io, MAX_RESPONSE_HEAD)
        .await
        .map_err(|e| match e {
            HeadReadError::TooLarge => Error::new(
                ErrorKind::Handshake,
                format!("the handshake response head exceeds {MAX_RESPONSE_HEAD} bytes"),
            ),
            HeadReadError::Io(Some(e)) => Error::with_source(
                ErrorKind::Connect,
                "the connection failed during the opening handshake",
                e,
            ),
            HeadReadError::Io(None) => Error::new(
                ErrorKind::Handshake,
                "the server closed the connection instead of answering the upgrade",
            ),
            HeadReadError::BareLf => Error::new(
                ErrorKind::Handshake,
                "malformed handshake response: a line ends in a bare LF instead of CRLF",
            ),
            HeadReadError::NotHttp { first } => Error::new(
                ErrorKind::Handshake,
                format!("the server's answer is not HTTP: it starts with byte {first:#04x}"),
            ),
        })?;
    let mut raw = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut raw);
    let invalid = |why: String| Error::new(ErrorKind::Handshake, why);
    match resp.parse(&buf[..len]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("incomplete response".to_owned())),
        Err(e) => return Err(invalid(format!("malformed handshake response: {e}"))),
    }
    let status = resp.code.unwrap_or(0);
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            headers.append(n, v);
        }
    }
    let mut body = buf.split_off(len);
    if status != 101 {
        let want = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .unwrap_or(HTTP_BODY_PREFIX)
            .min(HTTP_BODY_PREFIX);
        let _ = tokio::time::timeout(BODY_WAIT, async {
            let mut chunk = [0u8; 1024];
            while body.len() < want {
                match io.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        return Err(Error::handshake_status(status, &body));
    }
    // RFC 6455 11.3.3 and 11.3.4: `Sec-WebSocket-Accept` and `Sec-WebSocket-Protocol` "MUST
    // NOT appear more than once in an HTTP response"; repeated, their combined value (RFC
    // 9110 5.3) is no accept key and no single offered subprotocol, so 4.1 requirements 4 and
    // 6 fail the connection, as browsers do. `Upgrade` likewise: its value must be exactly
    // "websocket" (requirement 2). `Connection` is a token list and may repeat (3).
    for name in [SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL, UPGRADE] {
        if headers.get_all(&name).iter().count() > 1 {
            return Err(invalid(format!(
                "the 101 response has more than one {name} header"
            )));
        }
    }
    let upgrade_ok = headers
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"));
    if !upgrade_ok || !has_token(&headers, CONNECTION, "upgrade") {
        return Err(invalid(
            "the 101 response lacks `Upgrade: websocket` / `Connection: Upgrade`".to_owned(),
        ));
    }
    let expected = derive_accept_key(key.as_bytes());
    if headers.get(SEC_WEBSOCKET_ACCEPT).map(|v| v.as_bytes()) != Some(expected.as_bytes()) {
        return Err(invalid("wrong or missing Sec-WebSocket-Accept".to_owned()));
    }
    let ext_values = headers.get_all(http::header::SEC_WEBSOCKET_EXTENSIONS);
    let deflate = extensions::client_check(ext_values.iter().map(|v| v.as_bytes()), compression)
        .map_err(invalid)?;
    // As stated (several header lines joined as one list); only ASCII can have passed the
    // check above.
    let ext_text = ext_values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    let subprotocol = match headers.get(SEC_WEBSOCKET_PROTOCOL) {
        None => None,
        Some(v) => {
            let p = v.to_str().unwrap_or("").trim();
            if !offered.iter().any(|o| o == p) {
                return Err(invalid(format!(
                    "the server selected subprotocol {p:?}, which was not offered"
                )));
            }
            Some(p.to_owned())
        }
    };
    let negotiated = Negotiated {
        subprotocol,
        extensions: ext_text,
        deflate,
    };
    Ok((body, headers, negotiated))
}

/// The default rustls configuration, built once with the `ring` provider passed explicitly.
fn default_tls_config() -> Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<std::result::Result<Arc<rustls::ClientConfig>, String>> =
        OnceLock::new();
    CONFIG
        .get_or_init(build_tls_config)
        .clone()
        .map_err(|why| Error::new(ErrorKind::InvalidArgument, why))
}

fn build_tls_config() -> std::result::Result<Arc<rustls::ClientConfig>, String> {
    #[allow(unused_mut)]
    let mut roots = rustls::RootCertStore::empty();
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "native-roots")]
    {
        let loaded = rustls_native_certs::load_native_certs();
        for cert in loaded.certs {
            let _ = roots.add(cert);
        }
    }
    if roots.is_empty() {
        return Err(
            "no root certificates for wss://: enable the `webpki-roots` or \
                    `native-roots` feature, or pass DialOptions::tls_config"
                .to_owned(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("rustls configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The client handshake against a canned response (see `crate::fuzz::client_handshake`).
#[cfg(fuzzing)]
pub(crate) async fn handshake_for_fuzzing(
    response: &[u8],
    offered: &[String],
) -> std::result::Result<Option<String>, ErrorKind> {
    let (client, mut server) = tokio::io::duplex(64 << 10);
    let response = response.to_vec();
    let answer = async move {
        let mut req = Vec::new();
        let mut byte = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") {
            match server.read(&mut byte).await {
                Ok(1) => req.push(byte[0]),
                _ => return,
            }
        }
        let text = String::from_utf8_lossy(&req);
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap_or("")
            .trim()
            .to_owned();
        let accept = derive_accept_key(key.as_bytes());
        let mut out = Vec::with_capacity(response.len());
        let mut rest = &response[..];
        while let Some(i) = rest.windows(8).position(|w| w == b"{ACCEPT}") {
            out.extend_from_slice(&rest[..i]);
            out.extend_from_slice(accept.as_bytes());
            rest = &rest[i + 8..];
        }
        out.extend_from_slice(rest);
        let _ = server.write_all(&out).await;
        let _ = server.shutdown().await;
    };
    let uri: http::Uri = "ws://fuzz.test/"
        .parse()
        .map_err(|_| ErrorKind::InvalidUrl)?;
    let mut transport = Transport::new(client);
    let extra = HeaderMap::new();
    // Compression offered, so the extension check is fuzzed too.
    let handshake = client_handshake(
        &mut transport,
        &uri,
        &extra,
        offered,
        Compression::ContextTakeover,
    );
    let (_, result) = tokio::join!(answer, handshake);
    result.map(|(_, _, n)| n.subprotocol).map_err(|e| e.kind())
}
