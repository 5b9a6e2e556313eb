//! A client that reconnects by itself: [`Reconnecting`], configured by [`ReconnectOptions`].
//!
//! One background task (the supervisor) owns the connection's life: it is the only place
//! that dials, so each disconnect leads to exactly one new attempt at a time (leptos-use once
//! doubled its sockets on every failure by reconnecting from both `error` and `close`). It
//! reads the current connection into a small bounded queue that [`Reconnecting::read`] takes
//! from, so a slow reader still holds the peer back.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_channel::mpsc;
use futures_core::{FusedStream, Stream};
use futures_util::future::{select, Either};
use futures_util::lock::Mutex as AsyncMutex;
use futures_util::{SinkExt, StreamExt};

use crate::backend::rt;
use crate::close::StatusCode;
use crate::conn::Conn;
use crate::dial::{dial, DialOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::heartbeat::{Heartbeat, HeartbeatHandle};
use crate::message::Message;
use crate::task::{MaybeSend, TaskFn, TaskFuture, TaskPredicate};

/// The error type an endpoint provider may fail with.
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;

type Provider = TaskFn<(), TaskFuture<std::result::Result<(String, DialOptions), ProviderError>>>;
type OpenHook = TaskFn<Arc<Conn>, TaskFuture<std::result::Result<(), ProviderError>>>;

/// The default time limit for one connection attempt: 10 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default first retry delay (before jitter): 500 ms.
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_millis(500);
/// The default longest retry delay: 30 seconds.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
/// The default uptime after which a connection counts as stable and the backoff starts over:
/// 10 seconds.
pub const DEFAULT_STABLE_AFTER: Duration = Duration::from_secs(10);
/// The default number of received messages read ahead of [`Reconnecting::read`]: 16.
pub const DEFAULT_READ_AHEAD: usize = 16;
/// The most received messages [`ReconnectOptions::read_ahead`] lets wait: 65,536.
pub const MAX_READ_AHEAD: usize = 1 << 16;
/// The shortest first retry delay (before jitter) [`ReconnectOptions::backoff`] sets: 1 ms. A
/// zero delay would stay zero however often it doubled: a busy loop of dials against a server
/// that is down.
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(1);

/// Options for [`Reconnecting::start`].
///
/// Defaults: connect timeout 10 s, retry delays from 500 ms doubling to at most 30 s with
/// equal jitter (each delay is random between half and all of its step), backoff reset after
/// a connection stayed up 10 s, retry forever, no close code final, no offline queue, 16
/// messages read ahead, no [`on_open`](Self::on_open) hook.
///
/// Every setter takes any value of its type: each says what its edge values mean (zero, the
/// type's maximum). The few combinations that cannot work (a zero connect timeout, a
/// heartbeat with a zero interval or timeout) make [`Reconnecting::start`] fail with
/// [`ErrorKind::InvalidArgument`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use isosock::{DialOptions, ReconnectOptions, StatusCode};
///
/// // A fixed endpoint:
/// let opts = ReconnectOptions::new("wss://example.com/feed", DialOptions::new())
///     .backoff(Duration::from_millis(250), Duration::from_secs(10))
///     .final_codes([StatusCode::POLICY_VIOLATION, StatusCode::from(4401)]);
///
/// // A fresh token on every attempt:
/// let opts = ReconnectOptions::provider(|| async {
///     let token = "fetched-token"; // e.g. from an HTTP call
///     Ok((format!("wss://example.com/feed?token={token}"), DialOptions::new()))
/// })
/// .queue_while_offline(100);
///
/// // A protocol that greets the server on every connection before anything else:
/// let opts = ReconnectOptions::new("wss://example.com/chat", DialOptions::new())
///     .on_open(|conn| async move {
///         conn.write(r#"{"hello":"ann"}"#).await?;
///         Ok(())
///     });
/// ```
pub struct ReconnectOptions {
    provider: Provider,
    connect_timeout: Duration,
    initial_delay: Duration,
    max_delay: Duration,
    stable_after: Duration,
    final_codes: Vec<StatusCode>,
    final_if: Option<TaskPredicate>,
    max_attempts: Option<u32>,
    queue_limit: usize,
    read_ahead: usize,
    heartbeat: Option<Heartbeat>,
    on_open: Option<OpenHook>,
}

impl std::fmt::Debug for ReconnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("initial_delay", &self.initial_delay)
            .field("max_delay", &self.max_delay)
            .field("stable_after", &self.stable_after)
            .field("final_codes", &self.final_codes)
            .field("final_if", &self.final_if.is_some())
            .field("max_attempts", &self.max_attempts)
            .field("queue_limit", &self.queue_limit)
            .field("read_ahead", &self.read_ahead)
            .field("heartbeat", &self.heartbeat)
            .field("on_open", &self.on_open.is_some())
            .finish_non_exhaustive()
    }
}

