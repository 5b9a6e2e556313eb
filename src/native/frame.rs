//! RFC 6455 framing (section 5): parsing frame headers with every rule a receiver must check,
//! masking, writing headers, and validating close payloads. Pure functions over bytes, so the
//! fuzz targets can reach them without a connection.

use crate::close::StatusCode;

/// The longest frame header: 2 bytes, a 64-bit length, a masking key.
pub(crate) const MAX_HEADER: usize = 14;

/// The largest read limit that takes effect: `isize::MAX` bytes, the most one buffer can hold
/// (2^63 - 1 on 64-bit targets, 2^31 - 1 on 32-bit ones). A larger limit, `usize::MAX`
/// included, means this one, so length arithmetic never overflows.
pub(crate) const MAX_READ_LIMIT: usize = isize::MAX as usize;

/// Which end of the connection this is; it decides who masks (RFC 6455 5.1, 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Sends masked frames, receives unmasked ones.
    Client,
    /// Sends unmasked frames, receives masked ones.
    Server,
}

/// A frame's opcode (RFC 6455 5.2); the reserved ones never get this far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpCode {
    Continue,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => OpCode::Continue,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continue => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong (RFC 6455 5.5).
    pub(crate) fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    pub(crate) opcode: OpCode,
    pub(crate) mask: Option<[u8; 4]>,
    /// RSV1: the first frame of a compressed message (permessage-deflate, RFC 7692 6).
    pub(crate) rsv1: bool,
    /// The payload length (at most the limit `parse_header` was given).
    pub(crate) len: usize,
    /// The header's own length in bytes.
    pub(crate) size: usize,
}

/// Why a frame cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A rule of RFC 6455 was broken: close with 1002.
    Protocol(&'static str),
    /// The frame claims more bytes than the read limit allows: close with 1009.
    TooBig { claimed: u64, limit: usize },
}

/// Parses the frame header at the start of `buf` as received by `role` on a connection
/// without extensions; see [`parse_header_with`].
#[cfg(any(test, fuzzing))]
pub(crate) fn parse_header(
    buf: &[u8],
    role: Role,
    limit: usize,
) -> Result<Option<Header>, FrameError> {
    parse_header_with(buf, role, limit, false)
}

/// The most compressed bytes a frame may carry under read limit `limit`: the limit plus
/// DEFLATE's worst-case growth of incompressible data (zlib's `deflateBound` is about 0.03%
/// plus a few bytes; this allows 0.1% plus 64), so a message that inflates to within the
/// limit is never refused for its compressed size.
pub(crate) fn compressed_limit(limit: usize) -> usize {
    limit.saturating_add(limit / 1024).saturating_add(64)
}

/// Parses the frame header at the start of `buf` as received by `role`, checking RFC 6455
/// 5.1–5.5: no reserved bits but RSV1 when permessage-deflate was agreed (`deflate`), and
/// then only on the first frame of a data message (RFC 7692 6.1), no reserved opcodes,
/// masking by clients only, control frames final and at most 125 bytes, a 64-bit length
/// with its most significant bit clear, and a data frame's payload length within `limit`
/// ([`compressed_limit`] of it with RSV1; capped at [`MAX_READ_LIMIT`]; checked from the
/// header alone, before anything is allocated). `Ok(None)`: more bytes are needed.
pub(crate) fn parse_header_with(
    buf: &[u8],
    role: Role,
    limit: usize,
    deflate: bool,
) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x30 != 0 {
        return Err(FrameError::Protocol(
            "a frame has RSV2 or RSV3 set, but no extension that uses them was negotiated",
        ));
    }
    let rsv1 = b0 & 0x40 != 0;
    if rsv1 && !deflate {
        return Err(FrameError::Protocol(
            "a frame has RSV1 set, but permessage-deflate was not negotiated",
        ));
    }
    let opcode = OpCode::from_bits(b0 & 0x0F)
        .ok_or(FrameError::Protocol("a frame has a reserved opcode"))?;
    if rsv1 && opcode.is_control() {
        return Err(FrameError::Protocol(
            "a control frame has RSV1 set (control frames are never compressed)",
        ));
    }
    if rsv1 && opcode == OpCode::Continue {
        return Err(FrameError::Protocol(
            "a continuation frame has RSV1 set (only a message's first frame may)",
        ));
    }
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => {
            return Err(FrameError::Protocol(
                "a client sent a frame that is not masked",
            ))
        }
        (Role::Client, true) => return Err(FrameError::Protocol("a server sent a masked frame")),
        _ => {}
    }
    let (claimed, mut size) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut n = [0u8; 8];
                n.copy_from_slice(b);
                let n = u64::from_be_bytes(n);
                if n >> 63 != 0 {
                    return Err(FrameError::Protocol(
                        "a frame's 64-bit payload length has its most significant bit set",
                    ));
                }
                (n, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode.is_control() {
        if !fin {
            return Err(FrameError::Protocol("a control frame is fragmented"));
        }
        if claimed > 125 {
            return Err(FrameError::Protocol(
                "a control frame carries more than 125 bytes",
            ));
        }
    }
    // Control frames are bounded by 125 bytes above; the read limit is about messages.
    let limit = if rsv1 { compressed_limit(limit) } else { limit }.min(MAX_READ_LIMIT);
    let len = match usize::try_from(claimed) {
        Ok(len) if len <= limit || opcode.is_control() => len,
        _ => return Err(FrameError::TooBig { claimed, limit }),
    };
    let mask = if masked {
        let Some(k) = buf.get(size..size + 4) else {
            return Ok(None);
        };
        size += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        rsv1,
        len,
        size,
    }))
}

