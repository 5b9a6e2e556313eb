//! Adapters over a shared [`Conn`]: [`ByteStream`] (`AsyncRead + AsyncWrite` over messages,
//! coder/websocket's `NetConn`), and [`MessageStream`] / [`MessageSink`] (`Stream` and `Sink`
//! of messages, from [`Conn::split`]).
//!
//! Each adapter owns an `Arc<Conn>` and keeps the operation in flight inside itself, so a
//! dropped `poll` (a `select!` branch that lost, a timeout) loses nothing: the next poll
//! continues the same read or write.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_core::{FusedStream, Stream};
use futures_util::Sink;

use crate::close::StatusCode;
use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageType};

/// The default largest message a [`ByteStream`] write sends: 16 KiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 10;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a text write of `data` sends with size cap `max` (at least 1): the whole characters
/// within `max` bytes, or the first character alone if it is longer than `max` (so a write
/// always makes progress); `None` if an invalid byte lies within the cap, or `data` does not
/// start with a whole character.
fn text_prefix(data: &[u8], max: usize) -> Option<&str> {
    let cut = &data[..data.len().min(max)];
    match std::str::from_utf8(cut) {
        Ok(text) => Some(text),
        Err(e) if e.error_len().is_some() => None,
        // The cap cut a character: the whole ones before it.
        Err(e) if e.valid_up_to() > 0 => std::str::from_utf8(&cut[..e.valid_up_to()]).ok(),
        // The cap (or the write) ends inside the first character: that character, if whole.
        Err(_) => {
            let head = &data[..data.len().min(4)];
            let valid = match std::str::from_utf8(head) {
                Ok(s) => s,
                Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
            };
            let first = valid.chars().next()?;
            valid.get(..first.len_utf8())
        }
    }
}

/// Whether a read error is the normal end of the message sequence: the peer closed with 1000
/// (normal closure) or 1001 (going away), or this side closed the connection.
fn is_normal_end(conn: &Conn, e: &Error) -> bool {
    match e.kind() {
        ErrorKind::AlreadyClosed => true,
        ErrorKind::Closed => {
            conn.closed_locally()
                || matches!(
                    crate::close_status(e),
                    Some(StatusCode::NORMAL_CLOSURE | StatusCode::GOING_AWAY)
                )
        }
        _ => false,
    }
}

fn read_future(conn: &Arc<Conn>) -> BoxFuture<Result<Message>> {
    let conn = conn.clone();
    Box::pin(async move { conn.read().await })
}

fn write_future(conn: &Arc<Conn>, msg: Message) -> BoxFuture<Result<()>> {
    let conn = conn.clone();
    Box::pin(async move { conn.write(msg).await })
}

/// An operation on the connection that a [`MessageStream`] or [`MessageSink`] starts again
/// and again (a read, a write): made each time in the same allocation, so reading and writing
/// through the split halves allocates nothing per message (a boxed future per message cost
/// `forward` a fifth more CPU per ping-pong message than `read` + `write`).
struct Reusable<F, M> {
    conn: Arc<Conn>,
    make: M,
    fut: Pin<Box<Option<F>>>,
}

impl<F: Future, M> Reusable<F, M> {
    fn new(conn: Arc<Conn>, make: M) -> Self {
        Reusable {
            conn,
            make,
            fut: Box::pin(None),
        }
    }

    /// Polls the operation in flight; `None` if there is none.
    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let Some(fut) = self.fut.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let out = ready!(fut.poll(cx));
        self.fut.set(None);
        Poll::Ready(Some(out))
    }
}

/// A stream's read, reusable (see [`Reusable`]).
trait ReadOp: Send {
    /// Polls the read in flight, starting one if none is.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message>>;
    /// Drops the read in flight, if any.
    fn cancel(&mut self);
}

impl<F, M> ReadOp for Reusable<F, M>
where
    F: Future<Output = Result<Message>> + Send,
    M: Fn(Arc<Conn>) -> F + Send,
{
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        loop {
            if let Poll::Ready(Some(res)) = self.poll_op(cx) {
                return Poll::Ready(res);
            }
            if self.fut.is_some() {
                return Poll::Pending;
            }
            let fut = (self.make)(self.conn.clone());
            self.fut.set(Some(fut));
        }
    }

    fn cancel(&mut self) {
        self.fut.set(None);
    }
}

