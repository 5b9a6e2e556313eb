//! Abuse and limits against isosock's server: absurd frame lengths, floods of fragments and
//! pings, and the read limit's exact edge. Memory cases run in a fresh process of this test
//! binary and bound the peak resident memory (VmHWM) they may add.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use isosock::{AcceptOptions, ErrorKind, DEFAULT_READ_LIMIT};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;

use super::{
    expect_close, expect_close_one_of, expect_eof, expect_message, frames, in_fresh_process,
    read_frame, send, upgrade_on, EchoServer, Frame, Len, RssProbe, BINARY, PONG, TEXT,
};
use crate::util::bounded;

/// The most resident memory a memory case may add, in MiB.
const RSS_BUDGET_MIB: f64 = 64.0;

fn check_rss(case: &str, probe: &RssProbe) {
    let grew = probe.growth_mib();
    eprintln!("[rss] {case}: peak resident memory grew by {grew:.1} MiB");
    assert!(
        grew < RSS_BUDGET_MIB,
        "{case}: resident memory grew by {grew:.1} MiB (budget {RSS_BUDGET_MIB} MiB)"
    );
}

/// RFC 6455 5.2 (64-bit length, "the most significant bit MUST be 0") and 10.4 ("an
/// implementation SHOULD impose a limit on frame sizes"): a header claiming 2^63-1 bytes, one
/// with the most significant bit set (2^64-1), and one claiming 1 TiB are each refused as
/// soon as the header is read, without waiting for or allocating the payload: the process's
/// peak RSS grows by less than 64 MiB. The legal claims over the read limit get 1009 (message
/// too big); the illegal one 1002 (protocol error), whatever the limit.
#[tokio::test]
async fn huge_length_header_is_refused_without_allocating() {
    if !in_fresh_process(
        module_path!(),
        "huge_length_header_is_refused_without_allocating",
    )
    .await
    {
        return;
    }
    bounded(async {
        let probe = RssProbe::start();
        let mut server = EchoServer::start(AcceptOptions::new()).await;
        let cases = [
            (i64::MAX as u64, 1009, ErrorKind::MessageTooBig),
            (u64::MAX, 1002, ErrorKind::Protocol),
            (1 << 40, 1009, ErrorKind::MessageTooBig),
        ];
        for (claim, want, kind) in cases {
            let mut tcp = server.connect().await;
            send(
                &mut tcp,
                &Frame::binary(vec![]).len(Len::Claim(claim)).encode(),
            )
            .await;
            let code = expect_close_one_of(&mut tcp, &[1009, 1002]).await;
            assert_eq!(code, want, "a {claim}-byte claim");
            expect_eof(&mut tcp).await;
            server.expect_end(kind).await;
        }
        check_rss("2^63-1 / 2^64-1 / 2^40 length headers", &probe);
    })
    .await;
}

/// RFC 6455 10.4: a header within a large read limit (512 MiB here) is accepted, but the
/// server must not commit that memory before the payload arrives: after 64 KiB of a claimed
/// 512 MiB the peak RSS has grown by less than 64 MiB. The client then disappears and the
/// server reports a lost connection.
#[tokio::test]
async fn length_within_a_large_limit_is_not_committed_up_front() {
    if !in_fresh_process(
        module_path!(),
        "length_within_a_large_limit_is_not_committed_up_front",
    )
    .await
    {
        return;
    }
    bounded(async {
        let probe = RssProbe::start();
        let limit = 512 << 20;
        let mut server = EchoServer::start(AcceptOptions::new().read_limit(limit)).await;
        let mut tcp = server.connect().await;
        let mut bytes = Frame::binary(vec![]).len(Len::Claim(limit as u64)).encode();
        bytes.extend(vec![0u8; 64 << 10]);
        send(&mut tcp, &bytes).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        check_rss("64 KiB of a claimed 512 MiB frame", &probe);
        drop(tcp);
        server.expect_end(ErrorKind::ConnectionLost).await;
    })
    .await;
}

/// One text message of `n` fragments of `piece` each (the first a text frame, the rest
/// continuations, the last with FIN).
fn fragmented(n: usize, piece: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * (6 + piece.len()));
    for i in 0..n {
        let opcode = if i == 0 { TEXT } else { super::CONT };
        out.extend(Frame::new(opcode, piece).fin(i == n - 1).encode());
    }
    out
}

