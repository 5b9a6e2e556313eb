//! The little HTTP/1.1 both handshakes need: reading one message head, bounded in size.

use http::{HeaderMap, HeaderName};
use tokio::io::AsyncReadExt;

use super::io::Io;

/// Why a head could not be read.
pub(crate) enum HeadReadError {
    /// The stream failed or ended first (`None`: clean EOF).
    Io(Option<std::io::Error>),
    /// More than the allowed bytes arrived without the blank line ending the head.
    TooLarge,
    /// A line ended in a bare LF instead of CRLF (RFC 9112 section 2.2 lets a recipient
    /// refuse that; isosock does, since the head would otherwise never end for it).
    BareLf,
    /// The first byte cannot start an HTTP message (not a token character, CR or LF). A TLS
    /// handshake record (a ClientHello, which starts with `0x16`) is the usual cause:
    /// `wss://` spoken to a plain-text port.
    NotHttp {
        /// The first byte received.
        first: u8,
    },
}

/// The first byte of a TLS handshake record (RFC 8446 section 5.1), as a ClientHello starts.
pub(crate) const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Does `header` contain `token` in its comma-separated list (case-insensitive)?
pub(crate) fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Reads until the blank line that ends an HTTP head; returns everything read and the head's
/// length (bytes after it belong to whatever follows).
///
/// Refuses as soon as the bytes show that no valid head can follow: a first byte that cannot
/// start one, or a line ending in a bare LF. The check is linear in what was read.
pub(crate) async fn read_head<S: Io>(
    stream: &mut S,
    max: usize,
) -> Result<(Vec<u8>, usize), HeadReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| HeadReadError::Io(Some(e)))?;
        if n == 0 {
            return Err(HeadReadError::Io(None));
        }
        let old = buf.len();
        // Only the new bytes (and 3 before them) can complete the terminator.
        let from = old.saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if old == 0 && !can_start_head(buf[0]) {
            return Err(HeadReadError::NotHttp { first: buf[0] });
        }
        let end = buf[from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| from + i + 4);
        // Bytes after the head belong to the next protocol: only the head's are checked.
        if has_bare_lf(&buf, old, end.unwrap_or(buf.len())) {
            return Err(HeadReadError::BareLf);
        }
        if let Some(end) = end {
            return Ok((buf, end));
        }
        if buf.len() >= max {
            return Err(HeadReadError::TooLarge);
        }
    }
}

/// Whether `byte` may be the first of an HTTP/1.1 message: a token character (a method, or
/// the `H` of `HTTP/`), or the CR/LF of an empty line a server may skip (RFC 9112 2.2).
fn can_start_head(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~\r\n".contains(&byte)
}

/// Whether `buf[from..to]` holds an LF not preceded by a CR.
fn has_bare_lf(buf: &[u8], from: usize, to: usize) -> bool {
    (from..to).any(|i| buf[i] == b'\n' && (i == 0 || buf[i - 1] != b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> Result<(Vec<u8>, usize), HeadReadError> {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        tokio::io::AsyncWriteExt::write_all(&mut client, bytes)
            .await
            .map_err(|e| HeadReadError::Io(Some(e)))?;
        // The writer stays open: a refusal must come from the bytes, not from EOF.
        let r = read_head(&mut server, 1 << 14).await;
        drop(client);
        r
    }

    #[tokio::test]
    async fn a_crlf_head_ends_at_the_blank_line() {
        let r = read(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\nrest").await;
        // The bare LF after the head belongs to what follows and is not checked.
        assert!(matches!(&r, Ok((buf, len)) if &buf[*len..] == b"\nrest"));
    }

    #[tokio::test]
    async fn bare_lf_and_non_http_first_bytes_are_refused_without_eof() {
        for bytes in [
            &b"GET / HTTP/1.1\nHost: a\n\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\n",
            b"\n",
        ] {
            assert!(
                matches!(read(bytes).await, Err(HeadReadError::BareLf)),
                "{bytes:?}"
            );
        }
        for bytes in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"\0GET",
        ] {
            assert!(
                matches!(read(bytes).await, Err(HeadReadError::NotHttp { first }) if first == bytes[0]),
                "{bytes:?}"
            );
        }
    }
}
