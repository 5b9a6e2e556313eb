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
    decode(&conn.read().await?)
}

/// Decodes a message as JSON into a `T`: what [`read()`] does with the message it read, for
/// messages that come from elsewhere ([`Reconnecting::read`](crate::Reconnecting::read), a
/// framework hook's latest message).
///
/// # Errors
///
/// [`ErrorKind::Decode`] when the message is not JSON for `T`, as for [`read()`].
pub fn decode<T: DeserializeOwned>(msg: &Message) -> Result<T> {
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
    conn.write(encode(value)?).await
}

/// Encodes `value` as one JSON text message: what [`write()`] sends, for writers other than a
/// [`Conn`] ([`Reconnecting::write`](crate::Reconnecting::write), a framework hook's send).
///
/// # Errors
///
/// [`ErrorKind::InvalidArgument`] when `value` cannot be encoded as JSON, as for [`write()`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Message> {
    serde_json::to_string(value)
        .map(Message::Text)
        .map_err(|e| {
            Error::with_source(
                ErrorKind::InvalidArgument,
                format!("cannot encode a {} as JSON: {e}", type_name::<T>()),
                e,
            )
        })
}
