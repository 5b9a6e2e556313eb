//! The harness's input: a read limit and items (messages, control frames, raw frames) with
//! per-frame header tweaks, decoded byte by byte from the front so seeds can be written by hand.
//!
//! Layout (every integer little-endian; missing bytes read as 0, which decodes to the ordinary
//! case):
//!
//! - limit selector `s`: `LIMITS[s % 13]`, or for 12 a `u16` that follows;
//! - then items until the input ends (at most `MAX_ITEMS`), each a tag `t % 16`:
//!   - 0..=8 a message: flags (bit 0 text, bits 1-3 fragments - 1), a body, then per fragment
//!     a `u16` length (the last fragment takes the rest), a control selector (`& 3 == 3`: a
//!     control frame and its tweak, sent before this fragment), and the fragment's tweak;
//!   - 9, 10 a ping, 11 a pong, 12..=14 a close, each followed by its tweak;
//!   - 15 a raw frame: its first header byte, a `u16` length, the payload, a tweak.
//! - a body: kind `k % 4`: 0 bytes (`u16` length, bytes), 1 text (`u16` length, one character
//!   per byte), 2 text with one bad byte (text, `u16` position, index into `BAD_UTF8`),
//!   3 a repeated pattern (`u8` length, pattern, then mode: bit 0 length near the limit by an
//!   `i8`, else a `u16` plus 65536 when bit 1 is set);
//! - a control: ping and pong `u8` length and payload; close kind `k % 4`: 0 empty, 1 one
//!   byte, 2 code and text reason, 3 code and raw reason (code: `CODES[c % 20]`, or for
//!   `c % 20 == 19` a `u16`; reason: `u8` length, bytes);
//! - a tweak: selector `s` (`s & 3`: 2 a 16-bit length, 3 a 64-bit one, else the shortest),
//!   the 4-byte mask key, and when `s >= 0xE0` a fault byte `f`: bit 0 flips fin, bit 1 masks
//!   wrongly for the role, bit 2 sets the RSV bits to bits 3-5, bit 6 an opcode follows (`& 15`),
//!   bit 7 a claimed length follows (see `Claim::decode`).

use arbitrary::{Arbitrary, Unstructured};

/// The read limits tried; a 13th choice is a small arbitrary one.
pub const LIMITS: [usize; 12] = [
    0,
    1,
    2,
    125,
    126,
    127,
    1000,
    65535,
    65536,
    isize::MAX as usize,
    usize::MAX - 1,
    usize::MAX,
];

/// The most items one input holds.
pub const MAX_ITEMS: usize = 64;

/// The longest message body.
pub const MAX_BODY: usize = 70_000;

/// Bytes put into text to break it: stray continuation bytes, bytes that never occur in
/// UTF-8, and lead bytes (invalid unless the right continuation follows).
pub const BAD_UTF8: [u8; 13] = [
    0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xF8, 0xFE, 0xFF,
];

/// Close codes tried: valid ones, reserved ones, and out of range.
pub const CODES: [u16; 19] = [
    1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1014, 1015, 1016, 0, 999, 2999, 3000,
    4999, 5000, 65535,
];

/// Characters a text byte at or above 0x80 stands for: every UTF-8 width, at its edges.
const WIDE: [char; 12] = [
    '\u{80}',
    'é',
    '\u{7FF}',
    '\u{800}',
    '€',
    '\u{D7FF}',
    '\u{E000}',
    '\u{FFFD}',
    '\u{FFFF}',
    '\u{10000}',
    '😀',
    '\u{10FFFF}',
];

/// Payload lengths a header may claim instead of the supplied one (`Claim::Fixed`).
const FIXED_CLAIMS: [u64; 13] = [
    u64::MAX,
    1 << 63,
    (1 << 63) - 1,
    (1 << 63) + 1,
    u64::MAX - 1,
    1 << 32,
    (1 << 32) - 1,
    65536,
    65535,
    126,
    125,
    127,
    0,
];

#[derive(Debug)]
pub struct Input {
    pub limit: usize,
    pub items: Vec<Item>,
}

#[derive(Debug)]
pub enum Item {
    Message {
        text: bool,
        body: Body,
        frags: Vec<Frag>,
    },
    Control(Control, Tweak),
    Raw {
        b0: u8,
        payload: Vec<u8>,
        tweak: Tweak,
    },
}

