//! [`Conn`], the one connection type, and its streaming [`Reader`] and [`Writer`].
//!
//! Every method here is documented once and delegates to the backend chosen in
//! `backend.rs`; the backends are never visible in a public signature.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;

use crate::backend::{self, Engine, FrameSink};
use crate::close::{validate_close, CloseFrame, StatusCode};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageType};

/// An open WebSocket connection, client or server, on any target.
///
/// Every method takes `&self`, so one `Conn` can be shared between tasks (in an `Arc`, or by
/// reference within one task):
///
/// - **writes** from several tasks are serialized; whole messages never interleave;
/// - **one reader at a time**: concurrent [`read`](Conn::read) calls wait for each other;
/// - **close from anywhere**: [`close`](Conn::close) works while another task is blocked in
///   `read`; that reader then returns the close.
///
/// Natively, control frames (ping, close) are only answered while something reads: keep a
/// task in a `read` loop, or call [`close_read`](Conn::close_read) on a write-only
/// connection. Dropping a `Conn` closes it at once without a close handshake, like
/// [`close_now`](Conn::close_now).
///
/// `Conn` is `Send + Sync` on every target (checked at compile time), and so are the futures
/// its methods return, so code that keeps it behind a `Send` bound compiles for native and
/// wasm alike. In the browser this holds without `unsafe impl Send` or `SendWrapper`: the
/// `WebSocket` and its JS callbacks live in a task on the page's event loop, and the `Conn`
/// talks to that task through channels.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> isosock::Result<()> {
/// use isosock::{dial, DialOptions, Message, StatusCode};
///
/// let (conn, _) = dial("ws://127.0.0.1:9001", &DialOptions::new()).await?;
/// conn.write(Message::text("ping")).await?;
/// match conn.read().await? {
///     Message::Text(t) => println!("text: {t}"),
///     Message::Binary(b) => println!("{} bytes", b.len()),
/// }
/// conn.close(StatusCode::NORMAL_CLOSURE, "done").await?;
/// # Ok(()) }
/// ```
pub struct Conn {
    inner: backend::Conn,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("subprotocol", &self.subprotocol())
            .finish_non_exhaustive()
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    const fn assert_send<T: Send>() {}
    assert_send_sync::<Conn>();
    assert_send_sync::<Reader>();
    assert_send_sync::<Writer<'static>>();
    assert_send::<Closed>();
};

impl Conn {
    pub(crate) fn from_backend(inner: backend::Conn) -> Self {
        Conn { inner }
    }

