//! Reading: frames parsed from the stream (`frame.rs`), the receive rules of RFC 6455 (frame
//! sequence, read limit, UTF-8 as it arrives), messages assembled, pings answered and pongs
//! handed to `ping.rs`. What ends the connection is handed to `close.rs`.
//!
//! Locks: the caller holds `read` (the `ReadState`); this module takes `io` within one poll,
//! and `write.out` (through `write.rs`) to queue a pong.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

use super::deflate::{InflateError, Inflater};
use super::utf8::{growth_within, Utf8Text};
use super::{lock, Shared};
use crate::close::{CloseFrame, StatusCode};
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;
use crate::native::closing::{already_closed, Closer};
use crate::native::frame::{self, FrameError, OpCode};

/// Bytes read at once, into a stack buffer, when no frame is partly received.
const STACK_READ: usize = 8 << 10;
/// The most a partly received frame grows the read buffer by at once, so a header that
/// claims a large (allowed) length commits memory only as the bytes arrive. (Reserving a whole
/// 1 MiB frame at once was tried: 60% more client CPU per 1 MiB echo here, from fresh pages.)
const READ_CHUNK: usize = 256 << 10;

/// The reader's state: everything a read has made progress on, so a dropped read loses
/// nothing.
#[derive(Debug, Default)]
pub(super) struct ReadState {
    /// Received bytes not consumed yet (empty, and unallocated, between messages).
    buf: BytesMut,
    /// The frame whose header is consumed and whose payload is being received.
    frame: Option<InFrame>,
    /// A fragmented message being received.
    partial: Option<Partial>,
    /// The text message being received, checked as it arrives (across pieces of a frame and
    /// across fragments).
    text: Utf8Text,
    /// A pong was queued: reading waits until it is written (backpressure on ping floods).
    pong_target: Option<u64>,
    /// permessage-deflate's decompressor, when it was agreed.
    inflater: Option<Box<Inflater>>,
    /// The message being received is compressed (its first frame had RSV1): its frames are
    /// inflated as they arrive into `partial` (or `text`).
    compressed: bool,
}

/// A frame being received, after its header.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    /// Part of a text message: its payload goes through the UTF-8 check as it arrives.
    text: bool,
    /// Part of a compressed message: its payload is inflated as it arrives.
    compressed: bool,
    /// Payload bytes still to come.
    left: usize,
    /// Payload bytes already consumed (a text frame's, as they arrived): the mask's offset.
    done: usize,
}

/// A fragmented message being received.
#[derive(Debug)]
enum Partial {
    /// Its text so far is in `ReadState::text`.
    Text,
    Binary(Vec<u8>),
}

/// What one step of reading produced.
pub(super) enum Step {
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

impl ReadState {
    /// The state of a new connection, with what was read past the handshake and the
    /// decompressor if permessage-deflate was agreed.
    pub(super) fn new(leftover: &[u8], inflater: Option<Box<Inflater>>) -> Self {
        ReadState {
            buf: BytesMut::from(leftover),
            inflater,
            ..ReadState::default()
        }
    }

    /// Bytes of the fragmented message received so far.
    fn partial_len(&self) -> usize {
        match &self.partial {
            None => 0,
            Some(Partial::Text) => self.text.len(),
            Some(Partial::Binary(data)) => data.len(),
        }
    }

