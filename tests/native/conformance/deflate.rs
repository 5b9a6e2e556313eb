//! permessage-deflate (RFC 7692) against isosock's server and client over raw TCP: the offers
//! and answers of the handshake (7.1), RSV1 and compressed frames built by hand (6, 7.2),
//! RFC 7692's own examples (7.2.3), and hostile input (a deflate bomb, compressed control
//! frames, corrupt data, invalid UTF-8 that appears only once inflated), each with the close
//! code the RFCs call for. The raw side compresses and inflates with flate2 directly.

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress};
use isosock::{accept, AcceptOptions, Compression, DialOptions, ErrorKind, Message};
use tokio::net::{TcpListener, TcpStream};

use super::client::{
    expect_handshake_error, handshake_with, read_client_frame, server_frame, switching,
};
use super::handshake::{exchange, with};
use super::{
    expect_close, expect_eof, failure, frames, header, read_frame, read_http_head, row, send,
    status, EchoServer, Failure, Frame, Received, BINARY, CLOSE, CONT, PING, PONG, TEXT,
};
use crate::util::bounded;

/// RSV1 in `Frame::rsv`'s three bits.
const RSV1: u8 = 0b100;
/// The four bytes a compressed message's sender removes (RFC 7692 7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// What browsers offer.
const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";
/// The read limit of the servers and clients here.
const LIMIT: usize = 1 << 20;

/// `data` compressed as one whole message at `level` (raw DEFLATE, sync flush, the tail
/// removed), with a fresh compressor.
fn pack(data: &[u8], level: u32) -> Vec<u8> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let done = c.total_in() as usize;
        out.reserve(64 << 10);
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .expect("compress");
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - TAIL.len());
    out
}

/// A decompressor that keeps its window across messages, as a peer with context takeover.
struct Unpacker(Decompress);

impl Unpacker {
    fn new() -> Self {
        Unpacker(Decompress::new(false))
    }

