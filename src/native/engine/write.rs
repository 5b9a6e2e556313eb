//! Writing: the outgoing queue (group commit: whoever waits for its bytes to be written writes
//! everything queued, so concurrent writers share system calls), its high-water mark, deferred
//! writes, and the streaming writer's frames.
//!
//! **Deferred writes** batch a read/write loop's replies the way a `Sink` that is flushed once
//! per burst does, without the caller doing anything: when the task that wrote is the task
//! whose last read left the peer's next bytes already received (the reader is *ahead*), a
//! whole message (`write`, `write_batch`) is queued and the write returns without a system
//! call, up to [`DEFER_MAX`] queued bytes. What a deferred write queued goes out
//! - before the reader waits for the socket (`read.rs` calls [`Shared::poll_deferred`]),
//! - when the writing task yields to the runtime first (it waits for something else): a
//!   short task spawned at the burst's first deferral, polled after it, writes them,
//! - with the next write that is not deferred (group commit writes everything queued),
//! - with a close, a ping, or a pong (each waits for its frame to be written),
//! - at a drop or `close_now`, as far as the socket takes it without waiting.
//!
//! A ping-pong peer never has a next message buffered, so nothing is deferred there and no
//! latency is added; a peer that pipelines gets its echoes in one write per burst.
//!
//! Locks: `msg_lock` (async) is held while a message's frames are queued; `out` (std) is the
//! queue, and `io` is taken under it within one poll. the close state may be taken under `out`
//! (to word an error); nothing is taken under `io`.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Wake, Waker};

use bytes::Bytes;
use futures_util::lock::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard};
use tokio::io::AsyncWrite;

use super::deflate::Deflater;
use super::{lock, lock_async, Shared};
use crate::backend::FrameSink;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageType};
use crate::native::closing::Closer;
use crate::native::frame::{self, OpCode, Role};
use crate::native::handshake::mask_key;
use crate::native::io::Transport;

/// Payloads at least this long are queued as the caller's `Bytes` rather than copied (a
/// vectored write of header and payload), so a large message is neither held twice nor
/// copied once more. Shorter ones are copied next to their header, one contiguous write.
/// At 256 KiB (before), a 64 KiB echo server spent 5.6% of its CPU in that copy (`perf`,
/// 64 connections pipelining 64 KiB); at 16 KiB, 0.7%.
const SHARE_MIN: usize = 16 << 10;
/// The most slices one vectored write passes to the socket.
const MAX_SLICES: usize = 32;
/// The largest frame (header included) an uncontended `write` builds in [`SCRATCH`] and
/// hands to the socket directly (`write_small`).
const SMALL_FRAME: usize = 4 << 10;

