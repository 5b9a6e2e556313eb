//! The chat demo's protocol on an axum server: isosock's `accept_http` in an ordinary axum
//! handler, with no other glue. The route `GET /ws` upgrades to the chat; `GET /` is a plain
//! page, to show the two living side by side in one `Router`.
//!
//! Usage: `cargo run --example axum_chat --features hyper -- [PORT]` (default 8080, 0 picks a
//! free one). The first line on stdout is `axum chat on http://127.0.0.1:PORT/`. Talk to it with
//! the terminal client: `cargo run -p isosock-chat-cli -- ws://127.0.0.1:8080/ws ann`.
//!
//! Protocol and limits: those of `examples/chat_server.rs` (the hyper version, which also
//! serves the browser page), typed in `examples/chat-protocol`: a hello first (within 10 s, or
//! 1008), then `say` messages broadcast to everyone; messages over 4 KiB close the connection
//! with 1009, more than 10 in a burst or 5 per second sustained with 1008, binary messages
//! with 1003; a client that falls 256 messages behind the room is dropped, and one from which
//! nothing (not even a pong) arrives for a minute is dropped as gone. Ctrl-C closes every
//! connection with 1001 (going away).

// Native only: `cargo test --target wasm32-unknown-unknown` builds the examples too.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)] // unused where the tests include this file as a module
fn main() -> Result<(), Box<dyn std::error::Error>> {
    native::run()
}

#[cfg(not(target_arch = "wasm32"))]
#[allow(unused_imports)]
pub use native::*;

