//! Native server side: reading and checking the upgrade request, answering it, and wrapping
//! the stream. The checks are shared by `accept` (any stream) and `accept_http` (hyper).

use http::header::{
    CONNECTION, HOST, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode as HttpStatus, Uri, Version};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::extensions;
use super::frame::Role;
use super::handshake::derive_accept_key;
use super::http1::{has_token, read_head, HeadReadError, TLS_HANDSHAKE_RECORD};
use super::io::{Io, Transport};
use super::{Conn, Negotiated, Settings};
use crate::accept::{to_header_pairs, AcceptOptions, UpgradeRequest, MAX_REQUEST_HEAD};
use crate::error::{Error, ErrorKind, Result};

/// Response headers the handshake sets itself, which the `on_request` hook may not add (an
/// extension the engine does not run would corrupt the stream).
const HOOK_RESERVED: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// How many headers an upgrade request may have.
const MAX_HEADERS: usize = 64;

pub(crate) fn settings(opts: &AcceptOptions) -> Settings {
    Settings {
        read_limit: opts.read_limit,
        close_timeout: opts.close_timeout,
        write_high_water_mark: opts.write_high_water_mark,
        compression_threshold: opts.compression.threshold(),
    }
}

pub(crate) async fn wrap_server(
    io: impl Io,
    leftover: Vec<u8>,
    negotiated: Negotiated,
    settings: Settings,
    engine: crate::Engine,
) -> Conn {
    Conn::upgraded(
        engine,
        Transport::new(io),
        leftover,
        Role::Server,
        negotiated,
        settings,
    )
    .await
}

pub(crate) async fn accept_stream<S: Io>(mut stream: S, opts: &AcceptOptions) -> Result<Conn> {
    let limit = opts.handshake_timeout;
    let head = match tokio::time::timeout(limit, read_request(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(HeadError::Lost(e))) => return Err(e),
        Ok(Err(HeadError::Bad(status, why))) => {
            let resp = plain_response(status, why.clone());
            refuse_and_close(&mut stream, &resp, limit).await;
            return Err(Error::new(ErrorKind::Rejected, why));
        }
        Err(_) => {
            let resp = plain_response(HttpStatus::REQUEST_TIMEOUT, "upgrade request timed out");
            refuse_and_close(&mut stream, &resp, limit).await;
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("no complete upgrade request within {limit:?}"),
            ));
        }
    };
    let (method, version, uri, headers, leftover) = head;
    match negotiate(&method, version, &uri, &headers, opts) {
        Ok((resp, negotiated)) => {
            match tokio::time::timeout(
                limit,
                write_response(&mut stream, &resp.map(|()| String::new())),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(Error::with_source(
                        ErrorKind::ConnectionLost,
                        "could not send the 101 response",
                        e,
                    ))
                }
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        "could not send the 101 response in time",
                    ))
                }
            }
            Ok(wrap_server(stream, leftover, negotiated, settings(opts), opts.engine).await)
        }
        Err(refusal) => {
            let (resp, err) = *refusal;
            refuse_and_close(&mut stream, &resp, limit).await;
            Err(err)
        }
    }
}

enum HeadError {
    Lost(Error),
    Bad(HttpStatus, String),
}

type Head = (Method, Version, Uri, HeaderMap, Vec<u8>);

