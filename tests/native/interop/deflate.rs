//! permessage-deflate (RFC 7692) with Python `websockets` and Node `ws`: isosock as client and
//! as server, with and without context takeover, and offers declined either way; each row checks
//! what both ends agreed and that a mix of messages round-trips through the peer's echo.

use std::time::Duration;

use isosock::{
    accept, dial, AcceptOptions, Compression, Conn, DialOptions, Message, MessageType, StatusCode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::interop::{peer_command, PeerServer};
use crate::util::TEST_LIMIT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Python,
    Node,
}

impl Peer {
    fn kind(self) -> &'static str {
        match self {
            Peer::Python => "python",
            Peer::Node => "node",
        }
    }

    fn server_script(self) -> &'static str {
        match self {
            Peer::Python => "py_echo_server.py",
            Peer::Node => "node_echo_server.mjs",
        }
    }

    fn client_script(self) -> &'static str {
        match self {
            Peer::Python => "py_client.py",
            Peer::Node => "node_client.mjs",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// isosock dials the peer's echo server.
    Dials,
    /// The peer's echo client (`--echo`) connects to isosock's server.
    Accepts,
}

/// One connection between isosock and a peer, and what both ends must agree.
#[derive(Debug)]
struct Case {
    side: Side,
    ours: Compression,
    /// isosock's compression threshold; `None`: the mode's default (128 or 512 bytes).
    threshold: Option<usize>,
    /// The peer script's `--deflate` mode: `context`, `nocontext`, `window9` (9-bit windows
    /// both ways), `window8` (isosock's window limited to 8 bits, the peer's to 9) or `off`.
    /// Every mode but `off` offers (client) or accepts (server).
    theirs: &'static str,
    /// isosock's `extensions()` (and the `Response`'s, when dialing).
    agreed: &'static str,
    /// The peer's own account of what it applies (its `!extensions` answer): whether its
    /// compressor (`out`) and decompressor (`in`) keep their window between messages, and the
    /// window sizes.
    peer_agreed: &'static str,
}

use Compression::{ContextTakeover as Ctx, Disabled, NoContextTakeover as NoCtx};
use Side::{Accepts, Dials};

const PY_BOTH_NO_CONTEXT: &str = "permessage-deflate; server_no_context_takeover; \
     client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12";
const WS_BOTH_NO_CONTEXT: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// isosock dialing websockets' server, which limits both windows to 12 bits by default.
const PYTHON: &[Case] = &[
    Case {
        side: Dials,
        ours: Ctx,
        threshold: Some(0),
        theirs: "context",
        agreed: "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        peer_agreed: "permessage-deflate out=context/12 in=context/12",
    },
    Case {
        side: Dials,
        ours: NoCtx,
        threshold: None,
        theirs: "context",
        agreed: PY_BOTH_NO_CONTEXT,
        peer_agreed: "permessage-deflate out=nocontext/12 in=nocontext/12",
    },
    Case {
        side: Dials,
        ours: Ctx,
        threshold: None,
        theirs: "nocontext",
        agreed: PY_BOTH_NO_CONTEXT,
        peer_agreed: "permessage-deflate out=nocontext/12 in=nocontext/12",
    },
    Case {
        side: Dials,
        ours: NoCtx,
        threshold: Some(0),
        theirs: "nocontext",
        agreed: PY_BOTH_NO_CONTEXT,
        peer_agreed: "permessage-deflate out=nocontext/12 in=nocontext/12",
    },
    Case {
        side: Dials,
        ours: Ctx,
        threshold: None,
        theirs: "window9",
        agreed: "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
        peer_agreed: "permessage-deflate out=context/9 in=context/9",
    },
    // isosock's window is limited to 8 bits, with which it cannot compress: it sends every
    // message uncompressed and still inflates the peer's.
    Case {
        side: Dials,
        ours: Ctx,
        threshold: Some(0),
        theirs: "window8",
        agreed: "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8",
        peer_agreed: "permessage-deflate out=context/9 in=context/8",
    },
    // The server accepts no extension: isosock's offer goes unanswered.
    Case {
        side: Dials,
        ours: Ctx,
        threshold: Some(0),
        theirs: "off",
        agreed: "",
        peer_agreed: "none",
    },
    Case {
        side: Dials,
        ours: Disabled,
        threshold: None,
        theirs: "context",
        agreed: "",
        peer_agreed: "none",
    },
];

