//! The runtime the shared helpers (reconnect, heartbeat) run on natively: tokio.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
