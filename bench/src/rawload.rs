//! The raw-frame load generator (`load --client raw`), in the manner of uWebSockets'
//! `load_test`: after the upgrade ([`crate::raw::connect`]) each connection writes frames
//! masked once in advance and shared by every connection, and reads the echoes by their frame
//! headers alone ([`crate::raw::EchoReader`]): no WebSocket library, so the load costs little
//! and favours no server. Every echo is checked for type, length and content as it arrives; a
//! mismatch fails the run with what differed.
//!
//! Ping-pong writes one frame and reads its echo. Pipelined, a connection writes every frame
//! its window allows in one `write` (the frames of consecutive messages lie back to back in
//! [`Frames`]) and reads the echoes as they come; each echo frees one place in the window.
//! The warm-up, the measured interval, the server's CPU time and the result are the ones of
//! [`crate::load`], which drives the isosock and peer clients.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::handshake::WsUrl;
use crate::load::{self, LoadResult, LoadSpec, Opened, Shared};
use crate::raw::{self, EchoReader};
use crate::Result;

/// Bytes each connection reads at most at a time.
const READ_BUFFER: usize = 64 << 10;

/// The frames of a connection's messages, masked once and shared by every connection: the
/// pool's messages in order, followed by the first `window - 1` again, so that the frames of
/// any `n <= window` consecutive messages are one slice.
#[derive(Debug)]
pub struct Frames {
    bytes: Vec<u8>,
    /// Bytes per frame (every message of a pool has the same size).
    frame_len: usize,
    /// The messages, unmasked, to check the echoes against.
    pool: Vec<Bytes>,
    text: bool,
    window: usize,
}

impl Frames {
    /// Frames for `pool` (messages of one size), text if `text`, in runs of up to `window`.
    pub fn new(pool: Vec<Bytes>, text: bool, window: usize) -> Result<Frames> {
        let window = window.max(1);
        let size = pool.first().ok_or("no messages to send")?.len();
        if pool.iter().any(|m| m.len() != size) {
            return Err("the raw load needs messages of one size".into());
        }
        let mut bytes = Vec::new();
        for i in 0..pool.len() + window - 1 {
            bytes.extend_from_slice(&raw::masked_frame(text, &pool[i % pool.len()]));
        }
        let frame_len = bytes.len() / (pool.len() + window - 1);
        Ok(Frames {
            bytes,
            frame_len,
            pool,
            text,
            window,
        })
    }

    /// The frames of messages `seq .. seq + n`, back to back (`n` at most the window).
    pub fn run(&self, seq: usize, n: usize) -> &[u8] {
        let first = seq % self.pool.len();
        let n = n.min(self.window);
        &self.bytes[first * self.frame_len..(first + n) * self.frame_len]
    }

    /// Message `seq`, unmasked: what its echo must hold.
    pub fn message(&self, seq: usize) -> &Bytes {
        &self.pool[seq % self.pool.len()]
    }

    /// Whether the messages go as text.
    pub fn text(&self) -> bool {
        self.text
    }
}

/// Runs `spec` with raw connections (the caller provides the `LocalSet`).
pub async fn drive(spec: &LoadSpec) -> Result<LoadResult> {
    if spec.compression != isosock::Compression::Disabled {
        return Err("the raw load has no permessage-deflate".into());
    }
    let url = WsUrl::parse(&spec.url)?;
    let window = load::window_of(spec);
    let frames = Rc::new(Frames::new(
        spec.payload.messages(spec.size),
        spec.payload.text(),
        window,
    )?);

    let started = Instant::now();
    let mut conns = Vec::with_capacity(spec.conns);
    let mut connecting = futures_util::stream::iter(0..spec.conns)
        .map(|_| raw::connect(&url))
        .buffer_unordered(load::CONNECT_CONCURRENCY);
    while let Some(c) = connecting.next().await {
        conns.push(c.map_err(|e| format!("connecting to {}: {e}", spec.url))?);
    }
    drop(connecting);
    let connect_seconds = started.elapsed().as_secs_f64();

    let shared = Rc::new(Shared::default());
    let mut tasks = Vec::with_capacity(spec.conns);
    for (i, tcp) in conns.into_iter().enumerate() {
        let (sh, frames) = (shared.clone(), frames.clone());
        tasks.push(tokio::task::spawn_local(async move {
            if window == 1 {
                ping_pong(tcp, &sh, &frames, i).await
            } else {
                pipeline(tcp, &sh, &frames, i, window).await
            }
        }));
    }
    let opened = Opened {
        connect_seconds,
        extensions: String::new(),
        window,
    };
    load::measure(spec, opened, &shared, tasks).await
}

