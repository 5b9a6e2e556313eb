//! Sending: whole messages handed to tungstenite's `Sink` within one hold of `ws` per poll,
//! then flushed; each pending send's waker in its own slot (so dropping the stream wakes
//! every parked sender); pings; the `Writer`'s guard.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{ready, Context, Poll, Waker};

use futures_util::lock::MutexGuard as AsyncMutexGuard;
use futures_util::Sink;
use tokio_tungstenite::tungstenite::error::Error as TgError;
use tokio_tungstenite::tungstenite::Message as TgMessage;

use super::{lock, read::map_error, Shared};
use crate::backend::FrameSink;
use crate::error::{Error, ErrorKind, Result};
use crate::message::MessageType;
use crate::native::closing::{already_closed, Closer};

/// The wakers of the sends in progress, each in its own slot.
#[derive(Debug, Default)]
pub(super) struct Senders {
    next: u64,
    slots: Vec<(u64, Waker)>,
}

/// The messages of one send, in order: none (a flush), one (a write, a ping, a close: no
/// allocation) or a batch.
pub(super) enum Queue {
    One(Option<TgMessage>),
    Many(std::vec::IntoIter<TgMessage>),
}

impl Queue {
    /// Nothing to hand over: the send only flushes.
    pub(super) fn none() -> Self {
        Queue::One(None)
    }

    fn is_empty(&self) -> bool {
        match self {
            Queue::One(m) => m.is_none(),
            Queue::Many(it) => it.len() == 0,
        }
    }

    fn pop(&mut self) -> Option<TgMessage> {
        match self {
            Queue::One(m) => m.take(),
            Queue::Many(it) => it.next(),
        }
    }
}

impl From<TgMessage> for Queue {
    fn from(msg: TgMessage) -> Self {
        Queue::One(Some(msg))
    }
}

impl From<Vec<TgMessage>> for Queue {
    fn from(msgs: Vec<TgMessage>) -> Self {
        Queue::Many(msgs.into_iter())
    }
}

/// Messages on their way into tungstenite's `Sink`: each is handed over once the sink is
/// ready, then the sink is flushed. Holds a slot in `Shared::senders` once it had to wait.
struct Outgoing<'a> {
    shared: &'a Shared,
    queue: Queue,
    slot: Option<u64>,
    /// Whether what an earlier, cancelled send left in tungstenite's buffer was flushed.
    drained: bool,
}

impl<'a> Outgoing<'a> {
    fn new(shared: &'a Shared, queue: Queue) -> Self {
        Outgoing {
            shared,
            queue,
            slot: None,
            drained: false,
        }
    }

    /// Stores the waker of this send's latest poll.
    fn register(&mut self, waker: &Waker) {
        let mut senders = lock(&self.shared.senders);
        let id = *self.slot.get_or_insert_with(|| {
            senders.next += 1;
            senders.next
        });
        match senders.slots.iter_mut().find(|(i, _)| *i == id) {
            Some((_, w)) => w.clone_from(waker),
            None => senders.slots.push((id, waker.clone())),
        }
    }
}

impl Drop for Outgoing<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.slot {
            lock(&self.shared.senders).slots.retain(|(i, _)| *i != id);
        }
    }
}

/// Why a poll of the stream could not be made.
pub(super) enum Gone {
    /// The stream was dropped (close_now, drop, a failure).
    Dropped,
    /// tungstenite failed.
    Failed(TgError),
}

impl Shared {
    /// Hands everything in `out` to the sink and flushes it, within one hold of `ws` per
    /// poll. Cancel-safe per message: a message taken from `out` is queued whole in
    /// tungstenite's buffer.
    ///
    /// Bounded under cancellation: tungstenite takes messages into its buffer until it holds
    /// its `write_buffer_size` (128 KiB), so a loop of cancelled writes to a peer that does
    /// not read would leave up to that much plus a message queued (9 of 200 cancelled 16 KiB
    /// writes); flushing what a cancelled send left before queueing the next message holds it
    /// to one message.
    fn poll_send(&self, cx: &mut Context<'_>, out: &mut Outgoing<'_>) -> Poll<Result<(), Gone>> {
        let mut ws = lock(&self.ws);
        let Some(ws) = ws.as_mut() else {
            return Poll::Ready(Err(Gone::Dropped));
        };
        let polled = poll_sink(Pin::new(ws), cx, out, &self.unflushed);
        if polled.is_pending() {
            // Registered while `ws` is held: `drop_io` takes the stream before it wakes the
            // senders, so it either ran before this poll (seen above) or will wake this one.
            out.register(cx.waker());
        }
        polled
    }

    /// Sends `queue` (no lock taken: the caller holds `write` for data messages).
    pub(super) async fn send(&self, queue: Queue) -> Result<(), Gone> {
        let mut out = Outgoing::new(self, queue);
        poll_fn(|cx| self.poll_send(cx, &mut out)).await
    }