/// RFC 6455 5.4 sets no limit on the number of fragments; 10.4 lets the endpoint bound the
/// message. 100,000 one-byte fragments (100,000 bytes, within a 1 MiB read limit) are
/// reassembled into one message, and the peak RSS grows by less than 64 MiB.
#[tokio::test]
async fn hundred_thousand_fragments_within_the_limit_are_reassembled() {
    if !in_fresh_process(
        module_path!(),
        "hundred_thousand_fragments_within_the_limit_are_reassembled",
    )
    .await
    {
        return;
    }
    bounded(async {
        let probe = RssProbe::start();
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        let bytes = fragmented(100_000, b"a");
        let (mut rd, mut wr) = tcp.split();
        let writer = async { send(&mut wr, &bytes).await };
        let reader = async { expect_message(&mut rd, TEXT, &[b'a'; 100_000]).await };
        tokio::join!(writer, reader);
        check_rss("100,000 one-byte fragments", &probe);
    })
    .await;
}

/// RFC 6455 10.4/7.4.1: the read limit counts the bytes of all fragments: 100,000 one-byte
/// fragments against the default 32 KiB limit are refused with 1009 once the 32,769th byte
/// arrives; the server stops reading there, and the peak RSS grows by less than 64 MiB.
#[tokio::test]
async fn hundred_thousand_fragments_over_the_limit_get_1009() {
    if !in_fresh_process(
        module_path!(),
        "hundred_thousand_fragments_over_the_limit_get_1009",
    )
    .await
    {
        return;
    }
    bounded(async {
        let probe = RssProbe::start();
        let mut server = EchoServer::start(AcceptOptions::new()).await;
        let tcp = server.connect().await;
        let (mut rd, mut wr) = tcp.into_split();
        let bytes = fragmented(100_000, b"a");
        // The server stops reading at the limit: the rest may fail to send.
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&bytes).await;
            wr
        });
        expect_close(&mut rd, 1009).await;
        server.expect_end(ErrorKind::MessageTooBig).await;
        drop(writer.await);
        check_rss("100,000 one-byte fragments over the limit", &probe);
    })
    .await;
}

/// RFC 6455 5.4: empty fragments are legal, and 100,000 of them add nothing to the message:
/// the message ("end") arrives, and the peak RSS grows by less than 64 MiB.
#[tokio::test]
async fn hundred_thousand_empty_fragments_are_bounded() {
    if !in_fresh_process(
        module_path!(),
        "hundred_thousand_empty_fragments_are_bounded",
    )
    .await
    {
        return;
    }
    bounded(async {
        let probe = RssProbe::start();
        let server = EchoServer::start(AcceptOptions::new()).await;
        let mut tcp = server.connect().await;
        let mut bytes = fragmented(100_000, b"");
        // Replace the final empty fragment's FIN frame with a final "end".
        let last = Frame::cont("").encode().len();
        bytes.truncate(bytes.len() - last);
        bytes.extend(Frame::cont("end").encode());
        let (mut rd, mut wr) = tcp.split();
        let writer = async { send(&mut wr, &bytes).await };
        let reader = async { expect_message(&mut rd, TEXT, b"end").await };
        tokio::join!(writer, reader);
        check_rss("100,000 empty fragments", &probe);
    })
    .await;
}

