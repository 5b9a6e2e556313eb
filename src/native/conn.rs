//! The native connection: a tokio-tungstenite `WebSocketStream` shared by `&self` methods.
//!
//! Locking: `ws` (a std mutex) is held only inside a single `poll_*` call, never across an
//! await, so the reader and the writers make progress independently (tokio-tungstenite wakes
//! both directions). `read_lock` admits one reader at a time; `write_lock` keeps whole
//! messages from interleaving. Control frames (close, ping) do not take `write_lock`: RFC 6455
//! lets them go between the frames of a message.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::task::AtomicWaker;
use futures_util::Sink;
use tokio::sync::{oneshot, Notify};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame as TCloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as TMessage};
use tokio_tungstenite::WebSocketStream;

use super::io::Transport;
use crate::close::{CloseFrame, StatusCode};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageType};

type Ws = WebSocketStream<Transport>;

/// tungstenite's read buffer: 8 KiB instead of its 128 KiB default keeps idle connections
/// small; larger messages still arrive whole (the buffer refills).
const READ_BUFFER_SIZE: usize = 8 << 10;

/// Settings fixed when a connection is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) read_limit: usize,
    pub(crate) close_timeout: Duration,
}

impl Settings {
    pub(crate) fn ws_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_SIZE)
            .max_message_size(Some(self.read_limit))
            .max_frame_size(Some(self.read_limit))
    }
}

#[derive(Debug, Default)]
struct State {
    /// `close` or `close_now` was called: writes now fail with `AlreadyClosed`.
    user_closed: bool,
    /// The transport was dropped by `close_now`, `Drop` or a finished close.
    aborted: bool,
    /// The peer's close frame, once received.
    peer_close: Option<CloseFrame>,
    /// What every read returns from now on.
    terminal: Option<Error>,
}

struct Shared {
    ws: Mutex<Ws>,
    read_lock: tokio::sync::Mutex<()>,
    write_lock: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// Woken on every change of `state`.
    changed: Notify,
    reader_waker: AtomicWaker,
    writer_waker: AtomicWaker,
    read_limit: AtomicUsize,
    settings: Settings,
    ping_seq: AtomicU64,
    pings: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    /// Frames of any kind read so far (data, ping, pong, close): the heartbeat's sign of life.
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

impl Conn {
    pub(crate) fn new(ws: Ws, subprotocol: Option<String>, settings: Settings) -> Self {
        Conn {
            shared: Arc::new(Shared {
                ws: Mutex::new(ws),
                read_lock: tokio::sync::Mutex::new(()),
                write_lock: tokio::sync::Mutex::new(()),
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                reader_waker: AtomicWaker::new(),
                writer_waker: AtomicWaker::new(),
                read_limit: AtomicUsize::new(settings.read_limit),
                settings,
                ping_seq: AtomicU64::new(0),
                pings: Mutex::new(HashMap::new()),
                received: AtomicU64::new(0),
            }),
            subprotocol,
        }
    }

    /// Wraps a stream that has completed the HTTP upgrade.
    pub(crate) async fn from_upgraded(
        transport: Transport,
        leftover: Vec<u8>,
        role: Role,
        subprotocol: Option<String>,
        settings: Settings,
    ) -> Self {
        let ws = WebSocketStream::from_partially_read(
            transport,
            leftover,
            role,
            Some(settings.ws_config()),
        )
        .await;
        Conn::new(ws, subprotocol, settings)
    }

    pub(crate) async fn read(&self) -> Result<Message> {
        let _guard = self.shared.read_lock.lock().await;
        self.shared.read_locked().await
    }

    pub(crate) async fn write(&self, msg: Message) -> Result<()> {
        let _guard = self.shared.write_lock.lock().await;
        self.shared.check_writable()?;
        let msg = match msg {
            Message::Text(t) => TMessage::text(t),
            Message::Binary(b) => TMessage::Binary(b),
        };
        let shared = &self.shared;
        let res = async {
            poll_fn(|cx| shared.poll_ready(cx, &shared.writer_waker)).await?;
            shared.start_send(msg)?;
            poll_fn(|cx| shared.poll_flush(cx, &shared.writer_waker)).await
        }
        .await;
        res.map_err(|e| shared.write_error(e))
    }

    pub(crate) async fn writer(&self) -> Result<WriteGuard<'_>> {
        let guard = self.shared.write_lock.lock().await;
        self.shared.check_writable()?;
        Ok(WriteGuard {
            shared: &self.shared,
            _guard: guard,
            sent: false,
        })
    }

