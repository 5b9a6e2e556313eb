//! `idle-memory`: the server's resident memory per idle connection, and what stays resident
//! after every connection has echoed one large message.
//!
//! For each server: start it (pinned to core 0), read its VmRSS, open N connections (raw
//! clients, [`crate::raw`], so this process stays small), wait a second, read VmRSS again; then
//! every connection sends one message of `--size` (1 MiB) and reads the echo, 16 connections at
//! a time, and after another second VmRSS is read a third time. VmHWM gives the peak.
//!
//! With `--compression MODES` it measures isosock's permessage-deflate state instead, on both
//! sides: per mode, an isosock server in that mode (core 0) and a `hold` process (core 1) of N
//! isosock clients in the same mode. Both processes' VmRSS is read at start, with the N
//! connections idle after the handshake, and after one JSON message each way per connection
//! (16 connections at a time); KiB per connection is the RSS difference from the start over N.

use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use bytes::Bytes;
use isosock::Compression;

use crate::args::{self, Args};
use crate::child::ServerProc;
use crate::deflate::{mode_name, parse_mode};
use crate::handshake::WsUrl;
use crate::payload::Payload;
use crate::servers::Server;
use crate::{raw, sys, Impl, Result};

const CONNECT_CONCURRENCY: usize = 64;
const EXCHANGE_CONCURRENCY: usize = 16;
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize)]
struct Row {
    server: String,
    conns: usize,
    message_size: usize,
    rss_start_kib: u64,
    rss_idle_kib: u64,
    kib_per_idle_conn: f64,
    /// Connections that completed the large echo (all of them unless the RSS cap stopped it).
    exchanged: usize,
    rss_after_kib: u64,
    kib_per_conn_after: f64,
    kib_retained_per_conn_beyond_idle: f64,
    peak_rss_kib: u64,
    capped: bool,
}

