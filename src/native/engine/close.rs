//! The own engine's part of the close state machine (`native/closing.rs` holds the rules):
//! close frames are queued on the write queue like any control frame, an answer to the peer's
//! close echoes its code and reason (RFC 6455 5.5.1), and dropping the transport wakes the
//! parked reader and writers.

use std::future::poll_fn;
use std::time::Duration;

use futures_util::lock::Mutex as AsyncMutex;

use super::read::ReadState;
use super::{lock, Shared};
use crate::close::{CloseFrame, StatusCode};
use crate::error::Result;
use crate::message::Message;
use crate::native::closing::{CloseState, Closer};
use crate::native::frame::OpCode;

/// A close frame's payload: the code and the reason (validated by the caller).
fn close_payload(code: StatusCode, reason: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.as_u16().to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    payload
}

impl Shared {
    /// Queues a close frame carrying `payload` and waits until it is written.
    async fn write_close(&self, payload: &[u8]) -> Result<()> {
        let target = self.enqueue(true, OpCode::Close, payload)?;
        poll_fn(|cx| self.poll_written(cx, target)).await
    }
}

impl Closer for Shared {
    type ReadState = ReadState;

    fn close_state(&self) -> &CloseState {
        &self.close
    }

    fn close_timeout(&self) -> Duration {
        self.settings.close_timeout
    }

    fn read_lock(&self) -> &AsyncMutex<ReadState> {
        &self.read
    }

    async fn read_locked(&self, rs: &mut ReadState) -> Result<Message> {
        Shared::read_locked(self, rs).await
    }

    async fn send_close(&self, code: StatusCode, reason: &str) -> Result<()> {
        self.write_close(&close_payload(code, reason)).await
    }

    async fn answer_close(&self, frame: Option<&CloseFrame>) {
        // Echo the code and reason (RFC 6455 5.5.1); an empty close gets an empty close.
        let payload = match frame {
            Some(f) => close_payload(f.code, &f.reason),
            None => Vec::new(),
        };
        let _ = self.write_close(&payload).await;
    }

    fn drop_io(&self) {
        lock(&self.io).drop_stream();
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
