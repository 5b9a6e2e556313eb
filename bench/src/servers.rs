//! One echo server per implementation: every text or binary message goes back with its type.
//!
//! Each accepts on 127.0.0.1, turns Nagle's algorithm off on every connection, reads messages
//! up to 16 MiB (tungstenite keeps its default 64 MiB), and uses the same loop shape: read one
//! message, write it back, repeat. Connection errors are counted, not printed (the load
//! generator ends its connections by exiting), unless `--verbose`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

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

/// Runs the echo server for `imp` on `port` (0 picks one) with `threads` runtime workers,
/// printing `listening on ws://127.0.0.1:PORT` first. Never returns unless binding fails.
pub fn run(imp: Impl, port: u16, threads: usize, verbose: bool) -> Result<()> {
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
        serve(imp, listener).await
    })
}

/// Accepts connections forever, spawning an echo task for each.
pub async fn serve(imp: Impl, listener: TcpListener) -> Result<()> {
    let iso_opts = Arc::new(isosock::AcceptOptions::new().read_limit(READ_LIMIT));
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let iso_opts = iso_opts.clone();
        tokio::spawn(async move {
            let res = match imp {
                Impl::Isosock => echo_isosock(tcp, &iso_opts).await,
                Impl::Tungstenite => echo_tungstenite(tcp, false).await,
                Impl::TungsteniteTuned => echo_tungstenite(tcp, true).await,
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

async fn echo_isosock(tcp: TcpStream, opts: &isosock::AcceptOptions) -> Result<()> {
    let conn = isosock::accept(tcp, opts).await?;
    loop {
        let msg = match conn.read().await {
            Ok(m) => m,
            Err(e) if e.kind() == isosock::ErrorKind::Closed => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        conn.write(msg).await?;
    }
}

async fn echo_tungstenite(tcp: TcpStream, tuned: bool) -> Result<()> {
    use tokio_tungstenite::tungstenite::Message;
    let config = tungstenite_config(tuned);
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