/// Reads one HTTP request head; returns it with any bytes that followed it.
async fn read_request<S: Io>(stream: &mut S) -> std::result::Result<Head, HeadError> {
    let (mut buf, len) = match read_head(stream, MAX_REQUEST_HEAD).await {
        Ok(r) => r,
        Err(HeadReadError::TooLarge) => {
            return Err(HeadError::Bad(
                HttpStatus::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("the upgrade request head exceeds {MAX_REQUEST_HEAD} bytes"),
            ))
        }
        Err(HeadReadError::BareLf) => {
            return Err(HeadError::Bad(
                HttpStatus::BAD_REQUEST,
                "malformed HTTP request: a line ends in a bare LF; HTTP/1.1 lines end in CRLF"
                    .to_owned(),
            ))
        }
        Err(HeadReadError::NotHttp { first }) if first == TLS_HANDSHAKE_RECORD => {
            return Err(HeadError::Bad(
                HttpStatus::BAD_REQUEST,
                "the client started a TLS handshake on this plain-text WebSocket port: \
                 connect with ws:// here, or with wss:// to the TLS port"
                    .to_owned(),
            ))
        }
        Err(HeadReadError::NotHttp { first }) => {
            return Err(HeadError::Bad(
                HttpStatus::BAD_REQUEST,
                format!("not an HTTP request: it starts with byte {first:#04x}"),
            ))
        }
        Err(HeadReadError::Io(e)) => {
            let msg = "the client closed the connection before sending a complete upgrade request";
            return Err(HeadError::Lost(match e {
                Some(e) => Error::with_source(ErrorKind::ConnectionLost, msg, e),
                None => Error::new(ErrorKind::ConnectionLost, msg),
            }));
        }
    };
    let bad = |why: String| HeadError::Bad(HttpStatus::BAD_REQUEST, why);
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    match req.parse(&buf[..len]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete HTTP request".to_owned())),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::Bad(
                HttpStatus::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("the upgrade request has more than {MAX_HEADERS} headers"),
            ))
        }
        Err(httparse::Error::Version) => {
            return Err(HeadError::Bad(
                HttpStatus::HTTP_VERSION_NOT_SUPPORTED,
                not_http_1_1("another version"),
            ))
        }
        Err(e) => return Err(bad(format!("malformed HTTP request: {e}"))),
    }
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| bad("invalid method".to_owned()))?;
    let uri: Uri = req
        .path
        .unwrap_or("")
        .parse()
        .map_err(|_| bad("invalid request target".to_owned()))?;
    // Checked by `negotiate`, as for `accept_http`'s requests.
    let version = match req.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_09,
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = http::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| bad("invalid header name".to_owned()))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| bad("invalid header value".to_owned()))?;
        headers.append(name, value);
    }
    let leftover = buf.split_off(len);
    Ok((method, version, uri, headers, leftover))
}

