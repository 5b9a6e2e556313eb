//! The runtime the shared helpers (reconnect, heartbeat) run on in the browser: the page's
//! event loop (`spawn_local`), `setTimeout` and `Math.random`; and what the user code they run
//! must be (anything: the page has one thread, so it may hold `!Send` JavaScript values).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::oneshot;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

use crate::conn::Conn;
use crate::error::Result;

/// Runs `fut` on the page's event loop. Always succeeds (the signature matches the native
/// backend's, where there may be no runtime).
pub(crate) fn spawn(fut: impl Future<Output = ()> + 'static) -> bool {
    wasm_bindgen_futures::spawn_local(fut);
    true
}

/// The longest delay one `setTimeout` takes: `i32::MAX` ms (about 24.8 days). Browsers treat
/// a longer one as 0 and fire at once.
const MAX_TIMER_MS: u64 = i32::MAX as u64;

/// Splits `left` into the next timer's delay in whole milliseconds (rounded up, so a sleep
/// never ends early; at most [`MAX_TIMER_MS`]) and what remains after it.
fn next_timer(left: Duration) -> (i32, Duration) {
    let ms = left.as_nanos().div_ceil(1_000_000);
    let ms = u64::try_from(ms).unwrap_or(u64::MAX).min(MAX_TIMER_MS);
    let rest = left.saturating_sub(Duration::from_millis(ms));
    (i32::try_from(ms).unwrap_or(i32::MAX), rest)
}

/// Completes after `d`, at millisecond resolution like tokio's timers, however long `d` is:
/// a delay beyond one `setTimeout`'s reach (`Duration::MAX` included) is a chain of them, so
/// it never ends early. Dropping the future clears the pending timer.
pub(crate) async fn sleep(d: Duration) {
    let mut left = d;
    loop {
        let (ms, rest) = next_timer(left);
        sleep_ms(ms).await;
        if rest.is_zero() {
            return;
        }
        left = rest;
    }
}

/// Completes after `ms` milliseconds (one `setTimeout`, cleared if the future is dropped
/// first).
async fn sleep_ms(ms: i32) {
    let (tx, rx) = oneshot::channel::<()>();
    let mut tx = Some(tx);
    let callback = Closure::<dyn FnMut()>::new(move || {
        if let Some(tx) = tx.take() {
            let _ = tx.send(());
        }
    });
    let Ok(handle) = super::driver::set_timeout(callback.as_ref().unchecked_ref(), ms) else {
        // No timers in this global scope: do not spin, never wake.
        std::future::pending::<()>().await;
        return;
    };
    struct Clear(wasm_bindgen::JsValue);
    impl Drop for Clear {
        fn drop(&mut self) {
            super::driver::clear_timeout(&self.0);
        }
    }
    let _clear = Clear(handle);
    let _ = rx.await;
    drop(callback);
}

/// Milliseconds since the page loaded (`performance.now()`, or `Date.now()` where there is no
/// `performance`), as a `Duration`.
pub(crate) fn now() -> Duration {
    let global = js_sys::global();
    let perf = js_sys::Reflect::get(&global, &"performance".into())
        .ok()
        .filter(|p| p.is_object());
    let ms = perf
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            let now = now.dyn_into::<js_sys::Function>().ok()?;
            now.call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now);
    // `try_`: a clock that said NaN, a negative or an infinite time must not panic here.
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or_default()
}

/// A random number for jitter (not for cryptography): `Math.random`.
pub(crate) fn random_u64() -> u64 {
    (js_sys::Math::random() * (u64::MAX as f64)) as u64
}

/// `Send` natively; implemented by every type on `wasm32`.
///
/// Bounds on closures and futures that isosock runs in a background task (such as a
/// [`ReconnectOptions::provider`](crate::ReconnectOptions::provider)) use it, so the same code
/// compiles on both targets while browser code may hold JavaScript values.
pub trait MaybeSend {}
impl<T: ?Sized> MaybeSend for T {}

/// A boxed future that is `Send` natively.
pub(crate) type TaskFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

/// A boxed closure that is `Send` natively.
pub(crate) type TaskFn<A, R> = Box<dyn FnMut(A) -> R + 'static>;

/// A boxed predicate on errors that is `Send` natively.
pub(crate) type TaskPredicate = Box<dyn FnMut(&crate::Error) -> bool + 'static>;

/// The heartbeat's WebSocket ping: uninhabited, since browsers cannot send pings
/// (`Heartbeat::ping` is native only).
#[derive(Debug, Clone)]
pub(crate) enum PingProbe {}

impl PingProbe {
    /// Never called: there is no value to call it on.
    pub(crate) fn send(&self, _conn: Arc<Conn>, _timeout: Duration) -> Result<()> {
        match *self {}
    }
}
