//! The load generator: C connections of one client implementation (or of the raw-frame
//! client, [`crate::rawload`]), messages of S bytes, in ping-pong (one outstanding message per
//! connection) or pipeline mode (a window of W), for a fixed time after a warm-up.
//!
//! It runs on one thread (a current-thread tokio runtime), so that pinning it to one core pins
//! all of it. Only echoes received during the measured interval count; their round trip is
//! timed from just before the send. CPU time of the server process and of this process is read
//! from /proc at the interval's two ends.
//!
//! With `wire`, the bytes the connections' sockets carried (frames as written and read, from
//! `ss`) are read after the connections open and at the interval's end, together with the
//! payload bytes sent and received by then: their quotient is the compression ratio of each
//! direction. Both readings happen with this (single-threaded) process stopped, so payload
//! and socket counts are of the same instant.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::clients::{Client, ClientOpts, Rx, Tx};
use crate::handshake::WsUrl;
use crate::hist::Hist;
use crate::payload::Payload;
use crate::{sys, Impl, Mode, Result};

/// How many connections are being opened at once.
pub const CONNECT_CONCURRENCY: usize = 64;
/// The longest a warm-up or a measured interval may be stretched.
const MAX_PHASE: Duration = Duration::from_secs(30);
/// How often a stretched phase checks whether it is done.
const POLL: Duration = Duration::from_millis(5);
/// How long the connections may take to drain their outstanding echoes after the interval.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What generates the load: a client implementation, or the raw-frame client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generator {
    /// One of the client implementations, through its WebSocket library.
    Client(Impl),
    /// Pre-built masked frames and echoes parsed by their headers, no WebSocket library
    /// ([`crate::rawload`]).
    Raw,
}

impl Generator {
    /// The name used on the command line and in the tables: `raw` or the client's name.
    pub fn name(self) -> &'static str {
        match self {
            Generator::Client(imp) => imp.name(),
            Generator::Raw => "raw",
        }
    }

    /// Parses `raw` or an [`Impl`] name.
    pub fn parse(s: &str) -> Result<Generator> {
        if s == "raw" {
            Ok(Generator::Raw)
        } else {
            Impl::parse(s)
                .map(Generator::Client)
                .map_err(|e| format!("{e}, or raw").into())
        }
    }
}

impl Serialize for Generator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The load generator.
    pub client: Generator,
    /// The server's `ws://` URL.
    pub url: String,
    /// Connections.
    pub conns: usize,
    /// Message size in bytes.
    pub size: usize,
    /// What the messages hold.
    pub payload: Payload,
    /// permessage-deflate (isosock client only).
    pub compression: isosock::Compression,
    /// Whether to count the bytes on the wire.
    pub wire: bool,
    /// Ping-pong or pipeline.
    pub mode: Mode,
    /// Outstanding messages per connection in pipeline mode.
    pub window: usize,
    /// Time before the measured interval.
    pub warmup: Duration,
    /// The measured interval.
    pub duration: Duration,
    /// The server process, for its CPU time.
    pub server_pid: Option<u32>,
}

/// What one load run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    /// The client implementation.
    pub client: String,
    /// Connections.
    pub conns: usize,
    /// Message size in bytes.
    pub size: usize,
    /// `pingpong` or `pipeline`.
    pub mode: String,
    /// Outstanding messages per connection (1 in ping-pong).
    pub window: usize,
    /// Echoes received in the measured interval.
    pub messages: u64,
    /// The measured interval's length.
    pub seconds: f64,
    /// Echoes per second.
    pub msgs_per_sec: f64,
    /// Echoed payload per second, one direction, in 10^6 bytes.
    pub mb_per_sec: f64,
    /// Median round trip, microseconds.
    pub p50_us: f64,
    /// 99th percentile round trip, microseconds.
    pub p99_us: f64,
    /// Server CPU time (user + system) per echoed message, microseconds.
    pub server_cpu_us_per_msg: Option<f64>,
    /// This load process's CPU time per echoed message, microseconds.
    pub client_cpu_us_per_msg: f64,
    /// Time to open and upgrade every connection.
    pub connect_seconds: f64,
    /// The warm-up's length (stretched until every connection had an echo).
    pub warmup_seconds: f64,
    /// What the messages held (`pattern`, `json`, `random`).
    #[serde(default)]
    pub payload: String,
    /// The client's permessage-deflate mode.
    #[serde(default)]
    pub compression: String,
    /// The extensions the first connection agreed (empty for none or unknown).
    #[serde(default)]
    pub extensions: String,
    /// Bytes on the wire against payload bytes, from the connections' opening to the end of
    /// the measured interval (with `wire`).
    #[serde(default)]
    pub wire: Option<Wire>,
}

