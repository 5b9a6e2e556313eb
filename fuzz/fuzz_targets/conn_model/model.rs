//! The model: turns an input into the bytes the peer sends and what the `Conn` must do with
//! them, frame by frame, by the receive rules of RFC 6455 in the order the engine applies them.

use std::fmt::Write as _;

use isosock::Message;

use super::input::{Claim, CloseBody, Control, Enc, Input, Item, Tweak};
use super::Role;

/// The most frames one input sends.
pub const MAX_FRAMES: usize = 64;

/// The most payload bytes one input supplies, over all its frames.
pub const MAX_PAYLOAD: usize = 132 << 10;

/// The largest read limit that takes effect (a larger one means this).
const MAX_LIMIT: u64 = isize::MAX as u64;

/// One frame as it goes on the wire, before the model has looked at it.
#[derive(Debug)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: Vec<u8>,
    tweak: Tweak,
}

/// What the peer sends and what must come of it.
#[derive(Debug)]
pub struct Plan {
    /// The read limit the `Conn` was given.
    pub limit: usize,
    /// The bytes the peer writes (after the upgrade request, for a server).
    pub wire: Vec<u8>,
    /// Whether the peer then ends its stream; if not, it waits for the `Conn` to end.
    pub shutdown: bool,
    /// The messages `read` must return, in order, with the frame that completes each.
    pub messages: Vec<(usize, Message)>,
    /// The pongs the `Conn` must send, in order (one per ping).
    pub pongs: Vec<Vec<u8>>,
    pub end: End,
}

/// How the reading ends.
#[derive(Debug)]
pub struct End {
    /// The frame that decides it, described for failure messages.
    pub desc: String,
    pub how: Ending,
}

#[derive(Debug)]
pub enum Ending {
    /// The `Conn` fails the connection and sends a close frame with `code`.
    Fail {
        code: u16,
        why: &'static str,
        stage: Stage,
    },
    /// The peer's close frame: `read` ends with `Closed` and the `Conn` echoes `echo`.
    Closed {
        code: u16,
        reason: String,
        echo: Vec<u8>,
    },
    /// The stream ends without a close frame: `ConnectionLost`.
    Lost(&'static str),
}

/// When the `Conn` has what it needs to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The frame header alone; the peer sends no payload.
    Header,
    /// This byte of the text message (0-based), which makes it invalid UTF-8; the peer sends
    /// nothing after it.
    Utf8(usize),
    /// The whole frame.
    Frame,
}

/// The message being received.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
    /// `data[..valid]` is valid UTF-8 ending on a character boundary (text only).
    valid: usize,
}

impl Partial {
    /// Checks the text received so far: `Err(i)` if byte `i` makes it invalid whatever follows.
    fn check_utf8(&mut self) -> Result<(), usize> {
        match std::str::from_utf8(&self.data[self.valid..]) {
            Ok(_) => self.valid = self.data.len(),
            Err(e) if e.error_len().is_none() => self.valid += e.valid_up_to(),
            Err(e) => {
                let start = self.valid + e.valid_up_to();
                // The shortest prefix that is already invalid: its last byte is the culprit.
                let end = (start + 1..=self.data.len())
                    .find(|&n| {
                        std::str::from_utf8(&self.data[start..n])
                            .is_err_and(|e| e.error_len().is_some())
                    })
                    .unwrap_or(self.data.len());
                return Err(end - 1);
            }
        }
        Ok(())
    }

    fn complete(&self) -> bool {
        self.valid == self.data.len()
    }
}

