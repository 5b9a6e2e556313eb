//! Whole WebSocket data messages.

use bytes::Bytes;

/// The type of a data message: UTF-8 text or raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A text message; its payload is valid UTF-8.
    Text,
    /// A binary message; its payload is arbitrary bytes.
    Binary,
}

/// One complete WebSocket data message.
///
/// Control frames (ping, pong, close) are never delivered as messages: pings are answered for
/// you, pongs complete [`Conn::ping`](crate::Conn), and a close frame ends the connection with
/// an [`Error`](crate::Error) of kind [`ErrorKind::Closed`](crate::ErrorKind::Closed).
///
/// # Examples
///
/// ```
/// use isosock::{Message, MessageType};
///
/// let m = Message::text("hello");
/// assert_eq!(m.message_type(), MessageType::Text);
/// assert_eq!(m.as_text(), Some("hello"));
/// assert_eq!(Message::binary(vec![1, 2, 3]).len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A UTF-8 text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// Creates a text message.
    pub fn text(text: impl Into<String>) -> Self {
        Message::Text(text.into())
    }

    /// Creates a binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Message::Binary(data.into())
    }

    /// Returns whether this is a text or a binary message.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Text(_) => MessageType::Text,
            Message::Binary(_) => MessageType::Binary,
        }
    }

    /// Returns the payload's bytes (the UTF-8 encoding for text).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Returns the text of a text message, or `None` for a binary one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(s) => Some(s),
            Message::Binary(_) => None,
        }
    }

    /// Consumes the message and returns its payload's bytes.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Message::Text(s) => Bytes::from(s),
            Message::Binary(b) => b,
        }
    }

    /// Returns the payload's length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Returns `true` if the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b.into())
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Message::Binary(Bytes::copy_from_slice(b))
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}
