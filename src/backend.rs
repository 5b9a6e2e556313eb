//! The one place that picks a backend: `native` (RFC 6455 on tokio) everywhere but
//! `wasm32`; `wasm` wraps the browser's `WebSocket` on `wasm32-unknown-unknown` (and
//! `wasm32v1-none`). Any other `wasm32` target (WASI, Emscripten) is refused below.
//!
//! # The contract every backend meets
//!
//! The contract is the [`Engine`] trait (and [`FrameSink`] for a streamed message, [`Dial`] for
//! opening a connection): the shared
//! modules (`conn.rs`, `dial.rs`, the helpers) reach a backend only through it, so the compiler
//! checks every backend against the same signatures, `Send` bounds included. Each item's doc
//! says what it guarantees on success, on error and on drop. Arguments reaching a backend are
//! already validated (URL, subprotocol tokens, close code and reason).
//!
//! Besides the trait, each backend provides:
//!
//! - `rt`: what the shared helpers (reconnect, heartbeat) run on: `spawn(fut) -> bool`
//!   (`false` if there is no runtime to spawn on; natively the future must be `Send`),
//!   `async fn sleep(Duration)` (cancelled by dropping it), `now() -> Duration` (monotonic)
//!   and `random_u64()` (for jitter).
//!   Also `MaybeSend` and the boxed task types (`Send` natively, not in the browser), and
//!   `PingProbe`, the heartbeat's ping (uninhabited in the browser, which cannot ping).
//! - `DialExtras` and `ResponseExtras`: what `DialOptions` and `Response` hold beyond their
//!   shared fields (natively headers and TLS settings; empty in the browser), each with
//!   `debug_fields` so the shared `Debug` impls need no cfg.
//! - natively, `accept` (the server side, which hands a connection to an engine) and
//!   `Conn::ping` (a ping that waits for its pong), whole items the browser has no
//!   counterpart for.

use std::future::Future;
use std::task::{Context, Poll};

use crate::close::{CloseFrame, StatusCode};
use crate::dial::{DialOptions, Response, WsUrl};
use crate::error::{Error, Result};
use crate::message::{Message, MessageType};

/// One WebSocket connection as a backend implements it. `Conn` wraps exactly one `Engine`
/// (natively an enum of the engines, each of which implements this trait too).
///
/// Every future is `Send`: shared code keeps a `Conn` behind `Send` bounds on both targets.
pub(crate) trait Engine: Send + Sync + Sized + 'static {
    /// The message-level write lock held by a `Writer`.
    type WriteGuard<'a>: FrameSink + Send + Sync + std::fmt::Debug
    where
        Self: 'a;
    /// The future `close_read` returns.
    type Closed: Future<Output = Error> + Send + Unpin + std::fmt::Debug;

    /// `true` if `FrameSink::poll_send_frame` may be called with `fin = false` (frames on the
    /// wire); `false` if the shared `Writer` must buffer the whole message and call it once
    /// with `first = fin = true`. Per connection, since natively the engine is chosen per
    /// connection and only the own engine streams.
    fn writer_streams(&self) -> bool;

    /// The next message. One reader at a time; cancel-safe (a dropped call loses no message).
    /// After the connection ends, returns the same terminal error every time (`Closed` with
    /// the peer's frame for a clean close).
    fn read(&self) -> impl Future<Output = Result<Message>> + Send;

    /// Writes one message, serialized with other writers; a message is queued whole or not
    /// at all. `AlreadyClosed` after this side closed.
    fn write(&self, msg: Message) -> impl Future<Output = Result<()>> + Send;

    /// Writes the messages in order under one hold of the write lock (natively one queue
    /// flush); the same guarantees as `write` for the batch as a whole.
    fn write_batch(&self, msgs: Vec<Message>) -> impl Future<Output = Result<()>> + Send;

    /// Takes the message-level write lock for a streamed message.
    fn writer(&self) -> impl Future<Output = Result<Self::WriteGuard<'_>>> + Send;

    /// Sends the close frame, waits for the peer's (each bounded by the close timeout), wakes
    /// a concurrent reader with the close, closes the transport. Never throws in the browser.
    fn close(&self, code: StatusCode, reason: &str) -> impl Future<Output = Result<()>> + Send;

    /// Closes the transport now; never blocks, never panics.
    fn close_now(&self);

    /// Starts a background reader (a data message then fails the connection with 1008); the
    /// returned future resolves when the connection has ended.
    fn close_read(&self) -> Self::Closed;

    /// Sets the read limit for the messages that follow.
    fn set_read_limit(&self, bytes: usize);

    /// The negotiated subprotocol.
    fn subprotocol(&self) -> Option<&str>;

    /// The negotiated extensions, as the server's `Sec-WebSocket-Extensions` stated them
    /// (empty when none).
    fn extensions(&self) -> &str;

    /// The peer's close frame, once it arrived.
    fn peer_close_frame(&self) -> Option<CloseFrame>;

    /// Frames (natively: of any kind, counted as `read` takes them) or messages (browser: as
    /// they arrive) received so far: the heartbeat's sign of life.
    fn received_count(&self) -> u64;

    /// Whether `close` or `close_now` was called (or the `Conn` is being dropped): the
    /// callback server and `ByteStream` tell a close this side started from the peer's.
    fn closed_locally(&self) -> bool;

    /// Ends the connection at once with this error (reads and writes then return it),
    /// dropping the transport without a handshake: the heartbeat's verdict on a dead peer.
    fn fail(&self, err: Error);

    // Drop: closes the transport without a handshake and releases every resource (tasks,
    // JS closures); nothing panics.
}

/// How a backend opens a connection. Implemented by `backend::Conn` only: natively one dial
/// (isosock's handshake) serves every engine, which then carries the frames.
pub(crate) trait Dial: Engine {
    /// Opens the connection or fails with `Connect`, `Handshake` or `Timeout`. Dropping the
    /// future closes any socket it opened.
    fn dial(
        url: &WsUrl<'_>,
        opts: &DialOptions,
    ) -> impl Future<Output = Result<(Self, Response)>> + Send;
}

/// Sends the pieces of one streamed message; held by a `Writer`.
pub(crate) trait FrameSink {
    /// Sends one piece of the current message (`first` picks the data opcode, `fin` ends it).
    fn poll_send_frame(
        &mut self,
        cx: &mut Context<'_>,
        ty: MessageType,
        payload: &[u8],
        first: bool,
        fin: bool,
    ) -> Poll<Result<()>>;

    /// A started message can never be finished: fails the connection.
    fn abort_message(&mut self);
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::native::{accept, rt, Conn, DialExtras, ProxySetting, ResponseExtras};

#[cfg(all(target_arch = "wasm32", any(target_os = "unknown", target_os = "none")))]
pub(crate) use crate::wasm::{rt, Conn, DialExtras, ResponseExtras};

#[cfg(all(
    target_arch = "wasm32",
    not(any(target_os = "unknown", target_os = "none"))
))]
compile_error!(
    "isosock supports native targets and wasm32-unknown-unknown (the browser) only: \
     WASI and Emscripten have no browser WebSocket for the browser backend to wrap, and \
     tokio's networking, which the native backend needs, is not available there"
);
