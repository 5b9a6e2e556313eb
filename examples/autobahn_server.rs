//! An echo server for Autobahn|Testsuite's fuzzing client (`wstest -m fuzzingclient`),
//! built on `isosock::accept`: every message goes back with its type until the connection
//! ends. `scripts/autobahn.sh` runs it.
//!
//! Usage: `cargo run --release --example autobahn_server -- [PORT]` (default 9002; 0 picks a
//! free port). The first line on stdout is `listening on ws://127.0.0.1:PORT`.
//!
//! It reads messages up to 64 MiB (the 9.x cases send 16 MiB ones) and accepts
//! permessage-deflate with context takeover, compressing every message (the 12.x and 13.x
//! cases).

// Native only: `cargo test --target wasm32-unknown-unknown` builds the examples too.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    native::run()
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::time::Duration;

    use isosock::{accept, AcceptOptions, Compression, Conn, ErrorKind};
    use tokio::net::TcpListener;

    /// The engine, from `ISOSOCK_ENGINE`: unset or `own`, isosock's own engine with
    /// permessage-deflate (context takeover, every message compressed); `tungstenite` (built
    /// with feature `tungstenite`), the tokio-tungstenite engine, which has no compression.
    fn engine_options(opts: AcceptOptions) -> Result<AcceptOptions, String> {
        match std::env::var("ISOSOCK_ENGINE").as_deref() {
            Err(_) | Ok("own") => Ok(opts
                .compression(Compression::ContextTakeover)
                .compression_threshold(0)),
            #[cfg(feature = "tungstenite")]
            Ok("tungstenite") => Ok(opts.engine(isosock::Engine::Tungstenite)),
            Ok(other) => Err(format!(
                "ISOSOCK_ENGINE={other:?}: expected own or tungstenite (with feature tungstenite)"
            )),
        }
    }

    #[tokio::main]
    pub(crate) async fn run() -> Result<(), Box<dyn std::error::Error>> {
        let port: u16 = match std::env::args().nth(1) {
            Some(p) => p.parse().map_err(|_| format!("not a port number: {p:?}"))?,
            None => 9002,
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on ws://{}", listener.local_addr()?);
        let opts = engine_options(AcceptOptions::new().read_limit(64 << 20))?;
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, a connection reset while queued...: the
                    // listener itself still works, so wait a little and go on.
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let opts = opts.clone();
            tokio::spawn(async move {
                let result = match accept(tcp, &opts).await {
                    Ok(conn) => echo(&conn).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    // Most cases break the protocol on purpose; the suite grades how.
                    eprintln!("{peer}: {e}");
                }
            });
        }
    }

    /// Echoes every message on `conn` until the connection ends; a close handshake is the
    /// normal end.
    async fn echo(conn: &Conn) -> isosock::Result<()> {
        loop {
            let msg = match conn.read().await {
                Ok(msg) => msg,
                Err(e) if e.kind() == ErrorKind::Closed => return Ok(()),
                Err(e) => return Err(e),
            };
            conn.write(msg).await?;
        }
    }
}
