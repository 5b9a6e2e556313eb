//! A minimal WebSocket client with no WebSocket library: a bare `TcpStream` after the
//! upgrade, frames masked once in advance and shared, and echoes read by their frame headers.
//!
//! The idle-memory test uses it so that 10,000 connections cost the load process almost
//! nothing ([`connect`], [`masked_binary_frame`], [`exchange`]); the raw load generator
//! ([`crate::rawload`]) uses [`masked_frame`] and [`EchoReader`], which checks each echo's
//! type, length and bytes against the message sent as they arrive, without copying them.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::handshake::{self, WsUrl};
use crate::Result;

/// Connects and upgrades; the stream then carries raw frames.
pub async fn connect(url: &WsUrl) -> Result<TcpStream> {
    let mut tcp = url.connect_tcp().await?;
    handshake::connect(&mut tcp, url).await?;
    Ok(tcp)
}

/// The mask of every frame built here. Fixed, since the frames are built once and shared; not
/// zero, so that a server that forgot to unmask echoes the wrong bytes.
const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// One final, masked binary frame with a payload of `len` bytes (`0x5A` before masking).
pub fn masked_binary_frame(len: usize) -> Vec<u8> {
    masked_frame(false, &vec![0x5A; len])
}

/// One final, masked text (`text`) or binary frame carrying `payload`, as a client sends it.
pub fn masked_frame(text: bool, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = Vec::with_capacity(len + 14);
    f.push(if text { 0x81 } else { 0x82 }); // FIN, text or binary
    match len {
        0..=125 => f.push(0x80 | len as u8),
        126..=0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    f
}

/// The header of one frame from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The FIN bit: the last frame of its message.
    pub fin: bool,
    /// The opcode (0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// The payload length.
    pub len: u64,
    /// The header's own length: 2, 4 or 10 bytes (server frames carry no mask).
    pub size: usize,
}

/// Parses the frame header at the start of `buf`: `Ok(None)` while part of it has yet to
/// arrive.
///
/// # Errors
///
/// A masked frame (servers never mask), reserved bits (no extension is agreed here), an
/// unknown opcode, a 64-bit length with its top bit set, and a control frame that is
/// fragmented or longer than 125 bytes.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(format!("reserved bits set in a frame header ({b0:#04x})").into());
    }
    if b1 & 0x80 != 0 {
        return Err("the server masked a frame".into());
    }
    let (len, size) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
            _ => return Ok(None),
        },
        127 => match buf.get(2..10).map(<[u8; 8]>::try_from) {
            Some(Ok(b)) => (u64::from_be_bytes(b), 10),
            _ => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 {
        return Err(format!("frame length {len:#x} has its top bit set").into());
    }
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
    match opcode {
        0x0..=0x2 => {}
        0x8..=0xA if fin && len <= 125 => {}
        0x8..=0xA => {
            return Err(format!("control frame {opcode:#x}: fragmented or over 125 bytes").into())
        }
        _ => return Err(format!("unknown opcode {opcode:#x}").into()),
    }
    Ok(Some(Header {
        fin,
        opcode,
        len,
        size,
    }))
}

/// Where an [`EchoParser`] is in the server's stream of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary: the next bytes are a header.
    Header,
    /// In a data frame's payload: `left` bytes to go; the message ends with it if `fin`.
    Data { left: u64, fin: bool },
    /// In a ping's or pong's payload, skipped (the echo servers send none unasked).
    Control { left: u64 },
}

/// Checks the server's frames against the messages sent, one echo at a time, from bytes fed
/// in pieces of any size (sans I/O, so that the splits can be tested).
#[derive(Debug, Clone)]
pub struct EchoParser {
    state: State,
    /// Whether a data message has begun (its first frame was seen, its last not yet).
    in_message: bool,
    /// Payload bytes of the current message checked so far.
    got: usize,
}

impl Default for EchoParser {
    fn default() -> Self {
        EchoParser {
            state: State::Header,
            in_message: false,
            got: 0,
        }
    }
}