/// Payload and wire bytes of all connections, both directions.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Wire {
    /// Payload of the messages sent.
    pub payload_sent: u64,
    /// Payload of the echoes received.
    pub payload_received: u64,
    /// Frame bytes written to the sockets (client to server).
    pub wire_sent: u64,
    /// Frame bytes read from the sockets (server to client).
    pub wire_received: u64,
}

impl Wire {
    /// Server to client: the server's compression ratio (wire bytes / payload bytes).
    pub fn ratio_down(&self) -> f64 {
        self.wire_received as f64 / self.payload_received.max(1) as f64
    }

    /// Client to server: the client's compression ratio.
    pub fn ratio_up(&self) -> f64 {
        self.wire_sent as f64 / self.payload_sent.max(1) as f64
    }
}

// Phases; `Shared::default()` starts in 0, the warm-up.
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// The counts every connection task of one load run adds to (one thread, so `Cell`s).
#[derive(Default)]
pub struct Shared {
    phase: Cell<u8>,
    count: Cell<u64>,
    /// Connections that have received at least one echo.
    warm: Cell<usize>,
    hist: RefCell<Hist>,
    /// Payload bytes sent and received so far, every phase.
    sent: Cell<u64>,
    received: Cell<u64>,
}

impl Shared {
    /// Whether the measured interval is over: connections send nothing more.
    pub fn stopped(&self) -> bool {
        self.phase.get() == STOP
    }

    /// Counts `n` payload bytes sent.
    pub fn sent(&self, n: usize) {
        self.sent.set(self.sent.get() + n as u64);
    }

    /// Counts an echo of `len` payload bytes that took `rtt`; `first` is the connection's
    /// flag for its first echo (for the warm-up), cleared here.
    pub fn record(&self, rtt: Duration, len: usize, first: &mut bool) {
        self.received.set(self.received.get() + len as u64);
        if *first {
            *first = false;
            self.warm.set(self.warm.get() + 1);
        }
        if self.phase.get() == MEASURE {
            self.count.set(self.count.get() + 1);
            self.hist
                .borrow_mut()
                .record(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
        }
    }
}

/// The messages one connection sends, in turn, and how their echoes are checked.
struct Messages {
    pool: Vec<Bytes>,
    text: bool,
    compare: bool,
}

impl Messages {
    fn new(payload: Payload, size: usize) -> Messages {
        Messages {
            pool: payload.messages(size),
            text: payload.text(),
            compare: payload.compared(),
        }
    }

    /// The `i`th message of a connection's sequence.
    fn get(&self, i: usize) -> &Bytes {
        &self.pool[i % self.pool.len()]
    }

    /// Checks an echo of message `sent`: its type and length, and its bytes for the payloads
    /// that are compared.
    fn check(&self, sent: &Bytes, text: bool, got: &Bytes) -> Result<()> {
        if text != self.text || got.len() != sent.len() {
            return Err(format!(
                "echo mismatch: got a {} message of {} bytes, sent {} of {}",
                if text { "text" } else { "binary" },
                got.len(),
                if self.text { "text" } else { "binary" },
                sent.len()
            )
            .into());
        }
        if self.compare && got != sent {
            return Err("echo mismatch: same length, different bytes".into());
        }
        Ok(())
    }
}

/// The server's port in `url`, for counting its sockets' bytes.
pub fn port_of(url: &WsUrl) -> Result<u16> {
    url.authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("no port in {}", url.authority).into())
}

/// Runs `spec` on a current-thread runtime in this thread.
pub fn run(spec: &LoadSpec) -> Result<LoadResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        match spec.client {
            Generator::Client(imp) => crate::with_client!(imp, C => drive::<C>(spec).await),
            Generator::Raw => crate::rawload::drive(spec).await,
        }
    })
}

