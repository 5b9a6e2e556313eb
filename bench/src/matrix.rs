//! `matrix`: the whole comparison in one command.
//!
//! Phase `servers`: for each cell (connections x message size x mode), one load generator
//! loads each server in turn, A B C D E A B C D E (`--rounds` times), each run with a fresh
//! server process pinned to core 0 and a fresh load process pinned to core 1. It runs once per
//! `--load` (by default the raw-frame client, [`crate::rawload`], then the isosock client), and
//! its tables are titled with the load. The servers are each implementation's read/write loop
//! plus the `forward` servers of isosock and tokio-tungstenite ([`crate::servers`]).
//! Phase `clients`: the same with each client implementation against one fixed server
//! (fastwebsockets by default). Each table cell is the median over the rounds; the raw runs go
//! to `target/bench/results.json`, each with its phase and, in phase servers, its load.
//!
//! With both `isosock-tungstenite` and `tungstenite-same` among the implementations, each
//! phase ends with the engine comparison: isosock on its tokio-tungstenite engine against
//! tokio-tungstenite with the same configuration, per cell, against the wrapper's targets.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::{self, fmt_size, Args};
use crate::child::ServerProc;
use crate::load::{Generator, LoadResult};
use crate::servers::Server;
use crate::{Impl, Mode, Result};

/// The cores the server and the load generator are pinned to.
pub const SERVER_CORE: usize = 0;
/// The load generator's core.
pub const CLIENT_CORE: usize = 1;

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    rounds: usize,
    warmup: Duration,
    duration: Duration,
    conns: Vec<usize>,
    sizes: Vec<usize>,
    modes: Vec<Mode>,
    impls: Vec<Impl>,
    /// The servers of phase servers.
    servers: Vec<Server>,
    /// What loads them: phase servers runs once per load.
    loads: Vec<Generator>,
    window: usize,
    max_inflight: usize,
    fixed_server: Impl,
    phases: Vec<Phase>,
    pin: bool,
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    /// Every server, under one load generator.
    Servers,
    /// Every client, against the fixed server.
    Clients,
}

/// One pass over the cells: a phase and, in phase servers, the load on every server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Stage {
    phase: Phase,
    /// The load generator of phase servers; none in phase clients, where each client is the
    /// load.
    #[serde(skip_serializing_if = "Option::is_none")]
    load: Option<Generator>,
}

impl Stage {
    /// The stages of `o`: phase servers once per load, phase clients once.
    fn all(o: &Opts) -> Vec<Stage> {
        let mut out = Vec::new();
        for &phase in &o.phases {
            match phase {
                Phase::Servers => out.extend(o.loads.iter().map(|&l| Stage {
                    phase,
                    load: Some(l),
                })),
                Phase::Clients => out.push(Stage { phase, load: None }),
            }
        }
        out
    }

    /// The runs of one cell and round: (subject, server, load), in table order.
    fn runs(&self, o: &Opts) -> Vec<(&'static str, Server, Generator)> {
        match (self.phase, self.load) {
            (Phase::Servers, load) => {
                let load = load.unwrap_or(Generator::Client(Impl::Isosock));
                o.servers.iter().map(|&s| (s.name(), s, load)).collect()
            }
            (Phase::Clients, _) => o
                .impls
                .iter()
                .map(|&c| (c.name(), Server::Impl(o.fixed_server), Generator::Client(c)))
                .collect(),
        }
    }

