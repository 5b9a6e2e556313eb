//! Every public option and constructor at the edges of its type (0, 1, `usize::MAX`,
//! `Duration::ZERO`, `Duration::MAX`, NaN and infinite rates): a typed error or a documented
//! meaning, never a panic.
//!
//! Each test is a table: one row per (option, value, expected outcome), each exercising the
//! option for real against a loopback peer. A row fails if its outcome differs, if it or any
//! task it started panicked (counted by a panic hook, per thread: `#[tokio::test]` runs every
//! task of a test on the test's thread), or if it does not finish within `ROW_LIMIT` (a hang
//! guard, not a timing assertion). Every row runs, and the failures are listed together.

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use isosock::reconnect::{State, StateStream};
use isosock::server::{Handler, Server, ServerOptions, Session};
use isosock::{
    close_status, dial, AcceptOptions, ByteStream, Conn, DialOptions, ErrorKind, Heartbeat,
    Message, MessageType, ReconnectOptions, Reconnecting, Reject, StatusCode, Upgrade,
    UpgradeRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::util::{bounded, echo_url};

// ---- the table runner --------------------------------------------------------------------------

/// What a row checks: `Ok` if the outcome is the expected one, else what happened instead.
type Check = Pin<Box<dyn Future<Output = Result<(), String>>>>;

struct Row {
    name: String,
    check: Check,
}

fn row(name: impl Into<String>, check: impl Future<Output = Result<(), String>> + 'static) -> Row {
    Row {
        name: name.into(),
        check: Box::pin(check),
    }
}

thread_local! {
    /// Panics on this thread since the hook was installed.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Installs (once) a panic hook that counts panics per thread, then runs the previous hook.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

fn panics() -> usize {
    PANICS.with(Cell::get)
}

/// How long one row may take before it counts as hung. Rows finish in milliseconds; this only
/// keeps a hung row (a background task that panicked and left a state stream pending, say)
/// from stalling the rest of its table.
const ROW_LIMIT: Duration = Duration::from_secs(15);

/// Completes as soon as a panic happens on this thread after `before`.
async fn panic_seen(before: usize) {
    while panics() == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs every row, then fails with the list of rows that failed.
async fn run_table(rows: Vec<Row>) {
    count_panics();
    let total = rows.len();
    let mut failed = Vec::new();
    for Row { name, check } in rows {
        let before = panics();
        let guarded = async {
            tokio::select! {
                r = tokio::time::timeout(ROW_LIMIT, check) => {
                    r.unwrap_or_else(|_| Err(format!("did not finish within {ROW_LIMIT:?}")))
                }
                () = panic_seen(before) => Err("a task it started panicked".to_owned()),
            }
        };
        let outcome = AssertUnwindSafe(guarded).catch_unwind().await;
        // Let the tasks the row started run once more, so their panics count for this row.
        tokio::task::yield_now().await;
        let verdict = match outcome {
            Err(_) => Some("panicked".to_owned()),
            Ok(Err(why)) => Some(why),
            Ok(Ok(())) if panics() != before => Some("a task it started panicked".to_owned()),
            Ok(Ok(())) => None,
        };
        if let Some(why) = verdict {
            failed.push(format!("{name}: {why}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {total} rows failed:\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

fn fail<T>(what: impl std::fmt::Display) -> Result<T, String> {
    Err(what.to_string())
}

const NS: Duration = Duration::from_nanos(1);
const MS: Duration = Duration::from_millis(1);

// ---- Heartbeat ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Beat {
    /// `start` fails with `InvalidArgument`.
    Refused,
    /// The heartbeat runs and a message makes the round trip.
    RoundTrip,
    /// Either, or the heartbeat fails the connection with `Timeout` first (a 1 ns timeout
    /// may expire before the answer is read).
    RoundTripOrTimeout,
}

async fn heartbeat_row(
    url: String,
    hb: Heartbeat,
    probe: Option<Message>,
    expect: Beat,
) -> Result<(), String> {
    let (conn, _) = dial(&url, &DialOptions::new())
        .await
        .map_err(|e| format!("dial: {e:?}"))?;
    let conn = Arc::new(conn);
    match (hb.start(&conn), expect) {
        (Err(e), Beat::Refused) if e.kind() == ErrorKind::InvalidArgument => return Ok(()),
        (Err(e), _) => return fail(format!("start failed: {e:?}")),
        (Ok(_), Beat::Refused) => return fail("started; expected InvalidArgument"),
        (Ok(_), _) => {}
    }
    conn.write("payload")
        .await
        .map_err(|e| format!("write: {e:?}"))?;
    loop {
        match conn.read().await {
            Ok(m) if m == Message::text("payload") => break,
            Ok(m) if Some(&m) == probe.as_ref() => continue,
            Ok(m) => return fail(format!("unexpected message {m:?}")),
            Err(e) if e.kind() == ErrorKind::Timeout && expect == Beat::RoundTripOrTimeout => {
                return Ok(())
            }
            Err(e) => return fail(format!("read: {e:?}")),
        }
    }
    match conn.close(StatusCode::NORMAL_CLOSURE, "").await {
        Err(e) if expect == Beat::RoundTrip => fail(format!("close: {e:?}")),
        _ => Ok(()),
    }
}

/// `HeartbeatHandle::stop` ends the heartbeat's task even while it sleeps out an interval of
/// `Duration::MAX`: the task's weak reference to the connection goes away.
async fn heartbeat_stop_row(url: String, hb: Heartbeat) -> Result<(), String> {
    let (conn, _) = dial(&url, &DialOptions::new())
        .await
        .map_err(|e| format!("dial: {e:?}"))?;
    let conn = Arc::new(conn);
    let handle = hb.start(&conn).map_err(|e| format!("start: {e:?}"))?;
    if Arc::weak_count(&conn) != 1 {
        return fail("the heartbeat holds no weak reference");
    }
    handle.stop();
    while Arc::weak_count(&conn) != 0 {
        tokio::task::yield_now().await;
    }
    round_trip(&conn, Message::text("x")).await?;
    close(&conn).await
}

#[tokio::test]
async fn heartbeat_at_extreme_intervals_and_timeouts() {
    bounded(async {
        let url = echo_url().await;
        let values = [
            ("ZERO", Duration::ZERO),
            ("1ns", NS),
            ("MAX", Duration::MAX),
        ];
        let mut rows = Vec::new();
        for (iname, interval) in values {
            for (tname, timeout) in values {
                let expect = if interval.is_zero() || timeout.is_zero() {
                    Beat::Refused
                } else if interval == NS && timeout == NS {
                    Beat::RoundTripOrTimeout
                } else {
                    Beat::RoundTrip
                };
                let probes = [
                    (format!("ping({iname}, {tname})"), None),
                    (
                        format!("message({iname}, {tname}, \"probe\")"),
                        Some(Message::text("probe")),
                    ),
                    (
                        format!("message({iname}, {tname}, empty)"),
                        Some(Message::binary(Vec::new())),
                    ),
                ];
                for (name, probe) in probes {
                    let hb = match &probe {
                        None => Heartbeat::ping(interval, timeout),
                        Some(m) => Heartbeat::message(interval, timeout, m.clone()),
                    };
                    rows.push(row(
                        format!("Heartbeat::{name} -> {expect:?}"),
                        heartbeat_row(url.clone(), hb, probe, expect),
                    ));
                }
            }
        }
        for (name, hb) in [
            (
                "ping(MAX, MAX)",
                Heartbeat::ping(Duration::MAX, Duration::MAX),
            ),
            (
                "message(MAX, 1s)",
                Heartbeat::message(Duration::MAX, Duration::from_secs(1), "p"),
            ),
        ] {
            rows.push(row(
                format!("Heartbeat::{name}, stop() -> its task ends at once"),
                heartbeat_stop_row(url.clone(), hb),
            ));
        }
        run_table(rows).await;
    })
    .await;
}

// ---- Reconnecting ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Rec {
    /// `Reconnecting::start` fails with `InvalidArgument`.
    Refused,
    /// Against the echo server: opens, a message makes the round trip, `close` is `Ok`.
    RoundTrip,
    /// Against a server that drops every connection: the first `Disconnected` state has a
    /// `retry_in` within `[lo, hi]`; `close` then ends the client.
    FirstRetryIn(Duration, Duration),
    /// Against that server: the client gives up (`Closed` with the error) after exactly this
    /// many attempts.
    GivesUpAfter(u32),
    /// Against that server: a write while disconnected is queued (`None`) or fails with
    /// this kind.
    OfflineWrite(Option<ErrorKind>),
}

/// What a row sets on the default options.
type Tweak = fn(ReconnectOptions) -> ReconnectOptions;

/// A server that accepts TCP connections and drops them at once: every dial fails, and is
/// retried.
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            drop(tcp);
        }
    });
    format!("ws://{addr}/dead")
}

/// Options for `url` whose provider counts its calls (one per attempt).
fn counted(url: String, calls: Arc<AtomicU32>) -> ReconnectOptions {
    ReconnectOptions::provider(move || {
        calls.fetch_add(1, Ordering::SeqCst);
        let target = (url.clone(), DialOptions::new());
        async move { Ok(target) }
    })
}

async fn next_state(
    states: &mut StateStream,
    want: impl Fn(&State) -> bool,
) -> Result<State, String> {
    while let Some(s) = states.next().await {
        if want(&s) {
            return Ok(s);
        }
        if let State::Closed { error } = &s {
            return fail(format!("closed early: {error:?}"));
        }
    }
    fail("the state stream ended")
}

async fn reconnect_row(
    echo: String,
    dead: String,
    options: Tweak,
    expect: Rec,
) -> Result<(), String> {
    let calls = Arc::new(AtomicU32::new(0));
    let url = if matches!(expect, Rec::RoundTrip | Rec::Refused) {
        echo
    } else {
        dead
    };
    let started = Reconnecting::start(options(counted(url, calls.clone())));
    let client = match (started, expect) {
        (Err(e), Rec::Refused) if e.kind() == ErrorKind::InvalidArgument => return Ok(()),
        (Err(e), _) => return fail(format!("start failed: {e:?}")),
        (Ok(_), Rec::Refused) => return fail("started; expected InvalidArgument"),
        (Ok(c), _) => c,
    };
    let mut states = client.states();
    match expect {
        Rec::Refused => unreachable!(),
        Rec::RoundTrip => {
            next_state(&mut states, |s| matches!(s, State::Open)).await?;
            client
                .write("payload")
                .await
                .map_err(|e| format!("write: {e:?}"))?;
            loop {
                match client.read().await {
                    Ok(m) if m == Message::text("payload") => break,
                    // A heartbeat's probes are echoed too.
                    Ok(_) => continue,
                    Err(e) => return fail(format!("read: {e:?}")),
                }
            }
        }
        Rec::FirstRetryIn(lo, hi) => {
            let s = next_state(&mut states, |s| matches!(s, State::Disconnected { .. })).await?;
            if let State::Disconnected { retry_in, .. } = s {
                if retry_in < lo || retry_in > hi {
                    return fail(format!("retry_in {retry_in:?} not in [{lo:?}, {hi:?}]"));
                }
            }
        }
        Rec::GivesUpAfter(n) => {
            let error = loop {
                match states.next().await {
                    Some(State::Closed { error: Some(e) }) => break e,
                    Some(State::Closed { error: None }) => return fail("closed without an error"),
                    Some(_) => continue,
                    None => return fail("the state stream ended"),
                }
            };
            let made = calls.load(Ordering::SeqCst);
            if made != n {
                return fail(format!("gave up after {made} attempts ({error:?})"));
            }
            return match client.read().await {
                Err(e) if e.kind() == error.kind() => Ok(()),
                other => fail(format!("read after giving up: {other:?}")),
            };
        }
        Rec::OfflineWrite(want) => {
            next_state(&mut states, |s| matches!(s, State::Disconnected { .. })).await?;
            let got = client.write("offline").await.err().map(|e| e.kind());
            if got != want {
                return fail(format!("offline write: {got:?}, expected {want:?}"));
            }
        }
    }
    client
        .close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .map_err(|e| format!("close: {e:?}"))?;
    next_state(&mut states, |s| matches!(s, State::Closed { error: None })).await?;
    Ok(())
}

#[tokio::test]
async fn reconnecting_at_extreme_option_values() {
    bounded(async {
        let echo = echo_url().await;
        let dead = dead_url().await;
        let max = Duration::MAX;
        let default_first = (Duration::from_millis(250), Duration::from_millis(500));
        let table: Vec<(&str, Tweak, Rec)> = vec![
            (
                "connect_timeout(ZERO)",
                |o| o.connect_timeout(Duration::ZERO),
                Rec::Refused,
            ),
            (
                "connect_timeout(1ns)",
                |o| o.connect_timeout(NS).max_attempts(1),
                Rec::GivesUpAfter(1),
            ),
            (
                "connect_timeout(MAX)",
                |o| o.connect_timeout(Duration::MAX),
                Rec::RoundTrip,
            ),
            (
                "backoff(ZERO, ZERO)",
                |o| o.backoff(Duration::ZERO, Duration::ZERO),
                Rec::FirstRetryIn(MS / 2, MS),
            ),
            (
                "backoff(1ns, 1ns)",
                |o| o.backoff(NS, NS),
                Rec::FirstRetryIn(MS / 2, MS),
            ),
            (
                "backoff(ZERO, MAX)",
                |o| o.backoff(Duration::ZERO, Duration::MAX),
                Rec::FirstRetryIn(MS / 2, MS),
            ),
            (
                "backoff(1ns, MAX)",
                |o| o.backoff(NS, Duration::MAX),
                Rec::FirstRetryIn(MS / 2, MS),
            ),
            (
                "backoff(MAX, MAX)",
                |o| o.backoff(Duration::MAX, Duration::MAX),
                Rec::FirstRetryIn(max / 2, max),
            ),
            (
                "backoff(MAX, ZERO) (initial > max)",
                |o| o.backoff(Duration::MAX, Duration::ZERO),
                Rec::FirstRetryIn(max / 2, max),
            ),
            (
                "backoff(10s, 1s) (initial > max)",
                |o| o.backoff(Duration::from_secs(10), Duration::from_secs(1)),
                Rec::FirstRetryIn(Duration::from_secs(5), Duration::from_secs(10)),
            ),
            (
                "max_attempts(0)",
                |o| o.max_attempts(0),
                Rec::GivesUpAfter(1),
            ),
            (
                "max_attempts(1)",
                |o| o.max_attempts(1),
                Rec::GivesUpAfter(1),
            ),
            (
                "max_attempts(2)",
                |o| o.backoff(NS, NS).max_attempts(2),
                Rec::GivesUpAfter(2),
            ),
            (
                "max_attempts(u32::MAX)",
                |o| o.max_attempts(u32::MAX),
                Rec::FirstRetryIn(default_first.0, default_first.1),
            ),
            (
                "stable_after(ZERO)",
                |o| o.stable_after(Duration::ZERO),
                Rec::RoundTrip,
            ),
            (
                "stable_after(MAX)",
                |o| o.stable_after(Duration::MAX),
                Rec::RoundTrip,
            ),
            ("read_ahead(0)", |o| o.read_ahead(0), Rec::RoundTrip),
            ("read_ahead(1)", |o| o.read_ahead(1), Rec::RoundTrip),
            (
                "read_ahead(usize::MAX)",
                |o| o.read_ahead(usize::MAX),
                Rec::RoundTrip,
            ),
            (
                "queue_while_offline(0)",
                |o| o.queue_while_offline(0),
                Rec::OfflineWrite(Some(ErrorKind::ConnectionLost)),
            ),
            (
                "queue_while_offline(1)",
                |o| o.queue_while_offline(1),
                Rec::OfflineWrite(None),
            ),
            (
                "queue_while_offline(usize::MAX)",
                |o| o.queue_while_offline(usize::MAX),
                Rec::OfflineWrite(None),
            ),
            (
                "queue_while_offline(usize::MAX) online",
                |o| o.queue_while_offline(usize::MAX),
                Rec::RoundTrip,
            ),
            (
                "heartbeat(message(ZERO, 1s))",
                |o| {
                    o.heartbeat(Heartbeat::message(
                        Duration::ZERO,
                        Duration::from_secs(1),
                        "probe",
                    ))
                },
                Rec::Refused,
            ),
            (
                "heartbeat(ping(1s, ZERO))",
                |o| o.heartbeat(Heartbeat::ping(Duration::from_secs(1), Duration::ZERO)),
                Rec::Refused,
            ),
            (
                "heartbeat(message(MAX, MAX))",
                |o| o.heartbeat(Heartbeat::message(Duration::MAX, Duration::MAX, "probe")),
                Rec::RoundTrip,
            ),
            (
                "heartbeat(ping(1ns, MAX))",
                |o| o.heartbeat(Heartbeat::ping(NS, Duration::MAX)),
                Rec::RoundTrip,
            ),
        ];
        let rows = table
            .into_iter()
            .map(|(name, options, expect)| {
                row(
                    format!("ReconnectOptions::{name} -> {expect:?}"),
                    reconnect_row(echo.clone(), dead.clone(), options, expect),
                )
            })
            .collect();
        run_table(rows).await;
    })
    .await;
}

// ---- Server ------------------------------------------------------------------------------------

/// Echoes every message; refuses every upgrade with `reject` if set.
struct Echo {
    reject: Option<u16>,
}

impl Handler for Echo {
    fn on_connect(&self, _req: &UpgradeRequest<'_>) -> Result<Upgrade, Reject> {
        match self.reject {
            Some(status) => Err(Reject::new(status, "refused by the test")),
            None => Ok(Upgrade::new()),
        }
    }

    async fn on_message(&self, session: &Session, msg: Message) {
        let _ = session.write(msg).await;
    }
}

#[derive(Debug, Clone, Copy)]
enum Sv {
    /// 20 messages echo in order, then a clean close.
    Echo,
    /// The dial fails with this HTTP status.
    Refused(u16),
    /// Exactly this many messages echo; the next one closes the connection with 1008.
    ClosedAfter(usize),
    /// `Echo`, or the dial fails with this status (a zero handshake timeout may expire before
    /// the request was read).
    EchoOrRefused(u16),
    /// An empty message echoes; a one-byte message closes the connection with 1009.
    TooBig,
}

async fn echo_messages(conn: &Conn, n: usize) -> Result<(), String> {
    for i in 0..n {
        conn.write(format!("m{i}"))
            .await
            .map_err(|e| format!("write {i}: {e:?}"))?;
    }
    for i in 0..n {
        match conn.read().await {
            Ok(m) if m == Message::text(format!("m{i}")) => {}
            other => return fail(format!("echo {i}: {other:?}")),
        }
    }
    Ok(())
}

async fn server_row(options: ServerOptions, reject: Option<u16>, expect: Sv) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    let server = Server::new(Echo { reject }, options);
    let handle = server.handle();
    tokio::spawn(server.serve(listener));
    let dialed = dial(&url, &DialOptions::new()).await;
    let outcome = match (dialed, expect) {
        (Err(e), Sv::Refused(status) | Sv::EchoOrRefused(status))
            if e.http_status() == Some(status) =>
        {
            Ok(())
        }
        (Err(e), _) => fail(format!("dial: {e:?}")),
        (Ok(_), Sv::Refused(_)) => fail("dial succeeded; expected a refusal"),
        (Ok((conn, _)), Sv::Echo | Sv::EchoOrRefused(_)) => {
            echo_messages(&conn, 20).await?;
            conn.close(StatusCode::NORMAL_CLOSURE, "")
                .await
                .map_err(|e| format!("close: {e:?}"))
        }
        (Ok((conn, _)), Sv::ClosedAfter(n)) => {
            // All at once: the server reads them one by one.
            for i in 0..=n {
                let _ = conn.write(format!("m{i}")).await;
            }
            for i in 0..n {
                match conn.read().await {
                    Ok(m) if m == Message::text(format!("m{i}")) => {}
                    other => return fail(format!("echo {i}: {other:?}")),
                }
            }
            match conn.read().await {
                Err(e) if close_status(&e) == Some(StatusCode::POLICY_VIOLATION) => Ok(()),
                other => fail(format!(
                    "after {n} messages: {other:?}, expected a 1008 close"
                )),
            }
        }
        (Ok((conn, _)), Sv::TooBig) => {
            conn.write("").await.map_err(|e| format!("write: {e:?}"))?;
            match conn.read().await {
                Ok(m) if m.is_empty() => {}
                other => return fail(format!("empty message: {other:?}")),
            }
            conn.write("x").await.map_err(|e| format!("write: {e:?}"))?;
            match conn.read().await {
                Err(e) if close_status(&e) == Some(StatusCode::MESSAGE_TOO_BIG) => Ok(()),
                other => fail(format!("one byte: {other:?}, expected a 1009 close")),
            }
        }
    };
    handle.shutdown(StatusCode::GOING_AWAY, "").await;
    outcome
}

#[tokio::test]
async fn server_at_extreme_option_values() {
    bounded(async {
        let accept = || AcceptOptions::new().insecure_skip_verify(true);
        let opts = || ServerOptions::new().accept_options(accept());
        let with = |a: AcceptOptions| ServerOptions::new().accept_options(a);
        let table: Vec<(String, ServerOptions, Option<u16>, Sv)> = vec![
            (
                "max_connections(0)".into(),
                opts().max_connections(0),
                None,
                Sv::Refused(503),
            ),
            (
                "max_connections(1)".into(),
                opts().max_connections(1),
                None,
                Sv::Echo,
            ),
            (
                "max_connections(usize::MAX)".into(),
                opts().max_connections(usize::MAX),
                None,
                Sv::Echo,
            ),
            (
                "message_rate(NaN, 3)".into(),
                opts().message_rate(f64::NAN, 3),
                None,
                Sv::ClosedAfter(3),
            ),
            (
                "message_rate(-1.0, 2)".into(),
                opts().message_rate(-1.0, 2),
                None,
                Sv::ClosedAfter(2),
            ),
            (
                "message_rate(-INFINITY, 1)".into(),
                opts().message_rate(f64::NEG_INFINITY, 1),
                None,
                Sv::ClosedAfter(1),
            ),
            (
                "message_rate(0.0, 0)".into(),
                opts().message_rate(0.0, 0),
                None,
                Sv::ClosedAfter(1),
            ),
            (
                "message_rate(0.0, 1)".into(),
                opts().message_rate(0.0, 1),
                None,
                Sv::ClosedAfter(1),
            ),
            (
                "message_rate(MIN_POSITIVE, 2)".into(),
                opts().message_rate(f64::MIN_POSITIVE, 2),
                None,
                Sv::ClosedAfter(2),
            ),
            (
                "message_rate(INFINITY, 1)".into(),
                opts().message_rate(f64::INFINITY, 1),
                None,
                Sv::Echo,
            ),
            (
                "message_rate(1.0, u32::MAX)".into(),
                opts().message_rate(1.0, u32::MAX),
                None,
                Sv::Echo,
            ),
            (
                "handshake_timeout(ZERO)".into(),
                with(accept().handshake_timeout(Duration::ZERO)),
                None,
                Sv::EchoOrRefused(408),
            ),
            (
                "handshake_timeout(1ns)".into(),
                with(accept().handshake_timeout(NS)),
                None,
                Sv::EchoOrRefused(408),
            ),
            (
                "handshake_timeout(MAX)".into(),
                with(accept().handshake_timeout(Duration::MAX)),
                None,
                Sv::Echo,
            ),
            (
                "close_timeout(ZERO)".into(),
                with(accept().close_timeout(Duration::ZERO)),
                None,
                Sv::Echo,
            ),
            (
                "close_timeout(MAX)".into(),
                with(accept().close_timeout(Duration::MAX)),
                None,
                Sv::Echo,
            ),
            (
                "close_timeout(ZERO), server closes".into(),
                with(accept().close_timeout(Duration::ZERO)).message_rate(0.0, 1),
                None,
                Sv::ClosedAfter(1),
            ),
            (
                "close_timeout(MAX), server closes".into(),
                with(accept().close_timeout(Duration::MAX)).message_rate(0.0, 1),
                None,
                Sv::ClosedAfter(1),
            ),
            (
                "read_limit(0)".into(),
                with(accept().read_limit(0)),
                None,
                Sv::TooBig,
            ),
            (
                "read_limit(usize::MAX)".into(),
                with(accept().read_limit(usize::MAX)),
                None,
                Sv::Echo,
            ),
            (
                "write_high_water_mark(0)".into(),
                with(accept().write_high_water_mark(0)),
                None,
                Sv::Echo,
            ),
            (
                "write_high_water_mark(usize::MAX)".into(),
                with(accept().write_high_water_mark(usize::MAX)),
                None,
                Sv::Echo,
            ),
        ];
        let mut rows: Vec<Row> = table
            .into_iter()
            .map(|(name, options, reject, expect)| {
                row(
                    format!("ServerOptions::{name} -> {expect:?}"),
                    server_row(options, reject, expect),
                )
            })
            .collect();
        for (status, sent) in [
            (0, 403),
            (399, 403),
            (400, 400),
            (599, 599),
            (600, 403),
            (u16::MAX, 403),
        ] {
            rows.push(row(
                format!("Reject::new({status}) -> Refused({sent})"),
                server_row(opts(), Some(status), Sv::Refused(sent)),
            ));
        }
        run_table(rows).await;
    })
    .await;
}

// ---- Conn, DialOptions and the adapters --------------------------------------------------------

async fn open(url: &str, opts: DialOptions) -> Result<Conn, String> {
    dial(url, &opts)
        .await
        .map(|(c, _)| c)
        .map_err(|e| format!("dial: {e:?}"))
}

/// Writes `msg` and expects it back.
async fn round_trip(conn: &Conn, msg: Message) -> Result<(), String> {
    conn.write(msg.clone())
        .await
        .map_err(|e| format!("write: {e:?}"))?;
    match conn.read().await {
        Ok(m) if m == msg => Ok(()),
        other => fail(format!("echo of {} bytes: {other:?}", msg.len())),
    }
}

async fn close(conn: &Conn) -> Result<(), String> {
    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .map_err(|e| format!("close: {e:?}"))
}

/// A dial with a tiny timeout either opens (then works) or fails with `Timeout`.
async fn dial_timeout_row(url: String, timeout: Duration) -> Result<(), String> {
    match dial(&url, &DialOptions::new().timeout(timeout)).await {
        Err(e) if e.kind() == ErrorKind::Timeout => Ok(()),
        Err(e) => fail(format!("dial: {e:?}")),
        Ok((conn, _)) => {
            round_trip(&conn, Message::text("x")).await?;
            close(&conn).await
        }
    }
}

/// With this close timeout, `close` is `Ok` or (for a tiny one) `Timeout`.
async fn close_timeout_row(
    url: String,
    timeout: Duration,
    may_time_out: bool,
) -> Result<(), String> {
    let conn = open(&url, DialOptions::new().close_timeout(timeout)).await?;
    round_trip(&conn, Message::text("x")).await?;
    match conn.close(StatusCode::NORMAL_CLOSURE, "").await {
        Ok(()) => Ok(()),
        Err(e) if may_time_out && e.kind() == ErrorKind::Timeout => Ok(()),
        Err(e) => fail(format!("close: {e:?}")),
    }
}

/// With read limit `limit` (from the options, or `set_read_limit` after the dial), a message
/// of `limit` bytes echoes and one of `limit + 1` fails the read with `MessageTooBig`.
async fn read_limit_row(url: String, limit: usize, later: bool) -> Result<(), String> {
    let opts = if later {
        DialOptions::new()
    } else {
        DialOptions::new().read_limit(limit)
    };
    let conn = open(&url, opts).await?;
    if later {
        conn.set_read_limit(limit);
    }
    let fits = limit.min(100 << 10);
    round_trip(&conn, Message::binary(vec![7u8; fits])).await?;
    if fits < limit {
        return close(&conn).await;
    }
    conn.write(Message::binary(vec![7u8; limit + 1]))
        .await
        .map_err(|e| format!("write: {e:?}"))?;
    match conn.read().await {
        Err(e) if e.kind() == ErrorKind::MessageTooBig => Ok(()),
        other => fail(format!(
            "{} bytes over a {limit} limit: {other:?}",
            limit + 1
        )),
    }
}

async fn high_water_mark_row(url: String, mark: usize) -> Result<(), String> {
    let opts = DialOptions::new()
        .write_high_water_mark(mark)
        .read_limit(1 << 20);
    let conn = open(&url, opts).await?;
    for len in [0, 1, 100 << 10] {
        round_trip(&conn, Message::binary(vec![1u8; len])).await?;
    }
    close(&conn).await
}

async fn empty_messages_row(url: String) -> Result<(), String> {
    let conn = open(&url, DialOptions::new()).await?;
    round_trip(&conn, Message::text("")).await?;
    round_trip(&conn, Message::binary(Vec::new())).await?;
    conn.write_batch(Vec::<Message>::new())
        .await
        .map_err(|e| format!("empty write_batch: {e:?}"))?;
    round_trip(&conn, Message::text("after the empty batch")).await?;
    close(&conn).await
}

/// A `Writer` given an empty write, then one write of `len` bytes in a single call (which
/// may take less), then the rest; the whole message echoes.
async fn writer_row(url: String, len: usize) -> Result<(), String> {
    let conn = open(&url, DialOptions::new().read_limit(2 << 20)).await?;
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let mut w = conn
        .writer(MessageType::Binary)
        .await
        .map_err(|e| format!("writer: {e:?}"))?;
    let n = w
        .write(&[])
        .await
        .map_err(|e| format!("empty write: {e}"))?;
    if n != 0 {
        return fail(format!("an empty write took {n} bytes"));
    }
    let n = w.write(&data).await.map_err(|e| format!("write: {e}"))?;
    if len > 0 && n == 0 {
        return fail("a non-empty write took nothing");
    }
    w.write_all(&data[n..])
        .await
        .map_err(|e| format!("write_all: {e}"))?;
    w.finish().await.map_err(|e| format!("finish: {e:?}"))?;
    let mut r = conn.reader().await.map_err(|e| format!("reader: {e:?}"))?;
    let mut empty = [0u8; 0];
    let n = r.read(&mut empty).await.map_err(|e| format!("read: {e}"))?;
    if n != 0 {
        return fail(format!("a read into an empty buffer gave {n}"));
    }
    let mut got = Vec::new();
    r.read_to_end(&mut got)
        .await
        .map_err(|e| format!("read_to_end: {e}"))?;
    if got != data {
        return fail(format!("echo of {} bytes came back as {}", len, got.len()));
    }
    close(&conn).await
}

/// A `ByteStream` with `max_message_size(size)`: one write call of `data` takes `takes`
/// bytes; every byte written comes back.
async fn byte_stream_row(
    url: String,
    kind: MessageType,
    size: usize,
    data: Vec<u8>,
    takes: usize,
) -> Result<(), String> {
    let conn = open(&url, DialOptions::new().read_limit(usize::MAX)).await?;
    let mut s = ByteStream::new(conn, kind).max_message_size(size);
    let n = s
        .write(&[])
        .await
        .map_err(|e| format!("empty write: {e}"))?;
    if n != 0 {
        return fail(format!("an empty write took {n} bytes"));
    }
    let n = s.write(&data).await.map_err(|e| format!("write: {e}"))?;
    if n != takes {
        return fail(format!("one write took {n} bytes, expected {takes}"));
    }
    s.write_all(&data[n..])
        .await
        .map_err(|e| format!("write_all: {e}"))?;
    s.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut empty = [0u8; 0];
    let n = s.read(&mut empty).await.map_err(|e| format!("read: {e}"))?;
    if n != 0 {
        return fail(format!("a read into an empty buffer gave {n}"));
    }
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got)
        .await
        .map_err(|e| format!("read_exact: {e}"))?;
    if got != data {
        return fail("the bytes came back different");
    }
    s.shutdown().await.map_err(|e| format!("shutdown: {e}"))
}

