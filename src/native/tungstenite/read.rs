//! Reading: polling tungstenite's `Stream` within one hold of `ws`, pongs, the read limit
//! checked once a message is whole, and the close code sent for each failure.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{ready, Context, Poll};

use futures_util::Stream;
use tokio_tungstenite::tungstenite::error::{Error as TgError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TgCloseFrame;
use tokio_tungstenite::tungstenite::Message as TgMessage;

use super::send::Gone;
use super::{lock, Shared};
use crate::close::{CloseFrame, StatusCode};
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;
use crate::native::closing::{already_closed, Closer};

/// What tungstenite's error means for the connection: the isosock error, and the close code to
/// send for it (`None`: the transport is gone, nothing to send).
pub(super) fn map_error(e: TgError) -> (Error, Option<(StatusCode, &'static str)>) {
    let (kind, close, what) = match &e {
        TgError::Capacity(_) => (
            ErrorKind::MessageTooBig,
            Some((StatusCode::MESSAGE_TOO_BIG, "message too big")),
            "a received message exceeded the read limit; closed with 1009",
        ),
        TgError::Utf8(_) => (
            ErrorKind::InvalidData,
            Some((StatusCode::INVALID_FRAME_PAYLOAD_DATA, "invalid UTF-8")),
            "a received text message was not UTF-8; closed with 1007",
        ),
        TgError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => (
            ErrorKind::ConnectionLost,
            None,
            "the connection ended without a close frame",
        ),
        TgError::Protocol(_) | TgError::AttackAttempt => (
            ErrorKind::Protocol,
            Some((StatusCode::PROTOCOL_ERROR, "protocol error")),
            "the peer violated RFC 6455; closed with 1002",
        ),
        _ => (
            ErrorKind::ConnectionLost,
            None,
            "the connection failed: tungstenite reported an error",
        ),
    };
    (Error::with_source(kind, what, e), close)
}

impl Shared {
    /// Polls the next item of the stream, within one hold of `ws`.
    fn poll_item(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<std::result::Result<Option<TgMessage>, Gone>> {
        let mut ws = lock(&self.ws);
        let Some(ws) = ws.as_mut() else {
            return Poll::Ready(Err(Gone::Dropped));
        };
        let polled = Pin::new(ws).poll_next(cx);
        if polled.is_pending() {
            // Registered while `ws` is held: `drop_io` takes the stream before it wakes the
            // reader, so it either ran before this poll (seen above) or will wake this one.
            self.read_waker.register(cx.waker());
        }
        match ready!(polled) {
            None => Poll::Ready(Ok(None)),
            Some(Ok(m)) => Poll::Ready(Ok(Some(m))),
            Some(Err(e)) => Poll::Ready(Err(Gone::Failed(e))),
        }
    }

    /// `read`, with `read` held.
    pub(super) async fn read_locked(&self) -> Result<Message> {
        loop {
            if let Some(t) = self.terminal() {
                return Err(t);
            }
            let item = poll_fn(|cx| self.poll_item(cx)).await;
            let msg = match item {
                Ok(Some(msg)) => msg,
                Ok(None) => {
                    // tungstenite saw the end of the stream after the close handshake (or was
                    // already done): a recorded close stays the terminal error.
                    return Err(self.lost(Error::new(
                        ErrorKind::ConnectionLost,
                        "the connection ended without a close frame",
                    )));
                }
                Err(Gone::Dropped) => {
                    return Err(self.terminal().unwrap_or_else(already_closed));
                }
                Err(Gone::Failed(e)) => {
                    let (err, close) = map_error(e);
                    // Boxed, as every ending below: rare paths that would otherwise enlarge
                    // every read future.
                    return Err(match close {
                        Some((code, reason)) => {
                            Box::pin(self.fail_with_close(err, code, reason)).await
                        }
                        None => self.lost(err),
                    });
                }
            };
            self.received.fetch_add(1, Ordering::Relaxed);
            let msg = match msg {
                TgMessage::Text(t) => Message::Text(t.as_str().to_owned()),
                TgMessage::Binary(b) => Message::Binary(b),
                TgMessage::Pong(p) => {
                    self.pings.on_pong(&p);
                    continue;
                }
                // tungstenite queued the pong; the next poll of the stream flushes it.
                TgMessage::Ping(_) | TgMessage::Frame(_) => continue,
                TgMessage::Close(frame) => {
                    let frame = frame.map(|f: TgCloseFrame| CloseFrame {
                        code: StatusCode::from(u16::from(f.code)),
                        reason: f.reason.as_str().to_owned(),
                    });
                    return Err(Box::pin(self.on_peer_close(frame)).await);
                }
            };
            let limit = self.read_limit.load(Ordering::Relaxed);
            if msg.len() > limit {
                return Err(Box::pin(self.over_limit(msg.len(), limit)).await);
            }
            return Ok(msg);
        }
    }

    /// Fails the connection with 1009 for a message of `len` bytes over the current read
    /// limit, `limit` (checked once the message is whole: tungstenite holds the
    /// connection-time limit while it arrives).
    async fn over_limit(&self, len: usize, limit: usize) -> Error {
        let err = Error::new(
            ErrorKind::MessageTooBig,
            format!(
                "a received message of {len} bytes exceeded the read limit of {limit} bytes; \
                 closed with 1009"
            ),
        );
        self.fail_with_close(err, StatusCode::MESSAGE_TOO_BIG, "message too big")
            .await
    }
}
