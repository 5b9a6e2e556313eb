//! The protocol engines a native connection can run on.

/// Which protocol engine carries a native connection's frames after isosock's handshake.
///
/// The handshake, TLS, origin checks, hooks and limits are isosock's whichever engine is
/// chosen; the engine reads and writes the frames afterwards. Pick it per connection with
/// `DialOptions::engine` or `AcceptOptions::engine`.
///
/// - [`Own`](Self::Own) (the default): isosock's own RFC 6455 engine. The least memory per
///   connection, the most messages per second, permessage-deflate, a `Writer` that streams
///   16 KiB frames, text checked as UTF-8 as it arrives.
/// - `Tungstenite` (feature `tungstenite`): tokio-tungstenite 0.30, the engine most Rust
///   WebSocket code already runs on. It has no permessage-deflate (asking for compression
///   with it fails with [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)),
///   a `Writer` sends the whole message on finish, and text is checked when the message is
///   whole.
///
/// New engines may be added, so a `match` on this enum needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Engine {
    /// isosock's own RFC 6455 engine.
    #[default]
    Own,
    /// tokio-tungstenite (feature `tungstenite`).
    #[cfg(feature = "tungstenite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tungstenite")))]
    Tungstenite,
}

impl Engine {
    /// Whether this engine can carry permessage-deflate.
    pub(crate) fn compresses(self) -> bool {
        match self {
            Engine::Own => true,
            #[cfg(feature = "tungstenite")]
            Engine::Tungstenite => false,
        }
    }
}
