//! Dialing through a proxy: which one (`DialOptions::proxy`, `no_proxy`, or the environment
//! as curl reads it), and the tunnel through it: HTTP `CONNECT` (RFC 9110 section 9.3.6,
//! with Basic credentials) or SOCKS5 (RFC 1928, with RFC 1929 username and password; the
//! handshake itself is tokio-socks'). What comes out is a TCP stream to the origin, on which
//! the dial then runs TLS (`wss://`) and the opening handshake as it would directly.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::{HeaderName, HeaderValue};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_socks::TargetAddr;

use super::handshake::base64;
use super::http1::{read_head, HeadReadError};
use super::io::Io;
use crate::error::{Error, ErrorKind, Result};

/// Longest `CONNECT` response head read from a proxy.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// Where the dial's proxy comes from (`DialOptions::proxy`, `DialOptions::no_proxy`).
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) enum ProxySetting {
    /// From the environment, as curl reads it (the default).
    #[default]
    Env,
    /// Never through a proxy.
    Direct,
    /// Through this proxy URL, for every destination.
    Url(String),
}

impl fmt::Debug for ProxySetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxySetting::Env => f.write_str("Env"),
            ProxySetting::Direct => f.write_str("Direct"),
            ProxySetting::Url(url) => f.debug_tuple("Url").field(&redacted(url)).finish(),
        }
    }
}

/// A proxy URL with its credentials replaced by `…`. A URL without a scheme, which curl
/// reads as `http://`, is shown with it, so its credentials are found too.
fn redacted(url: &str) -> String {
    let url = url.trim();
    if url.contains("://") {
        crate::redact::url(url).into_owned()
    } else {
        crate::redact::url(&format!("http://{url}")).into_owned()
    }
}

/// The proxy protocols isosock speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// HTTP `CONNECT` to a plain-text HTTP proxy.
    Http,
    /// SOCKS5, the origin's name resolved here and sent as an address.
    Socks5,
    /// SOCKS5, the origin's name sent to the proxy to resolve ("socks5h" in curl's terms).
    Socks5h,
}