/// isosock dialing ws's server, which keeps 15-bit windows unless told otherwise and
/// compresses every message (the scripts set its threshold to 0).
const NODE: &[Case] = &[
    Case {
        side: Dials,
        ours: Ctx,
        threshold: Some(0),
        theirs: "context",
        agreed: "permessage-deflate",
        peer_agreed: "permessage-deflate out=context/15 in=context/15",
    },
    Case {
        side: Dials,
        ours: NoCtx,
        threshold: None,
        theirs: "context",
        agreed: WS_BOTH_NO_CONTEXT,
        peer_agreed: "permessage-deflate out=nocontext/15 in=nocontext/15",
    },
    Case {
        side: Dials,
        ours: Ctx,
        threshold: None,
        theirs: "nocontext",
        agreed: WS_BOTH_NO_CONTEXT,
        peer_agreed: "permessage-deflate out=nocontext/15 in=nocontext/15",
    },
    Case {
        side: Dials,
        ours: NoCtx,
        threshold: Some(0),
        theirs: "nocontext",
        agreed: WS_BOTH_NO_CONTEXT,
        peer_agreed: "permessage-deflate out=nocontext/15 in=nocontext/15",
    },
    Case {
        side: Dials,
        ours: Ctx,
        threshold: None,
        theirs: "window9",
        agreed: "permessage-deflate; client_max_window_bits=9; server_max_window_bits=9",
        peer_agreed: "permessage-deflate out=context/9 in=context/9",
    },
    Case {
        side: Dials,
        ours: Ctx,
        threshold: Some(0),
        theirs: "window8",
        agreed: "permessage-deflate; client_max_window_bits=8; server_max_window_bits=9",
        peer_agreed: "permessage-deflate out=context/9 in=context/8",
    },
    Case {
        side: Dials,
        ours: Ctx,
        threshold: Some(0),
        theirs: "off",
        agreed: "",
        peer_agreed: "none",
    },
    Case {
        side: Dials,
        ours: Disabled,
        threshold: None,
        theirs: "context",
        agreed: "",
        peer_agreed: "none",
    },
];

/// isosock's server with each peer's client (`--echo`), which offers nothing but what
/// `--deflate` adds: isosock's answers do not depend on who offers, so one list serves both
/// peers.
const ACCEPTS: &[Case] = &[
    Case {
        side: Accepts,
        ours: Ctx,
        threshold: Some(0),
        theirs: "context",
        agreed: "permessage-deflate",
        peer_agreed: "permessage-deflate out=context/15 in=context/15",
    },
    Case {
        side: Accepts,
        ours: NoCtx,
        threshold: None,
        theirs: "context",
        agreed: WS_BOTH_NO_CONTEXT,
        peer_agreed: "permessage-deflate out=nocontext/15 in=nocontext/15",
    },
    Case {
        side: Accepts,
        ours: Ctx,
        threshold: None,
        theirs: "nocontext",
        agreed: WS_BOTH_NO_CONTEXT,
        peer_agreed: "permessage-deflate out=nocontext/15 in=nocontext/15",
    },
    Case {
        side: Accepts,
        ours: NoCtx,
        threshold: Some(0),
        theirs: "nocontext",
        agreed: WS_BOTH_NO_CONTEXT,
        peer_agreed: "permessage-deflate out=nocontext/15 in=nocontext/15",
    },
    Case {
        side: Accepts,
        ours: Ctx,
        threshold: None,
        theirs: "window9",
        agreed: "permessage-deflate; server_max_window_bits=9",
        peer_agreed: "permessage-deflate out=context/9 in=context/9",
    },
    Case {
        side: Accepts,
        ours: Ctx,
        threshold: Some(0),
        theirs: "window8",
        agreed: "permessage-deflate; server_max_window_bits=8",
        peer_agreed: "permessage-deflate out=context/9 in=context/8",
    },
    // The client offers; isosock declines and both go uncompressed.
    Case {
        side: Accepts,
        ours: Disabled,
        threshold: None,
        theirs: "context",
        agreed: "",
        peer_agreed: "none",
    },
    Case {
        side: Accepts,
        ours: Ctx,
        threshold: Some(0),
        theirs: "off",
        agreed: "",
        peer_agreed: "none",
    },
];