impl ReconnectOptions {
    /// Reconnects to a fixed `url` with `options` (its timeout is replaced by the connect
    /// timeout).
    pub fn new(url: impl Into<String>, options: DialOptions) -> Self {
        let url = url.into();
        Self::provider(move || {
            let target = (url.clone(), options.clone());
            async move { Ok(target) }
        })
    }

    /// Reconnects to whatever `provider` returns, calling it before every attempt: the place
    /// to fetch a fresh token or pick another server. An error from it counts as a failed
    /// attempt (kind [`ErrorKind::Connect`], with it as the source).
    ///
    /// Natively the provider and its future must be `Send` (they run on a tokio task); in the
    /// browser they may hold JavaScript values ([`MaybeSend`]).
    pub fn provider<F, Fut>(mut provider: F) -> Self
    where
        F: FnMut() -> Fut + MaybeSend + 'static,
        Fut: Future<Output = std::result::Result<(String, DialOptions), ProviderError>>
            + MaybeSend
            + 'static,
    {
        ReconnectOptions {
            provider: Box::new(move |()| -> TaskFuture<_> { Box::pin(provider()) }),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            initial_delay: DEFAULT_INITIAL_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            stable_after: DEFAULT_STABLE_AFTER,
            final_codes: Vec::new(),
            final_if: None,
            max_attempts: None,
            queue_limit: 0,
            read_ahead: DEFAULT_READ_AHEAD,
            heartbeat: None,
            on_open: None,
        }
    }

