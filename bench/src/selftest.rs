//! `selftest`: every server answers every client correctly. For each server x client pair, one
//! connection exchanges text and binary messages of the sizes around each frame-length
//! boundary (0, 125/126, 65535/65536 bytes) up to 1 MiB one at a time, and a second connection
//! sends them all back to back on its split halves while reading; every echo must match in
//! type and content. Any mismatch fails the run. The pairs include isosock on its
//! tokio-tungstenite engine (`isosock-tungstenite`) and its raw baseline (`tungstenite-same`),
//! as servers and as clients, and the `forward` servers (`isosock-forward`,
//! `tungstenite-forward`) as servers. Every server also answers the raw-frame client
//! ([`crate::rawload`]): the same messages one at a time and back to back, each echo checked
//! byte for byte, then a short run of the raw load generator itself, ping-pong and pipelined.
//! Then the compression benchmark's Rust servers (isosock and yawc) in each
//! permessage-deflate mode, with the isosock client in that mode.

use std::time::Duration;

use bytes::Bytes;

use crate::args::Args;
use isosock::Compression;

use crate::child::ServerProc;
use crate::clients::{Client, ClientOpts, Rx, Tx};
use crate::deflate::mode_name;
use crate::handshake::WsUrl;
use crate::load::{self, Generator, LoadSpec};
use crate::payload::Payload;
use crate::servers::Server;
use crate::{Impl, Mode, Result};

const SIZES: [usize; 11] = [
    0,
    1,
    125,
    126,
    127,
    1000,
    65535,
    65536,
    65537,
    100_000,
    1 << 20,
];
const PAIR_TIMEOUT: Duration = Duration::from_secs(60);

/// Entry point of `isosock-bench selftest`.
pub fn main(argv: &[String]) -> Result<()> {
    let a = Args::parse(argv, &[])?;
    let servers = a.list("servers", Server::all_echo(), Server::parse)?;
    let mut all_clients: Vec<Generator> = Impl::ALL.into_iter().map(Generator::Client).collect();
    all_clients.push(Generator::Raw);
    let clients = a.list("clients", all_clients, Generator::parse)?;
    let cases = cases();
    let mut passed = 0;
    let mut failures = Vec::new();
    let mut pairs = Vec::new();
    for &s in &servers {
        for &c in &clients {
            pairs.push((s, c, Compression::Disabled));
        }
    }
    for s in [Server::Impl(Impl::Isosock), Server::Yawc] {
        for mode in [Compression::NoContextTakeover, Compression::ContextTakeover] {
            pairs.push((s, Generator::Client(Impl::Isosock), mode));
        }
    }
    let mut server: Option<(Server, Compression, ServerProc)> = None;
    for (s, c, mode) in pairs {
        if !matches!(&server, Some((s0, m0, _)) if (*s0, *m0) == (s, mode)) {
            drop(server.take());
            server = Some((s, mode, ServerProc::start_server(s, mode, None)?));
        }
        let Some((_, _, proc_)) = &server else {
            continue;
        };
        let what = if mode == Compression::Disabled {
            format!("server {:<19} client {}", s.name(), c.name())
        } else {
            format!(
                "server {:<19} client {} ({})",
                s.name(),
                c.name(),
                mode_name(mode)
            )
        };
        let checked = match c {
            Generator::Client(c) => check_pair(c, &proc_.url, &cases, mode),
            Generator::Raw => check_raw(&proc_.url, &cases),
        };
        match checked {
            Ok(()) => {
                passed += 1;
                println!("ok    {what}");
            }
            Err(e) => {
                println!("FAIL  {what}: {e}");
                failures.push(format!("{what}: {e}"));
            }
        }
    }
    println!("selftest: {passed} passed, {} failed", failures.len());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} pair(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        )
        .into())
    }
}

/// The messages each pair exchanges: every size as binary, then as text.
fn cases() -> Vec<(bool, Bytes)> {
    let mut out = Vec::new();
    for &n in &SIZES {
        out.push((false, binary(n)));
    }
    for &n in &SIZES {
        out.push((true, text(n)));
    }
    out
}

