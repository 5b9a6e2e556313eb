//! isosock's own RFC 6455 engine: one connection over any tokio stream, shared by `&self`
//! methods. Framing lives in `frame.rs` (pure, fuzzed); this module holds the connection's
//! state and splits its work by concern:
//!
//! | module | job | state it owns |
//! | --- | --- | --- |
//! | [`read`] | reading, parsing, the receive rules, UTF-8 as it arrives, answering pings | `read`, `reader_waker`, `received` |
//! | [`write`] | the group-commit write queue and its high-water mark, the streaming writer | `write` (`msg_lock`, `out`, the writers' wakers) |
//! | [`close`] | this engine's side of the close state machine (`native/closing.rs`): close frames on the write queue, the echo, dropping the socket | `close` (`native::closing::CloseState`) |
//! | [`ping`] | pings sent on the write queue (their pongs: `native/pings.rs`) | `pings` |
//! | [`utf8`] | the incremental UTF-8 check | (none) |
//! | [`deflate`] | permessage-deflate's compressor and decompressor | (held under `write.msg_lock` and in `read`) |
//!
//! # Memory
//!
//! An idle connection holds no buffer: a read that waits for data polls the socket into a
//! buffer on the stack, and only bytes that arrived are copied to the heap (a message's payload,
//! or the start of a frame not complete yet). Outgoing bytes live in a queue that is freed once
//! written; a large message's payload is not copied into it but shared with the caller's
//! `Bytes` (a client masks it in place when nobody else holds it). An uncontended short write
//! builds its frame in one buffer per thread (at most 4 KiB, shared by every connection on
//! the thread). Nothing per connection is timed; the one task ever spawned is a deferred
//! burst's flusher (`write.rs`), which ends as soon as it has looked.
//!
//! # Locks, and the order they are taken in
//!
//! 1. `read` (async): one reader at a time; its state holds all progress, so a dropped read
//!    loses nothing. Held across awaits.
//! 2. `write.msg_lock` (async): whole messages in order; a writer holds it while it queues its
//!    frames, so the frames of two messages never interleave. Control frames (pong, ping,
//!    close) are queued without it, between frames. Held across awaits.
//! 3. `write.out` (std): the outgoing queue. Whoever waits for its bytes to be written writes
//!    everything queued: concurrent writers share system calls (group commit).
//! 4. `io` (std): the stream, held only within one poll.
//! 5. the close state (std) and the pings' waiters (std): leaves, never held while another lock is taken.
//!
//! A task may take a lock of a higher number while it holds one of a lower number, never the
//! other way round. The std mutexes are held only within one poll or one synchronous step.

mod close;
mod deflate;
mod ping;
mod read;
mod utf8;
mod write;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::lock::Mutex as AsyncMutex;
use futures_util::task::AtomicWaker;

use super::closing::{close_read, lock, CloseState, Closed, Closer};
use super::extensions::Agreement;
use super::frame::Role;
use super::io::Transport;
use super::pings::Pings;
use crate::backend::Engine;
use crate::close::{CloseFrame, StatusCode};
use crate::error::{Error, Result};
use crate::message::Message;

pub(crate) use write::WriteGuard;

/// Takes an async mutex: at once when it is free (no lock future, no waker: the uncontended
/// path of every `read` and `write`), else by waiting in its queue.
async fn lock_async<T>(m: &AsyncMutex<T>) -> futures_util::lock::MutexGuard<'_, T> {
    match m.try_lock() {
        Some(guard) => guard,
        None => m.lock().await,
    }
}

/// Settings fixed when a connection is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) read_limit: usize,
    pub(crate) close_timeout: Duration,
    /// Queued bytes beyond which a write waits before it queues (see `write::poll_room`).
    pub(crate) write_high_water_mark: usize,
    /// Messages shorter than this are sent uncompressed (when compression was agreed).
    pub(crate) compression_threshold: usize,
}

