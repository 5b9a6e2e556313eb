//! `chat-cli`: the chat demo in a terminal. The same isosock `dial`, `read`, `write` and
//! `close` as the browser clients, natively on tokio, and the same protocol crate
//! (`isosock-chat-protocol`) as the server and the Leptos and Yew frontends.
//!
//! Usage: `chat-cli URL NICK`, e.g.
//! `cargo run -p isosock-chat-cli -- ws://127.0.0.1:8080/ws ann` against
//! `cargo run --example chat_server --features hyper -- 8080`.
//!
//! It joins the room as `NICK`, prints every message from the server on stdout (`<ann> hi`
//! for chat lines, `* ann joined (2 online)` for the room's news), and sends each line read
//! from stdin. End of input (Ctrl-D, or the end of a pipe) or Ctrl-C leaves with a 1000
//! (normal closure) close handshake. Status goes to stderr, so stdout holds only the chat:
//! `printf 'hi\n' | chat-cli URL bot` says one line and leaves.
//!
//! Lines are paced to the server's rate limit, so a piped file is sent in full instead of
//! getting the client disconnected. Control characters from the network are printed escaped,
//! never raw to the terminal.
//!
//! Exit status: 0 after a clean leave, 1 when the connection failed or the server ended it,
//! 2 for bad arguments.