/// Entry point of `isosock-bench idle-memory`.
pub fn main(argv: &[String]) -> Result<()> {
    let a = Args::parse(argv, &["no-pin"])?;
    if a.get("compression").is_some() {
        return compression_main(&a);
    }
    let conns: usize = a.value("conns", 10_000)?;
    let size = args::parse_size(a.get("size").unwrap_or("1MiB"))?;
    let cap_kib = (args::parse_size(a.get("rss-cap").unwrap_or("4096MiB"))? / 1024) as u64;
    let impls = a.list("impls", Impl::ALL.to_vec(), Impl::parse)?;
    let pin = !a.switch("no-pin");

    // Fail loudly, before starting anything, if this process cannot hold the connections.
    let limit = sys::raise_nofile(conns as u64 + 256)?;
    eprintln!("RLIMIT_NOFILE raised to {limit}");
    if pin {
        sys::pin_to_core(1)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let frame = raw::masked_binary_frame(size);
    let mut rows = Vec::new();
    for imp in impls {
        eprintln!("{}: {conns} connections ...", imp.name());
        let mut server = ServerProc::start(imp, pin.then_some(0))?;
        let row = rt.block_on(measure(imp, &mut server, conns, size, &frame, cap_kib))?;
        eprintln!(
            "{}: {:.1} KiB per idle connection, {:.1} KiB per connection after a {} echo",
            row.server,
            row.kib_per_idle_conn,
            row.kib_per_conn_after,
            args::fmt_size(size)
        );
        rows.push(row);
    }

    let md = table(&rows, conns, size);
    println!("{md}");
    let dir = crate::matrix::out_dir()?;
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("idle-memory.json");
    std::fs::write(&path, serde_json::to_string_pretty(&rows)?)?;
    std::fs::write(dir.join("idle-memory.md"), &md)?;
    eprintln!("raw results: {}", path.display());
    Ok(())
}

async fn measure(
    imp: Impl,
    server: &mut ServerProc,
    conns: usize,
    size: usize,
    frame: &[u8],
    cap_kib: u64,
) -> Result<Row> {
    let url = WsUrl::parse(&server.url)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_start = sys::vm_rss_kib(server.pid)?;

    let mut streams = Vec::with_capacity(conns);
    let mut connecting = futures_util::stream::iter(0..conns)
        .map(|_| raw::connect(&url))
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some(s) = connecting.next().await {
        streams.push(s.map_err(|e| format!("connection {}: {e}", streams.len() + 1))?);
    }
    drop(connecting);
    tokio::time::sleep(SETTLE).await;
    if !server.alive() {
        return Err(format!("the {} server died with {conns} connections", imp.name()).into());
    }
    let rss_idle = sys::vm_rss_kib(server.pid)?;

    // One large echo per connection, a few at a time, watching the server's RSS.
    let mut exchanged = 0;
    let mut capped = false;
    {
        let mut exchanges = futures_util::stream::iter(streams.iter_mut())
            .map(|s| raw::exchange(s, frame, size))
            .buffer_unordered(EXCHANGE_CONCURRENCY);
        while let Some(r) = exchanges.next().await {
            r.map_err(|e| format!("{} echo on connection {exchanged}: {e}", imp.name()))?;
            exchanged += 1;
            if exchanged % 64 == 0 && sys::vm_rss_kib(server.pid)? > cap_kib {
                capped = true;
                break;
            }
        }
    }
    tokio::time::sleep(SETTLE).await;
    let rss_after = sys::vm_rss_kib(server.pid)?;
    let peak = sys::status_kib(server.pid, "VmHWM")?;
    drop(streams);

    let per = |kib: u64, base: u64, n: usize| (kib as f64 - base as f64) / n.max(1) as f64;
    Ok(Row {
        server: imp.name().to_owned(),
        conns,
        message_size: size,
        rss_start_kib: rss_start,
        rss_idle_kib: rss_idle,
        kib_per_idle_conn: per(rss_idle, rss_start, conns),
        exchanged,
        rss_after_kib: rss_after,
        kib_per_conn_after: per(rss_after, rss_start, conns),
        kib_retained_per_conn_beyond_idle: per(rss_after, rss_idle, exchanged),
        peak_rss_kib: peak,
        capped,
    })
}

fn table(rows: &[Row], conns: usize, size: usize) -> String {
    let mib = |k: u64| k as f64 / 1024.0;
    let mut s = format!(
        "### Server memory: {conns} idle connections, then one {} echo each\n\n\
         | server | RSS at start (MiB) | RSS idle (MiB) | KiB per idle conn | RSS after echoes (MiB) \
         | KiB per conn after | KiB retained per conn beyond idle | peak RSS (MiB) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        args::fmt_size(size)
    );
    for r in rows {
        let note = if r.capped {
            format!(" (stopped at the RSS cap after {} echoes)", r.exchanged)
        } else {
            String::new()
        };
        s += &format!(
            "| {}{note} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            r.server,
            mib(r.rss_start_kib),
            mib(r.rss_idle_kib),
            r.kib_per_idle_conn,
            mib(r.rss_after_kib),
            r.kib_per_conn_after,
            r.kib_retained_per_conn_beyond_idle,
            mib(r.peak_rss_kib),
        );
    }
    s
}

// ---- permessage-deflate: both sides, per mode ----

/// One mode's memory, server and client processes.
#[derive(Debug, Serialize)]
struct ModeRow {
    mode: &'static str,
    round: usize,
    conns: usize,
    message_size: usize,
    /// What the first connection agreed.
    extensions: String,
    /// Connections that completed the exchange (all unless the RSS cap stopped it).
    exchanged: usize,
    capped: bool,
    server: Side,
    client: Side,
}

/// One process's VmRSS readings, KiB, and what they give per connection.
#[derive(Debug, Default, Serialize)]
struct Side {
    rss_start_kib: u64,
    rss_idle_kib: u64,
    rss_after_kib: u64,
    peak_rss_kib: u64,
    kib_per_conn_idle: f64,
    kib_per_conn_after: f64,
}

impl Side {
    fn finish(&mut self, conns: usize, exchanged: usize) {
        let base = self.rss_start_kib as f64;
        self.kib_per_conn_idle = (self.rss_idle_kib as f64 - base) / conns.max(1) as f64;
        // Exchanged connections hold what a message leaves behind; the others are still idle.
        let idle_rest = self.kib_per_conn_idle * (conns - exchanged) as f64;
        self.kib_per_conn_after =
            (self.rss_after_kib as f64 - base - idle_rest) / exchanged.max(1) as f64;
    }
}

/// A running `isosock-bench hold` process, driven a line at a time.
struct Holder {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn start(
        url: &str,
        conns: usize,
        mode: Compression,
        size: usize,
        cap_kib: u64,
        server_pid: u32,
        core: Option<usize>,
    ) -> Result<Holder> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["hold", "--url", url, "--conns", &conns.to_string()])
            .args([
                "--compression",
                mode_name(mode),
                "--size",
                &size.to_string(),
            ])
            .args([
                "--rss-cap-kib",
                &cap_kib.to_string(),
                "--server-pid",
                &server_pid.to_string(),
            ]);
        if let Some(c) = core {
            cmd.args(["--core", &c.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = child.id();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("hold: no pipes".into());
        };
        let mut h = Holder {
            child,
            pid,
            stdin,
            stdout: BufReader::new(stdout),
        };
        h.expect("ready")?;
        Ok(h)
    }

    /// Sends a command and waits for the reply line starting with `reply`; returns its rest.
    fn ask(&mut self, cmd: &str, reply: &str) -> Result<String> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        self.expect(reply)
    }

    fn expect(&mut self, reply: &str) -> Result<String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        line.trim_end()
            .strip_prefix(reply)
            .map(|r| r.trim().to_owned())
            .ok_or_else(|| format!("hold: expected {reply:?}, got {line:?}").into())
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn compression_main(a: &Args) -> Result<()> {
    let modes = a.list("compression", crate::deflate::MODES.to_vec(), parse_mode)?;
    let conns: usize = a.value("conns", 10_000)?;
    let size = args::parse_size(a.get("size").unwrap_or("1KiB"))?;
    let cap_kib = (args::parse_size(a.get("rss-cap").unwrap_or("4096MiB"))? / 1024) as u64;
    let rounds: usize = a.value("rounds", 1)?;
    let pin = !a.switch("no-pin");
    let mut rows = Vec::new();
    for round in 0..rounds {
        for &mode in &modes {
            eprintln!("isosock, {}: {conns} connections ...", mode_name(mode));
            let row = measure_mode(mode, round, conns, size, cap_kib, pin)?;
            eprintln!(
                "isosock, {}: server {:.1} KiB/conn idle, {:.1} after; client {:.1} idle, {:.1} after ({:?})",
                row.mode,
                row.server.kib_per_conn_idle,
                row.server.kib_per_conn_after,
                row.client.kib_per_conn_idle,
                row.client.kib_per_conn_after,
                row.extensions,
            );
            rows.push(row);
        }
    }
    let md = mode_table(&rows, conns, size);
    println!("{md}");
    let dir = crate::matrix::out_dir()?;
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("compression-memory.json");
    std::fs::write(&path, serde_json::to_string_pretty(&rows)?)?;
    std::fs::write(dir.join("compression-memory.md"), &md)?;
    eprintln!("raw results: {}", path.display());
    Ok(())
}

fn measure_mode(
    mode: Compression,
    round: usize,
    conns: usize,
    size: usize,
    cap_kib: u64,
    pin: bool,
) -> Result<ModeRow> {
    let mut server = ServerProc::start_server(Server::Impl(Impl::Isosock), mode, pin.then_some(0))?;
    let mut holder = Holder::start(
        &server.url,
        conns,
        mode,
        size,
        cap_kib,
        server.pid,
        pin.then_some(1),
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let (mut s, mut c) = (Side::default(), Side::default());
    s.rss_start_kib = sys::vm_rss_kib(server.pid)?;
    c.rss_start_kib = sys::vm_rss_kib(holder.pid)?;

    let extensions = holder.ask("connect", "connected")?;
    std::thread::sleep(SETTLE);
    if !server.alive() {
        return Err(format!("the isosock server died with {conns} connections").into());
    }
    s.rss_idle_kib = sys::vm_rss_kib(server.pid)?;
    c.rss_idle_kib = sys::vm_rss_kib(holder.pid)?;

    let done = holder.ask("exchange", "exchanged")?;
    let (exchanged, capped) = match done.split_once(' ') {
        Some((n, flag)) => (n.parse()?, flag == "capped"),
        None => (done.parse()?, false),
    };
    std::thread::sleep(SETTLE);
    s.rss_after_kib = sys::vm_rss_kib(server.pid)?;
    c.rss_after_kib = sys::vm_rss_kib(holder.pid)?;
    s.peak_rss_kib = sys::status_kib(server.pid, "VmHWM")?;
    c.peak_rss_kib = sys::status_kib(holder.pid, "VmHWM")?;
    s.finish(conns, exchanged);
    c.finish(conns, exchanged);
    drop(holder);
    Ok(ModeRow {
        mode: mode_name(mode),
        round,
        conns,
        message_size: size,
        extensions,
        exchanged,
        capped,
        server: s,
        client: c,
    })
}

fn mode_table(rows: &[ModeRow], conns: usize, size: usize) -> String {
    let mib = |k: u64| k as f64 / 1024.0;
    let mut s = format!(
        "### isosock memory per connection by compression mode: {conns} connections, idle, \
         then one {} JSON message each way\n\n\
         | mode | server KiB/conn idle | server KiB/conn after | client KiB/conn idle \
         | client KiB/conn after | server peak (MiB) | client peak (MiB) | extensions |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
        args::fmt_size(size)
    );
    for r in rows {
        let note = if r.capped {
            format!(" (stopped at the RSS cap after {} exchanges)", r.exchanged)
        } else {
            String::new()
        };
        s += &format!(
            "| {}{note} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | `{}` |\n",
            r.mode,
            r.server.kib_per_conn_idle,
            r.server.kib_per_conn_after,
            r.client.kib_per_conn_idle,
            r.client.kib_per_conn_after,
            mib(r.server.peak_rss_kib),
            mib(r.client.peak_rss_kib),
            r.extensions,
        );
    }
    s
}

/// Entry point of `isosock-bench hold` (the memory test's client process): prints `ready`;
/// on `connect` opens N isosock connections in the mode and prints `connected EXTENSIONS`; on
/// `exchange` sends one JSON message of `--size` on each (16 connections at a time), checks
/// its echo and prints `exchanged K` (`K capped` if an RSS cap stopped it); exits at end of
/// input. Nothing runs between commands: the connections sit idle.
pub fn hold(argv: &[String]) -> Result<()> {
    let a = Args::parse(argv, &[])?;
    let url = a.get("url").ok_or("hold: --url is required")?.to_owned();
    let conns: usize = a.value("conns", 10_000)?;
    let mode = parse_mode(a.get("compression").unwrap_or("disabled"))?;
    let size = args::parse_size(a.get("size").unwrap_or("1KiB"))?;
    let cap_kib: u64 = a.value("rss-cap-kib", u64::MAX)?;
    let server_pid: Option<u32> = a.get("server-pid").map(str::parse).transpose()?;
    if let Some(core) = a.get("core") {
        sys::pin_to_core(core.parse()?)?;
    }
    sys::raise_nofile(conns as u64 + 256)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let msgs = Payload::Json.messages(size);
    let mut out = std::io::stdout().lock();
    let mut lines = std::io::stdin().lock().lines();
    writeln!(out, "ready")?;
    out.flush()?;

    let mut held: Vec<isosock::Conn> = Vec::new();
    while let Some(cmd) = lines.next().transpose()? {
        match cmd.trim() {
            "connect" => {
                held = rt.block_on(connect_all(&url, conns, mode))?;
                let ext = held
                    .first()
                    .map(|c| c.extensions().to_owned())
                    .unwrap_or_default();
                writeln!(out, "connected {ext}")?;
            }
            "exchange" => {
                let (n, capped) = rt.block_on(exchange_all(&held, &msgs, cap_kib, server_pid))?;
                writeln!(out, "exchanged {n}{}", if capped { " capped" } else { "" })?;
            }
            other => return Err(format!("hold: unknown command {other:?}").into()),
        }
        out.flush()?;
    }
    Ok(())
}

async fn connect_all(url: &str, conns: usize, mode: Compression) -> Result<Vec<isosock::Conn>> {
    let opts = isosock::DialOptions::new().compression(mode);
    let mut held = Vec::with_capacity(conns);
    let mut connecting = futures_util::stream::iter(0..conns)
        .map(|_| isosock::dial(url, &opts))
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some(r) = connecting.next().await {
        let (conn, _) = r.map_err(|e| format!("connection {}: {e}", held.len() + 1))?;
        if mode != Compression::Disabled && conn.extensions().is_empty() {
            return Err("the server declined permessage-deflate".into());
        }
        held.push(conn);
    }
    Ok(held)
}

async fn exchange_all(
    held: &[isosock::Conn],
    msgs: &[Bytes],
    cap_kib: u64,
    server_pid: Option<u32>,
) -> Result<(usize, bool)> {
    let mut exchanges = futures_util::stream::iter(held.iter().enumerate())
        .map(|(i, conn)| async move {
            let sent = &msgs[i % msgs.len()];
            let text = String::from_utf8(sent.to_vec())?;
            conn.write(isosock::Message::Text(text)).await?;
            match conn.read().await? {
                isosock::Message::Text(t) if t.as_bytes() == &sent[..] => Ok(()),
                _ => Err(crate::Error::from(format!("connection {i}: wrong echo"))),
            }
        })
        .buffer_unordered(EXCHANGE_CONCURRENCY);
    let mut n = 0;
    while let Some(r) = exchanges.next().await {
        r?;
        n += 1;
        if n % 64 == 0 {
            let me = sys::vm_rss_kib(std::process::id())?;
            let server = server_pid.map(sys::vm_rss_kib).transpose()?.unwrap_or(0);
            if me.max(server) > cap_kib {
                return Ok((n, true));
            }
        }
    }
    Ok((n, false))
}
