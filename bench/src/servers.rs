//! One echo server per implementation: every text or binary message goes back with its type.
//!
//! Each accepts on 127.0.0.1, turns Nagle's algorithm off on every connection, reads messages
//! up to 16 MiB (tungstenite and tungstenite-tuned keep the default 64 MiB; tungstenite-same
//! has isosock's tungstenite engine's limits), and uses the same loop shape: read one message,
//! write it back, repeat. Two more are written the way their crate's own examples write an
//! echo server, splitting the connection and forwarding its stream of messages into its sink:
//! `tungstenite-forward` (tokio-tungstenite's `examples/echo-server.rs`: `accept_async`, then
//! `read.try_filter(text or binary).forward(write)`) and `isosock-forward` (`Conn::split`,
//! then `stream.forward(sink)`). A sink flushes when the stream has nothing ready, so these
//! write a burst of echoes at once where the loops write each one. Connection errors are
//! counted, not printed (the load generator ends its connections by exiting), unless
//! `--verbose`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};

use isosock::Compression;

use crate::{Impl, Result};

/// The read limit of every server here.
pub const READ_LIMIT: usize = 16 << 20;

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// tokio-tungstenite's configuration for `tuned` (client and server alike): a 16 KiB read
/// buffer instead of 128 KiB (less memory per connection; messages larger than the buffer are
/// read in more steps) and eager writes (write buffer 0) instead of coalescing up to 128 KiB.
pub fn tungstenite_config(
    tuned: bool,
) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    if tuned {
        config.read_buffer_size(16 << 10).write_buffer_size(0)
    } else {
        config
    }
}

/// tokio-tungstenite's configuration for `same`, client and server: what isosock's tungstenite
/// engine gives `WebSocketStream::from_partially_read` for a connection with `read_limit`
/// (`src/native/tungstenite/mod.rs`, `config`): message and frame limit = the read limit (the
/// frame limit at least 125, for control frames), a 16 KiB read buffer, every other setting
/// tungstenite's default.
pub fn tungstenite_same_config(
    read_limit: usize,
) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(read_limit))
        .max_frame_size(Some(read_limit.max(125)))
        .read_buffer_size(16 << 10)
}

/// An echo server: one of the matrix's implementations with its read/write loop, one written
/// as its crate's examples write it (`forward`), or yawc (compression benchmark only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// A matrix implementation, echoing with a read/write loop.
    Impl(Impl),
    /// isosock: `Conn::split`, then the `MessageStream` forwarded into the `MessageSink`.
    IsosockForward,
    /// tokio-tungstenite's echo-server example: default configuration, `split`, then the text
    /// and binary messages forwarded into the sink.
    TungsteniteForward,
    /// yawc, the Rust peer with permessage-deflate.
    Yawc,
}

impl Server {
    /// The echo servers written as their crate's examples write them.
    pub const FORWARD: [Server; 2] = [Server::IsosockForward, Server::TungsteniteForward];

    /// Every echo server of the matrix's implementations: each read/write loop, then the
    /// `forward` servers (what `selftest` checks).
    pub fn all_echo() -> Vec<Server> {
        let mut all: Vec<Server> = Impl::ALL.into_iter().map(Server::Impl).collect();
        all.extend(Server::FORWARD);
        all
    }

    /// The servers of `impls` for the matrix: each implementation's read/write loop, followed
    /// by its crate's `forward` server if it has one (isosock-forward after isosock,
    /// tungstenite-forward after tungstenite).
    pub fn with_forward(impls: &[Impl]) -> Vec<Server> {
        let mut out = Vec::new();
        for &imp in impls {
            out.push(Server::Impl(imp));
            match imp {
                Impl::Isosock => out.push(Server::IsosockForward),
                Impl::Tungstenite => out.push(Server::TungsteniteForward),
                _ => {}
            }
        }
        out
    }

    /// Parses an [`Impl`] name, `isosock-forward`, `tungstenite-forward` or `yawc`.
    pub fn parse(s: &str) -> Result<Server> {
        match s {
            "yawc" => Ok(Server::Yawc),
            "isosock-forward" => Ok(Server::IsosockForward),
            "tungstenite-forward" => Ok(Server::TungsteniteForward),
            _ => Impl::parse(s)
                .map(Server::Impl)
                .map_err(|e| format!("{e}, isosock-forward, tungstenite-forward or yawc").into()),
        }
    }

