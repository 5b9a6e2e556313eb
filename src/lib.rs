//! # isosock
//!
//! One WebSocket API for Rust that compiles to two backends: natively it runs on tokio with
//! its own RFC 6455 implementation (client [`dial`] and server `accept`); on
//! `wasm32-unknown-unknown` it
//! wraps the browser's `WebSocket`. The same application code dials, reads, writes and closes
//! the same way on both. The design follows Go's `coder/websocket` (formerly
//! `nhooyr.io/websocket`).
//!
//! ```no_run
//! # async fn demo() -> isosock::Result<()> {
//! use isosock::{dial, DialOptions, Message, StatusCode};
//!
//! let (conn, _resp) = dial("ws://127.0.0.1:9001", &DialOptions::new()).await?;
//! conn.write(Message::text("hello")).await?;
//! let reply = conn.read().await?;
//! assert_eq!(reply.as_text(), Some("hello"));
//! conn.close(StatusCode::NORMAL_CLOSURE, "bye").await?;
//! # Ok(()) }
//! ```
//!
//! ## Semantics that hold on every target
//!
//! - [`Conn`] methods take `&self`; writers are serialized, one reader at a time, and
//!   `close` may be called from any task while another reads.
//! - A peer's close frame reaches the reader intact as an [`Error`] of kind
//!   [`ErrorKind::Closed`]; [`close_status`] extracts its code.
//! - Close codes and reasons are validated before anything is sent ([`StatusCode::is_sendable`],
//!   at most 123 bytes of reason), so both targets fail the same way.
//! - Messages over the read limit (default 32 KiB) close the connection with 1009 (1000
//!   "message too big" in the browser) and fail the read with [`ErrorKind::MessageTooBig`].
//! - [`Conn`], [`Reader`], [`Writer`] and the futures of `Conn`'s methods are `Send`.
//! - `read` is cancel-safe: dropping it in `select!` loses nothing.
//!
//! ## Helpers
//!
//! - `isosock::json` and `isosock::protobuf` (features `json`, `protobuf`): typed values
//!   per message.
//! - [`ByteStream`]: `AsyncRead + AsyncWrite` over messages, for tunnelling a protocol.
//! - [`Conn::split`]: a [`MessageSink`] and a [`MessageStream`] (`Sink`/`Stream`).
//! - [`Reconnecting`]: a client that reconnects with backoff ([`reconnect`]).
//! - [`Heartbeat`]: notices a silent peer and fails the connection.
//! - `server` (native): a callback server over `accept`.
//!
//! ## Engines (native)
//!
//! Natively isosock does the handshake, TLS, origin checks, hooks and limits, then an engine
//! carries the frames, chosen per connection with `DialOptions::engine`,
//! `AcceptOptions::engine` and `server::ServerOptions::engine` (`Engine`); `Conn::engine`
//! tells which one a connection runs on:
//!
//! | | `Engine::Own` (default) | `Engine::Tungstenite` (feature `tungstenite`) |
//! | --- | --- | --- |
//! | what | isosock's own RFC 6455 engine | tokio-tungstenite 0.30 |
//! | permessage-deflate | yes | no: asking for it fails with [`ErrorKind::InvalidArgument`] |
//! | when `write` returns | once written to the socket; a write from the task whose last `read` left the peer's next bytes received returns with the message queued (up to 64 KiB), sent before that task's next `read` waits or when it yields (see [`Conn::write`]) | once written to the socket and flushed |
//! | streaming `Writer` | 16 KiB frames on the wire | whole message on `finish` |
//! | invalid UTF-8 in text | fails as it arrives | fails when the message is whole |
//! | read limit | enforced while reading; `set_read_limit` raises or lowers | tungstenite's limit is the connection-time one; `set_read_limit` lowers it (checked once the message is whole) |
//! | cancelled writes (write back-pressure) | queued up to `write_high_water_mark` (1 MiB) plus one message | at most one message: a write first flushes what a cancelled one left; the mark does not apply |
//! | a peer's close with a code no endpoint may send (1005, 1006, 1015, unassigned) | answered with 1002; `read` fails with [`ErrorKind::Protocol`] | answered with 1002 by tungstenite, which reports its own 1002 frame in place of the peer's: `read` fails with [`ErrorKind::Closed`] and close code 1002 |
//! | sign of life for [`Heartbeat`] | every frame read | every whole message or control frame read (a long message counts once, when whole) |
//! | memory per idle connection, echo server at 10,000 connections | 4.5 KiB | 20.3 KiB (raw tokio-tungstenite with the same settings: 19.5) |
//! | messages per second (BENCHMARKS.md, 12 cells, geometric mean) | 1.07× the tungstenite engine's as a server, 1.03× as a client | 1.02× / 1.00× raw tokio-tungstenite with the same settings |
//! | Autobahn, each mode | 514 OK, 3 INFORMATIONAL | 296 OK, 2 NON-STRICT, 3 INFORMATIONAL, 216 UNIMPLEMENTED (compression) |
//!
//! With feature `tungstenite`, `Conn::from_tungstenite` adopts a `WebSocketStream` that was
//! opened elsewhere (`accept_async`, `connect_async`).
//!
//! ## Limits and their defaults
//!
//! | limit | default | set with |
//! | --- | --- | --- |
//! | read limit (largest message read) | 32 KiB | [`DialOptions::read_limit`], `AcceptOptions::read_limit`, [`Conn::set_read_limit`] |
//! | dial timeout (DNS + TCP + proxy + TLS + upgrade) | 30 s | [`DialOptions::timeout`] |
//! | proxy's `CONNECT` answer head (native) | 16 KiB | fixed |
//! | close handshake, each half | 5 s | [`DialOptions::close_timeout`], `AcceptOptions::close_timeout` |
//! | upgrade request head read by `accept` | 16 KiB, 64 headers, 10 s | `AcceptOptions::handshake_timeout` |
//! | streaming writer frame size (native) | 16 KiB | fixed |
//! | browser send buffer before `write` waits (`bufferedAmount`) | 1 MiB | [`DialOptions::write_high_water_mark`] |
//! | unread messages held in the browser | max(16 MiB, 4 × read limit) | the read limit |
//! | refused handshake body kept in the error | 1 KiB | fixed ([`HTTP_BODY_PREFIX`]) |
//! | compression (native): a client offers / a server accepts | `NoContextTakeover` / `Disabled` | `DialOptions::compression`, `AcceptOptions::compression` (see `Compression` for why) |
//! | compression threshold (native) | 512 B without context takeover, 128 B with it | `DialOptions::compression_threshold`, `AcceptOptions::compression_threshold` |
//! | inflated size of a compressed message | the read limit, counted as it inflates | the read limit |
//! | compressed bytes in one frame (native) | read limit + 0.1% + 64 B | the read limit |
//! | DEFLATE state kept for reuse, per process (native) | 16 compressors, 16 decompressors | fixed |
//! | [`ByteStream`] message per write | 16 KiB | [`ByteStream::max_message_size`] |
//! | [`Reconnecting`] read-ahead; offline queue | 16 messages; off | [`ReconnectOptions::read_ahead`], [`ReconnectOptions::queue_while_offline`] |
//! | `server` open connections; message rate | 10,000; unlimited | `ServerOptions` |
//!
//! ## Proxies (native)
//!
//! A native dial goes through an HTTP proxy (`CONNECT`) or a SOCKS5 proxy when one is set,
//! for `ws://` and `wss://` alike; for `wss://` TLS runs to the server inside the tunnel, so
//! the proxy sees the server's name and encrypted bytes only. `DialOptions::proxy` sets one
//! (`http://`, `socks5://` with the name resolved here, `socks5h://` with the name resolved
//! by the proxy; credentials as percent-encoded `user:password@`), and
//! `DialOptions::no_proxy` dials directly. Without either, **the environment decides, as
//! for curl**: environments that need a proxy (offices, CI runners, containers) already set
//! these variables, and a WebSocket client that ignored them would fail where `curl` and the
//! HTTP client beside it work. coder/websocket (through Go's `http.Client`) and
//! reqwest-websocket read them too.
//!
//! - `wss://` uses `https_proxy`, else `HTTPS_PROXY`; `ws://` uses `http_proxy`, else
//!   `HTTP_PROXY` (ignored when `REQUEST_METHOD` is set, in a CGI program, where it could come
//!   from a request's `Proxy:` header); both then fall back to `all_proxy`, else
//!   `ALL_PROXY`. The lower-case name wins; an empty value counts as unset.
//! - `no_proxy`, else `NO_PROXY`, lists hosts to reach directly, separated by commas or
//!   spaces: `*` alone matches every host; a name matches itself and every name under it (a
//!   leading `.` changes nothing); an IP address or CIDR block (`10.0.0.0/8`, `fd00::/8`)
//!   matches an IP host inside it. Loopback is proxied unless listed, as in curl: list
//!   `localhost,127.0.0.1,::1` to keep local servers direct.
//! - A value that is not a usable proxy URL fails the dial with
//!   [`ErrorKind::InvalidArgument`] naming the variable, rather than being skipped.
//!
//! Failures of the proxy itself are [`ErrorKind::Proxy`], naming the proxy (credentials left
//! out) and where it came from: unreachable; an HTTP status other than 2xx
//! ([`Error::http_status`]; a 407's `Proxy-Authenticate` challenge in the message); a SOCKS5
//! failure reply or refused credentials. The dial's [`timeout`](DialOptions::timeout) covers
//! the proxy's part, and dropping the dial's future closes the connection to the proxy.
//! TLS to the proxy itself (`https://` proxy URLs), SOCKS4 and proxy auto-configuration
//! (PAC) are not supported.
//!
//! ```no_run
//! # #[cfg(not(target_arch = "wasm32"))]
//! # async fn demo() -> isosock::Result<()> {
//! use isosock::{dial, DialOptions};
//!
//! // Through a SOCKS5 proxy that resolves the server's name itself (Tor, ssh -D).
//! let opts = DialOptions::new().proxy("socks5h://127.0.0.1:9050");
//! let (conn, _) = dial("wss://example.com/feed", &opts).await?;
//! # Ok(()) }
//! ```
//!
//! ## Platform differences
//!
//! Everything not listed here behaves the same natively and in the browser.
//!
//! - **Targets**: every target that is not `wasm32` gets the native backend;
//!   `wasm32-unknown-unknown` gets the browser backend. Other `wasm32` targets (WASI,
//!   Emscripten) stop the build with a `compile_error!` saying so: WASI has no browser
//!   `WebSocket` to wrap, and tokio's networking, which the native backend needs, is not
//!   available there.
//! - **`accept`, `accept_http`, `AcceptOptions`**: native only (a page cannot be a server);
//!   not compiled for wasm.
//! - **`Conn::ping`**: native only; browsers answer pings themselves and cannot send them.
//!   For the same reason `Heartbeat::ping` is native only; [`Heartbeat::message`] (an
//!   application message the peer answers) works on both.
//! - **`server`** (the callback server): native only, like `accept`.
//! - **Heartbeat liveness**: natively any frame read counts as a sign of life (so keep a read
//!   loop running); in the browser any message that arrives counts, read or not.
//! - **HTTP headers and TLS settings on dial** (`DialOptions::header`,
//!   `DialOptions::tls_config`, `Response::headers`): native only; the browser API has
//!   none. Carry a browser's credentials in a subprotocol or the query string.
//! - **Proxies** (`DialOptions::proxy`, `DialOptions::no_proxy`, the proxy environment
//!   variables): native only. A page goes through whatever proxy its browser is configured
//!   with, and is told nothing about it; [`ErrorKind::Proxy`] exists on every target but only
//!   a native dial reports it.
//! - **Streaming writer** ([`Conn::writer`]): natively a frame goes out per 16 KiB; in the
//!   browser the message is buffered in memory and sent whole on finish.
//! - **Read limit**: natively enforced while frames arrive (a frame header that claims too
//!   much is refused before its payload is read); in the browser enforced after the whole
//!   message arrived. [`Conn::set_read_limit`] applies any value on both (natively a value
//!   above `isize::MAX`, `usize::MAX` included, means `isize::MAX`, the most one buffer can
//!   hold). A message over it closes with 1009 natively, and with 1000 "message too big" in
//!   the browser (which refuses 1009).
//! - **Reading ahead**: natively nothing is read before `read` asks, so TCP holds a fast peer
//!   back. The browser cannot pause a socket: it queues messages in memory, up to 16 MiB or
//!   four times the read limit, whichever is larger; beyond that the connection is closed
//!   with 1000 "reader too slow" and the next read fails with [`ErrorKind::MessageTooBig`].
//! - **Write backpressure and cancelled writes**: on both, memory for outgoing messages is
//!   bounded by [`DialOptions::write_high_water_mark`] (default 1 MiB) plus one message,
//!   however often writes are cancelled. Natively a write queues its message only while the
//!   connection's queue holds at most the mark, and completes once the socket took it (on
//!   the own engine, a reply to a peer that pipelines may be deferred, see [`Conn::write`]);
//!   a message left queued by a cancelled write is sent, whole and in order, by the next
//!   write, ping, pong or close on that connection: nothing writes a cancelled write's
//!   message in the background. In the browser
//!   a message goes to `WebSocket.send` only while `bufferedAmount` is at or below the mark
//!   (re-checked every 5 ms, the browser has no drain event); a write hands its message to
//!   isosock's queue only once that queue is empty, and a message left there by a cancelled
//!   write is sent by the connection's driver, whole and in order, as soon as the buffer
//!   allows. A write cancelled before its message was queued sends nothing, on both.
//!   **WebKit** (Safari) leaves out of `bufferedAmount` what its network process holds, and
//!   that process takes any amount: there the mark bounds the page's memory but not the
//!   browser's, and a producer is held only to the pace at which WebKit moves bytes between
//!   its processes (see [`DialOptions::write_high_water_mark`] for the measurement).
//! - **Handshake failures**: natively a refused upgrade is [`ErrorKind::Handshake`] with the
//!   HTTP status and body; the browser reveals nothing (its `error` event carries no detail),
//!   so every failure before open is [`ErrorKind::Connect`], with the close code that
//!   followed (1006 in Chromium and Firefox) in the message. WebKit fires no `close` event
//!   after a failed handshake (the socket stays CONNECTING), so there the dial fails 500 ms
//!   after the `error` event and its message says that no close event, and so no code, came.
//! - **Subprotocols the server does not pick**: natively, in Firefox and in WebKit a dial
//!   that offered subprotocols succeeds with [`Conn::subprotocol`] `None` when the server
//!   selects none; Chromium fails such a handshake, so the dial fails with
//!   [`ErrorKind::Connect`].
//! - **Handshake response**: natively status and headers; in the browser only the
//!   negotiated subprotocol and extensions. [`Conn::extensions`] in the browser is
//!   `WebSocket.extensions`: Chromium and WebKit give the server's whole answer
//!   (`permessage-deflate; server_no_context_takeover; client_no_context_takeover`), Firefox
//!   only the extension's name (`permessage-deflate`), without its parameters.
//! - **Close codes**: the browser lets scripts send only 1000 and 3000–4999; the browser
//!   backend sends the other sendable codes (1001–1003, 1007–1014) as 1000 with the same
//!   reason, for [`Conn::close`] and for the closes isosock starts itself (read limit:
//!   "message too big", data after [`Conn::close_read`]: "unexpected data message").
//!   [`Conn::close_now`] and dropping a `Conn` close with 1000. Natively every sendable code
//!   goes out as given. `close` never throws in the browser.
//! - **Data after this side's close**: once [`Conn::close`] has sent its close frame, the
//!   browser drops data messages that still arrive (the WebSocket API only delivers them
//!   while the socket is open). Natively a reader in another task still receives them until
//!   the peer's close frame; without one, `close` reads and discards them too.
//! - **Close timeout**: natively each half of the close handshake has its own
//!   [`DialOptions::close_timeout`]; the browser runs the handshake itself, so the timeout
//!   bounds the wait for its `close` event once.
//! - **permessage-deflate** (RFC 7692): natively a client offers it by default (without
//!   context takeover, as a browser offers it on every connection) and a server accepts it
//!   only when asked: `DialOptions::compression` and `AcceptOptions::compression` take a
//!   `Compression` mode (`NoContextTakeover`, the client's default: DEFLATE state exists
//!   only while a message is written or read; `ContextTakeover`: about 330 KiB kept per
//!   connection on each side, for better ratios on small similar messages; `Disabled`, the
//!   server's default), and messages under `compression_threshold` go out uncompressed. Without an
//!   agreement, frames with reserved bits are refused with 1002. In the browser the browser
//!   decides: it offers permessage-deflate on every connection and compresses whenever the
//!   server agrees, with the context takeover the server's answer allows; a page cannot turn
//!   it off or pick a mode or threshold, so `Compression` and the compression options are not
//!   compiled for wasm (a native server that accepts compression therefore compresses with
//!   every browser, in the server's mode). On both,
//!   [`Conn::extensions`] and [`Response::extensions`] tell what was agreed (in the browser,
//!   `WebSocket.extensions`), and the read limit counts inflated bytes: natively while a
//!   message inflates (a small frame that would inflate beyond the limit fails with 1009), in
//!   the browser once the whole inflated message arrived, like every read limit there.
//! - **Engines** (native): everything said of native connections above holds on both
//!   engines except the rows of the table in [Engines](#engines-native): compression, the
//!   streaming writer, when invalid UTF-8 fails, raising the read limit, cancelled writes, the
//!   answer to an unsendable close code, and what counts as a sign of life. `Engine` and the
//!   `engine` options are not compiled for wasm (the browser is its own engine).
//! - **Browser engines**: the browser tests run in Chromium, Firefox and WebKit (WebKitGTK,
//!   Safari's engine). Close codes, reasons and the clean flag (a peer's close, a dropped
//!   connection as 1006, this side's close), event order and permessage-deflate (every engine
//!   offers it and compresses when the server agrees) are the same in all three; the engine
//!   differences are the four above: a subprotocol the server did not pick (Chromium
//!   refuses), the close event after a failed handshake (WebKit fires none), what
//!   `bufferedAmount` counts (WebKit leaves its network process out) and the parameters in
//!   [`Conn::extensions`] (Firefox leaves them out).
//! - **Cargo features** `webpki-roots`, `native-roots`, `hyper` and `tungstenite` only affect
//!   native builds.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(target_arch = "wasm32"))]
#[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
mod accept;
mod backend;
mod close;
#[cfg(not(target_arch = "wasm32"))]
mod compression;
mod conn;
mod dial;
#[cfg(not(target_arch = "wasm32"))]
mod engine;
mod error;
#[cfg(all(fuzzing, not(target_arch = "wasm32")))]
#[doc(hidden)]
pub mod fuzz;
mod heartbeat;
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub mod json;
mod message;
#[cfg(feature = "protobuf")]
#[cfg_attr(docsrs, doc(cfg(feature = "protobuf")))]
pub mod protobuf;
pub mod reconnect;
mod redact;
#[cfg(not(target_arch = "wasm32"))]
#[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
pub mod server;
mod stream;
mod task;
// tokio's I/O traits for `Reader`, `Writer` and `ByteStream`; tokio exists natively only.
#[cfg(not(target_arch = "wasm32"))]
mod tokio_io;

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(all(target_arch = "wasm32", any(target_os = "unknown", target_os = "none")))]
mod wasm;