    /// The rules a frame's header alone decides, given the message in progress (RFC 6455
    /// 5.4): a data frame may not start while a fragmented message is open, a continuation
    /// frame only continues one, and the fragments together stay within `limit`.
    fn check_sequence(&self, h: &frame::Header, limit: usize) -> Option<Step> {
        match (h.opcode, &self.partial) {
            (OpCode::Text | OpCode::Binary, Some(_)) => Some(protocol_error(
                "a new message started before the fragmented one ended",
            )),
            (OpCode::Continue, None) => Some(protocol_error(
                "a continuation frame arrived with no message to continue",
            )),
            // The limit may have been lowered since the earlier fragments arrived. (A compressed
            // message's inflated size is checked as it inflates instead.)
            (OpCode::Continue, Some(_))
                if !self.compressed && h.len > limit.saturating_sub(self.partial_len()) =>
            {
                let total = (self.partial_len() as u64).saturating_add(h.len as u64);
                Some(too_big(format!(
                    "a fragmented message of at least {total} bytes exceeds the read limit of \
                     {limit}; closed with 1009"
                )))
            }
            _ => None,
        }
    }
}

impl ReadState {
    /// Inflates the next compressed bytes of the message being received into its text or
    /// binary output, counting the inflated bytes against `limit` as they come; with `fin`,
    /// the message ends. `Some` ends the read: 1009 past the limit, 1007 for invalid UTF-8 or
    /// data that does not inflate.
    fn inflate_piece(&mut self, piece: &[u8], fin: bool, limit: usize) -> Option<Step> {
        #[derive(Clone, Copy)]
        enum Refusal {
            TooBig,
            Utf8,
        }
        let mut refusal = Refusal::TooBig;
        let (Some(inflater), Some(partial)) = (self.inflater.as_deref_mut(), self.partial.as_mut())
        else {
            return Some(protocol_error(
                "compressed data arrived outside a compressed message",
            ));
        };
        let res = match partial {
            Partial::Text => {
                let text = &mut self.text;
                inflater.inflate(piece, fin, |b| {
                    if b.len() > limit.saturating_sub(text.len()) {
                        return false;
                    }
                    text.reserve_within(b.len(), limit);
                    let ok = text.feed(b);
                    if !ok {
                        refusal = Refusal::Utf8;
                    }
                    ok
                })
            }
            Partial::Binary(data) => inflater.inflate(piece, fin, |b| {
                if b.len() > limit.saturating_sub(data.len()) {
                    return false;
                }
                if let Some(more) = growth_within(data.len(), data.capacity(), b.len(), limit) {
                    data.reserve_exact(more);
                }
                data.extend_from_slice(b);
                true
            }),
        };
        match res {
            Ok(()) => None,
            Err(InflateError::Corrupt(why)) => Some(Step::Fail {
                err: Error::new(
                    ErrorKind::InvalidData,
                    format!("a compressed message does not inflate ({why}); closed with 1007"),
                ),
                code: StatusCode::INVALID_FRAME_PAYLOAD_DATA,
                reason: "invalid compressed data",
            }),
            Err(InflateError::Refused) => Some(match refusal {
                Refusal::Utf8 => invalid_utf8(),
                Refusal::TooBig => too_big(format!(
                    "a compressed message inflates to more than the read limit of {limit}                      bytes; closed with 1009"
                )),
            }),
        }
    }
}

impl Shared {
    /// The read limit in effect.
    fn limit(&self) -> usize {
        self.read_limit
            .load(Ordering::Relaxed)
            .min(frame::MAX_READ_LIMIT)
    }

