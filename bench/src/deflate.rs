//! `compression`: permessage-deflate (RFC 7692) under load, isosock's server against yawc,
//! Node `ws` and Python `websockets`, each in the same mode.
//!
//! For each payload case (JSON-like text of 1 KiB and 16 KiB, random binary of 16 KiB), each
//! mode (disabled, no context takeover, context takeover) and each round, every server runs
//! in turn (A B C D A B C D): a fresh server process pinned to core 0 and a fresh load process
//! (`isosock-bench load`, the isosock client in the same mode, C connections in ping-pong)
//! pinned to core 1. The load counts the bytes its sockets carried (`ss`), which gives each
//! direction's compression ratio (wire bytes / payload bytes: frame headers included), and
//! reads the server's and its own CPU time. A cell is the median of its rounds; the raw runs
//! go to `target/bench/compression.json`, the tables to `compression.md`.
//!
//! Every peer is configured like isosock: DEFLATE level 1, memLevel 8, a 32 KiB window, and
//! both `*_no_context_takeover` parameters in no-context-takeover mode (the isosock client
//! offers them; Node and Python answer them; yawc answers through the bench's own upgrade).
//!
//! `deflate-levels` measures DEFLATE alone on the same payloads, one core, no sockets: per
//! zlib-rs level, the wire ratio and the time to compress a message with a fresh state (as
//! without context takeover) and with one kept state (context takeover), and to inflate one.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use isosock::Compression;
use serde::Serialize;

use crate::args::{self, fmt_size, Args};
use crate::child::ServerProc;
use crate::load::LoadResult;
use crate::matrix::{self, fmt_f, fmt_num, fmt_ratio, fmt_us, median, Machine};
use crate::payload::Payload;
use crate::servers::Server;
use crate::{Impl, Result};

/// The three modes, in table order.
pub const MODES: [Compression; 3] = [
    Compression::Disabled,
    Compression::NoContextTakeover,
    Compression::ContextTakeover,
];

/// The mode's name on the command line, in the tables and for the peers' scripts.
pub fn mode_name(m: Compression) -> &'static str {
    match m {
        Compression::NoContextTakeover => "no-context-takeover",
        Compression::ContextTakeover => "context-takeover",
        _ => "disabled",
    }
}

/// Parses a name from [`mode_name`] (or `nct`, `ct`, `off`).
pub fn parse_mode(s: &str) -> Result<Compression> {
    match s {
        "disabled" | "off" => Ok(Compression::Disabled),
        "no-context-takeover" | "nct" => Ok(Compression::NoContextTakeover),
        "context-takeover" | "ct" => Ok(Compression::ContextTakeover),
        _ => Err(format!(
            "unknown compression mode {s:?} (disabled, no-context-takeover, context-takeover)"
        )
        .into()),
    }
}

/// A server of this benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// isosock's `accept`.
    Isosock,
    /// yawc 0.5 (Rust, tokio), through `isosock-bench server yawc`.
    Yawc,
    /// Node `ws`, tests/interop/bench_echo_server.mjs.
    NodeWs,
    /// Python `websockets` (asyncio), tests/interop/bench_echo_server.py.
    PythonWebsockets,
}

impl Peer {
    const ALL: [Peer; 4] = [
        Peer::Isosock,
        Peer::Yawc,
        Peer::NodeWs,
        Peer::PythonWebsockets,
    ];

    /// The name on the command line and in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Isosock => "isosock",
            Peer::Yawc => "yawc",
            Peer::NodeWs => "node-ws",
            Peer::PythonWebsockets => "python-websockets",
        }
    }

    fn parse(s: &str) -> Result<Peer> {
        Peer::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown server {s:?} (isosock, yawc, node-ws, python-websockets)").into()
            })
    }
}

/// One payload case: what is sent and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Case {
    #[serde(serialize_with = "ser_payload")]
    payload: Payload,
    size: usize,
}

