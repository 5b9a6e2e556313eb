//! One client per implementation behind a common shape: connect, then either use the
//! connection whole (`duplex`, for ping-pong) or split it into a sending and a receiving half
//! (`split`, for pipelining, where both run at once).
//!
//! Every client opens its own `TcpStream` with Nagle's algorithm off (isosock's `dial` does
//! that itself) and reads messages up to the limit it is given.

use std::rc::Rc;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;

use crate::handshake::WsUrl;
use crate::Result;

/// The sending side: one whole message per call.
pub trait Tx {
    /// Sends `payload` as one text (`text`, must be UTF-8) or binary message.
    async fn send(&mut self, text: bool, payload: &Bytes) -> Result<()>;
}

/// The receiving side: one whole data message per call.
pub trait Rx {
    /// Receives the next data message: whether it was text, and its payload.
    async fn recv(&mut self) -> Result<(bool, Bytes)>;
}

/// What every client is asked for when it connects.
#[derive(Debug, Clone, Copy)]
pub struct ClientOpts {
    /// The largest message accepted.
    pub read_limit: usize,
    /// permessage-deflate: only the isosock client offers it; the others refuse anything but
    /// `Disabled`.
    pub compression: isosock::Compression,
}

impl ClientOpts {
    /// Fails unless compression is off, for the clients without permessage-deflate.
    fn uncompressed(&self, name: &str) -> Result<()> {
        if self.compression == isosock::Compression::Disabled {
            Ok(())
        } else {
            Err(format!("the {name} client has no permessage-deflate").into())
        }
    }
}

/// A connected client of one implementation.
pub trait Client: Sized + 'static {
    /// The whole connection, for alternating sends and receives.
    type Duplex: Tx + Rx + 'static;
    /// The sending half after `split`.
    type Tx: Tx + 'static;
    /// The receiving half after `split`.
    type Rx: Rx + 'static;
    /// Connects and upgrades.
    async fn connect(url: &WsUrl, url_str: &str, opts: &ClientOpts) -> Result<Self>;
    /// The extensions agreed in the handshake (`Sec-WebSocket-Extensions`), if known.
    fn extensions(&self) -> String {
        String::new()
    }
    /// The connection for one-at-a-time use.
    fn duplex(self) -> Self::Duplex;
    /// Independent halves for concurrent sending and receiving.
    fn split(self) -> (Self::Tx, Self::Rx);
}

fn closed_err(what: impl std::fmt::Debug) -> crate::Error {
    format!("connection closed by the server: {what:?}").into()
}

// ---- isosock ----

/// isosock's `Conn`: `&self` methods, so both halves share one `Rc`. `TUNGSTENITE` picks the
/// engine: `false` isosock's own, `true` its tokio-tungstenite engine ([`IsosockTungstenite`]).
pub struct Isosock<const TUNGSTENITE: bool = false>(Rc<isosock::Conn>);

/// isosock on its tokio-tungstenite engine (`Engine::Tungstenite`; no permessage-deflate).
pub type IsosockTungstenite = Isosock<true>;

impl<const TUNGSTENITE: bool> Client for Isosock<TUNGSTENITE> {
    type Duplex = Self;
    type Tx = Self;
    type Rx = Self;

    async fn connect(_url: &WsUrl, url_str: &str, opts: &ClientOpts) -> Result<Self> {
        let engine = if TUNGSTENITE {
            opts.uncompressed("isosock-tungstenite")?;
            isosock::Engine::Tungstenite
        } else {
            isosock::Engine::Own
        };
        let dial = isosock::DialOptions::new()
            .read_limit(opts.read_limit)
            .compression(opts.compression)
            .engine(engine);
        let (conn, _) = isosock::dial(url_str, &dial).await?;
        // A comparison of engines that silently ran on the other one would measure nothing.
        if conn.engine() != engine {
            return Err(format!("asked for {engine:?}, running on {:?}", conn.engine()).into());
        }
        // A benchmark of compression that silently ran uncompressed would measure nothing.
        if opts.compression != isosock::Compression::Disabled && conn.extensions().is_empty() {
            return Err(format!(
                "the server declined permessage-deflate ({:?} offered)",
                opts.compression
            )
            .into());
        }
        Ok(Isosock(Rc::new(conn)))
    }