/// One fragment of a message.
#[derive(Debug)]
pub struct Frag {
    /// Its payload length (the last fragment takes what is left).
    pub take: u16,
    /// A control frame sent just before it.
    pub before: Option<(Control, Tweak)>,
    pub tweak: Tweak,
}

#[derive(Debug)]
pub enum Control {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(CloseBody),
}

#[derive(Debug)]
pub enum CloseBody {
    Empty,
    OneByte(u8),
    Code { code: u16, reason: Vec<u8> },
}

#[derive(Debug)]
pub enum Body {
    Bytes(Vec<u8>),
    Text(String),
    Corrupt { text: String, at: u16, bad: u8 },
    Repeat { pattern: Vec<u8>, len: Len },
}

#[derive(Debug, Clone, Copy)]
pub enum Len {
    Abs(u32),
    NearLimit(i8),
}

/// How a frame's header departs from the ordinary one.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tweak {
    pub enc: Enc,
    pub key: [u8; 4],
    pub fin_flip: bool,
    pub wrong_mask: bool,
    pub rsv: u8,
    pub opcode: Option<u8>,
    pub claim: Claim,
}

/// The length encoding: the shortest, or a longer one than needed (legal, if odd).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    #[default]
    Shortest,
    Wide16,
    Wide64,
}

/// The payload length the header claims; the bytes supplied are cut to it when it is shorter.
#[derive(Debug, Default, Clone, Copy)]
pub enum Claim {
    #[default]
    Exact,
    Fixed(u64),
    /// The effective read limit plus one.
    OverLimit,
    AtLimit,
    /// What the message in progress may still take, plus one.
    OverRemaining,
    AtRemaining,
    /// More than supplied by one plus this.
    Over(u16),
}

fn byte(u: &mut Unstructured<'_>) -> u8 {
    u.bytes(1).map_or(0, |b| b[0])
}

fn u16le(u: &mut Unstructured<'_>) -> u16 {
    u16::from_le_bytes([byte(u), byte(u)])
}

fn raw(u: &mut Unstructured<'_>, n: usize) -> Vec<u8> {
    let n = n.min(u.len());
    u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default()
}

/// Text of up to `n` characters, one per input byte.
fn text(u: &mut Unstructured<'_>, n: usize) -> String {
    raw(u, n)
        .into_iter()
        .map(|b| match b {
            0..=0x7F => char::from(b),
            _ => WIDE[usize::from(b & 0x7F) % WIDE.len()],
        })
        .collect()
}

impl Tweak {
    fn decode(u: &mut Unstructured<'_>) -> Self {
        let sel = byte(u);
        let enc = match sel & 3 {
            2 => Enc::Wide16,
            3 => Enc::Wide64,
            _ => Enc::Shortest,
        };
        let key = [byte(u), byte(u), byte(u), byte(u)];
        let mut t = Tweak {
            enc,
            key,
            ..Tweak::default()
        };
        if sel >= 0xE0 {
            let f = byte(u);
            t.fin_flip = f & 1 != 0;
            t.wrong_mask = f & 2 != 0;
            if f & 4 != 0 {
                t.rsv = (f >> 3) & 7;
            }
            if f & 0x40 != 0 {
                t.opcode = Some(byte(u) & 0x0F);
            }
            if f & 0x80 != 0 {
                t.claim = Claim::decode(u);
            }
        }
        t
    }
}

impl Claim {
    /// `c % 8`: 0-2 a length from `FIXED_CLAIMS` (index byte), 3 limit + 1, 4 the limit,
    /// 5 what the message may still take + 1, 6 exactly that, 7 (by the parity of a second
    /// byte) supplied + 1 + a `u16`, or any `u64`.
    fn decode(u: &mut Unstructured<'_>) -> Self {
        match byte(u) % 8 {
            0..=2 => Claim::Fixed(FIXED_CLAIMS[usize::from(byte(u)) % FIXED_CLAIMS.len()]),
            3 => Claim::OverLimit,
            4 => Claim::AtLimit,
            5 => Claim::OverRemaining,
            6 => Claim::AtRemaining,
            _ if byte(u) % 2 == 0 => Claim::Over(u16le(u)),
            _ => {
                let mut n = [0u8; 8];
                for b in &mut n {
                    *b = byte(u);
                }
                Claim::Fixed(u64::from_le_bytes(n))
            }
        }
    }
}