    /// Adopts a tokio-tungstenite `WebSocketStream` the caller already has (from
    /// `accept_async`, `connect_async`, or a server built on them), so isosock's API and
    /// helpers (json, [`ByteStream`](crate::ByteStream), [`split`](Conn::split),
    /// [`Heartbeat`](crate::Heartbeat), ...) work on it. tungstenite keeps carrying the frames.
    ///
    /// `subprotocol` is what the stream's handshake agreed, if anything: isosock did not see
    /// that handshake, so [`subprotocol`](Conn::subprotocol) returns what is passed here and
    /// [`extensions`](Conn::extensions) is empty.
    ///
    /// The stream keeps the limits it was built with (tungstenite's `max_message_size`, 64 MiB
    /// by default, bounds memory while a message arrives): the read limit starts at that
    /// `max_message_size` (unlimited if it has none), and [`set_read_limit`](Conn::set_read_limit)
    /// can lower it, checked when each message has arrived. The close timeout is
    /// [`DEFAULT_CLOSE_TIMEOUT`](crate::DEFAULT_CLOSE_TIMEOUT).
    ///
    /// # Platform notes
    ///
    /// Native only, with feature `tungstenite`. `WebSocketStream` is tokio-tungstenite 0.30's
    /// (pinned): a new tokio-tungstenite release that isosock moves to is a breaking change of
    /// this method, and so of isosock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(tcp: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
    /// let ws = tokio_tungstenite::accept_async(tcp).await?;
    /// let conn = isosock::Conn::from_tungstenite(ws, None);
    /// while let Ok(msg) = conn.read().await {
    ///     conn.write(msg).await?;
    /// }
    /// # Ok(()) }
    /// ```
    #[cfg(all(not(target_arch = "wasm32"), feature = "tungstenite"))]
    #[cfg_attr(
        docsrs,
        doc(cfg(all(not(target_arch = "wasm32"), feature = "tungstenite")))
    )]
    pub fn from_tungstenite<S>(
        stream: tokio_tungstenite::WebSocketStream<S>,
        subprotocol: Option<&str>,
    ) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        Conn {
            inner: backend::Conn::from_tungstenite(stream, subprotocol.map(str::to_owned)),
        }
    }

    /// Frames (natively) or messages (browser) received so far: the heartbeat's sign of life.
    pub(crate) fn received_count(&self) -> u64 {
        self.inner.received_count()
    }

    /// Ends the connection at once with `err`, which reads and writes then return.
    pub(crate) fn fail(&self, err: Error) {
        self.inner.fail(err);
    }

    /// Whether this side called `close` or `close_now`.
    pub(crate) fn closed_locally(&self) -> bool {
        self.inner.closed_locally()
    }

    /// Splits the connection into a [`Sink`](futures_util::Sink) of outgoing messages and a
    /// [`Stream`](futures_core::Stream) of incoming ones, for `StreamExt`, `SinkExt`,
    /// `forward` and `select!`.
    ///
    /// Both halves share the connection: [`MessageSink::close_with`](crate::MessageSink::close_with) closes it with any code
    /// from the writing side, and either half's `conn()` reaches every other method. See
    /// [`MessageStream`](crate::MessageStream) for when the stream ends.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(conn: isosock::Conn) -> isosock::Result<()> {
    /// use futures_util::{SinkExt, StreamExt};
    /// use isosock::{Message, StatusCode};
    ///
    /// let (mut tx, mut rx) = conn.split();
    /// tx.send(Message::text("hello")).await?;
    /// while let Some(msg) = rx.next().await {
    ///     println!("{:?}", msg?);
    /// }
    /// tx.close_with(StatusCode::NORMAL_CLOSURE, "done").await?;
    /// # Ok(()) }
    /// ```
    pub fn split(self) -> (crate::MessageSink, crate::MessageStream) {
        crate::MessageSink::split(std::sync::Arc::new(self))
    }

    /// Reads the next data message.
    ///
    /// Pings are answered and pongs consumed along the way.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::Closed`]: the peer closed the connection; [`crate::close_status`] and
    ///   [`Error::close_frame`] give its code and reason. Every later read returns it again.
    /// - [`ErrorKind::MessageTooBig`]: the message exceeded the read limit; the connection was
    ///   closed with 1009 (in the browser: 1000 "message too big"). In the browser also when
    ///   unread messages exceeded the inbound bound (see below).
    /// - [`ErrorKind::InvalidData`]: a text message was not UTF-8; closed with 1007.
    /// - [`ErrorKind::Protocol`]: the peer broke RFC 6455; closed with 1002.
    /// - [`ErrorKind::ConnectionLost`]: the transport ended without a close frame.
    /// - [`ErrorKind::AlreadyClosed`]: this side had already closed the connection.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it completes (in `select!`, or by a
    /// timeout), no message is lost and the stream is not corrupted; a partly received
    /// message stays buffered and the next `read` continues it.
    ///
    /// # Platform notes
    ///
    /// Natively the read limit is enforced while the frames arrive. In the browser the whole
    /// message has already arrived when the limit is checked.
    ///
    /// The browser cannot pause a `WebSocket`: messages arrive whether or not anything reads,
    /// and wait in memory. Unread messages may take up to 16 MiB or four times the read limit,
    /// whichever is larger (each message counted as its length plus 64 bytes); one more
    /// message closes the connection with 1000 "reader too slow", drops the unread messages,
    /// and fails the next read with [`ErrorKind::MessageTooBig`]. Natively nothing is read
    /// ahead: TCP holds the peer back instead.
    pub async fn read(&self) -> Result<Message> {
        self.inner.read().await
    }

    /// Reads the next data message as an [`AsyncRead`](futures_io::AsyncRead) [`Reader`].
    ///
    /// The reader yields the message's bytes and then end-of-file.
    ///
    /// # Errors
    ///
    /// As [`read`](Conn::read).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`read`](Conn::read).
    ///
    /// # Platform notes
    ///
    /// Both backends receive the whole message (within the read limit) before the reader is
    /// returned: natively fragments are assembled first, and the browser only delivers
    /// whole messages.
    pub async fn reader(&self) -> Result<Reader> {
        let msg = self.read().await?;
        Ok(Reader {
            message_type: msg.message_type(),
            data: msg.into_bytes(),
            pos: 0,
        })
    }

    /// Sends one data message.
    ///
    /// Accepts anything that converts into a [`Message`]: `&str`/`String` become text,
    /// `Vec<u8>`/`&[u8]`/`Bytes` become binary.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::AlreadyClosed`]: this side has closed the connection.
    /// - [`ErrorKind::Closed`]: the peer has closed the connection.
    /// - [`ErrorKind::ConnectionLost`]: the transport failed.
    ///
    /// # Cancel safety
    ///
    /// Messages never interleave or tear: if the future is dropped, the message was either
    /// not queued at all or queued whole (and is then still sent, in order). Other writers
    /// are not affected. A write waits for room before it queues (natively until the bytes
    /// already queued are at or below
    /// [`DialOptions::write_high_water_mark`](crate::DialOptions::write_high_water_mark),
    /// default 1 MiB; in the browser until an earlier cancelled write's message has left
    /// isosock's queue), and a write dropped while it waits sends nothing, so a loop of
    /// cancelled writes against a peer that stopped reading holds a bounded amount of memory.
    ///
    /// # Platform notes
    ///
    /// Natively the future completes once the message has been written to the socket, with
    /// one exception that batches a read/write loop's replies (own engine): when the task
    /// that writes is the task whose last `read` left the peer's next bytes already received
    /// (a peer that pipelines), the message is queued and the write returns at once, until
    /// 64 KiB wait. Those bytes go out, in order, before that task's next `read` waits for the
    /// socket, or as soon as the task yields to the runtime otherwise (it awaits something
    /// else: a task isosock spawned at the deferral writes them then), whichever comes first;
    /// also with the next write that does not defer, with a ping, pong or close, and at
    /// `close_now` or drop as far as the socket takes them without waiting. So an echo loop
    /// answering a burst of pipelined messages makes one system call per burst, a ping-pong
    /// peer (nothing received ahead) sees every reply written before `write` returns, and no
    /// reply waits longer than the writing task runs without yielding. The price: a burst's
    /// first reply waits for its last, so one connection pipelining small messages gets
    /// 0.63–0.73× the messages per second of a loop that writes each reply at once, at a
    /// third less CPU per message (BENCHMARKS.md); with many connections the batching wins
    /// (3.8–8.2×). The tungstenite engine never defers. A message queued by a dropped write
    /// is sent by the next write, ping, pong or close on the connection (no task writes it
    /// in the background). In the browser the message goes to `WebSocket.send` once the
    /// socket's `bufferedAmount` is at or below the mark; one queued by a dropped write is
    /// sent by the connection's driver as soon as the buffer allows, with no further call
    /// needed.
    pub async fn write(&self, msg: impl Into<Message>) -> Result<()> {
        self.inner.write(msg.into()).await
    }

    /// Sends several messages, in order, without other writers' messages between them.
    ///
    /// Natively they go out in one write to the socket (when they fit its buffer), where
    /// [`write`](Conn::write) in a loop makes one system call per message: the difference
    /// matters for many small messages. [`MessageSink`](crate::MessageSink) batches this way
    /// between flushes, so `stream.forward(sink)` and `send_all` benefit too.
    ///
    /// # Errors
    ///
    /// As [`write`](Conn::write). Messages before a failure may have been sent.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the batch was either not queued at all or queued whole (and
    /// is then still sent).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(conn: isosock::Conn) -> isosock::Result<()> {
    /// conn.write_batch(["one", "two", "three"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_batch<I, M>(&self, msgs: I) -> Result<()>
    where
        I: IntoIterator<Item = M>,
        M: Into<Message>,
    {
        let msgs: Vec<Message> = msgs.into_iter().map(Into::into).collect();
        if msgs.is_empty() {
            return Ok(());
        }
        self.inner.write_batch(msgs).await
    }

    /// Starts one data message of type `message_type`, written in pieces through a [`Writer`].
    ///
    /// The writer holds the connection's write lock until it is finished or dropped: other
    /// writers wait. Call [`Writer::finish`] (or `close` on the `AsyncWrite`) to end the
    /// message.
    ///
    /// # Errors
    ///
    /// As [`write`](Conn::write).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future while it waits for the write lock sends nothing.
    ///
    /// # Platform notes
    ///
    /// Natively, on the own engine, the writer sends a frame each time 16 KiB have
    /// accumulated, so a message of any size needs only that much memory. In the browser, and
    /// natively on the tungstenite engine (`Engine::Tungstenite`), it buffers the whole
    /// message in memory and sends it on finish, since those only send whole messages.
    pub async fn writer(&self, message_type: MessageType) -> Result<Writer<'_>> {
        let guard = self.inner.writer().await?;
        Ok(Writer {
            guard,
            streams: self.inner.writer_streams(),
            message_type,
            buf: Vec::new(),
            first: true,
            state: WriterState::Open,
        })
    }

    /// Closes the connection with a close handshake: sends a close frame with `code` and
    /// `reason`, waits for the peer's, then closes the transport.
    ///
    /// Each half is bounded by the close timeout (default 5 s, see
    /// [`DialOptions::close_timeout`](crate::DialOptions::close_timeout)). A reader blocked in
    /// another task returns [`ErrorKind::Closed`] with the peer's reply.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::InvalidArgument`]: `code` may not be sent (see
    ///   [`StatusCode::is_sendable`]) or `reason` is over 123 bytes of UTF-8. Nothing is sent.
    /// - [`ErrorKind::AlreadyClosed`]: `close` or `close_now` was called before.
    /// - [`ErrorKind::Timeout`]: the peer did not answer in time; the transport is closed
    ///   anyway.
    /// - [`ErrorKind::ConnectionLost`]: the transport failed during the handshake.
    ///
    /// If the peer had already sent its close frame, `close` answers it and returns `Ok`.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future after the close frame went out leaves the
    /// connection closing; drop the `Conn` (or call [`close_now`](Conn::close_now)) to finish.
    ///
    /// # Platform notes
    ///
    /// The browser only lets scripts send 1000 and 3000–4999; the browser backend sends the
    /// other sendable codes (1001–1003, 1007–1014) as 1000 with the same reason.
    pub async fn close(&self, code: StatusCode, reason: &str) -> Result<()> {
        validate_close(code, reason)?;
        self.inner.close(code, reason).await
    }

    /// Closes the connection at once, without a close handshake. Never fails, never blocks.
    ///
    /// Pending and later operations fail with [`ErrorKind::AlreadyClosed`]. In the browser
    /// the socket is closed with code 1000 (the only code scripts may use besides 3000–4999).
    pub fn close_now(&self) {
        self.inner.close_now();
    }

    /// Reads and discards in the background so that control frames are answered on a
    /// connection the application only writes to; returns a future that completes when the
    /// connection closes.
    ///
    /// A data message arriving after this call closes the connection with 1008 (policy
    /// violation; in the browser 1000 "unexpected data message") and makes it fail with
    /// [`ErrorKind::Protocol`]. The returned [`Closed`] resolves to the error a `read` would
    /// have returned (for a clean close, kind [`ErrorKind::Closed`] with the peer's close frame). Later
    /// `read` calls return that error too.
    ///
    /// Natively the background reader is a tokio task (a tokio runtime must be running); in
    /// the browser the connection's task on the page's event loop does the discarding.
    pub fn close_read(&self) -> Closed {
        Closed {
            inner: self.inner.close_read(),
        }
    }

    /// Sends a ping and waits for the matching pong.
    ///
    /// Like coder/websocket, the pong is only seen while something reads the connection (a
    /// `read` loop in another task, or [`close_read`](Conn::close_read)); wrap the call in a
    /// timeout to detect a dead peer.
    ///
    /// # Errors
    ///
    /// As [`write`](Conn::write); and the close error if the connection closes first.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped `ping` leaves no state behind; its pong is ignored.
    ///
    /// # Platform notes
    ///
    /// Native only: browsers answer pings themselves and cannot send them.
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    /// Returns the protocol engine carrying this connection's frames: what
    /// `DialOptions::engine` or `AcceptOptions::engine` chose, or
    /// [`Engine::Tungstenite`](crate::Engine) for a stream adopted with `from_tungstenite`.
    ///
    /// # Platform notes
    ///
    /// Native only: in the browser the browser is the engine.
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub fn engine(&self) -> crate::Engine {
        self.inner.engine()
    }

    /// Sets the largest message, in bytes, that later reads accept.
    ///
    /// A bigger message closes the connection with 1009 and fails the read with
    /// [`ErrorKind::MessageTooBig`]. The default is 32 KiB, or what
    /// [`DialOptions::read_limit`](crate::DialOptions::read_limit) set.
    ///
    /// Browsers refuse to let scripts close with 1009, so the browser backend closes with
    /// 1000 and the reason "message too big" instead (the same rule as for
    /// [`close`](Conn::close): codes the browser refuses become 1000, reason kept).
    ///
    /// # Platform notes
    ///
    /// Natively the limit is checked as frames arrive (from a frame's header, before its
    /// payload is read). In the browser it is checked when `read` takes the message (the
    /// browser has received it whole by then), and the connection is closed with 1000
    /// "message too big".
    pub fn set_read_limit(&self, bytes: usize) {
        self.inner.set_read_limit(bytes);
    }

    /// Returns the subprotocol the handshake selected, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.inner.subprotocol()
    }

    /// Returns the extensions the handshake agreed, as the server's `Sec-WebSocket-Extensions`
    /// header stated them; empty when none. Today the only extension isosock negotiates is
    /// permessage-deflate (RFC 7692), so a connection compresses when this starts with
    /// `"permessage-deflate"`.
    ///
    /// # Platform notes
    ///
    /// In the browser this is `WebSocket.extensions`: browsers offer permessage-deflate on
    /// every connection, so it is non-empty whenever the server agreed. Natively it is what
    /// `DialOptions::compression` or `AcceptOptions::compression` led to.
    pub fn extensions(&self) -> &str {
        self.inner.extensions()
    }

    /// Returns the close frame the peer sent, once one has been received.
    ///
    /// This is the final close status after [`close`](Conn::close) or a read that returned
    /// [`ErrorKind::Closed`]; `None` while open or after an abnormal closure.
    pub fn peer_close_frame(&self) -> Option<CloseFrame> {
        self.inner.peer_close_frame()
    }
}