    /// Reads the next data message; the caller holds the read lock.
    pub(super) async fn read_locked(&self, rs: &mut ReadState) -> Result<Message> {
        if let Some(t) = self.terminal() {
            return Err(t);
        }
        match poll_fn(|cx| self.poll_step(cx, rs)).await {
            Step::Message(msg) => {
                if rs.buf.is_empty() && rs.buf.capacity() > 0 {
                    // Between messages: hold no buffer (the message keeps what it needs).
                    rs.buf = BytesMut::new();
                }
                // With the peer's next bytes already here, this task's next write may wait
                // for this reader to need the socket (`write.rs`, deferred writes).
                self.reader_returned(!rs.buf.is_empty());
                Ok(msg)
            }
            Step::PeerClose(close) => {
                let frame = close.map(|(code, reason)| CloseFrame {
                    code: StatusCode::from(code),
                    reason,
                });
                // Boxed, as the failure below: rare paths that would otherwise enlarge every
                // read future (which an idle connection's task holds).
                Err(Box::pin(self.on_peer_close(frame)).await)
            }
            Step::Fail { err, code, reason } => {
                Err(Box::pin(self.fail_with_close(err, code, reason)).await)
            }
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
            let f = match rs.frame {
                Some(f) => f,
                None => match self.next_header(rs) {
                    Ok(Some(f)) => f,
                    Ok(None) => {
                        if let Err(step) = ready!(self.poll_more(cx, rs, frame::MAX_HEADER)) {
                            return Poll::Ready(step);
                        }
                        continue;
                    }
                    Err(step) => return Poll::Ready(step),
                },
            };
            if rs.buf.len() < f.left {
                if (f.text || f.compressed) && !rs.buf.is_empty() {
                    // Inflate compressed bytes as they arrive (so memory is bounded by the
                    // read limit, not by what the peer claims), and check text as it arrives,
                    // so invalid UTF-8 fails the connection before the rest of the frame is
                    // read; its characters move to the text.
                    if let Some(key) = f.mask {
                        frame::apply_mask_at(&mut rs.buf, key, f.done);
                    }
                    let piece = std::mem::take(&mut rs.buf);
                    if f.compressed {
                        if let Some(step) = rs.inflate_piece(&piece, false, self.limit()) {
                            return Poll::Ready(step);
                        }
                    } else if !rs.text.feed(&piece) {
                        return Poll::Ready(invalid_utf8());
                    }
                    let n = piece.len();
                    rs.buf = piece;
                    rs.buf.clear();
                    rs.frame = Some(InFrame {
                        left: f.left - n,
                        done: f.done + n,
                        ..f
                    });
                }
                let want = (f.left - rs.buf.len()).min(READ_CHUNK);
                if let Err(step) = ready!(self.poll_more(cx, rs, want)) {
                    return Poll::Ready(step);
                }
                continue;
            }
            rs.frame = None;
            let mut payload = if rs.buf.len() == f.left {
                // The frame is all that is buffered (the usual case): take the buffer whole;
                // splitting it would make it shared, an allocation per message.
                std::mem::take(&mut rs.buf)
            } else {
                rs.buf.split_to(f.left)
            };
            if let Some(key) = f.mask {
                frame::apply_mask_at(&mut payload, key, f.done);
            }
            self.received.fetch_add(1, Ordering::Relaxed);
            if let Some(step) = self.on_frame(rs, f, payload, self.limit()) {
                return Poll::Ready(step);
            }
        }
    }

    /// Parses and consumes the next frame's header, if it is all there, deciding everything
    /// the header alone decides before any payload is read.
    fn next_header(&self, rs: &mut ReadState) -> std::result::Result<Option<InFrame>, Step> {
        let limit = self.limit();
        // A compressed message's continuation frames carry compressed bytes too.
        let frame_limit = if rs.compressed {
            frame::compressed_limit(limit)
        } else {
            limit
        };
        let deflate = rs.inflater.is_some();
        let h = match frame::parse_header_with(&rs.buf, self.role, frame_limit, deflate) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(FrameError::Protocol(why)) => return Err(protocol_error(why)),
            Err(FrameError::TooBig { claimed, limit }) => {
                return Err(too_big(format!(
                    "a frame of {claimed} bytes exceeds the read limit of {limit}; closed with \
                     1009"
                )))
            }
        };
        if let Some(step) = rs.check_sequence(&h, limit) {
            return Err(step);
        }
        rs.buf.advance(h.size);
        if h.rsv1 {
            // A compressed message: its output collects from its first byte on.
            rs.compressed = true;
            rs.partial = Some(match h.opcode {
                OpCode::Text => Partial::Text,
                _ => Partial::Binary(Vec::new()),
            });
        }
        let text = match h.opcode {
            OpCode::Text => true,
            OpCode::Continue => matches!(rs.partial, Some(Partial::Text)),
            _ => false,
        };
        let f = InFrame {
            fin: h.fin,
            opcode: h.opcode,
            mask: h.mask,
            text,
            compressed: rs.compressed && !h.opcode.is_control(),
            left: h.len,
            done: 0,
        };
        rs.frame = Some(f);
        Ok(Some(f))
    }

