//! The runtime the shared helpers (reconnect, heartbeat) run on natively: tokio; and what the
//! user code they run must be (`Send`, since tokio's tasks move between threads).

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::conn::Conn;
use crate::error::Result;

/// Runs `fut` in the background on the current tokio runtime.
///
/// Returns `false` (and drops `fut`) when called outside a tokio runtime, so callers can
/// report that instead of panicking as `tokio::spawn` would.
pub(crate) fn spawn(fut: impl Future<Output = ()> + Send + 'static) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(fut);
            true
        }
        Err(_) => false,
    }
}

/// Completes after `d`.
pub(crate) async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Time since an arbitrary fixed point, monotonic.
pub(crate) fn now() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// A random number for jitter (not for cryptography): std's per-process random hash keys
/// mixed with a counter.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// `Send` natively; implemented by every type on `wasm32`.
///
/// Bounds on closures and futures that isosock runs in a background task (such as a
/// [`ReconnectOptions::provider`](crate::ReconnectOptions::provider)) use it, so the same code
/// compiles on both targets while browser code may hold JavaScript values.
pub trait MaybeSend: Send {}
impl<T: Send + ?Sized> MaybeSend for T {}

/// A boxed future that is `Send` natively.
pub(crate) type TaskFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A boxed closure that is `Send` natively.
pub(crate) type TaskFn<A, R> = Box<dyn FnMut(A) -> R + Send + 'static>;

/// A boxed predicate on errors that is `Send` natively.
pub(crate) type TaskPredicate = Box<dyn FnMut(&crate::Error) -> bool + Send + 'static>;

/// The heartbeat's WebSocket ping (`Heartbeat::ping`).
#[derive(Debug, Clone)]
pub(crate) struct PingProbe;

impl PingProbe {
    /// Sends a ping without waiting for its pong (the received count tells whether it came).
    pub(crate) fn send(&self, conn: Arc<Conn>, timeout: Duration) -> Result<()> {
        spawn(async move {
            // Bounded, so this task never keeps a dropped connection alive for long.
            let _ = tokio::time::timeout(timeout, conn.ping()).await;
        });
        Ok(())
    }
}