fn ser_payload<S: serde::Serializer>(p: &Payload, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

impl Case {
    fn parse(s: &str) -> Result<Case> {
        let (p, size) = s
            .split_once(':')
            .ok_or_else(|| format!("a case is PAYLOAD:SIZE (json:1KiB), not {s:?}"))?;
        Ok(Case {
            payload: Payload::parse(p)?,
            size: args::parse_size(size)?,
        })
    }

    fn label(&self) -> String {
        let what = match self.payload {
            Payload::Json => "JSON text",
            Payload::Random => "random binary",
            Payload::Pattern => "byte pattern",
        };
        format!("{} {what}", fmt_size(self.size))
    }
}

#[derive(Debug)]
struct Opts {
    cases: Vec<Case>,
    modes: Vec<Compression>,
    servers: Vec<Peer>,
    conns: usize,
    rounds: usize,
    warmup: Duration,
    duration: Duration,
    pin: bool,
    node: String,
    python: String,
    out: PathBuf,
}

/// The repository root (the bench crate's parent), where the peers' scripts live.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn parse_opts(argv: &[String]) -> Result<Opts> {
    let a = Args::parse(argv, &["no-pin", "quick"])?;
    let quick = a.switch("quick");
    let (warmup, duration) = if quick {
        (Duration::from_millis(200), Duration::from_millis(500))
    } else {
        (Duration::from_millis(500), Duration::from_millis(1500))
    };
    let root = repo_root();
    Ok(Opts {
        cases: a.list(
            "cases",
            vec![
                Case {
                    payload: Payload::Json,
                    size: 1 << 10,
                },
                Case {
                    payload: Payload::Json,
                    size: 16 << 10,
                },
                Case {
                    payload: Payload::Random,
                    size: 16 << 10,
                },
            ],
            Case::parse,
        )?,
        modes: a.list("modes", MODES.to_vec(), parse_mode)?,
        servers: a.list("servers", Peer::ALL.to_vec(), Peer::parse)?,
        conns: a.value("conns", 64)?,
        rounds: a.value("rounds", if quick { 1 } else { 2 })?,
        warmup: a.seconds("warmup", warmup)?,
        duration: a.seconds("duration", duration)?,
        pin: !a.switch("no-pin"),
        node: a.get("node").unwrap_or("node").to_owned(),
        python: match a.get("python") {
            Some(p) => p.to_owned(),
            None => root
                .join(".deps/venv/bin/python")
                .to_string_lossy()
                .into_owned(),
        },
        out: match a.get("out") {
            Some(p) => PathBuf::from(p),
            None => matrix::out_dir()?.join("compression.json"),
        },
    })
}

/// How long a peer's script lives at most (each run stops it much sooner).
const PEER_LIFETIME_S: &str = "300";

fn start(o: &Opts, peer: Peer, mode: Compression) -> Result<ServerProc> {
    let core = o.pin.then_some(matrix::SERVER_CORE);
    let script = |f: &str| repo_root().join("tests/interop").join(f);
    match peer {
        Peer::Isosock => ServerProc::start_server(Server::Impl(Impl::Isosock), mode, core),
        Peer::Yawc => ServerProc::start_server(Server::Yawc, mode, core),
        Peer::NodeWs => ServerProc::start_program(
            peer.name(),
            &o.node,
            &[
                &script("bench_echo_server.mjs").to_string_lossy(),
                mode_name(mode),
                PEER_LIFETIME_S,
            ],
            core,
        ),
        Peer::PythonWebsockets => ServerProc::start_program(
            peer.name(),
            &o.python,
            &[
                &script("bench_echo_server.py").to_string_lossy(),
                mode_name(mode),
                PEER_LIFETIME_S,
            ],
            core,
        ),
    }
}