async fn split_row(url: String) -> Result<(), String> {
    let conn = open(&url, DialOptions::new()).await?;
    let (mut sink, mut stream) = conn.split();
    for msg in [Message::text(""), Message::binary(Vec::new())] {
        sink.send(msg.clone())
            .await
            .map_err(|e| format!("send: {e:?}"))?;
        match stream.next().await {
            Some(Ok(m)) if m == msg => {}
            other => return fail(format!("echo of an empty message: {other:?}")),
        }
    }
    sink.close_with(StatusCode::NORMAL_CLOSURE, "")
        .await
        .map_err(|e| format!("close: {e:?}"))
}

#[cfg(feature = "json")]
async fn json_row<T, U>(url: String, value: T, expect: U) -> Result<(), String>
where
    T: serde::Serialize,
    U: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let conn = open(&url, DialOptions::new()).await?;
    isosock::json::write(&conn, &value)
        .await
        .map_err(|e| format!("write: {e:?}"))?;
    let got: U = isosock::json::read(&conn)
        .await
        .map_err(|e| format!("read: {e:?}"))?;
    if got != expect {
        return fail(format!("read back {got:?}, expected {expect:?}"));
    }
    close(&conn).await
}

/// A NaN is written as `null`, which does not decode into an `f64`: `Decode`, and the
/// connection stays open.
#[cfg(feature = "json")]
async fn json_no_f64_row(url: String, value: f64) -> Result<(), String> {
    let conn = open(&url, DialOptions::new()).await?;
    isosock::json::write(&conn, &value)
        .await
        .map_err(|e| format!("write: {e:?}"))?;
    match isosock::json::read::<f64>(&conn).await {
        Err(e) if e.kind() == ErrorKind::Decode => {}
        other => return fail(format!("read as f64: {other:?}")),
    }
    round_trip(&conn, Message::text("still open")).await?;
    close(&conn).await
}

