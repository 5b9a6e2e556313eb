//! Protocol Buffers messages (feature `protobuf`, with prost), like Go's `wspb`: one
//! `prost::Message` per binary WebSocket message.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo(conn: isosock::Conn) -> isosock::Result<()> {
//! #[derive(Clone, PartialEq, prost::Message)]
//! struct Point {
//!     #[prost(int32, tag = "1")]
//!     x: i32,
//!     #[prost(int32, tag = "2")]
//!     y: i32,
//! }
//!
//! isosock::protobuf::write(&conn, &Point { x: 1, y: 2 }).await?;
//! let p: Point = isosock::protobuf::read(&conn).await?;
//! # Ok(()) }
//! ```

use std::any::type_name;

use bytes::Bytes;

use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;

/// Reads the next message and decodes it as a protobuf `M`.
///
/// The connection's read limit applies as for [`Conn::read`].
///
/// # Errors
///
/// - [`ErrorKind::Decode`]: the message is a text message, or its bytes are not a valid
///   encoding of `M` (prost's error is the [`source`](std::error::Error::source)). The message
///   is consumed and the connection stays open.
/// - Every error of [`Conn::read`].
///
/// # Cancel safety
///
/// Cancel-safe, as [`Conn::read`].
pub async fn read<M: prost::Message + Default>(conn: &Conn) -> Result<M> {
    match conn.read().await? {
        Message::Binary(bytes) => {
            let len = bytes.len();
            M::decode(bytes).map_err(|e| {
                Error::with_source(
                    ErrorKind::Decode,
                    format!(
                        "a binary message of {len} bytes is not a valid {}: {e}",
                        type_name::<M>()
                    ),
                    e,
                )
            })
        }
        Message::Text(text) => Err(Error::new(
            ErrorKind::Decode,
            format!(
                "expected a binary message holding a {}, got a text message of {} bytes",
                type_name::<M>(),
                text.len()
            ),
        )),
    }
}

/// Encodes `msg` and sends it as one binary message.
///
/// A message whose fields all hold their defaults encodes to zero bytes: an empty binary
/// message, which [`read`] decodes back into the default. The message is as large as the
/// encoding; the peer's read limit decides whether it is accepted.
///
/// # Errors
///
/// Every error of [`Conn::write`].
///
/// # Cancel safety
///
/// As [`Conn::write`]: the message is sent whole or not at all.
pub async fn write<M: prost::Message>(conn: &Conn, msg: &M) -> Result<()> {
    conn.write(Message::Binary(Bytes::from(msg.encode_to_vec())))
        .await
}
