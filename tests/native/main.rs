//! Native tests: the shared scenarios against an in-process echo server, plus server-side,
//! TLS, cancellation and fault tests, and interop tests against real Python `websockets` and
//! Node `ws` peers.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    // faults.rs, interop.rs and semantics.rs are included once per engine on purpose (`own`, `tungstenite`).
    clippy::duplicate_mod
)]

#[cfg(feature = "hyper")]
#[path = "../../examples/axum_chat.rs"]
mod axum_chat;
#[cfg(feature = "hyper")]
#[path = "../../examples/chat_server.rs"]
mod chat_server;
#[path = "../common/mod.rs"]
mod common;
#[path = "../../examples/echo_server.rs"]
mod echo_server;

mod accept;
#[cfg(feature = "tungstenite")]
mod adopt;
#[cfg(feature = "hyper")]
mod axum_app;
mod conformance;
mod examples_load;
mod extreme_values;
mod hardening;
#[cfg(feature = "hyper")]
mod hyper_service;
mod misc;
mod proxy;
mod scenarios;
mod security;
mod server;
mod tls;
mod util;

/// The fault, interop and semantics tests on the own engine. The files are written once and included per
/// engine: each reads `super::ENGINE` for the engine its connections (both ends that isosock
/// runs) use. (`#[path = "."]` makes the paths inside relative to this directory.)
#[path = "."]
mod own {
    /// The engine of this module's tests.
    pub const ENGINE: isosock::Engine = isosock::Engine::Own;
    #[path = "faults.rs"]
    mod faults;
    #[path = "interop.rs"]
    mod interop;
    /// permessage-deflate with the real peers: the own engine only (the tungstenite engine has
    /// no compression, and refusing it is tested in `scenarios`).
    #[path = "interop/deflate.rs"]
    mod interop_deflate;
    #[path = "semantics.rs"]
    mod semantics;
}

/// The same fault, interop and semantics tests on the tokio-tungstenite engine.
#[cfg(feature = "tungstenite")]
#[path = "."]
mod tungstenite {
    /// The engine of this module's tests.
    pub const ENGINE: isosock::Engine = isosock::Engine::Tungstenite;
    #[path = "faults.rs"]
    mod faults;
    #[path = "interop.rs"]
    mod interop;
    #[path = "semantics.rs"]
    mod semantics;
}

tokio::task_local! {
    /// The compression the shared scenarios dial with (tests/native/scenarios.rs sets it).
    pub static COMPRESSION: isosock::Compression;
    /// The engine the shared scenarios dial with (tests/native/scenarios.rs sets it).
    pub static ENGINE: isosock::Engine;
}

/// The options the shared scenarios dial with: the defaults, plus the compression mode of the
/// scenario module running (every message compressed), if any, and its engine.
pub fn dial_options() -> isosock::DialOptions {
    let mode = COMPRESSION
        .try_with(|m| *m)
        .unwrap_or(isosock::Compression::Disabled);
    let engine = ENGINE.try_with(|e| *e).unwrap_or_default();
    isosock::DialOptions::new()
        .compression(mode)
        .compression_threshold(0)
        .engine(engine)
}