/// Sends a refusal, then closes gently: the write side first, then a bounded drain of what the
/// client still sends, so unread request bytes do not turn the close into a reset that could
/// destroy the response before the client reads it.
async fn refuse_and_close<S: Io>(stream: &mut S, resp: &Response<String>, limit: Duration) {
    let _ = tokio::time::timeout(limit, write_response(stream, resp)).await;
    let _ = tokio::time::timeout(LINGER, async {
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// How long and how much a refused client is drained before the socket is dropped.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 << 10;

async fn write_response<S: Io>(stream: &mut S, resp: &Response<String>) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        resp.status().as_u16(),
        resp.status().canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in resp.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(resp.body().as_bytes());
    stream.write_all(&out).await?;
    stream.flush().await
}

/// A `text/plain` refusal that closes the connection.
fn plain_response(status: HttpStatus, reason: impl Into<String>) -> Response<String> {
    let mut body = reason.into();
    body.push('\n');
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let len = resp.body().len();
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// The HTTP response refusing an upgrade and the error `accept` returns (boxed: cold path).
pub(crate) type Refusal = Box<(Response<String>, Error)>;

fn refuse(status: HttpStatus, why: impl Into<String>) -> Refusal {
    let why = why.into();
    Box::new((
        plain_response(status, why.clone()),
        Error::new(ErrorKind::Rejected, why),
    ))
}

/// A 500 for the client and an `InvalidArgument` error for the server's author.
fn server_bug(why: String) -> Refusal {
    let (resp, _) = *refuse(HttpStatus::INTERNAL_SERVER_ERROR, "server error");
    Box::new((resp, Error::new(ErrorKind::InvalidArgument, why)))
}

pub(crate) fn offered_subprotocols(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A valid `Sec-WebSocket-Key` is 16 bytes in base64: 22 characters and `==`.
fn valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        // The last character before the padding carries 2 bits: one of AQgw.
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
}

/// Why a request that is not HTTP/1.1 is refused with 505; `version` names its version.
fn not_http_1_1(version: &str) -> String {
    format!("WebSocket upgrades need HTTP/1.1 (RFC 6455 4.1), not {version}")
}

/// Checks an upgrade request and builds the `101` response, or the refusal to send. The one
/// check of `accept` and `accept_http`: HTTP/1.1, then the upgrade headers, GET, version
/// 13, key, `Host`, origin, the hook and the subprotocol.
pub(crate) fn negotiate(
    method: &Method,
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
    opts: &AcceptOptions,
) -> std::result::Result<(Response<()>, Negotiated), Refusal> {
    if !opts.engine.compresses() && opts.compression.mode != crate::Compression::Disabled {
        return Err(server_bug(format!(
            "AcceptOptions ask for compression ({:?}) with the {:?} engine, which has no \
             permessage-deflate",
            opts.compression.mode, opts.engine
        )));
    }
    if version != Version::HTTP_11 {
        let what = match version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2 (RFC 8441 upgrades are not supported)",
            Version::HTTP_3 => "HTTP/3",
            _ => "another HTTP version",
        };
        return Err(refuse(
            HttpStatus::HTTP_VERSION_NOT_SUPPORTED,
            not_http_1_1(what),
        ));
    }
    if !has_token(headers, UPGRADE, "websocket") || !has_token(headers, CONNECTION, "upgrade") {
        let (mut resp, err) = *refuse(
            HttpStatus::UPGRADE_REQUIRED,
            "this endpoint only speaks WebSocket: expected `Connection: Upgrade` and \
             `Upgrade: websocket`",
        );
        resp.headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        resp.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return Err(Box::new((resp, err)));
    }
    if method != Method::GET {
        let (mut resp, err) = *refuse(
            HttpStatus::METHOD_NOT_ALLOWED,
            format!("a WebSocket upgrade must use GET, not {method}"),
        );
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET"));
        return Err(Box::new((resp, err)));
    }
    let versions: Vec<_> = headers.get_all(SEC_WEBSOCKET_VERSION).iter().collect();
    if versions.len() != 1 || versions[0].as_bytes() != b"13" {
        let (mut resp, err) = *refuse(
            HttpStatus::UPGRADE_REQUIRED,
            "unsupported Sec-WebSocket-Version; only 13 is supported",
        );
        resp.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return Err(Box::new((resp, err)));
    }
    let keys: Vec<_> = headers.get_all(SEC_WEBSOCKET_KEY).iter().collect();
    if keys.len() != 1 || !valid_key(keys[0].as_bytes()) {
        return Err(refuse(
            HttpStatus::BAD_REQUEST,
            "missing, repeated or malformed Sec-WebSocket-Key",
        ));
    }
    let key = keys[0].as_bytes();
    if headers.get_all(HOST).iter().count() != 1 {
        return Err(refuse(
            HttpStatus::BAD_REQUEST,
            "missing or repeated Host header",
        ));
    }
    check_origin(headers, opts)?;
    let ext_values = headers.get_all(http::header::SEC_WEBSOCKET_EXTENSIONS);
    let deflate = extensions::server_accept(
        ext_values.iter().map(|v| v.as_bytes()),
        opts.compression.mode,
    )
    .map_err(|why| {
        refuse(
            HttpStatus::BAD_REQUEST,
            format!("malformed Sec-WebSocket-Extensions: {why}"),
        )
    })?;

    let req = UpgradeRequest {
        method,
        uri,
        headers,
    };
    let offered = offered_subprotocols(headers);
    let decision = match &opts.hook {
        Some(hook) => hook(&req).map_err(|r| {
            let status = HttpStatus::from_u16(r.status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(HttpStatus::FORBIDDEN);
            let (mut resp, _) = *refuse(status, r.reason.clone());
            for (n, v) in to_header_pairs(&r.headers) {
                resp.headers_mut().append(n, v);
            }
            let err = Error::new(
                ErrorKind::Rejected,
                format!("refused by the on_request hook with {status}: {}", r.reason),
            );
            Box::new((resp, err))
        })?,
        None => crate::accept::Upgrade::new(),
    };
    let subprotocol = match decision.subprotocol {
        Some(p) if offered.contains(&p.as_str()) => Some(p),
        Some(p) => {
            return Err(server_bug(format!(
                "the on_request hook picked subprotocol {p:?}, which the client did not offer"
            )))
        }
        None => opts
            .subprotocols
            .iter()
            .find(|p| offered.contains(&p.as_str()))
            .cloned(),
    };

    let mut resp = Response::new(());
    *resp.status_mut() = HttpStatus::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = HeaderValue::from_str(&derive_accept_key(key))
        .map_err(|_| refuse(HttpStatus::BAD_REQUEST, "malformed Sec-WebSocket-Key"))?;
    h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(p) = &subprotocol {
        if let Ok(v) = HeaderValue::from_str(p) {
            h.insert(SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
    if let Some((name, _)) = decision.headers.iter().find(|(n, _)| {
        HOOK_RESERVED
            .iter()
            .any(|r| n.trim().eq_ignore_ascii_case(r))
    }) {
        return Err(server_bug(format!(
            "the on_request hook set the {name} header, which the handshake sets itself"
        )));
    }
    if decision.headers.len() != to_header_pairs(&decision.headers).len() {
        return Err(server_bug(
            "the on_request hook added an invalid response header".to_owned(),
        ));
    }
    for (n, v) in to_header_pairs(&decision.headers) {
        h.append(n, v);
    }
    let (deflate, extensions) = match deflate {
        Some((agreement, value)) => {
            // Built from tokens only, so always a valid header value.
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(http::header::SEC_WEBSOCKET_EXTENSIONS, v);
            }
            (Some(agreement), value)
        }
        None => (None, String::new()),
    };
    Ok((
        resp,
        Negotiated {
            subprotocol,
            extensions,
            deflate,
        },
    ))
}

fn check_origin(headers: &HeaderMap, opts: &AcceptOptions) -> std::result::Result<(), Refusal> {
    if opts.insecure_skip_verify {
        return Ok(());
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let forbidden = |why: String| refuse(HttpStatus::FORBIDDEN, why);
    let origin = origin
        .to_str()
        .map_err(|_| forbidden("the Origin header is not valid text".to_owned()))?;
    let Some(origin_host) = origin_host(origin) else {
        return Err(forbidden(format!("origin {origin:?} is not allowed")));
    };
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if origin_host.eq_ignore_ascii_case(host) {
        return Ok(());
    }
    if opts
        .origin_patterns
        .iter()
        .any(|p| glob_match(p.as_bytes(), origin_host.as_bytes()))
    {
        return Ok(());
    }
    Err(forbidden(format!(
        "origin {origin:?} is not allowed: not the same host as {host:?} and not in origin_patterns"
    )))
}

/// The `host[:port]` of a serialized origin such as `https://app.example.com:8443`.
pub(crate) fn origin_host(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    if scheme.is_empty() || rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    Some(rest)
}

/// Case-insensitive glob: `*` matches any run of bytes but `/`, `?` exactly one byte.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        // The wildcard first: a `*` in the pattern is never a literal match for a `*` in
        // the text (found by fuzz/fuzz_targets/origin.rs).
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len()
            && (pattern[p] == b'?' || pattern[p].eq_ignore_ascii_case(&text[t]))
        {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            // Like Go's path.Match, `*` does not cross a `/`.
            if text[st] == b'/' {
                return false;
            }
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match(b"*.example.com", b"a.example.com"));
        assert!(glob_match(b"*.example.com", b"a.b.EXAMPLE.com"));
        assert!(!glob_match(b"*.example.com", b"example.com"));
        assert!(!glob_match(b"*.example.com", b"evil.com/.example.com"));
        assert!(!glob_match(b"example.com", b"example.com.evil.net"));
        assert!(glob_match(b"localhost:*", b"localhost:3000"));
        assert!(glob_match(b"h?st", b"host"));
        assert!(glob_match(b"*", b""));
    }

    /// Found by the `origin` fuzz target: the pattern `*` did not match a text starting with
    /// a literal `*`, because the `*` was first tried as a literal character.
    #[test]
    fn glob_star_matches_a_literal_star() {
        assert!(glob_match(b"*", b"*..x\xff\xff\xff\x04xm"));
        assert!(glob_match(b"*", b"*"));
        assert!(glob_match(b"a*", b"a**b"));
        assert!(!glob_match(b"*", b"*/x"));
    }

    #[test]
    fn origins() {
        assert_eq!(origin_host("https://a.b:1"), Some("a.b:1"));
        assert_eq!(origin_host("null"), None);
        assert_eq!(origin_host("https://a.b/path"), None);
        assert_eq!(origin_host("https://user@a.b"), None);
    }

    #[test]
    fn keys() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZR=="));
        assert!(!valid_key(b""));
    }
}

/// The origin check on a request with these header values (see `crate::fuzz`).
#[cfg(fuzzing)]
pub(crate) fn origin_allowed_for_fuzzing(origin: &[u8], host: &[u8], patterns: &[String]) -> bool {
    let mut headers = HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_bytes(origin) {
        headers.insert(ORIGIN, v);
    }
    if let Ok(v) = http::HeaderValue::from_bytes(host) {
        headers.insert(HOST, v);
    }
    let opts = AcceptOptions::new().origin_patterns(patterns.iter().cloned());
    check_origin(&headers, &opts).is_ok()
}