    /// Inflates one message's compressed payload (the tail put back).
    fn message(&mut self, payload: &[u8]) -> Vec<u8> {
        let input = [payload, &TAIL[..]].concat();
        let mut out = Vec::new();
        let start = self.0.total_in() as usize;
        loop {
            out.reserve(64 << 10);
            let used = self.0.total_in() as usize - start;
            self.0
                .decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
                .expect("isosock's compressed payload inflates");
            if self.0.total_in() as usize - start == input.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// A server echoing every message, accepting permessage-deflate with context takeover and
/// compressing everything it sends.
async fn deflate_server() -> EchoServer {
    EchoServer::start(
        AcceptOptions::new()
            .read_limit(LIMIT)
            .compression(Compression::ContextTakeover)
            .compression_threshold(0),
    )
    .await
}

/// Upgrades a raw connection with `offer` (a `Sec-WebSocket-Extensions` line, or "") and
/// returns it with the response head.
async fn connect_with(addr: &str, offer: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = if offer.is_empty() {
        super::REQUEST.to_owned()
    } else {
        with(offer)
    };
    send(&mut tcp, request.as_bytes()).await;
    let head = read_http_head(&mut tcp).await.expect("a response");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    (tcp, head)
}

/// Upgrades with the browsers' offer and checks it was accepted.
async fn connect_deflate(server: &EchoServer) -> TcpStream {
    let (tcp, head) = connect_with(&server.addr, OFFER).await;
    assert_eq!(
        header(&head, "sec-websocket-extensions").as_deref(),
        Some("permessage-deflate"),
        "{head}"
    );
    tcp
}

/// 16 MiB of zeros, packed at the best ratio: about 16 KiB on the wire.
fn bomb() -> Vec<u8> {
    let packed = pack(&vec![0u8; 16 << 20], 9);
    assert!(packed.len() < 32 << 10, "{}", packed.len());
    packed
}

/// A compressed message's frames: `payload` split into `parts` frames, RSV1 on the first.
fn fragmented(opcode: u8, payload: &[u8], parts: usize) -> Vec<Frame> {
    let size = payload.len().div_ceil(parts).max(1);
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let f = if i == 0 {
                Frame::new(opcode, c.to_vec()).rsv(RSV1)
            } else {
                Frame::cont(c.to_vec())
            };
            f.fin(i == last)
        })
        .collect()
}

/// What isosock must fail the connection for once permessage-deflate is agreed: every row is
/// sent on a fresh connection to a compressing echo server (read limit 1 MiB).
fn server_failures() -> Vec<Failure> {
    let bomb = bomb();
    vec![
        // RFC 7692 6.1: "An endpoint MUST NOT set the "Per-Message Compressed" bit of control
        // frames"; a received one breaks RFC 6455 5.2's rule for RSV1 (no extension defines
        // it there): 1002.
        failure(
            "compressed ping",
            "7692 6.1",
            Frame::ping("x").rsv(RSV1).encode(),
            1002,
            ErrorKind::Protocol,
        ),
        failure(
            "compressed pong",
            "7692 6.1",
            Frame::pong("x").rsv(RSV1).encode(),
            1002,
            ErrorKind::Protocol,
        ),
        failure(
            "compressed close",
            "7692 6.1",
            Frame::close(1000, b"").rsv(RSV1).encode(),
            1002,
            ErrorKind::Protocol,
        ),
        // RFC 7692 6.1: the bit is set on "the first frame of the message" only.
        failure(
            "RSV1 on a continuation frame",
            "7692 6.1",
            frames(&[
                Frame::text(pack(b"ab", 6)).rsv(RSV1).fin(false),
                Frame::cont(pack(b"cd", 6)).rsv(RSV1),
            ]),
            1002,
            ErrorKind::Protocol,
        ),
        // RFC 6455 5.2: permessage-deflate defines RSV1 only.
        failure(
            "RSV2 with permessage-deflate agreed",
            "6455 5.2",
            Frame::text("x").rsv(0b010).encode(),
            1002,
            ErrorKind::Protocol,
        ),
        failure(
            "RSV3 with permessage-deflate agreed",
            "6455 5.2",
            Frame::text("x").rsv(0b001).encode(),
            1002,
            ErrorKind::Protocol,
        ),
        failure(
            "a new message while a compressed one is open",
            "6455 5.4",
            frames(&[
                Frame::text(pack(b"ab", 6)).rsv(RSV1).fin(false),
                Frame::text(pack(b"cd", 6)).rsv(RSV1),
            ]),
            1002,
            ErrorKind::Protocol,
        ),
        // RFC 7692 6.2 leaves the code open ("_Fail the WebSocket Connection_"). Choice:
        // 1007, "data within a message that was not consistent with the type of the message".
        failure(
            "corrupt DEFLATE data (a reserved block type)",
            "7692 6.2",
            Frame::binary([0xff; 8]).rsv(RSV1).encode(),
            1007,
            ErrorKind::InvalidData,
        ),
        // RFC 6455 8.1 applies to the inflated text.
        failure(
            "invalid UTF-8 that appears only after inflation",
            "6455 8.1",
            Frame::text(pack(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xff rest", 6))
                .rsv(RSV1)
                .encode(),
            1007,
            ErrorKind::InvalidData,
        ),
        failure(
            "invalid UTF-8 in the second fragment once inflated",
            "6455 8.1",
            frames(&fragmented(TEXT, &pack(b"valid text, then \xc0\xaf", 6), 2)),
            1007,
            ErrorKind::InvalidData,
        ),
        // RFC 6455 10.4 and RFC 7692 8 (an implementation must guard against a message that
        // inflates beyond its limits): 16 KiB that inflate to 16 MiB fail with 1009 once the
        // 1 MiB limit is passed, in one frame or in several, binary or text.
        failure(
            "a deflate bomb in one frame",
            "7692 8",
            Frame::binary(bomb.clone()).rsv(RSV1).encode(),
            1009,
            ErrorKind::MessageTooBig,
        ),
        failure(
            "a deflate bomb as text",
            "7692 8",
            Frame::text(bomb.clone()).rsv(RSV1).encode(),
            1009,
            ErrorKind::MessageTooBig,
        ),
        failure(
            "a deflate bomb in 8 fragments",
            "7692 8",
            frames(&fragmented(BINARY, &bomb, 8)),
            1009,
            ErrorKind::MessageTooBig,
        ),
    ]
}

#[tokio::test]
async fn compressed_frames_that_fail_the_connection() {
    bounded(async {
        let mut server = deflate_server().await;
        for f in server_failures() {
            row(&f.name, f.rfc, async {
                let mut tcp = connect_deflate(&server).await;
                send(&mut tcp, &f.bytes).await;
                expect_close(&mut tcp, f.code).await;
                let end = server.expect_end(f.kind).await;
                assert_eq!(
                    isosock::close_status(&end).map(|s| s.as_u16()),
                    None,
                    "{end:?}"
                );
            })
            .await;
        }
    })
    .await;
}

/// RFC 6455 5.2 and RFC 7692 5: RSV1 is only allowed once permessage-deflate was agreed on
/// this connection. A server that supports it, asked by a client that did not offer it,
/// fails a frame with RSV1 with 1002.
#[tokio::test]
async fn rsv1_without_an_agreement_is_a_protocol_error() {
    bounded(async {
        let mut server = deflate_server().await;
        let (mut tcp, head) = connect_with(&server.addr, "").await;
        assert_eq!(header(&head, "sec-websocket-extensions"), None, "{head}");
        send(&mut tcp, &Frame::text(pack(b"hello", 6)).rsv(RSV1).encode()).await;
        expect_close(&mut tcp, 1002).await;
        server.expect_end(ErrorKind::Protocol).await;
    })
    .await;
}

/// Reads the server's next message frame: final, unmasked, RSV1 set (the server compresses
/// everything); returns its inflated payload.
async fn read_compressed(tcp: &mut TcpStream, unpack: &mut Unpacker, opcode: u8) -> Vec<u8> {
    let f = read_frame(tcp).await.expect("an echo");
    assert_eq!(
        (f.opcode, f.fin, f.rsv, f.mask),
        (opcode, true, RSV1, None),
        "{f:?}"
    );
    unpack.message(&f.payload)
}

/// RFC 7692 7.2.3's examples, sent byte for byte, are read as the RFC says and echoed
/// compressed: "Hello" in one frame (7.2.3.1) and in two (7.2.3.2), with a final block
/// (7.2.3.3), twice sharing the window (7.2.3.4, the second message a back-reference into the
/// first), in a stored block (7.2.3.5), and the empty message (7.2.3.6). An uncompressed
/// message on the same connection (RSV1 clear) is read as it is.
#[tokio::test]
async fn rfc_7692_examples_are_read_and_echoed() {
    bounded(async {
        let server = deflate_server().await;
        let mut tcp = connect_deflate(&server).await;
        let mut unpack = Unpacker::new();
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let cases: Vec<(&str, Vec<Frame>, &[u8])> = vec![
            ("7.2.3.1", vec![Frame::text(hello).rsv(RSV1)], b"Hello"),
            (
                "7.2.3.2",
                vec![
                    Frame::text([0xf2, 0x48, 0xcd]).rsv(RSV1).fin(false),
                    Frame::cont([0xc9, 0xc9, 0x07, 0x00]),
                ],
                b"Hello",
            ),
            (
                "7.2.3.4 (first)",
                vec![Frame::text(hello).rsv(RSV1)],
                b"Hello",
            ),
            (
                "7.2.3.4 (second, a back-reference)",
                vec![Frame::text([0xf2, 0x00, 0x11, 0x00, 0x00]).rsv(RSV1)],
                b"Hello",
            ),
            (
                "7.2.3.5",
                vec![Frame::text([
                    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
                ])
                .rsv(RSV1)],
                b"Hello",
            ),
            ("7.2.3.6", vec![Frame::binary([0x00]).rsv(RSV1)], b""),
            ("uncompressed", vec![Frame::text("plain")], b"plain"),
            (
                "7.2.3.3 (a final block)",
                vec![Frame::text([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]).rsv(RSV1)],
                b"Hello",
            ),
        ];
        for (name, sent, want) in cases {
            row(name, "7692 7.2.3", async {
                send(&mut tcp, &frames(&sent)).await;
                let opcode = sent[0].opcode;
                assert_eq!(read_compressed(&mut tcp, &mut unpack, opcode).await, want);
            })
            .await;
        }
    })
    .await;
}

/// RFC 6455 5.4 and RFC 7692 6.1: control frames between the fragments of a compressed
/// message are answered, uncompressed, and the message is reassembled.
#[tokio::test]
async fn a_ping_between_compressed_fragments_is_answered() {
    bounded(async {
        let server = deflate_server().await;
        let mut tcp = connect_deflate(&server).await;
        let text = "fragmented and compressed ".repeat(40);
        let mut sent = fragmented(TEXT, &pack(text.as_bytes(), 6), 3);
        sent.insert(1, Frame::ping("between"));
        send(&mut tcp, &frames(&sent)).await;
        let pong = read_frame(&mut tcp).await.expect("pong");
        assert_eq!(
            (pong.opcode, pong.rsv, &pong.payload[..]),
            (PONG, 0, &b"between"[..])
        );
        let echoed = read_compressed(&mut tcp, &mut Unpacker::new(), TEXT).await;
        assert_eq!(echoed, text.as_bytes());
    })
    .await;
}

/// RFC 7692 7.1: what an isosock server answers to offers, by mode. It takes the first offer
/// it can honour, declines one with an unknown parameter or a window size outside 8..=15 (a
/// 101 without the extension), honours the client's window and context requests, and refuses
/// a header that does not parse with 400 (RFC 6455 9.1).
#[tokio::test]
async fn server_answers_offers_as_rfc_7692_says() {
    bounded(async {
        let context = deflate_server().await;
        let no_context =
            EchoServer::start(AcceptOptions::new().compression(Compression::NoContextTakeover))
                .await;
        let cases: Vec<(&EchoServer, &str, Option<&str>)> =
            vec![
            (&context, "permessage-deflate; client_max_window_bits", Some("permessage-deflate")),
            (&context, "permessage-deflate", Some("permessage-deflate")),
            (&context, "permessage-deflate; server_max_window_bits=16", None),
            (&context, "permessage-deflate; server_max_window_bits=7", None),
            (&context, "permessage-deflate; server_max_window_bits=010", None),
            (&context, "permessage-deflate; client_max_window_bits=16", None),
            (&context, "permessage-deflate; server_no_context_takeover=yes", None),
            (&context, "permessage-deflate; mystery_param", None),
            (&context, "x-webkit-deflate-frame", None),
            (
                &context,
                "permessage-deflate; server_max_window_bits=99, permessage-deflate; \
                 server_max_window_bits=10",
                Some("permessage-deflate; server_max_window_bits=10"),
            ),
            (
                &context,
                "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=12",
                Some("permessage-deflate"),
            ),
            (
                &context,
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ),
            (
                &no_context,
                "permessage-deflate; client_max_window_bits",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ),
        ];
        for (server, offer, want) in cases {
            row(offer, "7692 7.1", async {
                let (head, _) = exchange(
                    &server.addr,
                    &with(&format!("Sec-WebSocket-Extensions: {offer}")),
                )
                .await;
                assert_eq!(status(&head), 101, "{head}");
                assert_eq!(
                    header(&head, "sec-websocket-extensions").as_deref(),
                    want,
                    "{head}"
                );
            })
            .await;
        }
        let (head, body) = exchange(
            &context.addr,
            &with("Sec-WebSocket-Extensions: permessage-deflate; ="),
        )
        .await;
        assert_eq!(status(&head), 400, "{head}");
        assert!(body.contains("Sec-WebSocket-Extensions"), "{body}");
    })
    .await;
}

/// RFC 7692 7.1.2.1: a server granted `server_max_window_bits=8` (no DEFLATE implementation
/// compresses with a 256-byte window) sends its messages uncompressed, which the RFC always
/// allows, and still reads compressed ones.
#[tokio::test]
async fn server_asked_for_an_8_bit_window_sends_uncompressed() {
    bounded(async {
        let server = deflate_server().await;
        let (mut tcp, head) = connect_with(
            &server.addr,
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8",
        )
        .await;
        assert_eq!(
            header(&head, "sec-websocket-extensions").as_deref(),
            Some("permessage-deflate; server_max_window_bits=8")
        );
        let text = "eight bits ".repeat(30);
        send(
            &mut tcp,
            &Frame::text(pack(text.as_bytes(), 6)).rsv(RSV1).encode(),
        )
        .await;
        let f = read_frame(&mut tcp).await.expect("echo");
        assert_eq!((f.opcode, f.rsv, f.payload), (TEXT, 0, text.into_bytes()));
    })
    .await;
}

/// RFC 7692 7.2.1: isosock's streaming writer compresses as it goes: RSV1 on the first
/// frame only, every frame's bytes inflatable as they arrive, and the whole message (300
/// KiB of JSON-like text, far over one 16 KiB frame) much smaller on the wire.
#[tokio::test]
async fn the_streaming_writer_compresses_frame_by_frame() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let line = "{\"user\":\"ada\",\"text\":\"streamed and compressed\"}\n";
        let text = line.repeat((300 << 10) / line.len());
        let sent = text.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let opts = AcceptOptions::new().compression(Compression::NoContextTakeover);
            let conn = accept(tcp, &opts).await.expect("accept");
            let mut w = conn
                .writer(isosock::MessageType::Text)
                .await
                .expect("writer");
            for chunk in sent.as_bytes().chunks(10_000) {
                tokio::io::AsyncWriteExt::write_all(&mut w, chunk)
                    .await
                    .expect("write");
            }
            w.finish().await.expect("finish");
            conn
        });
        let (mut tcp, _) = connect_with(&addr, OFFER).await;
        let mut d = Decompress::new(false);
        let (mut got, mut wire, mut count) = (Vec::new(), 0, 0);
        loop {
            let f: Received = read_frame(&mut tcp).await.expect("a frame");
            let first = count == 0;
            assert_eq!(f.opcode, if first { TEXT } else { CONT }, "{count}");
            assert_eq!(f.rsv, if first { RSV1 } else { 0 }, "frame {count}");
            wire += f.payload.len();
            count += 1;
            // Every frame ends with a sync flush, so it inflates on arrival; the last one had
            // the flush's four bytes removed.
            let input = if f.fin {
                [&f.payload[..], &TAIL].concat()
            } else {
                f.payload
            };
            got.extend(inflate_all(&mut d, &input));
            if f.fin {
                break;
            }
        }
        assert_eq!(String::from_utf8(got).expect("UTF-8"), text);
        assert!(count > 1, "one frame for {} bytes", text.len());
        assert!(
            wire < text.len() / 5,
            "{wire} bytes on the wire for {}",
            text.len()
        );
        drop(server.await.expect("server"));
    })
    .await;
}