    /// Sets the time limit for one attempt (provider call, dial and handshake, and the
    /// [`on_open`](Self::on_open) hook). Default: 10 s.
    ///
    /// `Duration::ZERO` could never connect: [`Reconnecting::start`] refuses it with
    /// [`ErrorKind::InvalidArgument`]. `Duration::MAX` means no limit (natively tokio caps a
    /// timer at about 30 years). Timers have a resolution of 1 ms.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the retry delays: the first is `initial`, each next one doubles, up to `max`.
    /// Each delay is jittered to a random value between half and all of it, so many clients
    /// dropped at once do not come back at once. Default: 500 ms to 30 s.
    ///
    /// An `initial` below 1 ms ([`MIN_RETRY_DELAY`], `Duration::ZERO` included) means 1 ms: a
    /// zero delay would never grow, and the client would dial a server that is down in a busy
    /// loop. A `max` below `initial` means `initial`: every delay is then `initial` (jittered).
    /// `Duration::MAX` for either is allowed; a delay that long means the client waits for
    /// good (natively tokio caps a timer at about 30 years), until [`Reconnecting::close`].
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial.max(MIN_RETRY_DELAY);
        self.max_delay = max.max(self.initial_delay);
        self
    }

    /// Sets how long a connection must stay up for the backoff to start over at its first
    /// delay; connections that drop sooner keep growing the delay. Default: 10 s.
    ///
    /// `Duration::ZERO` counts every connection that opened as stable; `Duration::MAX` none,
    /// so the delay only grows (up to the backoff's `max`) until the client stops.
    pub fn stable_after(mut self, uptime: Duration) -> Self {
        self.stable_after = uptime;
        self
    }

    /// Close codes after which the client stops instead of reconnecting (for example
    /// 1008 policy violation, or an application's 4401 "unauthorized").
    pub fn final_codes(mut self, codes: impl IntoIterator<Item = StatusCode>) -> Self {
        self.final_codes = codes.into_iter().collect();
        self
    }

    /// A test for errors after which the client stops instead of reconnecting, besides
    /// [`final_codes`](Self::final_codes) (for example a handshake refused with 401:
    /// `|e| e.http_status() == Some(401)`). Invalid URLs and arguments are always final.
    pub fn final_if(mut self, is_final: impl FnMut(&Error) -> bool + MaybeSend + 'static) -> Self {
        self.final_if = Some(Box::new(is_final));
        self
    }

    /// Gives up after `attempts` failed attempts in a row (attempts that open a connection
    /// that then stays up start the count over). Default: never give up.
    ///
    /// `0` means 1: the client gives up after its first failed attempt. `u32::MAX` gives up
    /// after that many, which is as good as never.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Queues up to `max_messages` writes while offline and sends them, in order, as soon as
    /// a connection opens, before any later write. Default: 0, writes fail while offline.
    ///
    /// Nothing is allocated ahead: the queue grows with the messages actually queued, so
    /// `usize::MAX` means no limit but memory.
    ///
    /// Off by default because some protocols break when stale messages are replayed after a
    /// reconnect (share/sharedb#608): turn it on only when yours tolerates that.
    pub fn queue_while_offline(mut self, max_messages: usize) -> Self {
        self.queue_limit = max_messages;
        self
    }

    /// Sets how many received messages may wait for [`Reconnecting::read`]; beyond that the
    /// client stops reading the connection until the application catches up. Default: 16.
    ///
    /// `0` means 1; values above 65,536 ([`MAX_READ_AHEAD`]), `usize::MAX` included, mean
    /// 65,536. Each waiting message can be as large as the read limit.
    pub fn read_ahead(mut self, messages: usize) -> Self {
        self.read_ahead = messages.clamp(1, MAX_READ_AHEAD);
        self
    }

    /// Runs `heartbeat` on every connection, so a silent, half-open connection is noticed
    /// and replaced.
    ///
    /// A heartbeat with a zero interval or timeout makes [`Reconnecting::start`] fail with
    /// [`ErrorKind::InvalidArgument`], as [`Heartbeat::start`] would.
    pub fn heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = Some(heartbeat);
        self
    }

    /// Runs `hook` on every new connection before it counts as open: the place for what a
    /// protocol must send (and may await an answer to) first on each connection, such as a
    /// hello, a subscription or an authentication message. Default: none.
    ///
    /// The hook gets the connection and may write and read on it; until it returns, the state
    /// stays [`State::Connecting`], [`Reconnecting::write`] does not use the connection (writes
    /// wait in the offline queue or fail, as while offline), and nothing is read into
    /// [`Reconnecting::read`]. After it returns `Ok`, the offline queue is sent and the state
    /// becomes [`State::Open`]. An error from it, or taking longer than what is left of the
    /// [`connect_timeout`](Self::connect_timeout) (measured from the attempt's start,
    /// [`ErrorKind::Timeout`]), ends the connection like a failed attempt: it is retried with
    /// backoff, or ends the client if [`final_codes`](Self::final_codes),
    /// [`final_if`](Self::final_if) or [`max_attempts`](Self::max_attempts) say so. The hook
    /// may fail with any error: an isosock [`Error`] (from a write or a read, with the peer's
    /// close code) is kept as it is; any other becomes [`ErrorKind::Connect`] with it as the
    /// source, so `final_if` can look at it.
    ///
    /// Natively the hook and its future must be `Send`; in the browser they need not be
    /// ([`MaybeSend`]).
    pub fn on_open<F, Fut>(mut self, mut hook: F) -> Self
    where
        F: FnMut(Arc<Conn>) -> Fut + MaybeSend + 'static,
        Fut: Future<Output = std::result::Result<(), ProviderError>> + MaybeSend + 'static,
    {
        self.on_open = Some(Box::new(move |conn| -> TaskFuture<_> {
            Box::pin(hook(conn))
        }));
        self
    }
}

/// Where a [`Reconnecting`] client stands.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum State {
    /// An attempt is under way; `attempt` counts the attempts since the client was last
    /// stably connected, from 1.
    Connecting {
        /// The attempt's number.
        attempt: u32,
    },
    /// A connection is open; reads and writes use it.
    Open,
    /// The connection ended or the attempt failed with `error`; the next attempt starts after
    /// `retry_in`.
    Disconnected {
        /// Why.
        error: Error,
        /// The delay before the next attempt.
        retry_in: Duration,
    },
    /// The client stopped for good: `error` is `None` after [`Reconnecting::close`], or the
    /// final error (a final close code, an invalid URL, too many attempts).
    Closed {
        /// Why, unless the application closed it.
        error: Option<Error>,
    },
}