#[cfg(feature = "protobuf")]
#[derive(Clone, PartialEq, prost::Message)]
struct Extremes {
    #[prost(uint64, tag = "1")]
    big: u64,
    #[prost(sint64, tag = "2")]
    small: i64,
    #[prost(double, tag = "3")]
    float: f64,
    #[prost(bytes = "vec", tag = "4")]
    data: Vec<u8>,
}

#[cfg(feature = "protobuf")]
async fn protobuf_row(url: String, msg: Extremes) -> Result<(), String> {
    let conn = open(&url, DialOptions::new().read_limit(1 << 20)).await?;
    isosock::protobuf::write(&conn, &msg)
        .await
        .map_err(|e| format!("write: {e:?}"))?;
    let got: Extremes = isosock::protobuf::read(&conn)
        .await
        .map_err(|e| format!("read: {e:?}"))?;
    // NaN is not equal to itself: compare the bits.
    if got.float.to_bits() != msg.float.to_bits()
        || got.data != msg.data
        || got.big != msg.big
        || got.small != msg.small
    {
        return fail(format!("read back {got:?}"));
    }
    close(&conn).await
}

#[tokio::test]
async fn conn_and_adapters_at_extreme_values() {
    bounded(async {
        let url = echo_url().await;
        let u = || url.clone();
        #[cfg_attr(not(any(feature = "json", feature = "protobuf")), allow(unused_mut))]
        let mut rows = vec![
            row(
                "DialOptions::timeout(ZERO) -> open or Timeout",
                dial_timeout_row(u(), Duration::ZERO),
            ),
            row(
                "DialOptions::timeout(1ns) -> open or Timeout",
                dial_timeout_row(u(), NS),
            ),
            row(
                "DialOptions::timeout(MAX) -> open",
                dial_timeout_row(u(), Duration::MAX),
            ),
            row(
                "DialOptions::close_timeout(ZERO) -> close Ok or Timeout",
                close_timeout_row(u(), Duration::ZERO, true),
            ),
            row(
                "DialOptions::close_timeout(1ns) -> close Ok or Timeout",
                close_timeout_row(u(), NS, true),
            ),
            row(
                "DialOptions::close_timeout(MAX) -> close Ok",
                close_timeout_row(u(), Duration::MAX, false),
            ),
            row("DialOptions::read_limit(0)", read_limit_row(u(), 0, false)),
            row("DialOptions::read_limit(1)", read_limit_row(u(), 1, false)),
            row(
                "DialOptions::read_limit(usize::MAX)",
                read_limit_row(u(), usize::MAX, false),
            ),
            row("Conn::set_read_limit(0)", read_limit_row(u(), 0, true)),
            row("Conn::set_read_limit(1)", read_limit_row(u(), 1, true)),
            row(
                "Conn::set_read_limit(usize::MAX)",
                read_limit_row(u(), usize::MAX, true),
            ),
            row(
                "DialOptions::write_high_water_mark(0)",
                high_water_mark_row(u(), 0),
            ),
            row(
                "DialOptions::write_high_water_mark(1)",
                high_water_mark_row(u(), 1),
            ),
            row(
                "DialOptions::write_high_water_mark(usize::MAX)",
                high_water_mark_row(u(), usize::MAX),
            ),
            row(
                "Conn::write empty messages, write_batch(empty)",
                empty_messages_row(u()),
            ),
            row("Writer: empty message", writer_row(u(), 0)),
            row("Writer: one byte", writer_row(u(), 1)),
            row("Writer: 1 MiB in one write call", writer_row(u(), 1 << 20)),
            row(
                "ByteStream::max_message_size(0) -> 1 byte per write",
                byte_stream_row(u(), MessageType::Binary, 0, b"abc".to_vec(), 1),
            ),
            row(
                "ByteStream::max_message_size(1)",
                byte_stream_row(u(), MessageType::Binary, 1, b"abc".to_vec(), 1),
            ),
            row(
                "ByteStream::max_message_size(usize::MAX) -> the whole write",
                byte_stream_row(
                    u(),
                    MessageType::Binary,
                    usize::MAX,
                    vec![9u8; 100 << 10],
                    100 << 10,
                ),
            ),
            row(
                "ByteStream::max_message_size(0), text -> one whole character per write",
                byte_stream_row(u(), MessageType::Text, 0, "é🦀a".into(), 2),
            ),
            row(
                "ByteStream::max_message_size(3), text -> a 4-byte character whole",
                byte_stream_row(u(), MessageType::Text, 3, "🦀é".into(), 4),
            ),
            row(
                "ByteStream::max_message_size(usize::MAX), text",
                byte_stream_row(
                    u(),
                    MessageType::Text,
                    usize::MAX,
                    "ü".repeat(50_000).into(),
                    100_000,
                ),
            ),
            row("MessageSink/MessageStream: empty messages", split_row(u())),
        ];
        #[cfg(feature = "json")]
        rows.extend([
            row(
                "json::write(NaN) -> null",
                json_row(u(), f64::NAN, None::<f64>),
            ),
            row(
                "json::write(INFINITY) -> null",
                json_row(u(), f64::INFINITY, None::<f64>),
            ),
            row("json::write(NaN) -> no f64", json_no_f64_row(u(), f64::NAN)),
            row("json::write(u64::MAX)", json_row(u(), u64::MAX, u64::MAX)),
            row("json::write(i64::MIN)", json_row(u(), i64::MIN, i64::MIN)),
            row(
                "json::write(MIN_POSITIVE)",
                json_row(u(), f64::MIN_POSITIVE, f64::MIN_POSITIVE),
            ),
            row("json::write(\"\")", json_row(u(), "", String::new())),
        ]);
        #[cfg(feature = "protobuf")]
        rows.extend([
            row(
                "protobuf: the empty message (0 bytes)",
                protobuf_row(u(), Extremes::default()),
            ),
            row(
                "protobuf: u64::MAX, i64::MIN, NaN, 512 KiB",
                protobuf_row(
                    u(),
                    Extremes {
                        big: u64::MAX,
                        small: i64::MIN,
                        float: f64::NAN,
                        data: vec![3u8; 512 << 10],
                    },
                ),
            ),
        ]);
        run_table(rows).await;
    })
    .await;
}
