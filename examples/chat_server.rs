//! The chat demo's server: serves `www/` over HTTP and relays chat messages over WebSocket at
//! `/ws`, with isosock's `accept_http` inside a hyper 1.x service.
//!
//! Usage: `cargo run --example chat_server --features hyper -- [PORT] [WWW_DIR]`
//! (default port 8080, 0 picks a free one; default directory `www`). The first line on stdout
//! is `chat server on http://127.0.0.1:PORT/`.
//!
//! Protocol (JSON text messages): the client sends `{"type":"hello","nick":"ann"}` once, then
//! `{"type":"say","text":"hi"}`; the server broadcasts `{"type":"msg","nick":..,"text":..}`
//! and `{"type":"system","text":..,"online":n}`. The messages and limits are typed once in
//! `examples/chat-protocol` (crate `isosock-chat-protocol`), which every client shares.
//!
//! Limits: messages over 4 KiB close the connection with 1009 (isosock's read limit); more than
//! 10 messages in a burst or 5 per second sustained closes it with 1008; a client whose 256
//! pending outgoing messages are not drained is closed at once instead of buffered without
//! bound; Ctrl-C closes every connection with 1001 (going away).

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
    use std::collections::HashMap;
    use std::convert::Infallible;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response, StatusCode as HttpStatus};
    use hyper_util::rt::TokioIo;
    use isosock::{accept_http, AcceptOptions, Conn, Message, StatusCode};
    use isosock_chat_protocol::{self as protocol, ClientMsg, ServerMsg};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// Largest chat message accepted, in bytes.
    const READ_LIMIT: usize = protocol::MAX_MESSAGE_BYTES;
    /// Outgoing messages queued per client before it counts as too slow.
    const QUEUE: usize = 256;
    /// Rate limit: a burst of 10, refilled at 5 per second.
    const BURST: f64 = protocol::RATE_BURST;
    const PER_SECOND: f64 = protocol::RATE_PER_SECOND;

    #[derive(Default)]
    struct Room {
        next_id: AtomicU64,
        clients: Mutex<HashMap<u64, Client>>,
    }

    struct Client {
        tx: mpsc::Sender<Arc<str>>,
        conn: Arc<Conn>,
    }

    impl Room {
        fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Client>> {
            self.clients.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Sends `msg` to everyone; a client whose queue is full is disconnected, not waited for.
        fn broadcast(&self, msg: &ServerMsg) {
            let text: Arc<str> = match serde_json::to_string(msg) {
                Ok(text) => text.into(),
                // Only `ServerMsg::Unknown` cannot be encoded, and the server never makes one.
                Err(e) => {
                    eprintln!("cannot encode {msg:?}: {e}");
                    return;
                }
            };
            let mut slow = Vec::new();
            let mut clients = self.clients();
            for (id, c) in clients.iter() {
                if c.tx.try_send(text.clone()).is_err() {
                    slow.push(*id);
                }
            }
            for id in slow {
                if let Some(c) = clients.remove(&id) {
                    eprintln!("client {id} is too slow; closing it");
                    c.conn.close_now();
                }
            }
        }

        /// How many clients are in the room, for `ServerMsg::System`.
        fn online_count(&self) -> u32 {
            u32::try_from(self.clients().len()).unwrap_or(u32::MAX)
        }
    }

    /// The example's entry point.
    #[tokio::main]
    pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
        let mut args = std::env::args().skip(1);
        let port: u16 = match args.next() {
            Some(p) => p.parse().map_err(|_| format!("not a port number: {p:?}"))?,
            None => 8080,
        };
        let www: PathBuf = args.next().unwrap_or_else(|| "www".to_owned()).into();
        if !www.join("index.html").exists() {
            return Err(format!("{} has no index.html", www.display()).into());
        }
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("chat server on http://{}/", listener.local_addr()?);
        let room = Arc::new(Room::default());
        let www = Arc::new(www);

        let serve = {
            let room = room.clone();
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let (room, www) = (room.clone(), www.clone());
                    tokio::spawn(async move {
                        let service = service_fn(move |req| handle(req, room.clone(), www.clone()));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service)
                            .with_upgrades()
                            .await;
                    });
                }
            }
        };
        tokio::select! {
            _ = serve => {}
            _ = tokio::signal::ctrl_c() => {
                let conns: Vec<_> = room.clients().values().map(|c| c.conn.clone()).collect();
                println!("shutting down: closing {} connections with 1001", conns.len());
                let closes = conns.iter().map(|c| c.close(StatusCode::GOING_AWAY, "server shutting down"));
                let _ = tokio::time::timeout(Duration::from_secs(5), futures_util::future::join_all(closes)).await;
            }
        }
        Ok(())
    }

    async fn handle(
        mut req: Request<Incoming>,
        room: Arc<Room>,
        www: Arc<PathBuf>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        if req.uri().path() == protocol::WS_PATH {
            // Pages are served from this same origin, so the default same-origin check applies.
            let opts = AcceptOptions::new().read_limit(READ_LIMIT);
            let resp = match accept_http(&mut req, &opts) {
                Ok((resp, upgrading)) => {
                    tokio::spawn(async move {
                        if let Ok(conn) = upgrading.await {
                            session(Arc::new(conn), room).await;
                        }
                    });
                    resp
                }
                Err(rejection) => rejection.into_response(),
            };
            return Ok(resp.map(|b| Full::new(Bytes::from(b))));
        }
        Ok(static_file(&www, req.uri().path()).await)
    }

    async fn static_file(www: &Path, path: &str) -> Response<Full<Bytes>> {
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "index.html" } else { rel };
        let reply = |status: HttpStatus, ctype: &str, body: Bytes| {
            let mut r = Response::new(Full::new(body));
            *r.status_mut() = status;
            if let Ok(v) = ctype.parse() {
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            r
        };
        if rel
            .split('/')
            .any(|seg| seg == ".." || seg.starts_with('.'))
        {
            return reply(
                HttpStatus::NOT_FOUND,
                "text/plain",
                Bytes::from("not found\n"),
            );
        }
        let ctype = match Path::new(rel).extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js" | "mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("wasm") => "application/wasm",
            Some("png") => "image/png",
            Some("json") => "application/json",
            _ => "application/octet-stream",
        };
        match tokio::fs::read(www.join(rel)).await {
            Ok(body) => reply(HttpStatus::OK, ctype, Bytes::from(body)),
            Err(_) => reply(
                HttpStatus::NOT_FOUND,
                "text/plain",
                Bytes::from("not found\n"),
            ),
        }
    }

    /// One chat client, from its hello to its close.
    async fn session(conn: Arc<Conn>, room: Arc<Room>) {
        // The first message must be the hello with a nickname.
        let nick = match conn.read().await {
            Ok(Message::Text(t)) => match serde_json::from_str(&t) {
                Ok(ClientMsg::Hello { nick }) => protocol::clean_nick(&nick),
                _ => None,
            },
            _ => None,
        };
        let Some(nick) = nick else {
            let _ = conn
                .close(
                    StatusCode::POLICY_VIOLATION,
                    "expected a hello with a nickname",
                )
                .await;
            return;
        };
        let id = room.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel::<Arc<str>>(QUEUE);
        room.clients().insert(
            id,
            Client {
                tx,
                conn: conn.clone(),
            },
        );
        room.broadcast(&ServerMsg::System {
            text: format!("{nick} joined"),
            online: room.online_count(),
        });

        let writer = {
            let conn = conn.clone();
            tokio::spawn(async move {
                while let Some(text) = rx.recv().await {
                    if conn.write(Message::text(&*text)).await.is_err() {
                        break;
                    }
                }
            })
        };

        let mut tokens = BURST;
        let mut last = Instant::now();
        loop {
            let msg = match conn.read().await {
                Ok(Message::Text(t)) => t,
                Ok(Message::Binary(_)) => {
                    let _ = conn
                        .close(StatusCode::UNSUPPORTED_DATA, "text messages only")
                        .await;
                    break;
                }
                Err(_) => break,
            };
            let now = Instant::now();
            tokens = (tokens + now.duration_since(last).as_secs_f64() * PER_SECOND).min(BURST);
            last = now;
            if tokens < 1.0 {
                let _ = conn
                    .close(StatusCode::POLICY_VIOLATION, "rate limit exceeded")
                    .await;
                break;
            }
            tokens -= 1.0;
            // Anything but a well-formed `say` (a second hello, an unknown type) is ignored.
            if let Ok(ClientMsg::Say { text }) = serde_json::from_str(&msg) {
                room.broadcast(&ServerMsg::Msg {
                    nick: nick.clone(),
                    text: protocol::clip_text(&text),
                });
            }
        }
        room.clients().remove(&id);
        writer.abort();
        room.broadcast(&ServerMsg::System {
            text: format!("{nick} left"),
            online: room.online_count(),
        });
    }
}
