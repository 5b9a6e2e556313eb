//! isosock's server (`accept`) against hand-built client frames: RFC 6455 sections 5 (framing,
//! masking, fragmentation, control frames), 7 (closing) and 8 (UTF-8).

use isosock::{ErrorKind, StatusCode};

use super::{
    expect_close, expect_close_one_of, expect_eof, expect_message, failure, frames, read_frame,
    row, send, EchoServer, Failure, Frame, Len, BINARY, CLOSE, PING, PONG, TEXT,
};
use crate::util::bounded;

/// Sends `bytes` on a fresh connection and checks that the server fails it with `code`
/// (RFC 6455 section 7.1.7: send a close frame with the code, then close the connection),
/// and that the server application saw `kind`.
async fn expect_failure(bytes: &[u8], code: u16, kind: ErrorKind) {
    let mut server = EchoServer::default_limits().await;
    let mut tcp = server.connect().await;
    send(&mut tcp, bytes).await;
    expect_close(&mut tcp, code).await;
    expect_eof(&mut tcp).await;
    server.expect_end(kind).await;
}

/// Sends `frames` on a fresh connection and checks that the server echoes `expected`.
async fn expect_echo(sent: &[Frame], opcode: u8, expected: &[u8]) {
    let server = EchoServer::default_limits().await;
    let mut tcp = server.connect().await;
    send(&mut tcp, &frames(sent)).await;
    expect_message(&mut tcp, opcode, expected).await;
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 253) as u8).collect()
}

// ---- Tables: frames that fail the connection, frames that are echoed ------------------------