/// A state in a few words, for a status line: "connecting", "connecting (attempt 2)", "open",
/// "reconnecting in 1.2 s (4001 bye)", "closed", "closed (1008 policy)". A peer's close shows
/// as its code and reason; other errors as their message.
///
/// ```
/// use std::time::Duration;
/// use isosock::reconnect::State;
///
/// assert_eq!(State::Connecting { attempt: 3 }.to_string(), "connecting (attempt 3)");
/// assert_eq!(State::Open.to_string(), "open");
/// assert_eq!(State::Closed { error: None }.to_string(), "closed");
/// ```
impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// Why a connection ended: the peer's close code and reason when it sent them.
        struct Why<'a>(&'a Error);
        impl std::fmt::Display for Why<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.0.close_frame() {
                    Some(frame) if frame.reason.is_empty() => write!(f, "{}", frame.code),
                    Some(frame) => write!(f, "{} {}", frame.code, frame.reason),
                    None => write!(f, "{}", self.0),
                }
            }
        }
        match self {
            State::Connecting { attempt } if *attempt > 1 => {
                write!(f, "connecting (attempt {attempt})")
            }
            State::Connecting { .. } => f.write_str("connecting"),
            State::Open => f.write_str("open"),
            State::Disconnected { error, retry_in } => write!(
                f,
                "reconnecting in {:.1} s ({})",
                retry_in.as_secs_f64(),
                Why(error)
            ),
            State::Closed { error: None } => f.write_str("closed"),
            State::Closed { error: Some(error) } => write!(f, "closed ({})", Why(error)),
        }
    }
}

struct Inner {
    state: State,
    version: u64,
    watchers: Vec<Waker>,
    /// The open connection, once the offline queue was flushed into it.
    conn: Option<Arc<Conn>>,
    queue: VecDeque<Message>,
    queue_limit: usize,
    /// `close` was called or the handle dropped.
    stopping: bool,
    stop_waker: Option<Waker>,
}

struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, state: State) {
        let watchers = {
            let mut inner = self.lock();
            inner.state = state;
            inner.version += 1;
            std::mem::take(&mut inner.watchers)
        };
        for w in watchers {
            w.wake();
        }
    }

    fn stop(&self) -> Option<Arc<Conn>> {
        let (conn, waker) = {
            let mut inner = self.lock();
            inner.stopping = true;
            (inner.conn.take(), inner.stop_waker.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        conn
    }

    fn stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Completes once `close` was called or the handle dropped.
    async fn stopped(&self) {
        poll_fn(|cx| {
            let mut inner = self.lock();
            if inner.stopping {
                Poll::Ready(())
            } else {
                inner.stop_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }

    /// Runs `fut` unless the client is stopped first (then `None`).
    async fn unless_stopped<F: Future>(&self, fut: F) -> Option<F::Output> {
        let fut = pin!(fut);
        let stopped = pin!(self.stopped());
        match select(fut, stopped).await {
            Either::Left((out, _)) => Some(out),
            Either::Right(_) => None,
        }
    }
}

/// A WebSocket client that reconnects by itself, on both targets.
///
/// [`start`](Reconnecting::start) returns at once; a background task dials, and dials again
/// after each disconnect with jittered exponential backoff, until [`close`](Self::close) is
/// called, the handle is dropped, or an error marked final ends it. Messages from every
/// connection arrive through [`read`](Self::read); [`write`](Self::write) goes to the current
/// connection; [`states`](Self::states) reports each change (connecting, open, disconnected
/// with the reason and the delay, closed).
///
/// Delivery is at most once: a message whose write failed because the connection dropped is
/// reported as failed, never resent. With
/// [`queue_while_offline`](ReconnectOptions::queue_while_offline), writes made while offline
/// wait in a bounded queue instead of failing.
///
/// `Reconnecting` is `Send + Sync` on every target; share it in an `Arc`.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> isosock::Result<()> {
/// use futures_util::StreamExt;
/// use isosock::reconnect::State;
/// use isosock::{DialOptions, ReconnectOptions, Reconnecting};
///
/// let client = Reconnecting::start(ReconnectOptions::new("ws://127.0.0.1:9001", DialOptions::new()))?;
/// let mut states = client.states();
/// while let Some(state) = states.next().await {
///     if let State::Open = state {
///         break;
///     }
/// }
/// client.write("hello").await?;
/// let reply = client.read().await?;
/// client.close(isosock::StatusCode::NORMAL_CLOSURE, "bye").await?;
/// # Ok(()) }
/// ```
pub struct Reconnecting {
    shared: Arc<Shared>,
    inbound: AsyncMutex<mpsc::Receiver<Message>>,
    /// Why the client stopped, for reads after the queue drained.
    outcome: Arc<Mutex<Option<Error>>>,
}

impl std::fmt::Debug for Reconnecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnecting")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Reconnecting>();
    assert_send_sync::<StateStream>();
};

impl Reconnecting {
    /// Starts the client: the first attempt begins at once in the background (a tokio task
    /// natively, a task on the page's event loop in the browser).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] for a zero
    /// [`connect_timeout`](ReconnectOptions::connect_timeout), for a
    /// [`heartbeat`](ReconnectOptions::heartbeat) with a zero interval or timeout, and natively
    /// outside a tokio runtime. Connection failures are not errors here: they show in
    /// [`states`](Self::states) and are retried.
    pub fn start(options: ReconnectOptions) -> Result<Self> {
        if options.connect_timeout.is_zero() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the reconnect connect timeout must be above zero (a zero limit expires before \
                 any attempt can connect)",
            ));
        }
        if let Some(hb) = &options.heartbeat {
            hb.check()?;
        }
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                state: State::Connecting { attempt: 1 },
                version: 0,
                watchers: Vec::new(),
                conn: None,
                queue: VecDeque::new(),
                queue_limit: options.queue_limit,
                stopping: false,
                stop_waker: None,
            }),
        });
        // futures' channel holds `buffer` plus one message per sender (one here); it panics for
        // a buffer near `usize::MAX`, which `read_ahead`'s clamp (1 to MAX_READ_AHEAD) keeps
        // it far from.
        let (tx, rx) = mpsc::channel(options.read_ahead.saturating_sub(1));
        let outcome = Arc::new(Mutex::new(None));
        let task = supervise(options, shared.clone(), tx, outcome.clone());
        if !rt::spawn(task) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "Reconnecting::start needs a tokio runtime to run its task on",
            ));
        }
        Ok(Reconnecting {
            shared,
            inbound: AsyncMutex::new(rx),
            outcome,
        })
    }

    /// Reads the next message, from whichever connection is open; waits across reconnects.
    ///
    /// # Errors
    ///
    /// Only once the client stopped for good and every received message was read: the final
    /// error, or [`ErrorKind::AlreadyClosed`] after [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped `read` loses no message.
    pub async fn read(&self) -> Result<Message> {
        let mut rx = self.inbound.lock().await;
        match rx.next().await {
            Some(msg) => Ok(msg),
            None => Err(self.final_error()),
        }
    }

    fn final_error(&self) -> Error {
        let outcome = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        outcome.clone().unwrap_or_else(|| {
            Error::new(
                ErrorKind::AlreadyClosed,
                "the reconnecting client was closed",
            )
        })
    }

    /// Sends a message on the current connection.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::ConnectionLost`]: no connection is open (the client is reconnecting)
    ///   and the offline queue is off or full. With the queue on, the message is queued and
    ///   `Ok` returned.
    /// - [`ErrorKind::AlreadyClosed`] after [`close`](Self::close); the final error after the
    ///   client gave up.
    /// - Every error of [`Conn::write`] when the connection fails during the write (the
    ///   message is not resent).
    ///
    /// # Cancel safety
    ///
    /// As [`Conn::write`].
    pub async fn write(&self, msg: impl Into<Message>) -> Result<()> {
        let msg = msg.into();
        let conn = {
            let mut inner = self.shared.lock();
            if inner.stopping {
                return Err(Error::new(
                    ErrorKind::AlreadyClosed,
                    "the reconnecting client was closed",
                ));
            }
            if let State::Closed { error } = &inner.state {
                return Err(error.clone().unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::AlreadyClosed,
                        "the reconnecting client was closed",
                    )
                }));
            }
            match &inner.conn {
                Some(conn) => conn.clone(),
                None if inner.queue.len() < inner.queue_limit => {
                    inner.queue.push_back(msg);
                    return Ok(());
                }
                None if inner.queue_limit > 0 => {
                    return Err(Error::new(
                        ErrorKind::ConnectionLost,
                        format!(
                            "not connected, and the offline queue is full ({} messages)",
                            inner.queue_limit
                        ),
                    ))
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::ConnectionLost,
                        "not connected (reconnecting); writes are not queued while offline \
                         unless ReconnectOptions::queue_while_offline is set",
                    ))
                }
            }
        };
        conn.write(msg).await
    }

    /// Stops reconnecting and closes the current connection with `code` and `reason` (a close
    /// handshake, as [`Conn::close`]). Messages already received can still be read.
    ///
    /// # Errors
    ///
    /// Those of [`Conn::close`] for the current connection; `Ok` if none was open.
    /// [`ErrorKind::AlreadyClosed`] if called before.
    pub async fn close(&self, code: StatusCode, reason: &str) -> Result<()> {
        crate::close::validate_close(code, reason)?;
        if self.shared.stopping() {
            return Err(Error::new(
                ErrorKind::AlreadyClosed,
                "the reconnecting client was already closed",
            ));
        }
        let conn = self.shared.stop();
        let res = match conn {
            Some(conn) => conn.close(code, reason).await,
            None => Ok(()),
        };
        self.shared.set_state(State::Closed { error: None });
        res
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.lock().state.clone()
    }

    /// The open connection, if any (for `ping`, `subprotocol` and the like; reading it
    /// directly would take messages from [`read`](Self::read)).
    pub fn conn(&self) -> Option<Arc<Conn>> {
        self.shared.lock().conn.clone()
    }

    /// A stream of state changes: it yields the current state first, then each new one, and
    /// ends after [`State::Closed`].
    ///
    /// It reports the latest state: an observer that falls behind skips the states in
    /// between, never the last one (like a watch channel), so it never holds memory for a
    /// slow observer.
    pub fn states(&self) -> StateStream {
        StateStream {
            shared: self.shared.clone(),
            seen: 0,
            done: false,
        }
    }
}

