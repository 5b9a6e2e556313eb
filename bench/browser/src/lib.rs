//! Browser benchmark of isosock's wasm backend: an echo loop through `isosock::Conn`, exported
//! to the page in `index.html`, which runs the same loop against the JS `WebSocket` (`bench.js`)
//! and compares the two. Run it with `scripts/bench-browser.sh`.
//!
//! One run dials the echo server, then sends `count` binary messages of `size` bytes and reads
//! their echoes, keeping at most `window` messages in flight (1 is ping-pong), and returns the
//! elapsed milliseconds from the first write to the last echo (the dial and the close are not
//! timed). The page's raw-JS loop (`rawEcho` in `bench.js`) follows the same steps.
#![cfg(target_arch = "wasm32")]

use isosock::{dial, DialOptions, Message, StatusCode};
use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: the same clock the page's raw-JS loop uses.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Runs one echo run through isosock and returns its elapsed milliseconds.
///
/// `window` is the number of messages in flight (at least 1; 1 is ping-pong). Every echo is
/// checked to be a binary message of `size` bytes.
///
/// # Errors
///
/// Throws an `Error` if the dial, a write or a read fails, or an echo is not what was sent.
#[wasm_bindgen(js_name = isosockEcho)]
pub async fn isosock_echo(
    url: String,
    size: usize,
    count: u32,
    window: u32,
) -> Result<f64, js_sys::Error> {
    let fail = |e: isosock::Error| js_sys::Error::new(&e.to_string());
    let opts = DialOptions::new().read_limit(size.max(1024));
    let (conn, _) = dial(&url, &opts).await.map_err(fail)?;
    // The same bytes every time, as the raw-JS loop sends; cloning the message's `Bytes`
    // copies nothing.
    let payload = Message::binary(pattern(size));
    let window = window.max(1);
    let (mut sent, mut received) = (0u32, 0u32);

    let start = performance_now();
    while received < count {
        while sent < count && sent - received < window {
            conn.write(payload.clone()).await.map_err(fail)?;
            sent += 1;
        }
        match conn.read().await.map_err(fail)? {
            Message::Binary(b) if b.len() == size => received += 1,
            other => {
                return Err(js_sys::Error::new(&format!(
                    "echo {received}: expected {size} binary bytes, got {:?} of {} bytes",
                    other.message_type(),
                    other.len()
                )))
            }
        }
    }
    let elapsed = performance_now() - start;

    conn.close(StatusCode::NORMAL_CLOSURE, "")
        .await
        .map_err(fail)?;
    Ok(elapsed)
}

/// `size` bytes of a repeating pattern (the one `bench.js` fills in).
fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// Heap allocations counted by the `count-allocs` feature: how many, and how many bytes, since
/// the module loaded. The driver's `--profile` mode divides the growth over a run by its
/// message count.
#[cfg(feature = "count-allocs")]
#[wasm_bindgen]
pub fn allocations() -> Vec<f64> {
    counting::snapshot()
}

#[cfg(feature = "count-allocs")]
#[allow(unsafe_code)] // `GlobalAlloc` is an unsafe trait; every call forwards to `System`.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicU64, Ordering};

    static CALLS: AtomicU64 = AtomicU64::new(0);
    static BYTES: AtomicU64 = AtomicU64::new(0);

    struct Counting;

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    // SAFETY: every method forwards to `System` with the caller's own arguments, which meet
    // `System`'s contract because they meet `GlobalAlloc`'s; the counters touch no memory.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count(layout.size());
            System.alloc(layout)
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count(layout.size());
            System.alloc_zeroed(layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count(new_size);
            System.realloc(ptr, layout, new_size)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
    }

    fn count(bytes: usize) {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `[allocations (realloc counts as one), bytes requested]`.
    pub(super) fn snapshot() -> Vec<f64> {
        vec![
            CALLS.load(Ordering::Relaxed) as f64,
            BYTES.load(Ordering::Relaxed) as f64,
        ]
    }
}
