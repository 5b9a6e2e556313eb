//! The browser connection handle: `Send + Sync` state shared with the driver task.
//!
//! Locking: `state` (a std mutex) is held only inside one `poll` or one synchronous step,
//! never across an await. `read_lock` admits one reader at a time; `write_lock` keeps whole
//! messages in order.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_util::lock::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard};

use super::driver::{self, Command};
use crate::backend::{Dial, Engine, FrameSink};
use crate::close::{CloseFrame, StatusCode};
use crate::dial::{DialOptions, Response, WsUrl};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageType};

/// Unread messages may take this many bytes, or four times the read limit if that is larger,
/// before the connection is closed with 1000 "reader too slow". The browser cannot pause a
/// `WebSocket`, so this bound replaces the TCP backpressure a native reader has.
pub(super) const INBOUND_QUEUE_MIN: usize = 16 << 20;

/// What each queued message costs besides its payload, so empty messages count too.
const MESSAGE_OVERHEAD: usize = 64;

/// The reason the connection is closed with when a message is over the read limit.
pub(super) const TOO_BIG_REASON: &str = "message too big";

/// The close code browsers accept in place of a refused one (1001-1003, 1007-1014).
pub(super) fn browser_code(code: StatusCode) -> u16 {
    if code.is_browser_allowed() {
        code.as_u16()
    } else {
        StatusCode::NORMAL_CLOSURE.as_u16()
    }
}

fn cost(msg: &Message) -> usize {
    msg.len().saturating_add(MESSAGE_OVERHEAD)
}

/// Settings fixed when the connection is made.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) close_timeout: Duration,
    pub(super) high_water_mark: usize,
}

#[derive(Default)]
pub(super) struct State {
    /// Received messages not read yet.
    queue: VecDeque<Message>,
    /// What `queue` costs, payload plus `MESSAGE_OVERHEAD` per message.
    queued_bytes: usize,
    /// What reads return once `queue` is empty, and every time after.
    end: Option<Error>,
    /// This side failed or dropped the connection: reads return `end` at once, writes fail.
    failed: bool,
    /// `close` or `close_now` was called.
    user_closed: bool,
    /// The peer's close frame, once a clean `close` event arrived.
    peer_close: Option<CloseFrame>,
    /// `close_read` was called: a data message fails the connection.
    discard: bool,
    /// The one reader waiting for a message.
    reader: Option<Waker>,
    /// The one writer (the write lock admits one) waiting for the driver's queue to empty.
    writer: Option<Waker>,
    /// `Closed` futures waiting for `end`.
    waiters: Vec<Waker>,
}

impl State {
    /// Records a failure of this side's making (read limit, slow reader, unexpected data):
    /// later reads return it at once and the unread messages are dropped.
    fn fail(&mut self, err: Error) -> Error {
        if self.failed {
            if let Some(end) = &self.end {
                return end.clone();
            }
        }
        self.failed = true;
        self.queue.clear();
        self.queued_bytes = 0;
        self.end = Some(err.clone());
        err
    }

    /// See [`Shared::check_writable`].
    fn writable(&self) -> Result<()> {
        if self.user_closed {
            return Err(Error::new(
                ErrorKind::AlreadyClosed,
                "cannot write: the connection was closed by this side",
            ));
        }
        match &self.end {
            Some(e) => Err(e.clone()),
            None if self.failed => Err(Error::new(
                ErrorKind::AlreadyClosed,
                "cannot write: the connection was closed by this side",
            )),
            None => Ok(()),
        }
    }

    /// Wakes everyone; call after changing `end`, `failed`, `user_closed` or `queue`.
    fn take_wakers(&mut self) -> Vec<Waker> {
        let mut wakers = std::mem::take(&mut self.waiters);
        wakers.extend(self.reader.take());
        wakers.extend(self.writer.take());
        wakers
    }
}