    /// Writes whole data messages in order under `write`.
    pub(super) async fn write_messages(&self, queue: Queue) -> Result<()> {
        let _writing = self.write.lock().await;
        self.check_writable()?;
        let sent = self.send(queue).await;
        sent.map_err(|g| self.send_failed(g))
    }

    /// The error a sender sees when the stream failed or was dropped under it.
    pub(super) fn send_failed(&self, g: Gone) -> Error {
        self.closed_error().unwrap_or_else(|| match g {
            Gone::Dropped => already_closed(),
            Gone::Failed(e) => self.lost(map_error(e).0),
        })
    }

    /// Wakes every parked sender (the stream they registered with was dropped).
    pub(super) fn wake_senders(&self) {
        let senders = std::mem::take(&mut lock(&self.senders).slots);
        for (_, w) in senders {
            w.wake();
        }
    }

    /// Sends a ping and waits until a reader sees its pong.
    pub(super) async fn ping(&self) -> Result<()> {
        let send = |id: [u8; 8]| async move {
            let ping = TgMessage::Ping(bytes::Bytes::copy_from_slice(&id));
            self.send(ping.into())
                .await
                .map_err(|g| self.send_failed(g))
        };
        self.pings.ping(self, send).await
    }

    /// The `Writer`'s guard: the message lock, once the connection is writable.
    pub(super) async fn writer(&self) -> Result<WriteGuard<'_>> {
        let lock = self.write.lock().await;
        self.check_writable()?;
        Ok(WriteGuard {
            shared: self,
            _lock: lock,
            pending: Outgoing::new(self, Queue::none()),
            started: false,
        })
    }
}

/// Flushes what a cancelled send left (if a send stopped since the last whole flush), hands
/// `out`'s messages to the sink and flushes them; `unflushed` is `Shared::unflushed`.
fn poll_sink(
    mut ws: Pin<&mut Box<dyn super::Ws>>,
    cx: &mut Context<'_>,
    out: &mut Outgoing<'_>,
    unflushed: &AtomicBool,
) -> Poll<Result<(), Gone>> {
    let polled = (|| {
        if !out.drained && !out.queue.is_empty() && unflushed.load(Ordering::Relaxed) {
            ready!(ws.as_mut().poll_flush(cx)).map_err(Gone::Failed)?;
        }
        out.drained = true;
        while !out.queue.is_empty() {
            ready!(ws.as_mut().poll_ready(cx)).map_err(Gone::Failed)?;
            if let Some(msg) = out.queue.pop() {
                ws.as_mut().start_send(msg).map_err(Gone::Failed)?;
            }
        }
        ws.as_mut().poll_flush(cx).map_err(Gone::Failed)
    })();
    unflushed.store(!matches!(polled, Poll::Ready(Ok(()))), Ordering::Relaxed);
    polled
}

/// The message-level write lock held by a `Writer`. The engine does not stream, so the
/// shared `Writer` calls `poll_send_frame` once, with the whole message.
pub(crate) struct WriteGuard<'a> {
    shared: &'a Shared,
    _lock: AsyncMutexGuard<'a, ()>,
    /// The message handed to the sink (kept across polls until flushed).
    pending: Outgoing<'a>,
    /// Whether the message was taken into `pending`.
    started: bool,
}

impl std::fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl FrameSink for WriteGuard<'_> {
    fn poll_send_frame(
        &mut self,
        cx: &mut Context<'_>,
        ty: MessageType,
        payload: &[u8],
        first: bool,
        fin: bool,
    ) -> Poll<Result<()>> {
        if !self.started {
            if !(first && fin) {
                // `writer_streams` is false: the shared Writer sends whole messages only.
                return Poll::Ready(Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "the tungstenite engine sends whole messages only",
                )));
            }
            self.shared.check_writable()?;
            let msg = match ty {
                MessageType::Binary => TgMessage::Binary(bytes::Bytes::copy_from_slice(payload)),
                MessageType::Text => match std::str::from_utf8(payload) {
                    Ok(s) => TgMessage::Text(s.into()),
                    Err(_) => {
                        return Poll::Ready(Err(Error::new(
                            ErrorKind::InvalidArgument,
                            "text message writer was given bytes that are not UTF-8",
                        )))
                    }
                },
            };
            self.pending.queue = msg.into();
            self.started = true;
        }
        let sent = ready!(self.shared.poll_send(cx, &mut self.pending));
        Poll::Ready(sent.map_err(|g| self.shared.send_failed(g)))
    }

    fn abort_message(&mut self) {
        // Never reached while whole messages are sent in one call; fail safe if it is.
        self.shared.abort("a streamed message was abandoned");
    }
}