thread_local! {
    /// Where `write_small` builds a frame: one buffer per thread, reused by every connection
    /// (at most [`SMALL_FRAME`] bytes), so an uncontended `write` allocates nothing.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// Bytes a deferred write may leave queued (its own included): a write that would queue more
/// than this unwritten writes at once. About the socket buffer of a loopback connection's
/// first round trips; larger batches measured no faster.
pub(crate) const DEFER_MAX: u64 = 64 << 10;

/// The write side of a connection.
pub(super) struct WriteQueue {
    /// Lock 2: whole messages in order, and the compressor their bytes go through (when
    /// permessage-deflate was agreed and this side may compress).
    msg_lock: AsyncMutex<Option<Box<Deflater>>>,
    /// Lock 3: the bytes to write.
    out: Mutex<Output>,
    writers: Arc<WakeAll>,
    /// A waker that wakes every writer; given to the socket.
    writers_waker: Waker,
    /// Mirrors `Output::reader_ahead.is_some()` (both set by `set_reader_ahead`), so that a
    /// read that leaves nothing buffered and a write while the reader is not ahead take no
    /// lock to find that out.
    ahead: AtomicBool,
    /// A task that writes deferred bytes if the writing task yields first is spawned and has
    /// not looked yet (see `defer`).
    flusher: AtomicBool,
}

impl WriteQueue {
    /// The write side of a new connection, with its compressor if it compresses.
    pub(super) fn new(deflater: Option<Box<Deflater>>) -> Self {
        let writers = Arc::new(WakeAll::default());
        WriteQueue {
            msg_lock: AsyncMutex::new(deflater),
            out: Mutex::new(Output::default()),
            writers_waker: Waker::from(writers.clone()),
            writers,
            ahead: AtomicBool::new(false),
            flusher: AtomicBool::new(false),
        }
    }
}

impl WriteQueue {
    /// Wakes every task waiting for the socket.
    pub(super) fn wake_all(&self) {
        self.writers_waker.wake_by_ref();
    }

    /// Records which task's reader is ahead, if any: the only place `Output::reader_ahead`
    /// and its mirror `ahead` change.
    fn set_reader_ahead(&self, out: &mut Output, reader: Option<tokio::task::Id>) {
        out.reader_ahead = reader;
        self.ahead.store(reader.is_some(), Ordering::Relaxed);
    }
}

/// The outgoing queue: `segs`, then `buf`, in order.
#[derive(Debug, Default)]
struct Output {
    /// Queued bytes in front of `buf`: runs of headers and small payloads, and large payloads
    /// shared with the caller. Never holds an empty piece.
    segs: VecDeque<Bytes>,
    /// The newest run of headers and copied small payloads.
    buf: Vec<u8>,
    /// How much of the first piece (`segs`' front, or `buf` when `segs` is empty) is written.
    pos: usize,
    /// Bytes ever queued, and ever written: a writer waits for `written` to reach the end of
    /// its frame.
    queued: u64,
    written: u64,
    /// Written but not flushed (TLS buffers).
    unflushed: bool,
    /// The task that read last, while the bytes it received past its message are not parsed
    /// yet: writes from that task may be deferred.
    reader_ahead: Option<tokio::task::Id>,
    /// The queue position up to which deferred writes left bytes; `None` once written.
    deferred_to: Option<u64>,
    /// The stream failed; every later write fails with this.
    error: Option<Error>,
}

impl Output {
    /// Whether every queued byte is written.
    fn is_drained(&self) -> bool {
        self.segs.is_empty() && self.pos == self.buf.len()
    }

    /// Appends `payload` as its own piece, after everything queued so far.
    fn push_shared(&mut self, payload: Bytes) {
        if !self.buf.is_empty() {
            // `pos`, if it points into `buf`, now points into the same bytes as a piece.
            self.segs
                .push_back(Bytes::from(std::mem::take(&mut self.buf)));
        }
        self.segs.push_back(payload);
    }

    /// Records that the socket took `n` more bytes.
    fn advance(&mut self, mut n: usize) {
        self.written += n as u64;
        while n > 0 {
            let Some(front) = self.segs.front() else {
                self.pos += n;
                return;
            };
            let left = front.len() - self.pos;
            if n < left {
                self.pos += n;
                return;
            }
            self.segs.pop_front();
            self.pos = 0;
            n -= left;
        }
    }

    /// Forgets everything queued (written, or the stream failed) and gives the memory back.
    fn clear(&mut self) {
        self.segs = VecDeque::new();
        self.buf = Vec::new();
        self.pos = 0;
    }

    /// Forgets the deferred writes' position once their bytes are written and flushed.
    fn forget_deferred(&mut self) {
        if self.deferred_to.is_some_and(|t| self.written >= t) && !self.unflushed {
            self.deferred_to = None;
        }
    }
}

/// Wakes every task waiting for the socket to take bytes (the socket keeps one waker only).
#[derive(Debug, Default)]
struct WakeAll(Mutex<Vec<Waker>>);

impl WakeAll {
    fn register(&self, waker: &Waker) {
        let mut list = lock(&self.0);
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }
}

impl Wake for WakeAll {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let list = std::mem::take(&mut *lock(&self.0));
        for w in list {
            w.wake();
        }
    }
}

impl Shared {
    /// Queues `msgs` in order under one hold of the message lock, then waits until they are
    /// written.
    pub(super) async fn write_messages(
        self: &Arc<Self>,
        msgs: impl IntoIterator<Item = Message>,
    ) -> Result<()> {
        let target = {
            let mut deflater = lock_async(&self.write.msg_lock).await;
            self.check_writable()?;
            poll_fn(|cx| self.poll_room(cx)).await?;
            let msgs = msgs.into_iter();
            // One message (`write`), when no write will be deferred: it may go to the socket
            // at once (`write_small`). A batch is queued whole, for one write.
            let direct =
                msgs.size_hint() == (1, Some(1)) && !self.write.ahead.load(Ordering::Relaxed);
            let mut target = 0;
            for msg in msgs {
                target = self.enqueue_message(deflater.as_deref_mut(), msg, direct)?;
            }
            target
            // The messages are queued whole: the next writer may queue behind them while this
            // one waits for the socket.
        };
        if self.defer(target) {
            return Ok(());
        }
        poll_fn(|cx| self.poll_written(cx, target)).await
    }

