//! The tungstenite engine's unit tests: messages both ways, the close handshake, failures
//! and their close codes, limits, pings, and a peer that goes away.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::protocol::Role as TgRole;
use tokio_tungstenite::tungstenite::Message as TgMessage;
use tokio_tungstenite::WebSocketStream;

use super::Conn;
use crate::backend::Engine;
use crate::close::StatusCode;
use crate::error::{Error, ErrorKind};
use crate::message::Message;
use crate::native::frame::{self, OpCode, Role};
use crate::native::io::Transport;
use crate::native::{Negotiated, Settings};

fn settings(read_limit: usize, close_timeout: Duration) -> Settings {
    Settings {
        read_limit,
        close_timeout,
        write_high_water_mark: 1 << 20,
        compression_threshold: 0,
    }
}

/// A connection in `role` over a pipe, with `leftover` read first, and the raw peer end.
async fn raw_pair(role: Role, settings: Settings, leftover: Vec<u8>) -> (Conn, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(64 << 10);
    let conn = Conn::from_upgraded(
        Transport::new(ours),
        leftover,
        role,
        Negotiated::default(),
        settings,
    )
    .await;
    (conn, theirs)
}

/// A connection in `role` whose peer is a tokio-tungstenite stream in the other role.
async fn pair(role: Role, read_limit: usize) -> (Conn, WebSocketStream<DuplexStream>) {
    let (conn, theirs) = raw_pair(
        role,
        settings(read_limit, Duration::from_secs(5)),
        Vec::new(),
    )
    .await;
    let peer_role = match role {
        Role::Client => TgRole::Server,
        Role::Server => TgRole::Client,
    };
    let peer = WebSocketStream::from_raw_socket(theirs, peer_role, None).await;
    (conn, peer)
}

/// A frame as a client sends it to a server (masked).
fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = Vec::new();
    frame::write_header(&mut out, fin, opcode, Some(key), payload.len());
    let body = out.len();
    out.extend_from_slice(payload);
    frame::apply_mask(&mut out[body..], key);
    out
}

