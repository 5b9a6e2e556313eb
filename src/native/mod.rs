//! The native backend: RFC 6455 on tokio streams (+ rustls for `wss://`).

pub(crate) mod accept;
pub(crate) mod dial;
mod engine;
pub(crate) mod extensions;
pub(crate) mod frame;
pub(crate) mod handshake;
mod http1;
pub(crate) mod io;
pub(crate) mod rt;

pub(crate) use dial::{DialExtras, ResponseExtras};
pub(crate) use engine::{Conn, Negotiated, Settings};