/// One frame, its echo, repeat; connection `conn` starts at message `conn` of the pool.
async fn ping_pong(mut tcp: TcpStream, sh: &Shared, frames: &Frames, conn: usize) -> Result<()> {
    let mut reader = EchoReader::new(READ_BUFFER);
    let mut first = true;
    let mut seq = conn;
    while !sh.stopped() {
        let msg = frames.message(seq);
        let t = Instant::now();
        tcp.write_all(frames.run(seq, 1))
            .await
            .map_err(|e| format!("writing a frame: {e}"))?;
        sh.sent(msg.len());
        reader.read_echo(&mut tcp, frames.text(), msg).await?;
        sh.record(t.elapsed(), msg.len(), &mut first);
        seq += 1;
    }
    Ok(())
}

/// Keeps up to `window` messages outstanding: the writer sends every frame the window allows
/// in one write, the reader checks the echoes in order and frees a place for each.
async fn pipeline(
    mut tcp: TcpStream,
    sh: &Shared,
    frames: &Frames,
    conn: usize,
    window: usize,
) -> Result<()> {
    let (mut rd, mut wr) = tcp.split();
    let free = Cell::new(window);
    // `notify_one` keeps a permit when the writer is not waiting, so no wake-up is lost.
    let freed = Notify::new();
    let (times_tx, mut times_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, usize)>();
    let writer = async {
        let times_tx = times_tx;
        let mut seq = conn;
        loop {
            while free.get() == 0 {
                freed.notified().await;
            }
            if sh.stopped() {
                return Ok::<(), crate::Error>(());
            }
            let n = free.replace(0);
            let t = Instant::now();
            for s in seq..seq + n {
                times_tx.send((t, s)).map_err(|_| "the reader ended")?;
            }
            wr.write_all(frames.run(seq, n))
                .await
                .map_err(|e| format!("writing {n} frames: {e}"))?;
            sh.sent(n * frames.message(seq).len());
            seq += n;
        }
    };
    let reader = async {
        let mut reader = EchoReader::new(READ_BUFFER);
        let mut first = true;
        while let Some((t, seq)) = times_rx.recv().await {
            let msg = frames.message(seq);
            reader.read_echo(&mut rd, frames.text(), msg).await?;
            sh.record(t.elapsed(), msg.len(), &mut first);
            free.set(free.get() + 1);
            freed.notify_one();
        }
        Ok::<(), crate::Error>(())
    };
    tokio::try_join!(writer, reader)?;
    Ok(())
}

/// The selftest's check of one server with raw frames: on one connection every message of
/// `cases` (text or binary) one at a time, then on a second all of them written at once
/// while the echoes are read; every echo must match in type, length and bytes.
pub async fn exchange_all(url: &WsUrl, cases: &[(bool, Bytes)]) -> Result<()> {
    let mut tcp = raw::connect(url).await?;
    let mut reader = EchoReader::new(READ_BUFFER);
    for (i, (text, msg)) in cases.iter().enumerate() {
        tcp.write_all(&raw::masked_frame(*text, msg)).await?;
        reader
            .read_echo(&mut tcp, *text, msg)
            .await
            .map_err(|e| format!("one at a time, message {i}: {e}"))?;
    }

    let mut tcp = raw::connect(url).await?;
    let (mut rd, mut wr) = tcp.split();
    let all: Vec<u8> = cases
        .iter()
        .flat_map(|(text, msg)| raw::masked_frame(*text, msg))
        .collect();
    let writer = async {
        wr.write_all(&all).await?;
        Ok::<(), crate::Error>(())
    };
    let reader = async {
        let mut reader = EchoReader::new(READ_BUFFER);
        for (i, (text, msg)) in cases.iter().enumerate() {
            reader
                .read_echo(&mut rd, *text, msg)
                .await
                .map_err(|e| format!("back to back, message {i}: {e}"))?;
        }
        Ok::<(), crate::Error>(())
    };
    tokio::try_join!(writer, reader)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_frames_are_slices_of_consecutive_messages() {
        let pool: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 200])).collect();
        let frames = Frames::new(pool, false, 4).expect("frames");
        let one = raw::masked_frame(false, &[0; 200]).len();
        for seq in 0..7 {
            let run = frames.run(seq, 4);
            assert_eq!(run.len(), 4 * one);
            for j in 0..4 {
                let want = raw::masked_frame(false, frames.message(seq + j));
                assert_eq!(&run[j * one..(j + 1) * one], &want[..], "seq {seq} + {j}");
            }
        }
        assert!(Frames::new(vec![Bytes::from_static(b"a"), Bytes::new()], false, 1).is_err());
    }
}