#[tokio::test]
async fn permessage_deflate_round_trips_with_python_websockets() {
    run_all(Peer::Python, PYTHON).await;
    run_all(Peer::Python, ACCEPTS).await;
}

#[tokio::test]
async fn permessage_deflate_round_trips_with_node_ws() {
    run_all(Peer::Node, NODE).await;
    run_all(Peer::Node, ACCEPTS).await;
}

/// Runs each row under the suite's time limit, naming the row that exceeds it.
async fn run_all(peer: Peer, cases: &[Case]) {
    for case in cases {
        if tokio::time::timeout(TEST_LIMIT, run(peer, case))
            .await
            .is_err()
        {
            panic!("{} {case:?}: exceeded the time limit", peer.kind());
        }
    }
}

impl Case {
    /// The threshold isosock compresses from.
    fn threshold(&self) -> usize {
        self.threshold
            .unwrap_or_else(|| self.ours.default_threshold())
    }

    /// The agreement's parameter names for isosock's side (`client` or `server`).
    fn ours(&self) -> &'static str {
        match self.side {
            Dials => "client",
            Accepts => "server",
        }
    }

    /// Whether isosock's compressor keeps its window between messages: context takeover was
    /// asked for and the agreement does not drop it for isosock's side.
    fn ours_keeps_context(&self) -> bool {
        let dropped = format!("{}_no_context_takeover", self.ours());
        self.ours == Ctx && !self.agreed.contains(&dropped)
    }

    /// Whether isosock can compress at all: the agreement does not limit its window to 8
    /// bits, which DEFLATE implementations cannot compress with.
    fn ours_compresses(&self) -> bool {
        !self
            .agreed
            .contains(&format!("{}_max_window_bits=8", self.ours()))
    }
}

