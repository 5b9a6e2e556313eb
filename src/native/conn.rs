//! The native connection: RFC 6455 (framing in `frame.rs`) over any tokio stream, shared by
//! `&self` methods.
//!
//! # Memory
//!
//! An idle connection holds no buffer: a read that waits for data polls the socket into a
//! buffer on the stack, and only bytes that arrived are copied to the heap (a message's payload,
//! or the start of a frame not complete yet). Outgoing bytes live in a queue that is freed once
//! written; a large message's payload is not copied into it but shared with the caller's
//! `Bytes` (a client masks it in place when nobody else holds it). Nothing per connection is
//! spawned or timed.
//!
//! # Locking
//!
//! - `read` (an async mutex around the reader's state) admits one reader at a time; its
//!   state holds all progress, so a dropped read loses nothing.
//! - `msg_lock` keeps whole messages in order: a writer holds it while it queues its frames,
//!   so the frames of two messages never interleave. Control frames (pong, ping, close) are
//!   queued without it, between frames.
//! - `out` (a std mutex) is the outgoing queue. Whoever waits for its bytes to be written
//!   writes everything queued: concurrent writers share system calls (group commit).
//! - `io` (a std mutex) is the stream, held only within one poll.
//!
//! Lock order: `out` before `io`; `state` is never held while taking another.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::lock::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, Notify};

use super::frame::{self, FrameError, OpCode, Role};
use super::handshake::mask_key;
use super::io::Transport;
use crate::close::{CloseFrame, StatusCode};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageType};

/// Bytes read at once, into a stack buffer, when no frame is partly received.
const STACK_READ: usize = 8 << 10;
/// The most a partly received frame grows the read buffer by at once, so a header that
/// claims a large (allowed) length commits memory only as the bytes arrive. (Reserving a whole
/// 1 MiB frame at once was tried: 60% more client CPU per 1 MiB echo here, from fresh pages.)
const READ_CHUNK: usize = 256 << 10;
/// Payloads at least this long are queued as the caller's `Bytes` rather than copied, so a
/// large message is not held twice while it is written. Shorter ones are copied next to their
/// header: measured at 64 KiB, one contiguous write gave 9% more echoes per second than a
/// vectored header + payload write, for 3% more CPU.
const SHARE_MIN: usize = 256 << 10;
/// The most slices one vectored write passes to the socket.
const MAX_SLICES: usize = 32;

/// Settings fixed when a connection is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) read_limit: usize,
    pub(crate) close_timeout: Duration,
    /// Queued bytes beyond which a write waits before it queues (see `poll_room`).
    pub(crate) write_high_water_mark: usize,
}

#[derive(Debug, Default)]
struct State {
    /// `close`, `close_now` or drop: writes now fail with `AlreadyClosed`.
    user_closed: bool,
    /// The transport was dropped.
    aborted: bool,
    /// Our close frame is queued: nothing else may follow it.
    close_sent: bool,
    /// The peer's close frame, once received.
    peer_close: Option<CloseFrame>,
    /// What every read returns from now on.
    terminal: Option<Error>,
}

/// The reader's state: everything a read has made progress on.
#[derive(Debug, Default)]
struct ReadState {
    /// Received bytes not consumed yet (empty, and unallocated, between messages).
    buf: BytesMut,
    /// A fragmented message being received.
    partial: Option<Partial>,
    /// A pong was queued: reading waits until it is written (backpressure on ping floods).
    pong_target: Option<u64>,
    /// Payload bytes of the partly received frame at the front of `buf` that are already
    /// unmasked and, in a text message, UTF-8-checked (0 between frames).
    checked: usize,
    /// The UTF-8 check of the text message being received, carried across pieces of a frame
    /// and across fragments.
    utf8: Utf8Check,
}

#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
}