/// One received message as an [`AsyncRead`](futures_io::AsyncRead), from [`Conn::reader`].
///
/// Natively it also implements tokio's `AsyncRead`.
#[derive(Debug)]
pub struct Reader {
    message_type: MessageType,
    data: Bytes,
    pos: usize,
}

impl Reader {
    /// Returns whether the message is text or binary.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// Returns the message's total length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Returns `true` if the message is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn copy_into(&mut self, buf: &mut [u8]) -> usize {
        let rest = &self.data[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        n
    }
}

impl futures_io::AsyncRead for Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.copy_into(buf)))
    }
}

/// The size at which a native [`Writer`] sends a frame.
pub(crate) const WRITER_FRAME_SIZE: usize = 16 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterState {
    Open,
    Finished,
    Failed,
}

/// One outgoing message written in pieces, from [`Conn::writer`].
///
/// Implements [`AsyncWrite`](futures_io::AsyncWrite) (and tokio's `AsyncWrite` natively);
/// `poll_close` / `shutdown` finishes the message like [`finish`](Writer::finish).
///
/// Dropping an unfinished writer discards the message if nothing of it was sent yet. If
/// frames of it were already on the wire (natively on the own engine, past 16 KiB) the
/// message cannot be completed, so the connection is closed at once and later operations
/// fail with [`ErrorKind::AlreadyClosed`].
///
/// For a text message the bytes must form UTF-8 as a whole; a sequence may be split between
/// writes. Invalid UTF-8 fails the write with [`ErrorKind::InvalidArgument`].
#[derive(Debug)]
pub struct Writer<'a> {
    guard: <backend::Conn as Engine>::WriteGuard<'a>,
    /// Whether the engine sends frames as they fill (`Engine::writer_streams`); if not, the
    /// whole message is buffered and sent on finish.
    streams: bool,
    message_type: MessageType,
    buf: Vec<u8>,
    first: bool,
    state: WriterState,
}

