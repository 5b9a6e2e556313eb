//! Sending: whole messages handed to tungstenite's `Sink` within one hold of `ws` per poll,
//! then flushed; each pending send's waker in its own slot (so dropping the stream wakes
//! every parked sender); pings; the `Writer`'s guard.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use futures_util::lock::MutexGuard as AsyncMutexGuard;
use futures_util::Sink;
use tokio_tungstenite::tungstenite::error::Error as TgError;
use tokio_tungstenite::tungstenite::Message as TgMessage;

use super::{lock, read::map_error, to_tungstenite, Shared};
use crate::backend::FrameSink;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageType};
use crate::native::closing::{already_closed, Closer};

/// The wakers of the sends in progress, each in its own slot.
#[derive(Debug, Default)]
pub(super) struct Senders {
    next: u64,
    slots: Vec<(u64, Waker)>,
}

/// Messages on their way into tungstenite's `Sink`: each is handed over once the sink is
/// ready, then the sink is flushed. Holds a slot in `Shared::senders` while it waits.
struct Outgoing<'a> {
    shared: &'a Shared,
    queue: VecDeque<TgMessage>,
    slot: Option<u64>,
    /// Whether what an earlier, cancelled send left in tungstenite's buffer was flushed.
    drained: bool,
}

impl<'a> Outgoing<'a> {
    fn new(shared: &'a Shared, queue: impl IntoIterator<Item = TgMessage>) -> Self {
        Outgoing {
            shared,
            queue: queue.into_iter().collect(),
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
        out.register(cx.waker());
        let mut ws = lock(&self.ws);
        let Some(ws) = ws.as_mut() else {
            return Poll::Ready(Err(Gone::Dropped));
        };
        let mut ws = Pin::new(ws);
        if !out.drained && !out.queue.is_empty() {
            ready!(ws.as_mut().poll_flush(cx)).map_err(Gone::Failed)?;
            out.drained = true;
        }
        while !out.queue.is_empty() {
            ready!(ws.as_mut().poll_ready(cx)).map_err(Gone::Failed)?;
            if let Some(msg) = out.queue.pop_front() {
                ws.as_mut().start_send(msg).map_err(Gone::Failed)?;
            }
        }
        ws.as_mut().poll_flush(cx).map_err(Gone::Failed)
    }

    /// Sends `msgs` (no lock taken: the caller holds `write` for data messages).
    pub(super) async fn send(&self, msgs: impl IntoIterator<Item = TgMessage>) -> Result<(), Gone> {
        let mut out = Outgoing::new(self, msgs);
        poll_fn(|cx| self.poll_send(cx, &mut out)).await
    }

    /// Writes whole data messages in order under `write`.
    pub(super) async fn write_messages(&self, msgs: Vec<Message>) -> Result<()> {
        let _writing = self.write.lock().await;
        self.check_writable()?;
        let sent = self.send(msgs.into_iter().map(to_tungstenite)).await;
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
            self.send([ping]).await.map_err(|g| self.send_failed(g))
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
            pending: Outgoing::new(self, []),
            started: false,
        })
    }
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
            self.pending.queue.push_back(msg);
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
