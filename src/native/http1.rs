//! The little HTTP/1.1 both handshakes need: reading one message head, bounded in size.

use tokio::io::AsyncReadExt;

use super::io::Io;

/// Why a head could not be read.
pub(crate) enum HeadReadError {
    /// The stream failed or ended first (`None`: clean EOF).
    Io(Option<std::io::Error>),
    /// More than the allowed bytes arrived without the blank line ending the head.
    TooLarge,
}

/// Reads until the blank line that ends an HTTP head; returns everything read and the head's
/// length (bytes after it belong to whatever follows).
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
        // Only the new bytes (and 3 before them) can complete the terminator.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok((buf, from + i + 4));
        }
        if buf.len() >= max {
            return Err(HeadReadError::TooLarge);
        }
    }
}