fn read_op(conn: Arc<Conn>) -> Box<dyn ReadOp> {
    Box::new(Reusable::new(conn, |conn: Arc<Conn>| async move {
        conn.read().await
    }))
}

/// What a sink hands to the connection at a flush: one message (`write`, no `Vec`), or more.
enum Batch {
    One(Message),
    Many(Vec<Message>),
}

/// A sink's write, reusable (see [`Reusable`]).
trait WriteOp: Send {
    /// Starts writing `batch`; the write before it must be done.
    fn start(&mut self, batch: Batch);
    /// Polls the write in flight; `Ok` at once if there is none.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>>;
    /// Whether a write is in flight.
    fn busy(&self) -> bool;
}

impl<F, M> WriteOp for Reusable<F, M>
where
    F: Future<Output = Result<()>> + Send,
    M: Fn(Arc<Conn>, Batch) -> F + Send,
{
    fn start(&mut self, batch: Batch) {
        let fut = (self.make)(self.conn.clone(), batch);
        self.fut.set(Some(fut));
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(ready!(self.poll_op(cx)).unwrap_or(Ok(())))
    }

    fn busy(&self) -> bool {
        self.fut.is_some()
    }
}

fn write_op(conn: Arc<Conn>) -> Box<dyn WriteOp> {
    Box::new(Reusable::new(
        conn,
        |conn: Arc<Conn>, batch: Batch| async move {
            match batch {
                Batch::One(msg) => conn.write(msg).await,
                Batch::Many(msgs) => conn.write_batch(msgs).await,
            }
        },
    ))
}

/// How much a [`MessageSink`] gathers before `poll_ready` sends it without waiting for a flush.
const SINK_BATCH_BYTES: usize = 64 << 10;
const SINK_BATCH_MESSAGES: usize = 128;

fn close_future(conn: &Arc<Conn>, code: StatusCode, reason: String) -> BoxFuture<Result<()>> {
    let conn = conn.clone();
    Box::pin(async move {
        match conn.close(code, &reason).await {
            // Closing twice, or after `close_now`, is not a failure of this close.
            Err(e) if e.kind() == ErrorKind::AlreadyClosed => Ok(()),
            r => r,
        }
    })
}

