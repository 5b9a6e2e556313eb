//! What the load generator sends: the matrix's byte pattern, or, for the compression
//! benchmark, JSON-like text and incompressible random bytes.
//!
//! JSON and random payloads are pools of [`POOL`] distinct messages of exactly the requested
//! size, made from a fixed seed (every run and every implementation sends the same bytes).
//! Connection `i` sends message `i`, `i + 1`, ... of the pool in turn, so consecutive messages
//! on a connection share their keys and shape but not their values, as a feed of JSON events
//! would; with context takeover that is what the kept window can exploit, and no message is
//! a verbatim repeat of the one before it.

use bytes::Bytes;

use crate::Result;

/// Distinct messages per pool: 64 x 16 KiB (1 MiB) is more than a 32 KiB DEFLATE window holds.
pub const POOL: usize = 64;

/// The kind of message the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Binary, bytes `i % 251` (the matrix's payload; highly repetitive, never compared).
    Pattern,
    /// Text: a JSON array of event records (ids, names, timestamps, numbers, short texts).
    Json,
    /// Binary: uniformly random bytes, which DEFLATE cannot shrink.
    Random,
}

impl Payload {
    /// The name used on the command line and in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Payload::Pattern => "pattern",
            Payload::Json => "json",
            Payload::Random => "random",
        }
    }

    /// Parses a name from [`Payload::name`].
    pub fn parse(s: &str) -> Result<Payload> {
        match s {
            "pattern" => Ok(Payload::Pattern),
            "json" => Ok(Payload::Json),
            "random" => Ok(Payload::Random),
            _ => Err(format!("unknown payload {s:?} (pattern, json or random)").into()),
        }
    }

    /// Whether the messages go as text (else binary).
    pub fn text(self) -> bool {
        self == Payload::Json
    }

    /// Whether echoes are compared byte for byte (the pattern's only by length, as the
    /// matrix always did).
    pub fn compared(self) -> bool {
        self != Payload::Pattern
    }

    /// The messages of `size` bytes a connection cycles through: one for the pattern,
    /// [`POOL`] distinct ones otherwise.
    pub fn messages(self, size: usize) -> Vec<Bytes> {
        match self {
            Payload::Pattern => vec![Bytes::from(
                (0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
            )],
            Payload::Json => (0..POOL as u64)
                .map(|i| Bytes::from(json(size, &mut Rng::new(i + 1))))
                .collect(),
            Payload::Random => (0..POOL as u64)
                .map(|i| {
                    let mut rng = Rng::new(0x5EED_0000 + i);
                    Bytes::from((0..size).map(|_| rng.next() as u8).collect::<Vec<u8>>())
                })
                .collect(),
        }
    }
}

/// xorshift64*: a fixed, dependency-free sequence (quality is not a concern here).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.below(words.len() as u64) as usize]
    }
}

const WORDS: [&str; 48] = [
    "the",
    "order",
    "was",
    "shipped",
    "from",
    "warehouse",
    "north",
    "south",
    "east",
    "west",
    "customer",
    "asked",
    "about",
    "delivery",
    "window",
    "payment",
    "received",
    "pending",
    "refund",
    "issued",
    "item",
    "out",
    "of",
    "stock",
    "back",
    "soon",
    "please",
    "confirm",
    "address",
    "update",
    "priority",
    "standard",
    "express",
    "tracking",
    "number",
    "attached",
    "thanks",
    "for",
    "your",
    "patience",
    "we",
    "will",
    "notify",
    "you",
    "when",
    "ready",
    "today",
    "tomorrow",
];
const NAMES: [&str; 12] = [
    "ada", "grace", "linus", "barbara", "ken", "dennis", "margaret", "alan", "edsger", "frances",
    "john", "radia",
];
const KINDS: [&str; 6] = [
    "order.created",
    "order.updated",
    "payment.captured",
    "shipment.sent",
    "message.posted",
    "user.seen",
];
const TAGS: [&str; 8] = [
    "alpha", "beta", "gamma", "urgent", "vip", "retry", "eu", "us",
];

/// One event record, as a JSON object.
fn record(rng: &mut Rng) -> String {
    let name = rng.pick(&NAMES);
    let words: Vec<&str> = (0..4 + rng.below(9)).map(|_| rng.pick(&WORDS)).collect();
    let tags: Vec<String> = (0..1 + rng.below(3))
        .map(|_| format!("\"{}\"", rng.pick(&TAGS)))
        .collect();
    format!(
        "{{\"id\":{},\"type\":\"{}\",\"user\":{{\"id\":{},\"name\":\"{name}\",\
         \"email\":\"{name}{}@example.com\"}},\"ts\":\"2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\
         \"amount\":{}.{:02},\"active\":{},\"tags\":[{}],\"text\":\"{}\"}}",
        1_000_000 + rng.below(9_000_000),
        rng.pick(&KINDS),
        10_000 + rng.below(90_000),
        rng.below(1000),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.below(1000),
        rng.below(10_000),
        rng.below(100),
        rng.below(2) == 1,
        tags.join(","),
        words.join(" "),
    )
}

/// A JSON array of records of exactly `size` bytes (at least 16): whole records while they
/// fit, then one `{"pad":"..."}` of words filling the rest.
fn json(size: usize, rng: &mut Rng) -> Vec<u8> {
    let size = size.max(16);
    let mut out = String::from("[");
    loop {
        let r = record(rng);
        // Room for this record, a comma, the pad object's 11 bytes and the closing bracket.
        if out.len() + r.len() + 1 + 11 + 1 > size {
            break;
        }
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&r);
    }
    let open = if out.len() > 1 {
        ",{\"pad\":\""
    } else {
        "{\"pad\":\""
    };
    out.push_str(open);
    let end = size - 3; // `"}]`
    while out.len() < end {
        let w = rng.pick(&WORDS);
        let room = end - out.len();
        if w.len() < room {
            out.push_str(w);
            out.push(' ');
        } else {
            out.push_str(&w[..room.min(w.len())]);
            out.push_str(&"x".repeat(room.saturating_sub(w.len())));
        }
    }
    out.push_str("\"}]");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_have_the_exact_size_and_distinct_messages() {
        for size in [16, 100, 1024, 16 << 10] {
            for p in [Payload::Json, Payload::Random] {
                let msgs = p.messages(size);
                assert_eq!(msgs.len(), POOL);
                assert!(msgs.iter().all(|m| m.len() == size), "{p:?} {size}");
                assert_ne!(msgs[0], msgs[1]);
            }
        }
        assert_eq!(
            Payload::Pattern.messages(5)[..],
            [Bytes::from(vec![0, 1, 2, 3, 4])]
        );
    }

    #[test]
    fn json_messages_parse_and_are_the_same_every_time() {
        for m in Payload::Json.messages(1024).iter().take(8) {
            let v: serde_json::Value = serde_json::from_slice(m).expect("valid JSON");
            assert!(v.is_array());
        }
        assert_eq!(Payload::Json.messages(1024), Payload::Json.messages(1024));
    }
}