/// The rows of [`client_frames_that_fail_the_connection`], by RFC section; each group's
/// comment gives the RFC's reasoning.
fn failures() -> Vec<Failure> {
    use ErrorKind::{InvalidData, Protocol};
    let mut rows = vec![
        // 5.1 Masking: "a client MUST mask all frames that it sends to the server"; the server
        // "MUST close the connection upon receiving a frame that is not masked", with 1002 (7.4.1).
        // The rule covers control frames (an unmasked ping gets 1002 and no pong) and every frame
        // of a fragmented message (a masked first fragment, then an unmasked continuation).
        failure(
            "unmasked_data_frame",
            "5.1",
            Frame::text("hi").unmasked().encode(),
            1002,
            Protocol,
        ),
        failure(
            "unmasked_ping",
            "5.1",
            Frame::ping("p").unmasked().encode(),
            1002,
            Protocol,
        ),
        failure(
            "unmasked_continuation",
            "5.1",
            frames(&[
                Frame::text("masked ").fin(false),
                Frame::cont("unmasked").unmasked(),
            ]),
            1002,
            Protocol,
        ),
        // 5.2 Reserved bits: RSV1, RSV2 and RSV3 "MUST be 0 unless an extension is negotiated";
        // with none negotiated, a data frame with any of them set fails the connection with 1002.
        // The rule covers control frames (a ping with RSV1) and continuations (RSV2 on the last
        // fragment).
    ];

    for rsv in [0b100, 0b010, 0b001, 0b111] {
        rows.push(failure(
            format!("reserved_bits_on_a_data_frame (rsv {rsv:#05b})"),
            "5.2",
            Frame::text("rsv").rsv(rsv).encode(),
            1002,
            Protocol,
        ));
    }
    rows.push(failure(
        "reserved_bit_on_a_ping",
        "5.2",
        Frame::ping("p").rsv(0b100).encode(),
        1002,
        Protocol,
    ));
    rows.push(failure(
        "reserved_bit_on_a_continuation",
        "5.2",
        frames(&[Frame::text("a").fin(false), Frame::cont("b").rsv(0b010)]),
        1002,
        Protocol,
    ));

    // 5.2 Reserved opcodes: 0x3-0x7 are "reserved for further non-control frames"; "if an
    // unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket
    // Connection_": 1002 for each. 0xB-0xF are "reserved for further control frames": 1002
    // for each, with an empty payload as well as with one. A reserved opcode in the middle of
    // a fragmented message gets 1002 too.
    for opcode in 0x3..=0x7 {
        rows.push(failure(
            format!("reserved_data_opcode ({opcode:#x})"),
            "5.2",
            Frame::new(opcode, "x").encode(),
            1002,
            Protocol,
        ));
    }
    for opcode in 0xB..=0xF {
        for payload in [&b""[..], b"x"] {
            rows.push(failure(
                format!(
                    "reserved_control_opcode ({opcode:#x}, {} payload bytes)",
                    payload.len()
                ),
                "5.2",
                Frame::new(opcode, payload).encode(),
                1002,
                Protocol,
            ));
        }
    }
    rows.push(failure(
        "reserved_opcode_between_fragments",
        "5.2",
        frames(&[Frame::text("a").fin(false), Frame::new(0x5, "b")]),
        1002,
        Protocol,
    ));

    // 5.5 Control frames: "All control frames MUST have a payload length of 125 bytes or
    // less": a 126-byte ping gets 1002 (and no pong); the limit covers pongs and close frames
    // too. Control frames "MUST NOT be fragmented": a ping, a pong and a close frame with FIN
    // clear each get 1002.
    rows.push(failure(
        "ping_over_125_bytes",
        "5.5",
        Frame::ping(pattern(126)).encode(),
        1002,
        Protocol,
    ));
    rows.push(failure(
        "pong_over_125_bytes",
        "5.5",
        Frame::pong(pattern(126)).encode(),
        1002,
        Protocol,
    ));
    let big_close = Frame::close(1000, &[b'r'; 124]);
    assert_eq!(big_close.payload.len(), 126);
    rows.push(failure(
        "close_over_125_bytes",
        "5.5",
        big_close.encode(),
        1002,
        Protocol,
    ));
    for (what, f) in [
        ("ping", Frame::ping("p")),
        ("pong", Frame::pong("p")),
        ("close", Frame::close(1000, b"")),
    ] {
        rows.push(failure(
            format!("fragmented_control_frame ({what})"),
            "5.5",
            f.fin(false).encode(),
            1002,
            Protocol,
        ));
    }

    // 5.4 Fragmentation: a continuation frame with no message open (here as the first frame,
    // with FIN set) has nothing to continue: 1002. "The fragments of one message MUST NOT be
    // interleaved between the fragments of another message": a new text or binary frame
    // while a fragmented message is open gets 1002.
    rows.push(failure(
        "continuation_without_start",
        "5.4",
        Frame::cont("orphan").encode(),
        1002,
        Protocol,
    ));
    rows.push(failure(
        "new_data_frame_inside_a_fragmented_message (text in text)",
        "5.4",
        frames(&[Frame::text("a").fin(false), Frame::text("b")]),
        1002,
        Protocol,
    ));
    rows.push(failure(
        "new_data_frame_inside_a_fragmented_message (text in binary)",
        "5.4",
        frames(&[Frame::binary("a").fin(false), Frame::text("b").fin(false)]),
        1002,
        Protocol,
    ));

    // 8.1 UTF-8 (and 5.6): a text frame that is not valid UTF-8 fails the connection; 7.4.1
    // names 1007 for "data within a message that was not consistent with the type". Covers a
    // stray byte, an overlong encoding, a UTF-16 surrogate, a code point above U+10FFFF and a
    // sequence cut short by the end of the message; then an invalid sequence split across
    // fragments (a valid lead byte and continuation in the first, a non-continuation byte in
    // the second), and a fragmented message whose last fragment ends inside a multi-byte
    // sequence.
    for (what, bad) in [
        ("stray byte", &b"ok\xff"[..]),
        ("overlong encoding", b"\xc0\xaf"),
        ("UTF-16 surrogate", b"\xed\xa0\x80"),
        ("above U+10FFFF", b"\xf4\x90\x80\x80"),
        ("cut short", b"cut \xe2\x82"),
    ] {
        rows.push(failure(
            format!("invalid_utf8_text ({what})"),
            "8.1",
            Frame::text(bad).encode(),
            1007,
            InvalidData,
        ));
    }
    rows.push(failure(
        "invalid_sequence_split_across_fragments",
        "8.1",
        frames(&[
            Frame::text(&b"ab\xe2\x82"[..]).fin(false),
            Frame::cont(&b"\x28cd"[..]),
        ]),
        1007,
        InvalidData,
    ));
    rows.push(failure(
        "fragmented_text_ending_mid_character",
        "8.1",
        frames(&[
            Frame::text("ok ").fin(false),
            Frame::cont(&b"\xf0\x9f\xa6"[..]),
        ]),
        1007,
        InvalidData,
    ));

    // 5.5.1 Closing: a close body, if present, starts with a 2-byte code; a 1-byte body is
    // malformed: 1002.
    rows.push(failure(
        "one_byte_close_payload",
        "5.5.1",
        Frame::new(CLOSE, vec![0x03]).encode(),
        1002,
        Protocol,
    ));
    rows
}