/// A [`Conn`] as a byte stream, for tunnelling another protocol over WebSocket
/// (coder/websocket's `NetConn`).
///
/// - **Writing**: each `write` call sends its bytes as one message of the type chosen in
///   [`new`](ByteStream::new), up to [`max_message_size`](ByteStream::max_message_size)
///   (default 16 KiB, within every default read limit): a longer write takes only that much
///   and returns the count, as `AsyncWrite` allows (`write_all` sends the rest). The write
///   completes once the message is queued; its outcome is reported by the next `write`,
///   `flush` or `close`. For [`MessageType::Text`], each write must be valid UTF-8 on its own
///   (a long one is cut at a character boundary).
/// - **Reading**: reads span message boundaries: the stream is the concatenation of the
///   messages' payloads. Empty messages add nothing.
/// - **End**: a close by the peer with 1000 (normal closure) or 1001 (going away), or a close
///   by this side, reads as end-of-file; any other close code, or a failure, is an
///   [`io::Error`] whose inner error is the [`crate::Error`] (`get_ref()` and downcast to
///   reach its kind and close frame).
/// - **Shutdown** (`poll_close` / tokio's `shutdown`): flushes, then closes the connection
///   with 1000 and waits for the peer's close frame, as [`Conn::close`] does. Unlike a TCP
///   half-close, reading then ends too: a WebSocket close handshake discards what the peer
///   still sends, so reads after a shutdown began report end-of-file.
///
/// Implements futures-io's `AsyncRead` and `AsyncWrite` on every target, and tokio's natively.
/// The connection's read limit still applies to each message.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(conn: isosock::Conn) -> std::io::Result<()> {
/// use futures_util::{AsyncReadExt, AsyncWriteExt};
/// use isosock::{ByteStream, MessageType};
///
/// let mut stream = ByteStream::new(conn, MessageType::Binary);
/// stream.write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").await?;
/// let mut head = [0u8; 12];
/// stream.read_exact(&mut head).await?;
/// stream.close().await?;
/// # Ok(()) }
/// ```
pub struct ByteStream {
    conn: Arc<Conn>,
    message_type: MessageType,
    max_message: usize,
    reading: Option<BoxFuture<Result<Message>>>,
    unread: Bytes,
    eof: bool,
    writing: Option<BoxFuture<Result<()>>>,
    closing: Option<BoxFuture<Result<()>>>,
    closed: bool,
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStream")
            .field("message_type", &self.message_type)
            .field("unread", &self.unread.len())
            .field("eof", &self.eof)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl ByteStream {
    /// Wraps `conn` (a [`Conn`] or an `Arc<Conn>` shared with other tasks); writes become
    /// messages of `message_type`.
    pub fn new(conn: impl Into<Arc<Conn>>, message_type: MessageType) -> Self {
        ByteStream {
            conn: conn.into(),
            message_type,
            max_message: DEFAULT_MAX_MESSAGE,
            reading: None,
            unread: Bytes::new(),
            eof: false,
            writing: None,
            closing: None,
            closed: false,
        }
    }

    /// Sets the largest message one write sends, in bytes. Default: 16 KiB
    /// ([`DEFAULT_MAX_MESSAGE`]), below the 32 KiB default read limit of isosock and
    /// coder/websocket peers. Raise it only as far as the peer's read limit allows.
    ///
    /// `0` means 1 (a write always makes progress). There is no upper clamp: with
    /// `usize::MAX` each write call sends its whole buffer as one message. A text stream
    /// cuts a write at a character boundary at or below the size, and sends a character
    /// longer than the size (up to 4 bytes) whole.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message = bytes.max(1);
        self
    }

    /// Returns the connection, for everything else (close with a code, ping, subprotocol).
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    pub(crate) fn poll_read_bytes(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if !self.unread.is_empty() {
                let n = self.unread.len().min(buf.len());
                buf[..n].copy_from_slice(&self.unread[..n]);
                self.unread.advance(n);
                return Poll::Ready(Ok(n));
            }
            if self.eof || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            if self.closed || self.closing.is_some() {
                // Shut down: the close handshake discards incoming data, so a read only helps
                // it along (a new read would take the read lock the close needs) and then
                // reports end-of-file.
                if let Some(fut) = &mut self.closing {
                    let res = ready!(fut.as_mut().poll(cx));
                    self.closing = None;
                    self.closed = true;
                    res?;
                }
                return Poll::Ready(Ok(0));
            }
            let conn = &self.conn;
            let fut = self.reading.get_or_insert_with(|| read_future(conn));
            let res = ready!(fut.as_mut().poll(cx));
            self.reading = None;
            match res {
                Ok(msg) => self.unread = msg.into_bytes(),
                Err(e) if is_normal_end(&self.conn, &e) => self.eof = true,
                Err(e) => return Poll::Ready(Err(io::Error::from(e))),
            }
        }
    }

    /// Drives the write in flight, if any, to completion.
    pub(crate) fn poll_pending_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(fut) = &mut self.writing {
            let res = ready!(fut.as_mut().poll(cx));
            self.writing = None;
            res?;
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_write_bytes(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.closed || self.closing.is_some() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the byte stream was shut down",
            )));
        }
        ready!(self.poll_pending_write(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let msg = match self.message_type {
            MessageType::Binary => Message::Binary(Bytes::copy_from_slice(
                &data[..data.len().min(self.max_message)],
            )),
            MessageType::Text => match text_prefix(data, self.max_message) {
                Some(text) => Message::Text(text.to_owned()),
                None => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a text byte stream was given a write that is not UTF-8 on its own",
                    )))
                }
            },
        };
        let taken = msg.len();
        let mut fut = write_future(&self.conn, msg);
        // Start it now; its outcome, if not ready, is reported by the next write or flush.
        match fut.as_mut().poll(cx) {
            Poll::Ready(res) => res?,
            Poll::Pending => self.writing = Some(fut),
        }
        Poll::Ready(Ok(taken))
    }

    pub(crate) fn poll_shutdown_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_pending_write(cx))?;
        // A read in flight holds the connection's read lock; nobody polls it while we shut
        // down, so `close` could not read the peer's close frame. Reads are cancel-safe:
        // dropping it loses nothing.
        self.reading = None;
        let conn = &self.conn;
        let fut = self
            .closing
            .get_or_insert_with(|| close_future(conn, StatusCode::NORMAL_CLOSURE, String::new()));
        let res = ready!(fut.as_mut().poll(cx));
        self.closing = None;
        self.closed = true;
        Poll::Ready(res.map_err(io::Error::from))
    }
}