#[cfg(not(target_arch = "wasm32"))]
pub use accept::{
    accept, AcceptOptions, Reject, Upgrade, UpgradeRequest, DEFAULT_HANDSHAKE_TIMEOUT,
    MAX_REQUEST_HEAD,
};
#[cfg(all(not(target_arch = "wasm32"), feature = "hyper"))]
pub use accept::{accept_http, Rejection, Upgrading};
pub use close::{CloseFrame, StatusCode, MAX_CLOSE_REASON};
#[cfg(not(target_arch = "wasm32"))]
#[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
pub use compression::Compression;
pub use conn::{Closed, Conn, Reader, Writer};
pub use dial::{
    dial, DialOptions, Response, DEFAULT_CLOSE_TIMEOUT, DEFAULT_DIAL_TIMEOUT, DEFAULT_READ_LIMIT,
    DEFAULT_WRITE_HIGH_WATER_MARK,
};
#[cfg(not(target_arch = "wasm32"))]
#[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
pub use engine::Engine;
pub use error::{close_status, Error, ErrorKind, Result, HTTP_BODY_PREFIX};
pub use heartbeat::{Heartbeat, HeartbeatHandle};
pub use message::{Message, MessageType};
pub use reconnect::{ReconnectOptions, Reconnecting};
pub use stream::{ByteStream, MessageSink, MessageStream, DEFAULT_MAX_MESSAGE};
pub use task::MaybeSend;

// Compiles the README's examples as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
