//! `idle-memory`: the server's resident memory per idle connection, and what stays resident
//! after every connection has echoed one large message.
//!
//! For each server: start it (pinned to core 0), read its VmRSS, open N connections (raw
//! clients, [`crate::raw`], so this process stays small), wait a second, read VmRSS again; then
//! every connection sends one message of `--size` (1 MiB) and reads the echo, 16 connections at
//! a time, and after another second VmRSS is read a third time. VmHWM gives the peak.

use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;

use crate::args::{self, Args};
use crate::child::ServerProc;
use crate::handshake::WsUrl;
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