impl futures_io::AsyncRead for ByteStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read_bytes(cx, buf)
    }
}

impl futures_io::AsyncWrite for ByteStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_bytes(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_pending_write(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_shutdown_stream(cx)
    }
}

/// The incoming half of [`Conn::split`]: a [`Stream`] of messages.
///
/// Yields `Ok(message)` for each message. It ends (`None`) after the peer closed with 1000
/// (normal closure) or 1001 (going away), or after this side closed the connection (for
/// example with [`MessageSink::close_with`]); the peer's close frame is then in
/// [`Conn::peer_close_frame`]. Any other close code or failure is yielded once as `Err`,
/// then the stream ends. It is a [`FusedStream`].
///
/// Cancel-safe: a read in flight is kept inside the stream, so dropping a `next()` future
/// (in `select!`) loses no message. Closing from the [`MessageSink`] of the same split drops
/// such an idle read first, so the close handshake is not held up by a stream nobody polls.
pub struct MessageStream {
    conn: Arc<Conn>,
    reading: ReadSlot,
    done: bool,
}

/// A stream's read in flight, shared with the sink of the same split so that closing from
/// the sink can drop a read nobody polls (it holds the connection's read lock, which `close`
/// needs to see the peer's close frame).
type ReadSlot = Arc<std::sync::Mutex<Box<dyn ReadOp>>>;

fn clear(slot: &ReadSlot) {
    slot.lock().unwrap_or_else(|e| e.into_inner()).cancel();
}

impl std::fmt::Debug for MessageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl MessageStream {
    /// A stream of the messages of a shared connection (what [`Conn::split`] returns).
    pub fn new(conn: Arc<Conn>) -> Self {
        MessageStream {
            reading: Arc::new(std::sync::Mutex::new(read_op(conn.clone()))),
            conn,
            done: false,
        }
    }

    /// Returns the connection.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

impl Stream for MessageStream {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let res = ready!(this
            .reading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .poll_read(cx));
        Poll::Ready(match res {
            Ok(msg) => Some(Ok(msg)),
            Err(e) => {
                this.done = true;
                (!is_normal_end(&this.conn, &e)).then_some(Err(e))
            }
        })
    }
}

impl FusedStream for MessageStream {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// The outgoing half of [`Conn::split`]: a [`Sink`] of messages (anything that converts into
/// a [`Message`]).
///
/// Messages given to `start_send` (`SinkExt::feed`) are gathered and written together on
/// `poll_flush` (or once 64 KiB or 128 messages are waiting), with one
/// [`write_batch`](Conn::write_batch): `stream.forward(sink)` and `send_all` thus make one
/// system call for all the messages that were ready at once, not one per message.
/// `poll_flush` completes once every message sent was written; `poll_close` (`SinkExt::close`)
/// flushes and closes the connection with 1000. To close with another code or a reason, use
/// [`close_with`](MessageSink::close_with), which gloo-net's split halves cannot do.
pub struct MessageSink {
    conn: Arc<Conn>,
    /// The read slot of the stream from the same split, if any.
    stream_read: Option<ReadSlot>,
    /// The first message sent but not handed to the connection yet; `more` holds the rest
    /// (a flush of one message needs no `Vec`).
    first: Option<Message>,
    more: Vec<Message>,
    batch_bytes: usize,
    writing: Box<dyn WriteOp>,
    closing: Option<BoxFuture<Result<()>>>,
}

impl std::fmt::Debug for MessageSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSink")
            .field("writing", &self.writing.busy())
            .finish_non_exhaustive()
    }
}