    /// A short name for progress lines and headings: `Servers, raw load`,
    /// `Servers, isosock client`, `Clients`.
    fn label(&self) -> String {
        match (self.phase, self.load) {
            (Phase::Servers, Some(Generator::Raw)) => "Servers, raw load".into(),
            (Phase::Servers, Some(Generator::Client(c))) => format!("Servers, {} client", c.name()),
            (Phase::Servers, None) => "Servers".into(),
            (Phase::Clients, _) => "Clients".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Cell {
    conns: usize,
    size: usize,
    #[serde(serialize_with = "ser_mode")]
    mode: Mode,
    window: usize,
}

fn ser_mode<S: serde::Serializer>(m: &Mode, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

#[derive(Debug, Clone, Serialize)]
struct Run {
    #[serde(flatten)]
    stage: Stage,
    cell: Cell,
    round: usize,
    server: &'static str,
    client: &'static str,
    result: Option<LoadResult>,
    error: Option<String>,
}

/// Medians over the rounds of one implementation in one cell.
#[derive(Debug, Clone, Serialize)]
struct Summary {
    #[serde(flatten)]
    stage: Stage,
    cell: Cell,
    /// The implementation this row is about (the server in phase servers, the client in
    /// phase clients).
    subject: &'static str,
    runs: usize,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    server_cpu_us_per_msg: f64,
    client_cpu_us_per_msg: f64,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    machine: Machine,
    settings: Settings,
    summaries: &'a [Summary],
    runs: &'a [Run],
}

#[derive(Debug, Serialize)]
struct Settings {
    quick: bool,
    rounds: usize,
    warmup_s: f64,
    duration_s: f64,
    max_window: usize,
    max_inflight_bytes: usize,
    fixed_server: &'static str,
    /// The servers of phase servers.
    servers: Vec<&'static str>,
    /// The loads phase servers ran under.
    server_loads: Vec<&'static str>,
    pinned: bool,
}

/// What the tables were measured on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// The CPU model.
    pub cpu: String,
    /// Cores this process may use.
    pub cores: usize,
    /// The kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
}

impl Machine {
    /// Reads /proc/cpuinfo, the CPU count and the kernel release.
    pub fn detect() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        let rustc = Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel,
            rustc,
        }
    }
}

/// `target/bench`, next to the `release` directory this binary runs from (or under
/// `CARGO_TARGET_DIR`).
pub fn out_dir() -> Result<PathBuf> {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(t).join("bench"));
    }
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("cannot locate the target directory")?;
    Ok(target.join("bench"))
}

fn parse_opts(argv: &[String]) -> Result<Opts> {
    let a = Args::parse(argv, &["quick", "no-pin"])?;
    let quick = a.switch("quick");
    let (warmup, duration) = if quick {
        (Duration::from_millis(200), Duration::from_millis(500))
    } else {
        (Duration::from_millis(500), Duration::from_millis(1500))
    };
    let fixed_server = Impl::parse(a.get("fixed-server").unwrap_or("fastwebsockets"))?;
    let impls = a.list("impls", Impl::CRATES.to_vec(), Impl::parse)?;
    Ok(Opts {
        quick,
        rounds: a.value("rounds", 2)?,
        warmup: a.seconds("warmup", warmup)?,
        duration: a.seconds("duration", duration)?,
        conns: a.list("conns", vec![1, 64, 1000], |s| Ok(s.parse()?))?,
        sizes: a.list(
            "sizes",
            vec![16, 1 << 10, 64 << 10, 1 << 20],
            args::parse_size,
        )?,
        modes: a.list("modes", vec![Mode::PingPong, Mode::Pipeline], Mode::parse)?,
        servers: a.list("servers", Server::with_forward(&impls), Server::parse)?,
        loads: a.list(
            "load",
            vec![Generator::Raw, Generator::Client(Impl::Isosock)],
            Generator::parse,
        )?,
        impls,
        window: a.value("window", 16)?,
        max_inflight: args::parse_size(a.get("max-inflight").unwrap_or("256MiB"))?,
        fixed_server,
        phases: a.list(
            "phases",
            vec![Phase::Servers, Phase::Clients],
            |s| match s {
                "servers" => Ok(Phase::Servers),
                "clients" => Ok(Phase::Clients),
                _ => Err(format!("unknown phase {s:?} (servers or clients)").into()),
            },
        )?,
        pin: !a.switch("no-pin"),
        out: match a.get("out") {
            Some(p) => PathBuf::from(p),
            None => out_dir()?.join("results.json"),
        },
    })
}

/// The pipeline window for `conns` x `size`: `--window`, reduced so that at most
/// `--max-inflight` bytes are outstanding, but never below 1.
fn window_for(o: &Opts, conns: usize, size: usize, mode: Mode) -> usize {
    match mode {
        Mode::PingPong => 1,
        Mode::Pipeline => (o.max_inflight / (conns * size).max(1)).clamp(1, o.window.max(1)),
    }
}

