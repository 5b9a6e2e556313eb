//! JavaScript bindings of isosock (placeholder).
#![cfg(target_arch = "wasm32")]