impl MessageSink {
    /// A sink into a shared connection (what [`Conn::split`] returns).
    pub fn new(conn: Arc<Conn>) -> Self {
        MessageSink {
            writing: write_op(conn.clone()),
            conn,
            stream_read: None,
            first: None,
            more: Vec::new(),
            batch_bytes: 0,
            closing: None,
        }
    }

    /// The halves of [`Conn::split`], sharing the stream's read slot.
    pub(crate) fn split(conn: Arc<Conn>) -> (MessageSink, MessageStream) {
        let stream = MessageStream::new(conn.clone());
        let mut sink = MessageSink::new(conn);
        sink.stream_read = Some(stream.reading.clone());
        (sink, stream)
    }

    /// Drops the stream's idle read before closing (see `ReadSlot`).
    fn release_read(&self) {
        if let Some(slot) = &self.stream_read {
            clear(slot);
        }
    }

    /// Returns the connection.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// Flushes the message in flight, then closes the connection with `code` and `reason`
    /// (a close handshake, as [`Conn::close`]).
    ///
    /// # Errors
    ///
    /// The error of the message in flight, then those of [`Conn::close`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe, as [`Conn::close`].
    pub async fn close_with(&mut self, code: StatusCode, reason: &str) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_send_batch(cx)).await?;
        self.release_read();
        self.conn.close(code, reason).await
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.writing.poll_write(cx)
    }

    /// Messages gathered and not handed to the connection yet.
    fn gathered(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    /// Writes the gathered messages (after the write in flight) and waits for them.
    fn poll_send_batch(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        ready!(self.poll_pending(cx))?;
        let batch = match self.first.take() {
            Some(msg) => Batch::One(msg),
            None if self.more.is_empty() => return Poll::Ready(Ok(())),
            None => Batch::Many(std::mem::take(&mut self.more)),
        };
        self.batch_bytes = 0;
        self.writing.start(batch);
        self.poll_pending(cx)
    }
}

impl<T: Into<Message>> Sink<T> for MessageSink {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if this.batch_bytes >= SINK_BATCH_BYTES || this.gathered() >= SINK_BATCH_MESSAGES {
            ready!(this.poll_send_batch(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<()> {
        let this = self.get_mut();
        let msg = item.into();
        this.batch_bytes = this.batch_bytes.saturating_add(msg.len());
        if this.gathered() == 0 {
            this.first = Some(msg);
        } else {
            if let Some(first) = this.first.take() {
                this.more.push(first);
            }
            this.more.push(msg);
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_send_batch(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_batch(cx))?;
        if this.closing.is_none() {
            this.release_read();
        }
        let conn = &this.conn;
        let fut = this
            .closing
            .get_or_insert_with(|| close_future(conn, StatusCode::NORMAL_CLOSURE, String::new()));
        let res = ready!(fut.as_mut().poll(cx));
        this.closing = None;
        Poll::Ready(res)
    }
}

#[cfg(test)]
mod tests {
    use super::text_prefix;

    #[test]
    fn text_writes_cut_at_characters_and_always_make_progress() {
        let crab = "🦀".as_bytes(); // 4 bytes
        let rows: [(&[u8], usize, Option<&str>); 12] = [
            (b"abc", 1, Some("a")),
            (b"abc", usize::MAX, Some("abc")),
            ("é".as_bytes(), 1, Some("é")),
            ("é".as_bytes(), usize::MAX, Some("é")),
            (crab, 1, Some("🦀")),
            (crab, 3, Some("🦀")),
            ("a🦀".as_bytes(), 3, Some("a")),
            ("🦀a".as_bytes(), 2, Some("🦀")),
            (&crab[..3], 1, None),
            (&crab[..3], usize::MAX, None),
            (b"a\xffb", usize::MAX, None),
            (b"a\xffb", 1, Some("a")),
        ];
        for (data, max, want) in rows {
            assert_eq!(text_prefix(data, max), want, "{data:?} capped at {max}");
        }
    }
}