fn run_one(o: &Opts, peer: Peer, mode: Compression, case: Case) -> Result<LoadResult> {
    let srv = start(o, peer, mode)?;
    let args: Vec<String> = [
        ("--client", "isosock".to_owned()),
        ("--conns", o.conns.to_string()),
        ("--size", case.size.to_string()),
        ("--payload", case.payload.name().to_owned()),
        ("--compression", mode_name(mode).to_owned()),
        ("--mode", "pingpong".to_owned()),
        ("--warmup", o.warmup.as_secs_f64().to_string()),
        ("--duration", o.duration.as_secs_f64().to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .chain(["--wire".to_owned()])
    .collect();
    matrix::load_process(srv, &args, o.pin)
}

#[derive(Debug, Serialize)]
struct Run {
    case: Case,
    mode: &'static str,
    server: &'static str,
    round: usize,
    result: Option<LoadResult>,
    error: Option<String>,
}

/// The median over the rounds of one server in one case and mode.
#[derive(Debug, Clone, Serialize)]
struct Summary {
    case: Case,
    mode: &'static str,
    server: &'static str,
    runs: usize,
    extensions: String,
    /// Server to client: the server's compressor.
    ratio_down: f64,
    /// Client to server: the isosock client's compressor.
    ratio_up: f64,
    msgs_per_sec: f64,
    p50_us: f64,
    server_cpu_us_per_msg: f64,
    client_cpu_us_per_msg: f64,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    machine: Machine,
    peers: Versions,
    conns: usize,
    rounds: usize,
    warmup_s: f64,
    duration_s: f64,
    pinned: bool,
    summaries: &'a [Summary],
    runs: &'a [Run],
}

#[derive(Debug, Serialize)]
struct Versions {
    node: String,
    ws: String,
    python: String,
    websockets: String,
}

impl Versions {
    fn detect(o: &Opts) -> Versions {
        let out = |cmd: &str, args: &[&str]| {
            Command::new(cmd)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_else(|| "?".into())
        };
        let ws =
            std::fs::read_to_string(repo_root().join("tests/interop/node_modules/ws/package.json"))
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| v["version"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "?".into());
        Versions {
            node: out(&o.node, &["--version"]),
            ws,
            python: out(&o.python, &["--version"]),
            websockets: out(
                &o.python,
                &["-c", "import websockets; print(websockets.__version__)"],
            ),
        }
    }
}

/// Entry point of `isosock-bench compression`.
pub fn main(argv: &[String]) -> Result<()> {
    let o = parse_opts(argv)?;
    let total = o.cases.len() * o.modes.len() * o.rounds * o.servers.len();
    eprintln!(
        "compression: {} cases x {} modes x {} servers x {} rounds = {total} runs of {} \
         connections, {:.1} s warm-up + {:.1} s measured",
        o.cases.len(),
        o.modes.len(),
        o.servers.len(),
        o.rounds,
        o.conns,
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64()
    );
    let started = Instant::now();
    let mut runs = Vec::with_capacity(total);
    for &case in &o.cases {
        for &mode in &o.modes {
            for round in 0..o.rounds {
                for &peer in &o.servers {
                    let res = run_one(&o, peer, mode, case);
                    let line = match &res {
                        Ok(r) => format!(
                            "{:.0} msgs/s, ratio {} down / {} up, server {} us/msg, client \
                             {:.2} us/msg, extensions {:?}",
                            r.msgs_per_sec,
                            r.wire.map_or("?".into(), |w| fmt_f(w.ratio_down(), 3)),
                            r.wire.map_or("?".into(), |w| fmt_f(w.ratio_up(), 3)),
                            r.server_cpu_us_per_msg
                                .map_or("?".into(), |v| format!("{v:.2}")),
                            r.client_cpu_us_per_msg,
                            r.extensions,
                        ),
                        Err(e) => format!("ERROR: {e}"),
                    };
                    eprintln!(
                        "[{}/{total} {:.0}s] {} {} round {}: {}: {line}",
                        runs.len() + 1,
                        started.elapsed().as_secs_f64(),
                        case.label(),
                        mode_name(mode),
                        round + 1,
                        peer.name(),
                    );
                    let (result, error) = match res {
                        Ok(r) => (Some(r), None),
                        Err(e) => (None, Some(e.to_string())),
                    };
                    runs.push(Run {
                        case,
                        mode: mode_name(mode),
                        server: peer.name(),
                        round,
                        result,
                        error,
                    });
                }
            }
        }
    }

    let summaries = summarize(&o, &runs);
    let machine = Machine::detect();
    let versions = Versions::detect(&o);
    let md = markdown(&o, &machine, &versions, &summaries, started.elapsed());
    println!("{md}");
    if let Some(dir) = o.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let report = Report {
        machine,
        peers: versions,
        conns: o.conns,
        rounds: o.rounds,
        warmup_s: o.warmup.as_secs_f64(),
        duration_s: o.duration.as_secs_f64(),
        pinned: o.pin,
        summaries: &summaries,
        runs: &runs,
    };
    std::fs::write(&o.out, serde_json::to_string_pretty(&report)?)?;
    std::fs::write(o.out.with_extension("md"), &md)?;
    eprintln!("raw results: {}", o.out.display());
    let errors = runs.iter().filter(|r| r.error.is_some()).count();
    if errors > 0 {
        return Err(format!("{errors} of {} runs failed (see above)", runs.len()).into());
    }
    Ok(())
}

fn summarize(o: &Opts, runs: &[Run]) -> Vec<Summary> {
    let mut out = Vec::new();
    for &case in &o.cases {
        for &mode in &o.modes {
            for &peer in &o.servers {
                let rs: Vec<&LoadResult> = runs
                    .iter()
                    .filter(|r| r.case == case && r.mode == mode_name(mode))
                    .filter(|r| r.server == peer.name())
                    .filter_map(|r| r.result.as_ref())
                    .collect();
                let med =
                    |f: &dyn Fn(&LoadResult) -> f64| median(rs.iter().map(|r| f(r)).collect());
                out.push(Summary {
                    case,
                    mode: mode_name(mode),
                    server: peer.name(),
                    runs: rs.len(),
                    extensions: rs.first().map(|r| r.extensions.clone()).unwrap_or_default(),
                    ratio_down: med(&|r| r.wire.map_or(f64::NAN, |w| w.ratio_down())),
                    ratio_up: med(&|r| r.wire.map_or(f64::NAN, |w| w.ratio_up())),
                    msgs_per_sec: med(&|r| r.msgs_per_sec),
                    p50_us: med(&|r| r.p50_us),
                    server_cpu_us_per_msg: med(&|r| r.server_cpu_us_per_msg.unwrap_or(f64::NAN)),
                    client_cpu_us_per_msg: med(&|r| r.client_cpu_us_per_msg),
                });
            }
        }
    }
    out
}

fn markdown(o: &Opts, m: &Machine, v: &Versions, sums: &[Summary], took: Duration) -> String {
    let mut s = format!(
        "Machine: {} ({} cores), Linux {}, {}. Peers: yawc 0.5.0, Node {} with ws {}, {} with \
         websockets {}. {} connections, ping-pong, the isosock client in the server's mode; {} \
         round(s) per server in alternating order, {:.1} s warm-up + {:.1} s measured per run{}. \
         Run took {:.0} s.\n\n\
         Ratio = bytes on the wire (WebSocket frames, headers included, read from the client's \
         sockets with `ss`) / payload bytes; down is server to client (the server's \
         compressor), up is client to server (isosock's client, the same in every row). CPU is \
         process CPU time (user + system, all threads) per echoed message. × columns are \
         isosock's: msgs/s isosock ÷ peer, CPU peer ÷ isosock; above 1.00 is better for \
         isosock.\n",
        m.cpu,
        m.cores,
        m.kernel,
        m.rustc,
        v.node,
        v.ws,
        v.python,
        v.websockets,
        o.conns,
        o.rounds,
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64(),
        if o.pin {
            "; server pinned to core 0, load generator to core 1"
        } else {
            ""
        },
        took.as_secs_f64(),
    );
    for &case in &o.cases {
        s += &format!(
            "\n### {}\n\n| mode | server | ratio down | ratio up | msgs/s | p50 µs | server CPU \
             µs/msg | client CPU µs/msg | × msgs/s | × server CPU |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            case.label()
        );
        for &mode in &o.modes {
            let rows: Vec<&Summary> = sums
                .iter()
                .filter(|r| r.case == case && r.mode == mode_name(mode))
                .collect();
            let iso = rows.iter().find(|r| r.server == Peer::Isosock.name());
            for r in &rows {
                let (xm, xc) = match iso {
                    Some(i) if r.server != i.server => (
                        fmt_ratio(i.msgs_per_sec / r.msgs_per_sec),
                        fmt_ratio(r.server_cpu_us_per_msg / i.server_cpu_us_per_msg),
                    ),
                    _ => (String::new(), String::new()),
                };
                s += &format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {xm} | {xc} |\n",
                    r.mode,
                    r.server,
                    fmt_f(r.ratio_down, 3),
                    fmt_f(r.ratio_up, 3),
                    fmt_num(r.msgs_per_sec),
                    fmt_us(r.p50_us),
                    fmt_f(r.server_cpu_us_per_msg, 2),
                    fmt_f(r.client_cpu_us_per_msg, 2),
                );
            }
        }
    }

    // What compression costs isosock itself, per message, in each mode.
    s += "\n### isosock: CPU per message by mode, and over `disabled`\n\n\
          | payload | mode | ratio down | server CPU µs/msg | server extra µs/msg | client CPU \
          µs/msg | client extra µs/msg |\n\
          | --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
    for &case in &o.cases {
        let iso = |mode: Compression| {
            sums.iter().find(|r| {
                r.case == case && r.mode == mode_name(mode) && r.server == Peer::Isosock.name()
            })
        };
        let base = iso(Compression::Disabled);
        for &mode in &o.modes {
            let Some(r) = iso(mode) else { continue };
            let extra = |f: fn(&Summary) -> f64| {
                base.map_or("n/a".into(), |b| format!("{:+.2}", f(r) - f(b)))
            };
            s += &format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                case.label(),
                r.mode,
                fmt_f(r.ratio_down, 3),
                fmt_f(r.server_cpu_us_per_msg, 2),
                extra(|x| x.server_cpu_us_per_msg),
                fmt_f(r.client_cpu_us_per_msg, 2),
                extra(|x| x.client_cpu_us_per_msg),
            );
        }
    }
    s
}