/// Entry point of `isosock-bench matrix`.
pub fn main(argv: &[String]) -> Result<()> {
    let o = parse_opts(argv)?;
    if o.pin {
        let cores = core_affinity::get_core_ids().map_or(0, |c| c.len());
        if cores < 2 {
            return Err(format!(
                "pinning needs cores {SERVER_CORE} and {CLIENT_CORE}; this process may use \
                 {cores} (pass --no-pin to run unpinned)"
            )
            .into());
        }
    }
    let mut cells = Vec::new();
    for &mode in &o.modes {
        for &conns in &o.conns {
            for &size in &o.sizes {
                let window = window_for(&o, conns, size, mode);
                if o.quick && conns * size * window > o.max_inflight {
                    eprintln!(
                        "  --quick skips C={conns} S={} {}: {} in flight even at W=1",
                        fmt_size(size),
                        mode.name(),
                        fmt_size(conns * size * window)
                    );
                    continue;
                }
                cells.push(Cell {
                    conns,
                    size,
                    mode,
                    window,
                });
            }
        }
    }
    let stages = Stage::all(&o);
    let per_cell: usize = stages.iter().map(|st| st.runs(&o).len()).sum();
    let total = cells.len() * o.rounds * per_cell;
    eprintln!(
        "matrix: {} cells x {} rounds x {per_cell} runs per cell ({}) = {total} runs of \
         {:.1} s warm-up + {:.1} s measured{}",
        cells.len(),
        o.rounds,
        stages
            .iter()
            .map(|st| format!("{}: {}", st.label(), st.runs(&o).len()))
            .collect::<Vec<_>>()
            .join("; "),
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64(),
        if o.quick { " (quick)" } else { "" }
    );
    for c in &cells {
        let inflight = c.conns * c.window * c.size;
        if c.mode == Mode::Pipeline && c.window < o.window || inflight > o.max_inflight {
            eprintln!(
                "  C={} S={} {}: W={} ({} in flight{})",
                c.conns,
                fmt_size(c.size),
                c.mode.name(),
                c.window,
                fmt_size(inflight),
                if inflight > o.max_inflight {
                    "; over the bound, since W cannot go below 1"
                } else {
                    ""
                }
            );
        }
    }

    let started = Instant::now();
    let mut runs = Vec::with_capacity(total);
    let mut n = 0;
    for &stage in &stages {
        for cell in &cells {
            for round in 0..o.rounds {
                for (_, server, client) in stage.runs(&o) {
                    n += 1;
                    let res = run_one(&o, server, client, cell);
                    let line = match &res {
                        Ok(r) => format!(
                            "{:.0} msgs/s, p50 {:.0} us, server {} us/msg, client {:.2} us/msg",
                            r.msgs_per_sec,
                            r.p50_us,
                            r.server_cpu_us_per_msg
                                .map_or("?".into(), |v| format!("{v:.2}")),
                            r.client_cpu_us_per_msg
                        ),
                        Err(e) => format!("ERROR: {e}"),
                    };
                    eprintln!(
                        "[{n}/{total} {:.0}s] {} C={} S={} {} W={} round {}: server {} client {}: {line}",
                        started.elapsed().as_secs_f64(),
                        stage.label(),
                        cell.conns,
                        fmt_size(cell.size),
                        cell.mode.name(),
                        cell.window,
                        round + 1,
                        server.name(),
                        client.name(),
                    );
                    let (result, error) = match res {
                        Ok(r) => (Some(r), None),
                        Err(e) => (None, Some(e.to_string())),
                    };
                    runs.push(Run {
                        stage,
                        cell: *cell,
                        round,
                        server: server.name(),
                        client: client.name(),
                        result,
                        error,
                    });
                }
            }
        }
    }

    let summaries = summarize(&o, &stages, &cells, &runs);
    let machine = Machine::detect();
    let md = markdown(&o, &stages, &machine, &summaries, started.elapsed());
    println!("{md}");
    if let Some(dir) = o.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let report = Report {
        machine,
        settings: Settings {
            quick: o.quick,
            rounds: o.rounds,
            warmup_s: o.warmup.as_secs_f64(),
            duration_s: o.duration.as_secs_f64(),
            max_window: o.window,
            max_inflight_bytes: o.max_inflight,
            fixed_server: o.fixed_server.name(),
            servers: o.servers.iter().map(|s| s.name()).collect(),
            server_loads: o.loads.iter().map(|l| l.name()).collect(),
            pinned: o.pin,
        },
        summaries: &summaries,
        runs: &runs,
    };
    std::fs::write(&o.out, serde_json::to_string_pretty(&report)?)?;
    std::fs::write(o.out.with_extension("md"), &md)?;
    eprintln!(
        "raw results: {} (tables: {})",
        o.out.display(),
        o.out.with_extension("md").display()
    );
    let errors = runs.iter().filter(|r| r.error.is_some()).count();
    if errors > 0 {
        return Err(format!("{errors} of {} runs failed (see above)", runs.len()).into());
    }
    Ok(())
}