impl Writer<'_> {
    /// Ends the message, sending what is buffered as its final frame.
    ///
    /// # Errors
    ///
    /// As [`Conn::write`]; [`ErrorKind::InvalidArgument`] if a text message ends inside a
    /// UTF-8 sequence.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future may leave the message unfinished, with the
    /// consequence described on [`Writer`].
    pub async fn finish(mut self) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_finish(cx)).await
    }

    /// Returns the number of bytes of the valid-UTF-8 prefix of `buf` that may be sent now.
    fn sendable_len(&self) -> Result<usize> {
        if self.message_type == MessageType::Binary {
            return Ok(self.buf.len());
        }
        match std::str::from_utf8(&self.buf) {
            Ok(_) => Ok(self.buf.len()),
            Err(e) if e.error_len().is_none() => Ok(e.valid_up_to()),
            Err(_) => Err(Error::new(
                ErrorKind::InvalidArgument,
                "text message writer was given bytes that are not UTF-8",
            )),
        }
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, fin: bool) -> Poll<Result<()>> {
        let n = match self.sendable_len() {
            Ok(n) => n,
            Err(e) => {
                self.fail();
                return Poll::Ready(Err(e));
            }
        };
        if fin && n != self.buf.len() {
            self.fail();
            return Poll::Ready(Err(Error::new(
                ErrorKind::InvalidArgument,
                "text message ended inside a UTF-8 sequence",
            )));
        }
        let res = ready!(self.guard.poll_send_frame(
            cx,
            self.message_type,
            &self.buf[..n],
            self.first,
            fin
        ));
        match res {
            Ok(()) => {
                self.buf.drain(..n);
                self.first = false;
                if fin {
                    self.state = WriterState::Finished;
                }
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                self.state = WriterState::Failed;
                Poll::Ready(Err(e))
            }
        }
    }

    fn fail(&mut self) {
        self.state = WriterState::Failed;
        if !self.first {
            self.guard.abort_message();
        }
    }

    fn check_open(&self) -> Result<()> {
        match self.state {
            WriterState::Open => Ok(()),
            WriterState::Finished => Err(Error::new(
                ErrorKind::InvalidArgument,
                "the message writer was already finished",
            )),
            WriterState::Failed => Err(Error::new(
                ErrorKind::AlreadyClosed,
                "the message writer failed earlier",
            )),
        }
    }

    pub(crate) fn poll_write_bytes(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<Result<usize>> {
        self.check_open()?;
        if !self.streams {
            self.buf.extend_from_slice(data);
            return Poll::Ready(Ok(data.len()));
        }
        if self.buf.len() >= WRITER_FRAME_SIZE {
            ready!(self.poll_send(cx, false))?;
        }
        // Never buffer more than one frame: a large write is taken in frame-sized parts.
        let take = data
            .len()
            .min(WRITER_FRAME_SIZE.saturating_sub(self.buf.len()).max(1));
        self.buf.extend_from_slice(&data[..take]);
        Poll::Ready(Ok(take))
    }

    pub(crate) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.state == WriterState::Finished {
            return Poll::Ready(Ok(()));
        }
        self.check_open()?;
        self.poll_send(cx, true)
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if self.state != WriterState::Finished && !self.first {
            self.guard.abort_message();
        }
    }
}

impl futures_io::AsyncWrite for Writer<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_bytes(cx, buf)
            .map_err(io::Error::from)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A message is only complete on finish; there is nothing useful to flush early.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_finish(cx).map_err(io::Error::from)
    }
}

/// Completes when the connection closes; returned by [`Conn::close_read`].
///
/// Resolves to the error that describes the closing: kind [`ErrorKind::Closed`] with the
/// peer's close frame for a clean close, or the failure otherwise.
#[derive(Debug)]
#[must_use = "the connection is read in the background anyway; await this to learn when it closes"]
pub struct Closed {
    inner: <backend::Conn as Engine>::Closed,
}

impl Future for Closed {
    type Output = Error;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Error> {
        Pin::new(&mut self.inner).poll(cx)
    }
}