/// The state the handle and the driver share. Only `Send + Sync` things live here.
pub(super) struct Shared {
    state: Mutex<State>,
    read_lock: AsyncMutex<()>,
    write_lock: AsyncMutex<()>,
    read_limit: AtomicUsize,
    /// Data messages received so far: the heartbeat's sign of life.
    received: AtomicU64,
    /// This connection's key in the driver's socket registry.
    pub(super) id: u64,
    /// `Send` commands handed to the driver and not answered yet: a write may skip the driver
    /// only when this is 0, so it cannot overtake an earlier message; and a write hands a
    /// message over only when this is 0 (see [`Shared::poll_driver_idle`]). Incremented by
    /// `Conn::submit`, decremented through [`Shared::send_settled`].
    queued_sends: AtomicUsize,
    pub(super) settings: Settings,
}

/// The next connection id.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding this lock; recover the data if something ever did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state, then wakes whoever must look at it again.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, wakers) = {
            let mut st = self.lock();
            let r = f(&mut st);
            (r, st.take_wakers())
        };
        for w in wakers {
            w.wake();
        }
        r
    }

    /// A data message arrived (called from the `message` handler). Returns the reason to close with if it failed the
    /// connection (data after `close_read`, or a reader too slow for the queue bound).
    pub(super) fn push(&self, msg: Message) -> Option<&'static str> {
        self.received.fetch_add(1, Ordering::Relaxed);
        let limit = self
            .read_limit
            .load(Ordering::Relaxed)
            .saturating_mul(4)
            .max(INBOUND_QUEUE_MIN);
        self.update(|st| {
            if st.failed || st.end.is_some() {
                return None;
            }
            if st.discard {
                st.fail(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "a {:?} message arrived after close_read; closed with 1000 \
                         \"unexpected data message\" (browsers cannot send 1008)",
                        msg.message_type()
                    ),
                ));
                return Some("unexpected data message");
            }
            let c = cost(&msg);
            if !st.queue.is_empty() && st.queued_bytes.saturating_add(c) > limit {
                st.fail(Error::new(
                    ErrorKind::MessageTooBig,
                    format!(
                        "unread messages exceeded the browser's inbound queue limit of {limit} \
                         bytes (the reader is too slow); closed with 1000 \"reader too slow\""
                    ),
                ));
                return Some("reader too slow");
            }
            st.queue.push_back(msg);
            st.queued_bytes = st.queued_bytes.saturating_add(c);
            None
        })
    }

    /// The driver answered one `Send` command (sent or failed it); wakes the waiting writer
    /// when that was the last one.
    pub(super) fn send_settled(&self) {
        if self.queued_sends.fetch_sub(1, Ordering::Relaxed) == 1 {
            // Taken under the lock the writer registers under: no lost wake-up.
            let writer = self.lock().writer.take();
            if let Some(w) = writer {
                w.wake();
            }
        }
    }

    /// Ready once the driver holds no earlier message, or with the error a write would see
    /// once the connection cannot be written to (checked first, so a waiting write fails as
    /// soon as the connection closes or fails).
    ///
    /// This is the bound on the driver's queue: every path into `Conn::submit` waits here
    /// first, so the driver holds the messages of at most one write (or batch, or finished
    /// `Writer`) at a time, even when the futures that handed them over were dropped. The
    /// rule is "nothing queued" rather than "queued bytes at or below the mark" because the
    /// browser's own buffer already holds up to the mark: a second buffer of the same size in
    /// the driver would double the memory without letting any message out sooner, since the
    /// driver can only send when `bufferedAmount` is at or below the mark anyway. Dropping the
    /// future while it waits here hands nothing over.
    fn poll_driver_idle(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut st = self.lock();
        if let Err(e) = st.writable() {
            return Poll::Ready(Err(e));
        }
        if self.queued_sends.load(Ordering::Relaxed) == 0 {
            return Poll::Ready(Ok(()));
        }
        st.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The driver failed the connection itself (e.g. undecodable data).
    pub(super) fn fail(&self, err: Error) {
        self.update(|st| st.fail(err));
    }

    /// The socket's `close` event: a clean close carries the peer's close frame.
    pub(super) fn on_close(&self, code: u16, reason: String, clean: bool) {
        self.update(|st| {
            let err = if clean {
                let frame = CloseFrame {
                    code: StatusCode::from(code),
                    reason,
                };
                st.peer_close = Some(frame.clone());
                Error::closed(frame)
            } else {
                Error::new(
                    ErrorKind::ConnectionLost,
                    format!("the connection ended without a close handshake (close code {code})"),
                )
            };
            st.end.get_or_insert(err);
        });
    }

    /// The driver has stopped: nothing more will arrive.
    pub(super) fn finish(&self, why: &'static str) {
        self.update(|st| {
            st.end
                .get_or_insert_with(|| Error::new(ErrorKind::AlreadyClosed, why));
        });
    }

    /// What `close` returns once the `close` event arrived.
    pub(super) fn close_result(&self) -> Result<()> {
        let st = self.lock();
        match (&st.peer_close, &st.end) {
            (Some(_), _) if !st.failed => Ok(()),
            (_, Some(e)) => Err(e.clone()),
            (_, None) => Ok(()),
        }
    }

    /// The error a write sees now, or `Ok` if writing is still possible.
    /// `AlreadyClosed` after `close`/`close_now`/drop; otherwise the error that ended the
    /// connection (the peer's close, a failure), as `read` reports it.
    fn check_writable(&self) -> Result<()> {
        self.lock().writable()
    }

    /// The error for a write the driver could not take or finish.
    pub(super) fn write_error(&self) -> Error {
        match self.check_writable() {
            Err(e) => e,
            Ok(()) => Error::new(
                ErrorKind::ConnectionLost,
                "the connection closed before the message was sent",
            ),
        }
    }

    fn abort(&self, why: &'static str) {
        self.update(|st| {
            st.user_closed = true;
            st.failed = true;
            st.queue.clear();
            st.queued_bytes = 0;
            st.end
                .get_or_insert_with(|| Error::new(ErrorKind::AlreadyClosed, why));
        });
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        let mut st = self.lock();
        if !st.failed {
            if let Some(msg) = st.queue.pop_front() {
                st.queued_bytes = st.queued_bytes.saturating_sub(cost(&msg));
                return Poll::Ready(Ok(msg));
            }
        }
        if let Some(e) = &st.end {
            return Poll::Ready(Err(e.clone()));
        }
        st.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_end(&self, cx: &mut Context<'_>) -> Poll<Error> {
        let mut st = self.lock();
        if let Some(e) = &st.end {
            return Poll::Ready(e.clone());
        }
        if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Opens a browser `WebSocket`: `Engine::dial`.
async fn open(url: &WsUrl<'_>, opts: &DialOptions) -> Result<(Conn, Response)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        read_lock: AsyncMutex::new(()),
        write_lock: AsyncMutex::new(()),
        read_limit: AtomicUsize::new(opts.read_limit),
        received: AtomicU64::new(0),
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        queued_sends: AtomicUsize::new(0),
        settings: Settings {
            close_timeout: opts.close_timeout,
            high_water_mark: opts.write_high_water_mark,
        },
    });
    let (cmds, cmd_rx) = mpsc::unbounded();
    let (opened_tx, opened) = oneshot::channel();
    driver::spawn(
        driver::Dial {
            url: url.full.to_owned(),
            shown: crate::redact::url(url.full).into_owned(),
            protocols: opts.subprotocols.clone(),
            timeout: opts.timeout,
        },
        shared.clone(),
        cmd_rx,
        opened_tx,
    );
    // If this future is dropped here, the driver sees `opened` go away and closes the socket.
    let (subprotocol, extensions) = match opened.await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Connect,
                "the connection's driver stopped before the socket opened",
            ))
        }
    };
    let conn = Conn {
        shared,
        cmds,
        subprotocol: subprotocol.clone(),
        extensions: extensions.clone(),
    };
    Ok((
        conn,
        Response {
            subprotocol,
            extensions,
            extras: Default::default(),
        },
    ))
}

