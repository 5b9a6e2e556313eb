//! Interop with WebSocket implementations nobody here wrote: Python `websockets` and Node `ws`,
//! installed by scripts/setup.sh, each as a server for our client and a client of our server;
//! permessage-deflate with them in `interop_deflate` (own engine). Included once per engine
//! (see `main.rs`): `super::ENGINE` carries isosock's end of every connection.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use isosock::{close_status, dial, AcceptOptions, DialOptions, ErrorKind, Message, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;

use crate::util::bounded;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreter and script of a peer; fails loudly if scripts/setup.sh has not run.
pub(super) fn peer_command(kind: &str, script: &str) -> Command {
    let script = root().join("tests/interop").join(script);
    let mut cmd = match kind {
        "python" => {
            let py = root().join(".deps/venv/bin/python");
            assert!(
                py.exists(),
                "{} is missing: run scripts/setup.sh to install the Python websockets peer",
                py.display()
            );
            Command::new(py)
        }
        _ => {
            let ws = root().join("tests/interop/node_modules/ws/package.json");
            assert!(
                ws.exists(),
                "{} is missing: run scripts/setup.sh to install the Node ws peer",
                ws.display()
            );
            Command::new("node")
        }
    };
    cmd.arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

pub(super) struct PeerServer {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    pub(super) port: u16,
}

impl PeerServer {
    /// Starts the peer's echo server on a free port, with the script's extra `args`.
    pub(super) async fn start(kind: &str, script: &str, args: &[&str]) -> Self {
        let mut child = peer_command(kind, script)
            .arg("0")
            .args(args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {kind} peer: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("peer did not start within 20 s")
            .expect("peer stdout")
            .expect("peer exited before printing its port");
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from peer: {first:?}"));
        PeerServer {
            _child: child,
            lines,
            port,
        }
    }

    /// The next `closed <code> <reason>` line the peer printed.
    pub(super) async fn next_close(&mut self) -> String {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
                .await
                .expect("peer printed nothing within 20 s")
                .expect("peer stdout")
                .expect("peer exited");
            if line.starts_with("closed ") {
                return line;
            }
        }
    }
}

/// Our client against a peer's echo server: text, binary, large, close codes both ways.
async fn client_against(kind: &str, script: &str) {
    let mut peer = PeerServer::start(kind, script, &[]).await;
    let url = format!("ws://127.0.0.1:{}/", peer.port);
    let opts = DialOptions::new()
        .engine(super::ENGINE)
        .subprotocols(["echo.v1"])
        .read_limit(4 << 20);
    let (conn, resp) = dial(&url, &opts).await.expect("dial peer");
    assert_eq!(conn.engine(), super::ENGINE);
    assert_eq!(resp.subprotocol(), Some("echo.v1"));
    let big = crate::common::pattern(1 << 20);
    for msg in [
        Message::text("hello from isosock"),
        Message::text("ünïcödé ✓ 🦀"),
        Message::text(""),
        Message::binary(vec![0u8, 1, 254, 255]),
        Message::binary(big),
    ] {
        conn.write(msg.clone()).await.expect("write");
        assert_eq!(conn.read().await.expect("read echo"), msg, "{kind} echo");
    }
    // The peer closes with 4003; the code and reason reach our reader intact.
    conn.write("!close 4003 peer says bye")
        .await
        .expect("write");
    let err = conn.read().await.expect_err("peer closed");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err:?}");
    assert_eq!(close_status(&err), Some(StatusCode::from(4003)));
    assert_eq!(
        err.close_frame().map(|f| f.reason.clone()).as_deref(),
        Some("peer says bye")
    );
    assert!(peer.next_close().await.starts_with("closed 4003"));

    // We close with 4004; the peer sees exactly that and answers.
    let (conn, _) = dial(&url, &opts).await.expect("dial peer again");
    conn.write("x").await.expect("write");
    assert_eq!(conn.read().await.expect("read"), Message::text("x"));
    conn.close(StatusCode::from(4004), "isosock done")
        .await
        .expect("close handshake with peer");
    assert_eq!(peer.next_close().await, "closed 4004 isosock done");
}

/// The echo server's options on this module's engine, reading messages up to 4 MiB (the
/// tungstenite engine without the compression it cannot do).
fn server_options() -> AcceptOptions {
    let opts = crate::echo_server::options()
        .read_limit(4 << 20)
        .engine(super::ENGINE);
    if super::ENGINE == isosock::Engine::Own {
        opts
    } else {
        opts.compression(isosock::Compression::Disabled)
    }
}

/// A peer's client against our echo server; returns the close frames our server received.
async fn server_against(kind: &str, script: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.expect("accept");
            let tx = tx.clone();
            tokio::spawn(async move {
                let conn = isosock::accept(tcp, &server_options())
                    .await
                    .expect("upgrade");
                assert_eq!(conn.engine(), super::ENGINE);
                let _ = crate::echo_server::echo(&conn).await;
                let _ = tx.send(conn.peer_close_frame());
            });
        }
    });
    let out = peer_command(kind, script)
        .arg(format!("ws://127.0.0.1:{port}/"))
        .output()
        .await
        .expect("run peer client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{kind} client failed: {stdout}");
    for check in [
        "echo text",
        "echo binary",
        "server close 4005 server says bye ok",
        "client close 4006 ok",
    ] {
        assert!(
            stdout.contains(check),
            "{kind} client did not report {check:?}: {stdout}"
        );
    }
    // Our server saw the client's own close code on the second connection.
    let mut codes = Vec::new();
    for _ in 0..2 {
        let frame = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("server connection ended")
            .expect("channel");
        codes.push(frame.map(|f| (f.code.as_u16(), f.reason)));
    }
    assert!(
        codes.contains(&Some((
            4006,
            format!("{kind} done").replace("python", "py")
        ))),
        "{codes:?}"
    );
    server.abort();
}

#[tokio::test]
async fn python_websockets_server() {
    bounded(client_against("python", "py_echo_server.py")).await;
}

#[tokio::test]
async fn node_ws_server() {
    bounded(client_against("node", "node_echo_server.mjs")).await;
}

#[tokio::test]
async fn python_websockets_client() {
    bounded(server_against("python", "py_client.py")).await;
}

#[tokio::test]
async fn node_ws_client() {
    bounded(server_against("node", "node_client.mjs")).await;
}