/// RFC 6455 5, 7 and 8: each row of [`failures`] (unmasked frames, reserved bits and opcodes,
/// oversized or fragmented control frames, broken fragmentation, invalid UTF-8, a malformed
/// close body) is sent on a fresh connection and the server fails it: a close frame with the
/// row's code, then the end of the TCP connection (7.1.7), and the row's error kind for the
/// server application. A failing row fails the test with its name and RFC section.
#[tokio::test]
async fn client_frames_that_fail_the_connection() {
    bounded(async {
        for f in failures() {
            row(&f.name, f.rfc, expect_failure(&f.bytes, f.code, f.kind)).await;
        }
    })
    .await;
}

/// One row of [`client_frames_that_are_echoed`]: sent on a fresh connection, `sent` must come
/// back from the echo server as one message of `opcode` with the payload `expected`.
struct Echo {
    /// The case, with the value that varies, if any.
    name: &'static str,
    /// The RFC 6455 section that requires this outcome.
    rfc: &'static str,
    sent: Vec<Frame>,
    opcode: u8,
    expected: Vec<u8>,
}

/// The rows of [`client_frames_that_are_echoed`]; each comment gives the RFC's reasoning.
fn echoes() -> Vec<Echo> {
    vec![
        // 5.3: the mask bit, not the key's value, marks a masked frame: a masking key of four
        // zero bytes is a valid (if weak) key and the frame is accepted.
        Echo {
            name: "all_zero_masking_key",
            rfc: "5.3",
            sent: vec![Frame::text("zero key").masked([0; 4])],
            opcode: TEXT,
            expected: b"zero key".to_vec(),
        },
        // 5.3: each frame carries its own masking key; consecutive frames (and fragments of
        // one message) with different keys are unmasked independently.
        Echo {
            name: "each_frame_is_unmasked_with_its_own_key",
            rfc: "5.3",
            sent: vec![
                Frame::text("one ").fin(false).masked([1, 2, 3, 4]),
                Frame::cont("two ").fin(false).masked([0xff, 0, 0xff, 0]),
                Frame::cont("three").masked([9, 9, 9, 9]),
            ],
            opcode: TEXT,
            expected: b"one two three".to_vec(),
        },
        // 8.1: valid UTF-8 at the edges of the range (U+FFFF, U+10FFFF, 4-byte emoji) is
        // accepted; binary messages are never checked for UTF-8.
        Echo {
            name: "valid_utf8_edges",
            rfc: "8.1",
            sent: vec![Frame::text("\u{ffff} \u{10ffff} 🦀 é")],
            opcode: TEXT,
            expected: "\u{ffff} \u{10ffff} 🦀 é".as_bytes().to_vec(),
        },
        Echo {
            name: "binary_is_not_checked_for_utf8",
            rfc: "8.1",
            sent: vec![Frame::binary(&b"\xff\xfe"[..])],
            opcode: BINARY,
            expected: b"\xff\xfe".to_vec(),
        },
        // 5.6: the text of a fragmented message "may contain a partial UTF-8 sequence" in one
        // fragment; only the whole message must be valid. A 3-byte character split over three
        // fragments and a 4-byte one split 2+2 are accepted.
        Echo {
            name: "multibyte_character_split_across_fragments (3 bytes in 3 fragments)",
            rfc: "5.6",
            sent: vec![
                Frame::text(&b"\xe2"[..]).fin(false),
                Frame::cont(&b"\x82"[..]).fin(false),
                Frame::cont(&b"\xac"[..]),
            ],
            opcode: TEXT,
            expected: "€".as_bytes().to_vec(),
        },
        Echo {
            name: "multibyte_character_split_across_fragments (4 bytes split 2+2)",
            rfc: "5.6",
            sent: vec![
                Frame::text(&b"crab \xf0\x9f"[..]).fin(false),
                Frame::cont(&b"\xa6\x80"[..]),
            ],
            opcode: TEXT,
            expected: "crab 🦀".as_bytes().to_vec(),
        },
    ]
}

