//! The runtime the shared helpers (reconnect, heartbeat) run on in the browser: the page's
//! event loop (`spawn_local`), `setTimeout` and `Math.random`.

use std::future::Future;
use std::time::Duration;

use futures_channel::oneshot;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

/// Runs `fut` on the page's event loop. Always succeeds (the signature matches the native
/// backend's, where there may be no runtime).
pub(crate) fn spawn(fut: impl Future<Output = ()> + 'static) -> bool {
    wasm_bindgen_futures::spawn_local(fut);
    true
}

/// Completes after `d` (a `setTimeout`, cleared if the future is dropped first).
pub(crate) async fn sleep(d: Duration) {
    let (tx, rx) = oneshot::channel::<()>();
    let mut tx = Some(tx);
    let callback = Closure::<dyn FnMut()>::new(move || {
        if let Some(tx) = tx.take() {
            let _ = tx.send(());
        }
    });
    let ms = i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
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
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

/// A random number for jitter (not for cryptography): `Math.random`.
pub(crate) fn random_u64() -> u64 {
    (js_sys::Math::random() * (u64::MAX as f64)) as u64
}
