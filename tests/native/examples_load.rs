//! The example servers under load: a small file-descriptor limit, slow and idle clients; and
//! the chat server's permessage-deflate.

use std::future::Future;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isosock::{dial, DialOptions, Message};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::util::{bounded, echo_url};

/// Bound on one step of a test (a connect, a read to the end, a dial): far above the
/// timeouts the tests set, so reaching it means the server never did what it should.
const STEP: Duration = Duration::from_secs(15);

/// The open-file limit of a server in a child process.
const FD_LIMIT: u64 = 64;

/// Connections the parent opens against that server: well over its limit.
const CONNS: usize = 150;

/// Runs `fut` within [`STEP`].
async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {STEP:?}"))
}

// ---------------------------------------------------------------------------------------
// The echo server.

/// Asks the echo server at `url` how many connections it counted for `id`.
async fn count(url: &str, id: &str) -> String {
    let (conn, _) = dial(&format!("{url}?id={id}"), &DialOptions::new())
        .await
        .expect("dial");
    conn.write("!count").await.expect("write");
    let n = match conn.read().await.expect("read") {
        Message::Text(t) => t,
        other => panic!("unexpected {other:?}"),
    };
    conn.close_now();
    n
}

#[tokio::test]
async fn echo_server_count_map_forgets_the_least_recent_id_beyond_its_cap() {
    use crate::echo_server::MAX_IDS;
    bounded(async {
        let url = echo_url().await;
        assert_eq!(count(&url, "first").await, "1");
        assert_eq!(count(&url, "first").await, "2", "counted per id");
        for i in 0..MAX_IDS {
            assert_eq!(count(&url, &format!("other-{i}")).await, "1");
        }
        assert_eq!(
            count(&url, "first").await,
            "1",
            "the least recently connected id is forgotten beyond {MAX_IDS} ids"
        );
        let last = format!("other-{}", MAX_IDS - 1);
        assert_eq!(count(&url, &last).await, "2", "a recent id is remembered");
    })
    .await;
}

