//! The native backend: RFC 6455 on tokio streams (+ rustls for `wss://`): isosock's handshake,
//! then one of the engines (`conn.rs` says how one is chosen per connection).

pub(crate) mod accept;
mod closing;
mod conn;
pub(crate) mod dial;
mod engine;
pub(crate) mod extensions;
pub(crate) mod frame;
pub(crate) mod handshake;
mod http1;
pub(crate) mod io;
mod pings;
pub(crate) mod proxy;
pub(crate) mod rt;
#[cfg(feature = "tungstenite")]
mod tungstenite;

pub(crate) use conn::Conn;
pub(crate) use dial::{DialExtras, ResponseExtras};
pub(crate) use engine::{Negotiated, Settings};
pub(crate) use proxy::ProxySetting;