async fn run(peer: Peer, case: &Case) {
    let what = format!("{} {case:?}", peer.kind());
    match case.side {
        Dials => {
            let mut server = PeerServer::start(
                peer.kind(),
                peer.server_script(),
                &["--deflate", case.theirs],
            )
            .await;
            let mut opts = DialOptions::new()
                .subprotocols(["echo.v1"])
                .compression(case.ours)
                .read_limit(4 << 20);
            if let Some(t) = case.threshold {
                opts = opts.compression_threshold(t);
            }
            let url = format!("ws://127.0.0.1:{}/", server.port);
            let (conn, resp) = dial(&url, &opts)
                .await
                .unwrap_or_else(|e| panic!("{what}: dialing: {e:?}"));
            assert_eq!(resp.extensions(), case.agreed, "{what}: the response");
            assert_eq!(conn.extensions(), case.agreed, "{what}: the connection");
            exercise(&conn, case, &what).await;
            if let Err(e) = conn.close(StatusCode::NORMAL_CLOSURE, "done").await {
                panic!("{what}: the close handshake: {e:?}");
            }
            assert_eq!(server.next_close().await, "closed 1000 done", "{what}");
        }
        Accepts => {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("ws://{}/", listener.local_addr().expect("addr"));
            let mut client = peer_command(peer.kind(), peer.client_script())
                .arg(&url)
                .args(["--echo", "--deflate", case.theirs])
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start the {} client: {e}", peer.kind()));
            let mut stdout = client.stdout.take().expect("piped stdout");
            let printed = tokio::spawn(async move {
                let mut s = String::new();
                let _ = stdout.read_to_string(&mut s).await;
                s
            });
            let tcp = tokio::select! {
                accepted = listener.accept() => accepted.expect("accept").0,
                status = client.wait() => panic!("{what}: the client exited first: {status:?}"),
            };
            let mut opts = AcceptOptions::new()
                .compression(case.ours)
                .read_limit(4 << 20);
            if let Some(t) = case.threshold {
                opts = opts.compression_threshold(t);
            }
            let conn = accept(tcp, &opts)
                .await
                .unwrap_or_else(|e| panic!("{what}: accepting: {e:?}"));
            assert_eq!(conn.extensions(), case.agreed, "{what}: the connection");
            exercise(&conn, case, &what).await;
            if let Err(e) = conn.close(StatusCode::NORMAL_CLOSURE, "done").await {
                panic!("{what}: the close handshake: {e:?}");
            }
            let status = tokio::time::timeout(Duration::from_secs(20), client.wait())
                .await
                .unwrap_or_else(|_| panic!("{what}: the client still runs 20 s after the close"))
                .expect("peer client status");
            let printed = printed.await.expect("stdout reader");
            assert!(status.success(), "{what}: the client failed: {printed}");
            assert!(
                printed.contains("closed 1000 done"),
                "{what}: the client saw another close: {printed}"
            );
        }
    }
}

/// One message isosock sends and expects back.
struct Part {
    ty: MessageType,
    data: Vec<u8>,
    /// Written through `Conn::writer` in uneven pieces instead of as one message.
    streamed: bool,
    /// DEFLATE shrinks it (not random bytes).
    compressible: bool,
}

impl Part {
    fn text(s: String) -> Part {
        Part {
            ty: MessageType::Text,
            data: s.into_bytes(),
            streamed: false,
            compressible: true,
        }
    }

    fn binary(data: Vec<u8>, compressible: bool) -> Part {
        Part {
            ty: MessageType::Binary,
            data,
            streamed: false,
            compressible,
        }
    }

    fn streamed(mut self) -> Part {
        self.streamed = true;
        self
    }

    fn message(&self) -> Message {
        match self.ty {
            MessageType::Text => {
                Message::text(String::from_utf8(self.data.clone()).expect("utf-8"))
            }
            MessageType::Binary => Message::binary(self.data.clone()),
        }
    }

    /// Whether isosock compresses it whatever DEFLATE makes of it: it reaches the threshold,
    /// and a whole message (which may go uncompressed when that is shorter, without context
    /// takeover) shrinks.
    fn surely_compressed(&self, threshold: usize) -> bool {
        self.data.len() >= threshold.max(1) && (self.compressible || self.streamed)
    }
}

/// A deterministic xorshift64* stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }

    fn word(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

/// About `len` bytes of JSON records, each carrying one of 48 random 700-byte tokens: it
/// compresses, but mostly through repeats further back than a 9- or 12-bit window reaches, so
/// a compressor that ignored the agreed window would produce what the peer cannot inflate.
fn json(rng: &mut Rng, len: usize) -> String {
    let pool: Vec<String> = (0..48).map(|_| rng.word(700)).collect();
    let mut out = String::from("[");
    let mut id = 0;
    while out.len() < len {
        let blob = &pool[(rng.next() % pool.len() as u64) as usize];
        out.push_str(&format!(
            r#"{{"id":{id},"user":"user-{}","tags":["alpha","beta"],"blob":"{blob}"}},"#,
            id % 97
        ));
        id += 1;
    }
    out.push_str("{}]");
    out
}

/// The `i`th message of a burst of small similar JSON messages (about 170 bytes, above the
/// context-takeover default threshold of 128), which share nearly everything with the one
/// before.
fn similar(i: usize) -> String {
    format!(
        r#"{{"type":"chat","seq":{i},"room":"lobby","user":"ada","text":"message {i} of a burst that repeats the same words, so only the numbers change","at":"2025-01-01T00:{:02}:00Z"}}"#,
        i % 60
    )
}

/// What the peer counted of its permessage-deflate traffic (its `!stats` answer).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Stats {
    /// Compressed messages received, their bytes on the wire, and inflated.
    in_msgs: u64,
    in_wire: u64,
    in_bytes: u64,
    /// Messages sent compressed.
    out_msgs: u64,
}