/// One run: a fresh server process, a fresh load process, the load's JSON result.
fn run_one(o: &Opts, server: Server, client: Generator, cell: &Cell) -> Result<LoadResult> {
    let srv = ServerProc::start_server(
        server,
        isosock::Compression::Disabled,
        o.pin.then_some(SERVER_CORE),
    )?;
    let args: Vec<String> = [
        ("--client", client.name().to_owned()),
        ("--conns", cell.conns.to_string()),
        ("--size", cell.size.to_string()),
        ("--mode", cell.mode.name().to_owned()),
        ("--window", cell.window.to_string()),
        ("--warmup", o.warmup.as_secs_f64().to_string()),
        ("--duration", o.duration.as_secs_f64().to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect();
    load_process(srv, &args, o.pin)
}

/// Runs `isosock-bench load --json ARGS` against `srv` (its URL and PID are passed), pinned to
/// the client core if `pin`, and returns its result; `srv` is stopped when the load ends.
pub fn load_process(srv: ServerProc, args: &[String], pin: bool) -> Result<LoadResult> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["load", "--json", "--url", &srv.url])
        .args(["--server-pid", &srv.pid.to_string()])
        .args(args);
    if pin {
        cmd.args(["--core", &CLIENT_CORE.to_string()]);
    }
    let out = cmd.stdin(Stdio::null()).output()?;
    drop(srv);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("load process {}: {}", out.status, err.trim()).into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .ok_or("load process printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

/// The median of `v` (the mean of the middle two for an even count; NaN when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn summarize(o: &Opts, stages: &[Stage], cells: &[Cell], runs: &[Run]) -> Vec<Summary> {
    let mut out = Vec::new();
    for &stage in stages {
        for cell in cells {
            for (subject, _, _) in stage.runs(o) {
                let rs: Vec<&LoadResult> = runs
                    .iter()
                    .filter(|r| r.stage == stage && r.cell == *cell)
                    .filter(|r| match stage.phase {
                        Phase::Servers => r.server == subject,
                        Phase::Clients => r.client == subject,
                    })
                    .filter_map(|r| r.result.as_ref())
                    .collect();
                let med =
                    |f: &dyn Fn(&LoadResult) -> f64| median(rs.iter().map(|r| f(r)).collect());
                out.push(Summary {
                    stage,
                    cell: *cell,
                    subject,
                    runs: rs.len(),
                    msgs_per_sec: med(&|r| r.msgs_per_sec),
                    mb_per_sec: med(&|r| r.mb_per_sec),
                    p50_us: med(&|r| r.p50_us),
                    p99_us: med(&|r| r.p99_us),
                    server_cpu_us_per_msg: med(&|r| r.server_cpu_us_per_msg.unwrap_or(f64::NAN)),
                    client_cpu_us_per_msg: med(&|r| r.client_cpu_us_per_msg),
                });
            }
        }
    }
    out
}

/// A whole number with thousands separators.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `v` with `digits` decimals.
pub fn fmt_f(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "n/a".into()
    }
}