    /// Reads more bytes into `rs.buf`, `want` more at most; `Err` with the step that ends the
    /// read if the stream ended or failed.
    fn poll_more(
        &self,
        cx: &mut Context<'_>,
        rs: &mut ReadState,
        want: usize,
    ) -> Poll<std::result::Result<(), Step>> {
        let lost = match ready!(self.poll_fill(cx, rs, want)) {
            Ok(0) => Error::new(
                ErrorKind::ConnectionLost,
                "the peer ended the connection without a close frame",
            ),
            Ok(_) => return Poll::Ready(Ok(())),
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::ConnectionReset {
                    "the peer reset the connection without a close frame"
                } else {
                    "read failed"
                };
                Error::with_source(ErrorKind::ConnectionLost, why, e)
            }
        };
        let err = if self.close.aborted() {
            already_closed()
        } else {
            lost
        };
        Poll::Ready(Err(Step::Lost(err)))
    }

    /// Reads more bytes into `rs.buf`: onto the stack first when nothing is buffered and no
    /// frame is under way (so an idle connection holds no buffer), else straight into the
    /// buffer, `want` more at most. Before it waits (the socket has nothing), what deferred
    /// writes queued goes out; while the peer's bytes keep arriving they keep gathering (up to
    /// `write::DEFER_MAX`), so a burst larger than one read is still answered in one write.
    fn poll_fill(
        &self,
        cx: &mut Context<'_>,
        rs: &mut ReadState,
        want: usize,
    ) -> Poll<std::io::Result<usize>> {
        self.reader_waker.register(cx.waker());
        let polled = {
            let mut io = lock(&self.io);
            if rs.buf.is_empty() && rs.frame.is_none() {
                let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
                let mut rb = ReadBuf::uninit(&mut stack);
                Pin::new(&mut *io).poll_read(cx, &mut rb).map_ok(|()| {
                    rs.buf.extend_from_slice(rb.filled());
                    rb.filled().len()
                })
            } else {
                rs.buf.reserve(want.max(STACK_READ));
                tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut rs.buf)
            }
        };
        if polled.is_pending() {
            // Taken after `io` is released: `write.out` comes before it in the lock order.
            self.poll_deferred(cx);
        }
        polled
    }

    /// Handles one complete frame (its header already checked by `check_sequence`); `Some`
    /// ends the read.
    fn on_frame(
        &self,
        rs: &mut ReadState,
        f: InFrame,
        payload: BytesMut,
        limit: usize,
    ) -> Option<Step> {
        match f.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continue if f.compressed => {
                on_compressed(rs, f, &payload, limit)
            }
            OpCode::Text | OpCode::Binary | OpCode::Continue => on_data(rs, f, payload),
            OpCode::Ping => {
                if !self.close.close_sent() {
                    match self.enqueue(true, OpCode::Pong, &payload) {
                        Ok(target) => rs.pong_target = Some(target),
                        Err(e) => return Some(Step::Lost(e)),
                    }
                }
                None
            }
            OpCode::Pong => {
                self.pings.on_pong(&payload);
                None
            }
            OpCode::Close => Some(match frame::parse_close(&payload) {
                Ok(close) => Step::PeerClose(close),
                Err(bad) => {
                    let invalid = bad.code == StatusCode::INVALID_FRAME_PAYLOAD_DATA;
                    let (kind, reason) = if invalid {
                        (ErrorKind::InvalidData, "invalid UTF-8")
                    } else {
                        (ErrorKind::Protocol, "protocol error")
                    };
                    Step::Fail {
                        err: Error::new(
                            kind,
                            format!("{}; closed with {}", bad.why, bad.code.as_u16()),
                        ),
                        code: bad.code,
                        reason,
                    }
                }
            }),
        }
    }
}

