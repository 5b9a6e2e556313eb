//! The opening handshake's keys (RFC 6455 4.1, 4.2.2) and the masking keys of client frames
//! (5.3), all from the operating system's CSPRNG through ring, which rustls already brings.

use std::cell::RefCell;

use ring::error::Unspecified;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, ErrorKind, Result};

/// The GUID RFC 6455 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Fills `buf` from the OS CSPRNG.
///
/// # Errors
///
/// `ErrorKind::Unsupported` if the operating system's random source fails. There is no fallback: a
/// handshake key or masking key that a peer or an intermediary could predict defeats the
/// purpose of masking (RFC 6455 10.3), so the dial or the write fails instead.
fn fill_random(buf: &mut [u8]) -> Result<()> {
    fill_with(buf, |b| SystemRandom::new().fill(b))
}

/// `fill_random` over any source (the tests pass one that fails).
fn fill_with(
    buf: &mut [u8],
    fill: impl FnOnce(&mut [u8]) -> std::result::Result<(), Unspecified>,
) -> Result<()> {
    fill(buf).map_err(|_| {
        Error::new(
            ErrorKind::Unsupported,
            "the operating system's random number generator failed; no WebSocket key or \
             mask could be made",
        )
    })
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64.
pub(crate) fn generate_key() -> Result<String> {
    let mut key = [0u8; 16];
    fill_random(&mut key)?;
    Ok(base64(&key))
}

/// The `Sec-WebSocket-Accept` value for a client's key.
pub(crate) fn derive_accept_key(key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(GUID);
    base64(ctx.finish().as_ref())
}

thread_local! {
    /// Random bytes for masking keys, refilled 1 KiB at a time: one system call per 256
    /// client frames instead of one per frame.
    static POOL: RefCell<([u8; 1024], usize)> = const { RefCell::new(([0; 1024], 1024)) };
}

/// A masking key for one client frame.
pub(crate) fn mask_key() -> Result<[u8; 4]> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (bytes, used) = &mut *pool;
        if *used + 4 > bytes.len() {
            fill_random(bytes)?;
            *used = 0;
        }
        let key = [
            bytes[*used],
            bytes[*used + 1],
            bytes[*used + 2],
            bytes[*used + 3],
        ];
        *used += 4;
        Ok(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_example_accept_key() {
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn base64_of_every_tail_length() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(generate_key().expect("key").len(), 24);
    }

    #[test]
    fn failing_random_source_is_an_error_not_a_predictable_key() {
        let mut buf = [7u8; 16];
        let err = fill_with(&mut buf, |_| Err(Unspecified)).expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("random"), "{err}");
        // Nothing stood in for the missing randomness.
        assert_eq!(buf, [7u8; 16]);
    }

    #[test]
    fn mask_keys_differ() {
        let keys: std::collections::HashSet<[u8; 4]> =
            (0..1000).map(|_| mask_key().expect("key")).collect();
        assert!(keys.len() > 990, "{} distinct of 1000", keys.len());
    }
}