/// Microseconds: no decimals from 100 up, one below.
pub fn fmt_us(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A ratio with two decimals.
pub fn fmt_ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "n/a".into()
    }
}

/// isosock's ratios to `peer`: throughput isosock/peer; CPU (the phase's subject) and
/// latency peer/isosock. Above 1.0 is better for isosock.
fn ratios(phase: Phase, iso: &Summary, peer: &Summary) -> [f64; 4] {
    let cpu = |s: &Summary| match phase {
        Phase::Servers => s.server_cpu_us_per_msg,
        Phase::Clients => s.client_cpu_us_per_msg,
    };
    [
        iso.msgs_per_sec / peer.msgs_per_sec,
        cpu(peer) / cpu(iso),
        peer.p50_us / iso.p50_us,
        peer.p99_us / iso.p99_us,
    ]
}

/// The geometric mean of the finite, positive values in `v`.
pub fn geomean(v: &[f64]) -> f64 {
    let v: Vec<f64> = v
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if v.is_empty() {
        return f64::NAN;
    }
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

fn markdown(o: &Opts, stages: &[Stage], m: &Machine, sums: &[Summary], took: Duration) -> String {
    let mut s = String::new();
    s += &format!(
        "Machine: {} ({} cores), Linux {}, {}. {} rounds per implementation in alternating \
         order, {:.1} s warm-up + {:.1} s measured per run{}; {}. Run took {:.0} s.\n\n",
        m.cpu,
        m.cores,
        m.kernel,
        m.rustc,
        o.rounds,
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64(),
        if o.quick { " (--quick)" } else { "" },
        if o.pin {
            "server pinned to core 0, load generator to core 1"
        } else {
            "not pinned"
        },
        took.as_secs_f64()
    );
    for &stage in stages {
        let phase = stage.phase;
        let (title, cpu_name) = match (phase, stage.load) {
            (Phase::Servers, Some(Generator::Raw)) => (
                "Servers (each server loaded by the raw-frame load generator: pre-built masked \
                 frames, echoes read by their headers, no WebSocket library)"
                    .to_owned(),
                "server",
            ),
            (Phase::Servers, load) => (
                format!(
                    "Servers (each server loaded by the {} client)",
                    load.map_or("isosock", Generator::name)
                ),
                "server",
            ),
            (Phase::Clients, _) => (
                format!(
                    "Clients (each client against the {} server)",
                    o.fixed_server.name()
                ),
                "client",
            ),
        };
        s += &format!(
            "### {title}\n\nRatios are isosock's: msgs/s isosock/peer, {cpu_name} CPU and \
             latency peer/isosock; above 1.00 is better for isosock.\n\n\
             | C | S | mode | W | {} | msgs/s | MB/s | p50 µs | p99 µs | server CPU µs/msg \
             | client CPU µs/msg | × msgs/s | × CPU | × p50 | × p99 |\n\
             | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
             | ---: | ---: | ---: |\n",
            match phase {
                Phase::Servers => "server",
                Phase::Clients => "client",
            }
        );
        let mut per_peer: Vec<(&str, Vec<[f64; 4]>)> = Vec::new();
        let rows: Vec<&Summary> = sums.iter().filter(|x| x.stage == stage).collect();
        for group in rows.chunk_by(|a, b| a.cell == b.cell) {
            let iso = group.iter().find(|x| x.subject == Impl::Isosock.name());
            for x in group {
                let r = match iso {
                    Some(iso) if x.subject != iso.subject => {
                        let r = ratios(phase, iso, x);
                        match per_peer.iter_mut().find(|(p, _)| *p == x.subject) {
                            Some((_, v)) => v.push(r),
                            None => per_peer.push((x.subject, vec![r])),
                        }
                        r.map(fmt_ratio)
                    }
                    _ => ["".into(), "".into(), "".into(), "".into()],
                };
                let c = x.cell;
                s += &format!(
                    "| {} | {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    c.conns,
                    fmt_size(c.size),
                    c.mode.name(),
                    c.window,
                    x.subject,
                    if x.runs < o.rounds {
                        format!(" ({} of {} runs)", x.runs, o.rounds)
                    } else {
                        String::new()
                    },
                    fmt_num(x.msgs_per_sec),
                    fmt_f(x.mb_per_sec, 1),
                    fmt_us(x.p50_us),
                    fmt_us(x.p99_us),
                    fmt_f(x.server_cpu_us_per_msg, 2),
                    fmt_f(x.client_cpu_us_per_msg, 2),
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                );
            }
        }
        if !per_peer.is_empty() {
            s += &format!(
                "\nGeometric mean of isosock's ratios over the {} cells above:\n\n\
                 | peer | × msgs/s | × {cpu_name} CPU | × p50 | × p99 |\n| --- | ---: | ---: | ---: | ---: |\n",
                per_peer.first().map_or(0, |(_, v)| v.len())
            );
            for (peer, v) in &per_peer {
                let g = |i: usize| geomean(&v.iter().map(|r| r[i]).collect::<Vec<_>>());
                s += &format!(
                    "| {peer} | {} | {} | {} | {} |\n",
                    fmt_ratio(g(0)),
                    fmt_ratio(g(1)),
                    fmt_ratio(g(2)),
                    fmt_ratio(g(3))
                );
            }
        }
        s += "\n";
        s += &versus_best(stage, &rows, Server::Impl(Impl::Isosock));
        if phase == Phase::Servers {
            s += &versus_best(stage, &rows, Server::IsosockForward);
        }
        s += &engines(stage, &rows);
    }
    s
}

/// The row of `imp` among one cell's rows.
fn find<'a>(group: &[&'a Summary], imp: Impl) -> Option<&'a Summary> {
    group.iter().copied().find(|x| x.subject == imp.name())
}