/// `n` pseudo-random bytes (xorshift), so a masking or offset bug cannot go unnoticed.
fn binary(n: usize) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ n as u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Exactly `n` bytes of UTF-8 with 1- to 4-byte characters.
fn text(n: usize) -> Bytes {
    let chars = ['a', 'é', '€', '😀', 'z', ' '];
    let mut s = String::with_capacity(n);
    let mut i = 0;
    while s.len() < n {
        let c = chars[i % chars.len()];
        s.push(if s.len() + c.len_utf8() <= n { c } else { 'x' });
        i += 1;
    }
    Bytes::from(s)
}

fn compare(i: usize, sent: &(bool, Bytes), got: &(bool, Bytes)) -> Result<()> {
    let kind = |t: bool| if t { "text" } else { "binary" };
    if sent.0 != got.0 || sent.1 != got.1 {
        return Err(format!(
            "message {i}: sent {} of {} bytes, got {} of {} bytes{}",
            kind(sent.0),
            sent.1.len(),
            kind(got.0),
            got.1.len(),
            if sent.1.len() == got.1.len() {
                " with different content"
            } else {
                ""
            }
        )
        .into());
    }
    Ok(())
}

/// The raw-frame client against the server at `url`: `cases` one at a time and back to back,
/// then the raw load generator for a moment in each mode (text, then binary messages), so
/// that its measurement path runs too.
fn check_raw(url: &str, cases: &[(bool, Bytes)]) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ws_url = WsUrl::parse(url)?;
    rt.block_on(async {
        tokio::time::timeout(PAIR_TIMEOUT, crate::rawload::exchange_all(&ws_url, cases)).await
    })
    .map_err(|_| "raw frames: timed out")??;
    drop(rt);
    for (mode, payload, size) in [
        (Mode::PingPong, Payload::Json, 200),
        (Mode::Pipeline, Payload::Random, 70_000),
    ] {
        let spec = LoadSpec {
            client: Generator::Raw,
            url: url.to_owned(),
            conns: 3,
            size,
            payload,
            compression: Compression::Disabled,
            wire: false,
            mode,
            window: 8,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(100),
            server_pid: None,
        };
        load::run(&spec).map_err(|e| format!("raw load, {}: {e}", mode.name()))?;
    }
    Ok(())
}

fn check_pair(
    client: Impl,
    url: &str,
    cases: &[(bool, Bytes)],
    compression: Compression,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let run =
            async { crate::with_client!(client, C => pair::<C>(url, cases, compression).await) };
        tokio::time::timeout(PAIR_TIMEOUT, run)
            .await
            .map_err(|_| "timed out")?
    })
}

async fn pair<C: Client>(
    url_str: &str,
    cases: &[(bool, Bytes)],
    compression: isosock::Compression,
) -> Result<()> {
    let url = WsUrl::parse(url_str)?;
    let limit = &ClientOpts {
        read_limit: 2 << 20,
        compression,
    };

    let mut d = C::connect(&url, url_str, limit).await?.duplex();
    for (i, case) in cases.iter().enumerate() {
        d.send(case.0, &case.1).await?;
        let got = d.recv().await?;
        compare(i, case, &got).map_err(|e| format!("one at a time: {e}"))?;
    }

    let (mut tx, mut rx) = C::connect(&url, url_str, limit).await?.split();
    let writer = async {
        for case in cases {
            tx.send(case.0, &case.1).await?;
        }
        Ok::<(), crate::Error>(())
    };
    let reader = async {
        for (i, case) in cases.iter().enumerate() {
            let got = rx.recv().await?;
            compare(i, case, &got).map_err(|e| format!("pipelined: {e}"))?;
        }
        Ok::<(), crate::Error>(())
    };
    tokio::try_join!(writer, reader)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_exact_sizes() {
        for &n in &SIZES {
            assert_eq!(binary(n).len(), n);
            let t = text(n);
            assert_eq!(t.len(), n);
            assert!(std::str::from_utf8(&t).is_ok());
        }
    }
}
