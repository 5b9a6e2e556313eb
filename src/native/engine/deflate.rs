//! permessage-deflate's two halves over flate2 (RFC 7692 7.2): a compressor for the messages
//! this side writes and a decompressor for those it reads, each holding DEFLATE state only
//! while the agreement needs it (between messages only with context takeover).
//!
//! No connection lock of its own: the compressor lives under `write.msg_lock` (lock 2), the
//! decompressor in the `ReadState` (lock 1). Without context takeover, the state a message
//! used goes back to a small process-wide pool (`SPARE`, a leaf lock held only to push or
//! pop), as Go's `coder/websocket` pools its flate writers: a fresh zlib compressor is about
//! 300 KiB to allocate and fault in, measured at 5.4 µs per 1 KiB message fresh against 2.9 µs
//! reused.

use std::sync::Mutex;

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

/// The four bytes a sync flush ends with, removed from every compressed message and put back
/// before it is inflated (RFC 7692 7.2.1, 7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Inflated bytes produced per step, on the stack; each step's output is handed on (and
/// counted against the read limit) before the next.
const INFLATE_STEP: usize = 16 << 10;
/// Compressed bytes reserved per step (the output grows as needed).
const DEFLATE_STEP: usize = 8 << 10;

/// The most idle compressors, and decompressors, the process keeps for reuse (each kind): at
/// most about 5 MiB of compressors and 0.7 MiB of decompressors, however many connections.
pub(crate) const SPARE_MAX: usize = 16;

/// Idle DEFLATE states, reset and ready, shared by every connection without context takeover.
struct Spare {
    /// Compressors by window size.
    deflate: Vec<(u8, Compress)>,
    inflate: Vec<Decompress>,
}

static SPARE: Mutex<Spare> = Mutex::new(Spare {
    deflate: Vec::new(),
    inflate: Vec::new(),
});

fn spare() -> std::sync::MutexGuard<'static, Spare> {
    // Nothing panics while holding it; recover the data if something ever did.
    SPARE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A compressor with a `bits`-bit window at level 1 (fastest; coder/websocket's choice too),
/// from the pool when one is there.
fn new_compress(bits: u8) -> Compress {
    let mut pool = spare();
    match pool.deflate.iter().position(|(b, _)| *b == bits) {
        Some(i) => pool.deflate.swap_remove(i).1,
        None => {
            drop(pool);
            Compress::new_with_window_bits(flate2::Compression::fast(), false, bits)
        }
    }
}

/// Resets a compressor a finished message used and keeps it for reuse, if there is room.
fn recycle_compress(bits: u8, mut c: Compress) {
    c.reset();
    let mut pool = spare();
    if pool.deflate.len() < SPARE_MAX {
        pool.deflate.push((bits, c));
    }
}

/// A decompressor with a 15-bit window (it inflates anything a peer may send: its window is
/// at most 15 bits), from the pool when one is there.
fn new_decompress() -> Decompress {
    let reused = spare().inflate.pop();
    reused.unwrap_or_else(|| Decompress::new_with_window_bits(false, 15))
}

fn recycle_decompress(mut d: Decompress) {
    d.reset(false);
    let mut pool = spare();
    if pool.inflate.len() < SPARE_MAX {
        pool.inflate.push(d);
    }
}

/// What the connection agreed for one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Direction {
    /// The LZ77 window, 8..=15 bits.
    pub(crate) window_bits: u8,
    /// Whether the DEFLATE state is dropped after each message (no context takeover).
    pub(crate) reset: bool,
}

/// The compressor of the messages this side writes.
pub(crate) struct Deflater {
    dir: Direction,
    /// Messages shorter than this are sent uncompressed.
    threshold: usize,
    state: Option<Compress>,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("dir", &self.dir)
            .field("threshold", &self.threshold)
            .field("holds_state", &self.state.is_some())
            .finish()
    }
}

impl Deflater {
    /// A compressor for `dir`; `None` if this side can never compress in it (a 256-byte
    /// window, which zlib's raw deflate does not support: such messages go uncompressed).
    pub(crate) fn new(dir: Direction, threshold: usize) -> Option<Deflater> {
        (9..=15).contains(&dir.window_bits).then_some(Deflater {
            dir,
            threshold,
            state: None,
        })
    }

    /// Whether a whole message of `len` bytes is worth compressing.
    pub(crate) fn wants(&self, len: usize) -> bool {
        len >= self.threshold
    }

    /// Whether dropping a compressed result for the original bytes is allowed: only when no
    /// window carries over to the next message (with context takeover, the peer's window must
    /// see every byte this side's did).
    pub(crate) fn may_skip(&self) -> bool {
        self.dir.reset
    }

