//! The tokio-tungstenite engine (feature `tungstenite`): tungstenite carries the frames of a
//! connection whose handshake isosock did (`WebSocketStream::from_partially_read`), or of a
//! `WebSocketStream` the caller already has (`Conn::from_tungstenite`), behind the same
//! backend contract as the own engine (`backend.rs`).
//!
//! # Shape
//!
//! tokio-tungstenite's `WebSocketStream` is one object that is both a `Stream` of messages and
//! a `Sink` for them, driven by `&mut`. isosock's `Conn` is shared by `&self` methods, so the
//! stream lives in a std mutex (`ws`) that is held only within one poll, never across an
//! await, exactly like the own engine's `io`. That gives what the contract asks for:
//!
//! - `read`: one reader at a time (`read`, an async mutex held across awaits); each poll takes
//!   `ws`, polls `Stream::poll_next` and lets go. tokio-tungstenite's `Stream` side is
//!   cancel-safe, so a dropped `read` loses no message.
//! - `write`, `write_batch`, `writer`: whole messages in order under `write` (async); each
//!   message goes through `Sink::poll_ready` + `start_send`, then one `poll_flush`. A message
//!   handed to `start_send` is queued whole in tungstenite's buffer: a dropped write either
//!   queued it whole or not at all, and the next write, ping or close flushes it.
//! - control frames (close, ping) go without `write`, between messages: tungstenite queues
//!   them like any message. Pongs to the peer's pings are queued by tungstenite itself while
//!   reading and flushed by the next read or write (so, as with the own engine, reading is
//!   what answers pings).
//! - `close_now`, drop and `fail` take the stream out of `ws` and drop it, which closes the
//!   socket at once even while a reader is parked in it; the readers and writers parked on it
//!   are woken through `read_waker` and `senders` (the wakers they registered inside the
//!   dropped stream went with it). Several tasks may send at once (a writer, a ping, a
//!   close), so each pending send keeps its own slot in `senders`, freed when it ends; a
//!   waker is registered there (and in `read_waker`) only when a poll returns `Pending`, while
//!   `ws` is still held, so the common path takes no extra lock. This is why the stream is
//!   not split into halves behind async mutexes: a half held by a parked reader could not be
//!   dropped from outside.
//!
//! The close state machine is the one both engines share (`native/closing.rs`): the same
//! errors (`Closed` with the peer's frame, `AlreadyClosed` after this side closed, `Timeout`
//! for a close handshake that did not finish within the close timeout), the same "first
//! terminal error wins" rule; this engine supplies only its framing (`Closer` below).
//! tungstenite's `Error` never reaches a caller: `map_error` turns it into an isosock `Error`
//! with tungstenite's as its `source`.
//!
//! | module | job |
//! | --- | --- |
//! | this one | the connection's state, the backend contract, the close state machine's hooks |
//! | [`read`] | polling tungstenite's `Stream`, pongs, the read limit, failures and their codes |
//! | [`send`] | handing messages to tungstenite's `Sink` and flushing it, the waker of each send, pings, the `Writer`'s guard |
//!
//! # What tungstenite decides, and how it differs from the own engine
//!
//! - **Read limit**: tungstenite's `max_message_size` and `max_frame_size` are the read limit
//!   the connection was made with, so a message over it is refused while it arrives (memory
//!   stays bounded). A running `WebSocketStream` cannot be reconfigured, so `set_read_limit`
//!   is enforced when a message has arrived whole: lowering works (the message fails with
//!   1009 after it arrived); raising above the connection-time limit does not reach
//!   tungstenite, which still refuses larger messages. An adopted stream keeps the limits it
//!   was built with; isosock's limit is checked after each message.
//! - **Failures close with the RFC's code**: tungstenite reports a protocol error, an
//!   over-limit message or bad UTF-8 without sending a close frame; this engine sends 1002,
//!   1009 or 1007 (bounded by the close timeout) before it drops the transport, as the own
//!   engine does. Invalid UTF-8 is found when the message is whole, not mid-frame.
//! - **A peer's close with a code that may not be sent** (1005, 1006, 1015, unassigned) is
//!   answered by tungstenite with 1002 "Protocol violation", and that is the frame `read`
//!   reports.
//! - **Writer**: whole messages only (`writer_streams` is `false`): the shared `Writer`
//!   buffers the message and sends it on finish.
//! - **Read buffer**: 16 KiB ([`READ_BUFFER`]) instead of tungstenite's 128 KiB, which it
//!   zero-fills before every read: less memory per connection and more messages per second.
//!   An adopted stream keeps the buffer it was built with.
//! - **No permessage-deflate**: refused where the engine is chosen.
//! - **Write back-pressure**: a send flushes what tungstenite's buffer still holds (left by a
//!   cancelled send) before it queues its own message, then flushes that: at most one
//!   message waits in the buffer, however many writes are cancelled. isosock's
//!   `write_high_water_mark` does not apply.