/// A browser connection handle; see `backend.rs` for the contract.
pub(crate) struct Conn {
    shared: Arc<Shared>,
    cmds: mpsc::UnboundedSender<Command>,
    subprotocol: Option<String>,
    /// `WebSocket.extensions` once open.
    extensions: String,
}

impl Conn {
    /// Hands a whole message to the driver; the receiver completes once the browser took it.
    /// Callers first wait for `poll_driver_idle` (the queue bound), or are `write_batch`
    /// handing over the rest of its batch.
    fn submit(&self, msg: Message) -> Result<oneshot::Receiver<Result<()>>> {
        self.shared.check_writable()?;
        let (done, rx) = oneshot::channel();
        self.shared.queued_sends.fetch_add(1, Ordering::Relaxed);
        if self
            .cmds
            .unbounded_send(Command::Send { msg, done })
            .is_err()
        {
            self.shared.send_settled();
            return Err(self.shared.write_error());
        }
        Ok(rx)
    }

    fn settle(&self, reply: std::result::Result<Result<()>, oneshot::Canceled>) -> Result<()> {
        match reply {
            Ok(r) => r,
            Err(oneshot::Canceled) => Err(self.shared.write_error()),
        }
    }
}

impl Dial for Conn {
    async fn dial(url: &WsUrl<'_>, opts: &DialOptions) -> Result<(Self, Response)> {
        open(url, opts).await
    }
}

