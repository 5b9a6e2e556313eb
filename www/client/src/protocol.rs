//! The chat protocol of `examples/chat_server.rs` as typed messages: JSON text, tagged by `type`.

use serde::{Deserialize, Serialize};

/// What the page sends: one `hello` per connection, then any number of `say`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum ClientMsg<'a> {
    /// Joins the room under a nickname; must be the first message of every connection.
    Hello { nick: &'a str },
    /// One chat line.
    Say { text: &'a str },
}

impl ClientMsg<'_> {
    /// The message as the JSON text the server reads.
    pub(crate) fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// What the server broadcasts.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum ServerMsg {
    /// A chat line from `nick` (possibly this page's own, echoed back).
    Msg { nick: String, text: String },
    /// Someone joined or left; `online` is the room's size after the change.
    System { text: String, online: u32 },
    /// A message type this client does not know yet: ignored, so the server may add some.
    #[serde(other)]
    Unknown,
}

impl ServerMsg {
    /// Parses one text message from the server.
    pub(crate) fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}