/// Reads one unmasked frame a server sent: opcode and payload.
async fn server_frame(peer: &mut DuplexStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    peer.read_exact(&mut head).await.expect("frame header");
    let len = match head[1] & 0x7f {
        126 => usize::from(peer.read_u16().await.expect("length")),
        127 => usize::try_from(peer.read_u64().await.expect("length")).expect("length"),
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    peer.read_exact(&mut payload).await.expect("payload");
    (head[0] & 0x0f, payload)
}

/// The close code of a close frame's payload.
fn code_of(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("the test did not finish within 10 s")
}

#[tokio::test]
async fn messages_cross_both_ways_and_the_writer_sends_one_whole_message() {
    bounded(async {
        let (conn, mut peer) = pair(Role::Client, 1 << 20).await;
        assert!(!conn.writer_streams());
        conn.write(Message::text("hello")).await.expect("write");
        let got = peer.next().await.expect("item").expect("message");
        assert_eq!(got, TgMessage::text("hello"));
        peer.send(TgMessage::binary(vec![1u8, 2, 3]))
            .await
            .expect("peer send");
        assert_eq!(
            conn.read().await.expect("read"),
            Message::binary(vec![1u8, 2, 3])
        );
        conn.write_batch(vec![Message::text("a"), Message::text("b")])
            .await
            .expect("batch");
        assert_eq!(
            peer.next().await.expect("a").expect("a"),
            TgMessage::text("a")
        );
        assert_eq!(
            peer.next().await.expect("b").expect("b"),
            TgMessage::text("b")
        );
        assert_eq!(conn.received_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn leftover_bytes_from_the_handshake_are_read_first() {
    bounded(async {
        let early = client_frame(true, OpCode::Text, b"early");
        let settings = settings(1 << 20, Duration::from_secs(5));
        let (conn, _peer) = raw_pair(Role::Server, settings, early).await;
        assert_eq!(conn.read().await.expect("read"), Message::text("early"));
    })
    .await;
}

#[tokio::test]
async fn close_sends_the_code_and_returns_once_the_peer_answers() {
    bounded(async {
        let (conn, mut peer) = pair(Role::Client, 1 << 20).await;
        // The peer reads, which answers the close frame.
        let peer_task = tokio::spawn(async move {
            let got = peer.next().await;
            while peer.next().await.is_some() {}
            got
        });
        conn.close(StatusCode::from(4001), "done")
            .await
            .expect("clean close");
        let got = peer_task.await.expect("peer task");
        match got {
            Some(Ok(TgMessage::Close(Some(f)))) => {
                assert_eq!((u16::from(f.code), f.reason.as_str()), (4001, "done"));
            }
            other => panic!("expected the close frame, got {other:?}"),
        }
        assert!(conn.closed_locally());
        assert_eq!(conn.peer_close_frame().map(|f| f.code.as_u16()), Some(4001));
        let err = conn.write(Message::text("late")).await.expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
        let err = conn
            .close(StatusCode::NORMAL_CLOSURE, "")
            .await
            .expect_err("twice");
        assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
    })
    .await;
}

#[tokio::test]
async fn a_peer_close_is_echoed_and_reads_and_writes_then_report_it() {
    bounded(async {
        let (conn, mut peer) = pair(Role::Server, 1 << 20).await;
        peer.close(Some(super::TgCloseFrame {
            code: 1001.into(),
            reason: "away".into(),
        }))
        .await
        .expect("peer close");
        let err = conn.read().await.expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::Closed);
        let frame = err.close_frame().expect("frame");
        assert_eq!((frame.code.as_u16(), frame.reason.as_str()), (1001, "away"));
        match peer.next().await {
            Some(Ok(TgMessage::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1001),
            other => panic!("expected the echo, got {other:?}"),
        }
        let err = conn.write(Message::text("late")).await.expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::Closed);
        assert_eq!(
            conn.read().await.expect_err("again").kind(),
            ErrorKind::Closed
        );
        assert!(!conn.closed_locally());
    })
    .await;
}

#[tokio::test]
async fn close_fails_with_timeout_when_the_peer_never_answers() {
    bounded(async {
        let settings = settings(1 << 20, Duration::from_millis(100));
        let (conn, _peer) = raw_pair(Role::Server, settings, Vec::new()).await;
        let err = conn
            .close(StatusCode::NORMAL_CLOSURE, "")
            .await
            .expect_err("no answer");
        assert_eq!(err.kind(), ErrorKind::Timeout);
    })
    .await;
}

#[tokio::test]
async fn close_now_drops_the_socket_under_a_parked_reader() {
    bounded(async {
        let settings = settings(1 << 20, Duration::from_secs(5));
        let (conn, mut peer) = raw_pair(Role::Server, settings, Vec::new()).await;
        let conn = Arc::new(conn);
        let reader = tokio::spawn({
            let conn = conn.clone();
            async move { conn.read().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.close_now();
        let err = reader.await.expect("reader").expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
        assert!(conn.closed_locally());
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty(), "bytes after close_now: {rest:?}");
    })
    .await;
}

#[tokio::test]
async fn close_now_wakes_every_send_parked_on_a_full_pipe() {
    bounded(async {
        let settings = settings(1 << 20, Duration::from_secs(5));
        // Nobody reads the peer end: a 1 MiB message fills the 64 KiB pipe.
        let (conn, _peer) = raw_pair(Role::Server, settings, Vec::new()).await;
        let conn = Arc::new(conn);
        let writer = tokio::spawn({
            let conn = conn.clone();
            async move { conn.write(Message::binary(vec![0u8; 1 << 20])).await }
        });
        let pinger = tokio::spawn({
            let conn = conn.clone();
            async move { conn.ping().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!writer.is_finished() && !pinger.is_finished());
        conn.close_now();
        let err = writer.await.expect("writer").expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
        let err = pinger.await.expect("pinger").expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::AlreadyClosed);
    })
    .await;
}

#[tokio::test]
async fn a_peer_gone_without_a_close_frame_is_connection_lost_for_reads_and_writes() {
    bounded(async {
        let settings = settings(1 << 20, Duration::from_secs(5));
        let (conn, peer) = raw_pair(Role::Client, settings, Vec::new()).await;
        drop(peer);
        let err = conn.read().await.expect_err("lost");
        assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
        assert_eq!(
            conn.read().await.expect_err("again").kind(),
            ErrorKind::ConnectionLost
        );
        let err = conn.write(Message::text("x")).await.expect_err("lost");
        assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
        assert_eq!(conn.peer_close_frame(), None);
    })
    .await;
}

#[tokio::test]
async fn fail_ends_the_connection_with_that_error_and_no_frame() {
    bounded(async {
        let settings = settings(1 << 20, Duration::from_secs(5));
        let (conn, mut peer) = raw_pair(Role::Server, settings, Vec::new()).await;
        conn.fail(Error::new(ErrorKind::Timeout, "heartbeat"));
        assert_eq!(
            conn.read().await.expect_err("failed").kind(),
            ErrorKind::Timeout
        );
        let err = conn
            .close(StatusCode::NORMAL_CLOSURE, "")
            .await
            .expect_err("failed");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty(), "bytes after fail: {rest:?}");
    })
    .await;
}

/// Each row: what the peer sends, the error kind `read` returns, the close code sent.
#[tokio::test]
async fn failures_close_with_the_rfc_code() {
    let rows: Vec<(&str, Vec<u8>, ErrorKind, u16)> = vec![
        (
            "over the read limit",
            client_frame(true, OpCode::Binary, &[0u8; 200]),
            ErrorKind::MessageTooBig,
            1009,
        ),
        (
            "text that is not UTF-8",
            client_frame(true, OpCode::Text, &[0xff, 0xfe]),
            ErrorKind::InvalidData,
            1007,
        ),
        (
            "an unmasked frame from a client",
            {
                let mut f = Vec::new();
                frame::write_header(&mut f, true, OpCode::Text, None, 2);
                f.extend_from_slice(b"hi");
                f
            },
            ErrorKind::Protocol,
            1002,
        ),
    ];
    for (what, bytes, kind, code) in rows {
        bounded(async {
            let settings = settings(100, Duration::from_secs(5));
            let (conn, mut peer) = raw_pair(Role::Server, settings, Vec::new()).await;
            peer.write_all(&bytes).await.expect("peer write");
            let err = conn.read().await.expect_err(what);
            assert_eq!(err.kind(), kind, "{what}: {err}");
            let (opcode, payload) = server_frame(&mut peer).await;
            assert_eq!((opcode, code_of(&payload)), (8, code), "{what}");
            assert_eq!(conn.read().await.expect_err(what).kind(), kind, "{what}");
        })
        .await;
    }
}

/// A peer's close with a code no endpoint may send (1005 here) is answered with 1002 by
/// tungstenite, which reports its own 1002 frame in place of the peer's: `read` sees that
/// (the own engine reports `ErrorKind::Protocol` instead; the crate docs list the difference).
#[tokio::test]
async fn a_close_with_an_unsendable_code_is_answered_and_reported_as_1002() {
    bounded(async {
        let settings = settings(1 << 20, Duration::from_secs(5));
        let (conn, mut peer) = raw_pair(Role::Server, settings, Vec::new()).await;
        let body = [0x03, 0xed, b'x'];
        peer.write_all(&client_frame(true, OpCode::Close, &body))
            .await
            .expect("peer write");
        let err = conn.read().await.expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
        assert_eq!(
            err.close_frame().map(|f| f.code),
            Some(StatusCode::PROTOCOL_ERROR),
            "{err}"
        );
        let (opcode, payload) = server_frame(&mut peer).await;
        assert_eq!((opcode, code_of(&payload)), (8, 1002));
    })
    .await;
}

#[tokio::test]
async fn a_lowered_read_limit_fails_the_next_message_with_1009() {
    bounded(async {
        let settings = settings(1 << 20, Duration::from_secs(5));
        let (conn, mut peer) = raw_pair(Role::Server, settings, Vec::new()).await;
        conn.set_read_limit(10);
        peer.write_all(&client_frame(true, OpCode::Binary, &[0u8; 11]))
            .await
            .expect("peer write");
        let err = conn.read().await.expect_err("too big");
        assert_eq!(err.kind(), ErrorKind::MessageTooBig);
        let (opcode, payload) = server_frame(&mut peer).await;
        assert_eq!((opcode, code_of(&payload)), (8, 1009));
    })
    .await;
}

#[tokio::test]
async fn close_read_fails_a_data_message_with_1008_and_resolves() {
    bounded(async {
        let settings = settings(1 << 20, Duration::from_secs(5));
        let (conn, mut peer) = raw_pair(Role::Server, settings, Vec::new()).await;
        let closed = conn.close_read();
        peer.write_all(&client_frame(true, OpCode::Text, b"unexpected"))
            .await
            .expect("peer write");
        let (opcode, payload) = server_frame(&mut peer).await;
        assert_eq!((opcode, code_of(&payload)), (8, 1008));
        assert_eq!(closed.await.kind(), ErrorKind::Protocol);
    })
    .await;
}

#[tokio::test]
async fn ping_returns_once_a_reader_sees_the_pong_and_pings_are_answered() {
    bounded(async {
        let (conn, mut peer) = pair(Role::Client, 1 << 20).await;
        let conn = Arc::new(conn);
        let reader = tokio::spawn({
            let conn = conn.clone();
            async move { conn.read().await }
        });
        let peer_task = tokio::spawn(async move {
            // Reading answers our ping; then the peer pings and sends one message.
            let first = peer.next().await;
            peer.send(TgMessage::Ping(bytes::Bytes::from_static(b"p")))
                .await
                .expect("peer ping");
            peer.send(TgMessage::text("after"))
                .await
                .expect("peer send");
            let pong = peer.next().await;
            (first, pong)
        });
        conn.ping().await.expect("pong");
        assert_eq!(
            reader.await.expect("reader").expect("message"),
            Message::text("after")
        );
        let (first, pong) = peer_task.await.expect("peer task");
        assert!(matches!(first, Some(Ok(TgMessage::Ping(_)))), "{first:?}");
        assert!(
            matches!(&pong, Some(Ok(TgMessage::Pong(p))) if &p[..] == b"p"),
            "{pong:?}"
        );
        assert!(conn.received_count() >= 3);
    })
    .await;
}