    /// The name used on the command line and in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Server::Impl(i) => i.name(),
            Server::IsosockForward => "isosock-forward",
            Server::TungsteniteForward => "tungstenite-forward",
            Server::Yawc => "yawc",
        }
    }

    /// Whether this is isosock (on either engine, in either style) rather than a peer.
    pub fn is_isosock(self) -> bool {
        matches!(
            self,
            Server::Impl(Impl::Isosock | Impl::IsosockTungstenite) | Server::IsosockForward
        )
    }
}

/// Runs the echo server for `server` on `port` (0 picks one) with `threads` runtime workers,
/// printing `listening on ws://127.0.0.1:PORT` first. Never returns unless binding fails.
/// `compression` is the permessage-deflate mode; only isosock and yawc take another than
/// `Disabled`.
pub fn run(
    server: Server,
    port: u16,
    threads: usize,
    verbose: bool,
    compression: Compression,
) -> Result<()> {
    if compression != Compression::Disabled
        && !matches!(
            server,
            Server::Impl(Impl::Isosock) | Server::IsosockForward | Server::Yawc
        )
    {
        return Err(format!("the {} server has no permessage-deflate", server.name()).into());
    }
    VERBOSE.store(verbose, Ordering::Relaxed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on ws://{}", listener.local_addr()?)?;
        out.flush()?;
        drop(out);
        match server {
            Server::Impl(imp) => serve(imp, listener, compression).await,
            Server::IsosockForward | Server::TungsteniteForward => {
                serve_forward(server, listener, compression).await
            }
            Server::Yawc => serve_yawc(listener, compression).await,
        }
    })
}

/// Accepts connections forever, spawning an echo task for each.
pub async fn serve(imp: Impl, listener: TcpListener, compression: Compression) -> Result<()> {
    let engine = match imp {
        Impl::IsosockTungstenite => isosock::Engine::Tungstenite,
        _ => isosock::Engine::Own,
    };
    let iso_opts = Arc::new(
        isosock::AcceptOptions::new()
            .read_limit(READ_LIMIT)
            .compression(compression)
            .engine(engine),
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let iso_opts = iso_opts.clone();
        tokio::spawn(async move {
            let res = match imp {
                Impl::Isosock | Impl::IsosockTungstenite => {
                    echo_isosock(tcp, &iso_opts, engine).await
                }
                Impl::Tungstenite => echo_tungstenite(tcp, tungstenite_config(false)).await,
                Impl::TungsteniteTuned => echo_tungstenite(tcp, tungstenite_config(true)).await,
                Impl::TungsteniteSame => {
                    echo_tungstenite(tcp, tungstenite_same_config(READ_LIMIT)).await
                }
                Impl::Fastwebsockets => echo_fastwebsockets(tcp).await,
                Impl::TokioWebsockets => echo_tokio_websockets(tcp).await,
            };
            if let Err(e) = res {
                if VERBOSE.load(Ordering::Relaxed) {
                    eprintln!("{}: connection: {e}", imp.name());
                }
            }
        });
    }
}

