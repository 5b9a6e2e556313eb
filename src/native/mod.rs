//! The native backend: tokio + tokio-tungstenite (+ rustls for `wss://`).

pub(crate) mod accept;
mod conn;
pub(crate) mod dial;
mod http1;
mod io;
pub(crate) mod rt;

pub(crate) use conn::{Closed, Conn, WriteGuard, WRITER_STREAMS};
pub(crate) use dial::dial;