impl EchoParser {
    /// Consumes what it can of `input` towards the echo of `expected` (a text message if
    /// `text`, else binary): returns how many bytes it consumed and whether the echo is
    /// complete. It stops right after the echo's last frame, and before a header that has not
    /// wholly arrived: the caller keeps the rest and feeds it again with more bytes.
    ///
    /// # Errors
    ///
    /// Anything but an exact echo: another message type, a payload longer or shorter than
    /// `expected` or with other bytes, a close frame, or a malformed frame
    /// ([`parse_header`]).
    pub fn feed(&mut self, input: &[u8], text: bool, expected: &[u8]) -> Result<(usize, bool)> {
        let kind = |t: bool| if t { "text" } else { "binary" };
        let mut pos = 0;
        loop {
            match self.state {
                State::Header => {
                    let Some(h) = parse_header(&input[pos..])? else {
                        return Ok((pos, false));
                    };
                    match h.opcode {
                        0x8 => {
                            // Wait for the whole close frame (at most 127 bytes), to report
                            // its code and reason.
                            let body = &input[pos + h.size..];
                            let Some(body) = body.get(..h.len as usize) else {
                                return Ok((pos, false));
                            };
                            let (code, reason) = match body {
                                [a, b, reason @ ..] => (
                                    u16::from_be_bytes([*a, *b]).to_string(),
                                    String::from_utf8_lossy(reason),
                                ),
                                _ => ("none".to_owned(), "".into()),
                            };
                            return Err(format!(
                                "the server closed the connection (close code {code}, \
                                 reason {reason:?})"
                            )
                            .into());
                        }
                        0x9 | 0xA => {
                            pos += h.size;
                            self.state = State::Control { left: h.len };
                        }
                        op => {
                            match (self.in_message, op) {
                                (false, 0x0) => {
                                    return Err("a continuation frame with no message".into())
                                }
                                (true, 0x1 | 0x2) => {
                                    return Err(
                                        "a new message inside a fragmented one (no FIN)".into()
                                    )
                                }
                                (false, _) if (op == 0x1) != text => {
                                    return Err(format!(
                                        "echo mismatch: got a {} message, sent {}",
                                        kind(op == 0x1),
                                        kind(text)
                                    )
                                    .into())
                                }
                                _ => {}
                            }
                            pos += h.size;
                            if !self.in_message {
                                self.in_message = true;
                                self.got = 0;
                            }
                            if self.got as u64 + h.len > expected.len() as u64 {
                                return Err(format!(
                                    "echo mismatch: at least {} bytes echoed, {} sent",
                                    self.got as u64 + h.len,
                                    expected.len()
                                )
                                .into());
                            }
                            self.state = State::Data {
                                left: h.len,
                                fin: h.fin,
                            };
                        }
                    }
                }
                State::Data { left, fin } => {
                    // `left` fits: got + left <= expected.len() was checked at the header.
                    let k = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - pos);
                    let (got, want) = (&input[pos..pos + k], &expected[self.got..self.got + k]);
                    if got != want {
                        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                        return Err(format!(
                            "echo mismatch: byte {} of {} differs from the one sent",
                            self.got + at,
                            expected.len()
                        )
                        .into());
                    }
                    pos += k;
                    self.got += k;
                    let left = left - k as u64;
                    if left > 0 {
                        self.state = State::Data { left, fin };
                        return Ok((pos, false));
                    }
                    self.state = State::Header;
                    if fin {
                        self.in_message = false;
                        if self.got != expected.len() {
                            return Err(format!(
                                "echo mismatch: {} bytes echoed, {} sent",
                                self.got,
                                expected.len()
                            )
                            .into());
                        }
                        return Ok((pos, true));
                    }
                }
                State::Control { left } => {
                    let k = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - pos);
                    pos += k;
                    let left = left - k as u64;
                    if left > 0 {
                        self.state = State::Control { left };
                        return Ok((pos, false));
                    }
                    self.state = State::Header;
                }
            }
        }
    }
}

/// Reads echoes from a stream into its own buffer and checks them with an [`EchoParser`];
/// bytes after one echo stay for the next.
#[derive(Debug)]
pub struct EchoReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    parser: EchoParser,
}

impl EchoReader {
    /// A reader that reads up to `capacity` bytes at a time (at least 256, so that a whole
    /// close frame fits).
    pub fn new(capacity: usize) -> EchoReader {
        EchoReader {
            buf: vec![0; capacity.max(256)].into_boxed_slice(),
            start: 0,
            end: 0,
            parser: EchoParser::default(),
        }
    }

    /// Reads until the whole echo of `expected` (text if `text`) has arrived and matched.
    ///
    /// # Errors
    ///
    /// [`EchoParser::feed`]'s, a read error, and the end of the stream.
    pub async fn read_echo<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        text: bool,
        expected: &[u8],
    ) -> Result<()> {
        loop {
            let (n, done) = self
                .parser
                .feed(&self.buf[self.start..self.end], text, expected)?;
            self.start += n;
            if done {
                return Ok(());
            }
            // All that is left is part of a header (at most 9 bytes) or a close frame waiting
            // for its code (at most 126): move it to the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let n = rd
                .read(&mut self.buf[self.end..])
                .await
                .map_err(|e| format!("reading an echo: {e}"))?;
            if n == 0 {
                return Err("the server ended the connection before the echo".into());
            }
            self.end += n;
        }
    }
}