async fn echo_isosock(
    tcp: TcpStream,
    opts: &isosock::AcceptOptions,
    engine: isosock::Engine,
) -> Result<()> {
    let conn = isosock::accept(tcp, opts).await?;
    // A comparison of engines that silently ran on the other one would measure nothing.
    if conn.engine() != engine {
        return Err(format!("asked for {engine:?}, running on {:?}", conn.engine()).into());
    }
    loop {
        let msg = match conn.read().await {
            Ok(m) => m,
            Err(e) if e.kind() == isosock::ErrorKind::Closed => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        conn.write(msg).await?;
    }
}

/// Accepts connections forever for a `forward` server ([`Server::IsosockForward`] or
/// [`Server::TungsteniteForward`]), spawning an echo task for each.
async fn serve_forward(
    server: Server,
    listener: TcpListener,
    compression: Compression,
) -> Result<()> {
    let iso_opts = Arc::new(
        isosock::AcceptOptions::new()
            .read_limit(READ_LIMIT)
            .compression(compression),
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let iso_opts = iso_opts.clone();
        tokio::spawn(async move {
            let res = match server {
                Server::TungsteniteForward => forward_tungstenite(tcp).await,
                _ => forward_isosock(tcp, &iso_opts).await,
            };
            if let Err(e) = res {
                if VERBOSE.load(Ordering::Relaxed) {
                    eprintln!("{}: connection: {e}", server.name());
                }
            }
        });
    }
}

/// isosock's echo in the style of a `Sink`/`Stream` user: the stream of messages forwarded
/// into the sink, which batches the echoes that were ready at once into one write.
async fn forward_isosock(tcp: TcpStream, opts: &isosock::AcceptOptions) -> Result<()> {
    let conn = isosock::accept(tcp, opts).await?;
    let (sink, stream) = conn.split();
    stream.forward(sink).await?;
    Ok(())
}

/// tokio-tungstenite's `examples/echo-server.rs`, minus its logging and `expect`s.
async fn forward_tungstenite(tcp: TcpStream) -> Result<()> {
    let ws = tokio_tungstenite::accept_async(tcp).await?;
    let (write, read) = ws.split();
    // As the example: "We should not forward messages other than text or binary."
    read.try_filter(|msg| std::future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await?;
    Ok(())
}

/// tokio-tungstenite's echo loop; `send` is `poll_ready` + `start_send` + one `poll_flush`
/// per message, as isosock's tungstenite engine writes.
async fn echo_tungstenite(
    tcp: TcpStream,
    config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
) -> Result<()> {
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        // Pings are answered and the close reply is queued by tungstenite itself; they go out
        // with the next read or write.
        if matches!(msg, Message::Text(_) | Message::Binary(_)) {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

async fn echo_fastwebsockets(mut tcp: TcpStream) -> Result<()> {
    use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
    crate::handshake::accept(&mut tcp).await?;
    let mut ws = WebSocket::after_handshake(tcp, Role::Server);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    ws.set_max_message_size(READ_LIMIT);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn echo_tokio_websockets(tcp: TcpStream) -> Result<()> {
    use tokio_websockets::{Limits, ServerBuilder};
    let (_request, mut ws) = ServerBuilder::new()
        .limits(Limits::default().max_payload_len(Some(READ_LIMIT)))
        .accept(tcp)
        .await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        // Pings and the close handshake are handled by tokio-websockets itself.
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

/// yawc's echo server: its own upgrade ([`crate::handshake::accept_with`]) answering a
/// permessage-deflate offer with the mode's parameters, then yawc on the stream with those
/// extensions, level 1 like isosock and isosock's default thresholds.
async fn serve_yawc(listener: TcpListener, compression: Compression) -> Result<()> {
    let mut opts = yawc::Options::default().with_max_payload_read(READ_LIMIT);
    let answer = match compression {
        Compression::NoContextTakeover => {
            opts = opts
                .with_compression_level(yawc::CompressionLevel::fast())
                .with_compression_threshold(compression.default_threshold())
                .server_no_context_takeover()
                .client_no_context_takeover();
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        }
        Compression::ContextTakeover => {
            opts = opts
                .with_compression_level(yawc::CompressionLevel::fast())
                .with_compression_threshold(compression.default_threshold());
            Some("permessage-deflate")
        }
        _ => None,
    };
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let opts = opts.clone();
        tokio::spawn(async move {
            if let Err(e) = echo_yawc(tcp, opts, answer).await {
                if VERBOSE.load(Ordering::Relaxed) {
                    eprintln!("yawc: connection: {e}");
                }
            }
        });
    }
}

async fn echo_yawc(
    mut tcp: TcpStream,
    opts: yawc::Options,
    answer: Option<&'static str>,
) -> Result<()> {
    use yawc::frame::OpCode;
    // Answer only an offer of permessage-deflate (the isosock client's, in the same mode).
    let agreed = crate::handshake::accept_with(&mut tcp, |offer| {
        answer.filter(|_| offer.is_some_and(|o| o.contains("permessage-deflate")))
    })
    .await?;
    let mut ws =
        yawc::WebSocket::from_stream_with_extensions(tcp, yawc::Role::Server, agreed, opts)?;
    while let Some(frame) = ws.next().await {
        match frame.opcode() {
            OpCode::Text | OpCode::Binary => ws.send(frame).await?,
            OpCode::Close => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}