    pub(crate) async fn close(&self, code: StatusCode, reason: &str) -> Result<()> {
        let shared = &self.shared;
        {
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
        }
        let timeout = shared.settings.close_timeout;
        if lock(&shared.state).peer_close.is_none() {
            let frame = TCloseFrame {
                code: CloseCode::from(code.as_u16()),
                reason: reason.into(),
            };
            match tokio::time::timeout(timeout, shared.send_control(TMessage::Close(Some(frame))))
                .await
            {
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
                let _guard = shared.read_lock.lock().await;
                if let Ok(msg) = shared.read_locked().await {
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
        lock(&shared.pings).insert(id, tx);
        // Removes the waiter however this future ends (pong, error, or drop).
        struct Unregister<'a>(&'a Shared, u64);
        impl Drop for Unregister<'_> {
            fn drop(&mut self) {
                lock(&self.0.pings).remove(&self.1);
            }
        }
        let _unregister = Unregister(shared, id);
        shared
            .send_control(TMessage::Ping(Bytes::copy_from_slice(&id.to_be_bytes())))
            .await?;
        tokio::select! {
            r = rx => r.map_err(|_| Error::new(ErrorKind::ConnectionLost, "connection ended before the pong")),
            e = shared.wait_terminal() => Err(e),
        }
    }

    pub(crate) fn set_read_limit(&self, bytes: usize) {
        let cap = self.shared.settings.read_limit;
        self.shared
            .read_limit
            .store(bytes.min(cap), Ordering::Relaxed);
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

impl Shared {
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<TMessage, WsError>>> {
        self.reader_waker.register(cx.waker());
        Pin::new(&mut *lock(&self.ws)).poll_next(cx)
    }

    fn poll_ready(&self, cx: &mut Context<'_>, waker: &AtomicWaker) -> Poll<Result<(), WsError>> {
        waker.register(cx.waker());
        Pin::new(&mut *lock(&self.ws)).poll_ready(cx)
    }

    fn start_send(&self, msg: TMessage) -> Result<(), WsError> {
        Pin::new(&mut *lock(&self.ws)).start_send(msg)
    }

    fn poll_flush(&self, cx: &mut Context<'_>, waker: &AtomicWaker) -> Poll<Result<(), WsError>> {
        waker.register(cx.waker());
        Pin::new(&mut *lock(&self.ws)).poll_flush(cx)
    }

    /// Sends a control frame without the message-level write lock (RFC 6455 allows control
    /// frames between the frames of a fragmented message). Gives up if the connection is
    /// aborted meanwhile.
    async fn send_control(&self, msg: TMessage) -> Result<()> {
        let waker = AtomicWaker::new();
        let send = async {
            poll_fn(|cx| self.poll_ready(cx, &waker)).await?;
            self.start_send(msg)?;
            poll_fn(|cx| self.poll_flush(cx, &waker)).await
        };
        tokio::select! {
            r = send => r.map_err(|e| self.write_error(e)),
            _ = self.wait_aborted() => Err(Error::new(ErrorKind::AlreadyClosed, "the connection was closed locally")),
        }
    }

    /// `AlreadyClosed` after `close`/`close_now`/drop; otherwise the error that ended the
    /// connection (the peer's close, a failure), as `read` reports it.
    fn check_writable(&self) -> Result<()> {
        let st = lock(&self.state);
        if st.user_closed {
            return Err(Error::new(
                ErrorKind::AlreadyClosed,
                "cannot write: the connection was closed by this side",
            ));
        }
        if let Some(t) = &st.terminal {
            return Err(t.clone());
        }
        if st.aborted {
            return Err(Error::new(
                ErrorKind::AlreadyClosed,
                "cannot write: the connection was closed by this side",
            ));
        }
        Ok(())
    }

    /// Turns a tungstenite write error into the error the caller should see.
    fn write_error(&self, e: WsError) -> Error {
        let st = lock(&self.state);
        if st.user_closed {
            return Error::new(
                ErrorKind::AlreadyClosed,
                "cannot write: the connection was closed by this side",
            );
        }
        if let Some(t) = &st.terminal {
            return t.clone();
        }
        if st.aborted {
            return Error::new(
                ErrorKind::AlreadyClosed,
                "cannot write: the connection was closed by this side",
            );
        }
        if let Some(f) = &st.peer_close {
            return Error::closed(f.clone());
        }
        match e {
            WsError::Io(io) => Error::with_source(ErrorKind::ConnectionLost, "write failed", io),
            WsError::ConnectionClosed | WsError::AlreadyClosed => {
                Error::new(ErrorKind::ConnectionLost, "the connection is closed")
            }
            WsError::Protocol(ProtocolError::SendAfterClosing) => {
                Error::new(ErrorKind::AlreadyClosed, "the close handshake has started")
            }
            other => Error::with_source(ErrorKind::ConnectionLost, "write failed", other),
        }
    }

    /// Reads the next data message; the caller holds `read_lock`.
    async fn read_locked(&self) -> Result<Message> {
        loop {
            if let Some(t) = lock(&self.state).terminal.clone() {
                return Err(t);
            }
            let next = poll_fn(|cx| self.poll_next(cx)).await;
            if let Some(Ok(_)) = next {
                self.received.fetch_add(1, Ordering::Relaxed);
            }
            match next {
                Some(Ok(TMessage::Text(t))) => {
                    self.check_read_limit(t.len()).await?;
                    // Already validated by tungstenite; the allocation is reused when unshared.
                    let bytes = Vec::from(Bytes::from(t));
                    let text = String::from_utf8(bytes)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                    return Ok(Message::Text(text));
                }
                Some(Ok(TMessage::Binary(b))) => {
                    self.check_read_limit(b.len()).await?;
                    return Ok(Message::Binary(b));
                }
                Some(Ok(TMessage::Ping(_))) => {
                    // tungstenite queued the pong; push it out now rather than on the next write.
                    let _ = poll_fn(|cx| self.poll_flush(cx, &self.reader_waker)).await;
                }
                Some(Ok(TMessage::Pong(p))) => {
                    if let Ok(id) = <[u8; 8]>::try_from(&p[..]) {
                        if let Some(tx) = lock(&self.pings).remove(&u64::from_be_bytes(id)) {
                            let _ = tx.send(());
                        }
                    }
                }
                Some(Ok(TMessage::Close(frame))) => {
                    let frame = match frame {
                        Some(f) => CloseFrame {
                            code: StatusCode::from(u16::from(f.code)),
                            reason: f.reason.as_str().to_owned(),
                        },
                        None => CloseFrame {
                            code: StatusCode::NO_STATUS_RCVD,
                            reason: String::new(),
                        },
                    };
                    // Send tungstenite's queued reply (if the peer started the handshake).
                    let _ = tokio::time::timeout(
                        self.settings.close_timeout,
                        poll_fn(|cx| self.poll_flush(cx, &self.reader_waker)),
                    )
                    .await;
                    let err = Error::closed(frame.clone());
                    {
                        let mut st = lock(&self.state);
                        st.peer_close = Some(frame);
                        st.terminal.get_or_insert(err.clone());
                    }
                    self.drop_transport();
                    return Err(err);
                }
                Some(Ok(TMessage::Frame(_))) => {}
                Some(Err(e)) => return Err(self.read_failed(e).await),
                None => {
                    let err = {
                        let mut st = lock(&self.state);
                        let err = if st.aborted || st.user_closed {
                            Error::new(
                                ErrorKind::AlreadyClosed,
                                "the connection was closed by this side",
                            )
                        } else {
                            Error::new(
                                ErrorKind::ConnectionLost,
                                "the peer ended the connection without a close frame",
                            )
                        };
                        st.terminal.get_or_insert(err).clone()
                    };
                    self.drop_transport();
                    return Err(err);
                }
            }
        }
    }

    async fn check_read_limit(&self, len: usize) -> Result<()> {
        let limit = self.read_limit.load(Ordering::Relaxed);
        if len <= limit {
            return Ok(());
        }
        let e = Error::new(
            ErrorKind::MessageTooBig,
            format!("a message of {len} bytes exceeds the read limit of {limit}; closed with 1009"),
        );
        Err(self
            .fail_with_close(e, StatusCode::MESSAGE_TOO_BIG, "message too big")
            .await)
    }

    async fn read_failed(&self, e: WsError) -> Error {
        if let Some(t) = lock(&self.state).terminal.clone() {
            return t;
        }
        let (err, close) = match e {
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => (
                Error::new(
                    ErrorKind::MessageTooBig,
                    format!(
                        "a message of at least {size} bytes exceeds the read limit of \
                         {max_size}; closed with 1009"
                    ),
                ),
                Some((StatusCode::MESSAGE_TOO_BIG, "message too big")),
            ),
            WsError::Capacity(c) => (
                Error::with_source(ErrorKind::MessageTooBig, "closed with 1009", c),
                Some((StatusCode::MESSAGE_TOO_BIG, "message too big")),
            ),
            WsError::Utf8(_) => (
                Error::new(
                    ErrorKind::InvalidData,
                    "a text message was not valid UTF-8; closed with 1007",
                ),
                Some((StatusCode::INVALID_FRAME_PAYLOAD_DATA, "invalid UTF-8")),
            ),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => (
                Error::new(
                    ErrorKind::ConnectionLost,
                    "the peer reset the connection without a close frame",
                ),
                None,
            ),
            WsError::Protocol(p) => (
                Error::with_source(
                    ErrorKind::Protocol,
                    "the peer violated the WebSocket protocol; closed with 1002",
                    p,
                ),
                Some((StatusCode::PROTOCOL_ERROR, "protocol error")),
            ),
            WsError::AttackAttempt => (
                Error::new(
                    ErrorKind::Protocol,
                    "the peer's frames looked like an attack; closed with 1008",
                ),
                Some((StatusCode::POLICY_VIOLATION, "policy violation")),
            ),
            WsError::Io(io) => {
                let aborted = lock(&self.state).aborted;
                if aborted {
                    (
                        Error::new(
                            ErrorKind::AlreadyClosed,
                            "the connection was closed locally",
                        ),
                        None,
                    )
                } else {
                    (
                        Error::with_source(ErrorKind::ConnectionLost, "read failed", io),
                        None,
                    )
                }
            }
            other => (
                Error::with_source(ErrorKind::ConnectionLost, "read failed", other),
                None,
            ),
        };
        match close {
            Some((code, reason)) => self.fail_with_close(err, code, reason).await,
            None => {
                let err = lock(&self.state).terminal.get_or_insert(err).clone();
                self.drop_transport();
                err
            }
        }
    }

    /// Records `err` as the connection's end, sends a close frame with `code` (bounded by the
    /// close timeout), and drops the transport. Returns the recorded error.
    async fn fail_with_close(&self, err: Error, code: StatusCode, reason: &str) -> Error {
        let err = lock(&self.state).terminal.get_or_insert(err).clone();
        self.changed.notify_waiters();
        let frame = TCloseFrame {
            code: CloseCode::from(code.as_u16()),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(
            self.settings.close_timeout,
            self.send_control(TMessage::Close(Some(frame))),
        )
        .await;
        self.drop_transport();
        err
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
                guard = self.read_lock.lock() => {
                    loop {
                        match self.read_locked().await {
                            Ok(_) => continue,
                            Err(e) if e.kind() == ErrorKind::Closed => {
                                drop(guard);
                                return Ok(());
                            }
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

    async fn wait_aborted(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.state).aborted {
                return;
            }
            notified.await;
        }
    }

    /// Drops the socket and wakes everything waiting on the connection.
    fn drop_transport(&self) {
        lock(&self.ws).get_mut().drop_stream();
        lock(&self.state).aborted = true;
        self.changed.notify_waiters();
        self.reader_waker.wake();
        self.writer_waker.wake();
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

/// The message-level write lock held by a `Writer`.
pub(crate) struct WriteGuard<'a> {
    shared: &'a Shared,
    _guard: tokio::sync::MutexGuard<'a, ()>,
    sent: bool,
}

impl std::fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl WriteGuard<'_> {
    /// Sends one frame of the current message; flushes on the final one.
    pub(crate) fn poll_send_frame(
        &mut self,
        cx: &mut Context<'_>,
        ty: MessageType,
        payload: &[u8],
        first: bool,
        fin: bool,
    ) -> Poll<Result<()>> {
        let shared = self.shared;
        if !self.sent {
            if let Err(e) = shared.check_writable() {
                return Poll::Ready(Err(e));
            }
            match shared.poll_ready(cx, &shared.writer_waker) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(shared.write_error(e))),
                Poll::Ready(Ok(())) => {}
            }
            let opcode = match (first, ty) {
                (false, _) => OpCode::Data(Data::Continue),
                (true, MessageType::Text) => OpCode::Data(Data::Text),
                (true, MessageType::Binary) => OpCode::Data(Data::Binary),
            };
            let frame = Frame::message(Bytes::copy_from_slice(payload), opcode, fin);
            if let Err(e) = shared.start_send(TMessage::Frame(frame)) {
                return Poll::Ready(Err(shared.write_error(e)));
            }
            self.sent = true;
        }
        if fin {
            match shared.poll_flush(cx, &shared.writer_waker) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.sent = false;
                    return Poll::Ready(Err(shared.write_error(e)));
                }
                Poll::Ready(Ok(())) => {}
            }
        }
        self.sent = false;
        Poll::Ready(Ok(()))
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