/// The wrapper's targets: isosock-tungstenite's msgs/s at least this share of raw
/// tokio-tungstenite's with the same configuration ...
const WRAPPER_MSGS: f64 = 0.97;
/// ... and its CPU per message at most this multiple of it.
const WRAPPER_CPU: f64 = 1.03;

/// The engine comparison of one phase (empty unless both `isosock-tungstenite` and
/// `tungstenite-same` ran): per cell, the wrapper's msgs/s and CPU per message (the phase's
/// subject: server or client) against raw tokio-tungstenite's with the same configuration, the
/// ratios (wrapper ÷ raw, both), their geometric means and the cells that miss the targets;
/// then, if `isosock` ran too, the own engine against the tungstenite engine.
fn engines(stage: Stage, rows: &[&Summary]) -> String {
    let phase = stage.phase;
    let cpu = |s: &Summary| match phase {
        Phase::Servers => s.server_cpu_us_per_msg,
        Phase::Clients => s.client_cpu_us_per_msg,
    };
    let (wrapper, raw, own) = (
        Impl::IsosockTungstenite,
        Impl::TungsteniteSame,
        Impl::Isosock,
    );
    let role = match phase {
        Phase::Servers => "server",
        Phase::Clients => "client",
    };
    let mut table = String::new();
    let (mut msgs, mut cpus, mut own_msgs, mut own_cpus) = (vec![], vec![], vec![], vec![]);
    // The cells with the lowest × msgs/s and the highest × CPU.
    let mut worst_msgs: Option<(f64, Cell)> = None;
    let mut worst_cpu: Option<(f64, Cell)> = None;
    for group in rows.chunk_by(|a, b| a.cell == b.cell) {
        let (Some(w), Some(r)) = (find(group, wrapper), find(group, raw)) else {
            continue;
        };
        let (rm, rc) = (w.msgs_per_sec / r.msgs_per_sec, cpu(w) / cpu(r));
        msgs.push(rm);
        cpus.push(rc);
        if worst_msgs.is_none_or(|(m, _)| rm < m) {
            worst_msgs = Some((rm, w.cell));
        }
        if worst_cpu.is_none_or(|(c, _)| rc > c) {
            worst_cpu = Some((rc, w.cell));
        }
        if let Some(o) = find(group, own) {
            own_msgs.push(o.msgs_per_sec / w.msgs_per_sec);
            own_cpus.push(cpu(o) / cpu(w));
        }
        let mut misses = Vec::new();
        // A missing figure (NaN) counts as a miss.
        if rm.is_nan() || rm < WRAPPER_MSGS {
            misses.push("msgs/s");
        }
        if rc.is_nan() || rc > WRAPPER_CPU {
            misses.push("CPU");
        }
        let c = w.cell;
        table += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            c.mode.name(),
            c.conns,
            fmt_size(c.size),
            c.window,
            fmt_num(w.msgs_per_sec),
            fmt_num(r.msgs_per_sec),
            fmt_f(rm, 3),
            fmt_f(cpu(w), 2),
            fmt_f(cpu(r), 2),
            fmt_f(rc, 3),
            if misses.is_empty() {
                "met".to_owned()
            } else {
                format!("misses {}", misses.join(", "))
            },
        );
    }
    if msgs.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "#### {}: {} against {} (same WebSocketConfig)\n\n\
         isosock on its tokio-tungstenite engine against tokio-tungstenite configured as that \
         engine configures it. × msgs/s is {} ÷ {}, × CPU the same for the {role}'s CPU per \
         message; targets ≥ {WRAPPER_MSGS:.2}× msgs/s and ≤ {WRAPPER_CPU:.2}× CPU.\n\n\
         | mode | C | S | W | msgs/s {} | msgs/s {} | × msgs/s | {role} CPU µs/msg {} \
         | {role} CPU µs/msg {} | × CPU | target |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
        stage.label(),
        wrapper.name(),
        raw.name(),
        wrapper.name(),
        raw.name(),
        wrapper.name(),
        raw.name(),
        wrapper.name(),
        raw.name(),
    );
    s += &table;
    s += &format!(
        "| geometric mean | | | | | | {} | | | {} | |\n\n",
        fmt_f(geomean(&msgs), 3),
        fmt_f(geomean(&cpus), 3)
    );
    let at = |c: Cell| format!("{} C={} S={}", c.mode.name(), c.conns, fmt_size(c.size));
    if let (Some((m, mc)), Some((c, cc))) = (worst_msgs, worst_cpu) {
        s += &format!(
            "Worst cells: × msgs/s {} ({}), × CPU {} ({}).\n\n",
            fmt_f(m, 3),
            at(mc),
            fmt_f(c, 3),
            at(cc)
        );
    }
    if !own_msgs.is_empty() {
        s += &format!(
            "Own engine against the tungstenite engine over the {} cells: msgs/s {} ÷ {} \
             {} (geometric mean), {role} CPU per message {} ÷ {} {}.\n\n",
            own_msgs.len(),
            own.name(),
            wrapper.name(),
            fmt_ratio(geomean(&own_msgs)),
            own.name(),
            wrapper.name(),
            fmt_ratio(geomean(&own_cpus)),
        );
    }
    s
}