/// RFC 6455 5.3, 5.6 and 8.1: each row of [`echoes`] (unusual but valid masking keys, UTF-8
/// at the edges of the range and split across fragments, binary that is not UTF-8) is sent on
/// a fresh connection and echoed as one message. A failing row fails the test with its name
/// and RFC section.
#[tokio::test]
async fn client_frames_that_are_echoed() {
    bounded(async {
        for e in echoes() {
            row(e.name, e.rfc, expect_echo(&e.sent, e.opcode, &e.expected)).await;
        }
    })
    .await;
}

// ---- 5.2 Base framing: payload lengths -------------------------------------------------

/// RFC 6455 5.2: payload lengths at every encoding boundary (7-bit up to 125, 16-bit for
/// 126..=65535, 64-bit from 65536) are read correctly, for text and binary. The server's
/// echo uses the minimal length encoding ("the minimal number of bytes MUST be used"), is
/// unmasked (5.1) and has FIN set and no reserved bit.
#[tokio::test]
async fn payload_lengths_at_encoding_boundaries_round_trip() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        for (len, len_bytes) in [
            (0, 0),
            (1, 0),
            (125, 0),
            (126, 2),
            (127, 2),
            (65535, 2),
            (65536, 8),
            (100_000, 8),
        ] {
            for opcode in [TEXT, BINARY] {
                let payload = if opcode == TEXT {
                    "a".repeat(len).into_bytes()
                } else {
                    pattern(len)
                };
                send(&mut tcp, &Frame::new(opcode, payload.clone()).encode()).await;
                let f = read_frame(&mut tcp).await.expect("echo");
                assert_eq!(
                    (f.opcode, f.fin, f.rsv, f.mask),
                    (opcode, true, 0, None),
                    "{len}"
                );
                assert_eq!(f.len_bytes, len_bytes, "minimal length encoding of {len}");
                assert!(f.payload == payload, "payload of {len} bytes");
            }
        }
    })
    .await;
}

/// RFC 6455 5.2 asks senders for the minimal length encoding but gives receivers no rule.
/// Choice: isosock (tungstenite) accepts a 5-byte payload in the 16-bit and 64-bit forms and
/// a 200-byte payload in the 64-bit form, like Autobahn-tested servers usually do.
#[tokio::test]
async fn non_minimal_length_encodings_are_accepted() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        for (len, encoding) in [(5, Len::Bits16), (5, Len::Bits64), (200, Len::Bits64)] {
            let payload = pattern(len);
            send(
                &mut tcp,
                &Frame::binary(payload.clone()).len(encoding).encode(),
            )
            .await;
            expect_message(&mut tcp, BINARY, &payload).await;
        }
    })
    .await;
}