/// One proxy, parsed from its URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    pub(crate) scheme: Scheme,
    /// Without IPv6 brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Percent-decoded user name and password.
    auth: Option<(String, String)>,
    /// The URL as errors show it, credentials replaced by `…`, and where it came from:
    /// `http://…@proxy:3128 (from https_proxy)`.
    pub(crate) shown: String,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("url", &self.shown)
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl Proxy {
    /// Parses a proxy URL: `http://`, `socks5://` or `socks5h://`, with optional
    /// `user:password@` (percent-encoded) and port (default 80 for `http`, 1080 for SOCKS); no
    /// scheme means `http://`, as curl reads it. `source` names where the URL came from, for
    /// the error.
    pub(crate) fn parse(url: &str, source: &str) -> Result<Proxy> {
        let url = url.trim();
        let shown = redacted(url);
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("proxy {shown:?} ({source}): {why}"),
            )
        };
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        let scheme = scheme.to_ascii_lowercase();
        let (scheme, default_port) = match scheme.as_str() {
            "http" => (Scheme::Http, 80),
            "socks5" => (Scheme::Socks5, 1080),
            "socks5h" => (Scheme::Socks5h, 1080),
            "https" => {
                return Err(bad(
                    "TLS to the proxy itself (https://) is not supported; use an http:// \
                     proxy (wss:// stays encrypted end to end inside its tunnel) or socks5h://",
                ))
            }
            _ => return Err(bad("the scheme must be http://, socks5:// or socks5h://")),
        };
        // Everything up to the first `/`, `?` or `#` is the authority; a path is ignored.
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("no valid host:port"))?;
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number up to 65535"))?,
            None => default_port,
        };
        let auth = match userinfo {
            None => None,
            Some(info) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                let decode = |s: &str| {
                    percent_decode(s).ok_or_else(|| bad("bad percent-encoding in the credentials"))
                };
                let (user, pass) = (decode(user)?, decode(pass)?);
                if scheme != Scheme::Http {
                    // RFC 1929: one length byte each, and a user name of at least one byte.
                    if user.is_empty() || user.len() > 255 || pass.len() > 255 {
                        return Err(bad(
                            "SOCKS5 user name must be 1 to 255 bytes, the password at most 255",
                        ));
                    }
                }
                Some((user, pass))
            }
        };
        Ok(Proxy {
            scheme,
            host: host.to_owned(),
            port,
            auth,
            shown: format!("{shown} (from {source})"),
        })
    }

    /// Opens a TCP connection to the proxy and a tunnel through it to `host:port` (`host`
    /// without IPv6 brackets). Dropping the future closes whatever it opened.
    pub(crate) async fn connect(&self, host: &str, port: u16) -> Result<TcpStream> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Proxy,
                    format!("could not connect to the proxy {}", self.shown),
                    e,
                )
            })?;
        let _ = tcp.set_nodelay(true);
        self.tunnel(tcp, host, port).await
    }

    /// Opens the tunnel to `host:port` over `stream`, a connection to the proxy.
    pub(crate) async fn tunnel<S: Io>(&self, mut stream: S, host: &str, port: u16) -> Result<S> {
        match self.scheme {
            Scheme::Http => {
                self.http_connect(&mut stream, host, port).await?;
                Ok(stream)
            }
            Scheme::Socks5 | Scheme::Socks5h => self.socks5(stream, host, port).await,
        }
    }

    /// Sends `CONNECT host:port` and reads the answer: any 2xx opens the tunnel.
    async fn http_connect<S: Io>(&self, tcp: &mut S, host: &str, port: u16) -> Result<()> {
        let authority = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{host}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some((user, pass)) = &self.auth {
            req.push_str("Proxy-Authorization: Basic ");
            req.push_str(&base64(format!("{user}:{pass}").as_bytes()));
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let lost = |e: std::io::Error| {
            Error::with_source(
                ErrorKind::Proxy,
                format!(
                    "the connection to the proxy {} failed during CONNECT",
                    self.shown
                ),
                e,
            )
        };
        tcp.write_all(req.as_bytes()).await.map_err(lost)?;
        let (buf, len) = read_head(tcp, MAX_CONNECT_HEAD)
            .await
            .map_err(|e| match e {
                HeadReadError::Io(Some(e)) => lost(e),
                other => self.error(None, connect_head_problem(&other)),
            })?;
        let answer = parse_connect_response(&buf[..len]).map_err(|why| self.error(None, why))?;
        match answer.status {
            // Nothing may come from the origin before the client speaks (its upgrade request
            // or TLS hello): bytes after a 2xx head are the proxy's, and it is broken. (A
            // refusal's body is fine: it is never read.)
            200..=299 if len != buf.len() => Err(self.error(
                None,
                "the proxy sent bytes after its 2xx answer to CONNECT".into(),
            )),
            200..=299 => Ok(()),
            407 => {
                let challenge = match answer.challenge {
                    Some(c) => format!("it asks for `Proxy-Authenticate: {c}`"),
                    None => "it sent no Proxy-Authenticate challenge".to_owned(),
                };
                let sent = if self.auth.is_some() {
                    "the credentials were refused"
                } else {
                    "no credentials were given"
                };
                Err(self.error(
                    Some(407),
                    format!("HTTP 407 Proxy Authentication Required: {sent}; {challenge}"),
                ))
            }
            status => Err(self.error(Some(status), format!("HTTP {status} {}", answer.reason))),
        }
    }

    /// The SOCKS5 handshake (tokio-socks), with credentials when the URL has them.
    async fn socks5<S: Io>(&self, tcp: S, host: &str, port: u16) -> Result<S> {
        use tokio_socks::tcp::Socks5Stream;

        let target = self.socks_target(host, port).await?;
        let stream = match &self.auth {
            Some((user, pass)) => {
                Socks5Stream::connect_with_password_and_socket(tcp, target, user, pass).await
            }
            None => Socks5Stream::connect_with_socket(tcp, target).await,
        };
        match stream {
            Ok(s) => Ok(s.into_inner()),
            Err(tokio_socks::Error::Io(e)) => Err(Error::with_source(
                ErrorKind::Proxy,
                format!(
                    "the connection to the proxy {} failed during the SOCKS5 handshake",
                    self.shown
                ),
                e,
            )),
            Err(e) => {
                let why = socks_problem(&e);
                Err(Error::with_source(
                    ErrorKind::Proxy,
                    format!("proxy {} refused the tunnel: {why}", self.shown),
                    e,
                ))
            }
        }
    }

    /// The address a SOCKS5 request names: an IP address as it is; a name as it is for
    /// `socks5h://`, resolved here (first address) for `socks5://`.
    async fn socks_target(&self, host: &str, port: u16) -> Result<TargetAddr<'static>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(TargetAddr::Ip(SocketAddr::new(ip, port)));
        }
        if self.scheme == Scheme::Socks5h {
            return Ok(TargetAddr::Domain(host.to_owned().into(), port));
        }
        let mut resolved = tokio::net::lookup_host((host, port)).await.map_err(|e| {
            Error::with_source(
                ErrorKind::Connect,
                format!(
                    "could not resolve {host} (socks5:// resolves names here; socks5h:// \
                     lets the proxy do it)"
                ),
                e,
            )
        })?;
        let addr = resolved.next().ok_or_else(|| {
            Error::new(ErrorKind::Connect, format!("{host} resolved to no address"))
        })?;
        Ok(TargetAddr::Ip(addr))
    }

    /// A `Proxy` error naming this proxy, with the HTTP status when there is one.
    fn error(&self, status: Option<u16>, why: String) -> Error {
        Error::proxy(
            format!("proxy {} refused the tunnel: {why}", self.shown),
            status,
        )
    }
}