/// Sends `frame` (a whole binary message of `len` bytes) and reads its echo, which may come
/// in several frames; the payload is discarded in 64 KiB pieces.
pub async fn exchange(tcp: &mut TcpStream, frame: &[u8], len: usize) -> Result<()> {
    tcp.write_all(frame).await?;
    let mut scratch = vec![0u8; 64 << 10];
    let mut got = 0usize;
    loop {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).await?;
        let fin = head[0] & 0x80 != 0;
        let opcode = head[0] & 0x0F;
        if head[1] & 0x80 != 0 {
            return Err("the server masked a frame".into());
        }
        let n = match head[1] & 0x7F {
            126 => {
                let mut b = [0u8; 2];
                tcp.read_exact(&mut b).await?;
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                tcp.read_exact(&mut b).await?;
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut left = usize::try_from(n)?;
        let data = matches!(opcode, 0x0 | 0x2);
        if !data && opcode != 0x9 && opcode != 0xA {
            return Err(format!("unexpected frame with opcode {opcode:#x}").into());
        }
        while left > 0 {
            let k = left.min(scratch.len());
            tcp.read_exact(&mut scratch[..k]).await?;
            left -= k;
        }
        if data {
            got += usize::try_from(n)?;
            if fin {
                break;
            }
        }
    }
    if got != len {
        return Err(format!("echo of {got} bytes for {len} sent").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;

    /// An unmasked frame as a server sends it.
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(n as u8),
            n @ 126..=0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Feeds `wire` in pieces of `step` bytes (keeping what the parser leaves, as
    /// [`EchoReader`] does) and checks one echo of `expected` per entry; returns the first
    /// error.
    fn feed_in_steps(wire: &[u8], step: usize, expected: &[(bool, &[u8])]) -> Result<()> {
        let mut p = EchoParser::default();
        let (mut pending, mut next, mut i) = (Vec::new(), 0, 0);
        while i < expected.len() {
            let (text, msg) = expected[i];
            let (n, done) = p.feed(&pending, text, msg)?;
            pending.drain(..n);
            if done {
                i += 1;
                continue;
            }
            if next >= wire.len() {
                return Err(format!("input ended before echo {i}").into());
            }
            let end = (next + step).min(wire.len());
            pending.extend_from_slice(&wire[next..end]);
            next = end;
        }
        if next != wire.len() || !pending.is_empty() {
            return Err("bytes left over after the last echo".into());
        }
        Ok(())
    }

    #[test]
    fn headers_with_7_16_and_64_bit_lengths() {
        for (len, size) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (70_000, 10),
        ] {
            let f = server_frame(true, 0x2, &vec![0; len]);
            let h = parse_header(&f).expect("valid").expect("complete");
            assert_eq!(
                (h.fin, h.opcode, h.len, h.size),
                (true, 2, len as u64, size)
            );
            // Every proper prefix of the header is incomplete, not an error.
            for cut in 0..size {
                assert_eq!(parse_header(&f[..cut]).expect("valid so far"), None);
            }
        }
        let h = parse_header(&[0x00, 126, 0x01, 0x00])
            .expect("valid")
            .expect("complete");
        assert_eq!((h.fin, h.opcode, h.len), (false, 0, 256));
    }

    #[test]
    fn malformed_headers_are_errors() {
        for (bytes, why) in [
            (&[0x82, 0x85][..], "masked"),
            (&[0xC2, 0x05][..], "reserved bit (RSV1)"),
            (&[0x83, 0x00][..], "unknown opcode"),
            (&[0x89, 126, 0x00, 0x80][..], "ping over 125 bytes"),
            (&[0x08, 0x02][..], "fragmented close"),
            (
                &[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0][..],
                "64-bit length, top bit set",
            ),
        ] {
            assert!(parse_header(bytes).is_err(), "{why}");
        }
    }

    #[test]
    fn masked_frames_carry_the_payload() {
        for len in [0, 5, 125, 126, 65535, 65536] {
            let payload = bytes(len);
            let f = masked_frame(true, &payload);
            assert_eq!(f[0], 0x81);
            assert_eq!(f[1] & 0x80, 0x80);
            let (hlen, size) = match f[1] & 0x7F {
                126 => (u64::from(u16::from_be_bytes([f[2], f[3]])), 8),
                127 => (
                    u64::from_be_bytes(f[2..10].try_into().expect("8 bytes")),
                    14,
                ),
                n => (u64::from(n), 6),
            };
            assert_eq!((hlen, f.len()), (len as u64, size + len));
            let mask = &f[size - 4..size];
            let unmasked: Vec<u8> = f[size..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(unmasked, payload);
        }
        assert_eq!(masked_binary_frame(3)[0], 0x82);
    }

    #[test]
    fn an_echo_split_anywhere_is_read_whole() {
        // 7-bit, 16-bit and 64-bit lengths, back to back, split at every step size.
        let (a, b, c) = (bytes(100), bytes(300), bytes(70_000));
        let mut wire = server_frame(true, 0x2, &a);
        wire.extend(server_frame(true, 0x1, &b));
        wire.extend(server_frame(true, 0x2, &c));
        let expected = [(false, &a[..]), (true, &b[..]), (false, &c[..])];
        for step in [1, 2, 3, 5, 9, 10, 11, 64, 4096, wire.len()] {
            feed_in_steps(&wire, step, &expected).expect("echoes");
        }
        // Split once at every point of the first two frames.
        let cut_wire = &wire[..wire.len() - c.len() - 10];
        for cut in 0..cut_wire.len() {
            let mut p = EchoParser::default();
            let (n, done) = p.feed(&cut_wire[..cut], false, &a).expect("valid");
            assert!(n <= cut);
            if !done {
                let (m, done) = p.feed(&cut_wire[n..], false, &a).expect("valid");
                assert!(done, "cut at {cut}");
                assert_eq!(n + m, a.len() + 2);
            }
        }
    }

    #[test]
    fn fragments_and_pings_are_reassembled_and_skipped() {
        let msg = bytes(1000);
        let mut wire = server_frame(false, 0x2, &msg[..10]);
        wire.extend(server_frame(true, 0x9, b"ping"));
        wire.extend(server_frame(false, 0x0, &msg[10..]));
        wire.extend(server_frame(true, 0xA, b""));
        wire.extend(server_frame(true, 0x0, b""));
        for step in [1, 7, wire.len()] {
            feed_in_steps(&wire, step, &[(false, &msg)]).expect("one echo");
        }
    }

    #[test]
    fn wrong_echoes_fail_with_what_differed() {
        let sent = bytes(300);
        let mut other = sent.clone();
        other[200] ^= 1;
        let mut close = server_frame(true, 0x8, &1011u16.to_be_bytes());
        close[1] += 3;
        close.extend_from_slice(b"bye");
        let cases: [(Vec<u8>, &str); 6] = [
            (server_frame(true, 0x2, &other), "byte 200 of 300"),
            (
                server_frame(true, 0x2, &sent[..299]),
                "299 bytes echoed, 300 sent",
            ),
            (server_frame(true, 0x2, &bytes(301)), "at least 301 bytes"),
            (
                server_frame(true, 0x1, &sent),
                "got a text message, sent binary",
            ),
            (close, "close code 1011, reason \"bye\""),
            (
                server_frame(true, 0x0, &sent),
                "continuation frame with no message",
            ),
        ];
        for (wire, want) in cases {
            for step in [1, wire.len()] {
                let e = feed_in_steps(&wire, step, &[(false, &sent)]).expect_err(want);
                assert!(e.to_string().contains(want), "{e} (wanted {want:?})");
            }
        }
        let mut two = server_frame(false, 0x2, &sent[..100]);
        two.extend(server_frame(true, 0x2, &sent[100..]));
        let e = feed_in_steps(&two, 1, &[(false, &sent)]).expect_err("no FIN");
        assert!(e.to_string().contains("inside a fragmented one"), "{e}");
    }

    /// A stream that returns at most `step` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self
                .step
                .min(buf.remaining())
                .min(self.data.len() - self.pos);
            let pos = self.pos;
            buf.put_slice(&self.data[pos..pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn the_reader_keeps_split_headers_and_the_next_echo() {
        let (big, small) = (bytes(70_000), bytes(16));
        let mut data = server_frame(true, 0x2, &big);
        data.extend(server_frame(true, 0x2, &small));
        data.extend(server_frame(true, 0x2, &big));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for step in [3, 5, 1000, usize::MAX] {
            let mut rd = Trickle {
                data: data.clone(),
                pos: 0,
                step,
            };
            // The smallest buffer, so that headers straddle its end.
            let mut reader = EchoReader::new(0);
            rt.block_on(async {
                for want in [&big, &small, &big] {
                    reader.read_echo(&mut rd, false, want).await?;
                }
                Ok::<(), crate::Error>(())
            })
            .expect("three echoes");
            let e = rt
                .block_on(reader.read_echo(&mut rd, false, &small))
                .expect_err("the stream ended");
            assert!(e.to_string().contains("ended the connection"), "{e}");
        }
    }
}