/// RFC 6455 5.2/5.4: frame boundaries are independent of TCP segments: a frame delivered one
/// byte at a time, and several frames in one segment, are each read whole.
#[tokio::test]
async fn frames_split_across_and_packed_into_segments() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        tcp.set_nodelay(true).expect("nodelay");
        for b in Frame::text("byte by byte").encode() {
            send(&mut tcp, &[b]).await;
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        expect_message(&mut tcp, TEXT, b"byte by byte").await;
        let batch: Vec<Frame> = (0..50).map(|i| Frame::text(format!("m{i}"))).collect();
        send(&mut tcp, &frames(&batch)).await;
        for i in 0..50 {
            expect_message(&mut tcp, TEXT, format!("m{i}").as_bytes()).await;
        }
    })
    .await;
}

/// RFC 6455 4.2.1/5.2: frames sent in the same TCP segment as the upgrade request (before the
/// 101 arrived) belong to the connection and are read.
#[tokio::test]
async fn frame_in_the_same_segment_as_the_request_is_read() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = tokio::net::TcpStream::connect(&server.addr)
            .await
            .expect("connect");
        let mut bytes = super::REQUEST.as_bytes().to_vec();
        bytes.extend(Frame::text("early").encode());
        send(&mut tcp, &bytes).await;
        let head = super::read_http_head(&mut tcp).await.expect("response");
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        expect_message(&mut tcp, TEXT, b"early").await;
    })
    .await;
}

// ---- 5.5 Control frames -------------------------------------------------------------------

/// RFC 6455 5.5.2/5.5.3: a ping is answered by a pong with "identical Application data", at
/// the largest control payload (125 bytes) and with none.
#[tokio::test]
async fn ping_is_answered_with_a_pong_carrying_its_payload() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        for payload in [Vec::new(), b"hello".to_vec(), pattern(125)] {
            send(&mut tcp, &Frame::ping(payload.clone()).encode()).await;
            expect_message(&mut tcp, PONG, &payload).await;
        }
    })
    .await;
}

/// RFC 6455 5.4: "Control frames MAY be injected in the middle of a fragmented message": a
/// ping between two fragments is answered with its pong at once, and the message still
/// arrives whole.
#[tokio::test]
async fn ping_between_fragments_is_answered_and_message_reassembled() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(
            &mut tcp,
            &frames(&[
                Frame::text("Hel").fin(false),
                Frame::ping("in between"),
                Frame::cont("lo").fin(false),
                Frame::pong("unsolicited, ignored"),
                Frame::cont(", world"),
            ]),
        )
        .await;
        expect_message(&mut tcp, PONG, b"in between").await;
        expect_message(&mut tcp, TEXT, b"Hello, world").await;
    })
    .await;
}

/// RFC 6455 5.5.3: "A Pong frame MAY be sent unsolicited... A response to an unsolicited Pong
/// frame is not expected." The server ignores it: the next frame back is the echo of the
/// message that followed.
#[tokio::test]
async fn unsolicited_pong_is_ignored() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(
            &mut tcp,
            &frames(&[Frame::pong("nobody asked"), Frame::text("after")]),
        )
        .await;
        expect_message(&mut tcp, TEXT, b"after").await;
    })
    .await;
}

/// RFC 6455 5.5.3: an endpoint that has not yet answered earlier pings "MAY elect to send a
/// Pong frame for only the most recently processed Ping frame". Choice: isosock answers each
/// ping while its socket accepts writes (it flushes the pong before reading on), so ten pings
/// in one segment get ten pongs in order; at least the last one must be answered.
#[tokio::test]
async fn burst_of_pings_is_answered_in_order() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        let pings: Vec<Frame> = (0..10u8).map(|i| Frame::ping(vec![i])).collect();
        send(&mut tcp, &frames(&pings)).await;
        send(&mut tcp, &Frame::text("end").encode()).await;
        let mut pongs = Vec::new();
        loop {
            let f = read_frame(&mut tcp).await.expect("frame");
            match f.opcode {
                PONG => pongs.push(f.payload[0]),
                TEXT => break,
                other => panic!("unexpected opcode {other}"),
            }
        }
        assert_eq!(
            pongs.last(),
            Some(&9),
            "the last ping must be answered: {pongs:?}"
        );
        assert!(pongs.windows(2).all(|w| w[0] < w[1]), "in order: {pongs:?}");
        assert_eq!(
            pongs,
            (0..10).collect::<Vec<u8>>(),
            "isosock answers every ping"
        );
    })
    .await;
}