/// XORs `data` with the masking `key` (RFC 6455 5.3), eight bytes at a time.
pub(crate) fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    // 32 bytes at a time against the key repeated 8 times: a fixed-length loop the compiler
    // turns into vector XORs (the byte-at-a-time form was 10% of a 64 KiB echo's server CPU).
    let mut wide = [0u8; 32];
    for (i, b) in wide.iter_mut().enumerate() {
        *b = key[i % 4];
    }
    let mut chunks = data.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for (b, k) in chunk.iter_mut().zip(wide) {
            *b ^= k;
        }
    }
    // What is left starts at a multiple of 32, so the key starts over at its first byte.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// XORs `data` with the masking `key` as if `data` started `offset` bytes into the payload
/// (for a payload unmasked piece by piece as it arrives).
pub(crate) fn apply_mask_at(data: &mut [u8], key: [u8; 4], offset: usize) {
    let r = offset % 4;
    apply_mask(
        data,
        [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]],
    );
}

/// Appends a frame header to `out`, with the shortest length encoding (RFC 6455 5.2).
#[cfg(any(test, fuzzing))]
pub(crate) fn write_header(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    write_header_with(out, fin, false, opcode, mask, len);
}

/// Appends a frame header to `out`, with the shortest length encoding (RFC 6455 5.2), RSV1
/// (a compressed message's first frame) set or not.
pub(crate) fn write_header_with(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    let (head, n) = header(fin, rsv1, opcode, mask, len);
    out.extend_from_slice(&head[..n]);
}

/// A frame header's bytes (the first of the array's bytes, as many as the count says): for a
/// frame built on the stack.
pub(crate) fn header(
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
) -> ([u8; MAX_HEADER], usize) {
    let mut head = [0u8; MAX_HEADER];
    head[0] = if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 } | opcode.bits();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = 2;
    if len < 126 {
        head[1] = mask_bit | len as u8;
    } else if let Ok(short) = u16::try_from(len) {
        head[1] = mask_bit | 126;
        head[2..4].copy_from_slice(&short.to_be_bytes());
        n = 4;
    } else {
        head[1] = mask_bit | 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        n = 10;
    }
    if let Some(key) = mask {
        head[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    (head, n)
}

/// Close codes a peer may send (RFC 6455 7.4.1, 7.4.2 and the IANA registry of 11.7):
/// 1000–1003, 1007–1014 and 3000–4999. 1004–1006 and 1015 must never be on the wire.
pub(crate) fn is_valid_received_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A close payload that must fail the connection: the code to close with and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadClose {
    pub(crate) code: StatusCode,
    pub(crate) why: String,
}

/// Parses a received close frame's payload (RFC 6455 5.5.1): empty (no status), or a valid
/// code and a UTF-8 reason.
pub(crate) fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, BadClose> {
    match payload {
        [] => Ok(None),
        [_] => Err(BadClose {
            code: StatusCode::PROTOCOL_ERROR,
            why: "a close frame with a one-byte payload".to_owned(),
        }),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_received_code(code) {
                return Err(BadClose {
                    code: StatusCode::PROTOCOL_ERROR,
                    why: format!("the peer closed with code {code}, which may not be sent"),
                });
            }
            match std::str::from_utf8(reason) {
                Ok(reason) => Ok(Some((code, reason.to_owned()))),
                Err(_) => Err(BadClose {
                    code: StatusCode::INVALID_FRAME_PAYLOAD_DATA,
                    why: format!("the peer closed with code {code} and a reason that is not UTF-8"),
                }),
            }
        }
    }
}