/// Opens a tunnel through `proxy_url` to `host:port` over an in-memory stream whose reads
/// return `reply`, then end: the fuzz target's way into the CONNECT and SOCKS5 clients.
#[cfg(fuzzing)]
pub(crate) async fn tunnel_for_fuzzing(
    proxy_url: &str,
    reply: &[u8],
    host: &str,
    port: u16,
) -> std::result::Result<(), ErrorKind> {
    use tokio::io::AsyncWriteExt as _;
    let proxy = Proxy::parse(proxy_url, "fuzz").map_err(|e| e.kind())?;
    let (ours, mut theirs) = tokio::io::duplex(1 << 16);
    theirs
        .write_all(reply)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    // EOF after the reply; what the client writes stays unread in the pipe.
    theirs.shutdown().await.map_err(|_| ErrorKind::Connect)?;
    let result = proxy
        .tunnel(ours, host, port)
        .await
        .map(drop)
        .map_err(|e| e.kind());
    drop(theirs);
    result
}

/// What a SOCKS5 failure means, in words that say who to ask.
fn socks_problem(e: &tokio_socks::Error) -> String {
    use tokio_socks::Error as E;
    match e {
        E::PasswordAuthFailure(code) => {
            format!("SOCKS5 user name and password refused (status {code})")
        }
        E::NoAcceptableAuthMethods => {
            "SOCKS5: no acceptable authentication method (the proxy may want a user name and \
             password)"
                .to_owned()
        }
        E::GeneralSocksServerFailure => "SOCKS5 reply 1: general server failure".to_owned(),
        E::ConnectionNotAllowedByRuleset => {
            "SOCKS5 reply 2: connection not allowed by its rules".to_owned()
        }
        E::NetworkUnreachable => "SOCKS5 reply 3: network unreachable".to_owned(),
        E::HostUnreachable => "SOCKS5 reply 4: host unreachable".to_owned(),
        E::ConnectionRefused => "SOCKS5 reply 5: connection refused by the origin".to_owned(),
        E::TtlExpired => "SOCKS5 reply 6: TTL expired".to_owned(),
        E::CommandNotSupported => "SOCKS5 reply 7: command not supported".to_owned(),
        E::AddressTypeNotSupported => "SOCKS5 reply 8: address type not supported".to_owned(),
        other => format!("SOCKS5: {other}"),
    }
}

/// Why a `CONNECT` answer's head could not be read (`Io(Some)` is handled by the caller).
fn connect_head_problem(e: &HeadReadError) -> String {
    match e {
        HeadReadError::Io(_) => "it closed the connection instead of answering CONNECT".into(),
        HeadReadError::TooLarge => {
            format!("its CONNECT answer's head exceeds {MAX_CONNECT_HEAD} bytes")
        }
        HeadReadError::BareLf => "its CONNECT answer has a line ending in a bare LF".into(),
        HeadReadError::NotHttp { first } => {
            format!("its answer to CONNECT is not HTTP (it starts with byte {first:#04x}; is it a SOCKS proxy?)")
        }
    }
}

/// A proxy's answer to `CONNECT`, as far as the dial needs it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ConnectResponse {
    pub(crate) status: u16,
    pub(crate) reason: String,
    /// `Proxy-Authenticate`, when present (several joined by `, `).
    pub(crate) challenge: Option<String>,
}

