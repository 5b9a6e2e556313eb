//! `isosock-bench`: echo servers and load generators for isosock (on its own engine and on its
//! tokio-tungstenite engine), tokio-tungstenite (default, tuned, and configured like isosock's
//! tungstenite engine), fastwebsockets and tokio-websockets, the benchmark matrix that compares them,
//! the idle-memory test, the permessage-deflate benchmark against yawc, Node `ws` and Python
//! `websockets`, and a self-test that every server answers every client correctly.
//! See BENCHMARKS.md at the repository root.
//!
//! So that no comparison rests on isosock's own client or on a peer's slowest loop, the
//! servers can also be loaded from outside and written as their crates' examples write them.
//! `load --client raw` ([`rawload`]) is a raw-frame load generator in the manner of
//! uWebSockets' `load_test`: no WebSocket library, frames masked once and shared by every
//! connection, echoes read by their headers and checked for type, length and every byte. The
//! `isosock-forward` and `tungstenite-forward` servers echo with `split()` and `forward`, as
//! isosock's `Sink`/`Stream` halves and tokio-tungstenite's echo-server example do, beside each
//! crate's read/write loop (`isosock`, `tungstenite`). `matrix --load raw,isosock` (the
//! default) runs the servers phase once under each load, every table titled with its load.

mod args;
mod child;
mod clients;
mod deflate;
mod handshake;
mod hist;
mod idle;
mod load;
mod matrix;
mod payload;
mod raw;
mod rawload;
mod selftest;
mod servers;
mod sys;

use std::time::Duration;

use args::Args;

/// Errors of this tool: messages for a person, printed once at the top.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// This tool's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// A WebSocket implementation, as a server or a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// This crate, on its own engine.
    Isosock,
    /// tokio-tungstenite with the default `WebSocketConfig`.
    Tungstenite,
    /// tokio-tungstenite with a 16 KiB read buffer and eager writes.
    TungsteniteTuned,
    /// fastwebsockets.
    Fastwebsockets,
    /// tokio-websockets.
    TokioWebsockets,
    /// This crate on its tokio-tungstenite engine (`Engine::Tungstenite`, no compression).
    IsosockTungstenite,
    /// tokio-tungstenite configured as isosock's tungstenite engine configures it (message and
    /// frame limit = the read limit, otherwise defaults): the baseline of `IsosockTungstenite`.
    TungsteniteSame,
}

impl Impl {
    /// Every implementation, isosock first, then the peers, then the engine comparison's pair.
    pub const ALL: [Impl; 7] = [
        Impl::Isosock,
        Impl::Tungstenite,
        Impl::TungsteniteTuned,
        Impl::Fastwebsockets,
        Impl::TokioWebsockets,
        Impl::IsosockTungstenite,
        Impl::TungsteniteSame,
    ];

    /// What `matrix` runs without `--impls`: isosock and the other crates. The engine pair
    /// (`isosock-tungstenite`, `tungstenite-same`) is compared on its own (BENCHMARKS.md,
    /// "Engines"), so that the crate comparison keeps its length and its peers.
    pub const CRATES: [Impl; 5] = [
        Impl::Isosock,
        Impl::Tungstenite,
        Impl::TungsteniteTuned,
        Impl::Fastwebsockets,
        Impl::TokioWebsockets,
    ];

    /// The name used on the command line and in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Isosock => "isosock",
            Impl::Tungstenite => "tungstenite",
            Impl::TungsteniteTuned => "tungstenite-tuned",
            Impl::Fastwebsockets => "fastwebsockets",
            Impl::TokioWebsockets => "tokio-websockets",
            Impl::IsosockTungstenite => "isosock-tungstenite",
            Impl::TungsteniteSame => "tungstenite-same",
        }
    }

    /// Parses a name from [`Impl::name`].
    pub fn parse(s: &str) -> Result<Impl> {
        Impl::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| format!("unknown implementation {s:?} (one of: {})", names()).into())
    }
}

fn names() -> String {
    Impl::ALL.map(Impl::name).join(", ")
}