    /// Whether a write whose bytes end at `target` may return with them queued (see the
    /// module docs): the calling task is the reader's and the reader is ahead, the stream has
    /// not failed, and at most [`DEFER_MAX`] bytes would wait.
    fn defer(self: &Arc<Self>, target: u64) -> bool {
        if !self.write.ahead.load(Ordering::Relaxed) {
            return false;
        }
        let Some(me) = tokio::task::try_id() else {
            return false;
        };
        let mut out = lock(&self.write.out);
        if out.reader_ahead != Some(me)
            || out.error.is_some()
            || target.saturating_sub(out.written) > DEFER_MAX
        {
            return false;
        }
        if !self.write.flusher.load(Ordering::Acquire) {
            // The bound in time: if the writing task yields to the runtime before its reader
            // needs the socket (it went on to wait for something else), this task, polled
            // after it, writes what is deferred. In a read/write loop the reader got there
            // first and this finds nothing to do. Without a runtime to spawn on, no deferral.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return false;
            };
            self.write.flusher.store(true, Ordering::Release);
            let shared = Arc::clone(self);
            drop(runtime.spawn(async move {
                tokio::task::yield_now().await;
                shared.write.flusher.store(false, Ordering::Release);
                let target = lock(&shared.write.out).deferred_to;
                if let Some(target) = target {
                    // A failure is recorded for the writers; this task has no one to tell.
                    let _ = poll_fn(|cx| shared.poll_written(cx, target)).await;
                }
            }));
        }
        out.deferred_to = Some(target);
        true
    }

    /// The reader's part in deferred writes, after a read returned a message: `ahead` says
    /// whether bytes it received past the message wait to be parsed.
    pub(super) fn reader_returned(&self, ahead: bool) {
        if !ahead && !self.write.ahead.load(Ordering::Relaxed) {
            return;
        }
        let reader = if ahead { tokio::task::try_id() } else { None };
        self.write
            .set_reader_ahead(&mut lock(&self.write.out), reader);
    }

    /// Before the reader waits for the socket: it is no longer ahead, and what deferred writes
    /// queued is written. Never keeps the reader waiting: `Pending` registers the reader to be
    /// woken when the socket takes more, and the reader goes on to poll the socket for input.
    /// A failed write is recorded for the writers (every later write fails with it); the
    /// reader reads on.
    pub(super) fn poll_deferred(&self, cx: &mut Context<'_>) {
        let target = {
            let mut out = lock(&self.write.out);
            if self.write.ahead.load(Ordering::Relaxed) {
                self.write.set_reader_ahead(&mut out, None);
            }
            match out.deferred_to {
                Some(t) => t,
                None => return,
            }
        };
        // Written, failed (recorded for the writers) or waiting for the socket: the reader
        // reads on either way.
        let _ = self.poll_written(cx, target);
    }

    /// At a drop or `close_now`: writes what deferred writes queued, as far as the socket takes
    /// it without waiting (those writes returned `Ok`; the socket is dropped next).
    pub(super) fn write_deferred_now(&self) {
        let Some(target) = lock(&self.write.out).deferred_to else {
            return;
        };
        let mut cx = Context::from_waker(Waker::noop());
        let _ = self.poll_written(&mut cx, target);
    }

    /// Takes the message lock for a streamed message.
    pub(super) async fn writer(&self) -> Result<WriteGuard<'_>> {
        let guard = lock_async(&self.write.msg_lock).await;
        self.check_writable()?;
        Ok(WriteGuard {
            shared: self,
            guard,
            target: None,
            compressing: false,
        })
    }

    /// Queues one whole message as one frame, compressed if a compressor is given and the
    /// message reaches its threshold; returns the byte count the queue must reach for it to be
    /// written. A large payload is shared, not copied (a client masks it in place when the
    /// caller's `Bytes` is not shared; otherwise it is copied and masked).
    fn enqueue_message(
        &self,
        deflater: Option<&mut Deflater>,
        msg: Message,
        direct: bool,
    ) -> Result<u64> {
        let opcode = match &msg {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        };
        if let Some(d) = deflater.filter(|d| d.wants(msg.len())) {
            let data = match &msg {
                Message::Text(t) => t.as_bytes(),
                Message::Binary(b) => &b[..],
            };
            let mut packed = Vec::new();
            d.compress(data, true, &mut packed);
            // Without context takeover a message that did not shrink may go as it is.
            if !(d.may_skip() && packed.len() >= data.len()) {
                return self.enqueue_owned(opcode, true, Bytes::from(packed));
            }
        }
        let payload = match msg {
            Message::Text(t) if t.len() >= SHARE_MIN => Bytes::from(t.into_bytes()),
            Message::Binary(b) if b.len() >= SHARE_MIN => b,
            Message::Text(t) if direct => return self.write_small(opcode, t.as_bytes()),
            Message::Binary(b) if direct => return self.write_small(opcode, &b),
            Message::Text(t) => return self.enqueue_frame(true, false, opcode, t.as_bytes()),
            Message::Binary(b) => return self.enqueue_frame(true, false, opcode, &b),
        };
        self.enqueue_owned(opcode, false, payload)
    }

    /// Queues one whole message's payload as one frame: copied when short, shared when at
    /// least `SHARE_MIN` long (masked in place by a client when nobody else holds it).
    fn enqueue_owned(&self, opcode: OpCode, rsv1: bool, payload: Bytes) -> Result<u64> {
        if payload.len() < SHARE_MIN {
            return self.enqueue_frame(true, rsv1, opcode, &payload);
        }
        let (mask, payload) = match self.role {
            Role::Server => (None, payload),
            Role::Client => match payload.try_into_mut() {
                Ok(mut owned) => {
                    let key = mask_key()?;
                    frame::apply_mask(&mut owned, key);
                    (Some(key), owned.freeze())
                }
                Err(shared) => return self.enqueue_frame(true, rsv1, opcode, &shared),
            },
        };
        let mut out = lock(&self.write.out);
        if let Some(e) = &out.error {
            return Err(self.write_failed(e.clone()));
        }
        let start = out.buf.len();
        frame::write_header_with(&mut out.buf, true, rsv1, opcode, mask, payload.len());
        out.queued += (out.buf.len() - start + payload.len()) as u64;
        out.push_shared(payload);
        Ok(out.queued)
    }

    /// A short message's frame when nothing is queued: built in [`SCRATCH`] and handed to the
    /// socket at once, so an uncontended `write` allocates nothing and takes no waker; what
    /// the socket does not take is queued as usual. Otherwise (something queued, or a longer
    /// payload) it is queued. Returns the byte count the queue must reach for it to be written.
    fn write_small(&self, opcode: OpCode, payload: &[u8]) -> Result<u64> {
        if payload.len() > SMALL_FRAME - frame::MAX_HEADER {
            return self.enqueue_frame(true, false, opcode, payload);
        }
        SCRATCH.with(|scratch| {
            // Taken already only if the stream's own write came back here (a connection over
            // another connection's `ByteStream` on this thread): then queue.
            let Ok(mut wire) = scratch.try_borrow_mut() else {
                return self.enqueue_frame(true, false, opcode, payload);
            };
            let mut out = lock(&self.write.out);
            if let Some(e) = &out.error {
                return Err(self.write_failed(e.clone()));
            }
            if !(out.segs.is_empty() && out.buf.is_empty()) {
                drop(out);
                return self.enqueue_frame(true, false, opcode, payload);
            }
            let mask = match self.role {
                Role::Client => Some(mask_key()?),
                Role::Server => None,
            };
            wire.clear();
            frame::write_header_with(&mut wire, true, false, opcode, mask, payload.len());
            let body = wire.len();
            wire.extend_from_slice(payload);
            if let Some(key) = mask {
                frame::apply_mask(&mut wire[body..], key);
            }
            self.write_now(&mut out, &wire)
        })
    }

    /// Hands `wire`, one whole frame, to the socket with nothing queued before it; queues what
    /// the socket does not take. Returns the queue position of the frame's end.
    fn write_now(&self, out: &mut Output, wire: &[u8]) -> Result<u64> {
        let len = wire.len();
        let mut wcx = Context::from_waker(&self.write.writers_waker);
        let mut io = lock(&self.io);
        let polled = Pin::new(&mut *io).poll_write(&mut wcx, wire);
        let taken = self.took(out, polled)?.map_or(0, |n| n.min(len));
        out.queued += len as u64;
        out.written += taken as u64;
        if taken < len {
            // The rest waits in the queue like any queued bytes (`pos` stays 0: `buf` holds
            // only what was not written).
            out.buf.extend_from_slice(&wire[taken..]);
        }
        if taken > 0 {
            out.unflushed = true;
        }
        if taken == len {
            // When the flush is `Pending`, `poll_written` flushes the rest.
            if let Poll::Ready(Err(e)) = self.poll_flush(out, &mut io, &mut wcx) {
                return Err(e);
            }
        }
        Ok(out.queued)
    }

    /// Queues one frame, copying its payload; returns the byte count the queue must reach for
    /// it to be written.
    pub(super) fn enqueue(&self, fin: bool, opcode: OpCode, payload: &[u8]) -> Result<u64> {
        self.enqueue_frame(fin, false, opcode, payload)
    }

    /// [`enqueue`](Self::enqueue) with RSV1 (a compressed message's first frame) set or not.
    fn enqueue_frame(&self, fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) -> Result<u64> {
        let mut out = lock(&self.write.out);
        if let Some(e) = &out.error {
            return Err(self.write_failed(e.clone()));
        }
        let mask = match self.role {
            Role::Client => Some(mask_key()?),
            Role::Server => None,
        };
        let start = out.buf.len();
        frame::write_header_with(&mut out.buf, fin, rsv1, opcode, mask, payload.len());
        let body = out.buf.len();
        out.buf.extend_from_slice(payload);
        if let Some(key) = mask {
            frame::apply_mask(&mut out.buf[body..], key);
        }
        out.queued += (out.buf.len() - start) as u64;
        Ok(out.queued)
    }

    /// Writes queued bytes until at most the write high-water mark of them wait: a write
    /// calls this before it queues, so writes cancelled after queuing (whose bytes stay
    /// queued, to keep the stream whole) cannot grow the queue past the mark.
    pub(super) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let target = {
            let out = lock(&self.write.out);
            let mark = self.settings.write_high_water_mark as u64;
            let waiting = out.queued - out.written;
            if waiting <= mark {
                return Poll::Ready(Ok(()));
            }
            out.queued - mark
        };
        self.poll_written(cx, target)
    }

    /// Writes queued bytes until everything up to `target` is written and flushed.
    pub(super) fn poll_written(&self, cx: &mut Context<'_>, target: u64) -> Poll<Result<()>> {
        let mut out = lock(&self.write.out);
        if let Some(e) = &out.error {
            return Poll::Ready(Err(self.write_failed(e.clone())));
        }
        if out.written >= target && !out.unflushed {
            out.forget_deferred();
            return Poll::Ready(Ok(()));
        }
        // Whoever writes also writes what deferred writes queued.
        // Registered first, so a wake-up between the socket's Pending and now is not lost.
        self.write.writers.register(cx.waker());
        let mut wcx = Context::from_waker(&self.write.writers_waker);
        let mut io = lock(&self.io);
        while !out.is_drained() {
            let polled = {
                let o = &*out;
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let pieces = o.segs.iter().map(|b| &b[..]).chain([&o.buf[..]]);
                let mut n = 0;
                for (i, piece) in pieces.enumerate().take(MAX_SLICES) {
                    let piece = if i == 0 { &piece[o.pos..] } else { piece };
                    if !piece.is_empty() {
                        slices[n] = IoSlice::new(piece);
                        n += 1;
                    }
                }
                if n == 1 {
                    Pin::new(&mut *io).poll_write(&mut wcx, &slices[0])
                } else {
                    Pin::new(&mut *io).poll_write_vectored(&mut wcx, &slices[..n])
                }
            };
            match self.took(&mut out, polled) {
                Ok(Some(n)) => {
                    out.advance(n);
                    out.unflushed = true;
                }
                Err(e) => return Poll::Ready(Err(e)),
                // Ours are out; later bytes belong to writers that wait themselves.
                Ok(None) if out.written >= target => break,
                Ok(None) => return Poll::Pending,
            }
        }
        if out.is_drained() {
            // Everything is written: give the memory back.
            out.clear();
        }
        if out.unflushed {
            ready!(self.poll_flush(&mut out, &mut io, &mut wcx))?;
        }
        out.forget_deferred();
        Poll::Ready(Ok(()))
    }

    /// One write to the socket as the queue sees it: the bytes taken (never 0), or `None` when
    /// the socket would block. A failed write, or one that took nothing, breaks the stream.
    fn took(
        &self,
        out: &mut Output,
        polled: Poll<std::io::Result<usize>>,
    ) -> Result<Option<usize>> {
        match polled {
            Poll::Ready(Ok(0)) => {
                let e = Error::new(ErrorKind::ConnectionLost, "the connection took no bytes");
                Err(self.broken(out, e))
            }
            Poll::Ready(Ok(n)) => Ok(Some(n)),
            Poll::Ready(Err(e)) => {
                let e = Error::with_source(ErrorKind::ConnectionLost, "write failed", e);
                Err(self.broken(out, e))
            }
            Poll::Pending => Ok(None),
        }
    }

    /// Flushes what was written (a TLS stream's buffer); a failure breaks the stream.
    fn poll_flush(
        &self,
        out: &mut Output,
        io: &mut Transport,
        cx: &mut Context<'_>,
    ) -> Poll<Result<()>> {
        match ready!(Pin::new(io).poll_flush(cx)) {
            Ok(()) => {
                out.unflushed = false;
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                let e = Error::with_source(ErrorKind::ConnectionLost, "flush failed", e);
                Poll::Ready(Err(self.broken(out, e)))
            }
        }
    }

    /// Records that the stream failed for writing; wakes every writer.
    fn broken(&self, out: &mut Output, e: Error) -> Error {
        out.clear();
        out.deferred_to = None;
        out.error = Some(e.clone());
        self.write.wake_all();
        self.write_failed(e)
    }
}

