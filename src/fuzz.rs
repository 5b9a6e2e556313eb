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

/// Opens a tunnel through a proxy (`http://`, `socks5://` or `socks5h://` URL, with or
/// without credentials) to `host:port`, the proxy answering with `reply` and then EOF.
pub async fn proxy_tunnel(
    proxy_url: &str,
    reply: &[u8],
    host: &str,
    port: u16,
) -> Result<(), crate::ErrorKind> {
    crate::native::proxy::tunnel_for_fuzzing(proxy_url, reply, host, port).await
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
    upgraded_client(stream, read_limit, crate::native::Negotiated::default())
}

/// [`client_conn`] with permessage-deflate agreed: with context takeover in both directions
/// (`context`), or none in either.
pub async fn client_conn_deflate(
    stream: tokio::io::DuplexStream,
    read_limit: usize,
    context: bool,
) -> crate::Conn {
    let agreement = crate::native::extensions::Agreement {
        server_no_context_takeover: !context,
        client_no_context_takeover: !context,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    let negotiated = crate::native::Negotiated {
        subprotocol: None,
        extensions: "permessage-deflate".to_owned(),
        deflate: Some(agreement),
    };
    upgraded_client(stream, read_limit, negotiated)
}

fn upgraded_client(
    stream: tokio::io::DuplexStream,
    read_limit: usize,
    negotiated: crate::native::Negotiated,
) -> crate::Conn {
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
        negotiated,
        settings,
    );
    crate::Conn::from_backend(inner)
}

/// The compression mode numbered `n` (0 disabled, 1 without context takeover, 2 with).
fn mode(n: u8) -> crate::Compression {
    match n % 3 {
        0 => crate::Compression::Disabled,
        1 => crate::Compression::NoContextTakeover,
        _ => crate::Compression::ContextTakeover,
    }
}

/// A `Sec-WebSocket-Extensions` value as parsed: each extension's name and parameters, or
/// `None` if it does not parse.
pub type Extensions = Vec<(String, Vec<(String, Option<String>)>)>;

/// Parses `Sec-WebSocket-Extensions` header values.
pub fn parse_extensions(values: &[&[u8]]) -> Option<Extensions> {
    let parsed = crate::native::extensions::parse(values.iter().copied()).ok()?;
    Some(parsed.into_iter().map(|e| (e.name, e.params)).collect())
}

/// A server's answer, in compression mode `mode`, to `offers`: `Err(())` if the header is
/// refused (400), `Ok(None)` if every offer is declined.
pub fn server_extensions(offers: &[&[u8]], mode: u8) -> Result<Option<String>, ()> {
    crate::native::extensions::server_accept(offers.iter().copied(), self::mode(mode))
        .map(|a| a.map(|(_, answer)| answer))
        .map_err(|_| ())
}

/// What a client in `mode` makes of the server's `answer`: `Err(())` fails the handshake;
/// otherwise the agreed windows (server's, client's) and context flags (server's, client's),
/// if anything was agreed.
pub fn client_extensions(answer: &[&[u8]], mode: u8) -> Result<Option<(u8, u8, bool, bool)>, ()> {
    crate::native::extensions::client_check(answer.iter().copied(), self::mode(mode))
        .map(|a| {
            a.map(|a| {
                (
                    a.server_max_window_bits,
                    a.client_max_window_bits,
                    a.server_no_context_takeover,
                    a.client_no_context_takeover,
                )
            })
        })
        .map_err(|_| ())
}

/// The offer a client in `mode` makes.
pub fn client_offer(mode: u8) -> Option<&'static str> {
    crate::native::extensions::client_offer(self::mode(mode))
}