/// Whether a peer may send this close code (RFC 6455 7.4.1-7.4.2, IANA registry).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The input as frames, within `MAX_FRAMES` and `MAX_PAYLOAD`.
fn frames(input: &Input) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut budget = MAX_PAYLOAD;
    let mut push = |out: &mut Vec<Frame>, fin, rsv, opcode, mut payload: Vec<u8>, tweak: Tweak| {
        payload.truncate(budget);
        budget -= payload.len();
        out.push(Frame {
            fin: fin != tweak.fin_flip,
            rsv: if tweak.rsv != 0 { tweak.rsv } else { rsv },
            opcode: tweak.opcode.unwrap_or(opcode),
            payload,
            tweak,
        });
    };
    let control = |c: &Control| -> (u8, Vec<u8>) {
        match c {
            Control::Ping(p) => (0x9, p.clone()),
            Control::Pong(p) => (0xA, p.clone()),
            Control::Close(CloseBody::Empty) => (0x8, Vec::new()),
            Control::Close(CloseBody::OneByte(b)) => (0x8, vec![*b]),
            Control::Close(CloseBody::Code { code, reason }) => {
                let mut p = code.to_be_bytes().to_vec();
                p.extend_from_slice(reason);
                (0x8, p)
            }
        }
    };
    for item in &input.items {
        match item {
            Item::Message { text, body, frags } => {
                let bytes = body.bytes(input.limit);
                let mut rest = &bytes[..];
                for (k, frag) in frags.iter().enumerate() {
                    if let Some((c, tweak)) = &frag.before {
                        let (op, p) = control(c);
                        push(&mut out, true, 0, op, p, *tweak);
                    }
                    let last = k + 1 == frags.len();
                    let take = if last {
                        rest.len()
                    } else {
                        usize::from(frag.take).min(rest.len())
                    };
                    let (piece, tail) = rest.split_at(take);
                    rest = tail;
                    let opcode = match (k, text) {
                        (0, true) => 0x1,
                        (0, false) => 0x2,
                        _ => 0x0,
                    };
                    push(&mut out, last, 0, opcode, piece.to_vec(), frag.tweak);
                }
            }
            Item::Control(c, tweak) => {
                let (op, p) = control(c);
                push(&mut out, true, 0, op, p, *tweak);
            }
            Item::Raw { b0, payload, tweak } => push(
                &mut out,
                b0 & 0x80 != 0,
                (b0 >> 4) & 7,
                b0 & 0x0F,
                payload.clone(),
                *tweak,
            ),
        }
    }
    out.truncate(MAX_FRAMES);
    out
}

fn opcode_name(op: u8) -> String {
    match op {
        0x0 => "continuation".into(),
        0x1 => "text".into(),
        0x2 => "binary".into(),
        0x8 => "close".into(),
        0x9 => "ping".into(),
        0xA => "pong".into(),
        _ => format!("reserved opcode {op:#x}"),
    }
}

