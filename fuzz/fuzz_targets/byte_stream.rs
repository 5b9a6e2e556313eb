//! The `ByteStream` adapter's state machine: arbitrary interleavings of peer messages, reads of
//! any size, writes and a final close, over a server `Conn` on an in-memory stream. Checks that
//! the bytes read are exactly the concatenation of the peer's message payloads, in order, and
//! that the end is EOF for a 1000/1001 close and an error for any other.
#![no_main]
use std::time::Duration;

use arbitrary::Arbitrary;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use isosock::{accept, AcceptOptions, ByteStream, MessageType};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Debug, Arbitrary)]
enum Op {
    PeerBinary(Vec<u8>),
    PeerText(String),
    Read(u16),
    Write(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    ops: Vec<Op>,
    close_code: u16,
    text_stream: bool,
}

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: fuzz.test\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// A masked client frame (mask key fixed; masking is still applied as the RFC requires).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fuzz_target!(|input: Input| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(run(input));
});

async fn run(input: Input) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    client_tx.write_all(UPGRADE).await.expect("upgrade request");
    let opts = AcceptOptions::new().read_limit(64 << 10);
    let conn = accept(server, &opts).await.expect("a valid upgrade is accepted");
    // Drain what the server sends (the 101, messages, close) in the background.
    let drain = tokio::spawn(async move {
        let mut sink = [0u8; 8192];
        while let Ok(n) = client_rx.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let kind = if input.text_stream { MessageType::Text } else { MessageType::Binary };
    let mut stream = ByteStream::new(conn, kind);
    let mut expected: Vec<u8> = Vec::new();
    let mut got: Vec<u8> = Vec::new();
    for op in input.ops.into_iter().take(64) {
        match op {
            Op::PeerBinary(data) => {
                let data = &data[..data.len().min(32 << 10)];
                expected.extend_from_slice(data);
                client_tx.write_all(&frame(0x2, data)).await.expect("peer write");
            }
            Op::PeerText(text) => {
                let mut end = text.len().min(32 << 10);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                expected.extend_from_slice(&text.as_bytes()[..end]);
                client_tx
                    .write_all(&frame(0x1, &text.as_bytes()[..end]))
                    .await
                    .expect("peer write");
            }
            Op::Read(n) => {
                let pending = expected.len() - got.len();
                if pending == 0 || n == 0 {
                    continue;
                }
                let mut buf = vec![0u8; usize::from(n).min(pending)];
                let read = tokio::time::timeout(Duration::from_secs(5), AsyncReadExt::read(&mut stream, &mut buf))
                    .await
                    .expect("data that was sent arrives")
                    .expect("no error while the peer is open");
                assert!(read > 0, "EOF while {pending} bytes are pending");
                got.extend_from_slice(&buf[..read]);
                assert_eq!(got[..], expected[..got.len()], "bytes in order, uncorrupted");
            }
            Op::Write(data) => {
                let res = if kind == MessageType::Text && std::str::from_utf8(&data).is_err() {
                    continue;
                } else {
                    AsyncWriteExt::write_all(&mut stream, &data).await
                };
                res.expect("writes succeed while open");
            }
        }
    }
    // The peer closes; the rest of the data, then EOF or an error by the close code.
    let code = input.close_code;
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(b"fuzz");
    client_tx.write_all(&frame(0x8, &payload)).await.expect("peer close");
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(5), AsyncReadExt::read_to_end(&mut stream, &mut rest))
        .await
        .expect("the stream ends after the close");
    got.extend_from_slice(&rest);
    assert_eq!(got, expected, "every byte the peer sent was read");
    match code {
        1000 | 1001 => assert!(end.is_ok(), "a {code} close reads as EOF: {end:?}"),
        _ => assert!(end.is_err(), "a {code} close is an error, got {end:?}"),
    }
    drop(client_tx);
    let _ = drain.await;
}