/// An incremental UTF-8 check: bytes are fed as they arrive, and a sequence that can never
/// become valid is reported as soon as its offending byte is fed (RFC 6455 8.1: fail fast).
#[derive(Debug, Default)]
struct Utf8Check {
    /// The start of a character split between two pieces (at most 3 bytes).
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Check {
    /// Feeds the next bytes of the text; `false` if the text is invalid already.
    fn feed(&mut self, mut data: &[u8]) -> bool {
        if self.pending_len > 0 {
            let width = match self.pending[0] {
                0xF0.. => 4,
                0xE0.. => 3,
                _ => 2,
            };
            let take = (width - self.pending_len).min(data.len());
            let end = self.pending_len + take;
            self.pending[self.pending_len..end].copy_from_slice(&data[..take]);
            self.pending_len = end;
            data = &data[take..];
            match std::str::from_utf8(&self.pending[..end]) {
                Ok(_) => self.pending_len = 0,
                // Still a valid start of a character: `data` is used up.
                Err(e) if e.error_len().is_none() => return true,
                Err(_) => return false,
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => true,
            Err(e) if e.error_len().is_none() => {
                let tail = &data[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the text fed so far ends on a character boundary.
    fn is_complete(&self) -> bool {
        self.pending_len == 0
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

    /// Forgets everything queued (the stream failed).
    fn clear(&mut self) {
        self.segs = VecDeque::new();
        self.buf = Vec::new();
        self.pos = 0;
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

struct Shared {
    io: Mutex<Transport>,
    // futures' async mutex: uncontended, a lock and an unlock are one atomic operation each
    // (tokio's takes its waiter list's mutex on every unlock, 1.5% of a small echo's CPU).
    read: AsyncMutex<ReadState>,
    msg_lock: AsyncMutex<()>,
    out: Mutex<Output>,
    state: Mutex<State>,
    /// Woken on every change of `state`.
    changed: Notify,
    reader_waker: AtomicWaker,
    writers: Arc<WakeAll>,
    /// A waker that wakes every writer; given to the socket.
    writers_waker: Waker,
    role: Role,
    read_limit: AtomicUsize,
    settings: Settings,
    ping_seq: AtomicU64,
    pings: Mutex<Vec<(u64, oneshot::Sender<()>)>>,
    /// Frames of any kind read so far: the heartbeat's sign of life.
    received: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover the data if something ever did.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A native connection; see `backend.rs` for the contract.
pub(crate) struct Conn {
    shared: Arc<Shared>,
    subprotocol: Option<String>,
}

/// Whether the native writer sends frames before the message is finished: yes.
pub(crate) const WRITER_STREAMS: bool = true;

/// What one step of reading produced.
enum Step {
    Message(Message),
    /// The peer's close frame: its code and reason, or none (an empty close).
    PeerClose(Option<(u16, String)>),
    /// This side must fail the connection: close with `code`, report `err`.
    Fail {
        err: Error,
        code: StatusCode,
        reason: &'static str,
    },
    /// The transport ended or failed without a close frame.
    Lost(Error),
}

impl Conn {
    /// Wraps a stream that has completed the HTTP upgrade; `leftover` is what was read past
    /// the handshake.
    pub(crate) async fn from_upgraded(
        transport: Transport,
        leftover: Vec<u8>,
        role: Role,
        subprotocol: Option<String>,
        settings: Settings,
    ) -> Self {
        let writers = Arc::new(WakeAll::default());
        let writers_waker = Waker::from(writers.clone());
        Conn {
            shared: Arc::new(Shared {
                io: Mutex::new(transport),
                read: AsyncMutex::new(ReadState {
                    buf: BytesMut::from(&leftover[..]),
                    ..ReadState::default()
                }),
                msg_lock: AsyncMutex::new(()),
                out: Mutex::new(Output::default()),
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                reader_waker: AtomicWaker::new(),
                writers,
                writers_waker,
                role,
                read_limit: AtomicUsize::new(settings.read_limit),
                settings,
                ping_seq: AtomicU64::new(0),
                pings: Mutex::new(Vec::new()),
                received: AtomicU64::new(0),
            }),
            subprotocol,
        }
    }

    pub(crate) async fn read(&self) -> Result<Message> {
        let mut rs = self.shared.read.lock().await;
        self.shared.read_locked(&mut rs).await
    }

    pub(crate) async fn write(&self, msg: Message) -> Result<()> {
        let shared = &self.shared;
        let target = {
            let _guard = shared.msg_lock.lock().await;
            shared.check_writable()?;
            poll_fn(|cx| shared.poll_room(cx)).await?;
            shared.enqueue_message(msg)?
            // The message is queued whole: the next writer may queue behind it while this
            // one waits for the socket.
        };
        poll_fn(|cx| shared.poll_written(cx, target)).await
    }

    pub(crate) async fn write_batch(&self, msgs: Vec<Message>) -> Result<()> {
        let shared = &self.shared;
        let target = {
            let _guard = shared.msg_lock.lock().await;
            shared.check_writable()?;
            poll_fn(|cx| shared.poll_room(cx)).await?;
            let mut target = 0;
            for msg in msgs {
                target = shared.enqueue_message(msg)?;
            }
            target
        };
        poll_fn(|cx| shared.poll_written(cx, target)).await
    }

    pub(crate) async fn writer(&self) -> Result<WriteGuard<'_>> {
        let guard = self.shared.msg_lock.lock().await;
        self.shared.check_writable()?;
        Ok(WriteGuard {
            shared: &self.shared,
            _guard: guard,
            target: None,
        })
    }

    pub(crate) async fn close(&self, code: StatusCode, reason: &str) -> Result<()> {
        let shared = &self.shared;
        let send = {
            let mut st = lock(&shared.state);
            if st.user_closed {
                return Err(Error::new(
                    ErrorKind::AlreadyClosed,
                    "close or close_now was already called",
                ));
            }
            st.user_closed = true;
            if st.peer_close.is_none() {
                if let Some(term) = &st.terminal {
                    // The connection already failed (lost, too big, ...): nothing to hand-shake.
                    let term = term.clone();
                    drop(st);
                    shared.drop_transport();
                    return Err(term);
                }
            }
            let send = st.peer_close.is_none() && !st.close_sent;
            st.close_sent = true;
            send
        };
        let timeout = shared.settings.close_timeout;
        if send {
            let sent = async {
                let target = shared.enqueue(true, OpCode::Close, &close_payload(code, reason))?;
                poll_fn(|cx| shared.poll_written(cx, target)).await
            };
            match tokio::time::timeout(timeout, sent).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // The peer may have closed first; that is a completed handshake.
                    if lock(&shared.state).peer_close.is_none() {
                        shared.drop_transport();
                        return Err(e);
                    }
                }
                Err(_) => {
                    shared.drop_transport();
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!("could not send the close frame within {timeout:?}"),
                    ));
                }
            }
        }
        let waited = tokio::time::timeout(timeout, shared.await_peer_close()).await;
        shared.drop_transport();
        match waited {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("the peer did not answer the close frame within {timeout:?}"),
            )),
        }
    }

    pub(crate) fn close_now(&self) {
        self.shared
            .abort("the connection was closed with close_now");
    }

    pub(crate) fn close_read(&self) -> Closed {
        let shared = self.shared.clone();
        let reading = {
            let shared = shared.clone();
            async move {
                let mut rs = shared.read.lock().await;
                if let Ok(msg) = shared.read_locked(&mut rs).await {
                    let e = Error::new(
                        ErrorKind::Protocol,
                        format!(
                            "a {:?} message arrived after close_read; closed with 1008",
                            msg.message_type()
                        ),
                    );
                    shared
                        .fail_with_close(e, StatusCode::POLICY_VIOLATION, "unexpected data message")
                        .await;
                }
            }
        };
        let fut: Pin<Box<dyn Future<Output = Error> + Send>> =
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(reading);
                Box::pin(async move { shared.wait_terminal().await })
            } else {
                // No runtime to spawn on: read when the caller polls `Closed`.
                Box::pin(async move {
                    reading.await;
                    shared.wait_terminal().await
                })
            };
        Closed { fut }
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        let shared = &self.shared;
        shared.check_writable()?;
        let id = shared.ping_seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&shared.pings).push((id, tx));
        // Removes the waiter however this future ends (pong, error, or drop).
        struct Unregister<'a>(&'a Shared, u64);
        impl Drop for Unregister<'_> {
            fn drop(&mut self) {
                lock(&self.0.pings).retain(|(id, _)| *id != self.1);
            }
        }
        let _unregister = Unregister(shared, id);
        poll_fn(|cx| shared.poll_room(cx)).await?;
        let target = shared.enqueue(true, OpCode::Ping, &id.to_be_bytes())?;
        poll_fn(|cx| shared.poll_written(cx, target)).await?;
        tokio::select! {
            r = rx => r.map_err(|_| Error::new(ErrorKind::ConnectionLost, "connection ended before the pong")),
            e = shared.wait_terminal() => Err(e),
        }
    }

    pub(crate) fn set_read_limit(&self, bytes: usize) {
        self.shared.read_limit.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    pub(crate) fn peer_close_frame(&self) -> Option<CloseFrame> {
        lock(&self.shared.state).peer_close.clone()
    }

    pub(crate) fn received_count(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    pub(crate) fn closed_locally(&self) -> bool {
        lock(&self.shared.state).user_closed
    }

    pub(crate) fn fail(&self, err: Error) {
        lock(&self.shared.state).terminal.get_or_insert(err);
        self.shared.drop_transport();
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.abort("the connection was dropped");
    }
}

/// A close frame's payload: the code and the reason (validated by the caller).
fn close_payload(code: StatusCode, reason: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.as_u16().to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    payload
}

impl Shared {
    // ---- writing ------------------------------------------------------------------------

    /// Queues one whole message as one frame; returns the byte count the queue must reach for
    /// it to be written. A large payload is shared, not copied (a client masks it in place
    /// when the caller's `Bytes` is not shared; otherwise it is copied and masked).
    fn enqueue_message(&self, msg: Message) -> Result<u64> {
        if msg.len() < SHARE_MIN {
            let (opcode, payload) = match &msg {
                Message::Text(t) => (OpCode::Text, t.as_bytes()),
                Message::Binary(b) => (OpCode::Binary, &b[..]),
            };
            return self.enqueue(true, opcode, payload);
        }
        let (opcode, payload) = match msg {
            Message::Text(t) => (OpCode::Text, Bytes::from(t.into_bytes())),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        let (mask, payload) = match self.role {
            Role::Server => (None, payload),
            Role::Client => match payload.try_into_mut() {
                Ok(mut owned) => {
                    let key = mask_key()?;
                    frame::apply_mask(&mut owned, key);
                    (Some(key), owned.freeze())
                }
                Err(shared) => return self.enqueue(true, opcode, &shared),
            },
        };
        let mut out = lock(&self.out);
        if let Some(e) = &out.error {
            return Err(self.write_failed(e.clone()));
        }
        let start = out.buf.len();
        frame::write_header(&mut out.buf, true, opcode, mask, payload.len());
        out.queued += (out.buf.len() - start + payload.len()) as u64;
        out.push_shared(payload);
        Ok(out.queued)
    }

    /// Queues one frame, copying its payload; returns the byte count the queue must reach for
    /// it to be written.
    fn enqueue(&self, fin: bool, opcode: OpCode, payload: &[u8]) -> Result<u64> {
        let mut out = lock(&self.out);
        if let Some(e) = &out.error {
            return Err(self.write_failed(e.clone()));
        }
        let mask = match self.role {
            Role::Client => Some(mask_key()?),
            Role::Server => None,
        };
        let start = out.buf.len();
        frame::write_header(&mut out.buf, fin, opcode, mask, payload.len());
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
    fn poll_room(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let target = {
            let out = lock(&self.out);
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
    fn poll_written(&self, cx: &mut Context<'_>, target: u64) -> Poll<Result<()>> {
        let mut out = lock(&self.out);
        if let Some(e) = &out.error {
            return Poll::Ready(Err(self.write_failed(e.clone())));
        }
        if out.written >= target && !out.unflushed {
            return Poll::Ready(Ok(()));
        }
        // Registered first, so a wake-up between the socket's Pending and now is not lost.
        self.writers.register(cx.waker());
        let mut wcx = Context::from_waker(&self.writers_waker);
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
            match polled {
                Poll::Ready(Ok(0)) => {
                    let e = Error::new(ErrorKind::ConnectionLost, "the connection took no bytes");
                    return Poll::Ready(Err(self.broken(&mut out, e)));
                }
                Poll::Ready(Ok(n)) => {
                    out.advance(n);
                    out.unflushed = true;
                }
                Poll::Ready(Err(e)) => {
                    let e = Error::with_source(ErrorKind::ConnectionLost, "write failed", e);
                    return Poll::Ready(Err(self.broken(&mut out, e)));
                }
                Poll::Pending => {
                    if out.written >= target {
                        // Ours are out; later bytes belong to writers that wait themselves.
                        break;
                    }
                    return Poll::Pending;
                }
            }
        }
        if out.is_drained() {
            // Everything is written: give the memory back.
            out.clear();
        }
        if out.unflushed {
            match Pin::new(&mut *io).poll_flush(&mut wcx) {
                Poll::Ready(Ok(())) => out.unflushed = false,
                Poll::Ready(Err(e)) => {
                    let e = Error::with_source(ErrorKind::ConnectionLost, "flush failed", e);
                    return Poll::Ready(Err(self.broken(&mut out, e)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Records that the stream failed for writing; wakes every writer.
    fn broken(&self, out: &mut Output, e: Error) -> Error {
        out.clear();
        out.error = Some(e.clone());
        Waker::from(self.writers.clone()).wake();
        self.write_failed(e)
    }

    /// `AlreadyClosed` after `close`/`close_now`/drop; otherwise the error that ended the
    /// connection (the peer's close, a failure), as `read` reports it.
    fn check_writable(&self) -> Result<()> {
        let st = lock(&self.state);
        if st.user_closed {
            return Err(already_closed());
        }
        if let Some(t) = &st.terminal {
            return Err(t.clone());
        }
        if st.aborted || st.close_sent {
            return Err(already_closed());
        }
        Ok(())
    }

    /// The error a writer sees when the stream failed under it.
    fn write_failed(&self, e: Error) -> Error {
        let st = lock(&self.state);
        if st.user_closed {
            return already_closed();
        }
        if let Some(t) = &st.terminal {
            return t.clone();
        }
        if let Some(f) = &st.peer_close {
            return Error::closed(f.clone());
        }
        if st.aborted {
            return already_closed();
        }
        e
    }

    // ---- reading ------------------------------------------------------------------------

    /// Reads the next data message; the caller holds the read lock.
    async fn read_locked(&self, rs: &mut ReadState) -> Result<Message> {
        if let Some(t) = lock(&self.state).terminal.clone() {
            return Err(t);
        }
        let step = poll_fn(|cx| self.poll_step(cx, rs)).await;
        match step {
            Step::Message(msg) => {
                if rs.buf.is_empty() && rs.buf.capacity() > 0 {
                    // Between messages: hold no buffer (the message keeps what it needs).
                    rs.buf = BytesMut::new();
                }
                Ok(msg)
            }
            Step::PeerClose(close) => Err(self.on_peer_close(close).await),
            Step::Fail { err, code, reason } => Err(self.fail_with_close(err, code, reason).await),
            Step::Lost(err) => Err(self.lost(err)),
        }
    }

    fn poll_step(&self, cx: &mut Context<'_>, rs: &mut ReadState) -> Poll<Step> {
        loop {
            if let Some(target) = rs.pong_target {
                if let Err(e) = ready!(self.poll_written(cx, target)) {
                    return Poll::Ready(Step::Lost(e));
                }
                rs.pong_target = None;
            }
            let limit = self
                .read_limit
                .load(Ordering::Relaxed)
                .min(frame::MAX_READ_LIMIT);
            let want = match frame::parse_header(&rs.buf, self.role, limit) {
                Err(FrameError::Protocol(why)) => return Poll::Ready(protocol_error(why)),
                Err(FrameError::TooBig { claimed, limit }) => {
                    return Poll::Ready(too_big(format!(
                        "a frame of {claimed} bytes exceeds the read limit of {limit}; closed \
                         with 1009"
                    )))
                }
                Ok(Some(h)) => {
                    // Everything the header alone decides is decided before the payload is
                    // read: a frame out of sequence, a fragment that takes the message over
                    // the limit.
                    if let Some(step) = check_sequence(rs, &h, limit) {
                        return Poll::Ready(step);
                    }
                    let text = match h.opcode {
                        OpCode::Text => true,
                        OpCode::Continue => rs.partial.as_ref().is_some_and(|p| p.text),
                        _ => false,
                    };
                    // `parse_header` saw the whole header, so `buf` holds at least `size`.
                    let have = rs.buf.len() - h.size;
                    if have < h.len {
                        if text && have > rs.checked {
                            // Check the text as it arrives, so invalid UTF-8 fails the
                            // connection before the rest of the frame is read.
                            let piece = &mut rs.buf[h.size + rs.checked..];
                            if let Some(key) = h.mask {
                                frame::apply_mask_at(piece, key, rs.checked);
                            }
                            if !rs.utf8.feed(piece) {
                                return Poll::Ready(invalid_utf8());
                            }
                            rs.checked = have;
                        }
                        (h.len - have).min(READ_CHUNK)
                    } else {
                        rs.buf.advance(h.size);
                        let mut payload = if rs.buf.len() == h.len {
                            // The frame is all that is buffered (the usual case): take the
                            // buffer whole; splitting it would make it shared, an allocation
                            // per message.
                            std::mem::take(&mut rs.buf)
                        } else {
                            rs.buf.split_to(h.len)
                        };
                        let checked = std::mem::take(&mut rs.checked);
                        if let Some(key) = h.mask {
                            frame::apply_mask_at(&mut payload[checked..], key, checked);
                        }
                        // A text message in one frame that arrived at once is checked once,
                        // when it becomes a `String`; anything else as it arrives.
                        let whole = h.fin && h.opcode == OpCode::Text && checked == 0;
                        if text && !whole {
                            let ok = rs.utf8.feed(&payload[checked..])
                                && (!h.fin || rs.utf8.is_complete());
                            if !ok {
                                return Poll::Ready(invalid_utf8());
                            }
                        }
                        self.received.fetch_add(1, Ordering::Relaxed);
                        match self.on_frame(rs, h.fin, h.opcode, payload) {
                            Some(step) => return Poll::Ready(step),
                            None => continue,
                        }
                    }
                }
                Ok(None) => frame::MAX_HEADER,
            };
            match ready!(self.poll_fill(cx, rs, want)) {
                Ok(0) => {
                    return Poll::Ready(Step::Lost(if self.aborted() {
                        already_closed()
                    } else {
                        Error::new(
                            ErrorKind::ConnectionLost,
                            "the peer ended the connection without a close frame",
                        )
                    }))
                }
                Ok(_) => {}
                Err(e) => {
                    return Poll::Ready(Step::Lost(if self.aborted() {
                        already_closed()
                    } else {
                        let why = if e.kind() == std::io::ErrorKind::ConnectionReset {
                            "the peer reset the connection without a close frame"
                        } else {
                            "read failed"
                        };
                        Error::with_source(ErrorKind::ConnectionLost, why, e)
                    }))
                }
            }
        }
    }

    /// Reads more bytes into `rs.buf`: onto the stack first when nothing is buffered (so an
    /// idle connection holds no buffer), else straight into the buffer, `want` more at most.
    fn poll_fill(
        &self,
        cx: &mut Context<'_>,
        rs: &mut ReadState,
        want: usize,
    ) -> Poll<std::io::Result<usize>> {
        self.reader_waker.register(cx.waker());
        let mut io = lock(&self.io);
        if rs.buf.is_empty() {
            let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
            let mut rb = ReadBuf::uninit(&mut stack);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
            rs.buf.extend_from_slice(rb.filled());
            Poll::Ready(Ok(rb.filled().len()))
        } else {
            rs.buf.reserve(want.max(STACK_READ));
            tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut rs.buf)
        }
    }

    /// Handles one complete frame, already checked by `check_sequence` and, in a text
    /// message, for UTF-8 as far as it goes; `Some` ends the read.
    fn on_frame(
        &self,
        rs: &mut ReadState,
        fin: bool,
        opcode: OpCode,
        payload: BytesMut,
    ) -> Option<Step> {
        match opcode {
            OpCode::Text | OpCode::Binary => {
                let text = opcode == OpCode::Text;
                if fin {
                    rs.utf8 = Utf8Check::default();
                    return Some(finish(text, payload.freeze()));
                }
                rs.partial = Some(Partial {
                    text,
                    data: Vec::from(&payload[..]),
                });
                None
            }
            OpCode::Continue => {
                let p = rs.partial.as_mut()?;
                p.data.extend_from_slice(&payload);
                if !fin {
                    return None;
                }
                rs.utf8 = Utf8Check::default();
                let p = rs.partial.take()?;
                Some(finish(p.text, Bytes::from(p.data)))
            }
            OpCode::Ping => {
                if !lock(&self.state).close_sent {
                    match self.enqueue(true, OpCode::Pong, &payload) {
                        Ok(target) => rs.pong_target = Some(target),
                        Err(e) => return Some(Step::Lost(e)),
                    }
                }
                None
            }
            OpCode::Pong => {
                if let Ok(id) = <[u8; 8]>::try_from(&payload[..]) {
                    let id = u64::from_be_bytes(id);
                    let mut pings = lock(&self.pings);
                    if let Some(i) = pings.iter().position(|(p, _)| *p == id) {
                        let (_, tx) = pings.swap_remove(i);
                        let _ = tx.send(());
                    }
                }
                None
            }
            OpCode::Close => Some(match frame::parse_close(&payload) {
                Ok(close) => Step::PeerClose(close),
                Err(bad) => {
                    let kind = if bad.code == StatusCode::INVALID_FRAME_PAYLOAD_DATA {
                        ErrorKind::InvalidData
                    } else {
                        ErrorKind::Protocol
                    };
                    let code = bad.code;
                    Step::Fail {
                        err: Error::new(
                            kind,
                            format!("{}; closed with {}", bad.why, code.as_u16()),
                        ),
                        code,
                        reason: if kind == ErrorKind::InvalidData {
                            "invalid UTF-8"
                        } else {
                            "protocol error"
                        },
                    }
                }
            }),
        }
    }

    /// The peer sent its close frame: answer it (unless ours went first), then end.
    async fn on_peer_close(&self, close: Option<(u16, String)>) -> Error {
        let frame = match &close {
            Some((code, reason)) => CloseFrame {
                code: StatusCode::from(*code),
                reason: reason.clone(),
            },
            None => CloseFrame {
                code: StatusCode::NO_STATUS_RCVD,
                reason: String::new(),
            },
        };
        let err = Error::closed(frame.clone());
        let reply = {
            let mut st = lock(&self.state);
            st.peer_close = Some(frame);
            let err = st.terminal.get_or_insert(err).clone();
            let reply = !st.close_sent;
            st.close_sent = true;
            (reply, err)
        };
        self.changed.notify_waiters();
        let (reply, err) = reply;
        if reply {
            // Echo the code and reason (RFC 6455 5.5.1); an empty close gets an empty close.
            let payload = match &close {
                Some((code, reason)) => close_payload(StatusCode::from(*code), reason),
                None => Vec::new(),
            };
            self.send_close_bounded(&payload).await;
        }
        self.drop_transport();
        err
    }

    /// Queues a close frame and waits, at most the close timeout, for it to be written;
    /// failures do not matter here, the transport is dropped next either way.
    async fn send_close_bounded(&self, payload: &[u8]) {
        if let Ok(target) = self.enqueue(true, OpCode::Close, payload) {
            let written = poll_fn(|cx| self.poll_written(cx, target));
            let _ = tokio::time::timeout(self.settings.close_timeout, written).await;
        }
    }

    /// Records `err` as the connection's end, sends a close frame with `code` (bounded by the
    /// close timeout), and drops the transport. Returns the recorded error.
    async fn fail_with_close(&self, err: Error, code: StatusCode, reason: &str) -> Error {
        let (err, send) = {
            let mut st = lock(&self.state);
            let err = st.terminal.get_or_insert(err).clone();
            let send = !st.close_sent;
            st.close_sent = true;
            (err, send)
        };
        self.changed.notify_waiters();
        if send {
            self.send_close_bounded(&close_payload(code, reason)).await;
        }
        self.drop_transport();
        err
    }

    /// The transport ended: record why, drop it.
    fn lost(&self, err: Error) -> Error {
        let err = lock(&self.state).terminal.get_or_insert(err).clone();
        self.drop_transport();
        err
    }

    fn aborted(&self) -> bool {
        lock(&self.state).aborted
    }

    /// Waits until the peer's close frame arrived, reading (and discarding data) if no other
    /// task is reading.
    async fn await_peer_close(&self) -> Result<()> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = lock(&self.state);
                if st.peer_close.is_some() {
                    return Ok(());
                }
                if let Some(t) = &st.terminal {
                    return Err(t.clone());
                }
            }
            tokio::select! {
                mut rs = self.read.lock() => {
                    loop {
                        match self.read_locked(&mut rs).await {
                            Ok(_) => continue,
                            Err(e) if e.kind() == ErrorKind::Closed => return Ok(()),
                            Err(e) => return Err(e),
                        }
                    }
                }
                _ = notified => {}
            }
        }
    }

    /// Resolves once the connection has ended, with the error that describes the ending.
    async fn wait_terminal(&self) -> Error {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(t) = lock(&self.state).terminal.clone() {
                return t;
            }
            notified.await;
        }
    }

    /// Drops the socket and wakes everything waiting on the connection.
    fn drop_transport(&self) {
        lock(&self.io).drop_stream();
        lock(&self.state).aborted = true;
        self.changed.notify_waiters();
        self.reader_waker.wake();
        Waker::from(self.writers.clone()).wake();
    }

    fn abort(&self, why: &'static str) {
        {
            let mut st = lock(&self.state);
            st.user_closed = true;
            st.terminal
                .get_or_insert_with(|| Error::new(ErrorKind::AlreadyClosed, why));
        }
        self.drop_transport();
    }
}

fn already_closed() -> Error {
    Error::new(
        ErrorKind::AlreadyClosed,
        "cannot write: the connection was closed by this side",
    )
}

fn protocol_error(why: &'static str) -> Step {
    Step::Fail {
        err: Error::new(
            ErrorKind::Protocol,
            format!("the peer violated the WebSocket protocol ({why}); closed with 1002"),
        ),
        code: StatusCode::PROTOCOL_ERROR,
        reason: "protocol error",
    }
}

fn too_big(message: String) -> Step {
    Step::Fail {
        err: Error::new(ErrorKind::MessageTooBig, message),
        code: StatusCode::MESSAGE_TOO_BIG,
        reason: "message too big",
    }
}

fn invalid_utf8() -> Step {
    Step::Fail {
        err: Error::new(
            ErrorKind::InvalidData,
            "a text message was not valid UTF-8; closed with 1007",
        ),
        code: StatusCode::INVALID_FRAME_PAYLOAD_DATA,
        reason: "invalid UTF-8",
    }
}

/// The rules a frame's header alone decides, given the message in progress (RFC 6455 5.4):
/// a data frame may not start while a fragmented message is open, a continuation frame only
/// continues one, and the fragments together stay within `limit`.
fn check_sequence(rs: &ReadState, h: &frame::Header, limit: usize) -> Option<Step> {
    match (h.opcode, &rs.partial) {
        (OpCode::Text | OpCode::Binary, Some(_)) => Some(protocol_error(
            "a new message started before the fragmented one ended",
        )),
        (OpCode::Continue, None) => Some(protocol_error(
            "a continuation frame arrived with no message to continue",
        )),
        // The limit may have been lowered since the earlier fragments arrived.
        (OpCode::Continue, Some(p)) if h.len > limit.saturating_sub(p.data.len()) => {
            let total = (p.data.len() as u64).saturating_add(h.len as u64);
            Some(too_big(format!(
                "a fragmented message of at least {total} bytes exceeds the read limit of \
                 {limit}; closed with 1009"
            )))
        }
        _ => None,
    }
}

/// A complete message from its payload.
fn finish(text: bool, payload: Bytes) -> Step {
    if !text {
        return Step::Message(Message::Binary(payload));
    }
    match String::from_utf8(Vec::from(payload)) {
        Ok(t) => Step::Message(Message::Text(t)),
        Err(_) => invalid_utf8(),
    }
}

/// The message-level write lock held by a `Writer`.
pub(crate) struct WriteGuard<'a> {
    shared: &'a Shared,
    _guard: AsyncMutexGuard<'a, ()>,
    /// The queue position the frame in flight must reach.
    target: Option<u64>,
}

impl std::fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("in_flight", &self.target.is_some())
            .finish_non_exhaustive()
    }
}

impl WriteGuard<'_> {
    /// Sends one frame of the current message and waits until it is written (so a long
    /// message never holds more than one frame in memory).
    pub(crate) fn poll_send_frame(
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
                match shared.enqueue(fin, opcode, payload) {
                    Ok(t) => *self.target.insert(t),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        };
        let res = ready!(shared.poll_written(cx, target));
        self.target = None;
        Poll::Ready(res)
    }

    /// A started message can never be finished: fail the connection.
    pub(crate) fn abort_message(&mut self) {
        self.shared
            .abort("a message writer was dropped or failed in the middle of a message");
    }
}

/// The future returned by `close_read`.
pub(crate) struct Closed {
    fut: Pin<Box<dyn Future<Output = Error> + Send>>,
}

impl std::fmt::Debug for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Closed").finish_non_exhaustive()
    }
}