/// Runs `$body` with `$C` naming the client type of implementation `$imp`.
#[macro_export]
macro_rules! with_client {
    ($imp:expr, $C:ident => $body:expr) => {
        match $imp {
            $crate::Impl::Isosock => {
                type $C = $crate::clients::Isosock;
                $body
            }
            $crate::Impl::Tungstenite => {
                type $C = $crate::clients::Tungstenite<{ $crate::clients::DEFAULT }>;
                $body
            }
            $crate::Impl::TungsteniteTuned => {
                type $C = $crate::clients::Tungstenite<{ $crate::clients::TUNED }>;
                $body
            }
            $crate::Impl::Fastwebsockets => {
                type $C = $crate::clients::Fastwebsockets;
                $body
            }
            $crate::Impl::TokioWebsockets => {
                type $C = $crate::clients::TokioWebsockets;
                $body
            }
            $crate::Impl::IsosockTungstenite => {
                type $C = $crate::clients::IsosockTungstenite;
                $body
            }
            $crate::Impl::TungsteniteSame => {
                type $C = $crate::clients::TungsteniteSame;
                $body
            }
        }
    };
}

/// How messages are sent on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send one, wait for its echo, repeat.
    PingPong,
    /// Keep up to W messages outstanding.
    Pipeline,
}

impl Mode {
    /// The name used on the command line and in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::PingPong => "pingpong",
            Mode::Pipeline => "pipeline",
        }
    }

    /// Parses `pingpong` or `pipeline`.
    pub fn parse(s: &str) -> Result<Mode> {
        match s {
            "pingpong" => Ok(Mode::PingPong),
            "pipeline" => Ok(Mode::Pipeline),
            _ => Err(format!("unknown mode {s:?} (pingpong or pipeline)").into()),
        }
    }
}

const USAGE: &str = "\
usage: isosock-bench COMMAND [OPTIONS]