impl Drop for Reconnecting {
    fn drop(&mut self) {
        if let Some(conn) = self.shared.stop() {
            conn.close_now();
        }
    }
}

/// The stream of [`State`] changes of a [`Reconnecting`] client, from
/// [`Reconnecting::states`].
pub struct StateStream {
    shared: Arc<Shared>,
    seen: u64,
    done: bool,
}

impl std::fmt::Debug for StateStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStream")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Stream for StateStream {
    type Item = State;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<State>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut inner = this.shared.lock();
        if inner.version != this.seen {
            this.seen = inner.version;
            let state = inner.state.clone();
            this.done = matches!(state, State::Closed { .. });
            return Poll::Ready(Some(state));
        }
        if !inner.watchers.iter().any(|w| w.will_wake(cx.waker())) {
            inner.watchers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl FusedStream for StateStream {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// The delay before attempt `failures + 1`: `initial` doubled per earlier failure, capped at
/// `max`, then equal-jittered into `[d/2, d]` with `random`. Total for every input: no
/// arithmetic here can overflow, up to `Duration::MAX` for both.
pub(crate) fn backoff_delay(
    failures: u32,
    initial: Duration,
    max: Duration,
    random: u64,
) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let step = initial
        .checked_mul(1u32 << doublings)
        .unwrap_or(max)
        .min(max);
    let half = step / 2;
    // The jitter is at most `step - half` (capped at u64::MAX ns, some 584 years), drawn
    // from `random` modulo one more than that; at the cap, `random` itself.
    let spread = u64::try_from((step - half).as_nanos()).unwrap_or(u64::MAX);
    let extra = match spread.checked_add(1) {
        Some(n) => random % n,
        None => random,
    };
    half.saturating_add(Duration::from_nanos(extra))
}

fn is_final(opts: &mut ReconnectOptions, e: &Error) -> bool {
    if matches!(
        e.kind(),
        ErrorKind::InvalidUrl | ErrorKind::InvalidArgument | ErrorKind::Unsupported
    ) {
        return true;
    }
    if e.kind() == ErrorKind::Closed {
        if let Some(code) = crate::close_status(e) {
            if opts.final_codes.contains(&code) {
                return true;
            }
        }
    }
    opts.final_if.as_mut().is_some_and(|f| f(e))
}

/// The supervisor: the only place that dials.
async fn supervise(
    mut opts: ReconnectOptions,
    shared: Arc<Shared>,
    mut inbound: mpsc::Sender<Message>,
    outcome: Arc<Mutex<Option<Error>>>,
) {
    let finish = |error: Option<Error>| {
        *outcome.lock().unwrap_or_else(|e| e.into_inner()) = error.clone();
        shared.set_state(State::Closed { error });
    };
    let mut failures: u32 = 0;
    loop {
        if shared.stopping() {
            return finish(None);
        }
        shared.set_state(State::Connecting {
            attempt: failures.saturating_add(1),
        });
        let timeout = opts.connect_timeout;
        let started = rt::now();
        let target = (opts.provider)(());
        let attempt = async move {
            let (url, options) = target.await.map_err(|e| {
                Error::with_source(ErrorKind::Connect, "the endpoint provider failed", e)
            })?;
            dial(&url, &options.timeout(timeout)).await.map(|(c, _)| c)
        };
        let Some(result) = shared.unless_stopped(attempt).await else {
            return finish(None);
        };
        let error = match result {
            Ok(conn) => {
                let conn = Arc::new(conn);
                // Stopped with this connection, however the supervisor leaves it: a long
                // interval must not leave one sleeping task behind per reconnect. `start`
                // checked the heartbeat, so only a missing runtime could fail it here, and
                // the supervisor runs on one.
                let _heartbeat = StopOnDrop(
                    opts.heartbeat
                        .as_ref()
                        .and_then(|hb| hb.clone().start(&conn).ok()),
                );
                let opened_at = rt::now();
                let greeted = async {
                    match opts.on_open.as_mut() {
                        None => Ok(()),
                        Some(hook) => {
                            let left = timeout.saturating_sub(opened_at.saturating_sub(started));
                            greet(hook(conn.clone()), left).await
                        }
                    }
                };
                let publish = async {
                    greeted.await?;
                    publish(&shared, &conn).await
                };
                let error = match shared.unless_stopped(publish).await {
                    None => return finish(None),
                    Some(Err(e)) => e,
                    Some(Ok(())) => match shared.unless_stopped(pump(&conn, &mut inbound)).await {
                        // Stopped by `close` (which closes the connection) or the handle's drop.
                        None | Some(None) => return finish(None),
                        Some(Some(e)) => e,
                    },
                };
                shared.lock().conn = None;
                if rt::now().saturating_sub(opened_at) >= opts.stable_after {
                    failures = 0;
                }
                error
            }
            Err(e) => e,
        };
        if shared.stopping() {
            return finish(None);
        }
        if is_final(&mut opts, &error) {
            return finish(Some(error));
        }
        failures = failures.saturating_add(1);
        if opts.max_attempts.is_some_and(|max| failures >= max) {
            return finish(Some(error));
        }
        let retry_in = backoff_delay(
            failures,
            opts.initial_delay,
            opts.max_delay,
            rt::random_u64(),
        );
        shared.set_state(State::Disconnected { error, retry_in });
        if shared.unless_stopped(rt::sleep(retry_in)).await.is_none() {
            return finish(None);
        }
    }
}

/// Stops a heartbeat when dropped.
struct StopOnDrop(Option<HeartbeatHandle>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.stop();
        }
    }
}