impl Future for Closed {
    type Output = Error;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Error> {
        self.fut.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Check;

    /// The shortest prefix of `text` that no continuation can make valid UTF-8, if any.
    fn first_bad_prefix(text: &[u8]) -> Option<usize> {
        (1..=text.len())
            .find(|&n| std::str::from_utf8(&text[..n]).is_err_and(|e| e.error_len().is_some()))
    }

    #[test]
    fn utf8_check_fails_at_the_first_impossible_byte_whatever_the_pieces() {
        let samples: [&[u8]; 12] = [
            "plain ascii".as_bytes(),
            "h\u{e9}llo \u{20ac} \u{1f600}".as_bytes(),
            b"\xF4\x8F\xBF\xBF", // U+10FFFF, the last code point
            b"\xF4\x90\x80\x80", // past U+10FFFF
            b"\xED\xA0\x80",     // a UTF-16 surrogate
            b"\xC0\xAF",         // an overlong '/'
            b"ok \xE2\x82",      // ends inside a character
            b"\xE2\x82\xAC\x80", // a stray continuation byte
            b"abc\xFFdef",
            b"\xF0\x9F\x98", // truncated emoji
            b"\xC3\x28",     // bad second byte
            b"",
        ];
        for text in samples {
            let valid = std::str::from_utf8(text).is_ok();
            let bad = first_bad_prefix(text);
            // Every split into two pieces, and one byte at a time.
            let mut splits: Vec<Vec<&[u8]>> = (0..=text.len())
                .map(|i| vec![&text[..i], &text[i..]])
                .collect();
            splits.push(text.chunks(1).collect());
            for pieces in splits {
                let mut check = Utf8Check::default();
                let mut fed = 0;
                let mut failed_at = None;
                for piece in &pieces {
                    fed += piece.len();
                    if !check.feed(piece) {
                        failed_at = Some(fed);
                        break;
                    }
                }
                let ok = failed_at.is_none() && check.is_complete();
                assert_eq!(ok, valid, "{text:?} in {pieces:?}");
                if let Some(bad) = bad {
                    // Caught with the piece that brought the offending byte, not later.
                    let mut end = 0;
                    let due = pieces.iter().find_map(|p| {
                        end += p.len();
                        (end >= bad).then_some(end)
                    });
                    assert_eq!(failed_at, due, "{text:?} in {pieces:?}");
                }
            }
        }
    }
}
