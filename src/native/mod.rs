//! The native backend: RFC 6455 on tokio streams (+ rustls for `wss://`).

pub(crate) mod accept;
pub(crate) mod conn;
pub(crate) mod dial;
pub(crate) mod frame;
mod handshake;
mod http1;
pub(crate) mod io;
pub(crate) mod rt;

pub(crate) use conn::{Closed, Conn, WriteGuard, WRITER_STREAMS};
pub(crate) use dial::{dial, DialExtras};