/// Runs an `on_open` hook's future for at most `limit`.
async fn greet(
    hook: TaskFuture<std::result::Result<(), ProviderError>>,
    limit: Duration,
) -> Result<()> {
    match select(hook, pin!(rt::sleep(limit))).await {
        Either::Left((Ok(()), _)) => Ok(()),
        Either::Left((Err(e), _)) => Err(match e.downcast::<Error>() {
            Ok(e) => *e,
            Err(e) => Error::with_source(
                ErrorKind::Connect,
                format!("the on_open hook failed: {e}"),
                e,
            ),
        }),
        Either::Right(_) => Err(Error::new(
            ErrorKind::Timeout,
            "the on_open hook did not finish within the connect timeout",
        )),
    }
}

/// Sends the offline queue, in order, then makes `conn` the one writes use. A message whose
/// write fails goes back to the front of the queue.
async fn publish(shared: &Shared, conn: &Arc<Conn>) -> Result<()> {
    loop {
        let next = {
            let mut inner = shared.lock();
            match inner.queue.pop_front() {
                Some(msg) => msg,
                None => {
                    inner.conn = Some(conn.clone());
                    drop(inner);
                    shared.set_state(State::Open);
                    return Ok(());
                }
            }
        };
        if let Err(e) = conn.write(next.clone()).await {
            shared.lock().queue.push_front(next);
            return Err(e);
        }
    }
}

