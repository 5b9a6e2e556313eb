//! Entry points for the fuzz targets in `fuzz/`: the parsers isosock owns, reachable without a
//! network. Compiled only with `--cfg fuzzing` (which cargo-fuzz sets); not part of the API.
#![allow(missing_docs, unreachable_pub)]

use crate::close::{validate_close as validate, StatusCode};
use crate::dial::WsUrl;

/// Whether `url` passes the URL checks `dial` makes before connecting (both the shared ones
/// and the native backend's host and port extraction).
pub fn parse_url(url: &str) -> bool {
    let Ok(parsed) = WsUrl::parse(url) else {
        return false;
    };
    crate::native::dial::target(&parsed).is_ok()
}

/// Whether `close(code, reason)` would be allowed to send.
pub fn validate_close(code: u16, reason: &str) -> bool {
    validate(StatusCode::from(code), reason).is_ok()
}

/// Whether `accept`'s origin check lets a request with these `Origin` and `Host` header
/// values through under `patterns`.
pub fn origin_allowed(origin: &[u8], host: &[u8], patterns: &[String]) -> bool {
    crate::native::accept::origin_allowed_for_fuzzing(origin, host, patterns)
}

/// The origin-pattern glob.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    crate::native::accept::glob_match(pattern, text)
}

/// Runs the client's opening handshake against a server that answers with `response`, in
/// which every `{ACCEPT}` is replaced by the right `Sec-WebSocket-Accept` value for the
/// request's key. Returns the negotiated subprotocol, or the error kind.
pub async fn client_handshake(
    response: &[u8],
    offered: &[String],
) -> Result<Option<String>, crate::ErrorKind> {
    crate::native::dial::handshake_for_fuzzing(response, offered).await
}

/// Parses a frame header as a server (`server`) or client would, with `limit`; on success
/// returns `(fin, opcode bits, masked, payload length, header length)`.
pub fn parse_frame_header(
    buf: &[u8],
    server: bool,
    limit: usize,
) -> Option<(bool, u8, bool, usize, usize)> {
    crate::native::frame::fuzz_parse(buf, server, limit)
}

/// Writes a frame header, then parses it back: both must agree.
pub fn frame_header_round_trip(fin: bool, opcode: u8, masked: bool, len: usize) -> bool {
    crate::native::frame::fuzz_round_trip(fin, opcode, masked, len)
}

/// Parses a close frame's payload: `Ok(Some((code, reason)))`, `Ok(None)` when empty, or
/// the close code the connection is failed with.
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, u16> {
    crate::native::frame::parse_close(payload).map_err(|bad| bad.code.as_u16())
}

/// A client `Conn` over `stream`, as if the opening handshake had just completed (the
/// `client_handshake` target fuzzes that part), with `read_limit`: the client end of the
/// frame-level targets. (The server end goes through the public `accept`.)
pub async fn client_conn(stream: tokio::io::DuplexStream, read_limit: usize) -> crate::Conn {
    use crate::native::frame::Role;
    use crate::native::io::Transport;
    use crate::native::{Conn, Settings};
    let settings = Settings {
        read_limit,
        close_timeout: std::time::Duration::from_secs(5),
        write_high_water_mark: crate::DEFAULT_WRITE_HIGH_WATER_MARK,
        compression_threshold: 0,
    };
    let inner = Conn::from_upgraded(
        Transport::new(stream),
        Vec::new(),
        Role::Client,
        crate::native::Negotiated::default(),
        settings,
    );
    crate::Conn::from_backend(inner)
}