    /// Compresses `input` as the next part of a message and appends the result to `out`.
    /// With `fin`, ends the message: flushes, removes the sync flush's last four bytes, and
    /// drops the state unless context is taken over. Every part is flushed, so the peer can
    /// inflate each frame as it arrives.
    pub(crate) fn compress(&mut self, input: &[u8], fin: bool, out: &mut Vec<u8>) {
        let bits = self.dir.window_bits;
        let state = self.state.get_or_insert_with(|| new_compress(bits));
        let start_in = state.total_in();
        let start_out = out.len();
        loop {
            let done = (state.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(DEFLATE_STEP.max(input.len().saturating_sub(done) / 2));
            }
            let (in0, out0) = (state.total_in(), out.len());
            let rest = input.get(done..).unwrap_or_default();
            // Err only for a stream in an impossible state; nothing more can be produced.
            if state.compress_vec(rest, out, FlushCompress::Sync).is_err() {
                break;
            }
            // A sync flush is complete once the input is taken and output room was left over.
            let taken = (state.total_in() - start_in) as usize >= input.len();
            if taken && out.len() < out.capacity() {
                break;
            }
            // No progress (zlib's "buffer error": nothing to flush) ends it too.
            if state.total_in() == in0 && out.len() == out0 {
                break;
            }
        }
        if fin {
            if out[start_out..].ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            } else if out.len() == start_out {
                // Nothing was pending (an empty last part, or an empty message after another
                // one): an empty stored block's first byte, completed by the four bytes the
                // peer puts back (RFC 7692 7.2.3.6).
                out.push(0x00);
            }
            self.end_message();
        }
    }

    /// Ends a message without more bytes (a failed or abandoned one too): drops the state
    /// unless context is taken over.
    fn end_message(&mut self) {
        if self.dir.reset {
            if let Some(c) = self.state.take() {
                recycle_compress(self.dir.window_bits, c);
            }
        }
    }
}

/// Why inflating stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The data is not a valid DEFLATE stream.
    Corrupt(String),
    /// The consumer refused the output (the read limit, or invalid UTF-8).
    Refused,
}

/// The decompressor of the messages this side reads.
pub(crate) struct Inflater {
    reset: bool,
    state: Option<Decompress>,
    /// The DEFLATE stream ended (a final block) within this message; what follows in the
    /// message is ignored and the next message starts a new stream.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("reset", &self.reset)
            .field("holds_state", &self.state.is_some())
            .finish()
    }
}

impl Inflater {
    /// A decompressor; `reset`: the peer keeps no context, so none is kept here either.
    pub(crate) fn new(reset: bool) -> Inflater {
        Inflater {
            reset,
            state: None,
            ended: false,
        }
    }

