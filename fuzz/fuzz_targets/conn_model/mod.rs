//! The harness `server_frames` and `client_frames` share: a `Conn` with the input's read limit
//! reads the input's frames from a peer over an in-memory stream, and every message, the error
//! that ends the reading, the pongs and the close frame it sends must be the model's.
//!
//! The clock is paused, and each expectation is bounded by `STEP` of virtual time: when the
//! model says the `Conn` must act on what it has (a header that fails the connection, a byte
//! that makes text invalid), the peer sends nothing more, so a `Conn` that waits for more
//! times out at once and the harness panics saying what the model expected.

mod input;
mod model;

use std::time::Duration;

use isosock::{accept, AcceptOptions, Conn, Error, ErrorKind, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use input::Input;
use model::{Ending, Plan, Stage};

/// Which end of the connection the `Conn` under test is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It reads masked frames (made through `accept`).
    Server,
    /// It reads unmasked frames (made by `isosock::fuzz::client_conn`).
    Client,
}

/// How long, in virtual time, the `Conn` may take to do what the model expects next.
const STEP: Duration = Duration::from_secs(30);

/// Room in each direction of the pipe: more than an input ever sends, so no side blocks.
const PIPE: usize = 1 << 20;

const UPGRADE: &[u8] = b"GET /fuzz HTTP/1.1\r\nHost: fuzz.test\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// Runs one input against a `Conn` of `role`.
pub fn run(role: Role, input: &Input) {
    let plan = model::plan(role, input);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(drive(role, &plan));
}

async fn drive(role: Role, plan: &Plan) {
    let (peer, local) = tokio::io::duplex(PIPE);
    let (mut peer_rx, mut peer_tx) = tokio::io::split(peer);
    let mut wire = Vec::with_capacity(UPGRADE.len() + plan.wire.len());
    if role == Role::Server {
        wire.extend_from_slice(UPGRADE);
    }
    wire.extend_from_slice(&plan.wire);
    let write = async move {
        // The pipe has room for all of it; the Conn may hang up before reading it all.
        let _ = peer_tx.write_all(&wire).await;
        if plan.shutdown {
            let _ = peer_tx.shutdown().await;
        }
        // Otherwise the stream stays open: the Conn must end the connection itself.
        peer_tx
    };
    let drain = async move {
        let mut out = Vec::new();
        // Longer than STEP, so a read that waits too long is reported as such first.
        let read = tokio::time::timeout(2 * STEP, peer_rx.read_to_end(&mut out)).await;
        assert!(
            matches!(read, Ok(Ok(_))),
            "the Conn kept its stream open after reading ended"
        );
        out
    };
    let read = async move {
        let conn = match role {
            Role::Server => {
                let opts = AcceptOptions::new().read_limit(plan.limit);
                accept(local, &opts)
                    .await
                    .expect("a valid upgrade is accepted")
            }
            Role::Client => isosock::fuzz::client_conn(local, plan.limit).await,
        };
        read_all(&conn, plan).await;
        // Dropping the Conn ends its stream, if it has not already.
    };
    let (_peer_tx, (), out) = tokio::join!(write, read, drain);
    check_output(role, plan, &out);
}

/// Reads until an error, checking every message and the error against the plan.
async fn read_all(conn: &Conn, plan: &Plan) {
    let mut next = 0;
    loop {
        match tokio::time::timeout(STEP, conn.read()).await {
            Err(_) => panic!("{}", waited(plan, next)),
            Ok(Ok(msg)) => {
                let Some((frame, want)) = plan.messages.get(next) else {
                    panic!(
                        "{}: expected {}, but read a {}",
                        plan.end.desc,
                        expectation(plan),
                        describe(&msg)
                    );
                };
                assert!(
                    msg == *want,
                    "frame {frame}: expected a {}, read a {}",
                    describe(want),
                    describe(&msg)
                );
                next += 1;
            }
            Ok(Err(e)) => {
                if let Some((frame, want)) = plan.messages.get(next) {
                    panic!(
                        "frame {frame}: expected a {}, but reading ended: {:?}: {e}",
                        describe(want),
                        e.kind()
                    );
                }
                check_end(plan, &e);
                return;
            }
        }
    }
}

fn describe(msg: &Message) -> String {
    match msg {
        Message::Text(t) if t.len() <= 32 => format!("text message {t:?}"),
        Message::Binary(b) if b.len() <= 32 => format!("binary message {:?}", &b[..]),
        m => format!("{:?} message of {} bytes", m.message_type(), m.len()),
    }
}

/// The error kind a failure with `code` reports.
fn kind_of(code: u16) -> ErrorKind {
    match code {
        1009 => ErrorKind::MessageTooBig,
        1007 => ErrorKind::InvalidData,
        _ => ErrorKind::Protocol,
    }
}

