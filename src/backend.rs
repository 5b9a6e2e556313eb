//! The one place that picks a backend: `native` (RFC 6455 on tokio) everywhere but
//! `wasm32`; `wasm` wraps the browser's `WebSocket` on `wasm32-unknown-unknown` (and
//! `wasm32v1-none`). Any other `wasm32` target (WASI, Emscripten) is refused below.
//!
//! # The contract every backend meets
//!
//! The shared modules (`conn.rs`, `dial.rs`) call exactly these items; the compiler checks both
//! backends against the same calls. Arguments reaching a backend are already validated (URL,
//! subprotocol tokens, close code and reason).
//!
//! - `async fn dial(&WsUrl, &DialOptions) -> Result<(Conn, Response)>`: opens the connection
//!   or fails with `Connect`, `Handshake` or `Timeout`. Dropping the future closes any socket
//!   it opened.
//! - `Conn` (`Send + Sync`):
//!   - `async fn read(&self) -> Result<Message>`: one reader at a time; cancel-safe (a
//!     dropped call loses no message). After the connection ends, returns the same terminal
//!     error every time (`Closed` with the peer's frame for a clean close).
//!   - `async fn write(&self, Message) -> Result<()>`: serialized with other writers; a
//!     message is queued whole or not at all. `AlreadyClosed` after this side closed.
//!   - `async fn write_batch(&self, Vec<Message>) -> Result<()>`: writes the messages in order
//!     under one hold of the write lock (natively one queue flush); the same guarantees as
//!     `write` for the batch as a whole.
//!   - `async fn writer(&self) -> Result<WriteGuard<'_>>`: takes the message-level write lock.
//!   - `async fn close(&self, StatusCode, &str) -> Result<()>`: sends the close frame, waits
//!     for the peer's (each bounded by the close timeout), wakes a concurrent reader with the
//!     close, closes the transport. Never throws in the browser.
//!   - `fn close_now(&self)`: closes the transport now; never blocks, never panics.
//!   - `fn close_read(&self) -> Closed`: starts a background reader; `Closed` is a
//!     `Future<Output = Error> + Send + Unpin`.
//!   - `fn set_read_limit(&self, usize)`, `fn subprotocol(&self) -> Option<&str>`,
//!     `fn peer_close_frame(&self) -> Option<CloseFrame>`.
//!   - `fn received_count(&self) -> u64`: frames (natively: of any kind, counted as `read`
//!     takes them) or messages (browser: as they arrive) received so far; the heartbeat's
//!     sign of life.
//!   - `fn closed_locally(&self) -> bool`: `close` or `close_now` was called (or the `Conn`
//!     is being dropped).
//!   - `fn fail(&self, Error)`: ends the connection at once with this error (reads and writes
//!     then return it), dropping the transport without a handshake.
//!   - `async fn ping(&self) -> Result<()>` (native only).
//!   - Drop: closes the transport without a handshake and releases every resource (tasks,
//!     JS closures); nothing panics.
//! - `WriteGuard<'a>` (`Send + Sync`): `poll_send_frame(cx, type, payload, first, fin)` sends
//!   one piece of the current message (`first` picks the data opcode, `fin` ends it) and
//!   `abort_message()` fails the connection when a started message can never be finished.
//! - `rt`: what the shared helpers (reconnect, heartbeat) run on: `spawn(fut) -> bool`
//!   (`false` if there is no runtime to spawn on; natively the future must be `Send`),
//!   `async fn sleep(Duration)` (cancelled by dropping it), `now() -> Duration` (monotonic)
//!   and `random_u64()` (for jitter).
//! - `const WRITER_STREAMS: bool`: `true` if `poll_send_frame` may be called with
//!   `fin = false` (frames on the wire); `false` if the shared `Writer` must buffer the whole
//!   message and call it once with `first = fin = true`.

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::native::{
    accept, dial, rt, Closed, Conn, DialExtras, WriteGuard, WRITER_STREAMS,
};

#[cfg(all(target_arch = "wasm32", any(target_os = "unknown", target_os = "none")))]
pub(crate) use crate::wasm::{dial, rt, Closed, Conn, DialExtras, WriteGuard, WRITER_STREAMS};

#[cfg(all(
    target_arch = "wasm32",
    not(any(target_os = "unknown", target_os = "none"))
))]
compile_error!(
    "isosock supports native targets and wasm32-unknown-unknown (the browser) only: \
     WASI and Emscripten have no browser WebSocket for the browser backend to wrap, and \
     tokio's networking, which the native backend needs, is not available there"
);