    /// Inflates the next compressed bytes of a message, handing the output to `sink` a piece
    /// at a time (at most 16 KiB per piece); `sink` returning `false` stops it with
    /// `Refused`. With `fin`, the message's four removed bytes are put back first and the
    /// message ends.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        fin: bool,
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), InflateError> {
        // One output buffer for the bytes and the tail (zeroing it is not free per pass).
        let mut buf = [0u8; INFLATE_STEP];
        let res = self.run(input, &mut buf, &mut sink).and_then(|()| {
            if fin {
                self.run(&TAIL, &mut buf, &mut sink)
            } else {
                Ok(())
            }
        });
        if fin || res.is_err() {
            self.end_message();
        }
        res
    }

    fn run(
        &mut self,
        mut input: &[u8],
        buf: &mut [u8; INFLATE_STEP],
        sink: &mut impl FnMut(&[u8]) -> bool,
    ) -> Result<(), InflateError> {
        if self.ended {
            return Ok(());
        }
        let state = self.state.get_or_insert_with(new_decompress);
        loop {
            let (in0, out0) = (state.total_in(), state.total_out());
            let status = state
                .decompress(input, buf, FlushDecompress::Sync)
                .map_err(|e| InflateError::Corrupt(e.to_string()))?;
            let used = (state.total_in() - in0) as usize;
            let made = (state.total_out() - out0) as usize;
            input = input.get(used..).unwrap_or_default();
            if made > 0 && !sink(&buf[..made]) {
                return Err(InflateError::Refused);
            }
            match status {
                Status::StreamEnd => {
                    self.ended = true;
                    return Ok(());
                }
                // Output filled the buffer: more may be pending even with no input left.
                _ if made == buf.len() => continue,
                _ if input.is_empty() || (used == 0 && made == 0) => return Ok(()),
                _ => continue,
            }
        }
    }

    /// Ends a message: drops the state unless context is taken over (or the stream ended).
    fn end_message(&mut self) {
        if self.reset || self.ended {
            if let Some(d) = self.state.take() {
                recycle_decompress(d);
            }
        }
        self.ended = false;
    }

    /// Whether DEFLATE state is held (for the memory tests).
    #[cfg(test)]
    pub(crate) fn holds_state(&self) -> bool {
        self.state.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(window_bits: u8, reset: bool) -> Direction {
        Direction { window_bits, reset }
    }

    fn roundtrip(d: &mut Deflater, i: &mut Inflater, msg: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        d.compress(msg, true, &mut wire);
        let mut got = Vec::new();
        i.inflate(&wire, true, |b| {
            got.extend_from_slice(b);
            true
        })
        .unwrap();
        got
    }

    #[test]
    fn messages_round_trip_in_every_mode_and_window() {
        let text = b"{\"user\":\"ada\",\"text\":\"hello hello hello\"}".repeat(50);
        for bits in 9..=15 {
            for reset in [false, true] {
                let mut d = Deflater::new(dir(bits, reset), 0).unwrap();
                let mut i = Inflater::new(reset);
                for msg in [&text[..], b"", b"x", &text[..100]] {
                    assert_eq!(roundtrip(&mut d, &mut i, msg), msg);
                }
                assert_eq!(d.state.is_some(), !reset);
                assert_eq!(i.holds_state(), !reset);
            }
        }
        assert!(Deflater::new(dir(8, false), 0).is_none());
    }

    #[test]
    fn the_spare_pool_stays_bounded_and_reused_states_start_clean() {
        let msg = b"{\"user\":\"ada\"}".repeat(40);
        let mut held: Vec<(Deflater, Inflater)> = (0..3 * SPARE_MAX)
            .map(|_| {
                (
                    Deflater::new(dir(15, true), 0).unwrap(),
                    Inflater::new(true),
                )
            })
            .collect();
        // Many connections end a message at once: the pool keeps at most SPARE_MAX.
        for (d, i) in &mut held {
            assert_eq!(roundtrip(d, i, &msg), msg);
        }
        assert!(spare().deflate.len() <= SPARE_MAX);
        assert!(spare().inflate.len() <= SPARE_MAX);
        // A reused state carries nothing over: the output is what a fresh one gives.
        let fresh = {
            let mut c = Compress::new_with_window_bits(flate2::Compression::fast(), false, 15);
            let mut out = Vec::with_capacity(256);
            c.compress_vec(b"abcabcabc", &mut out, FlushCompress::Sync)
                .unwrap();
            out.truncate(out.len() - TAIL.len());
            out
        };
        for (d, _) in &mut held {
            let mut out = Vec::new();
            d.compress(b"abcabcabc", true, &mut out);
            assert_eq!(out, fresh);
        }
    }

    #[test]
    fn context_takeover_shrinks_repeated_messages() {
        let msg = b"{\"user\":\"ada\",\"text\":\"a message that repeats\"}";
        let mut with = Deflater::new(dir(15, false), 0).unwrap();
        let mut without = Deflater::new(dir(15, true), 0).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        with.compress(msg, true, &mut a);
        a.clear();
        with.compress(msg, true, &mut a);
        without.compress(msg, true, &mut b);
        assert!(a.len() < b.len() / 2, "{} vs {}", a.len(), b.len());
    }

    #[test]
    fn an_empty_message_is_one_zero_byte() {
        // RFC 7692 7.2.3.6.
        let mut d = Deflater::new(dir(15, true), 0).unwrap();
        let mut out = Vec::new();
        d.compress(b"", true, &mut out);
        assert_eq!(out, [0x00]);
    }

    #[test]
    fn rfc_7692_examples_inflate() {
        // 7.2.3.1: "Hello" compressed; 7.2.3.2: the same in two frames; 7.2.3.3: with a
        // final block (BFINAL), which ends the stream for that message.
        let mut i = Inflater::new(false);
        let mut got = Vec::new();
        let mut sink = |b: &[u8]| {
            got.extend_from_slice(b);
            true
        };
        i.inflate(&[0xf2, 0x48, 0xcd], false, &mut sink).unwrap();
        i.inflate(&[0xc9, 0xc9, 0x07, 0x00], true, &mut sink)
            .unwrap();
        i.inflate(
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
            true,
            &mut sink,
        )
        .unwrap();
        assert_eq!(got, b"HelloHello");
    }

    #[test]
    fn a_bomb_stops_at_the_consumer_not_in_memory() {
        // 16 MiB of zeros at the best ratio, as an attacker would pack them (about 1000:1).
        let mut c = Compress::new(flate2::Compression::best(), false);
        let mut wire = Vec::with_capacity(64 << 10);
        c.compress_vec(&vec![0u8; 16 << 20], &mut wire, FlushCompress::Sync)
            .unwrap();
        assert!(wire.len() < 32 << 10, "{}", wire.len());
        let mut i = Inflater::new(true);
        let mut seen = 0;
        let err = i.inflate(&wire, true, |b| {
            seen += b.len();
            seen <= 100_000
        });
        assert_eq!(err, Err(InflateError::Refused));
        assert!(seen <= 100_000 + INFLATE_STEP);
        assert!(!i.holds_state());
    }

    #[test]
    fn corrupt_data_is_an_error() {
        let mut i = Inflater::new(false);
        let err = i.inflate(&[0xff, 0xff, 0xff, 0xff], true, |_| true);
        assert!(matches!(err, Err(InflateError::Corrupt(_))), "{err:?}");
    }
}