/// The message-level write lock held by a `Writer`.
pub(crate) struct WriteGuard<'a> {
    shared: &'a Shared,
    /// The message lock, and the compressor under it.
    guard: AsyncMutexGuard<'a, Option<Box<Deflater>>>,
    /// The queue position the frame in flight must reach.
    target: Option<u64>,
    /// The message being written is compressed (decided at its first frame).
    compressing: bool,
}

impl std::fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("in_flight", &self.target.is_some())
            .field("compressing", &self.compressing)
            .finish_non_exhaustive()
    }
}

impl FrameSink for WriteGuard<'_> {
    /// Sends one frame of the current message and waits until it is written (so a long
    /// message never holds more than one frame in memory). With a compressor, a message is
    /// compressed if it is longer than one frame or reaches the threshold; each frame's
    /// bytes are compressed and flushed as they are sent.
    fn poll_send_frame(
        &mut self,
        cx: &mut Context<'_>,
        ty: MessageType,
        payload: &[u8],
        first: bool,
        fin: bool,
    ) -> Poll<Result<()>> {
        let shared = self.shared;
        let target = match self.target {
            Some(t) => t,
            None => {
                if let Err(e) = shared.check_writable() {
                    return Poll::Ready(Err(e));
                }
                if let Err(e) = ready!(shared.poll_room(cx)) {
                    return Poll::Ready(Err(e));
                }
                let opcode = match (first, ty) {
                    (false, _) => OpCode::Continue,
                    (true, MessageType::Text) => OpCode::Text,
                    (true, MessageType::Binary) => OpCode::Binary,
                };
                if first {
                    self.compressing = self
                        .guard
                        .as_ref()
                        .is_some_and(|d| !fin || d.wants(payload.len()));
                }
                let queued = match self.guard.as_deref_mut().filter(|_| self.compressing) {
                    Some(d) => {
                        let mut packed = Vec::new();
                        d.compress(payload, fin, &mut packed);
                        shared.enqueue_frame(fin, first, opcode, &packed)
                    }
                    None => shared.enqueue(fin, opcode, payload),
                };
                match queued {
                    Ok(t) => *self.target.insert(t),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        };
        let res = ready!(shared.poll_written(cx, target));
        self.target = None;
        Poll::Ready(res)
    }

    fn abort_message(&mut self) {
        self.shared
            .abort("a message writer was dropped or failed in the middle of a message");
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll};

    use bytes::Bytes;

    use tokio::io::AsyncReadExt;

    use super::super::testing::{bounded, frame, next_frame, pair, pair_with, send, settings};
    use super::super::{lock, Conn, Settings};
    use super::DEFER_MAX;
    use crate::backend::{Engine, FrameSink};
    use crate::message::{Message, MessageType};
    use crate::native::frame::{OpCode, Role};

    /// The peer's text frames for `msgs`, as one write (a client pipelining them).
    async fn burst(peer: &mut tokio::io::DuplexStream, msgs: &[&str]) {
        let wire: Vec<u8> = msgs
            .iter()
            .flat_map(|m| frame(Role::Server, true, OpCode::Text, m.as_bytes()))
            .collect();
        send(peer, &wire).await;
    }

    /// Bytes queued and not written yet.
    fn unwritten(conn: &Conn) -> u64 {
        let out = lock(&conn.shared.write.out);
        out.queued - out.written
    }

    #[tokio::test]
    async fn replies_to_pipelined_messages_go_out_together_after_the_burst() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            burst(&mut peer, &["a", "b", "c"]).await;
            // Deferral needs a task: the reader's and the writer's must be the same one.
            let echo = tokio::spawn(async move {
                let mut left = Vec::new();
                for _ in 0..3 {
                    let msg = conn.read().await.expect("read");
                    conn.write(msg).await.expect("write");
                    left.push(unwritten(&conn));
                }
                (conn, left)
            });
            let (conn, left) = echo.await.expect("echo task");
            // "a" and "b" were answered while the next message was already here: queued; the
            // answer to "c" (nothing more received) wrote all three.
            assert_eq!(left, [3, 6, 0]);
            for m in ["a", "b", "c"] {
                let (_, op, body) = next_frame(&mut peer).await;
                assert_eq!((op, &body[..]), (1, m.as_bytes()));
            }
            drop(conn);
        })
        .await;
    }

    #[tokio::test]
    async fn a_deferred_reply_goes_out_before_the_reader_waits_for_the_peer() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            burst(&mut peer, &["a", "b"]).await;
            let echo = tokio::spawn(async move {
                let a = conn.read().await.expect("read a");
                conn.write(a).await.expect("write a");
                assert_eq!(unwritten(&conn), 3, "the reply to a was written at once");
                assert_eq!(conn.read().await.expect("read b"), Message::text("b"));
                // Nothing more is here: this read waits for the peer, and writes "a" first.
                let c = conn.read().await.expect("read c");
                (conn, c)
            });
            let (_, op, body) = next_frame(&mut peer).await;
            assert_eq!((op, &body[..]), (1, &b"a"[..]));
            burst(&mut peer, &["c"]).await;
            let (_conn, c) = echo.await.expect("echo task");
            assert_eq!(c, Message::text("c"));
        })
        .await;
    }

    #[tokio::test]
    async fn a_deferred_reply_goes_out_when_the_writing_task_waits_for_something_else() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            burst(&mut peer, &["a", "b"]).await;
            let (go_on, wait) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let a = conn.read().await.expect("read a");
                conn.write(a).await.expect("write a");
                assert_eq!(unwritten(&conn), 3, "the reply to a was written at once");
                // Parked on something else than the connection, with "b" unread: the reply
                // must not wait for the next read.
                wait.await.expect("go on");
                conn
            });
            let (_, op, body) = next_frame(&mut peer).await;
            assert_eq!((op, &body[..]), (1, &b"a"[..]));
            go_on.send(()).expect("task alive");
            let conn = task.await.expect("task");
            assert_eq!(unwritten(&conn), 0);
        })
        .await;
    }

    #[tokio::test]
    async fn a_write_from_another_task_than_the_readers_is_written_at_once() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            burst(&mut peer, &["a", "b"]).await;
            let reader = tokio::spawn(async move {
                conn.read().await.expect("read a");
                conn
            });
            let conn = reader.await.expect("reader task");
            let writer = tokio::spawn(async move {
                conn.write(Message::text("x")).await.expect("write");
                assert_eq!(unwritten(&conn), 0);
                conn
            });
            let conn = writer.await.expect("writer task");
            // And outside any task (the test's own future is not one).
            conn.write(Message::text("y")).await.expect("write");
            assert_eq!(unwritten(&conn), 0);
            for m in ["x", "y"] {
                let (_, _, body) = next_frame(&mut peer).await;
                assert_eq!(body, m.as_bytes());
            }
        })
        .await;
    }

    #[tokio::test]
    async fn deferred_replies_are_sent_when_the_conn_is_dropped_or_closed_now() {
        bounded(async {
            for close_now in [false, true] {
                let (conn, mut peer) = pair(Role::Server, 1 << 20);
                burst(&mut peer, &["a", "b"]).await;
                tokio::spawn(async move {
                    let a = conn.read().await.expect("read a");
                    conn.write(a).await.expect("write a");
                    assert_eq!(unwritten(&conn), 3);
                    if close_now {
                        conn.close_now();
                    }
                    drop(conn);
                })
                .await
                .expect("task");
                let (_, op, body) = next_frame(&mut peer).await;
                assert_eq!((op, &body[..]), (1, &b"a"[..]), "close_now: {close_now}");
                let mut rest = Vec::new();
                peer.read_to_end(&mut rest).await.expect("eof");
                assert!(rest.is_empty(), "bytes after the reply: {rest:?}");
            }
        })
        .await;
    }

    #[tokio::test]
    async fn deferred_writes_hold_at_most_64_kib() {
        bounded(async {
            let (conn, mut peer) = pair_with(Role::Server, settings(1 << 20), 1 << 20);
            burst(&mut peer, &["a", "b"]).await;
            let half = usize::try_from(DEFER_MAX / 2).expect("small");
            let task = tokio::spawn(async move {
                conn.read().await.expect("read a");
                let mut left = Vec::new();
                for _ in 0..3 {
                    conn.write(Message::Binary(vec![9u8; half - 100].into()))
                        .await
                        .expect("write");
                    left.push(unwritten(&conn));
                }
                (conn, left)
            });
            let (_conn, left) = task.await.expect("task");
            // Two halves fit under the bound; the third would not, so it wrote all three.
            assert!(
                left[0] > 0 && left[1] > left[0] && left[1] <= DEFER_MAX,
                "{left:?}"
            );
            assert_eq!(left[2], 0);
            for _ in 0..3 {
                let (_, op, body) = next_frame(&mut peer).await;
                assert_eq!((op, body.len()), (2, half - 100));
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_batch_arrives_in_order_and_the_queue_is_freed_once_written() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            let msgs = vec![
                Message::text("one"),
                Message::Binary(Bytes::from(vec![7u8; 300 << 10])),
                Message::text(""),
            ];
            let writing = tokio::spawn(async move {
                conn.write_batch(msgs).await.expect("write");
                conn
            });
            let (fin, op, body) = next_frame(&mut peer).await;
            assert_eq!((fin, op, &body[..]), (true, 1, &b"one"[..]));
            let (_, op, body) = next_frame(&mut peer).await;
            assert_eq!((op, body.len()), (2, 300 << 10));
            assert!(body.iter().all(|&b| b == 7));
            let (_, op, body) = next_frame(&mut peer).await;
            assert_eq!((op, body.len()), (1, 0));
            let conn = writing.await.expect("writer task");
            let out = lock(&conn.shared.write.out);
            assert!(out.is_drained());
            assert_eq!((out.buf.capacity(), out.segs.capacity()), (0, 0));
        })
        .await;
    }

    #[tokio::test]
    async fn a_client_never_masks_a_payload_the_caller_still_holds() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Client, 1 << 20);
            let payload = Bytes::from(vec![0x5a; 300 << 10]);
            let kept = payload.clone();
            let writing = tokio::spawn(async move {
                conn.write(Message::Binary(payload)).await.expect("write");
                conn
            });
            let (_, _, body) = next_frame(&mut peer).await;
            assert_eq!(body, kept);
            assert!(
                kept.iter().all(|&b| b == 0x5a),
                "the caller's bytes were masked"
            );
            drop(writing.await.expect("writer task"));
        })
        .await;
    }

    #[tokio::test]
    async fn cancelled_writes_cannot_grow_the_queue_past_the_high_water_mark() {
        bounded(async {
            let settings = Settings {
                write_high_water_mark: 8 << 10,
                ..super::super::testing::settings(1 << 20)
            };
            // A 1 KiB pipe nobody reads: the socket soon takes nothing more.
            let (conn, _peer) = pair_with(Role::Server, settings, 1 << 10);
            let mut cx = Context::from_waker(std::task::Waker::noop());
            for _ in 0..100 {
                let mut write = Box::pin(conn.write(Message::Binary(Bytes::from(vec![1u8; 4096]))));
                let _ = write.as_mut().poll(&mut cx);
            }
            let out = lock(&conn.shared.write.out);
            let waiting = out.queued - out.written;
            assert!(
                waiting <= (8 << 10) + 4096 + 14,
                "{waiting} bytes queued past an 8 KiB mark"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_streamed_message_is_sent_as_continuation_frames() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            let writing = tokio::spawn(async move {
                {
                    let mut guard = conn.writer().await.expect("writer");
                    for (piece, first, fin) in [
                        (&b"ab"[..], true, false),
                        (b"cd", false, false),
                        (b"e", false, true),
                    ] {
                        std::future::poll_fn(|cx| {
                            guard.poll_send_frame(cx, MessageType::Text, piece, first, fin)
                        })
                        .await
                        .expect("frame");
                    }
                }
                conn
            });
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(next_frame(&mut peer).await);
            }
            let shape: Vec<(bool, u8)> = got.iter().map(|(f, op, _)| (*f, *op)).collect();
            assert_eq!(shape, [(false, 1), (false, 0), (true, 0)]);
            let body: Vec<u8> = got.into_iter().flat_map(|(_, _, b)| b).collect();
            assert_eq!(body, b"abcde");
            drop(writing.await.expect("writer task"));
        })
        .await;
    }

    #[tokio::test]
    async fn a_writer_aborted_mid_message_fails_the_connection() {
        bounded(async {
            let (conn, _peer) = pair(Role::Server, 1 << 20);
            {
                let mut guard = conn.writer().await.expect("writer");
                std::future::poll_fn(|cx| {
                    guard.poll_send_frame(cx, MessageType::Binary, b"half", true, false)
                })
                .await
                .expect("first frame");
                guard.abort_message();
            }
            let err = conn
                .write(Message::text("after"))
                .await
                .expect_err("aborted");
            assert_eq!(err.kind(), crate::error::ErrorKind::AlreadyClosed);
            assert!(matches!(
                std::pin::pin!(conn.read())
                    .poll(&mut Context::from_waker(std::task::Waker::noop())),
                Poll::Ready(Err(_))
            ));
        })
        .await;
    }
}