/// Parses a whole response head (through the blank line).
pub(crate) fn parse_connect_response(head: &[u8]) -> std::result::Result<ConnectResponse, String> {
    let mut raw = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut raw);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("its CONNECT answer is incomplete".into()),
        Err(e) => return Err(format!("its CONNECT answer is not valid HTTP: {e}")),
    }
    let status = resp.code.unwrap_or(0);
    let reason: String = resp
        .reason
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    let name = HeaderName::from_static("proxy-authenticate");
    let challenges: Vec<String> = resp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name.as_str()))
        .filter_map(|h| HeaderValue::from_bytes(h.value).ok())
        .filter_map(|v| v.to_str().ok().map(|s| s.chars().take(200).collect()))
        .collect();
    Ok(ConnectResponse {
        status,
        reason,
        challenge: (!challenges.is_empty()).then(|| challenges.join(", ")),
    })
}

/// Splits `host[:port]` (IPv6 in brackets); the host comes back without brackets.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    valid.then_some((host, port))
}

/// Decodes `%XX` escapes; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The proxy for a dial to `host` (without brackets) over `ws://` (`secure` false) or
/// `wss://`, or `None` to connect directly.
pub(crate) fn choose(setting: &ProxySetting, secure: bool, host: &str) -> Result<Option<Proxy>> {
    match setting {
        ProxySetting::Direct => Ok(None),
        ProxySetting::Url(url) => Proxy::parse(url, "DialOptions::proxy").map(Some),
        ProxySetting::Env => from_env(&|name| std::env::var(name).ok(), secure, host),
    }
}

/// The environment's proxy for a dial, read through `var` (the process environment, or a
/// table in tests). curl's rules, with the differences the crate docs list:
///
/// - `wss://` reads `https_proxy`, then `HTTPS_PROXY`; `ws://` reads `http_proxy`, then
///   `HTTP_PROXY` (the upper-case one not in a CGI program, where `REQUEST_METHOD` is set and
///   a request's `Proxy:` header would arrive as `HTTP_PROXY`); then `all_proxy`,
///   `ALL_PROXY`. The lower-case name wins; an empty value counts as unset.
/// - `no_proxy`, then `NO_PROXY`: comma- or space-separated; `*` alone bypasses every host;
///   a name matches itself and its subdomains (a leading `.` is ignored); an IP address or
///   CIDR block matches an IP host in it.
/// - Loopback hosts are proxied like any other unless `no_proxy` lists them, as in curl (Go
///   exempts them; isosock follows curl and reqwest).
pub(crate) fn from_env(
    var: &dyn Fn(&str) -> Option<String>,
    secure: bool,
    host: &str,
) -> Result<Option<Proxy>> {
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let first = |names: &[&'static str]| names.iter().find_map(|n| get(n).map(|v| (*n, v)));
    if let Some((_, list)) = first(&["no_proxy", "NO_PROXY"]) {
        if no_proxy_matches(&list, host) {
            return Ok(None);
        }
    }
    let cgi = get("REQUEST_METHOD").is_some();
    let scheme_vars: &[&'static str] = match (secure, cgi) {
        (true, _) => &["https_proxy", "HTTPS_PROXY"],
        (false, false) => &["http_proxy", "HTTP_PROXY"],
        (false, true) => &["http_proxy"],
    };
    let found = first(scheme_vars).or_else(|| first(&["all_proxy", "ALL_PROXY"]));
    match found {
        None => Ok(None),
        Some((name, url)) => Proxy::parse(&url, name).map(Some),
    }
}

/// Whether `NO_PROXY`'s `list` exempts `host` (a name, or an IP address without brackets).
pub(crate) fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let ip = host.parse::<IpAddr>().ok();
    list.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.trim_start_matches('[');
            let entry = entry.strip_suffix(']').unwrap_or(entry);
            if let Some(ip) = ip {
                return ip_entry_matches(entry, ip);
            }
            let name = entry.trim_start_matches('.').trim_end_matches('.');
            if name.is_empty() {
                return false;
            }
            host.eq_ignore_ascii_case(name)
                || host.len().checked_sub(name.len() + 1).is_some_and(|i| {
                    host.as_bytes()[i] == b'.' && host[i + 1..].eq_ignore_ascii_case(name)
                })
        })
}

