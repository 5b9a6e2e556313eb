//! permessage-deflate (RFC 7692): the modes a native client or server can ask for.

/// Whether, and how, a native connection compresses its messages with permessage-deflate
/// (RFC 7692), as Go's `coder/websocket` offers it.
///
/// Set it with `DialOptions::compression` or `AcceptOptions::compression`; the peer has to
/// agree during the opening handshake, and [`Conn::extensions`](crate::Conn::extensions)
/// tells what was agreed. Either way every compressed message isosock receives is inflated
/// within the read limit: inflated bytes count against it as they inflate, so a small frame
/// that would inflate to gigabytes fails with 1009 after `read_limit` bytes.
///
/// Messages shorter than the compression threshold (`DialOptions::compression_threshold`,
/// default 512 bytes without context takeover and 128 with it, coder/websocket's) are sent
/// uncompressed; so is every message when the peer limited this side's window to 256 bytes
/// (`*_max_window_bits=8`), which no DEFLATE implementation can compress with.
///
/// # Platform notes
///
/// Native only. The browser negotiates permessage-deflate by itself on every connection and
/// compresses whenever the server agrees; a page cannot turn it on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// No compression: nothing is offered (client) or accepted (server).
    Disabled,
    /// Each message is compressed on its own, with no DEFLATE state kept between messages on
    /// either side (both `*_no_context_takeover` parameters). About 300 KiB of compressor
    /// state exists only while a message is being written, and about 40 KiB of decompressor
    /// state only while one is being read; repetitive small messages compress less well.
    NoContextTakeover,
    /// The 32 KiB window is kept from message to message in both directions (unless the
    /// peer asks otherwise), so small similar messages (JSON with the same keys) compress
    /// much better, for about 340 KiB of DEFLATE state held per connection for its lifetime.
    ContextTakeover,
}

impl Compression {
    /// The default compression threshold of this mode, in bytes: 512 without context
    /// takeover and 128 with it (coder/websocket's).
    pub fn default_threshold(self) -> usize {
        match self {
            Compression::ContextTakeover => 128,
            _ => 512,
        }
    }
}

/// A side's compression settings: the mode and the threshold (`None`: the mode's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompressionOptions {
    pub(crate) mode: Compression,
    pub(crate) threshold: Option<usize>,
}

impl CompressionOptions {
    /// The threshold in effect.
    pub(crate) fn threshold(&self) -> usize {
        self.threshold
            .unwrap_or_else(|| self.mode.default_threshold())
    }
}
