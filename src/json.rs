//! Typed JSON messages (feature `json`), like coder/websocket's `wsjson`: one value per text
//! message.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo(conn: isosock::Conn) -> isosock::Result<()> {
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Chat {
//!     nick: String,
//!     text: String,
//! }
//!
//! isosock::json::write(&conn, &Chat { nick: "ann".into(), text: "hi".into() }).await?;
//! let reply: Chat = isosock::json::read(&conn).await?;
//! println!("{}: {}", reply.nick, reply.text);
//! # Ok(()) }
//! ```

use std::any::type_name;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;

/// Reads the next message and decodes it as JSON into a `T`.
///
/// The connection's read limit applies as for [`Conn::read`]: a bigger message closes the
/// connection with 1009 before anything is decoded. Text and binary messages are both
/// accepted (JSON is UTF-8 either way).
///
/// # Errors
///
/// - [`ErrorKind::Decode`]: the message is not JSON for `T`; the error's message includes
///   serde's, its [`source`](std::error::Error::source) is the `serde_json::Error`. The
///   message is consumed and the connection stays open: the next `read` continues with the
///   next message (close it yourself if the protocol calls for that).
/// - Every error of [`Conn::read`].
///
/// # Cancel safety
///
/// Cancel-safe, as [`Conn::read`]: decoding happens after the message was taken, within one
/// poll.
pub async fn read<T: DeserializeOwned>(conn: &Conn) -> Result<T> {
    let msg = conn.read().await?;
    serde_json::from_slice(msg.as_bytes()).map_err(|e| {
        let kind = match msg {
            Message::Text(_) => "text",
            Message::Binary(_) => "binary",
        };
        let len = msg.len();
        Error::with_source(
            ErrorKind::Decode,
            format!(
                "a {kind} message of {len} bytes is not JSON for {}: {e}",
                type_name::<T>()
            ),
            e,
        )
    })
}

/// Encodes `value` as JSON and sends it as one text message.
///
/// Numbers JSON cannot hold are written as serde_json writes them: a NaN or infinite float
/// becomes `null` (read back, it decodes into an `Option` as `None`, into an `f64` not at
/// all), every integer up to `u64::MAX` and down to `i64::MIN` exactly. The message is as
/// large as the encoding; the peer's read limit decides whether it is accepted.
///
/// # Errors
///
/// - [`ErrorKind::InvalidArgument`]: `value` cannot be encoded as JSON (for example a map
///   with non-string keys); nothing is sent.
/// - Every error of [`Conn::write`].
///
/// # Cancel safety
///
/// As [`Conn::write`]: the message is sent whole or not at all.
pub async fn write<T: Serialize + ?Sized>(conn: &Conn, value: &T) -> Result<()> {
    let text = serde_json::to_string(value).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidArgument,
            format!("cannot encode a {} as JSON: {e}", type_name::<T>()),
            e,
        )
    })?;
    conn.write(Message::Text(text)).await
}