/// The per-cell check against the targets: isosock against the fastest peer
/// (msgs/s), the leanest (CPU per message) and the one with the lowest p99, with the target
/// (≥ 1.0× up to 1 KiB, ≥ 0.8× above; p99 ≤ 1.05×) and what misses it.
fn versus_best(stage: Stage, rows: &[&Summary], subject: Server) -> String {
    let phase = stage.phase;
    let name = subject.name();
    if !rows.iter().any(|x| x.subject == name) {
        return String::new();
    }
    let cpu = |s: &Summary| match phase {
        Phase::Servers => s.server_cpu_us_per_msg,
        Phase::Clients => s.client_cpu_us_per_msg,
    };
    let mut s = format!(
        "#### {}: {name} against the best peer in each cell\n\n\
         × msgs/s is {name} ÷ the fastest peer, × CPU the leanest peer's CPU per message ÷ \
         {name}'s, × p99 {name}'s p99 ÷ the lowest peer p99 (below 1 is better there). \
         Throughput counts as met when msgs/s or CPU reaches the target.\n\n\
         | mode | C | S | × msgs/s | fastest | × CPU | leanest | × p99 | lowest p99 | target |\n\
         | --- | ---: | ---: | ---: | --- | ---: | --- | ---: | --- | --- |\n",
        stage.label()
    );
    for group in rows.chunk_by(|a, b| a.cell == b.cell) {
        let Some(iso) = group.iter().find(|x| x.subject == name) else {
            continue;
        };
        // isosock in another style or on its tungstenite engine is isosock, not a peer.
        let peers: Vec<&&Summary> = group
            .iter()
            .filter(|x| !Server::parse(x.subject).is_ok_and(Server::is_isosock))
            .collect();
        let best = |key: &dyn Fn(&Summary) -> f64, most: bool| {
            peers
                .iter()
                .filter(|p| key(p).is_finite())
                .max_by(|a, b| {
                    let o = key(a).total_cmp(&key(b));
                    if most {
                        o
                    } else {
                        o.reverse()
                    }
                })
                .copied()
        };
        let (Some(fast), Some(lean), Some(low)) = (
            best(&|x| x.msgs_per_sec, true),
            best(&cpu, false),
            best(&|x| x.p99_us, false),
        ) else {
            continue;
        };
        let rm = iso.msgs_per_sec / fast.msgs_per_sec;
        let rc = cpu(lean) / cpu(iso);
        let rp = iso.p99_us / low.p99_us;
        let c = iso.cell;
        let target = if c.size <= 1 << 10 { 1.0 } else { 0.8 };
        let mut misses = Vec::new();
        if rm < target && rc < target {
            misses.push(format!("throughput ({rm:.2} msgs/s, {rc:.2} CPU)"));
        }
        if rp > 1.05 {
            misses.push(format!("p99 {rp:.2}"));
        }
        let verdict = if misses.is_empty() {
            "met".to_owned()
        } else {
            format!("misses {}", misses.join(", "))
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | ≥ {target:.1}: {verdict} |\n",
            c.mode.name(),
            c.conns,
            fmt_size(c.size),
            fmt_ratio(rm),
            fast.subject,
            fmt_ratio(rc),
            lean.subject,
            fmt_ratio(rp),
            low.subject,
        );
    }
    s + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_keep_in_flight_data_bounded() {
        let o = parse_opts(&[]).expect("defaults");
        assert_eq!(window_for(&o, 1, 16, Mode::Pipeline), 16);
        assert_eq!(window_for(&o, 1000, 64 << 10, Mode::Pipeline), 4);
        assert_eq!(window_for(&o, 1000, 1 << 20, Mode::Pipeline), 1);
        assert_eq!(window_for(&o, 64, 1 << 20, Mode::PingPong), 1);
        for c in [1, 64, 1000] {
            for s in [16, 1 << 10, 64 << 10] {
                assert!(c * s * window_for(&o, c, s, Mode::Pipeline) <= 256 << 20);
            }
        }
    }

    #[test]
    fn servers_run_under_each_load_with_the_forward_servers() {
        let o = parse_opts(&[]).expect("defaults");
        let stages = Stage::all(&o);
        let labels: Vec<String> = stages.iter().map(Stage::label).collect();
        assert_eq!(
            labels,
            ["Servers, raw load", "Servers, isosock client", "Clients"]
        );
        let servers: Vec<&str> = stages[0].runs(&o).iter().map(|r| r.0).collect();
        assert_eq!(
            servers,
            [
                "isosock",
                "isosock-forward",
                "tungstenite",
                "tungstenite-forward",
                "tungstenite-tuned",
                "fastwebsockets",
                "tokio-websockets"
            ]
        );
        assert!(stages[0].runs(&o).iter().all(|r| r.2 == Generator::Raw));
        let argv: Vec<String> = ["--load", "isosock", "--servers", "tungstenite-forward"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse_opts(&argv).expect("parses");
        let runs = Stage::all(&o)[0].runs(&o);
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (runs[0].1, runs[0].2),
            (Server::TungsteniteForward, Generator::Client(Impl::Isosock))
        );
    }

    #[test]
    fn medians_and_formatting() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![1.0, 2.0]), 1.5);
        assert_eq!(fmt_num(1234567.4), "1,234,567");
        assert_eq!(fmt_num(999.0), "999");
        assert!((geomean(&[2.0, 0.5]) - 1.0).abs() < 1e-9);
    }
}