mod read;
mod send;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::lock::Mutex as AsyncMutex;
use futures_util::task::AtomicWaker;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::Error as TgError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame as TgCloseFrame, Role as TgRole, WebSocketConfig,
};
use tokio_tungstenite::tungstenite::Message as TgMessage;
use tokio_tungstenite::WebSocketStream;

use super::closing::{already_closed, close_read, lock, CloseState, Closed, Closer};
use super::frame::Role;
use super::io::Transport;
use super::pings::Pings;
use super::{Negotiated, Settings};
use crate::backend::Engine;
use crate::close::{CloseFrame, StatusCode};
use crate::error::{Error, Result};
use crate::message::Message;

pub(crate) use send::WriteGuard;

/// The smallest frame limit given to tungstenite: a control frame may carry 125 bytes
/// whatever the read limit.
const MIN_FRAME_LIMIT: usize = 125;

/// What the engine needs of a `WebSocketStream`, whatever stream it runs over.
trait Ws:
    Stream<Item = std::result::Result<TgMessage, TgError>>
    + Sink<TgMessage, Error = TgError>
    + Send
    + Unpin
    + 'static
{
}

impl<S> Ws for WebSocketStream<S> where S: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

/// The read buffer given to tungstenite (its default is 128 KiB).
///
/// tungstenite zero-fills the spare part of its read buffer, up to this size, before every
/// read, and reads at most this much at a time: with 128 KiB that is two 128 KiB fills per
/// small message (97% of the instructions of a 16-byte echo) and 128 KiB resident per idle
/// connection. 16 KiB measured 1.16x the default's messages per second (geometric mean over
/// 16 B to 64 KiB, 1 and 64 connections; 8 KiB 1.13x, 4 KiB 1.05x, slower at 64 KiB).
const READ_BUFFER: usize = 16 << 10;

/// tungstenite's configuration for a connection made with `settings`: the read limit as its
/// message and frame limits, and [`READ_BUFFER`]; everything else tungstenite's default.
pub(crate) fn config(settings: &Settings) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(settings.read_limit))
        .max_frame_size(Some(settings.read_limit.max(MIN_FRAME_LIMIT)))
        .read_buffer_size(READ_BUFFER)
}

/// Everything a connection's handles and futures share.
///
/// Locks, in the order they are taken: `read` (async, held across awaits), `write` (async,
/// held across awaits), `ws` (std, within one poll), then the leaves: the close state, the
/// pings' waiters and `senders`.
struct Shared {
    /// The stream; `None` once dropped.
    ws: Mutex<Option<Box<dyn Ws>>>,
    /// Whether a send stopped (returned `Pending`) since tungstenite's buffer was last flushed
    /// whole: only then may a cancelled send have left a message there for the next send to
    /// flush first. Read and written with `ws` held.
    unflushed: AtomicBool,
    /// One reader at a time.
    read: AsyncMutex<()>,
    /// Whole messages in order.
    write: AsyncMutex<()>,
    /// Woken when the stream is dropped, so a parked reader sees it.
    read_waker: AtomicWaker,
    /// The wakers of the sends in progress, woken when the stream is dropped.
    senders: Mutex<send::Senders>,
    close: CloseState,
    /// Pings waiting for the pong that carries their id.
    pings: Pings,
    read_limit: AtomicUsize,
    close_timeout: Duration,
    /// Frames of any kind read so far (data messages, pings, pongs, close).
    received: AtomicU64,
}

