//! The inflate path: a client `Conn` that agreed permessage-deflate (with or without context
//! takeover), with any read limit, reading compressed messages built by a reference
//! compressor (flate2), split into fragments anywhere, with pings between fragments and
//! plain messages among them, then any bytes at all. Every compressed message within the
//! limit is read back exactly; the first one over it fails the read with `MessageTooBig`
//! (whatever its compressed size); after the arbitrary tail, reading ends with a typed error
//! and no message ever exceeds the limit.
#![no_main]
use std::time::Duration;

use arbitrary::Arbitrary;
use flate2::{Compress, FlushCompress};
use isosock::{ErrorKind, Message};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

#[derive(Arbitrary, Debug)]
struct Input {
    context: bool,
    limit: u32,
    messages: Vec<Msg>,
    tail: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Msg {
    text: bool,
    compress: bool,
    /// Repeated to reach sizes that compress well and exceed small limits.
    data: Vec<u8>,
    repeat: u8,
    /// Where the compressed payload is split into fragments.
    splits: Vec<u16>,
    ping_between: bool,
}

/// A server frame (unmasked).
fn frame(out: &mut Vec<u8>, fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) {
    out.push(if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 } | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

fn compress(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let start = c.total_in();
    loop {
        let done = (c.total_in() - start) as usize;
        out.reserve(4096);
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .expect("compress");
        if (c.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    if out.is_empty() {
        out.push(0);
    }
    out
}

fuzz_target!(|input: Input| {
    let limit = (input.limit % (1 << 20)) as usize;
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut c = Compress::new(flate2::Compression::fast(), false);
    for m in input.messages.iter().take(16) {
        let mut data = m.data.repeat(usize::from(m.repeat).max(1));
        if m.text {
            data = String::from_utf8_lossy(&data).into_owned().into_bytes();
        }
        let opcode = if m.text { 1 } else { 2 };
        if !m.compress {
            frame(&mut wire, true, false, opcode, &data);
        } else {
            if !input.context {
                c.reset();
            }
            let packed = compress(&mut c, &data);
            // Fragment boundaries: anywhere inside the compressed payload.
            let mut bounds: Vec<usize> = m
                .splits
                .iter()
                .take(8)
                .map(|s| usize::from(*s) % packed.len())
                .filter(|&cut| cut > 0)
                .collect();
            bounds.sort_unstable();
            bounds.dedup();
            bounds.insert(0, 0);
            bounds.push(packed.len());
            let frames = bounds.len() - 1;
            for (i, w) in bounds.windows(2).enumerate() {
                let fin = i + 1 == frames;
                let op = if i == 0 { opcode } else { 0 };
                frame(&mut wire, fin, i == 0, op, &packed[w[0]..w[1]]);
                if !fin && m.ping_between {
                    frame(&mut wire, true, false, 0x9, b"p");
                }
            }
        }
        let msg = if m.text {
            Message::text(String::from_utf8(data).expect("made valid"))
        } else {
            Message::binary(data)
        };
        expected.push(msg);
    }
    wire.extend_from_slice(&input.tail);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (mut peer, local) = tokio::io::duplex(1 << 20);
        let conn = isosock::fuzz::client_conn_deflate(local, limit, input.context).await;
        let write = async move {
            let _ = peer.write_all(&wire).await;
            peer
        };
        // The read owns the Conn: once it is done, dropping the Conn ends the stream, so a
        // writer blocked on a full pipe ends too.
        let read = async move {
            let conn = conn;
            for want in &expected {
                let got = tokio::time::timeout(Duration::from_secs(60), conn.read())
                    .await
                    .expect("a message or an error, not a wait");
                if want.len() > limit {
                    let e = got.expect_err("a message over the limit");
                    assert_eq!(e.kind(), ErrorKind::MessageTooBig, "{e:?}");
                    return;
                }
                assert_eq!(got.expect("a message within the limit"), *want);
            }
            // The tail: anything; reading ends with a typed error or waits for more bytes.
            for _ in 0..64 {
                match tokio::time::timeout(Duration::from_secs(60), conn.read()).await {
                    Ok(Ok(m)) => assert!(m.len() <= limit),
                    Ok(Err(e)) => {
                        assert!(
                            matches!(
                                e.kind(),
                                ErrorKind::Protocol
                                    | ErrorKind::InvalidData
                                    | ErrorKind::MessageTooBig
                                    | ErrorKind::Closed
                                    | ErrorKind::ConnectionLost
                            ),
                            "{e:?}"
                        );
                        return;
                    }
                    Err(_) => return,
                }
            }
        };
        let (_peer, ()) = tokio::join!(write, read);
    });
});