commands:
  server SERVER [--port 0] [--core N] [--threads 1] [--compression MODE] [--verbose]
      Echo server; prints `listening on ws://127.0.0.1:PORT`. MODE (isosock, isosock-forward
      and yawc only): disabled, no-context-takeover, context-takeover.
  load --client IMPL|raw --url URL [--conns 1] [--size 1KiB] [--mode pingpong|pipeline]
       [--window 16] [--warmup 1] [--duration 3] [--server-pid PID] [--core N] [--json]
       [--payload pattern|json|random] [--compression MODE] [--wire]
      Load generator; prints msgs/s, MB/s, p50/p99 round trip and CPU per message; with
      --wire also the bytes on the wire per payload byte (from `ss`). `--client raw`: the
      raw-frame client (pre-built masked frames, echoes parsed by their headers and checked
      byte for byte; pipelined, all the frames the window allows go in one write).
  matrix [--quick] [--rounds 2] [--warmup S] [--duration S] [--conns 1,64,1000]
         [--sizes 16,1KiB,64KiB,1MiB] [--modes pingpong,pipeline] [--impls LIST]
         [--servers LIST] [--load raw,isosock] [--window 16] [--max-inflight 256MiB]
         [--fixed-server fastwebsockets] [--phases servers,clients]
         [--out target/bench/results.json] [--no-pin]
      Every server under each --load (the raw-frame client, the isosock client, or any
      IMPL's client), then every client against one server. --impls defaults to the crates
      (isosock and the four peers); --servers to the --impls' read/write loops plus the
      forward servers of isosock and tungstenite when they are in it. With both
      isosock-tungstenite and tungstenite-same, the tables end with their engine comparison.
  idle-memory [--conns 10000] [--impls LIST] [--size 1MiB] [--rss-cap 4096MiB] [--no-pin]
      Server RSS per idle connection, and retained after one 1 MiB echo per connection.
  idle-memory --compression MODES [--conns 10000] [--size 1KiB] [--rounds 1] [--rss-cap ...]
      isosock server and client RSS per connection in each permessage-deflate mode: idle,
      and after one JSON message each way per connection (clients in a `hold` process).
  compression [--quick] [--cases json:1KiB,json:16KiB,random:16KiB] [--modes LIST]
              [--servers isosock,yawc,node-ws,python-websockets] [--conns 64] [--rounds 2]
              [--warmup S] [--duration S] [--node node] [--python .deps/venv/bin/python]
              [--out target/bench/compression.json] [--no-pin]
      permessage-deflate under load: compression ratio, msgs/s and CPU per message of each
      server in each mode, loaded by the isosock client in the same mode.
  deflate-levels [--cases ...] [--levels 1,2,6] [--bytes 64MiB] [--no-pin]
      DEFLATE alone (flate2 + zlib-rs) on the same payloads: ratio and µs per message per
      level, with a fresh state per message and with one kept state.
  selftest [--servers LIST] [--clients LIST]
      One small exchange for every server x client pair, and every server with raw frames
      and under a short raw load; fails on any mismatch.

IMPL: isosock, tungstenite, tungstenite-tuned, fastwebsockets, tokio-websockets,
      isosock-tungstenite (isosock on its tokio-tungstenite engine),
      tungstenite-same (tokio-tungstenite configured as that engine configures it)
SERVER: an IMPL (its read/write loop), or
      isosock-forward (Conn::split, then stream.forward(sink)),
      tungstenite-forward (tokio-tungstenite's echo-server example: split, then forward),
      yawc (compression benchmark)
";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    let rest = &argv[1..];
    let result = match cmd.as_str() {
        "server" => cmd_server(rest),
        "load" => cmd_load(rest),
        "matrix" => matrix::main(rest),
        "idle-memory" => idle::main(rest),
        "compression" => deflate::main(rest),
        "deflate-levels" => deflate::levels(rest),
        "hold" => idle::hold(rest),
        "pinned" => cmd_pinned(rest),
        "selftest" => selftest::main(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}").into()),
    };
    if let Err(e) = result {
        eprintln!("isosock-bench {cmd}: {e}");
        std::process::exit(1);
    }
}

fn cmd_server(argv: &[String]) -> Result<()> {
    let a = Args::parse(argv, &["verbose"])?;
    let server = servers::Server::parse(a.positional(0).ok_or("server: which implementation?")?)?;
    if let Some(core) = a.get("core") {
        sys::pin_to_core(core.parse()?)?;
    }
    sys::raise_nofile(1024)?;
    servers::run(
        server,
        a.value("port", 0)?,
        a.value("threads", 1)?,
        a.switch("verbose"),
        deflate::parse_mode(a.get("compression").unwrap_or("disabled"))?,
    )
}

/// `pinned CORE PROGRAM ARGS...`: pins itself to CORE and becomes PROGRAM, so that every thread
/// a peer's echo server starts runs on that core.
fn cmd_pinned(argv: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let [core, program, args @ ..] = argv else {
        return Err("pinned: CORE PROGRAM [ARGS...]".into());
    };
    sys::pin_to_core(core.parse()?)?;
    let err = std::process::Command::new(program).args(args).exec();
    Err(format!("exec {program}: {err}").into())
}

fn cmd_load(argv: &[String]) -> Result<()> {
    let a = Args::parse(argv, &["json", "wire"])?;
    let spec = load::LoadSpec {
        client: load::Generator::parse(a.get("client").unwrap_or("isosock"))?,
        url: a.get("url").ok_or("load: --url is required")?.to_owned(),
        conns: a.value("conns", 1)?,
        size: args::parse_size(a.get("size").unwrap_or("1KiB"))?,
        payload: payload::Payload::parse(a.get("payload").unwrap_or("pattern"))?,
        compression: deflate::parse_mode(a.get("compression").unwrap_or("disabled"))?,
        wire: a.switch("wire"),
        mode: Mode::parse(a.get("mode").unwrap_or("pingpong"))?,
        window: a.value("window", 16)?,
        warmup: a.seconds("warmup", Duration::from_secs(1))?,
        duration: a.seconds("duration", Duration::from_secs(3))?,
        server_pid: a.get("server-pid").map(str::parse).transpose()?,
    };
    if let Some(core) = a.get("core") {
        sys::pin_to_core(core.parse()?)?;
    }
    sys::raise_nofile(spec.conns as u64 + 64)?;
    let r = load::run(&spec)?;
    if a.switch("json") {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} -> {}: {} conns, {} {}, W={}: {:.0} msgs/s, {:.1} MB/s, p50 {:.1} us, \
             p99 {:.1} us, server CPU {} us/msg, client CPU {:.2} us/msg",
            r.client,
            spec.url,
            r.conns,
            args::fmt_size(r.size),
            r.mode,
            r.window,
            r.msgs_per_sec,
            r.mb_per_sec,
            r.p50_us,
            r.p99_us,
            r.server_cpu_us_per_msg
                .map_or("?".to_owned(), |v| format!("{v:.2}")),
            r.client_cpu_us_per_msg,
        );
        if let Some(w) = r.wire {
            println!(
                "wire/payload: {:.3} server to client, {:.3} client to server; extensions {:?}",
                w.ratio_down(),
                w.ratio_up(),
                r.extensions
            );
        }
    }
    Ok(())
}
