//! permessage-deflate (RFC 7692): the modes a native client or server can ask for.

/// Whether, and how, a native connection compresses its messages with permessage-deflate
/// (RFC 7692), as Go's `coder/websocket` offers it.
///
/// Set it with `DialOptions::compression` or `AcceptOptions::compression`; the peer has to
/// agree during the opening handshake, and [`Conn::extensions`](crate::Conn::extensions)
/// tells what was agreed. Every compressed message isosock receives is inflated within the
/// read limit: inflated bytes count against it as they inflate, so a small frame that would
/// inflate to gigabytes fails with 1009 after `read_limit` bytes.
///
/// # Defaults, and what each mode costs
///
/// A client offers [`NoContextTakeover`](Self::NoContextTakeover) by default, as a browser
/// offers compression on every connection: it costs nothing unless the server agrees, and
/// holds no state between messages. A server accepts nothing by default
/// ([`Disabled`](Self::Disabled)): browsers offer compression on every connection, so a
/// server that accepted it by default would spend 2.2× (1 KiB JSON) to 3.6× (16 KiB JSON)
/// the CPU per message on every browser client, and that trade is the application's.
/// Measured in BENCHMARKS.md ("Compression"), 64 connections, isosock server:
///
/// | mode | server CPU per message, 1 KiB / 16 KiB JSON | bytes on the wire | memory per connection after a message |
/// | --- | --- | --- | --- |
/// | `Disabled` | 7.0 / 22.1 µs | 1.00 | 4.5 KiB |
/// | `NoContextTakeover` | 15.2 / 78.6 µs | 0.61 / 0.35 | 4.7 KiB |
/// | `ContextTakeover` | 25.7 / 212.0 µs | 0.33 / 0.31 | 336 KiB |
///
/// Messages shorter than the compression threshold (`DialOptions::compression_threshold`,
/// default 512 bytes without context takeover and 128 with it, coder/websocket's) are sent
/// uncompressed; so is every message when the peer limited this side's window to 256 bytes
/// (`*_max_window_bits=8`), which no DEFLATE implementation can compress with. DEFLATE runs
/// at level 1 (the fastest, coder/websocket's choice too).
///
/// # Platform notes
///
/// Native only. The browser negotiates permessage-deflate by itself on every connection and
/// compresses whenever the server agrees; a page cannot turn it on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// No compression: nothing is offered (client) or accepted (server). The server's
    /// default.
    Disabled,
    /// Each message is compressed on its own, with no DEFLATE state kept between messages on
    /// either side (both `*_no_context_takeover` parameters). A connection holds DEFLATE
    /// state (about 300 KiB to compress, 40 KiB to inflate) only while it writes or reads a
    /// compressed message; between messages the state goes back to a process-wide pool of
    /// at most 16 of each kind (about 5 MiB in all, however many connections), so the next
    /// message on any connection reuses it instead of allocating it afresh. Messages that do
    /// not shrink are sent as they are. The client's default.
    NoContextTakeover,
    /// The 32 KiB window is kept from message to message in both directions (unless the
    /// peer asks otherwise), so small similar messages (JSON with the same keys) compress
    /// about twice as well, for about 330 KiB of DEFLATE state held per connection on each
    /// side for its lifetime (3.2 GiB at 10,000 connections), and CPU per message that grows
    /// with the number of connections (their states no longer fit in cache).
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
