//! The HTTP/1.1 upgrade for fastwebsockets (which leaves it to its user) and the raw
//! idle-memory client: just enough of RFC 6455 section 4 over a `TcpStream`.

use std::hash::{BuildHasher, Hasher};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::Result;

/// The largest request or response head accepted.
const MAX_HEAD: usize = 16 << 10;

/// A parsed `ws://host:port/path` URL.
#[derive(Debug, Clone)]
pub struct WsUrl {
    /// `host:port`, for `TcpStream::connect` and the `Host` header.
    pub authority: String,
    /// The request target, `/` when the URL has none.
    pub path: String,
}

impl WsUrl {
    /// Parses a `ws://` URL (no TLS here: the benchmarks run on loopback).
    pub fn parse(url: &str) -> Result<WsUrl> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("only ws:// URLs are supported: {url:?}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("no host in {url:?}").into());
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(WsUrl {
            authority,
            path: path.to_owned(),
        })
    }

    /// Opens a TCP connection with Nagle's algorithm off, as every client here does.
    pub async fn connect_tcp(&self) -> Result<TcpStream> {
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connect {}: {e}", self.authority))?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }
}

/// Reads an HTTP head (through the blank line) into `buf`; returns its length.
async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize> {
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(i + 4);
        }
        if buf.len() > MAX_HEAD {
            return Err("HTTP head over 16 KiB".into());
        }
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed during the upgrade".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(headers: &'a [httparse::Header<'a>], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

/// Answers a client's upgrade request on `tcp` with 101 (server side).
pub async fn accept(tcp: &mut TcpStream) -> Result<()> {
    accept_with(tcp, |_| None).await.map(|_| ())
}

/// [`accept`], answering the client's `Sec-WebSocket-Extensions` offer (if any) with what
/// `extensions` returns for it; returns that answer.
pub async fn accept_with(
    tcp: &mut TcpStream,
    extensions: impl FnOnce(Option<&str>) -> Option<&'static str>,
) -> Result<Option<&'static str>> {
    let mut buf = Vec::with_capacity(512);
    let len = read_head(tcp, &mut buf).await?;
    if len != buf.len() {
        return Err("the client sent data before the upgrade completed".into());
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf)?;
    if req.method != Some("GET") {
        return Err("upgrade request is not a GET".into());
    }
    let upgrade = header(req.headers, "upgrade").unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err("no `Upgrade: websocket` header".into());
    }
    if header(req.headers, "sec-websocket-version") != Some("13") {
        return Err("Sec-WebSocket-Version is not 13".into());
    }
    let key = header(req.headers, "sec-websocket-key").ok_or("no Sec-WebSocket-Key")?;
    let agreed = extensions(header(req.headers, "sec-websocket-extensions"));
    let ext_line = agreed.map_or(String::new(), |e| {
        format!("Sec-WebSocket-Extensions: {e}\r\n")
    });
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{ext_line}\r\n",
        derive_accept_key(key.trim().as_bytes())
    );
    tcp.write_all(response.as_bytes()).await?;
    Ok(agreed)
}

/// Sends an upgrade request for `url` on `tcp` and checks the 101 answer (client side).
pub async fn connect(tcp: &mut TcpStream, url: &WsUrl) -> Result<()> {
    let key = base64(&random_key());
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        url.path, url.authority
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let len = read_head(tcp, &mut buf).await?;
    if len != buf.len() {
        // The servers here send nothing before the client's first message.
        return Err("the server sent data right after its 101 response".into());
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&buf)?;
    if resp.code != Some(101) {
        return Err(format!("upgrade refused with status {:?}", resp.code).into());
    }
    let want = derive_accept_key(key.as_bytes());
    if header(resp.headers, "sec-websocket-accept").map(str::trim) != Some(want.as_str()) {
        return Err("wrong Sec-WebSocket-Accept".into());
    }
    Ok(())
}

/// 16 random bytes for Sec-WebSocket-Key (unpredictability is not needed here, only variety).
fn random_key() -> [u8; 16] {
    let mut out = [0u8; 16];
    for half in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6973_6f73_6f63_6b21);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
        assert_eq!(base64(&random_key()).len(), 24);
    }

    #[test]
    fn urls() {
        let u = WsUrl::parse("ws://127.0.0.1:9001/x?y").expect("parses");
        assert_eq!(u.authority, "127.0.0.1:9001");
        assert_eq!(u.path, "/x?y");
        assert_eq!(WsUrl::parse("ws://h").expect("parses").path, "/");
        assert!(WsUrl::parse("wss://h").is_err());
    }
}