/// Inflates `input` completely with `d`.
fn inflate_all(d: &mut Decompress, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let start = d.total_in() as usize;
    loop {
        out.reserve(64 << 10);
        let used = d.total_in() as usize - start;
        d.decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
            .expect("inflate");
        if d.total_in() as usize - start == input.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

// ---- the client ----------------------------------------------------------------------------

/// RFC 7692 7.1: what an isosock client offers in each mode (nothing when disabled), and by
/// default.
#[tokio::test]
async fn client_offers_by_mode() {
    bounded(async {
        for (mode, want) in [
            (Compression::Disabled, None),
            (
                Compression::ContextTakeover,
                Some("permessage-deflate; client_max_window_bits"),
            ),
            (
                Compression::NoContextTakeover,
                Some(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                     client_max_window_bits",
                ),
            ),
        ] {
            let (_, _, head) = handshake_with(DialOptions::new().compression(mode), |head| {
                switching(head, "")
            })
            .await;
            assert_eq!(
                header(&head, "sec-websocket-extensions").as_deref(),
                want,
                "{mode:?}"
            );
        }
        // The default is the no-context offer, as a browser offers compression by default.
        let (_, _, head) = handshake_with(DialOptions::new(), |head| switching(head, "")).await;
        assert_eq!(
            header(&head, "sec-websocket-extensions").as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 client_max_window_bits"
            )
        );
    })
    .await;
}

/// RFC 7692 7.1 (and 6455 9.1): answers the client's offer did not allow fail the dial with
/// `ErrorKind::Handshake`: a window outside 8..=15, `client_max_window_bits` without a value,
/// an unknown or repeated parameter, two agreements, another extension, and (for the
/// no-context offer) an agreement without `server_no_context_takeover`.
#[tokio::test]
async fn client_refuses_answers_it_did_not_offer() {
    bounded(async {
        let ctx = Compression::ContextTakeover;
        for (mode, answer) in [
            (ctx, "permessage-deflate; server_max_window_bits=16"),
            (ctx, "permessage-deflate; server_max_window_bits=7"),
            (ctx, "permessage-deflate; client_max_window_bits=16"),
            (ctx, "permessage-deflate; client_max_window_bits"),
            (ctx, "permessage-deflate; server_no_context_takeover=1"),
            (
                ctx,
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            ),
            (ctx, "permessage-deflate; mystery"),
            (ctx, "permessage-deflate, permessage-deflate"),
            (ctx, "x-webkit-deflate-frame"),
            (ctx, "permessage-deflate; ="),
            (Compression::NoContextTakeover, "permessage-deflate"),
        ] {
            row(answer, "7692 7.1", async {
                let err = expect_handshake_error(DialOptions::new().compression(mode), |head| {
                    switching(head, &format!("Sec-WebSocket-Extensions: {answer}\r\n"))
                })
                .await;
                assert!(
                    err.to_string().contains("extension")
                        || err.to_string().contains("permessage-deflate"),
                    "{err}"
                );
            })
            .await;
        }
    })
    .await;
}

/// An open client connection that agreed `answer`, and the raw server side of it.
async fn open_deflate(mode: Compression, answer: &str) -> (isosock::Conn, TcpStream) {
    let opts = DialOptions::new()
        .compression(mode)
        .compression_threshold(0)
        .read_limit(LIMIT);
    let (conn, tcp, _) = handshake_with(opts, |head| {
        switching(head, &format!("Sec-WebSocket-Extensions: {answer}\r\n"))
    })
    .await;
    let conn = conn.expect("dial");
    assert_eq!(conn.extensions(), answer);
    (conn, tcp)
}

/// RFC 7692 7.2.1 from the client: compressed, masked frames with RSV1 that inflate to what
/// was written, with the window kept across messages under context takeover (the second
/// copy of a message is a few bytes); and after a `client_max_window_bits=8` answer, plain
/// frames.
#[tokio::test]
async fn client_compresses_what_it_writes() {
    bounded(async {
        let (conn, mut tcp) =
            open_deflate(Compression::ContextTakeover, "permessage-deflate").await;
        let text = "{\"user\":\"ada\",\"text\":\"compressed by the client\"}";
        let mut unpack = Unpacker::new();
        let mut sizes = Vec::new();
        for _ in 0..2 {
            conn.write(text).await.expect("write");
            let f = read_client_frame(&mut tcp).await;
            assert_eq!((f.opcode, f.fin, f.rsv), (TEXT, true, RSV1));
            sizes.push(f.payload.len());
            assert_eq!(unpack.message(&f.payload), text.as_bytes());
        }
        assert!(sizes[1] < sizes[0] / 3, "{sizes:?}");

        let (conn, mut tcp) = open_deflate(
            Compression::ContextTakeover,
            "permessage-deflate; client_max_window_bits=8",
        )
        .await;
        conn.write(text).await.expect("write");
        let f = read_client_frame(&mut tcp).await;
        assert_eq!(
            (f.opcode, f.rsv, &f.payload[..]),
            (TEXT, 0, text.as_bytes())
        );
    })
    .await;
}

/// The client reads RFC 7692's examples and a message that refers back to an earlier one.
#[tokio::test]
async fn client_inflates_what_it_reads() {
    bounded(async {
        let (conn, mut tcp) =
            open_deflate(Compression::ContextTakeover, "permessage-deflate").await;
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        send(
            &mut tcp,
            &frames(&[
                server_frame(TEXT, hello).rsv(RSV1),
                server_frame(TEXT, [0xf2, 0x00, 0x11, 0x00, 0x00]).rsv(RSV1),
                server_frame(BINARY, [0x00]).rsv(RSV1),
                server_frame(TEXT, "plain"),
            ]),
        )
        .await;
        for want in [
            Message::text("Hello"),
            Message::text("Hello"),
            Message::binary(Vec::new()),
            Message::text("plain"),
        ] {
            assert_eq!(conn.read().await.expect("read"), want);
        }
    })
    .await;
}

/// The same hostile input, server to client: each fails the client's read with its kind and
/// makes it send the close code, masked, then close the TCP connection.
#[tokio::test]
async fn compressed_frames_that_fail_the_client() {
    bounded(async {
        let bomb = bomb();
        let rows = [
            (
                "compressed ping",
                server_frame(PING, "x").rsv(RSV1).encode(),
                1002,
                ErrorKind::Protocol,
            ),
            (
                "RSV1 on a continuation frame",
                frames(&[
                    server_frame(BINARY, pack(b"ab", 6)).rsv(RSV1).fin(false),
                    server_frame(CONT, pack(b"cd", 6)).rsv(RSV1),
                ]),
                1002,
                ErrorKind::Protocol,
            ),
            (
                "corrupt DEFLATE data",
                server_frame(BINARY, [0xff; 8]).rsv(RSV1).encode(),
                1007,
                ErrorKind::InvalidData,
            ),
            (
                "invalid UTF-8 after inflation",
                server_frame(TEXT, pack(b"caf\xc3", 6)).rsv(RSV1).encode(),
                1007,
                ErrorKind::InvalidData,
            ),
            (
                "a deflate bomb",
                server_frame(BINARY, bomb).rsv(RSV1).encode(),
                1009,
                ErrorKind::MessageTooBig,
            ),
        ];
        for (name, bytes, code, kind) in rows {
            row(name, "7692", async {
                let (conn, mut tcp) =
                    open_deflate(Compression::ContextTakeover, "permessage-deflate").await;
                send(&mut tcp, &bytes).await;
                let err = conn.read().await.expect_err("the client must fail");
                assert_eq!(err.kind(), kind, "{err:?}");
                let f = read_client_frame(&mut tcp).await;
                assert_eq!((f.opcode, f.rsv), (CLOSE, 0), "{f:?}");
                assert_eq!(f.close_code(), Some(code), "{f:?}");
                expect_eof(&mut tcp).await;
            })
            .await;
        }
    })
    .await;
}

/// RFC 7692 8 and RFC 6455 10.4, measured: 32 connections at once each send about 64 KiB
/// that would inflate to 64 MiB (2 GiB in all) against a 1 MiB read limit. Each fails with
/// 1009, and the process's peak resident memory grows by less than 64 MiB: inflated bytes are
/// counted against the limit as they inflate, never allocated past it.
#[tokio::test]
async fn concurrent_deflate_bombs_stay_within_the_read_limit() {
    if !super::in_fresh_process(
        module_path!(),
        "concurrent_deflate_bombs_stay_within_the_read_limit",
    )
    .await
    {
        return;
    }
    bounded(async {
        let bytes = Frame::binary(pack(&vec![0u8; 64 << 20], 9))
            .rsv(RSV1)
            .encode();
        assert!(bytes.len() < 128 << 10, "{}", bytes.len());
        let probe = super::RssProbe::start();
        let mut server = deflate_server().await;
        let conns = futures_util::future::join_all((0..32).map(|_| async {
            let mut tcp = connect_deflate(&server).await;
            send(&mut tcp, &bytes).await;
            tcp
        }))
        .await;
        for mut tcp in conns {
            expect_close(&mut tcp, 1009).await;
            server.expect_end(ErrorKind::MessageTooBig).await;
        }
        let grew = probe.growth_mib();
        eprintln!(
            "[rss] 32 deflate bombs of 64 MiB each: peak resident memory grew by {grew:.1} MiB"
        );
        assert!(grew < 64.0, "resident memory grew by {grew:.1} MiB");
    })
    .await;
}
