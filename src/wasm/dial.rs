//! What the browser's dial takes beyond the shared `DialOptions`: nothing, since the
//! `WebSocket` constructor takes only a URL and subprotocols. (The dial itself is in `conn.rs`.)

use std::fmt;

/// The browser's counterpart of the native dial's extra options (headers, TLS settings): empty.
/// Braces, not a unit struct: shared code builds it with `Default::default()`, as the native one.
#[derive(Clone, Default, Debug)]
pub(crate) struct DialExtras {}

impl DialExtras {
    /// Adds nothing to `DialOptions`' `Debug` output.
    pub(crate) fn debug_fields(&self, _: &mut fmt::DebugStruct<'_, '_>) {}
}

/// The browser's counterpart of the native `Response`'s headers: empty, since the browser does
/// not show handshake headers to scripts.
#[derive(Clone, Default, Debug)]
pub(crate) struct ResponseExtras {}

impl ResponseExtras {
    /// Adds nothing to `Response`'s `Debug` output.
    pub(crate) fn debug_fields(&self, _: &mut fmt::DebugStruct<'_, '_>) {}
}