/// A compressed message's frame, complete (its earlier pieces were inflated as they
/// arrived): the rest is inflated, and with the final frame the message is done.
fn on_compressed(rs: &mut ReadState, f: InFrame, payload: &[u8], limit: usize) -> Option<Step> {
    if let Some(step) = rs.inflate_piece(payload, f.fin, limit) {
        return Some(step);
    }
    if !f.fin {
        return None;
    }
    rs.compressed = false;
    Some(match rs.partial.take() {
        Some(Partial::Text) => match rs.text.take() {
            Some(t) => Step::Message(Message::Text(t)),
            None => invalid_utf8(),
        },
        Some(Partial::Binary(data)) => Step::Message(Message::Binary(Bytes::from(data))),
        None => protocol_error("a compressed message ended that had not started"),
    })
}

/// A complete data frame: a message, or one more fragment of one.
fn on_data(rs: &mut ReadState, f: InFrame, payload: BytesMut) -> Option<Step> {
    if f.text {
        if f.fin && f.opcode == OpCode::Text && f.done == 0 {
            // A text message in one frame that arrived at once: checked once, as it becomes
            // a `String` (without a copy).
            return Some(match String::from_utf8(Vec::from(payload)) {
                Ok(t) => Step::Message(Message::Text(t)),
                Err(_) => invalid_utf8(),
            });
        }
        if !rs.text.feed(&payload) {
            return Some(invalid_utf8());
        }
        if !f.fin {
            rs.partial = Some(Partial::Text);
            return None;
        }
        rs.partial = None;
        return Some(match rs.text.take() {
            Some(t) => Step::Message(Message::Text(t)),
            None => invalid_utf8(),
        });
    }
    match (rs.partial.take(), f.fin) {
        (Some(Partial::Binary(mut data)), fin) => {
            data.extend_from_slice(&payload);
            if fin {
                return Some(Step::Message(Message::Binary(Bytes::from(data))));
            }
            rs.partial = Some(Partial::Binary(data));
            None
        }
        (_, true) => Some(Step::Message(Message::Binary(payload.freeze()))),
        (_, false) => {
            rs.partial = Some(Partial::Binary(Vec::from(payload)));
            None
        }
    }
}

/// The step that fails the connection with 1002.
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

/// The step that fails the connection with 1009.
fn too_big(message: String) -> Step {
    Step::Fail {
        err: Error::new(ErrorKind::MessageTooBig, message),
        code: StatusCode::MESSAGE_TOO_BIG,
        reason: "message too big",
    }
}

