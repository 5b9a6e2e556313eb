//! Keepalive: detect a peer that went silent (a half-open connection behind a proxy or NAT,
//! a suspended laptop, a dead server) and fail the connection with a clear error instead of
//! waiting forever.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use futures_util::future::{select, Either};

use crate::backend::rt;
use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;

/// What the heartbeat sends to ask the peer for a sign of life.
#[derive(Debug, Clone)]
enum Probe {
    /// A WebSocket ping; the pong is the answer. Its payload is uninhabited in the browser,
    /// which cannot send pings, so there this variant cannot be made.
    #[allow(
        dead_code,
        reason = "never constructed in the browser, where its payload is uninhabited"
    )]
    Ping(rt::PingProbe),
    /// An application message the peer answers with any message.
    Message(Message),
}

/// A heartbeat: every `interval`, a probe goes to the peer; if nothing at all (a pong, any
/// message) arrives within `timeout` after it, the connection is failed with
/// [`ErrorKind::Timeout`], which every later `read` and `write` returns.
///
/// Two kinds of probe:
///
/// - `Heartbeat::ping` (native only): a WebSocket ping. Every RFC 6455 peer answers it, no
///   application support needed.
/// - [`Heartbeat::message`] (every target): an application message (say `{"type":"ping"}`)
///   that the peer's application answers. This is the browser's way: browsers answer pings
///   but cannot send them, so a page that must notice a dead server agrees on such a message
///   with its server.
///
/// Like pongs, answers are only noticed while something reads the connection: keep a `read`
/// loop running (natively; the browser receives regardless). Any received frame counts as a
/// sign of life, so a busy connection never trips the heartbeat.
///
/// Both constructors take any `Duration`; [`start`](Heartbeat::start) refuses a zero
/// interval or timeout with [`ErrorKind::InvalidArgument`]. Timers have a resolution of 1 ms
/// on both targets, so values below it act as 1 ms. `Duration::MAX` is allowed: as an
/// interval it means no probe is ever sent, as a timeout that the heartbeat sends one probe
/// and never fails the connection (natively tokio caps a timer at about 30 years).
///
/// # Examples
///
/// ```no_run
/// # #[cfg(not(target_arch = "wasm32"))]
/// # async fn demo() -> isosock::Result<()> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use isosock::{dial, DialOptions, ErrorKind, Heartbeat};
///
/// let (conn, _) = dial("wss://example.com/feed", &DialOptions::new()).await?;
/// let conn = Arc::new(conn);
/// Heartbeat::ping(Duration::from_secs(15), Duration::from_secs(10)).start(&conn)?;
/// loop {
///     match conn.read().await {
///         Ok(msg) => println!("{msg:?}"),
///         Err(e) if e.kind() == ErrorKind::Timeout => break println!("peer is gone: {e}"),
///         Err(e) => break println!("closed: {e}"),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    probe: Probe,
}

impl Heartbeat {
    /// Pings the peer every `interval` and fails the connection if nothing arrives within
    /// `timeout` of a ping. Zero for either is refused by [`start`](Heartbeat::start).
    ///
    /// # Platform notes
    ///
    /// Native only: browsers cannot send pings. Use [`Heartbeat::message`] in shared code.
    #[cfg(not(target_arch = "wasm32"))]
    #[cfg_attr(docsrs, doc(cfg(not(target_arch = "wasm32"))))]
    pub fn ping(interval: Duration, timeout: Duration) -> Self {
        Heartbeat {
            interval,
            timeout,
            probe: Probe::Ping(rt::PingProbe),
        }
    }

    /// Sends `probe` every `interval` and fails the connection if no message arrives within
    /// `timeout` of it. The peer must answer the probe (with anything). Zero for either is
    /// refused by [`start`](Heartbeat::start); an empty probe is a valid message.
    pub fn message(interval: Duration, timeout: Duration, probe: impl Into<Message>) -> Self {
        Heartbeat {
            interval,
            timeout,
            probe: Probe::Message(probe.into()),
        }
    }

    /// Starts the heartbeat on `conn` in the background (a tokio task natively, a task on the
    /// page's event loop in the browser). It stops by itself when the connection closes or
    /// every `Arc` to it is dropped (it keeps only a weak reference), noticed at its next
    /// wake-up (after at most `interval`, or `timeout` after a probe), or at once through the
    /// returned handle.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] if `interval` or `timeout` is zero, or natively when
    /// called outside a tokio runtime.
    pub fn start(self, conn: &Arc<Conn>) -> Result<HeartbeatHandle> {
        self.check()?;
        let stopped = Arc::new(Stop::default());
        let task = run(self, Arc::downgrade(conn), stopped.clone());
        if !rt::spawn(task) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "Heartbeat::start needs a tokio runtime to run its task on",
            ));
        }
        Ok(HeartbeatHandle { stopped })
    }

    /// Refuses what [`Heartbeat::start`] refuses, for callers that start it later (the
    /// reconnecting client, on every connection).
    pub(crate) fn check(&self) -> Result<()> {
        if self.interval.is_zero() || self.timeout.is_zero() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "heartbeat interval and timeout must be above zero (got {:?} and {:?})",
                    self.interval, self.timeout
                ),
            ));
        }
        Ok(())
    }
}

/// Controls a started [`Heartbeat`]. Dropping it leaves the heartbeat running.
#[derive(Debug, Clone)]
pub struct HeartbeatHandle {
    stopped: Arc<Stop>,
}

impl HeartbeatHandle {
    /// Stops the heartbeat at once (its task ends, however long its interval); the connection
    /// is not touched.
    pub fn stop(&self) {
        self.stopped.stop();
    }
}

/// The stop flag of a heartbeat, with the waker of its task (the only waiter).
#[derive(Debug, Default)]
struct Stop {
    stopped: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Stop {
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Sleeps for `d`; `false` if the heartbeat was stopped first (or meanwhile).
    async fn sleep(&self, d: Duration) -> bool {
        let stopped = poll_fn(|cx| {
            let mut waker = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            if self.is_stopped() {
                return Poll::Ready(());
            }
            *waker = Some(cx.waker().clone());
            Poll::Pending
        });
        match select(pin!(rt::sleep(d)), pin!(stopped)).await {
            Either::Left(_) => !self.is_stopped(),
            Either::Right(_) => false,
        }
    }
}

async fn run(hb: Heartbeat, conn: Weak<Conn>, stopped: Arc<Stop>) {
    loop {
        if !stopped.sleep(hb.interval).await {
            return;
        }
        let seen = match conn.upgrade() {
            Some(c) if !c.closed_locally() => {
                let seen = c.received_count();
                let sent = match &hb.probe {
                    Probe::Ping(ping) => ping.send(c, hb.timeout),
                    Probe::Message(m) => c.write(m.clone()).await,
                };
                if sent.is_err() {
                    // The connection is over; its readers already see why.
                    return;
                }
                seen
            }
            _ => return,
        };
        if !stopped.sleep(hb.timeout).await {
            return;
        }
        let Some(c) = conn.upgrade() else { return };
        if c.received_count() == seen && !c.closed_locally() {
            c.fail(Error::new(
                ErrorKind::Timeout,
                format!(
                    "heartbeat: nothing received within {:?} of a probe; the peer or the path \
                     to it is gone (half-open connection)",
                    hb.timeout
                ),
            ));
            return;
        }
    }
}
