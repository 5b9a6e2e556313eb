//! The native `backend::Conn`: one connection of whichever engine carries its frames.
//!
//! # Design
//!
//! isosock's handshake, TLS, origin checks, hooks and limits (`dial.rs`, `accept.rs`) are the
//! same for every connection; what differs is the engine that carries the frames afterwards:
//!
//! - [`engine`](super::engine), isosock's own RFC 6455 engine (the default, and the only one
//!   with permessage-deflate);
//! - [`tungstenite`](super::tungstenite) (feature `tungstenite`), tokio-tungstenite's
//!   `WebSocketStream` built with `from_partially_read` after isosock's handshake, or adopted
//!   from the caller with `Conn::from_tungstenite`.
//!
//! The engine is chosen per connection, so the choice is a value, not a type: [`Conn`] is an
//! enum with one variant per engine and implements the backend contract
//! ([`Engine`](crate::backend::Engine)) by delegating each call to its variant. The shared
//! code (`conn.rs`, the helpers) sees one type, `backend::Conn`, as before; no generic
//! parameter leaks into the public `Conn`. A `match` per call costs one branch, which the
//! benchmarks of the own engine do not see; without the feature the enum has one variant and
//! every `match` is irrefutable.
//!
//! The same goes for what the trait's methods return: [`WriteGuard`] and [`Closed`] are enums
//! of the engines' own types.
//!
//! What was a property of the backend and is now one of the connection:
//!
//! - `Engine::writer_streams` (was the const `WRITER_STREAMS`): the own engine streams a
//!   `Writer`'s message as 16 KiB frames; the tungstenite engine sends whole messages only
//!   (tungstenite's `Sink` takes a `Message`), so the shared `Writer` buffers the message and
//!   sends it on finish, as it does in the browser.
//! - `ping` (native only, outside the trait): both engines implement it.
//!
//! What each engine cannot do is refused where it is chosen (compression with the tungstenite
//! engine fails at dial/accept with `ErrorKind::InvalidArgument`), never silently degraded.

use crate::backend::{Dial, Engine, FrameSink};
use crate::close::{CloseFrame, StatusCode};
use crate::dial::{DialOptions, Response, WsUrl};
use crate::error::{Error, Result};
use crate::message::{Message, MessageType};

use super::engine;
use super::frame::Role;
use super::io::Transport;
#[cfg(feature = "tungstenite")]
use super::tungstenite;
use super::{Negotiated, Settings};

/// A native connection: one of the engines.
#[derive(Debug)]
pub(crate) enum Conn {
    /// isosock's own engine.
    Own(engine::Conn),
    /// tokio-tungstenite.
    #[cfg(feature = "tungstenite")]
    Tungstenite(tungstenite::Conn),
}

/// Calls `$call` on whichever engine `$self` holds.
macro_rules! each {
    ($self:expr, $c:ident => $call:expr) => {
        match $self {
            Conn::Own($c) => $call,
            #[cfg(feature = "tungstenite")]
            Conn::Tungstenite($c) => $call,
        }
    };
}

impl Conn {
    /// Wraps a stream that has completed the HTTP upgrade in the own engine; `leftover` is
    /// what was read past the handshake.
    pub(crate) fn from_upgraded(
        transport: Transport,
        leftover: Vec<u8>,
        role: Role,
        negotiated: Negotiated,
        settings: Settings,
    ) -> Self {
        Conn::Own(engine::Conn::from_upgraded(
            transport, leftover, role, negotiated, settings,
        ))
    }

    /// Hands a stream that has completed the HTTP upgrade to `engine`; `leftover` is what was
    /// read past the handshake. `negotiated` holds no compression unless the engine has it
    /// (refused earlier, where the engine was chosen).
    pub(crate) async fn upgraded(
        engine: crate::Engine,
        transport: Transport,
        leftover: Vec<u8>,
        role: Role,
        negotiated: Negotiated,
        settings: Settings,
    ) -> Self {
        match engine {
            crate::Engine::Own => {
                Conn::from_upgraded(transport, leftover, role, negotiated, settings)
            }
            #[cfg(feature = "tungstenite")]
            crate::Engine::Tungstenite => Conn::Tungstenite(
                tungstenite::Conn::from_upgraded(transport, leftover, role, negotiated, settings)
                    .await,
            ),
        }
    }