    fn extensions(&self) -> String {
        self.0.extensions().to_owned()
    }

    fn duplex(self) -> Self {
        self
    }

    fn split(self) -> (Self, Self) {
        (Isosock(self.0.clone()), self)
    }
}

impl<const TUNGSTENITE: bool> Tx for Isosock<TUNGSTENITE> {
    async fn send(&mut self, text: bool, payload: &Bytes) -> Result<()> {
        let msg = if text {
            isosock::Message::Text(String::from_utf8(payload.to_vec())?)
        } else {
            isosock::Message::Binary(payload.clone())
        };
        self.0.write(msg).await?;
        Ok(())
    }
}

impl<const TUNGSTENITE: bool> Rx for Isosock<TUNGSTENITE> {
    async fn recv(&mut self) -> Result<(bool, Bytes)> {
        match self.0.read().await? {
            isosock::Message::Text(t) => Ok((true, Bytes::from(t))),
            isosock::Message::Binary(b) => Ok((false, b)),
        }
    }
}

// ---- tokio-tungstenite ----

type TungStream = tokio_tungstenite::WebSocketStream<TcpStream>;
type TungMessage = tokio_tungstenite::tungstenite::Message;
type TungError = tokio_tungstenite::tungstenite::Error;

/// [`Tungstenite`]'s configuration: tungstenite's default `WebSocketConfig`.
pub const DEFAULT: u8 = 0;
/// [`Tungstenite`]'s configuration: [`crate::servers::tungstenite_config`]'s tuned settings.
pub const TUNED: u8 = 1;
/// [`Tungstenite`]'s configuration: isosock's tungstenite engine's
/// ([`crate::servers::tungstenite_same_config`] with the client's read limit).
pub const SAME: u8 = 2;

/// tokio-tungstenite; `CONFIG` is [`DEFAULT`], [`TUNED`] or [`SAME`].
pub struct Tungstenite<const CONFIG: u8>(TungStream);
/// tokio-tungstenite configured as isosock's tungstenite engine: the baseline of
/// [`IsosockTungstenite`].
pub type TungsteniteSame = Tungstenite<SAME>;
/// tokio-tungstenite's sending half (`futures` `SplitSink`).
pub struct TungTx(futures_util::stream::SplitSink<TungStream, TungMessage>);
/// tokio-tungstenite's receiving half (`futures` `SplitStream`).
pub struct TungRx(futures_util::stream::SplitStream<TungStream>);

impl<const CONFIG: u8> Client for Tungstenite<CONFIG> {
    type Duplex = Self;
    type Tx = TungTx;
    type Rx = TungRx;

    async fn connect(url: &WsUrl, url_str: &str, opts: &ClientOpts) -> Result<Self> {
        opts.uncompressed("tungstenite")?;
        // DEFAULT and TUNED keep the default limits (64 MiB messages, 16 MiB frames), above
        // every size used here; SAME has the read limit, as isosock's tungstenite engine.
        let config = match CONFIG {
            SAME => crate::servers::tungstenite_same_config(opts.read_limit),
            c => crate::servers::tungstenite_config(c == TUNED),
        };
        let tcp = url.connect_tcp().await?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(url_str, tcp, Some(config)).await?;
        Ok(Tungstenite(ws))
    }

    fn duplex(self) -> Self {
        self
    }

    fn split(self) -> (TungTx, TungRx) {
        let (tx, rx) = self.0.split();
        (TungTx(tx), TungRx(rx))
    }
}

async fn tung_send<S>(sink: &mut S, text: bool, payload: &Bytes) -> Result<()>
where
    S: Sink<TungMessage, Error = TungError> + Unpin,
{
    let msg = if text {
        TungMessage::Text(payload.clone().try_into()?)
    } else {
        TungMessage::Binary(payload.clone())
    };
    sink.send(msg).await?;
    Ok(())
}