/// The step that fails the connection with 1007.
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll};

    use super::super::testing::{bounded, close_payload, frame, next_frame, pair, send};
    use crate::backend::Engine;
    use crate::error::ErrorKind;
    use crate::message::Message;
    use crate::native::frame::{OpCode, Role};

    #[tokio::test]
    async fn text_split_into_single_bytes_and_fragments_is_assembled_once() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            let text = "h\u{e9}llo \u{20ac} \u{1f600} end";
            // One frame, one byte at a time: each piece goes through the check as it comes.
            let whole = frame(Role::Server, true, OpCode::Text, text.as_bytes());
            let read = tokio::spawn(async move {
                let first = conn.read().await;
                (conn, first)
            });
            for b in &whole {
                send(&mut peer, std::slice::from_ref(b)).await;
                tokio::task::yield_now().await;
            }
            let (conn, first) = read.await.expect("read task");
            assert_eq!(first.expect("read"), Message::Text(text.to_owned()));
            // Three fragments that split the emoji and the euro sign.
            let bytes = text.as_bytes();
            let (a, rest) = bytes.split_at(9);
            let (b, c) = rest.split_at(7);
            let mut wire = frame(Role::Server, false, OpCode::Text, a);
            wire.extend(frame(Role::Server, false, OpCode::Continue, b));
            wire.extend(frame(Role::Server, true, OpCode::Continue, c));
            send(&mut peer, &wire).await;
            assert_eq!(
                conn.read().await.expect("read"),
                Message::Text(text.to_owned())
            );
        })
        .await;
    }

    #[tokio::test]
    async fn invalid_utf8_fails_with_1007_before_the_frame_ends() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            let mut payload = b"fine so far \xFF".to_vec();
            payload.resize(1000, b'x');
            let wire = frame(Role::Server, true, OpCode::Text, &payload);
            // Header and the first 20 payload bytes only: the rest never comes.
            send(&mut peer, &wire[..wire.len() - 980]).await;
            let err = conn.read().await.expect_err("invalid text");
            assert_eq!(err.kind(), ErrorKind::InvalidData);
            let (fin, opcode, body) = next_frame(&mut peer).await;
            assert!(fin);
            assert_eq!(opcode, 8);
            assert_eq!(&body[..2], &1007u16.to_be_bytes());
        })
        .await;
    }

    #[tokio::test]
    async fn a_ping_between_fragments_is_answered_and_the_message_kept_whole() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Client, 1 << 20);
            let mut wire = frame(Role::Client, false, OpCode::Binary, b"abc");
            wire.extend(frame(Role::Client, true, OpCode::Ping, b"are you there"));
            wire.extend(frame(Role::Client, true, OpCode::Continue, b"def"));
            send(&mut peer, &wire).await;
            assert_eq!(
                conn.read().await.expect("read"),
                Message::Binary(bytes::Bytes::from_static(b"abcdef"))
            );
            let (fin, opcode, body) = next_frame(&mut peer).await;
            assert!(fin);
            assert_eq!(opcode, 0xA);
            assert_eq!(body, b"are you there");
            assert_eq!(conn.received_count(), 3);
        })
        .await;
    }

    #[tokio::test]
    async fn a_fragment_past_the_limit_fails_with_1009_from_its_header() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 10);
            let mut wire = frame(Role::Server, false, OpCode::Text, b"12345678");
            let next = frame(Role::Server, true, OpCode::Continue, b"abc");
            // The continuation's header only (2 bytes + 4 of mask): its payload never comes.
            wire.extend_from_slice(&next[..6]);
            send(&mut peer, &wire).await;
            let err = conn.read().await.expect_err("too big");
            assert_eq!(err.kind(), ErrorKind::MessageTooBig);
            let (_, opcode, body) = next_frame(&mut peer).await;
            assert_eq!(opcode, 8);
            assert_eq!(&body[..2], &1009u16.to_be_bytes());
        })
        .await;
    }

    #[tokio::test]
    async fn a_dropped_read_loses_nothing_and_no_buffer_is_held_between_messages() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            let text = "x\u{e9}".repeat(5000);
            let wire = frame(Role::Server, true, OpCode::Text, text.as_bytes());
            send(&mut peer, &wire[..wire.len() / 2]).await;
            {
                // Poll a read until it has taken the half that arrived, then drop it.
                let mut read = Box::pin(conn.read());
                let mut cx = Context::from_waker(std::task::Waker::noop());
                for _ in 0..10 {
                    assert!(matches!(read.as_mut().poll(&mut cx), Poll::Pending));
                    tokio::task::yield_now().await;
                }
            }
            send(&mut peer, &wire[wire.len() / 2..]).await;
            assert_eq!(conn.read().await.expect("read"), Message::Text(text));
            let rs = conn.shared.read.lock().await;
            assert_eq!(rs.buf.capacity(), 0, "read buffer held between messages");
            assert_eq!(rs.text.len(), 0);
            assert!(rs.frame.is_none() && rs.partial.is_none());
        })
        .await;
    }

    #[tokio::test]
    async fn a_peer_close_ends_every_later_read_with_the_same_error() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Client, 1 << 20);
            send(
                &mut peer,
                &frame(
                    Role::Client,
                    true,
                    OpCode::Close,
                    &close_payload(4000, "bye"),
                ),
            )
            .await;
            for _ in 0..2 {
                let err = conn.read().await.expect_err("closed");
                assert_eq!(err.kind(), ErrorKind::Closed);
                let close = err.close_frame().expect("close frame");
                assert_eq!((close.code.as_u16(), &close.reason[..]), (4000, "bye"));
            }
        })
        .await;
    }
}