/// The window of `spec`: 1 in ping-pong, `spec.window` (at least 1) when pipelined.
pub fn window_of(spec: &LoadSpec) -> usize {
    match spec.mode {
        Mode::PingPong => 1,
        Mode::Pipeline => spec.window.max(1),
    }
}

async fn drive<C: Client>(spec: &LoadSpec) -> Result<LoadResult> {
    let url = WsUrl::parse(&spec.url)?;
    let opts = ClientOpts {
        read_limit: (spec.size + 1024).max(64 << 10),
        compression: spec.compression,
    };
    let window = window_of(spec);

    let started = Instant::now();
    let mut clients = Vec::with_capacity(spec.conns);
    let mut connecting = futures_util::stream::iter(0..spec.conns)
        .map(|_| C::connect(&url, &spec.url, &opts))
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some(c) = connecting.next().await {
        clients.push(c.map_err(|e| format!("connecting to {}: {e}", spec.url))?);
    }
    drop(connecting);
    let connect_seconds = started.elapsed().as_secs_f64();
    let extensions = clients.first().map(Client::extensions).unwrap_or_default();

    let shared = Rc::new(Shared::default());
    let msgs = Rc::new(Messages::new(spec.payload, spec.size));
    let mut tasks = Vec::with_capacity(spec.conns);
    for (i, c) in clients.into_iter().enumerate() {
        let (sh, msgs, mode) = (shared.clone(), msgs.clone(), spec.mode);
        tasks.push(tokio::task::spawn_local(async move {
            match mode {
                Mode::PingPong => ping_pong(c.duplex(), &sh, &msgs, i).await,
                Mode::Pipeline => pipeline(c.split(), &sh, &msgs, i, window).await,
            }
        }));
    }
    let opened = Opened {
        connect_seconds,
        extensions,
        window,
    };
    measure(spec, opened, &shared, tasks).await
}

/// What the connection phase of a load run found.
#[derive(Debug)]
pub struct Opened {
    /// Time to open and upgrade every connection.
    pub connect_seconds: f64,
    /// The extensions the first connection agreed.
    pub extensions: String,
    /// Outstanding messages per connection.
    pub window: usize,
}