/// A native connection carried by tokio-tungstenite; see `backend.rs` for the contract.
pub(crate) struct Conn {
    shared: Arc<Shared>,
    subprotocol: Option<String>,
    extensions: String,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("engine", &"tungstenite")
            .field("subprotocol", &self.subprotocol)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Hands a stream that completed isosock's handshake to tungstenite; `leftover` is what
    /// was read past the handshake. The agreement must not include compression (refused
    /// where the engine is chosen).
    pub(crate) async fn from_upgraded(
        transport: Transport,
        leftover: Vec<u8>,
        role: Role,
        negotiated: Negotiated,
        settings: Settings,
    ) -> Self {
        let role = match role {
            Role::Client => TgRole::Client,
            Role::Server => TgRole::Server,
        };
        let ws = WebSocketStream::from_partially_read(
            transport,
            leftover,
            role,
            Some(config(&settings)),
        )
        .await;
        Conn::from_stream(ws, negotiated.subprotocol, negotiated.extensions, settings)
    }

    /// Adopts a `WebSocketStream` (its limits stay as it was built with; `settings.read_limit`
    /// is checked after each message).
    pub(crate) fn from_stream<S>(
        ws: WebSocketStream<S>,
        subprotocol: Option<String>,
        extensions: String,
        settings: Settings,
    ) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Conn {
            shared: Arc::new(Shared {
                ws: Mutex::new(Some(Box::new(ws))),
                unflushed: AtomicBool::new(false),
                read: AsyncMutex::new(()),
                write: AsyncMutex::new(()),
                read_waker: AtomicWaker::new(),
                senders: Mutex::new(send::Senders::default()),
                close: CloseState::default(),
                pings: Pings::default(),
                read_limit: AtomicUsize::new(settings.read_limit),
                close_timeout: settings.close_timeout,
                received: AtomicU64::new(0),
            }),
            subprotocol,
            extensions,
        }
    }

    /// Sends a ping and waits until a reader sees its pong.
    pub(crate) async fn ping(&self) -> Result<()> {
        self.shared.ping().await
    }
}

impl Engine for Conn {
    type WriteGuard<'a> = WriteGuard<'a>;
    type Closed = Closed;

    fn writer_streams(&self) -> bool {
        false
    }

    async fn read(&self) -> Result<Message> {
        let _reading = self.shared.read.lock().await;
        self.shared.read_locked().await
    }

    async fn write(&self, msg: Message) -> Result<()> {
        self.shared.write_messages(to_tungstenite(msg).into()).await
    }

    async fn write_batch(&self, msgs: Vec<Message>) -> Result<()> {
        let msgs: Vec<TgMessage> = msgs.into_iter().map(to_tungstenite).collect();
        self.shared.write_messages(msgs.into()).await
    }

    async fn writer(&self) -> Result<WriteGuard<'_>> {
        self.shared.writer().await
    }

    async fn close(&self, code: StatusCode, reason: &str) -> Result<()> {
        self.shared.close(code, reason).await
    }

    fn close_now(&self) {
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
        self.shared.abort("the connection was dropped");
    }
}

/// isosock's message as tungstenite's (no copy: `String` and `Bytes` move).
fn to_tungstenite(msg: Message) -> TgMessage {
    match msg {
        Message::Text(s) => TgMessage::Text(s.into()),
        Message::Binary(b) => TgMessage::Binary(b),
    }
}

/// A close frame as tungstenite sends it (code and reason already validated).
fn tg_close(code: StatusCode, reason: &str) -> TgMessage {
    TgMessage::Close(Some(TgCloseFrame {
        code: CloseCode::from(code.as_u16()),
        reason: reason.into(),
    }))
}

impl Closer for Shared {
    type ReadState = ();

    fn close_state(&self) -> &CloseState {
        &self.close
    }

    fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    fn read_lock(&self) -> &AsyncMutex<()> {
        &self.read
    }

    fn read_locked(&self, _: &mut ()) -> impl Future<Output = Result<Message>> + Send {
        Shared::read_locked(self)
    }

    async fn send_close(&self, code: StatusCode, reason: &str) -> Result<()> {
        let sent = self.send(tg_close(code, reason).into()).await;
        sent.map_err(|g| match g {
            send::Gone::Dropped => already_closed(),
            send::Gone::Failed(e) => read::map_error(e).0,
        })
    }

    async fn answer_close(&self, _: Option<&CloseFrame>) {
        // tungstenite queued the echo of the peer's frame when it read it: flush it.
        let _ = self.send(send::Queue::none()).await;
    }

    fn drop_io(&self) {
        let ws = lock(&self.ws).take();
        drop(ws);
        self.read_waker.wake();
        self.wake_senders();
    }
}