/// Appends the frame header the peer sends.
fn write_header(out: &mut Vec<u8>, f: &Frame, masked: bool, claimed: u64) {
    out.push(u8::from(f.fin) << 7 | (f.rsv & 7) << 4 | (f.opcode & 0x0F));
    let m = if masked { 0x80 } else { 0 };
    let enc = match f.tweak.enc {
        _ if claimed > 0xFFFF => Enc::Wide64,
        Enc::Shortest if claimed > 125 => Enc::Wide16,
        e => e,
    };
    match enc {
        Enc::Shortest => out.push(m | claimed as u8),
        Enc::Wide16 => {
            out.push(m | 126);
            out.extend_from_slice(&(claimed as u16).to_be_bytes());
        }
        Enc::Wide64 => {
            out.push(m | 127);
            out.extend_from_slice(&claimed.to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&f.tweak.key);
    }
}

/// Appends `payload` as the peer sends it (masked when `mask` is given).
fn write_payload(out: &mut Vec<u8>, payload: &[u8], mask: Option<[u8; 4]>) {
    match mask {
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
        None => out.extend_from_slice(payload),
    }
}

/// Works out the plan for a `Conn` of `role` reading `input`.
pub fn plan(role: Role, input: &Input) -> Plan {
    let limit = (input.limit as u64).min(MAX_LIMIT);
    let frames = frames(input);
    let mut plan = Plan {
        limit: input.limit,
        wire: Vec::new(),
        shutdown: false,
        messages: Vec::new(),
        pongs: Vec::new(),
        end: End {
            desc: "the end of the stream".into(),
            how: Ending::Lost("the peer ended its stream after its last frame"),
        },
    };
    let mut partial: Option<Partial> = None;
    for (i, f) in frames.iter().enumerate() {
        let in_progress = partial.as_ref().map_or(0, |p| p.data.len() as u64);
        let supplied = f.payload.len() as u64;
        let claimed = match f.tweak.claim {
            Claim::Exact => supplied,
            Claim::Fixed(n) => n,
            Claim::OverLimit => limit + 1,
            Claim::AtLimit => limit,
            Claim::OverRemaining => limit - in_progress + 1,
            Claim::AtRemaining => limit - in_progress,
            Claim::Over(n) => supplied + 1 + u64::from(n),
        };
        let payload = &f.payload[..supplied.min(claimed) as usize];
        let masked = (role == Role::Server) != f.tweak.wrong_mask;
        let mut desc = format!(
            "frame {i}: {}{}, claims {claimed} bytes, {} supplied",
            opcode_name(f.opcode),
            if f.fin { "" } else { " (not fin)" },
            payload.len()
        );
        if f.rsv != 0 {
            let _ = write!(desc, ", RSV bits {:#b}", f.rsv);
        }
        if masked != (role == Role::Server) {
            desc.push_str(if masked { ", masked" } else { ", unmasked" });
        }
        let _ = write!(
            desc,
            "; {} bytes of the message before it; read limit {}",
            in_progress, input.limit
        );
        let fail = |code, why, stage| Ending::Fail { code, why, stage };
        write_header(&mut plan.wire, f, masked, claimed);
        let control = f.opcode & 0x8 != 0;
        // The header, in `parse_header`'s order.
        let header = if f.rsv != 0 {
            Some(fail(1002, "reserved bits set", Stage::Header))
        } else if !matches!(f.opcode, 0x0..=0x2 | 0x8..=0xA) {
            Some(fail(1002, "a reserved opcode", Stage::Header))
        } else if masked != (role == Role::Server) {
            Some(fail(1002, "masking wrong for the role", Stage::Header))
        } else if claimed >> 63 != 0 {
            Some(fail(
                1002,
                "a 64-bit length with its top bit set",
                Stage::Header,
            ))
        } else if control && !f.fin {
            Some(fail(1002, "a fragmented control frame", Stage::Header))
        } else if control && claimed > 125 {
            Some(fail(1002, "a control frame over 125 bytes", Stage::Header))
        } else if !control && claimed > limit {
            Some(fail(1009, "a frame over the read limit", Stage::Header))
        } else {
            // Then the sequence (`check_sequence`).
            match (f.opcode, &partial) {
                (0x1 | 0x2, Some(_)) => Some(fail(
                    1002,
                    "a new message while a fragmented one is open",
                    Stage::Header,
                )),
                (0x0, None) => Some(fail(
                    1002,
                    "a continuation with no message to continue",
                    Stage::Header,
                )),
                (0x0, Some(_)) if claimed > limit - in_progress => Some(fail(
                    1009,
                    "a continuation that takes the message over the read limit",
                    Stage::Header,
                )),
                _ => None,
            }
        };
        let mask = masked.then_some(f.tweak.key);
        if let Some(how) = header {
            plan.end = End { desc, how };
            return plan;
        }
        // The payload. A data frame joins the message; text is checked as it arrives.
        if !control {
            let p = partial.get_or_insert_with(|| Partial {
                text: f.opcode == 0x1,
                data: Vec::new(),
                valid: 0,
            });
            let before = p.data.len();
            p.data.extend_from_slice(payload);
            if p.text {
                if let Err(at) = p.check_utf8() {
                    write_payload(&mut plan.wire, &payload[..=at - before], mask);
                    plan.end = End {
                        desc,
                        how: fail(1007, "invalid UTF-8", Stage::Utf8(at)),
                    };
                    return plan;
                }
            }
        }
        write_payload(&mut plan.wire, payload, mask);
        if (payload.len() as u64) < claimed {
            plan.shutdown = true;
            plan.end = End {
                desc,
                how: Ending::Lost("the stream ended inside the frame's payload"),
            };
            return plan;
        }
        let how = match f.opcode {
            0x0..=0x2 => {
                if !f.fin {
                    continue;
                }
                let Some(p) = partial.take() else {
                    continue;
                };
                if p.text && !p.complete() {
                    Some(fail(
                        1007,
                        "a text message ending inside a character",
                        Stage::Frame,
                    ))
                } else {
                    let msg = if p.text {
                        Message::Text(String::from_utf8(p.data).expect("checked as valid"))
                    } else {
                        Message::Binary(p.data.into())
                    };
                    plan.messages.push((i, msg));
                    None
                }
            }
            0x9 => {
                plan.pongs.push(payload.to_vec());
                None
            }
            0xA => None,
            _ => Some(match payload {
                [] => Ending::Closed {
                    code: 1005,
                    reason: String::new(),
                    echo: Vec::new(),
                },
                [_] => fail(1002, "a one-byte close payload", Stage::Frame),
                [hi, lo, reason @ ..] => {
                    let code = u16::from_be_bytes([*hi, *lo]);
                    if !valid_close_code(code) {
                        fail(1002, "a close code a peer may not send", Stage::Frame)
                    } else {
                        match std::str::from_utf8(reason) {
                            Ok(r) => Ending::Closed {
                                code,
                                reason: r.to_owned(),
                                echo: payload.to_vec(),
                            },
                            Err(_) => fail(1007, "a close reason not UTF-8", Stage::Frame),
                        }
                    }
                }
            }),
        };
        if let Some(how) = how {
            plan.end = End { desc, how };
            return plan;
        }
    }
    plan.shutdown = true;
    plan
}