/// The rest of a load run once the connections are open and their `tasks` spawned (on this
/// thread's `LocalSet`, so none has run yet): the warm-up, the measured interval, the drain,
/// and the result from what the tasks counted in `shared`.
pub async fn measure(
    spec: &LoadSpec,
    opened: Opened,
    shared: &Shared,
    tasks: Vec<JoinHandle<Result<()>>>,
) -> Result<LoadResult> {
    let Opened {
        connect_seconds,
        extensions,
        window,
    } = opened;
    let port = port_of(&WsUrl::parse(&spec.url)?)?;
    let wire0 = spec
        .wire
        .then(|| sys::socket_bytes_to_port(port))
        .transpose()?;
    if let Some(w) = wire0.filter(|w| w.sockets != spec.conns) {
        return Err(format!(
            "ss found {} connections to port {port}, not {}",
            w.sockets, spec.conns
        )
        .into());
    }

    // Warm-up: at least `warmup`, and until every connection has had an echo (with 1,000
    // connections of 1 MiB the first round alone moves 1 GB).
    let warm_start = Instant::now();
    tokio::time::sleep(spec.warmup).await;
    while shared.warm.get() < spec.conns && warm_start.elapsed() < MAX_PHASE {
        tokio::time::sleep(POLL).await;
    }
    if shared.warm.get() < spec.conns {
        return Err(format!(
            "only {} of {} connections got an echo within {} s",
            shared.warm.get(),
            spec.conns,
            MAX_PHASE.as_secs()
        )
        .into());
    }
    let warmup_seconds = warm_start.elapsed().as_secs_f64();
    let server0 = spec
        .server_pid
        .map(|p| sys::cpu_time(Some(p)))
        .transpose()?;
    let client0 = sys::cpu_time(None)?;
    let t0 = Instant::now();
    shared.phase.set(MEASURE);
    // The interval: at least `duration`, and until two echoes per connection were counted, so
    // that slow cells still give every connection a say in the percentiles.
    tokio::time::sleep(spec.duration).await;
    let want = 2 * spec.conns as u64;
    while shared.count.get() < want && t0.elapsed() < MAX_PHASE {
        tokio::time::sleep(POLL).await;
    }
    shared.phase.set(STOP);
    let seconds = t0.elapsed().as_secs_f64();
    let client1 = sys::cpu_time(None)?;
    let server1 = spec
        .server_pid
        .map(|p| sys::cpu_time(Some(p)))
        .transpose()?;
    // Nothing has run since STOP was set: the payload counts and the sockets agree.
    let wire = match wire0 {
        Some(w0) => {
            let w1 = sys::socket_bytes_to_port(port)?;
            Some(Wire {
                payload_sent: shared.sent.get(),
                payload_received: shared.received.get(),
                wire_sent: w1.written.saturating_sub(w0.written),
                wire_received: w1.read.saturating_sub(w0.read),
            })
        }
        None => None,
    };

    let results = tokio::time::timeout(DRAIN_TIMEOUT, futures_util::future::join_all(tasks))
        .await
        .map_err(|_| "connections did not drain within 60 s after the interval")?;
    let mut failures = 0;
    let mut first = None;
    for r in results {
        if let Err(e) = r.map_err(crate::Error::from).and_then(|r| r) {
            failures += 1;
            first.get_or_insert(e.to_string());
        }
    }
    if let Some(e) = first {
        return Err(format!(
            "{failures} of {} connections failed; first: {e}",
            spec.conns
        )
        .into());
    }

    let messages = shared.count.get();
    if messages == 0 {
        return Err("no echo arrived during the measured interval".into());
    }
    let per_msg = |d: Duration| d.as_secs_f64() * 1e6 / messages as f64;
    let hist = shared.hist.borrow();
    Ok(LoadResult {
        client: spec.client.name().to_owned(),
        conns: spec.conns,
        size: spec.size,
        mode: spec.mode.name().to_owned(),
        window,
        messages,
        seconds,
        msgs_per_sec: messages as f64 / seconds,
        mb_per_sec: messages as f64 * spec.size as f64 / seconds / 1e6,
        p50_us: hist.quantile(0.50) as f64 / 1e3,
        p99_us: hist.quantile(0.99) as f64 / 1e3,
        server_cpu_us_per_msg: server0
            .zip(server1)
            .map(|(a, b)| per_msg(b.saturating_sub(a))),
        client_cpu_us_per_msg: per_msg(client1.saturating_sub(client0)),
        connect_seconds,
        warmup_seconds,
        payload: spec.payload.name().to_owned(),
        compression: crate::deflate::mode_name(spec.compression).to_owned(),
        extensions,
        wire,
    })
}

async fn ping_pong<D: Tx + Rx>(mut d: D, sh: &Shared, msgs: &Messages, conn: usize) -> Result<()> {
    let mut first = true;
    let mut i = conn;
    while sh.phase.get() != STOP {
        let data = msgs.get(i);
        i += 1;
        let t = Instant::now();
        d.send(msgs.text, data).await?;
        sh.sent(data.len());
        let (text, got) = d.recv().await?;
        msgs.check(data, text, &got)?;
        sh.record(t.elapsed(), got.len(), &mut first);
    }
    Ok(())
}

/// Sends while fewer than `window` echoes are outstanding and receives at the same time; the
/// send times queue up in order, since each connection echoes in order.
async fn pipeline<T: Tx, R: Rx>(
    (mut tx, mut rx): (T, R),
    sh: &Shared,
    msgs: &Messages,
    conn: usize,
    window: usize,
) -> Result<()> {
    let credits = Semaphore::new(window);
    let (times_tx, mut times_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, usize)>();
    let writer = async {
        let times_tx = times_tx;
        let mut i = conn;
        loop {
            credits.acquire().await.map_err(|_| "closed")?.forget();
            if sh.phase.get() == STOP {
                return Ok::<(), crate::Error>(());
            }
            times_tx
                .send((Instant::now(), i))
                .map_err(|_| "reader gone")?;
            let data = msgs.get(i);
            i += 1;
            tx.send(msgs.text, data).await?;
            sh.sent(data.len());
        }
    };
    let reader = async {
        let mut first = true;
        while let Some((t, i)) = times_rx.recv().await {
            let (text, got) = rx.recv().await?;
            msgs.check(msgs.get(i), text, &got)?;
            sh.record(t.elapsed(), got.len(), &mut first);
            credits.add_permits(1);
        }
        Ok::<(), crate::Error>(())
    };
    tokio::try_join!(writer, reader)?;
    Ok(())
}
