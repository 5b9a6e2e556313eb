//! The close state machine: who closed first, the closing handshake (each step bounded by the
//! close timeout), the error every later read and write returns, and dropping the transport.
//!
//! Locks: `state` is a leaf (nothing is taken while it is held); `changed` wakes everything
//! that waits for a change of it. `await_peer_close` takes the `read` lock to read on when no
//! other task is reading.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::{lock, Closed, Shared};
use crate::close::{CloseFrame, StatusCode};
use crate::error::{Error, ErrorKind, Result};
use crate::native::frame::OpCode;

/// The close state of a connection.
#[derive(Debug, Default)]
pub(super) struct CloseState {
    /// Lock 5.
    pub(super) state: Mutex<State>,
    /// Woken on every change of `state`.
    changed: Notify,
}

/// Where a connection is in its closing.
#[derive(Debug, Default)]
pub(super) struct State {
    /// `close`, `close_now` or drop: writes now fail with `AlreadyClosed`.
    pub(super) user_closed: bool,
    /// The transport was dropped.
    aborted: bool,
    /// Our close frame is queued: nothing else may follow it.
    pub(super) close_sent: bool,
    /// The peer's close frame, once received.
    pub(super) peer_close: Option<CloseFrame>,
    /// What every read returns from now on.
    terminal: Option<Error>,
}

/// The error of a write after this side closed.
pub(super) fn already_closed() -> Error {
    Error::new(
        ErrorKind::AlreadyClosed,
        "cannot write: the connection was closed by this side",
    )
}