async fn tung_recv<S>(stream: &mut S) -> Result<(bool, Bytes)>
where
    S: Stream<Item = std::result::Result<TungMessage, TungError>> + Unpin,
{
    loop {
        match stream.next().await.ok_or("connection ended")?? {
            TungMessage::Text(t) => return Ok((true, Bytes::from(t))),
            TungMessage::Binary(b) => return Ok((false, b)),
            TungMessage::Close(f) => return Err(closed_err(f)),
            _ => {}
        }
    }
}

impl<const CONFIG: u8> Tx for Tungstenite<CONFIG> {
    async fn send(&mut self, text: bool, payload: &Bytes) -> Result<()> {
        tung_send(&mut self.0, text, payload).await
    }
}

impl<const CONFIG: u8> Rx for Tungstenite<CONFIG> {
    async fn recv(&mut self) -> Result<(bool, Bytes)> {
        tung_recv(&mut self.0).await
    }
}

impl Tx for TungTx {
    async fn send(&mut self, text: bool, payload: &Bytes) -> Result<()> {
        tung_send(&mut self.0, text, payload).await
    }
}

impl Rx for TungRx {
    async fn recv(&mut self) -> Result<(bool, Bytes)> {
        tung_recv(&mut self.0).await
    }
}

// ---- fastwebsockets ----

use fastwebsockets::{
    FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, Role, WebSocket,
    WebSocketError, WebSocketWrite,
};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// fastwebsockets after our own upgrade ([`crate::handshake::connect`]).
pub struct Fastwebsockets(WebSocket<TcpStream>);
/// fastwebsockets reassembling fragmented messages, for one-at-a-time use.
pub struct FwsDuplex(FragmentCollector<TcpStream>);
/// fastwebsockets' write half over tokio's owned TCP write half (`unstable-split`).
pub struct FwsTx(WebSocketWrite<OwnedWriteHalf>);
/// fastwebsockets' read half, reassembling fragmented messages.
pub struct FwsRx(FragmentCollectorRead<OwnedReadHalf>);

impl Client for Fastwebsockets {
    type Duplex = FwsDuplex;
    type Tx = FwsTx;
    type Rx = FwsRx;

    async fn connect(url: &WsUrl, _url_str: &str, opts: &ClientOpts) -> Result<Self> {
        opts.uncompressed("fastwebsockets")?;
        let mut tcp = url.connect_tcp().await?;
        crate::handshake::connect(&mut tcp, url).await?;
        let mut ws = WebSocket::after_handshake(tcp, Role::Client);
        ws.set_auto_close(true);
        ws.set_auto_pong(true);
        ws.set_max_message_size(opts.read_limit);
        Ok(Fastwebsockets(ws))
    }

    fn duplex(self) -> FwsDuplex {
        FwsDuplex(FragmentCollector::new(self.0))
    }

    fn split(self) -> (FwsTx, FwsRx) {
        let (rx, tx) = self.0.split(TcpStream::into_split);
        (FwsTx(tx), FwsRx(FragmentCollectorRead::new(rx)))
    }
}

fn fws_frame(text: bool, payload: &Bytes) -> Frame<'_> {
    let opcode = if text { OpCode::Text } else { OpCode::Binary };
    Frame::new(true, opcode, None, Payload::Borrowed(payload))
}

fn fws_message(frame: Frame<'_>) -> Option<Result<(bool, Bytes)>> {
    let text = match frame.opcode {
        OpCode::Text => true,
        OpCode::Binary => false,
        OpCode::Close => return Some(Err(closed_err(frame.payload.len()))),
        _ => return None,
    };
    let data = match frame.payload {
        Payload::Bytes(b) => b.freeze(),
        Payload::Owned(v) => Bytes::from(v),
        other => Bytes::copy_from_slice(&other),
    };
    Some(Ok((text, data)))
}

impl Tx for FwsDuplex {
    async fn send(&mut self, text: bool, payload: &Bytes) -> Result<()> {
        self.0.write_frame(fws_frame(text, payload)).await?;
        Ok(())
    }
}