impl Stats {
    fn parse(s: &str) -> Stats {
        let mut st = Stats::default();
        for field in s.split_whitespace() {
            let (k, v) = field.split_once('=').expect("key=value");
            let v: u64 = v.parse().expect("a count");
            match k {
                "in_msgs" => st.in_msgs = v,
                "in_wire" => st.in_wire = v,
                "in_bytes" => st.in_bytes = v,
                "out_msgs" => st.out_msgs = v,
                _ => panic!("unknown stat {k:?} in {s:?}"),
            }
        }
        st
    }

    fn since(self, earlier: Stats) -> Stats {
        Stats {
            in_msgs: self.in_msgs - earlier.in_msgs,
            in_wire: self.in_wire - earlier.in_wire,
            in_bytes: self.in_bytes - earlier.in_bytes,
            out_msgs: self.out_msgs - earlier.out_msgs,
        }
    }
}

/// Sends a command to the peer and returns its text answer.
async fn ask(conn: &Conn, command: &str, what: &str) -> String {
    if let Err(e) = conn.write(command).await {
        panic!("{what}: writing {command}: {e:?}");
    }
    match conn.read().await {
        Ok(Message::Text(t)) => t,
        Ok(other) => panic!(
            "{what}: {command}: a binary answer of {} bytes",
            other.len()
        ),
        Err(e) => panic!("{what}: reading the answer to {command}: {e:?}"),
    }
}

async fn stats(conn: &Conn, what: &str) -> Stats {
    Stats::parse(&ask(conn, "!stats", what).await)
}

/// Sends `part` (whole or streamed) and checks that the echo is the same message.
async fn round_trip(conn: &Conn, part: &Part, what: &str) {
    if part.streamed {
        let fail = |e: &dyn std::fmt::Debug| -> ! {
            panic!(
                "{what}: streaming {:?} of {} bytes: {e:?}",
                part.ty,
                part.data.len()
            )
        };
        let mut w = conn.writer(part.ty).await.unwrap_or_else(|e| fail(&e));
        // Uneven pieces: some end inside a UTF-8 sequence, one is larger than a frame.
        let mut rest = &part.data[..];
        for size in [1, 7, 1000, 5000, 20_000, 70_000, 3].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, more) = rest.split_at((*size).min(rest.len()));
            w.write_all(piece).await.unwrap_or_else(|e| fail(&e));
            rest = more;
        }
        w.shutdown().await.unwrap_or_else(|e| fail(&e));
    } else if let Err(e) = conn.write(part.message()).await {
        panic!(
            "{what}: writing {:?} of {} bytes: {e:?}",
            part.ty,
            part.data.len()
        );
    }
    let got = conn.read().await.unwrap_or_else(|e| {
        panic!(
            "{what}: reading the echo of {:?} of {} bytes (streamed: {}): {e:?}",
            part.ty,
            part.data.len(),
            part.streamed
        )
    });
    let got_bytes: &[u8] = match &got {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b,
    };
    if got.message_type() != part.ty || got_bytes != part.data {
        let at = got_bytes
            .iter()
            .zip(&part.data)
            .position(|(a, b)| a != b)
            .unwrap_or(got_bytes.len().min(part.data.len()));
        panic!(
            "{what}: sent {:?} of {} bytes (streamed: {}), got back {:?} of {} bytes, first \
             difference at byte {at}",
            part.ty,
            part.data.len(),
            part.streamed,
            got.message_type(),
            got_bytes.len()
        );
    }
}