    /// Adopts a tokio-tungstenite stream (`crate::Conn::from_tungstenite`).
    #[cfg(feature = "tungstenite")]
    pub(crate) fn from_tungstenite<S>(
        stream: tokio_tungstenite::WebSocketStream<S>,
        subprotocol: Option<String>,
    ) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let settings = Settings {
            read_limit: stream.get_config().max_message_size.unwrap_or(usize::MAX),
            close_timeout: crate::DEFAULT_CLOSE_TIMEOUT,
            write_high_water_mark: crate::DEFAULT_WRITE_HIGH_WATER_MARK,
            compression_threshold: 0,
        };
        Conn::Tungstenite(tungstenite::Conn::from_stream(
            stream,
            subprotocol,
            String::new(),
            settings,
        ))
    }

    /// Sends a ping and waits for its pong (native only, outside the shared contract).
    pub(crate) async fn ping(&self) -> Result<()> {
        each!(self, c => c.ping().await)
    }

    /// The engine carrying this connection.
    pub(crate) fn engine(&self) -> crate::Engine {
        match self {
            Conn::Own(_) => crate::Engine::Own,
            #[cfg(feature = "tungstenite")]
            Conn::Tungstenite(_) => crate::Engine::Tungstenite,
        }
    }
}

impl Dial for Conn {
    async fn dial(url: &WsUrl<'_>, opts: &DialOptions) -> Result<(Self, Response)> {
        super::dial::dial(url, opts).await
    }
}

impl Engine for Conn {
    type WriteGuard<'a> = WriteGuard<'a>;
    type Closed = Closed;

    fn writer_streams(&self) -> bool {
        each!(self, c => c.writer_streams())
    }

    async fn read(&self) -> Result<Message> {
        each!(self, c => c.read().await)
    }

    async fn write(&self, msg: Message) -> Result<()> {
        each!(self, c => c.write(msg).await)
    }

    async fn write_batch(&self, msgs: Vec<Message>) -> Result<()> {
        each!(self, c => c.write_batch(msgs).await)
    }

    async fn writer(&self) -> Result<WriteGuard<'_>> {
        match self {
            Conn::Own(c) => c.writer().await.map(WriteGuard::Own),
            #[cfg(feature = "tungstenite")]
            Conn::Tungstenite(c) => c.writer().await.map(WriteGuard::Tungstenite),
        }
    }

    async fn close(&self, code: StatusCode, reason: &str) -> Result<()> {
        each!(self, c => c.close(code, reason).await)
    }

    fn close_now(&self) {
        each!(self, c => c.close_now())
    }

    fn close_read(&self) -> Closed {
        match self {
            Conn::Own(c) => Closed::Own(c.close_read()),
            #[cfg(feature = "tungstenite")]
            Conn::Tungstenite(c) => Closed::Tungstenite(c.close_read()),
        }
    }

    fn set_read_limit(&self, bytes: usize) {
        each!(self, c => c.set_read_limit(bytes))
    }

    fn subprotocol(&self) -> Option<&str> {
        each!(self, c => c.subprotocol())
    }

    fn extensions(&self) -> &str {
        each!(self, c => c.extensions())
    }

    fn peer_close_frame(&self) -> Option<CloseFrame> {
        each!(self, c => c.peer_close_frame())
    }

    fn received_count(&self) -> u64 {
        each!(self, c => c.received_count())
    }

    fn closed_locally(&self) -> bool {
        each!(self, c => c.closed_locally())
    }

    fn fail(&self, err: Error) {
        each!(self, c => c.fail(err))
    }
}

/// The message-level write lock of either engine.
#[derive(Debug)]
pub(crate) enum WriteGuard<'a> {
    /// The own engine's.
    Own(<engine::Conn as Engine>::WriteGuard<'a>),
    /// tokio-tungstenite's.
    #[cfg(feature = "tungstenite")]
    Tungstenite(<tungstenite::Conn as Engine>::WriteGuard<'a>),
}

impl FrameSink for WriteGuard<'_> {
    fn poll_send_frame(
        &mut self,
        cx: &mut std::task::Context<'_>,
        ty: MessageType,
        payload: &[u8],
        first: bool,
        fin: bool,
    ) -> std::task::Poll<Result<()>> {
        match self {
            WriteGuard::Own(g) => g.poll_send_frame(cx, ty, payload, first, fin),
            #[cfg(feature = "tungstenite")]
            WriteGuard::Tungstenite(g) => g.poll_send_frame(cx, ty, payload, first, fin),
        }
    }

    fn abort_message(&mut self) {
        match self {
            WriteGuard::Own(g) => g.abort_message(),
            #[cfg(feature = "tungstenite")]
            WriteGuard::Tungstenite(g) => g.abort_message(),
        }
    }
}

/// The future `close_read` returns, of either engine.
#[derive(Debug)]
pub(crate) enum Closed {
    /// The own engine's.
    Own(<engine::Conn as Engine>::Closed),
    /// tokio-tungstenite's.
    #[cfg(feature = "tungstenite")]
    Tungstenite(<tungstenite::Conn as Engine>::Closed),
}

impl std::future::Future for Closed {
    type Output = Error;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Error> {
        match &mut *self {
            Closed::Own(c) => std::pin::Pin::new(c).poll(cx),
            #[cfg(feature = "tungstenite")]
            Closed::Tungstenite(c) => std::pin::Pin::new(c).poll(cx),
        }
    }
}