// ---- 5.4 Fragmentation --------------------------------------------------------------------

/// RFC 6455 5.4: a fragmented message ("a single frame with FIN clear and an opcode other than
/// 0, followed by zero or more frames with FIN clear and opcode 0, terminated by a single
/// frame with FIN set and opcode 0") is delivered as one message, text or binary, including
/// empty fragments.
#[tokio::test]
async fn fragmented_messages_are_reassembled() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(
            &mut tcp,
            &frames(&[
                Frame::text("frag").fin(false),
                Frame::cont("men").fin(false),
                Frame::cont("ted"),
                Frame::binary(vec![1, 2]).fin(false),
                Frame::cont(vec![]).fin(false),
                Frame::cont(vec![3]),
                Frame::text("").fin(false),
                Frame::cont(""),
            ]),
        )
        .await;
        expect_message(&mut tcp, TEXT, b"fragmented").await;
        expect_message(&mut tcp, BINARY, &[1, 2, 3]).await;
        expect_message(&mut tcp, TEXT, b"").await;
    })
    .await;
}

/// RFC 6455 5.4: a continuation after a complete (FIN set) message is also an orphan: the
/// first message is echoed, then 1002.
#[tokio::test]
async fn continuation_after_a_final_frame_closes_with_1002() {
    bounded(async {
        let mut server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(
            &mut tcp,
            &frames(&[Frame::text("done"), Frame::cont("more").fin(false)]),
        )
        .await;
        expect_message(&mut tcp, TEXT, b"done").await;
        expect_close(&mut tcp, 1002).await;
        server.expect_end(ErrorKind::Protocol).await;
    })
    .await;
}

// ---- 8.1 UTF-8 ----------------------------------------------------------------------------

/// RFC 6455 8.1 lets an endpoint fail as soon as it sees invalid UTF-8 or only at the end of
/// the message. Choice: isosock fails fast: an invalid first fragment is refused with 1007
/// although the message never ends.
#[tokio::test]
async fn invalid_utf8_in_an_unfinished_message_fails_fast() {
    bounded(async {
        let mut server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(
            &mut tcp,
            &Frame::text(&b"\xff never finished"[..]).fin(false).encode(),
        )
        .await;
        expect_close(&mut tcp, 1007).await;
        server.expect_end(ErrorKind::InvalidData).await;
    })
    .await;
}

// ---- 5.5.1 / 7 Closing --------------------------------------------------------------------

/// RFC 6455 5.5.1: on receiving a close frame "the endpoint MUST send a Close frame in
/// response... typically echoing the status code it received", and then (7.1.1) the server
/// closes the TCP connection first. Every code that may be sent (7.4.1 1000-1003, 1007-1011;
/// 7.4.2 3000-4999) is echoed with its reason; the application sees a clean close.
#[tokio::test]
async fn valid_close_codes_are_echoed() {
    bounded(async {
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let mut server = EchoServer::default_limits().await;
            let mut tcp = server.connect().await;
            send(&mut tcp, &Frame::close(code, b"bye").encode()).await;
            let reason = expect_close(&mut tcp, code).await;
            assert_eq!(reason, b"bye", "isosock echoes the reason too");
            expect_eof(&mut tcp).await;
            let end = server.expect_end(ErrorKind::Closed).await;
            assert_eq!(isosock::close_status(&end), Some(StatusCode::from(code)));
        }
    })
    .await;
}