impl Engine for Conn {
    type WriteGuard<'a> = WriteGuard<'a>;
    type Closed = Closed;

    /// The browser only sends whole messages, so the shared `Writer` buffers.
    fn writer_streams(&self) -> bool {
        false
    }

    async fn read(&self) -> Result<Message> {
        let _guard = self.shared.read_lock.lock().await;
        // Popping happens inside one poll: a dropped read loses nothing.
        let msg = poll_fn(|cx| self.shared.poll_next(cx)).await?;
        let limit = self.shared.read_limit.load(Ordering::Relaxed);
        if msg.len() > limit {
            let err = Error::new(
                ErrorKind::MessageTooBig,
                format!(
                    "a message of {} bytes exceeds the read limit of {limit}; closed with 1000 \
                     \"{TOO_BIG_REASON}\" (browsers cannot send 1009)",
                    msg.len()
                ),
            );
            let err = self.shared.update(|st| st.fail(err));
            let _ = self.cmds.unbounded_send(Command::Fail {
                reason: TOO_BIG_REASON,
            });
            return Err(err);
        }
        Ok(msg)
    }

    async fn write(&self, msg: Message) -> Result<()> {
        let _guard = self.shared.write_lock.lock().await;
        self.shared.check_writable()?;
        // An earlier write's message is still in the driver (its future was dropped): wait
        // for it to go out before handing over another, which bounds the driver's queue.
        if self.shared.queued_sends.load(Ordering::Relaxed) != 0 {
            poll_fn(|cx| self.shared.poll_driver_idle(cx)).await?;
        }
        // The common case (open, nothing queued, the buffer under the mark) sends from here,
        // sparing two task switches; otherwise the driver sends when the buffer drains.
        if driver::send_now(self.shared.id, &msg, self.shared.settings.high_water_mark)? {
            return Ok(());
        }
        let done = self.submit(msg)?;
        self.settle(done.await)
    }

    async fn write_batch(&self, msgs: Vec<Message>) -> Result<()> {
        let _guard = self.shared.write_lock.lock().await;
        // As in `write`: not before an earlier write's message has left the driver.
        poll_fn(|cx| self.shared.poll_driver_idle(cx)).await?;
        // All handed over at once, in order; then each reply in turn.
        let mut replies = Vec::with_capacity(msgs.len());
        for msg in msgs {
            replies.push(self.submit(msg)?);
        }
        for done in replies {
            self.settle(done.await)?;
        }
        Ok(())
    }