#[tokio::test]
async fn echo_server_big_reply_is_capped() {
    use crate::echo_server::BIG_MAX;
    bounded(async {
        let opts = DialOptions::new().read_limit(128 << 20);
        let (conn, _) = dial(&echo_url().await, &opts).await.expect("dial");
        for (asked, sent) in [(5000, 5000), (BIG_MAX, BIG_MAX), (100_000_000, BIG_MAX)] {
            conn.write(format!("!big {asked}")).await.expect("write");
            match conn.read().await.expect("read") {
                Message::Binary(b) => {
                    assert_eq!(b.len(), sent, "!big {asked}");
                    assert!(b.iter().all(|&x| x == 0xAB), "!big {asked}: the bytes");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn echo_server_keeps_serving_at_its_fd_limit() {
    let name = "echo_server_keeps_serving_at_its_fd_limit";
    if run_in_child(name, |l| tokio::spawn(crate::echo_server::serve(l))).await {
        return;
    }
    bounded(async {
        let mut server = ChildServer::start(name).await;
        let mut held = Vec::new();
        for _ in 0..CONNS {
            held.push(
                within("connect", TcpStream::connect(server.addr))
                    .await
                    .expect("connect"),
            );
        }
        // Accepting fails with EMFILE (os error 24) once the server is at its limit; the
        // server used to exit there.
        server.wait_for_log("os error 24").await;
        assert!(server.alive(), "the server exited at its fd limit");
        drop(held);
        let url = format!("ws://{}/echo", server.addr);
        let opts = DialOptions::new().timeout(STEP);
        let (conn, _) = within("dial after the load", dial(&url, &opts))
            .await
            .expect("dial after the load");
        conn.write("still serving").await.expect("write");
        assert_eq!(
            within("echo", conn.read()).await.expect("read"),
            Message::text("still serving")
        );
        assert!(server.alive());
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// The chat server (feature `hyper`).

#[cfg(feature = "hyper")]
mod chat {
    use std::path::PathBuf;

    use isosock::{close_status, StatusCode};
    use isosock_chat_protocol::{ClientMsg, ServerMsg};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::chat_server::{self, Limits};

    /// Reads `stream` to its end (a clean close or a reset); returns what arrived before it.
    async fn read_until_closed(what: &str, stream: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        within(what, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        got
    }

    /// The limits of the tests: short timeouts, so that a test sees them act.
    fn short() -> Limits {
        Limits {
            head_timeout: Duration::from_millis(200),
            hello_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
            ..Limits::default()
        }
    }

    fn www() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www")
    }

    /// Starts the chat server with `limits` on a loopback port of this process.
    async fn start(limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(chat_server::serve(listener, www(), limits, Arc::default()));
        addr
    }

    /// The start of an HTTP request head, never finished.
    const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";

    /// `GET /` on a connection of its own; the whole response, once the server closed.
    async fn get(addr: SocketAddr) -> Vec<u8> {
        let mut tcp = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .expect("write the request");
        read_until_closed("the response", &mut tcp).await
    }

    /// Joins the chat as `nick`; returns the connection once the server said `nick joined`.
    async fn join(addr: SocketAddr, nick: &str) -> isosock::Conn {
        join_with(addr, nick, DialOptions::new()).await
    }

    /// [`join`] dialing with `opts`.
    async fn join_with(addr: SocketAddr, nick: &str, opts: DialOptions) -> isosock::Conn {
        let url = format!("ws://{addr}{}", isosock_chat_protocol::WS_PATH);
        let (conn, _) = within("dial", dial(&url, &opts)).await.expect("dial");
        let hello = ClientMsg::Hello { nick: nick.into() };
        conn.write(serde_json::to_string(&hello).expect("json"))
            .await
            .expect("write the hello");
        let joined = format!("{nick} joined");
        loop {
            let Message::Text(t) = within("the join", conn.read()).await.expect("read") else {
                panic!("a binary message");
            };
            if matches!(serde_json::from_str(&t), Ok(ServerMsg::System { text, .. }) if text == joined)
            {
                return conn;
            }
        }
    }

    #[tokio::test]
    async fn chat_server_closes_slowloris_heads_after_the_head_timeout() {
        bounded(async {
            let addr = start(short()).await;
            let mut slow = Vec::new();
            for _ in 0..20 {
                let mut tcp = within("connect", TcpStream::connect(addr))
                    .await
                    .expect("connect");
                tcp.write_all(PARTIAL_HEAD).await.expect("write");
                slow.push(tcp);
            }
            // A keep-alive connection after its first response waits for a head too.
            let mut kept = within("connect", TcpStream::connect(addr))
                .await
                .expect("connect");
            kept.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .await
                .expect("write");
            for tcp in &mut slow {
                read_until_closed("a slow head's connection", tcp).await;
            }
            let answered = read_until_closed("the idle keep-alive connection", &mut kept).await;
            assert!(
                answered.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&answered)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn chat_server_closes_a_client_that_never_says_hello() {
        bounded(async {
            let addr = start(short()).await;
            let url = format!("ws://{addr}{}", isosock_chat_protocol::WS_PATH);
            let (conn, _) = dial(&url, &DialOptions::new()).await.expect("dial");
            let err = within("the close", conn.read())
                .await
                .expect_err("closed without a hello");
            assert_eq!(
                close_status(&err),
                Some(StatusCode::POLICY_VIOLATION),
                "{err}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn chat_server_drops_a_client_that_stops_answering() {
        bounded(async {
            let addr = start(short()).await;
            // By hand, so that nothing answers the server's pings.
            let mut tcp = within("connect", TcpStream::connect(addr))
                .await
                .expect("connect");
            tcp.write_all(
                b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n",
            )
            .await
            .expect("write the upgrade request");
            let hello = br#"{"type":"hello","nick":"mute"}"#;
            // A masked text frame; the mask 0 leaves the payload as it is.
            let mut frame = vec![0x81, 0x80 | hello.len() as u8, 0, 0, 0, 0];
            frame.extend_from_slice(hello);
            tcp.write_all(&frame).await.expect("write the hello");
            let got = read_until_closed("the silent client's connection", &mut tcp).await;
            let text = String::from_utf8_lossy(&got);
            let head_end = text.find("\r\n\r\n").expect("a response head") + 4;
            assert!(text.starts_with("HTTP/1.1 101"), "{text}");
            let opcodes = opcodes(&got[head_end..]);
            assert!(opcodes.contains(&0x1), "the join message: {opcodes:?}");
            assert!(
                opcodes.contains(&0x9),
                "a ping before the drop: {opcodes:?}"
            );
        })
        .await;
    }

    /// The chat server takes permessage-deflate without context takeover whatever the client
    /// asks for (here to keep its context), relays a `say` long enough to be compressed
    /// intact, and still serves a client that offers no compression.
    #[tokio::test]
    async fn chat_server_compresses_without_context_takeover() {
        bounded(async {
            let addr = start(Limits::default()).await;
            let url = format!("ws://{addr}{}", isosock_chat_protocol::WS_PATH);
            let opts = DialOptions::new().compression(isosock::Compression::ContextTakeover);
            let (ann, resp) = within("dial", dial(&url, &opts)).await.expect("dial");
            let deflate =
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
            assert_eq!(resp.extensions(), deflate);
            assert_eq!(ann.extensions(), deflate);
            let hello = ClientMsg::Hello { nick: "ann".into() };
            ann.write(serde_json::to_string(&hello).expect("json"))
                .await
                .expect("write the hello");
            // Over the 512-byte threshold both ways, within the 1000 characters kept.
            let text = "compress me ".repeat(80);
            let say = ClientMsg::Say { text: text.clone() };
            ann.write(serde_json::to_string(&say).expect("json"))
                .await
                .expect("write the say");
            let said = ServerMsg::Msg {
                nick: "ann".into(),
                text,
            };
            loop {
                let Message::Text(t) = within("the relayed say", ann.read()).await.expect("read")
                else {
                    panic!("a binary message");
                };
                if serde_json::from_str::<ServerMsg>(&t).expect("json") == said {
                    break;
                }
            }
            let opts = DialOptions::new().compression(isosock::Compression::Disabled);
            let bob = join_with(addr, "bob", opts).await;
            assert_eq!(bob.extensions(), "", "bob offered no compression");
        })
        .await;
    }

    /// The opcodes of the (unmasked, server-sent) frames in `bytes`.
    fn opcodes(mut bytes: &[u8]) -> Vec<u8> {
        let mut ops = Vec::new();
        while bytes.len() >= 2 {
            let (len, header) = match bytes[1] & 0x7f {
                126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
                127 => panic!("a frame over 64 KiB"),
                n => (usize::from(n), 2),
            };
            ops.push(bytes[0] & 0x0f);
            bytes = &bytes[(header + len).min(bytes.len())..];
        }
        ops
    }

    #[tokio::test]
    async fn chat_server_refuses_connections_beyond_its_cap() {
        bounded(async {
            let addr = start(Limits {
                max_connections: 3,
                ..Limits::default()
            })
            .await;
            // Chat sessions hold their place after the upgrade.
            let mut joined = Vec::new();
            for nick in ["ann", "bob", "cyd"] {
                joined.push(join(addr, nick).await);
            }
            let mut fourth = within("connect", TcpStream::connect(addr))
                .await
                .expect("connect");
            let refused = read_until_closed("the fourth connection", &mut fourth).await;
            assert!(
                refused.starts_with(b"HTTP/1.1 503"),
                "{}",
                String::from_utf8_lossy(&refused)
            );
            // One leaves: a new connection is served again.
            let ann = joined.remove(0);
            ann.close(StatusCode::NORMAL_CLOSURE, "bye")
                .await
                .expect("close");
            let mut served = false;
            for _ in 0..200 {
                if get(addr).await.starts_with(b"HTTP/1.1 200") {
                    served = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(served, "no connection served after one of the three left");
        })
        .await;
    }

    #[tokio::test]
    async fn chat_server_serves_again_while_slowloris_holds_its_fd_limit() {
        let name = "chat::chat_server_serves_again_while_slowloris_holds_its_fd_limit";
        let serve = |l| tokio::spawn(chat_server::serve(l, www(), short(), Arc::default()));
        if run_in_child(name, serve).await {
            return;
        }
        bounded(async {
            let mut server = ChildServer::start(name).await;
            let mut slow = Vec::new();
            for _ in 0..CONNS {
                let mut tcp = within("connect", TcpStream::connect(server.addr))
                    .await
                    .expect("connect");
                tcp.write_all(PARTIAL_HEAD).await.expect("write");
                slow.push(tcp);
            }
            // Served while every slow client still holds its end open: the server closed its
            // ends after the head timeout.
            let page = get(server.addr).await;
            assert!(
                page.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&page)
            );
            for tcp in &mut slow {
                read_until_closed("a slow head's connection", tcp).await;
            }
            assert!(server.alive(), "the server exited");
            assert!(
                server.log().contains("os error 24"),
                "the server never reached its fd limit"
            );
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------------
// A server in a child process of this test binary, under a small open-file limit.

/// Set in a child process to the name of the test whose server it runs.
const CHILD: &str = "ISOSOCK_EXAMPLES_LOAD_CHILD";

fn full_name(name: &str) -> String {
    let module = module_path!();
    let module = module.split_once("::").map_or(module, |(_, m)| m);
    format!("{module}::{name}")
}

/// In the child process of test `name`: lowers the open-file limit to [`FD_LIMIT`], starts
/// the server `serve` on a loopback port, prints `listening on ADDR` and serves until killed
/// (fails if the server stops, and ends after twice the suite's time limit). Elsewhere
/// returns `false` at once.
async fn run_in_child<F, T>(name: &str, serve: F) -> bool
where
    F: FnOnce(TcpListener) -> JoinHandle<T>,
    T: std::fmt::Debug,
{
    if std::env::var(CHILD).ok() != Some(full_name(name)) {
        return false;
    }
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
    rlimit::setrlimit(rlimit::Resource::NOFILE, FD_LIMIT, hard).expect("setrlimit");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("addr"));
    // Bounded too, should the parent vanish without killing this process.
    let stopped = tokio::time::timeout(2 * crate::util::TEST_LIMIT, serve(listener)).await;
    panic!("the server stopped: {stopped:?}");
}

/// A test's server running in a child process (see [`run_in_child`]); killed on drop.
struct ChildServer {
    child: Child,
    addr: SocketAddr,
    /// Everything the child printed so far, stdout and stderr.
    log: Arc<Mutex<String>>,
}

impl ChildServer {
    /// Starts this test binary again to run only test `name`, in whose child the server runs,
    /// and waits for its address.
    async fn start(name: &str) -> ChildServer {
        let full = full_name(name);
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([full.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, &full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the child process");
        let log = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        tokio::spawn(collect(stdout, log.clone()));
        tokio::spawn(collect(stderr, log.clone()));
        let mut server = ChildServer {
            child,
            addr: "0.0.0.0:0".parse().expect("an address"),
            log,
        };
        let line = server.wait_for_log("listening on ").await;
        // The test harness's `test NAME ... ` may precede it on the same line.
        let addr = line.rsplit("listening on ").next().unwrap_or_default();
        server.addr = addr.trim().parse().expect("the child's address");
        server
    }

    /// Waits until the child prints a line containing `needle`, and returns that line;
    /// fails if the child exits first.
    async fn wait_for_log(&mut self, needle: &str) -> String {
        for _ in 0..(STEP.as_millis() / 20) {
            let found = self
                .log()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned);
            if let Some(line) = found {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited ({status}) before printing {needle:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not print {needle:?} within {STEP:?}");
    }

    /// Everything the child printed so far.
    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        println!("--- the child's output ---\n{}", self.log());
    }
}

/// Appends the lines of `from` to `log` until it ends.
async fn collect(from: impl AsyncRead + Unpin, log: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut log) = log.lock() {
            log.push_str(&line);
            log.push('\n');
        }
    }
}
