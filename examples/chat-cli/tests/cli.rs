//! The `chat-cli` binary against a stand-in server: hello, stdin lines as `say`, escaped output,
//! a 1000 close at end of input, and the exit statuses.
#![cfg(not(target_arch = "wasm32"))]
// Helpers outside `#[test]` functions panic on failure too: that is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use isosock::{accept, close_status, AcceptOptions, Conn, Message, StatusCode};
use isosock_chat_protocol::{ClientMsg, ServerMsg};
use tokio::net::TcpListener;

/// Longest wait for any one step.
const WAIT: Duration = Duration::from_secs(20);

/// The CLI process, killed when the test ends however it ends.
struct Cli(Child);

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Cli {
    fn start(url: &str, nick: &str) -> Cli {
        let child = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
            .args([url, nick])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Cli(child)
    }

    /// Waits for the exit (bounded) and returns the status with all of stdout and stderr.
    async fn finish(mut self) -> (ExitStatus, String, String) {
        let mut child_out = self.0.stdout.take().unwrap();
        let mut child_err = self.0.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            child_out.read_to_string(&mut s).unwrap();
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            child_err.read_to_string(&mut s).unwrap();
            s
        });
        let deadline = tokio::time::Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chat-cli did not exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        (status, out.join().unwrap(), err.join().unwrap())
    }
}

async fn read_client_msg(conn: &Conn) -> ClientMsg {
    let msg = tokio::time::timeout(WAIT, conn.read())
        .await
        .unwrap()
        .unwrap();
    serde_json::from_str(msg.as_text().unwrap()).unwrap()
}

async fn send(conn: &Conn, msg: &ServerMsg) {
    let json = serde_json::to_string(msg).unwrap();
    conn.write(Message::text(json)).await.unwrap();
}

#[tokio::test]
async fn joins_sends_stdin_lines_prints_messages_and_leaves_with_1000_at_eof() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let mut cli = Cli::start(&url, "  tester  ");

    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let conn = accept(tcp, &AcceptOptions::new()).await.unwrap();
    // The nickname is cleaned by the shared rule before it is sent.
    assert_eq!(
        read_client_msg(&conn).await,
        ClientMsg::Hello {
            nick: "tester".into()
        }
    );

    send(
        &conn,
        &ServerMsg::System {
            text: "tester joined".into(),
            online: 2,
        },
    )
    .await;
    send(
        &conn,
        &ServerMsg::Msg {
            nick: "ann".into(),
            text: "\u{1b}[31mred\nline".into(),
        },
    )
    .await;

    let mut stdin = cli.0.stdin.take().unwrap();
    stdin
        .write_all(b"hello from the cli\n\n   \n  second line \n")
        .unwrap();
    assert_eq!(
        read_client_msg(&conn).await,
        ClientMsg::Say {
            text: "hello from the cli".into()
        }
    );
    // Blank lines are skipped, the others trimmed.
    assert_eq!(
        read_client_msg(&conn).await,
        ClientMsg::Say {
            text: "second line".into()
        }
    );

    // End of input: the CLI closes with 1000, which the server's next read reports.
    drop(stdin);
    let err = tokio::time::timeout(WAIT, conn.read())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(close_status(&err), Some(StatusCode::NORMAL_CLOSURE));

    let (status, out, err) = cli.finish().await;
    assert!(status.success(), "exit status {status}; stderr:\n{err}");
    assert_eq!(
        out, "* tester joined (2 online)\n<ann> \\u{1b}[31mred\\nline\n",
        "stderr:\n{err}"
    );
    assert!(err.contains("closed with 1000"), "stderr:\n{err}");
}

#[tokio::test]
async fn a_close_by_the_server_ends_the_cli_with_status_1_and_the_reason() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let cli = Cli::start(&url, "tester");
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let conn = accept(tcp, &AcceptOptions::new()).await.unwrap();
    read_client_msg(&conn).await;
    conn.close(StatusCode::GOING_AWAY, "server shutting down")
        .await
        .unwrap();

    let (status, _, err) = cli.finish().await;
    assert_eq!(status.code(), Some(1), "stderr:\n{err}");
    assert!(
        err.contains("closed by the server (1001 server shutting down)"),
        "stderr:\n{err}"
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_with_status_1() {
    // A port that was free a moment ago: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let cli = Cli::start(&format!("ws://{addr}/ws"), "tester");
    let (status, out, err) = cli.finish().await;
    assert_eq!(status.code(), Some(1), "stderr:\n{err}");
    assert_eq!(out, "");
    assert!(err.contains("cannot connect"), "stderr:\n{err}");
}

#[test]
fn bad_arguments_fail_with_status_2() {
    for args in [
        &[][..],
        &["ws://127.0.0.1:1/ws"][..],
        &["ws://127.0.0.1:1/ws", "  "][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_chat-cli"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
