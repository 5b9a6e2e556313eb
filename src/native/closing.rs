//! The close state machine both engines share: who closed first, the closing handshake (each
//! step bounded by the close timeout), the error every later read and write returns, and
//! dropping the transport. An engine supplies the four things that depend on how it frames
//! ([`Closer`]'s required methods); the rules are written once, here.
//!
//! Locks: `state` is a leaf (nothing is taken while it is held); `changed` wakes everything
//! that waits for a change of it. `await_peer_close` takes the engine's read lock to read on
//! when no other task is reading.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::lock::Mutex as AsyncMutex;
use tokio::sync::Notify;

use crate::close::{CloseFrame, StatusCode};
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;

/// Locks a std mutex of an engine.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover the data if something ever did.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The close state of a connection.
#[derive(Debug, Default)]
pub(crate) struct CloseState {
    state: Mutex<State>,
    /// Woken on every change of `state`.
    changed: Notify,
}

/// Where a connection is in its closing.
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

impl CloseState {
    /// The peer's close frame, once received.
    pub(crate) fn peer_close(&self) -> Option<CloseFrame> {
        lock(&self.state).peer_close.clone()
    }

    /// Whether `close`, `close_now` or a drop ended the connection on this side.
    pub(crate) fn user_closed(&self) -> bool {
        lock(&self.state).user_closed
    }

    /// Whether our close frame is queued (nothing may follow it).
    pub(crate) fn close_sent(&self) -> bool {
        lock(&self.state).close_sent
    }

    /// Whether the transport was dropped.
    pub(crate) fn aborted(&self) -> bool {
        lock(&self.state).aborted
    }

    /// What every read returns once the connection has ended.
    pub(crate) fn terminal(&self) -> Option<Error> {
        lock(&self.state).terminal.clone()
    }

    /// Records that the transport was dropped and wakes everything waiting on the state.
    fn mark_aborted(&self) {
        lock(&self.state).aborted = true;
        self.changed.notify_waiters();
    }
}

/// The error of a write after this side closed.
pub(crate) fn already_closed() -> Error {
    Error::new(
        ErrorKind::AlreadyClosed,
        "cannot write: the connection was closed by this side",
    )
}

