//! The chat demo's browser client (placeholder; see the issue for the real page).
#![cfg(target_arch = "wasm32")]