#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)] // the native tests include this file as a module and use parts of it
mod native {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use axum::extract::{Request, State};
    use axum::response::{Html, IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;
    use isosock::{accept_http, AcceptOptions, Compression, Conn, Heartbeat, Message, StatusCode};
    use isosock_chat_protocol::{self as protocol, ClientMsg, ServerMsg};
    use tokio::net::TcpListener;
    use tokio::sync::broadcast::{self, error::RecvError};

    /// Messages a client may fall behind the room before it is dropped.
    const QUEUE: usize = 256;
    /// Time for a client's hello, from the upgrade.
    const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
    /// Time after which a client that sends nothing (no pong either) is dropped.
    const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

    /// The page at `/`.
    const INDEX: &str = "<!doctype html><title>isosock chat</title>\
        <p>isosock's chat on axum: the WebSocket is at <code>/ws</code>.</p>\n";

    /// What the room sends to every client's session.
    #[derive(Debug, Clone)]
    enum Event {
        /// A `ServerMsg`, encoded once for everyone.
        Text(Arc<str>),
        /// The server is shutting down.
        GoingAway,
    }

    /// Everyone in the chat: one broadcast channel, one receiver per client.
    #[derive(Debug, Clone)]
    pub struct Room {
        tx: broadcast::Sender<Event>,
    }

    impl Default for Room {
        fn default() -> Self {
            Room {
                tx: broadcast::channel(QUEUE).0,
            }
        }
    }

    impl Room {
        /// Sends `msg` to everyone in the room.
        fn broadcast(&self, msg: &ServerMsg) {
            match serde_json::to_string(msg) {
                // Fails only when nobody is in the room.
                Ok(text) => drop(self.tx.send(Event::Text(text.into()))),
                // Only `ServerMsg::Unknown` cannot be encoded, and the server never makes one.
                Err(e) => eprintln!("cannot encode {msg:?}: {e}"),
            }
        }

        /// How many clients are in the room, for `ServerMsg::System`.
        fn online_count(&self) -> u32 {
            u32::try_from(self.tx.receiver_count()).unwrap_or(u32::MAX)
        }

        /// Closes every client with 1001 and waits (at most `limit`) until all have left.
        pub async fn close_all(&self, limit: Duration) {
            let _ = self.tx.send(Event::GoingAway);
            let _ = tokio::time::timeout(limit, self.tx.closed()).await;
        }
    }

    /// The chat as an axum app: a plain page at `/`, the chat's WebSocket at `/ws`.
    pub fn app(room: Room) -> Router {
        Router::new()
            .route("/", get(|| async { Html(INDEX) }))
            .merge(chat_routes(room))
    }

    /// The chat's WebSocket route alone (`/ws`), to merge into any app's `Router`: the Leptos
    /// example's server (`examples/leptos-chat`) mounts it beside its rendered page.
    pub fn chat_routes(room: Room) -> Router {
        Router::new()
            .route(protocol::WS_PATH, get(chat))
            .with_state(room)
    }

    /// The WebSocket route: `accept_http` checks the request and answers `101`, or refuses it
    /// with the status it chose (`426 Upgrade Required` for a plain GET, `403` for a
    /// cross-origin page, ...); the connection itself arrives in a task once axum has sent
    /// the `101`.
    async fn chat(State(room): State<Room>, mut req: Request) -> Response {
        // Same-origin pages only (the default), compression without context takeover (no
        // DEFLATE state held between messages), and the protocol's message size limit.
        let opts = AcceptOptions::new()
            .read_limit(protocol::MAX_MESSAGE_BYTES)
            .compression(Compression::NoContextTakeover);
        match accept_http(&mut req, &opts) {
            Ok((response, upgrading)) => {
                tokio::spawn(async move {
                    match upgrading.await {
                        Ok(conn) => session(Arc::new(conn), &room).await,
                        Err(e) => eprintln!("upgrade failed: {e}"),
                    }
                });
                response.into_response()
            }
            // isosock's `Rejection::into_response` gives the `http::Response<String>` to
            // send; axum's `IntoResponse` takes it from there.
            Err(rejection) => rejection.into_response().into_response(),
        }
    }

    /// The example's entry point.
    #[tokio::main]
    pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
        let port: u16 = match std::env::args().nth(1) {
            Some(p) => p.parse().map_err(|_| format!("not a port number: {p:?}"))?,
            None => 8080,
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("axum chat on http://{}/", listener.local_addr()?);
        let room = Room::default();
        tokio::select! {
            served = axum::serve(listener, app(room.clone())) => served?,
            _ = tokio::signal::ctrl_c() => {
                println!("shutting down: closing {} connections with 1001", room.online_count());
                room.close_all(Duration::from_secs(5)).await;
            }
        }
        Ok(())
    }

    /// One chat client, from its hello to its close.
    async fn session(conn: Arc<Conn>, room: &Room) {
        // The first message must be the hello with a nickname, in time.
        let nick = match tokio::time::timeout(HELLO_TIMEOUT, conn.read()).await {
            Ok(Ok(Message::Text(t))) => match serde_json::from_str(&t) {
                Ok(ClientMsg::Hello { nick }) => protocol::clean_nick(&nick),
                _ => None,
            },
            _ => None,
        };
        let Some(nick) = nick else {
            let why = "expected a hello with a nickname";
            let _ = conn.close(StatusCode::POLICY_VIOLATION, why).await;
            return;
        };
        // From now on a client that goes silent, not even answering pings, is dropped.
        if let Err(e) = Heartbeat::ping(IDLE_TIMEOUT / 2, IDLE_TIMEOUT / 2).start(&conn) {
            eprintln!("no idle timeout for {nick}: {e}");
        }
        let mut events = room.tx.subscribe();
        room.broadcast(&ServerMsg::System {
            text: format!("{nick} joined"),
            online: room.online_count(),
        });

        let mut rate = RateLimit::new();
        // Why the server ends the connection, when it is the one to end it.
        let close = loop {
            // Both are cancel-safe: whichever loses the race has lost nothing.
            let next = tokio::select! {
                msg = conn.read() => Next::Message(msg),
                event = events.recv() => Next::Event(event),
            };
            match next {
                Next::Message(Ok(Message::Text(text))) => {
                    if !rate.take() {
                        break Some((StatusCode::POLICY_VIOLATION, "rate limit exceeded"));
                    }
                    // Anything but a well-formed `say` (a second hello, an unknown type) is
                    // ignored.
                    if let Ok(ClientMsg::Say { text }) = serde_json::from_str(&text) {
                        let text = protocol::clip_text(&text);
                        let nick = nick.clone();
                        room.broadcast(&ServerMsg::Msg { nick, text });
                    }
                }
                Next::Message(Ok(Message::Binary(_))) => {
                    break Some((StatusCode::UNSUPPORTED_DATA, "text messages only"));
                }
                Next::Message(Err(_)) => break None,
                Next::Event(Ok(Event::Text(text))) => {
                    if conn.write(Message::text(&*text)).await.is_err() {
                        break None;
                    }
                }
                Next::Event(Ok(Event::GoingAway)) => {
                    break Some((StatusCode::GOING_AWAY, "server shutting down"));
                }
                // Too slow to keep up with the room: dropped, not buffered without bound.
                Next::Event(Err(RecvError::Lagged(_))) => {
                    eprintln!("{nick} is too slow; closing it");
                    conn.close_now();
                    break None;
                }
                Next::Event(Err(RecvError::Closed)) => break None,
            }
        };
        if let Some((code, reason)) = close {
            let _ = conn.close(code, reason).await;
        }
        // Out of the room (which `Room::close_all` waits for), then counted out.
        drop(events);
        room.broadcast(&ServerMsg::System {
            text: format!("{nick} left"),
            online: room.online_count(),
        });
    }

    /// What a session's loop woke up for.
    enum Next {
        Message(isosock::Result<Message>),
        Event(Result<Event, RecvError>),
    }

    /// A token bucket: [`protocol::RATE_BURST`] at once, [`protocol::RATE_PER_SECOND`] sustained.
    #[derive(Debug)]
    struct RateLimit {
        tokens: f64,
        last: Instant,
    }

    impl RateLimit {
        fn new() -> Self {
            RateLimit {
                tokens: protocol::RATE_BURST,
                last: Instant::now(),
            }
        }

        /// Takes a token for one message; `false` when there is none left.
        fn take(&mut self) -> bool {
            let now = Instant::now();
            let refill = now.duration_since(self.last).as_secs_f64() * protocol::RATE_PER_SECOND;
            self.tokens = (self.tokens + refill).min(protocol::RATE_BURST);
            self.last = now;
            if self.tokens < 1.0 {
                return false;
            }
            self.tokens -= 1.0;
            true
        }
    }
}