impl Rx for FwsDuplex {
    async fn recv(&mut self) -> Result<(bool, Bytes)> {
        loop {
            let frame = self.0.read_frame().await?;
            if let Some(r) = fws_message(frame) {
                return r;
            }
        }
    }
}

impl Tx for FwsTx {
    async fn send(&mut self, text: bool, payload: &Bytes) -> Result<()> {
        self.0.write_frame(fws_frame(text, payload)).await?;
        Ok(())
    }
}

impl Rx for FwsRx {
    async fn recv(&mut self) -> Result<(bool, Bytes)> {
        loop {
            // The echo servers send no pings and close only when asked, so the reader has no
            // replies to hand to the write half; any it would owe are dropped.
            let frame = self
                .0
                .read_frame(&mut |_| async { Ok::<(), WebSocketError>(()) })
                .await?;
            if let Some(r) = fws_message(frame) {
                return r;
            }
        }
    }
}

// ---- tokio-websockets ----

type TwsStream = tokio_websockets::WebSocketStream<TcpStream>;
type TwsMessage = tokio_websockets::Message;
type TwsError = tokio_websockets::Error;

/// tokio-websockets on its own upgrade (`connect_on`).
pub struct TokioWebsockets(TwsStream);
/// tokio-websockets' sending half (`futures` `SplitSink`).
pub struct TwsTx(futures_util::stream::SplitSink<TwsStream, TwsMessage>);
/// tokio-websockets' receiving half (`futures` `SplitStream`).
pub struct TwsRx(futures_util::stream::SplitStream<TwsStream>);

impl Client for TokioWebsockets {
    type Duplex = Self;
    type Tx = TwsTx;
    type Rx = TwsRx;

    async fn connect(url: &WsUrl, url_str: &str, opts: &ClientOpts) -> Result<Self> {
        opts.uncompressed("tokio-websockets")?;
        let tcp = url.connect_tcp().await?;
        let (ws, _) = tokio_websockets::ClientBuilder::new()
            .uri(url_str)?
            .limits(tokio_websockets::Limits::default().max_payload_len(Some(opts.read_limit)))
            .connect_on(tcp)
            .await?;
        Ok(TokioWebsockets(ws))
    }

    fn duplex(self) -> Self {
        self
    }

    fn split(self) -> (TwsTx, TwsRx) {
        let (tx, rx) = self.0.split();
        (TwsTx(tx), TwsRx(rx))
    }
}

async fn tws_send<S>(sink: &mut S, text: bool, payload: &Bytes) -> Result<()>
where
    S: Sink<TwsMessage, Error = TwsError> + Unpin,
{
    let msg = if text {
        TwsMessage::text(payload.clone())
    } else {
        TwsMessage::binary(payload.clone())
    };
    sink.send(msg).await?;
    Ok(())
}

async fn tws_recv<S>(stream: &mut S) -> Result<(bool, Bytes)>
where
    S: Stream<Item = std::result::Result<TwsMessage, TwsError>> + Unpin,
{
    loop {
        let msg = stream.next().await.ok_or("connection ended")??;
        if msg.is_text() || msg.is_binary() {
            return Ok((msg.is_text(), Bytes::from(msg.into_payload())));
        }
        if msg.is_close() {
            return Err(closed_err(msg.as_close()));
        }
    }
}

impl Tx for TokioWebsockets {
    async fn send(&mut self, text: bool, payload: &Bytes) -> Result<()> {
        tws_send(&mut self.0, text, payload).await
    }
}

impl Rx for TokioWebsockets {
    async fn recv(&mut self) -> Result<(bool, Bytes)> {
        tws_recv(&mut self.0).await
    }
}

impl Tx for TwsTx {
    async fn send(&mut self, text: bool, payload: &Bytes) -> Result<()> {
        tws_send(&mut self.0, text, payload).await
    }
}

impl Rx for TwsRx {
    async fn recv(&mut self) -> Result<(bool, Bytes)> {
        tws_recv(&mut self.0).await
    }
}