const BURST: usize = 200;

/// Checks both ends' account of the agreement, then round-trips a burst of similar messages,
/// the mix (large and small, compressible and random, empty, streamed) and another burst,
/// and checks from the peer's counts that what was agreed was used: the peer inflated at
/// least every message isosock had to compress and compressed every echo (which isosock
/// therefore inflated), and with isosock keeping its context the burst shrank to less than
/// half. With isosock's window limited to 8 bits, isosock compressed nothing; without an
/// agreement, nothing is compressed either way.
async fn exercise(conn: &Conn, case: &Case, what: &str) {
    assert_eq!(
        ask(conn, "!extensions", what).await,
        case.peer_agreed,
        "{what}: the peer's account"
    );
    let start = stats(conn, what).await;
    let burst: Vec<Part> = (0..BURST).map(|i| Part::text(similar(i))).collect();
    for part in &burst {
        round_trip(conn, part, what).await;
    }
    let after_burst = stats(conn, what).await;

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let unicode = "ünïcödé ✓ 🦀 ".repeat(6000);
    let mix = vec![
        Part::text(String::new()),
        Part::binary(Vec::new(), false),
        Part::text(r#"{"short":true}"#.to_owned()),
        Part::text(json(&mut rng, 64 << 10)),
        Part::text(json(&mut rng, 1 << 20)),
        Part::binary(rng.bytes(64 << 10), false),
        Part::binary(rng.bytes(300 << 10), false),
        Part::binary(json(&mut rng, 200 << 10).into_bytes(), true),
        Part::text(unicode.clone()),
        Part::text(String::new()),
        Part::text(json(&mut rng, 64 << 10)),
        Part::text(json(&mut rng, 300 << 10)).streamed(),
        Part::text(similar(BURST)).streamed(),
        Part::text(String::new()).streamed(),
        Part::binary(rng.bytes(100 << 10), false).streamed(),
        Part::text(unicode[..40_000].to_owned()).streamed(),
        Part::binary(Vec::new(), false).streamed(),
    ];
    for part in &mix {
        round_trip(conn, part, what).await;
    }
    // The window carries on after the streamed messages as before them.
    let tail: Vec<Part> = (BURST + 1..BURST + 21)
        .map(|i| Part::text(similar(i)))
        .collect();
    for part in &tail {
        round_trip(conn, part, what).await;
    }
    let end = stats(conn, what).await;

    let sent: Vec<&Part> = burst.iter().chain(&mix).chain(&tail).collect();
    let total = end.since(start);
    if case.agreed.is_empty() {
        assert_eq!(
            (start, end),
            (Stats::default(), Stats::default()),
            "{what}: compressed without an agreement"
        );
        return;
    }
    let threshold = case.threshold();
    if case.ours_compresses() {
        let compressed = sent
            .iter()
            .filter(|p| p.surely_compressed(threshold))
            .count() as u64;
        assert!(
            total.in_msgs >= compressed,
            "{what}: the peer inflated {} messages, isosock compressed at least {compressed}",
            total.in_msgs
        );
    } else {
        assert_eq!(
            (start.in_msgs, end.in_msgs),
            (0, 0),
            "{what}: isosock compressed with an 8-bit window"
        );
    }
    assert!(
        total.out_msgs >= sent.len() as u64,
        "{what}: the peer compressed {} of {} echoes",
        total.out_msgs,
        sent.len()
    );
    if case.ours_compresses() && case.ours_keeps_context() {
        let burst = after_burst.since(start);
        assert!(
            burst.in_wire * 2 < burst.in_bytes,
            "{what}: with context takeover {BURST} similar messages took {} compressed bytes \
             for {}",
            burst.in_wire,
            burst.in_bytes
        );
    }
}