    async fn writer(&self) -> Result<WriteGuard<'_>> {
        let guard = self.shared.write_lock.lock().await;
        self.shared.check_writable()?;
        Ok(WriteGuard {
            conn: self,
            _guard: guard,
            pending: None,
        })
    }

    async fn close(&self, code: StatusCode, reason: &str) -> Result<()> {
        let early = {
            let mut st = self.shared.lock();
            if st.user_closed {
                return Err(Error::new(
                    ErrorKind::AlreadyClosed,
                    "close or close_now was already called",
                ));
            }
            st.user_closed = true;
            // A write waiting for the driver's queue fails now, with AlreadyClosed.
            if let Some(w) = st.writer.take() {
                w.wake();
            }
            if st.peer_close.is_some() && !st.failed {
                // The peer closed first and the browser answered it: the handshake is done.
                Some(Ok(()))
            } else {
                st.end.clone().map(Err)
            }
        };
        if let Some(r) = early {
            let _ = self.cmds.unbounded_send(Command::Abort);
            return r;
        }
        let (done, rx) = oneshot::channel();
        let cmd = Command::Close {
            code: browser_code(code),
            reason: reason.to_owned(),
            done,
        };
        if self.cmds.unbounded_send(cmd).is_err() {
            return self.shared.close_result();
        }
        match rx.await {
            Ok(r) => r,
            Err(oneshot::Canceled) => self.shared.close_result(),
        }
    }

    fn close_now(&self) {
        self.shared
            .abort("the connection was closed with close_now");
        let _ = self.cmds.unbounded_send(Command::Abort);
    }

    fn close_read(&self) -> Closed {
        let failed = self.shared.update(|st| {
            st.discard = true;
            match st.queue.front() {
                Some(msg) if st.end.is_none() => {
                    let ty = msg.message_type();
                    st.fail(Error::new(
                        ErrorKind::Protocol,
                        format!(
                            "a {ty:?} message was unread when close_read was called; closed \
                             with 1000 \"unexpected data message\" (browsers cannot send 1008)"
                        ),
                    ));
                    true
                }
                _ => false,
            }
        });
        if failed {
            let _ = self.cmds.unbounded_send(Command::Fail {
                reason: "unexpected data message",
            });
        }
        Closed {
            shared: self.shared.clone(),
        }
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
        self.shared.lock().peer_close.clone()
    }

    fn received_count(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    fn closed_locally(&self) -> bool {
        self.shared.lock().user_closed
    }

    fn fail(&self, err: Error) {
        self.shared.fail(err);
        let _ = self.cmds.unbounded_send(Command::Abort);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.abort("the connection was dropped");
        // Closing the channel ends the driver, which closes the socket with 1000.
        self.cmds.close_channel();
    }
}

/// The message-level write lock held by a `Writer`.
pub(crate) struct WriteGuard<'a> {
    conn: &'a Conn,
    _guard: AsyncMutexGuard<'a, ()>,
    /// The driver's reply for the message handed over, while it is outstanding.
    pending: Option<oneshot::Receiver<Result<()>>>,
}

impl std::fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl FrameSink for WriteGuard<'_> {
    /// Sends the whole message (`writer_streams` is false, so `first` and `fin` are both set).
    fn poll_send_frame(
        &mut self,
        cx: &mut Context<'_>,
        ty: MessageType,
        payload: &[u8],
        first: bool,
        fin: bool,
    ) -> Poll<Result<()>> {
        let rx = match &mut self.pending {
            Some(rx) => rx,
            None => {
                if !(first && fin) {
                    return Poll::Ready(Err(Error::new(
                        ErrorKind::InvalidArgument,
                        "the browser sends whole messages only",
                    )));
                }
                // As in `write`: not before an earlier write's message has left the driver.
                std::task::ready!(self.conn.shared.poll_driver_idle(cx))?;
                let msg = match ty {
                    MessageType::Binary => Message::Binary(Bytes::copy_from_slice(payload)),
                    MessageType::Text => match std::str::from_utf8(payload) {
                        Ok(t) => Message::Text(t.to_owned()),
                        Err(_) => {
                            return Poll::Ready(Err(Error::new(
                                ErrorKind::InvalidArgument,
                                "a text message is not UTF-8",
                            )))
                        }
                    },
                };
                match self.conn.submit(msg) {
                    Ok(rx) => self.pending.insert(rx),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        };
        let reply = std::task::ready!(Pin::new(rx).poll(cx));
        self.pending = None;
        Poll::Ready(self.conn.settle(reply))
    }

    /// A started message can never be finished: fail the connection.
    fn abort_message(&mut self) {
        self.conn
            .shared
            .abort("a message writer failed in the middle of a message");
        let _ = self.conn.cmds.unbounded_send(Command::Abort);
    }
}

/// The future returned by `close_read`.
pub(crate) struct Closed {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Closed").finish_non_exhaustive()
    }
}

impl Future for Closed {
    type Output = Error;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Error> {
        self.shared.poll_end(cx)
    }
}