/// What the opening handshake agreed, beyond the stream itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct Negotiated {
    pub(crate) subprotocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` value of the `101` response; empty when none.
    pub(crate) extensions: String,
    /// The permessage-deflate agreement, if any.
    pub(crate) deflate: Option<Agreement>,
}

/// Everything a connection's handles and futures share. Each concern's fields and methods
/// live in its own module; see the module docs for the lock order.
struct Shared {
    /// Lock 4: the stream.
    io: Mutex<Transport>,
    /// Lock 1: the reader's state.
    read: AsyncMutex<read::ReadState>,
    /// Woken when the transport is dropped, so a reader parked on the socket sees it.
    reader_waker: AtomicWaker,
    /// Locks 2 and 3: the write queue.
    write: write::WriteQueue,
    /// Lock 5: the close state machine.
    close: CloseState,
    /// Lock 5: pings waiting for their pong.
    pings: Pings,
    role: Role,
    read_limit: AtomicUsize,
    settings: Settings,
    /// Frames of any kind read so far: the heartbeat's sign of life.
    received: AtomicU64,
}

/// A native connection of the own engine; see `backend.rs` for the contract.
pub(crate) struct Conn {
    shared: Arc<Shared>,
    subprotocol: Option<String>,
    extensions: String,
}

impl Conn {
    /// Wraps a stream that has completed the HTTP upgrade; `leftover` is what was read past
    /// the handshake.
    pub(crate) fn from_upgraded(
        transport: Transport,
        leftover: Vec<u8>,
        role: Role,
        negotiated: Negotiated,
        settings: Settings,
    ) -> Self {
        // Each side compresses with its own window and drops its context as agreed; the
        // peer's choices decide this side's decompressor.
        let (deflater, inflater) = match negotiated.deflate {
            None => (None, None),
            Some(a) => {
                let (send_bits, send_reset, recv_reset) = match role {
                    Role::Server => (
                        a.server_max_window_bits,
                        a.server_no_context_takeover,
                        a.client_no_context_takeover,
                    ),
                    Role::Client => (
                        a.client_max_window_bits,
                        a.client_no_context_takeover,
                        a.server_no_context_takeover,
                    ),
                };
                let send = deflate::Direction {
                    window_bits: send_bits,
                    reset: send_reset,
                };
                (
                    // Boxed: 170 bytes each that a connection without compression does not hold.
                    deflate::Deflater::new(send, settings.compression_threshold).map(Box::new),
                    Some(Box::new(deflate::Inflater::new(recv_reset))),
                )
            }
        };
        Conn {
            shared: Arc::new(Shared {
                io: Mutex::new(transport),
                read: AsyncMutex::new(read::ReadState::new(&leftover, inflater)),
                reader_waker: AtomicWaker::new(),
                write: write::WriteQueue::new(deflater),
                close: CloseState::default(),
                pings: Pings::default(),
                role,
                read_limit: AtomicUsize::new(settings.read_limit),
                settings,
                received: AtomicU64::new(0),
            }),
            subprotocol: negotiated.subprotocol,
            extensions: negotiated.extensions,
        }
    }

    /// Sends a ping and waits for its pong (native only, outside the shared contract).
    pub(crate) async fn ping(&self) -> Result<()> {
        self.shared.ping().await
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("role", &self.shared.role)
            .field("subprotocol", &self.subprotocol)
            .field("extensions", &self.extensions)
            .finish_non_exhaustive()
    }
}

impl Engine for Conn {
    type WriteGuard<'a> = WriteGuard<'a>;
    type Closed = Closed;

    fn writer_streams(&self) -> bool {
        true
    }

    async fn read(&self) -> Result<Message> {
        let mut rs = lock_async(&self.shared.read).await;
        self.shared.read_locked(&mut rs).await
    }

    async fn write(&self, msg: Message) -> Result<()> {
        self.shared.write_messages([msg]).await
    }

    async fn write_batch(&self, msgs: Vec<Message>) -> Result<()> {
        self.shared.write_messages(msgs).await
    }

    async fn writer(&self) -> Result<WriteGuard<'_>> {
        self.shared.writer().await
    }

    async fn close(&self, code: StatusCode, reason: &str) -> Result<()> {
        self.shared.close(code, reason).await
    }

    fn close_now(&self) {
        // Writes that returned with their bytes deferred were reported done: as far as the
        // socket takes them without waiting, they go before it is dropped.
        self.shared.write_deferred_now();
        self.shared
            .abort("the connection was closed with close_now");
    }

    fn close_read(&self) -> Closed {
        close_read(&self.shared)
    }

    fn set_read_limit(&self, bytes: usize) {
        self.shared.read_limit.store(bytes, Ordering::Relaxed);
    }

    fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    fn extensions(&self) -> &str {
        &self.extensions
    }

    fn peer_close_frame(&self) -> Option<CloseFrame> {
        self.shared.close.peer_close()
    }

    fn received_count(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    fn closed_locally(&self) -> bool {
        self.shared.close.user_closed()
    }

    fn fail(&self, err: Error) {
        self.shared.fail(err);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.write_deferred_now();
        self.shared.abort("the connection was dropped");
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::testing::{bounded, pair};
    use crate::native::frame::Role;

    #[tokio::test]
    async fn dropping_a_conn_closes_the_socket_at_once_without_a_frame() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Client, 1 << 20);
            drop(conn);
            let mut rest = Vec::new();
            peer.read_to_end(&mut rest).await.expect("eof");
            assert!(rest.is_empty(), "bytes after drop: {rest:?}");
        })
        .await;
    }

    #[tokio::test]
    async fn leftover_bytes_from_the_handshake_are_read_first() {
        bounded(async {
            use crate::backend::Engine;
            let (ours, _theirs) = tokio::io::duplex(1024);
            let leftover = super::testing::frame(
                Role::Client,
                true,
                crate::native::frame::OpCode::Text,
                b"early",
            );
            let conn = super::Conn::from_upgraded(
                crate::native::io::Transport::new(ours),
                leftover,
                Role::Client,
                super::Negotiated::default(),
                super::testing::settings(1 << 20),
            );
            assert_eq!(
                conn.read().await.expect("read"),
                crate::message::Message::text("early")
            );
        })
        .await;
    }
}

/// What the unit tests of every engine module share: a connection over an in-memory duplex,
/// with the raw peer end to write hand-built frames to and read the engine's frames from.
#[cfg(test)]
mod testing {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::{Conn, Negotiated, Settings};
    use crate::native::frame::{self, OpCode, Role};
    use crate::native::io::Transport;

    /// A connection in `role` whose peer is the returned raw stream (64 KiB of pipe each way).
    pub(super) fn pair(role: Role, read_limit: usize) -> (Conn, DuplexStream) {
        pair_with(role, settings(read_limit), 64 << 10)
    }

    /// The default settings of the tests, with this read limit.
    pub(super) fn settings(read_limit: usize) -> Settings {
        Settings {
            read_limit,
            close_timeout: Duration::from_secs(5),
            write_high_water_mark: 1 << 20,
            compression_threshold: 0,
        }
    }

    /// A connection with these settings over a pipe of `pipe` bytes each way.
    pub(super) fn pair_with(role: Role, settings: Settings, pipe: usize) -> (Conn, DuplexStream) {
        pair_negotiated(role, settings, pipe, Negotiated::default())
    }

    /// A connection with these settings and this agreement (compression).
    pub(super) fn pair_negotiated(
        role: Role,
        settings: Settings,
        pipe: usize,
        negotiated: Negotiated,
    ) -> (Conn, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(pipe);
        let conn =
            Conn::from_upgraded(Transport::new(ours), Vec::new(), role, negotiated, settings);
        (conn, theirs)
    }

    /// A frame as the peer of a connection in `role` sends it (masked when the peer is a
    /// client, that is when `role` is the server).
    pub(super) fn frame(role: Role, fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mask = match role {
            Role::Server => Some([0x37, 0xfa, 0x21, 0x3d]),
            Role::Client => None,
        };
        let mut out = Vec::new();
        frame::write_header(&mut out, fin, opcode, mask, payload.len());
        let body = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = mask {
            frame::apply_mask(&mut out[body..], key);
        }
        out
    }

    /// Reads one frame the connection sent (unmasking it): FIN, opcode, payload.
    pub(super) async fn next_frame(peer: &mut DuplexStream) -> (bool, u8, Vec<u8>) {
        let mut head = [0u8; 2];
        peer.read_exact(&mut head).await.expect("frame header");
        let masked = head[1] & 0x80 != 0;
        let len = match head[1] & 0x7f {
            126 => u64::from(peer.read_u16().await.expect("16-bit length")),
            127 => peer.read_u64().await.expect("64-bit length"),
            n => u64::from(n),
        };
        let mut key = [0u8; 4];
        if masked {
            peer.read_exact(&mut key).await.expect("mask key");
        }
        let mut payload = vec![0u8; usize::try_from(len).expect("frame length")];
        peer.read_exact(&mut payload).await.expect("payload");
        if masked {
            frame::apply_mask(&mut payload, key);
        }
        (head[0] & 0x80 != 0, head[0] & 0x0f, payload)
    }

    /// Writes `bytes` to the connection from the peer's side.
    pub(super) async fn send(peer: &mut DuplexStream, bytes: &[u8]) {
        peer.write_all(bytes).await.expect("peer write");
    }

    /// A close frame's payload.
    pub(super) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        p
    }

    /// Bounds a test body in time.
    pub(super) async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("the test did not finish within 10 s")
    }
}
