//! The browser backend: the shared `Conn` over the browser's `WebSocket` (web-sys).
//!
//! # Design: a `Send + Sync` handle and a local driver task
//!
//! JavaScript objects (`WebSocket`, `JsValue`, `Closure`) are `!Send`, yet shared code keeps a
//! `Conn` behind `Send` bounds. Instead of faking `Send` (`unsafe impl Send` is unsound,
//! `SendWrapper` panics when touched from another thread), the connection is split in two:
//!
//! - the **driver** (`driver.rs`): one task per connection, started with
//!   `wasm_bindgen_futures::spawn_local`. It alone owns the `WebSocket`, the four event
//!   handler `Closure`s and the `setTimeout` timers. The handlers push an event into a
//!   channel the driver reads (`onmessage` puts data straight into `Shared`'s queue instead),
//!   so no JS object ever reaches the handle. For direct sends the driver also lists its
//!   `WebSocket` in a thread-local registry under the connection's id, and removes it on drop.
//! - the **handle** (`conn.rs`): the backend `Conn` holds only `Send + Sync` things: an
//!   `Arc<Shared>` (a std `Mutex` around the inbound queue and the connection's state, and
//!   atomics), the sending half of a `futures-channel` command channel, and async mutexes
//!   from `futures-util`. Every future a `Conn` method returns awaits only those (channel
//!   receivers, mutex guards), so the futures are `Send` too, and the compiler checks it:
//!   `conn.rs` asserts `Conn: Send + Sync` for every target.
//!
//! On `wasm32-unknown-unknown` without threads there is one thread, so moving the handle to
//! "another thread" never happens in practice; the point is that the types are honestly
//! `Send`, and would stay sound if they ever were moved.
//!
//! # Data flow
//!
//! - **Reading**: `onmessage` converts the event's data (a string, or an `ArrayBuffer`, since
//!   `binaryType` is always `"arraybuffer"`, never a `Blob`) into a `Message`, appends it to
//!   the inbound queue in `Shared` and wakes the reader (no hop through the driver). `read` pops under the
//!   lock within one `poll`, so dropping a `read` loses nothing. The read limit is checked when
//!   the message is popped (the browser has already received it whole); a message over it
//!   fails the connection. The queue is bounded (see `INBOUND_QUEUE_MIN`).
//! - **Writing**: `write` takes the message-level write lock. When the socket is open,
//!   `bufferedAmount` is at or below the high-water mark and no earlier write is queued in the
//!   driver, it calls `WebSocket.send` itself (through the thread's socket registry) and is
//!   done in one poll. Otherwise it sends a command with a `oneshot` reply; the driver hands
//!   the message to `WebSocket.send` once `bufferedAmount` is at or below the high-water mark
//!   (re-checked every `DRAIN_POLL` by `setTimeout`, since the browser has no drain event) and
//!   replies.
//! - **The outgoing bound**: a write hands a message to the driver only when the driver holds
//!   no earlier one; until then it waits (woken when the driver's queue empties, and at once
//!   with the error if the connection closes or fails). `write_batch` and a `Writer`'s finish
//!   wait the same way. So the driver holds the messages of at most one write call, and the
//!   memory held for outgoing messages is at most the browser's buffer (`bufferedAmount`: the
//!   high-water mark plus one message, since nothing is handed to the browser above the mark)
//!   plus that one write's message (or batch) in the driver. A timeout loop around `write`
//!   against a stalled peer therefore cannot grow memory. (In WebKit that holds for the page
//!   only: its `bufferedAmount` does not count what its network process holds, and that
//!   process takes any amount; `tests/wasm` pins this per engine.)
//! - **Cancelled writes**: a write whose future is dropped after its message was handed over
//!   (to the browser, or queued in the driver) still sends it, whole and in order, ahead of
//!   any later write. A write dropped before that (waiting for the write lock, or for an
//!   earlier cancelled write's message to leave the driver) sends nothing. Tests in
//!   `tests/wasm` pin both cases and the bound.
//! - **Closing**: `close` sends a command; the driver calls `close(code, reason)` (codes the
//!   browser refuses are mapped to 1000 beforehand, so it never throws; an exception would be
//!   ignored anyway) and waits for the `close` event, bounded by the close timeout.
//!
//! # Ownership of closures
//!
//! No `Closure::forget`. The driver's `Socket` owns the four handler closures; its `Drop`
//! unsets `onopen`/`onmessage`/`onerror`/`onclose` first (so the browser cannot call into
//! freed closures), closes the socket if it is still connecting or open, and then drops the
//! closures. A `Timer` owns its closure and calls `clearTimeout` on drop. The driver ends, and
//! releases all of it, when the socket closes, when `close_now` is called, when the `Conn`
//! is dropped (its command channel closes), or when a pending dial future is dropped (the
//! driver watches the dial's `oneshot` for cancellation). Events queued in a channel after
//! that find no receiver and are dropped: callbacks after drop do nothing.

mod conn;
mod dial;
mod driver;
pub(crate) mod rt;

pub(crate) use conn::Conn;
pub(crate) use dial::{DialExtras, ResponseExtras};