// ---- deflate-levels: DEFLATE alone ----

/// Compresses `input` as one permessage-deflate message (sync flush, the 4-byte tail dropped)
/// into `out`, the way isosock's writer does.
fn deflate_message(c: &mut flate2::Compress, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    out.reserve(input.len() + 64);
    let start = c.total_in();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(8 << 10);
        }
        let done = usize::try_from(c.total_in() - start)?;
        c.compress_vec(&input[done..], out, flate2::FlushCompress::Sync)?;
        if usize::try_from(c.total_in() - start)? >= input.len() && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    Ok(())
}

fn new_compress(level: u32) -> flate2::Compress {
    flate2::Compress::new_with_window_bits(flate2::Compression::new(level), false, 15)
}

/// Entry point of `isosock-bench deflate-levels`.
pub fn levels(argv: &[String]) -> Result<()> {
    let a = Args::parse(argv, &["no-pin"])?;
    let cases = a.list(
        "cases",
        vec![
            Case::parse("json:1KiB")?,
            Case::parse("json:16KiB")?,
            Case::parse("random:16KiB")?,
        ],
        Case::parse,
    )?;
    let levels: Vec<u32> = a.list("levels", vec![1, 2, 6], |s| Ok(s.parse()?))?;
    let bytes: usize = args::parse_size(a.get("bytes").unwrap_or("64MiB"))?;
    if !a.switch("no-pin") {
        crate::sys::pin_to_core(matrix::CLIENT_CORE)?;
    }
    let mut s = format!(
        "### DEFLATE alone (flate2 + zlib-rs, 32 KiB window, one core), {} of messages per \
         cell\n\n| payload | level | ratio, fresh state | µs/msg, fresh state | ratio, kept \
         state | µs/msg, kept state | inflate µs/msg |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        fmt_size(bytes)
    );
    for case in &cases {
        let msgs = case.payload.messages(case.size);
        let n = (bytes / case.size).max(msgs.len());
        for &level in &levels {
            let mut out = Vec::new();
            let mut cells = Vec::new();
            for kept in [false, true] {
                let mut c = Some(new_compress(level));
                let mut wire = 0usize;
                let t = Instant::now();
                for i in 0..n {
                    if !kept {
                        // Dropped before the next is made, as isosock's writer does.
                        drop(c.take());
                        c = Some(new_compress(level));
                    }
                    if let Some(c) = c.as_mut() {
                        deflate_message(c, &msgs[i % msgs.len()], &mut out)?;
                    }
                    wire += out.len();
                }
                let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
                cells.push((wire as f64 / (n * case.size) as f64, us));
            }
            // Inflating one message with a fresh state, as a receiver without context does.
            let mut packed = Vec::new();
            deflate_message(&mut new_compress(level), &msgs[0], &mut packed)?;
            packed.extend_from_slice(&[0, 0, 0xff, 0xff]);
            let mut buf = vec![0u8; case.size + 1024];
            let t = Instant::now();
            for _ in 0..n {
                let mut d = flate2::Decompress::new_with_window_bits(false, 15);
                d.decompress(&packed, &mut buf, flate2::FlushDecompress::Sync)?;
                if d.total_out() != case.size as u64 {
                    return Err("inflated to the wrong size".into());
                }
            }
            let inflate_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            s += &format!(
                "| {} | {level} | {} | {} | {} | {} | {} |\n",
                case.label(),
                fmt_f(cells[0].0, 3),
                fmt_f(cells[0].1, 2),
                fmt_f(cells[1].0, 3),
                fmt_f(cells[1].1, 2),
                fmt_f(inflate_us, 2),
            );
        }
    }
    // The state alone: made and dropped, never written to.
    let t = Instant::now();
    for _ in 0..10_000 {
        std::hint::black_box(new_compress(1));
    }
    s += &format!(
        "\nA compressor made and dropped without compressing anything: {:.2} µs.\n",
        t.elapsed().as_secs_f64() * 1e6 / 10_000.0
    );
    println!("{s}");
    Ok(())
}