/// `parse_header` for the fuzz targets (see `crate::fuzz`).
#[cfg(fuzzing)]
pub(crate) fn fuzz_parse(
    buf: &[u8],
    server: bool,
    limit: usize,
) -> Option<(bool, u8, bool, usize, usize)> {
    let role = if server { Role::Server } else { Role::Client };
    let h = parse_header(buf, role, limit).ok()??;
    Some((h.fin, h.opcode.bits(), h.mask.is_some(), h.len, h.size))
}

/// `write_header` then `parse_header` (see `crate::fuzz`).
#[cfg(fuzzing)]
pub(crate) fn fuzz_round_trip(fin: bool, opcode: u8, masked: bool, len: usize) -> bool {
    let Some(op) = OpCode::from_bits(opcode & 0x0F) else {
        return true;
    };
    let fin = fin || op.is_control();
    // Lengths past MAX_READ_LIMIT cannot be written: no buffer holds that many bytes.
    let len = if op.is_control() {
        len % 126
    } else {
        len.min(MAX_READ_LIMIT)
    };
    let mut out = Vec::new();
    write_header(&mut out, fin, op, masked.then_some([1, 2, 3, 4]), len);
    let role = if masked { Role::Server } else { Role::Client };
    matches!(
        parse_header(&out, role, usize::MAX),
        Ok(Some(h)) if h.fin == fin && h.opcode == op && h.len == len && h.size == out.len()
            && h.mask.is_some() == masked
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(b0: u8, len_byte: u8, extra: &[u8]) -> Vec<u8> {
        let mut v = vec![b0, 0x80 | len_byte];
        v.extend_from_slice(extra);
        v.extend_from_slice(&[1, 2, 3, 4]);
        v
    }

    #[test]
    fn headers() {
        let h = parse_header(&masked(0x81, 5, &[]), Role::Server, 100)
            .expect("valid")
            .expect("complete");
        assert_eq!((h.fin, h.opcode, h.len, h.size), (true, OpCode::Text, 5, 6));
        assert_eq!(h.mask, Some([1, 2, 3, 4]));
        // 16- and 64-bit lengths, and incomplete headers.
        let h = parse_header(&masked(0x82, 126, &[0x01, 0x00]), Role::Server, 1000)
            .expect("valid")
            .expect("complete");
        assert_eq!((h.len, h.size), (256, 8));
        assert_eq!(
            parse_header(&[0x82, 0xFE, 0x01], Role::Server, 1000),
            Ok(None)
        );
        assert_eq!(parse_header(&[0x82], Role::Server, 1000), Ok(None));
        let claim = masked(0x82, 127, &(1u64 << 40).to_be_bytes());
        assert!(matches!(
            parse_header(&claim, Role::Server, 1 << 20),
            Err(FrameError::TooBig { .. })
        ));
        // Role rules, reserved bits and opcodes, control frame rules.
        assert!(matches!(
            parse_header(&[0x81, 0x00], Role::Server, 10),
            Err(FrameError::Protocol(_))
        ));
        assert!(matches!(
            parse_header(&masked(0x81, 0, &[]), Role::Client, 10),
            Err(FrameError::Protocol(_))
        ));
        assert!(matches!(
            parse_header(&masked(0xC1, 0, &[]), Role::Server, 10),
            Err(FrameError::Protocol(_))
        ));
        // With permessage-deflate: RSV1 on a data message's first frame only.
        let h = parse_header_with(&masked(0xC1, 0, &[]), Role::Server, 10, true)
            .unwrap()
            .unwrap();
        assert!(h.rsv1 && h.opcode == OpCode::Text);
        for (b0, why) in [
            (0xE1, "RSV2"),
            (0x91, "RSV3"),
            (0xC0, "continuation"),
            (0xC9, "control"),
            (0xC8, "control"),
        ] {
            match parse_header_with(&masked(b0, 0, &[]), Role::Server, 10, true) {
                Err(FrameError::Protocol(msg)) => assert!(msg.contains(why), "{msg}"),
                other => panic!("{b0:#x}: {other:?}"),
            }
        }
        // A compressed frame may exceed the limit by DEFLATE's worst-case growth only.
        let limit = 60_000;
        let fits = compressed_limit(limit) as u16;
        assert!(parse_header_with(
            &masked(0xC2, 126, &fits.to_be_bytes()),
            Role::Server,
            limit,
            true
        )
        .unwrap()
        .is_some());
        assert!(matches!(
            parse_header_with(
                &masked(0xC2, 126, &(fits + 1).to_be_bytes()),
                Role::Server,
                limit,
                true
            ),
            Err(FrameError::TooBig { .. })
        ));
        assert!(matches!(
            parse_header_with(
                &masked(0x82, 126, &fits.to_be_bytes()),
                Role::Server,
                limit,
                true
            ),
            Err(FrameError::TooBig { .. })
        ));
        assert_eq!(compressed_limit(usize::MAX), usize::MAX);
        assert!(matches!(
            parse_header(&masked(0x83, 0, &[]), Role::Server, 10),
            Err(FrameError::Protocol(_))
        ));
        assert!(matches!(
            parse_header(&masked(0x09, 0, &[]), Role::Server, 10),
            Err(FrameError::Protocol(_))
        ));
        assert!(matches!(
            parse_header(&masked(0x89, 126, &[0, 126]), Role::Server, 1000),
            Err(FrameError::Protocol(_))
        ));
    }

    #[test]
    fn length_with_top_bit_set_is_a_protocol_error_at_any_limit() {
        for claim in [u64::MAX, 1 << 63, (1 << 63) | 5] {
            let header = masked(0x82, 127, &claim.to_be_bytes());
            for limit in [0, 1 << 20, MAX_READ_LIMIT, usize::MAX] {
                assert!(
                    matches!(
                        parse_header(&header, Role::Server, limit),
                        Err(FrameError::Protocol(_))
                    ),
                    "claim {claim:#x}, limit {limit}"
                );
            }
        }
        // The largest legal length parses with no limit, and is too big under any other.
        let header = masked(0x82, 127, &(u64::MAX >> 1).to_be_bytes());
        let h = parse_header(&header, Role::Server, usize::MAX)
            .expect("valid")
            .expect("complete");
        assert_eq!(h.len as u64, u64::MAX >> 1);
        assert!(matches!(
            parse_header(&header, Role::Server, 1 << 40),
            Err(FrameError::TooBig { .. })
        ));
    }

    #[test]
    fn control_frames_are_not_held_to_the_read_limit() {
        let ping = masked(0x89, 5, &[]);
        let h = parse_header(&ping, Role::Server, 0)
            .expect("valid")
            .expect("complete");
        assert_eq!((h.opcode, h.len), (OpCode::Ping, 5));
    }

    #[test]
    fn masking_at_an_offset_matches_masking_the_whole() {
        let key = [0x11, 0x22, 0x33, 0x44];
        let data: Vec<u8> = (0..200u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key);
        for split in [0, 1, 2, 3, 5, 33, 64, 199, 200] {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask_at(a, key, 0);
            apply_mask_at(b, key, split);
            assert_eq!(pieces, whole, "split at {split}");
        }
    }

    #[test]
    fn masking_matches_bytewise_xor_at_every_length() {
        let key = [0xA1, 0x02, 0xF3, 0x44];
        for len in 0..100 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, key);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(fast, slow, "length {len}");
        }
    }

    #[test]
    fn header_round_trip_uses_the_shortest_encoding() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let mut out = Vec::new();
            write_header(&mut out, true, OpCode::Binary, Some([9, 9, 9, 9]), len);
            let h = parse_header(&out, Role::Server, usize::MAX)
                .expect("valid")
                .expect("complete");
            assert_eq!(h.len, len);
            assert_eq!(h.size, out.len());
            let want = match len {
                0..=125 => 6,
                126..=65535 => 8,
                _ => 14,
            };
            assert_eq!(out.len(), want, "length {len}");
        }
    }

    #[test]
    fn close_payloads() {
        assert_eq!(parse_close(&[]), Ok(None));
        assert!(parse_close(&[3]).is_err());
        assert_eq!(
            parse_close(&[0x03, 0xF6, b'h']),
            Ok(Some((1014, "h".to_owned())))
        );
        for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            let err = parse_close(&bad.to_be_bytes()).expect_err("invalid code");
            assert_eq!(err.code, StatusCode::PROTOCOL_ERROR, "{bad}");
        }
        let err = parse_close(&[0x03, 0xE8, 0xFF]).expect_err("reason not UTF-8");
        assert_eq!(err.code, StatusCode::INVALID_FRAME_PAYLOAD_DATA);
    }
}