// Native only: `cargo build --workspace --target wasm32-unknown-unknown` builds it too.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::io::BufRead;
    use std::process::ExitCode;
    use std::time::Duration;

    use isosock::{dial, Conn, DialOptions, Error, ErrorKind, Message, StatusCode};
    use isosock_chat_protocol::{self as protocol, ClientMsg, ServerMsg};
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    /// Limit for the dial, so an unreachable server fails in seconds, not the default 30 s.
    const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
    /// Lines read ahead from stdin while the pacing waits.
    const LINE_QUEUE: usize = 64;

    const USAGE: &str = "usage: chat-cli URL NICK   (e.g. chat-cli ws://127.0.0.1:8080/ws ann)";

    pub(crate) fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let (url, nick) = match args.as_slice() {
            [flag] if flag == "-h" || flag == "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            [url, nick] => (url.clone(), nick.clone()),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        };
        let Some(nick) = protocol::clean_nick(&nick) else {
            eprintln!("chat-cli: the nickname is blank");
            return ExitCode::from(2);
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("chat-cli: cannot start the tokio runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(run(&url, nick)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chat-cli: {e}");
                ExitCode::FAILURE
            }
        }
        // Returning from `main` ends the process, and with it the stdin thread, which may
        // still be blocked in a read.
    }

    /// Joins, then relays between the connection and the terminal until one side ends.
    async fn run(url: &str, nick: String) -> Result<(), String> {
        let opts = DialOptions::new().timeout(DIAL_TIMEOUT);
        let (conn, _response) = dial(url, &opts)
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        let hello = encode(&ClientMsg::Hello { nick: nick.clone() })?;
        conn.write(Message::text(hello))
            .await
            .map_err(|e| format!("cannot join: {}", describe(&e)))?;
        eprintln!("chat-cli: connected to {url} as {nick}; end input (Ctrl-D) to leave");

        let mut lines = stdin_lines();
        let mut pace = Pace::new();
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                // `read` is cancel-safe: a message is never lost when another branch wins.
                msg = conn.read() => match msg {
                    Ok(Message::Text(text)) => show(&text),
                    Ok(Message::Binary(b)) => {
                        eprintln!("chat-cli: ignored a {}-byte binary message", b.len());
                    }
                    Err(e) => return Err(format!("disconnected: {}", describe(&e))),
                },
                line = lines.recv() => match line {
                    Some(line) => say(&conn, &line, &mut pace).await?,
                    None => return leave(&conn, "end of input").await,
                },
                _ = &mut ctrl_c => return leave(&conn, "interrupted").await,
            }
        }
    }

    /// Closes with 1000 and waits for the server's answer, printing the messages that still
    /// arrive before it: ones the server sent before it saw our close (some may already be
    /// here, unread, when input ends) are shown, not dropped.
    async fn leave(conn: &Conn, why: &str) -> Result<(), String> {
        let printing = async {
            // Ends with the error that reports the close (or whatever ended the connection).
            while let Ok(msg) = conn.read().await {
                if let Message::Text(text) = msg {
                    show(&text);
                }
            }
        };
        // `biased`: the reader is polled first and holds the read lock from the start, so the
        // close never reads (and discards) a message itself; it waits for the reader to see
        // the server's close.
        let ((), closed) = tokio::join!(
            biased;
            printing,
            conn.close(StatusCode::NORMAL_CLOSURE, "bye")
        );
        closed.map_err(|e| format!("{why}; closing failed: {}", describe(&e)))?;
        eprintln!("chat-cli: {why}; left the room (closed with 1000)");
        Ok(())
    }

    /// Sends one stdin line as a `say`, after waiting for the rate limit if needed.
    async fn say(conn: &Conn, line: &str, pace: &mut Pace) -> Result<(), String> {
        let text = line.trim();
        if text.is_empty() {
            return Ok(());
        }
        let json = encode(&ClientMsg::Say {
            text: protocol::clip_text(text),
        })?;
        if json.len() > protocol::MAX_MESSAGE_BYTES {
            // Only text full of control characters grows this much when escaped; the server
            // would close the connection for it.
            eprintln!(
                "chat-cli: not sent: over the server's {} bytes",
                protocol::MAX_MESSAGE_BYTES
            );
            return Ok(());
        }
        pace.wait().await;
        conn.write(Message::text(json))
            .await
            .map_err(|e| format!("disconnected while sending: {}", describe(&e)))
    }

    /// Prints one message from the server.
    fn show(text: &str) {
        match serde_json::from_str::<ServerMsg>(text) {
            Ok(ServerMsg::Msg { nick, text }) => {
                println!("<{}> {}", printable(&nick), printable(&text));
            }
            Ok(ServerMsg::System { text, online }) => {
                println!("* {} ({online} online)", printable(&text));
            }
            Ok(ServerMsg::Unknown) => {}
            Err(e) => eprintln!(
                "chat-cli: ignored a message it cannot read ({e}): {}",
                printable(text)
            ),
        }
    }

    fn encode(msg: &ClientMsg) -> Result<String, String> {
        serde_json::to_string(msg).map_err(|e| format!("cannot encode {msg:?}: {e}"))
    }

    /// `text` with control characters (newlines, escape sequences) escaped, so what others
    /// typed cannot move the cursor or recolour the terminal.
    fn printable(text: &str) -> String {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    }

    /// Why a connection ended, in a few words: close code and reason first.
    fn describe(e: &Error) -> String {
        match (e.kind(), e.close_frame()) {
            (_, Some(f)) if f.reason.is_empty() => format!("closed by the server ({})", f.code),
            (_, Some(f)) => format!("closed by the server ({} {})", f.code, f.reason),
            (ErrorKind::ConnectionLost, _) => "connection lost (1006)".to_owned(),
            _ => e.to_string(),
        }
    }

    /// Reads stdin line by line on its own thread (a blocking read cannot be cancelled, so it
    /// stays off the runtime); the channel closes at end of input or on a read error.
    fn stdin_lines() -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel(LINE_QUEUE);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(line) => {
                        if tx.blocking_send(line).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        eprintln!("chat-cli: cannot read stdin: {e}");
                        return;
                    }
                }
            }
        });
        rx
    }

    /// The server's token bucket, mirrored with one token less (for the jitter between our
    /// clock and the server's), so that sending never makes the server close for rate.
    #[derive(Debug)]
    struct Pace {
        tokens: f64,
        last: Instant,
    }

    /// The bucket's size: one token of margin below the server's.
    const CAPACITY: f64 = protocol::RATE_BURST - 1.0;

    impl Pace {
        fn new() -> Self {
            Pace {
                tokens: CAPACITY,
                last: Instant::now(),
            }
        }

        /// Waits until one message may be sent, and takes its token.
        async fn wait(&mut self) {
            self.refill();
            if self.tokens < 1.0 {
                let missing = 1.0 - self.tokens;
                // A little over the exact time, so the server's bucket is full enough too.
                let delay = Duration::from_secs_f64(missing / protocol::RATE_PER_SECOND)
                    + Duration::from_millis(20);
                tokio::time::sleep(delay).await;
                self.refill();
            }
            self.tokens = (self.tokens - 1.0).max(0.0);
        }

        fn refill(&mut self) {
            let now = Instant::now();
            let earned = now.duration_since(self.last).as_secs_f64() * protocol::RATE_PER_SECOND;
            self.tokens = (self.tokens + earned).min(CAPACITY);
            self.last = now;
        }
    }
}