/// An engine's connection state, as the close state machine drives it.
///
/// The required methods are the engine's framing; the provided ones are the rules, the same
/// for every engine. Every future is `Send`, so `close_read` can spawn its reader.
pub(crate) trait Closer: Send + Sync + Sized + 'static {
    /// What the read lock guards.
    type ReadState: Send;

    /// The connection's close state.
    fn close_state(&self) -> &CloseState;

    /// How long each step of the closing handshake may take.
    fn close_timeout(&self) -> Duration;

    /// The read lock: one reader at a time.
    fn read_lock(&self) -> &AsyncMutex<Self::ReadState>;

    /// Reads the next data message with the read lock held (the peer's close frame ends it
    /// with `Closed`, through [`Closer::on_peer_close`]).
    fn read_locked(&self, rs: &mut Self::ReadState)
        -> impl Future<Output = Result<Message>> + Send;

    /// Queues our close frame with `code` and `reason` and waits until it is written.
    fn send_close(&self, code: StatusCode, reason: &str)
        -> impl Future<Output = Result<()>> + Send;

    /// Answers the peer's close frame (`None`: it had no payload) and waits until the answer
    /// is written; called at most once, and only if our close frame was not sent first.
    fn answer_close(&self, frame: Option<&CloseFrame>) -> impl Future<Output = ()> + Send;

    /// Drops the stream, closing the socket, and wakes the engine's parked readers and
    /// writers.
    fn drop_io(&self);

    /// `close`: sends our close frame (unless the peer's came first), waits for the peer's,
    /// each bounded by the close timeout, then drops the transport.
    fn close(&self, code: StatusCode, reason: &str) -> impl Future<Output = Result<()>> + Send {
        async move {
            let send = {
                let mut st = lock(&self.close_state().state);
                if st.user_closed {
                    return Err(Error::new(
                        ErrorKind::AlreadyClosed,
                        "close or close_now was already called",
                    ));
                }
                st.user_closed = true;
                if st.peer_close.is_none() {
                    if let Some(term) = &st.terminal {
                        // The connection already failed (lost, too big, ...): nothing to
                        // hand-shake.
                        let term = term.clone();
                        drop(st);
                        self.drop_transport();
                        return Err(term);
                    }
                }
                let send = st.peer_close.is_none() && !st.close_sent;
                st.close_sent = true;
                send
            };
            let timeout = self.close_timeout();
            if send {
                match tokio::time::timeout(timeout, self.send_close(code, reason)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        // The peer may have closed first; that is a completed handshake.
                        if self.close_state().peer_close().is_none() {
                            self.drop_transport();
                            return Err(e);
                        }
                    }
                    Err(_) => {
                        self.drop_transport();
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            format!("could not send the close frame within {timeout:?}"),
                        ));
                    }
                }
            }
            let waited = tokio::time::timeout(timeout, self.await_peer_close()).await;
            self.drop_transport();
            match waited {
                Ok(r) => r,
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!("the peer did not answer the close frame within {timeout:?}"),
                )),
            }
        }
    }

    /// The peer sent its close frame (`None`: no payload, recorded as 1005): answer it
    /// (unless ours went first, bounded by the close timeout), then end. Returns the error
    /// every read returns from now on.
    fn on_peer_close(&self, frame: Option<CloseFrame>) -> impl Future<Output = Error> + Send {
        async move {
            let recorded = frame.clone().unwrap_or(CloseFrame {
                code: StatusCode::NO_STATUS_RCVD,
                reason: String::new(),
            });
            let (reply, err) = {
                let mut st = lock(&self.close_state().state);
                st.peer_close = Some(recorded.clone());
                let err = st.terminal.get_or_insert(Error::closed(recorded)).clone();
                let reply = !st.close_sent;
                st.close_sent = true;
                (reply, err)
            };
            self.close_state().changed.notify_waiters();
            if reply {
                let answered = self.answer_close(frame.as_ref());
                let _ = tokio::time::timeout(self.close_timeout(), answered).await;
            }
            self.drop_transport();
            err
        }
    }

    /// Records `err` as the connection's end, sends a close frame with `code` (bounded by the
    /// close timeout), and drops the transport. Returns the recorded error.
    fn fail_with_close(
        &self,
        err: Error,
        code: StatusCode,
        reason: &str,
    ) -> impl Future<Output = Error> + Send {
        async move {
            let (err, send) = {
                let mut st = lock(&self.close_state().state);
                let err = st.terminal.get_or_insert(err).clone();
                let send = !st.close_sent;
                st.close_sent = true;
                (err, send)
            };
            self.close_state().changed.notify_waiters();
            if send {
                let sent = self.send_close(code, reason);
                let _ = tokio::time::timeout(self.close_timeout(), sent).await;
            }
            self.drop_transport();
            err
        }
    }

    /// The transport ended: record why, drop it.
    fn lost(&self, err: Error) -> Error {
        let err = lock(&self.close_state().state)
            .terminal
            .get_or_insert(err)
            .clone();
        self.drop_transport();
        err
    }

    /// Ends the connection at once with `err` (no handshake); reads and writes return it.
    fn fail(&self, err: Error) {
        lock(&self.close_state().state).terminal.get_or_insert(err);
        self.drop_transport();
    }

    /// `close_now`, a drop, or a writer dropped mid-message: ends the connection at once.
    fn abort(&self, why: &'static str) {
        {
            let mut st = lock(&self.close_state().state);
            st.user_closed = true;
            st.terminal
                .get_or_insert_with(|| Error::new(ErrorKind::AlreadyClosed, why));
        }
        self.drop_transport();
    }

    /// What every read returns once the connection has ended.
    fn terminal(&self) -> Option<Error> {
        self.close_state().terminal()
    }

    /// `AlreadyClosed` after `close`/`close_now`/drop; otherwise the error that ended the
    /// connection (the peer's close, a failure), as `read` reports it.
    fn check_writable(&self) -> Result<()> {
        let st = lock(&self.close_state().state);
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

    /// The error a writer sees when the stream failed under it with `e`: what the close
    /// state says, if it says anything, else `e`.
    fn write_failed(&self, e: Error) -> Error {
        self.closed_error().unwrap_or(e)
    }

    /// What a failed write reports because of the close state: `AlreadyClosed` after this
    /// side closed or the transport was dropped, the terminal error, the peer's close.
    fn closed_error(&self) -> Option<Error> {
        let st = lock(&self.close_state().state);
        if st.user_closed {
            return Some(already_closed());
        }
        if let Some(t) = &st.terminal {
            return Some(t.clone());
        }
        if let Some(f) = &st.peer_close {
            return Some(Error::closed(f.clone()));
        }
        if st.aborted {
            return Some(already_closed());
        }
        None
    }

    /// Waits until the peer's close frame arrived, reading (and discarding data) if no other
    /// task is reading.
    fn await_peer_close(&self) -> impl Future<Output = Result<()>> + Send {
        async move {
            loop {
                let notified = self.close_state().changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let st = lock(&self.close_state().state);
                    if st.peer_close.is_some() {
                        return Ok(());
                    }
                    if let Some(t) = &st.terminal {
                        return Err(t.clone());
                    }
                }
                tokio::select! {
                    mut rs = self.read_lock().lock() => {
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
    }

    /// Resolves once the connection has ended, with the error that describes the ending.
    fn wait_terminal(&self) -> impl Future<Output = Error> + Send {
        async move {
            loop {
                let notified = self.close_state().changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(t) = self.terminal() {
                    return t;
                }
                notified.await;
            }
        }
    }

    /// Drops the transport and wakes everything waiting on the connection.
    fn drop_transport(&self) {
        self.drop_io();
        self.close_state().mark_aborted();
    }
}

/// Starts a background reader that fails the connection with 1008 on a data message; the
/// returned future resolves when the connection has ended.
pub(crate) fn close_read<C: Closer>(shared: &Arc<C>) -> Closed {
    let shared = shared.clone();
    let reading = {
        let shared = shared.clone();
        async move {
            let mut rs = shared.read_lock().lock().await;
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