/// A close frame's payload: the code and the reason (validated by the caller).
fn close_payload(code: StatusCode, reason: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.as_u16().to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// Starts a background reader that fails the connection with 1008 on a data message; the
/// returned future resolves when the connection has ended.
pub(super) fn close_read(shared: &Arc<Shared>) -> Closed {
    let shared = shared.clone();
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

impl Shared {
    /// `close`: sends our close frame (unless the peer's came first), waits for the peer's,
    /// each bounded by the close timeout, then drops the transport.
    pub(super) async fn close(&self, code: StatusCode, reason: &str) -> Result<()> {
        let send = {
            let mut st = lock(&self.close.state);
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
                    self.drop_transport();
                    return Err(term);
                }
            }
            let send = st.peer_close.is_none() && !st.close_sent;
            st.close_sent = true;
            send
        };
        let timeout = self.settings.close_timeout;
        if send {
            let sent = async {
                let target = self.enqueue(true, OpCode::Close, &close_payload(code, reason))?;
                poll_fn(|cx| self.poll_written(cx, target)).await
            };
            match tokio::time::timeout(timeout, sent).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // The peer may have closed first; that is a completed handshake.
                    if lock(&self.close.state).peer_close.is_none() {
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

    /// The peer sent its close frame: answer it (unless ours went first), then end.
    pub(super) async fn on_peer_close(&self, close: Option<(u16, String)>) -> Error {
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
        let (reply, err) = {
            let mut st = lock(&self.close.state);
            st.peer_close = Some(frame.clone());
            let err = st.terminal.get_or_insert(Error::closed(frame)).clone();
            let reply = !st.close_sent;
            st.close_sent = true;
            (reply, err)
        };
        self.close.changed.notify_waiters();
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
    pub(super) async fn fail_with_close(
        &self,
        err: Error,
        code: StatusCode,
        reason: &str,
    ) -> Error {
        let (err, send) = {
            let mut st = lock(&self.close.state);
            let err = st.terminal.get_or_insert(err).clone();
            let send = !st.close_sent;
            st.close_sent = true;
            (err, send)
        };
        self.close.changed.notify_waiters();
        if send {
            self.send_close_bounded(&close_payload(code, reason)).await;
        }
        self.drop_transport();
        err
    }

    /// The transport ended: record why, drop it.
    pub(super) fn lost(&self, err: Error) -> Error {
        let err = lock(&self.close.state).terminal.get_or_insert(err).clone();
        self.drop_transport();
        err
    }

    /// Ends the connection at once with `err` (no handshake); reads and writes return it.
    pub(super) fn fail(&self, err: Error) {
        lock(&self.close.state).terminal.get_or_insert(err);
        self.drop_transport();
    }

    /// `close_now`, a drop, or a writer dropped mid-message: ends the connection at once.
    pub(super) fn abort(&self, why: &'static str) {
        {
            let mut st = lock(&self.close.state);
            st.user_closed = true;
            st.terminal
                .get_or_insert_with(|| Error::new(ErrorKind::AlreadyClosed, why));
        }
        self.drop_transport();
    }

    /// Whether the transport was dropped.
    pub(super) fn aborted(&self) -> bool {
        lock(&self.close.state).aborted
    }

    /// What every read returns once the connection has ended.
    pub(super) fn terminal(&self) -> Option<Error> {
        lock(&self.close.state).terminal.clone()
    }

    /// `AlreadyClosed` after `close`/`close_now`/drop; otherwise the error that ended the
    /// connection (the peer's close, a failure), as `read` reports it.
    pub(super) fn check_writable(&self) -> Result<()> {
        let st = lock(&self.close.state);
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
    pub(super) fn write_failed(&self, e: Error) -> Error {
        let st = lock(&self.close.state);
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

    /// Waits until the peer's close frame arrived, reading (and discarding data) if no other
    /// task is reading.
    async fn await_peer_close(&self) -> Result<()> {
        loop {
            let notified = self.close.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = lock(&self.close.state);
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
    pub(super) async fn wait_terminal(&self) -> Error {
        loop {
            let notified = self.close.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(t) = self.terminal() {
                return t;
            }
            notified.await;
        }
    }

    /// Drops the socket and wakes everything waiting on the connection.
    fn drop_transport(&self) {
        lock(&self.io).drop_stream();
        lock(&self.close.state).aborted = true;
        self.close.changed.notify_waiters();
        self.reader_waker.wake();
        self.write.wake_all();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{bounded, close_payload, frame, next_frame, pair, pair_with, send};
    use super::super::Settings;
    use crate::backend::Engine;
    use crate::close::StatusCode;
    use crate::error::{Error, ErrorKind};
    use crate::message::Message;
    use crate::native::frame::{OpCode, Role};

    #[tokio::test]
    async fn close_sends_the_code_and_returns_once_the_peer_answers() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Client, 1 << 20);
            let closing = tokio::spawn(async move {
                let r = conn.close(StatusCode::from(4001), "done").await;
                (conn, r)
            });
            let (fin, opcode, body) = next_frame(&mut peer).await;
            assert_eq!(
                (fin, opcode, &body[..]),
                (true, 8, &close_payload(4001, "done")[..])
            );
            send(&mut peer, &frame(Role::Client, true, OpCode::Close, &body)).await;
            let (conn, r) = closing.await.expect("close task");
            r.expect("clean close");
            assert!(conn.closed_locally());
            assert_eq!(conn.peer_close_frame().map(|f| f.code.as_u16()), Some(4001));
            let err = conn.write(Message::text("late")).await.expect_err("closed");
            assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
            let err = conn
                .close(StatusCode::NORMAL_CLOSURE, "")
                .await
                .expect_err("twice");
            assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
        })
        .await;
    }

    #[tokio::test]
    async fn a_peer_close_is_echoed_and_writes_then_report_it() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            send(
                &mut peer,
                &frame(
                    Role::Server,
                    true,
                    OpCode::Close,
                    &close_payload(1001, "away"),
                ),
            )
            .await;
            let err = conn.read().await.expect_err("closed");
            assert_eq!(err.kind(), ErrorKind::Closed);
            let (_, opcode, body) = next_frame(&mut peer).await;
            assert_eq!((opcode, &body[..]), (8, &close_payload(1001, "away")[..]));
            let err = conn.write(Message::text("late")).await.expect_err("closed");
            assert_eq!(err.kind(), ErrorKind::Closed);
            assert!(!conn.closed_locally());
        })
        .await;
    }

    #[tokio::test]
    async fn close_fails_with_timeout_when_the_peer_never_answers() {
        bounded(async {
            let settings = Settings {
                close_timeout: Duration::from_millis(100),
                ..super::super::testing::settings(1 << 20)
            };
            let (conn, _peer) = pair_with(Role::Server, settings, 64 << 10);
            let err = conn
                .close(StatusCode::NORMAL_CLOSURE, "")
                .await
                .expect_err("no answer");
            assert_eq!(err.kind(), ErrorKind::Timeout);
        })
        .await;
    }

    #[tokio::test]
    async fn fail_and_close_now_end_the_connection_without_a_handshake() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            conn.fail(Error::new(ErrorKind::Timeout, "heartbeat"));
            assert_eq!(
                conn.read().await.expect_err("failed").kind(),
                ErrorKind::Timeout
            );
            // `close` after a failure reports the failure; nothing was sent to the peer.
            let err = conn
                .close(StatusCode::NORMAL_CLOSURE, "")
                .await
                .expect_err("failed");
            assert_eq!(err.kind(), ErrorKind::Timeout);
            let mut rest = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut rest)
                .await
                .expect("eof");
            assert!(rest.is_empty(), "bytes after fail: {rest:?}");

            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            conn.close_now();
            assert!(conn.closed_locally());
            let err = conn.write(Message::text("x")).await.expect_err("closed");
            assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
            let mut rest = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut rest)
                .await
                .expect("eof");
            assert!(rest.is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn close_read_fails_a_data_message_with_1008_and_resolves() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            let closed = conn.close_read();
            send(
                &mut peer,
                &frame(Role::Server, true, OpCode::Text, b"unexpected"),
            )
            .await;
            let (_, opcode, body) = next_frame(&mut peer).await;
            assert_eq!((opcode, &body[..2]), (8, &1008u16.to_be_bytes()[..]));
            assert_eq!(closed.await.kind(), ErrorKind::Protocol);
        })
        .await;
    }
}
