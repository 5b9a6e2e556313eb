//! A client for Autobahn|Testsuite's fuzzing server (`wstest -m fuzzingserver`), built on
//! `isosock::dial`: it runs every case, echoing each message back with its type until the
//! suite closes the connection, then asks the suite to write its reports.
//! `scripts/autobahn.sh` runs it.
//!
//! Usage: `cargo run --release --example autobahn_client -- [URL]` (default
//! `ws://127.0.0.1:9001`, the fuzzing server's address).
//!
//! It reads messages up to 64 MiB (the 9.x cases send 16 MiB ones) and offers
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
    use isosock::{dial, Compression, Conn, DialOptions, ErrorKind};

    const AGENT: &str = "isosock";

    /// The engine, from `ISOSOCK_ENGINE`: unset or `own`, isosock's own engine with
    /// permessage-deflate (context takeover, every message compressed); `tungstenite` (built
    /// with feature `tungstenite`), the tokio-tungstenite engine, which has no compression.
    fn engine_options(opts: DialOptions) -> Result<DialOptions, String> {
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
        let base = std::env::args()
            .nth(1)
            .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
        let opts = engine_options(DialOptions::new().read_limit(64 << 20))?;

        let (conn, _) = dial(&format!("{base}/getCaseCount"), &opts)
            .await
            .map_err(|e| format!("{base}/getCaseCount: {e}"))?;
        let msg = conn.read().await?;
        let count: u32 = msg
            .as_text()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| format!("getCaseCount answered {msg:?}, not a number"))?;
        drop(echo(&conn).await); // the suite closes it next
        println!("{count} cases");

        for case in 1..=count {
            let url = format!("{base}/runCase?case={case}&agent={AGENT}");
            match dial(&url, &opts).await {
                Ok((conn, _)) => {
                    if let Err(e) = echo(&conn).await {
                        // Most cases break the protocol on purpose; the suite grades how.
                        eprintln!("case {case}: {e}");
                    }
                }
                // The suite's report shows the case as failed; go on with the next one.
                Err(e) => eprintln!("case {case}: dial: {e}"),
            }
        }

        let url = format!("{base}/updateReports?agent={AGENT}");
        let (conn, _) = dial(&url, &opts).await.map_err(|e| format!("{url}: {e}"))?;
        drop(echo(&conn).await); // the suite closes it once the reports are written
        println!("reports updated");
        Ok(())
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