impl Body {
    fn decode(u: &mut Unstructured<'_>, is_text: bool) -> Self {
        match byte(u) % 4 {
            0 => {
                let n = u16le(u);
                Body::Bytes(raw(u, n.into()))
            }
            1 => {
                let n = u16le(u);
                Body::Text(text(u, n.into()))
            }
            2 => {
                let n = u16le(u);
                let text = text(u, n.into());
                Body::Corrupt {
                    text,
                    at: u16le(u),
                    bad: BAD_UTF8[usize::from(byte(u)) % BAD_UTF8.len()],
                }
            }
            _ => {
                let n = usize::from(byte(u));
                let pattern = if is_text {
                    text(u, n).into_bytes()
                } else {
                    raw(u, n)
                };
                let mode = byte(u);
                let len = if mode & 1 != 0 {
                    Len::NearLimit(byte(u) as i8)
                } else {
                    let high = if mode & 2 != 0 { 1 << 16 } else { 0 };
                    Len::Abs(u32::from(u16le(u)) + high)
                };
                Body::Repeat { pattern, len }
            }
        }
    }

    /// The body's bytes, under the read limit `limit` (for lengths relative to it).
    pub fn bytes(&self, limit: usize) -> Vec<u8> {
        match self {
            Body::Bytes(b) => b.clone(),
            Body::Text(t) => t.clone().into_bytes(),
            Body::Corrupt { text, at, bad } => {
                let mut b = text.clone().into_bytes();
                let at = usize::from(*at) % (b.len() + 1);
                b.insert(at, *bad);
                b
            }
            Body::Repeat { pattern, len } => {
                let len = match *len {
                    Len::Abs(n) => (n as usize).min(MAX_BODY),
                    Len::NearLimit(d) => (limit.min(MAX_BODY) as i64 + i64::from(d))
                        .clamp(0, MAX_BODY as i64)
                        as usize,
                };
                let pattern: &[u8] = if pattern.is_empty() { b"x" } else { pattern };
                pattern.iter().copied().cycle().take(len).collect()
            }
        }
    }
}

impl Control {
    /// `kind % 4`: 0, 1 ping, 2 pong, 3 close.
    fn decode(u: &mut Unstructured<'_>, kind: u8) -> Self {
        match kind % 4 {
            0 | 1 => {
                let n = byte(u);
                Control::Ping(raw(u, n.into()))
            }
            2 => {
                let n = byte(u);
                Control::Pong(raw(u, n.into()))
            }
            _ => Control::Close(match byte(u) % 4 {
                0 => CloseBody::Empty,
                1 => CloseBody::OneByte(byte(u)),
                k => {
                    let c = usize::from(byte(u)) % (CODES.len() + 1);
                    let code = match CODES.get(c) {
                        Some(&code) => code,
                        None => u16le(u),
                    };
                    let n = usize::from(byte(u));
                    let reason = if k == 2 {
                        text(u, n).into_bytes()
                    } else {
                        raw(u, n)
                    };
                    CloseBody::Code { code, reason }
                }
            }),
        }
    }
}

impl Item {
    fn decode(u: &mut Unstructured<'_>) -> Self {
        match byte(u) % 16 {
            0..=8 => {
                let flags = byte(u);
                let text = flags & 1 != 0;
                let body = Body::decode(u, text);
                let n = usize::from((flags >> 1) & 7) + 1;
                let frags = (0..n)
                    .map(|_| {
                        let take = u16le(u);
                        let sel = byte(u);
                        let before = (sel & 3 == 3).then(|| {
                            let c = Control::decode(u, sel >> 2);
                            (c, Tweak::decode(u))
                        });
                        Frag {
                            take,
                            before,
                            tweak: Tweak::decode(u),
                        }
                    })
                    .collect();
                Item::Message { text, body, frags }
            }
            t @ 9..=14 => {
                let c = Control::decode(u, if t >= 12 { 3 } else { t - 9 });
                Item::Control(c, Tweak::decode(u))
            }
            _ => {
                let b0 = byte(u);
                let n = u16le(u);
                let payload = raw(u, n.into());
                Item::Raw {
                    b0,
                    payload,
                    tweak: Tweak::decode(u),
                }
            }
        }
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let sel = usize::from(byte(u)) % (LIMITS.len() + 1);
        let limit = match LIMITS.get(sel) {
            Some(&limit) => limit,
            None => usize::from(u16le(u)),
        };
        let mut items = Vec::new();
        while !u.is_empty() && items.len() < MAX_ITEMS {
            items.push(Item::decode(u));
        }
        Ok(Input { limit, items })
    }
}