/// RFC 6455 5.5.1: a close frame "MAY" carry no body. Choice: isosock answers with an empty
/// close frame too, and the application sees 1005 (no status received, 7.1.5).
#[tokio::test]
async fn empty_close_is_answered_with_an_empty_close() {
    bounded(async {
        let mut server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(&mut tcp, &Frame::new(CLOSE, vec![]).encode()).await;
        let f = read_frame(&mut tcp).await.expect("close reply");
        assert_eq!((f.opcode, f.payload.len()), (CLOSE, 0), "{f:?}");
        expect_eof(&mut tcp).await;
        let end = server.expect_end(ErrorKind::Closed).await;
        assert_eq!(
            isosock::close_status(&end),
            Some(StatusCode::NO_STATUS_RCVD)
        );
    })
    .await;
}

/// RFC 6455 7.4.1/7.4.2: 0-999 are "not used", 1004 is reserved, 1005/1006/1015 "MUST NOT be
/// set as a status code in a Close control frame", 1016-2999 are reserved for future
/// revisions and 5000+ is outside every range. A close frame carrying any of them is a
/// protocol violation: the server answers 1002.
#[tokio::test]
async fn invalid_close_codes_are_answered_with_1002() {
    bounded(async {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let mut server = EchoServer::default_limits().await;
            let mut tcp = server.connect().await;
            send(&mut tcp, &Frame::close(code, b"").encode()).await;
            let f = read_frame(&mut tcp)
                .await
                .unwrap_or_else(|| panic!("no close frame after a close with {code}"));
            assert_eq!(f.opcode, CLOSE);
            assert_eq!(f.close_code(), Some(1002), "reply to a close with {code}");
            // The application is told the peer broke the protocol (isosock reports the
            // 1002 it answered with, as a close).
            let end = server.next_end().await;
            assert!(
                end.kind() == ErrorKind::Protocol
                    || isosock::close_status(&end) == Some(StatusCode::PROTOCOL_ERROR),
                "server side for {code}: {end:?}"
            );
        }
    })
    .await;
}

/// RFC 6455 5.5.1: the close reason is UTF-8 ("not guaranteed to be human readable"); 8.1
/// fails the connection on invalid UTF-8. The code is the implementation's choice between
/// 1007 (invalid payload data) and 1002. Choice: isosock sends 1007.
#[tokio::test]
async fn close_reason_with_invalid_utf8_fails_the_connection() {
    bounded(async {
        let mut server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(&mut tcp, &Frame::close(1000, b"bad \xff reason").encode()).await;
        let code = expect_close_one_of(&mut tcp, &[1002, 1007]).await;
        assert_eq!(code, 1007, "isosock's choice");
        expect_eof(&mut tcp).await;
        server.expect_end(ErrorKind::InvalidData).await;
    })
    .await;
}

/// RFC 6455 5.5.1: the largest close body (2-byte code + 123-byte UTF-8 reason = 125 bytes)
/// is valid and echoed.
#[tokio::test]
async fn close_with_the_longest_reason_is_echoed() {
    bounded(async {
        let reason = "é".repeat(61) + "x"; // 123 bytes of multi-byte UTF-8
        assert_eq!(reason.len(), 123);
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(&mut tcp, &Frame::close(1000, reason.as_bytes()).encode()).await;
        assert_eq!(expect_close(&mut tcp, 1000).await, reason.as_bytes());
    })
    .await;
}

/// RFC 6455 5.5.1: after the close handshake the server sends nothing more and (7.1.1) closes
/// the TCP connection; frames the client sends after its close frame ("after sending a Close
/// frame, the endpoint MUST NOT send any more data frames") are not processed. Choice:
/// isosock stops reading at the close frame, so a second close, a ping and a text after it
/// get no answer: exactly one close frame, then end of stream.
#[tokio::test]
async fn frames_after_the_clients_close_are_not_answered() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(
            &mut tcp,
            &frames(&[
                Frame::close(1000, b"first"),
                Frame::close(1001, b"second"),
                Frame::ping("late"),
                Frame::text("late"),
            ]),
        )
        .await;
        assert_eq!(expect_close(&mut tcp, 1000).await, b"first");
        expect_eof(&mut tcp).await;
    })
    .await;
}