/// Whether `entry` (an address, or `address/prefix`) contains `ip`.
fn ip_entry_matches(entry: &str, ip: IpAddr) -> bool {
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => match prefix.parse::<u8>() {
            Ok(p) => (addr, Some(p)),
            Err(_) => return false,
        },
        None => (entry, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            prefix_eq(u32::from(net).into(), u32::from(ip).into(), 32, prefix)
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            prefix_eq(u128::from(net), u128::from(ip), 128, prefix)
        }
        _ => false,
    }
}

/// Whether the first `prefix` (default: all `bits`) of `bits` bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, bits: u8, prefix: Option<u8>) -> bool {
    let prefix = prefix.unwrap_or(bits);
    if prefix > bits {
        return false;
    }
    let shift = u32::from(bits - prefix);
    // Prefix 0 shifts out the whole width (`None` for IPv6): everything matches then.
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn chosen(
        pairs: &'static [(&'static str, &'static str)],
        secure: bool,
        host: &str,
    ) -> Option<String> {
        from_env(&env(pairs), secure, host)
            .expect("valid")
            .map(|p| format!("{}:{}", p.host, p.port))
    }

    #[test]
    fn parses_each_scheme_with_its_default_port() {
        for (url, scheme, host, port) in [
            (
                "http://proxy.example:3128",
                Scheme::Http,
                "proxy.example",
                3128,
            ),
            ("proxy.example", Scheme::Http, "proxy.example", 80),
            ("HTTP://proxy.example/", Scheme::Http, "proxy.example", 80),
            ("socks5://10.0.0.1", Scheme::Socks5, "10.0.0.1", 1080),
            ("socks5h://[::1]:9050", Scheme::Socks5h, "::1", 9050),
        ] {
            let p = Proxy::parse(url, "test").expect(url);
            assert_eq!(
                (p.scheme, p.host.as_str(), p.port),
                (scheme, host, port),
                "{url}"
            );
        }
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let p = Proxy::parse("http://us%40er:p%3Ass@proxy:8080", "test").expect("valid");
        assert_eq!(p.auth, Some(("us@er".to_owned(), "p:ss".to_owned())));
        assert_eq!(p.shown, "http://…@proxy:8080 (from test)");
        assert!(!format!("{p:?}").contains("p:ss"));
        let bare = Proxy::parse("alice:secret@proxy:3128", "https_proxy").expect("valid");
        assert_eq!(bare.shown, "http://…@proxy:3128 (from https_proxy)");
        for url in ["socks5://u:secret@h", "u:secret@h:1"] {
            let setting = ProxySetting::Url(url.into());
            assert!(!format!("{setting:?}").contains("secret"), "{setting:?}");
        }
    }

    #[test]
    fn unusable_proxy_urls_are_invalid_arguments_that_hide_credentials() {
        for url in [
            "https://u:secret@proxy:443",
            "socks4://proxy:1080",
            "http://",
            "http://proxy:99999",
            "http://proxy:port",
            "socks5://:secret@proxy",
            "http://u:%zz@proxy",
            "http://[::1:8080",
            "http://pro xy:80",
        ] {
            let e = Proxy::parse(url, "HTTPS_PROXY").expect_err(url);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{url}");
            assert!(e.to_string().contains("HTTPS_PROXY"), "{e}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }

    #[test]
    fn environment_picks_by_scheme_lower_case_first() {
        let vars: &[(&str, &str)] = &[
            ("HTTPS_PROXY", "upper:1"),
            ("https_proxy", "lower:2"),
            ("HTTP_PROXY", "plainupper:3"),
            ("ALL_PROXY", "all:4"),
        ];
        assert_eq!(
            chosen(vars, true, "example.com").as_deref(),
            Some("lower:2")
        );
        assert_eq!(
            chosen(vars, false, "example.com").as_deref(),
            Some("plainupper:3")
        );
        let only_all: &[(&str, &str)] = &[("all_proxy", "a:1"), ("ALL_PROXY", "b:2")];
        assert_eq!(
            chosen(only_all, true, "example.com").as_deref(),
            Some("a:1")
        );
        let empty_lower: &[(&str, &str)] = &[("https_proxy", " "), ("HTTPS_PROXY", "u:5")];
        assert_eq!(
            chosen(empty_lower, true, "example.com").as_deref(),
            Some("u:5")
        );
        assert_eq!(chosen(&[], true, "example.com"), None);
    }

    #[test]
    fn cgi_ignores_upper_case_http_proxy() {
        let vars: &[(&str, &str)] = &[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "evil:1")];
        assert_eq!(chosen(vars, false, "example.com"), None);
        let lower: &[(&str, &str)] = &[("REQUEST_METHOD", "GET"), ("http_proxy", "ok:1")];
        assert_eq!(chosen(lower, false, "example.com").as_deref(), Some("ok:1"));
    }

    #[test]
    fn loopback_is_proxied_unless_no_proxy_lists_it() {
        let vars: &[(&str, &str)] = &[("ALL_PROXY", "p:1")];
        assert!(chosen(vars, true, "127.0.0.1").is_some());
        let listed: &[(&str, &str)] = &[
            ("ALL_PROXY", "p:1"),
            ("NO_PROXY", "localhost,127.0.0.1,::1"),
        ];
        for host in ["localhost", "127.0.0.1", "::1"] {
            assert_eq!(chosen(listed, true, host), None, "{host}");
        }
    }

    #[test]
    fn no_proxy_table() {
        // (list, host, bypassed)
        for (list, host, bypass) in [
            ("*", "anything.example", true),
            ("example.com", "example.com", true),
            ("example.com", "api.example.com", true),
            (".example.com", "api.example.com", true),
            (".example.com", "example.com", true),
            ("example.com", "notexample.com", false),
            ("example.com", "example.com.evil", false),
            ("EXAMPLE.com", "Api.Example.COM.", true),
            ("a.test, b.test", "b.test", true),
            ("a.test b.test", "b.test", true),
            ("10.0.0.0/8", "10.2.3.4", true),
            ("10.0.0.0/8", "11.2.3.4", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.0/33", "192.168.1.7", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("fd00::/8", "fd12::1", true),
            ("[fd00::1]", "fd00::1", true),
            ("fd00::/8", "10.0.0.1", false),
            ("10.0.0.0/8", "ten.example", false),
            ("*.example.com", "api.example.com", false),
            ("", "example.com", false),
            (".", "example.com", false),
        ] {
            assert_eq!(
                no_proxy_matches(list, host),
                bypass,
                "NO_PROXY={list:?} host {host:?}"
            );
        }
    }

    #[test]
    fn no_proxy_in_the_environment_bypasses() {
        let vars: &[(&str, &str)] = &[("all_proxy", "p:1"), ("NO_PROXY", "internal.example")];
        assert_eq!(chosen(vars, true, "db.internal.example"), None);
        assert!(chosen(vars, true, "example.org").is_some());
        let lower: &[(&str, &str)] = &[
            ("all_proxy", "p:1"),
            ("no_proxy", "a.example"),
            ("NO_PROXY", "b.example"),
        ];
        assert!(
            chosen(lower, true, "b.example").is_some(),
            "no_proxy wins over NO_PROXY"
        );
    }

    #[tokio::test]
    async fn socks5h_sends_names_and_socks5_sends_addresses() {
        let socks =
            |scheme| Proxy::parse(&format!("{scheme}://127.0.0.1:1"), "test").expect("valid");
        let remote = socks("socks5h")
            .socks_target("ws.example", 443)
            .await
            .expect("name");
        assert!(matches!(remote, TargetAddr::Domain(ref n, 443) if n == "ws.example"));
        let local = socks("socks5")
            .socks_target("localhost", 80)
            .await
            .expect("resolved");
        assert!(matches!(local, TargetAddr::Ip(a) if a.ip().is_loopback() && a.port() == 80));
        for scheme in ["socks5", "socks5h"] {
            let ip = socks(scheme).socks_target("::1", 9).await.expect("literal");
            assert!(matches!(ip, TargetAddr::Ip(a) if a == "[::1]:9".parse().expect("addr")));
        }
    }

    #[test]
    fn connect_responses() {
        let ok = parse_connect_response(b"HTTP/1.1 200 Connection established\r\n\r\n");
        assert_eq!(ok.map(|r| r.status), Ok(200));
        let auth = parse_connect_response(
            b"HTTP/1.0 407 Proxy Authentication Required\r\n\
              Proxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("valid");
        assert_eq!(auth.status, 407);
        assert_eq!(auth.challenge.as_deref(), Some("Basic realm=\"corp\""));
        assert!(parse_connect_response(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_connect_response(b"\x05\x00").is_err());
    }
}