/// Reads `conn` into the inbound queue until it ends; `None` if the reader went away.
async fn pump(conn: &Conn, inbound: &mut mpsc::Sender<Message>) -> Option<Error> {
    loop {
        match conn.read().await {
            Ok(msg) => {
                if inbound.send(msg).await.is_err() {
                    return None;
                }
            }
            Err(e) => return Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_within_half_to_full() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for failures in 1..40u32 {
            let step = (initial * 2u32.saturating_pow(failures - 1).min(1 << 20)).min(max);
            for random in [0, 1, 12_345, u64::MAX / 3, u64::MAX] {
                let d = backoff_delay(failures, initial, max, random);
                assert!(
                    d >= step / 2 && d <= step,
                    "{failures}: {d:?} not in [{:?}, {step:?}]",
                    step / 2
                );
            }
        }
        assert_eq!(backoff_delay(1, initial, max, 0), Duration::from_millis(50));
        assert_eq!(
            backoff_delay(3, initial, max, 0),
            Duration::from_millis(200)
        );
        assert_eq!(backoff_delay(30, initial, max, 0), Duration::from_secs(1));
        assert_eq!(
            backoff_delay(0, Duration::ZERO, Duration::ZERO, 7),
            Duration::ZERO
        );
    }

    #[test]
    fn backoff_is_total_at_the_edges_of_duration_and_u64() {
        let edges = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(u64::MAX),
            Duration::from_nanos(u64::MAX) * 2,
            Duration::MAX / 2,
            Duration::MAX,
        ];
        for failures in [0, 1, 2, 31, 32, 33, u32::MAX] {
            for initial in edges {
                for max in edges {
                    // As the setter leaves them: `max` at least `initial`.
                    let max = max.max(initial);
                    for random in [0, 1, u64::MAX - 1, u64::MAX] {
                        let d = backoff_delay(failures, initial, max, random);
                        assert!(d <= max, "{failures} {initial:?} {max:?} {random}: {d:?}");
                        assert!(d >= initial.min(max) / 2, "{failures} {initial:?}: {d:?}");
                    }
                }
            }
        }
        // A step past u64::MAX ns takes the random number as the jitter, whole.
        let d = backoff_delay(1, Duration::MAX, Duration::MAX, u64::MAX);
        assert_eq!(d, Duration::MAX / 2 + Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn setters_clamp_to_their_documented_bounds() {
        let opts = || ReconnectOptions::new("ws://127.0.0.1:1", DialOptions::new());
        let o = opts().backoff(Duration::ZERO, Duration::ZERO);
        assert_eq!(
            (o.initial_delay, o.max_delay),
            (MIN_RETRY_DELAY, MIN_RETRY_DELAY)
        );
        let o = opts().backoff(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(o.max_delay, Duration::from_secs(10));
        let o = opts().backoff(Duration::MAX, Duration::MAX);
        assert_eq!(
            (o.initial_delay, o.max_delay),
            (Duration::MAX, Duration::MAX)
        );
        assert_eq!(opts().read_ahead(0).read_ahead, 1);
        assert_eq!(opts().read_ahead(usize::MAX).read_ahead, MAX_READ_AHEAD);
        assert_eq!(opts().max_attempts(0).max_attempts, Some(1));
        assert_eq!(
            opts().queue_while_offline(usize::MAX).queue_limit,
            usize::MAX
        );
    }
}