/// RFC 6455 5.5.2/5.5.3 and 10.4: a client sending 100,000 125-byte pings (about 13 MB) while
/// never reading the pongs (its receive buffer is shrunk to a few KiB) must not make the
/// server buffer pongs without bound: the peak RSS grows by less than 64 MiB while the flood
/// lasts. Once the client reads, the last ping's pong arrives, pongs come in ping order (5.5.3
/// allows answering only the most recent of unanswered pings), and the connection still
/// works. Choice observed: isosock waits for each pong to be written before reading on, so a
/// client that does not read is held back by TCP.
#[tokio::test]
async fn ping_flood_without_reading_pongs_keeps_memory_bounded() {
    if !in_fresh_process(
        module_path!(),
        "ping_flood_without_reading_pongs_keeps_memory_bounded",
    )
    .await
    {
        return;
    }
    bounded(async {
        const PINGS: usize = 100_000;
        const CHUNK: usize = 1000;
        let probe = RssProbe::start();
        let server = EchoServer::start(AcceptOptions::new()).await;
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = socket
            .connect(server.addr.parse().expect("addr"))
            .await
            .expect("connect");
        let tcp = upgrade_on(tcp).await;
        let (rd, mut wr) = tcp.into_split();
        let ping = |i: usize| {
            let mut p = (i as u64).to_be_bytes().to_vec();
            p.resize(125, b'p');
            Frame::ping(p)
        };
        let sent = Arc::new(AtomicUsize::new(0));
        let progress = sent.clone();
        let writer = tokio::spawn(async move {
            for start in (0..PINGS).step_by(CHUNK) {
                let chunk: Vec<Frame> = (start..start + CHUNK).map(ping).collect();
                wr.write_all(&frames(&chunk)).await.expect("send pings");
                progress.fetch_add(CHUNK, Ordering::Relaxed);
            }
            wr
        });
        // Flood until every ping is out or the server pushes back for a second.
        let (mut last, mut still) = (0, 0);
        while last < PINGS && still < 10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = sent.load(Ordering::Relaxed);
            still = if now == last { still + 1 } else { 0 };
            last = now;
        }
        eprintln!("[rss] ping flood: {last} of {PINGS} pings written before reading any pong");
        check_rss("ping flood, pongs unread", &probe);

        // Now read: pongs in order, up to the last ping's.
        let mut rd = BufReader::with_capacity(64 << 10, rd);
        let (mut pongs, mut prev) = (0usize, None::<u64>);
        loop {
            let f = read_frame(&mut rd).await.expect("a pong");
            assert_eq!(f.opcode, PONG, "{f:?}");
            let id = u64::from_be_bytes(f.payload[..8].try_into().expect("8 bytes"));
            assert!(
                f.payload == ping(id as usize).payload,
                "pong payload for {id}"
            );
            assert!(prev.is_none_or(|p| id > p), "pong {id} after {prev:?}");
            prev = Some(id);
            pongs += 1;
            if id as usize == PINGS - 1 {
                break;
            }
        }
        eprintln!("[rss] ping flood: {pongs} pongs for {PINGS} pings");
        let mut wr = writer.await.expect("writer");
        wr.write_all(&frames(&[Frame::binary(vec![1, 2, 3])]))
            .await
            .expect("send");
        expect_message(&mut rd, BINARY, &[1, 2, 3]).await;
        check_rss("ping flood, whole case", &probe);
    })
    .await;
}

/// RFC 6455 10.4/7.4.1: the read limit is exact. With a 1000-byte limit a 1000-byte message
/// passes (text or binary, single frame or fragmented) and a 1001-byte one gets 1009 (single
/// frame or fragmented); with the default limit (32 KiB) the same holds at 32,768 / 32,769.
#[tokio::test]
async fn message_at_the_read_limit_passes_and_one_byte_more_gets_1009() {
    bounded(async {
        for limit in [1000usize, DEFAULT_READ_LIMIT] {
            let opts = AcceptOptions::new().read_limit(limit);
            let server = EchoServer::start(opts.clone()).await;
            let mut tcp = server.connect().await;
            let half = limit / 2;
            send(
                &mut tcp,
                &frames(&[
                    Frame::binary(vec![9; limit]),
                    Frame::text("t".repeat(limit)),
                    Frame::binary(vec![8; half]).fin(false),
                    Frame::cont(vec![]).fin(false),
                    Frame::cont(vec![8; limit - half]),
                ]),
            )
            .await;
            expect_message(&mut tcp, BINARY, &vec![9; limit]).await;
            expect_message(&mut tcp, TEXT, "t".repeat(limit).as_bytes()).await;
            expect_message(&mut tcp, BINARY, &vec![8; limit]).await;

            for over in [
                frames(&[Frame::binary(vec![7; limit + 1])]),
                frames(&[Frame::text("u".repeat(limit + 1))]),
                frames(&[
                    Frame::binary(vec![6; half]).fin(false),
                    Frame::cont(vec![6; limit + 1 - half]),
                ]),
            ] {
                let mut server = EchoServer::start(opts.clone()).await;
                let mut tcp = server.connect().await;
                send(&mut tcp, &over).await;
                expect_close(&mut tcp, 1009).await;
                expect_eof(&mut tcp).await;
                server.expect_end(ErrorKind::MessageTooBig).await;
            }
        }
    })
    .await;
}

/// Not an RFC case: checks the probe the memory cases rely on. Touching 96 MiB must show up
/// as at least 90 MiB of growth, so "grew by less than 64 MiB" above means something.
#[tokio::test]
async fn rss_probe_sees_touched_memory() {
    if !in_fresh_process(module_path!(), "rss_probe_sees_touched_memory").await {
        return;
    }
    let probe = RssProbe::start();
    let block = std::hint::black_box(vec![1u8; 96 << 20]);
    let grew = probe.growth_mib();
    eprintln!("[rss] probe self-check: 96 MiB touched, growth {grew:.1} MiB");
    assert!(grew >= 90.0, "the probe saw only {grew:.1} MiB");
    drop(block);
}