/// RFC 6455 5.4/5.5.1: a close frame may arrive between the fragments of a message (control
/// frames may be injected); the server answers it and the unfinished message is dropped.
#[tokio::test]
async fn close_between_fragments_is_answered() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(
            &mut tcp,
            &frames(&[Frame::text("never ").fin(false), Frame::close(1000, b"")]),
        )
        .await;
        expect_close(&mut tcp, 1000).await;
        expect_eof(&mut tcp).await;
    })
    .await;
}

/// RFC 6455 5.5.1: once the server has sent its close frame it "MUST NOT send any more data
/// frames", while the client may still send data before its own close. The echo server of
/// `examples/echo_server.rs` starts the close on `!close 4000 bye`; a text the client sends
/// after that is not echoed; the client's close completes the handshake and the server then
/// closes the TCP connection (7.1.1). Choice: isosock's `close` discards data that arrives
/// while it waits for the peer's close frame.
#[tokio::test]
async fn server_initiated_close_sends_no_data_after_it() {
    bounded(async {
        let url = crate::util::echo_url().await;
        let addr = url
            .trim_start_matches("ws://")
            .trim_end_matches("/echo")
            .to_owned();
        let mut tcp = super::upgrade(&addr).await;
        send(&mut tcp, &Frame::text("!close 4000 bye").encode()).await;
        assert_eq!(expect_close(&mut tcp, 4000).await, b"bye");
        send(
            &mut tcp,
            &Frame::text("data after the server's close").encode(),
        )
        .await;
        send(&mut tcp, &Frame::close(4000, b"").encode()).await;
        expect_eof(&mut tcp).await;
    })
    .await;
}

/// RFC 6455 5.5.2/5.5.3: pings and pongs "MUST" be masked like other client frames and may
/// carry any bytes (not only UTF-8); a binary ping payload comes back byte for byte.
#[tokio::test]
async fn ping_payload_is_opaque_bytes() {
    bounded(async {
        let server = EchoServer::default_limits().await;
        let mut tcp = server.connect().await;
        send(&mut tcp, &Frame::new(PING, &b"\x00\xff\xfe"[..]).encode()).await;
        expect_message(&mut tcp, PONG, b"\x00\xff\xfe").await;
    })
    .await;
}

/// RFC 6455 7.4.2 and the IANA "WebSocket Close Code Number Registry" it sets up (section
/// 11.7): 1012 (Service Restart), 1013 (Try Again Later) and 1014 (Bad Gateway) are registered
/// codes, and isosock itself sends all three (`StatusCode::is_sendable`). Received, they must
/// be echoed like any valid code, not treated as a protocol error.
///
/// Regression: on tungstenite 0.30 (isosock's first native backend) 1014 was answered with
/// 1002, since tungstenite's `CloseCode::from(1014)` is `Bad`.
#[tokio::test]
async fn iana_registered_close_codes_1012_to_1014_are_echoed() {
    bounded(async {
        for code in [1012u16, 1013, 1014] {
            let mut server = EchoServer::default_limits().await;
            let mut tcp = server.connect().await;
            send(&mut tcp, &Frame::close(code, b"").encode()).await;
            let f = read_frame(&mut tcp).await.expect("a close reply");
            assert_eq!(f.opcode, CLOSE);
            assert_eq!(f.close_code(), Some(code), "reply to a close with {code}");
            let end = server.expect_end(ErrorKind::Closed).await;
            assert_eq!(isosock::close_status(&end), Some(StatusCode::from(code)));
        }
    })
    .await;
}