fn expectation(plan: &Plan) -> String {
    match &plan.end.how {
        Ending::Fail { code, why, .. } => format!("{code} ({why})"),
        Ending::Closed { code, .. } => format!("the peer's close {code}"),
        Ending::Lost(why) => format!("ConnectionLost ({why})"),
    }
}

/// Why the `Conn` should not have waited.
fn waited(plan: &Plan, next: usize) -> String {
    if let Some((frame, msg)) = plan.messages.get(next) {
        return format!(
            "frame {frame}: expected a {} to be read, but the Conn waited for more",
            describe(msg)
        );
    }
    let e = expectation(plan);
    let desc = &plan.end.desc;
    match &plan.end.how {
        Ending::Fail { stage, .. } => match stage {
            Stage::Header => format!(
                "{desc}: expected {e} from the header alone, but the Conn waited for the payload"
            ),
            Stage::Utf8(at) => format!(
                "{desc}: expected {e} as soon as byte {at} of the text message arrived, but the \
                 Conn waited for the rest of the frame"
            ),
            Stage::Frame => format!(
                "{desc}: expected {e} once the frame was complete, but the Conn waited for more"
            ),
        },
        _ => format!("{desc}: expected {e}, but the Conn waited for more"),
    }
}

fn check_end(plan: &Plan, e: &Error) {
    let desc = &plan.end.desc;
    let want = match &plan.end.how {
        Ending::Fail { code, .. } => kind_of(*code),
        Ending::Closed { .. } => ErrorKind::Closed,
        Ending::Lost(_) => ErrorKind::ConnectionLost,
    };
    assert!(
        e.kind() == want,
        "{desc}: expected {}, so {want:?}; reading ended with {:?}: {e}",
        expectation(plan),
        e.kind()
    );
    if let Ending::Closed { code, reason, .. } = &plan.end.how {
        let got = e
            .close_frame()
            .map(|f| (f.code.as_u16(), f.reason.as_str()));
        assert!(
            got == Some((*code, reason.as_str())),
            "{desc}: expected the peer's close {code} {reason:?}, the error carries {got:?}"
        );
    }
}

/// Checks what the `Conn` sent: (the 101, then) a pong per ping, then the close frame the
/// ending calls for, and nothing else.
fn check_output(role: Role, plan: &Plan, out: &[u8]) {
    let mut rest = out;
    if role == Role::Server {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete 101 response");
        assert!(rest.starts_with(b"HTTP/1.1 101"), "the upgrade was refused");
        rest = &rest[end + 4..];
    }
    let frames = parse_frames(rest, role == Role::Client);
    let mut want: Vec<(u8, Vec<u8>)> = plan.pongs.iter().map(|p| (0x8A, p.clone())).collect();
    match &plan.end.how {
        Ending::Fail { code, .. } => want.push((0x88, code.to_be_bytes().to_vec())),
        Ending::Closed { echo, .. } => want.push((0x88, echo.clone())),
        Ending::Lost(_) => {}
    }
    let desc = &plan.end.desc;
    assert!(
        frames.len() == want.len(),
        "{desc}: expected the Conn to send {} pongs and {}, it sent {} frames",
        plan.pongs.len(),
        match plan.end.how {
            Ending::Lost(_) => "no close frame",
            _ => "a close frame",
        },
        frames.len()
    );
    for (i, ((b0, payload), (want_b0, want_payload))) in frames.iter().zip(&want).enumerate() {
        assert!(
            b0 == want_b0,
            "{desc}: frame {i} sent: {b0:#x}, expected {want_b0:#x}"
        );
        // The close frame that fails the connection carries a reason of the Conn's choice.
        let payload = if *b0 == 0x88 && matches!(plan.end.how, Ending::Fail { .. }) {
            &payload[..payload.len().min(2)]
        } else {
            &payload[..]
        };
        assert!(
            payload == &want_payload[..],
            "{desc}: frame {i} sent carries {payload:?}, expected {want_payload:?}"
        );
    }
}

/// Splits what the `Conn` sent into (first header byte, unmasked payload).
fn parse_frames(mut rest: &[u8], masked: bool) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !rest.is_empty() {
        assert!(rest.len() >= 2, "the Conn sent a truncated frame header");
        let (b0, b1) = (rest[0], rest[1]);
        assert!(
            (b1 & 0x80 != 0) == masked,
            "the Conn sent a frame masked wrongly for its role"
        );
        let (len, mut at) = match b1 & 0x7F {
            126 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&rest[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        let key = masked.then(|| {
            let k = [rest[at], rest[at + 1], rest[at + 2], rest[at + 3]];
            at += 4;
            k
        });
        assert!(rest.len() >= at + len, "the Conn sent a truncated frame");
        let mut payload = rest[at..at + len].to_vec();
        if let Some(k) = key {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= k[i % 4];
            }
        }
        frames.push((b0, payload));
        rest = &rest[at + len..];
    }
    frames
}
