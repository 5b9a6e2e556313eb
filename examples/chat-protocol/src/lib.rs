//! The chat demo's wire protocol, written once and shared by every side of it: the server
//! (`examples/chat_server.rs`), the demo page's client (`www/client`), the Leptos and Yew
//! frontends (`examples/leptos-chat`, `examples/yew-chat`) and the terminal client
//! (`examples/chat-cli`). The same crate compiles natively and for `wasm32`, like isosock.
//!
//! Every message is one WebSocket **text** message holding a JSON object tagged by `"type"`:
//!
//! | direction | JSON | Rust |
//! | --- | --- | --- |
//! | client → server | `{"type":"hello","nick":"ann"}` | [`ClientMsg::Hello`] |
//! | client → server | `{"type":"say","text":"hi"}` | [`ClientMsg::Say`] |
//! | server → clients | `{"type":"msg","nick":"ann","text":"hi"}` | [`ServerMsg::Msg`] |
//! | server → clients | `{"type":"system","text":"ann joined","online":2}` | [`ServerMsg::System`] |
//!
//! A client sends one `hello` as the first message of every connection (the server closes the
//! connection with 1008 otherwise), then any number of `say`. The server broadcasts each `say`
//! as a `msg` to everyone, the sender included, and a `system` message whenever someone joins
//! or leaves. Fields not listed are ignored on reading, so either side may add some.
//!
//! This crate only derives the serde traits; encode and decode with any serde JSON library
//! (all the demo's programs use `serde_json`):
//!
//! ```
//! use isosock_chat_protocol::{ClientMsg, ServerMsg};
//!
//! let hello = serde_json::to_string(&ClientMsg::Hello { nick: "ann".into() }).unwrap();
//! assert_eq!(hello, r#"{"type":"hello","nick":"ann"}"#);
//!
//! let msg: ServerMsg = serde_json::from_str(r#"{"type":"msg","nick":"bob","text":"hi"}"#).unwrap();
//! assert_eq!(msg, ServerMsg::Msg { nick: "bob".into(), text: "hi".into() });
//! ```
//!
//! The limits the server enforces are constants here ([`MAX_NICK_CHARS`], [`MAX_TEXT_CHARS`],
//! [`MAX_MESSAGE_BYTES`], [`RATE_BURST`], [`RATE_PER_SECOND`]), so that clients can respect
//! them instead of being disconnected.

use serde::{Deserialize, Serialize};

/// The path of the chat's WebSocket endpoint on the server; pages are served from `/`.
pub const WS_PATH: &str = "/ws";

/// Longest nickname, in characters; the server cuts longer ones (see [`clean_nick`]).
pub const MAX_NICK_CHARS: usize = 24;

/// Longest chat text, in characters; the server cuts longer ones before broadcasting.
pub const MAX_TEXT_CHARS: usize = 1000;

/// Largest message the server reads, in bytes of JSON; a larger one closes the connection with
/// 1009 (message too big).
pub const MAX_MESSAGE_BYTES: usize = 4 << 10;

/// Rate limit, burst: a client may send this many messages at once. Together with
/// [`RATE_PER_SECOND`] a token bucket; a client that runs out is closed with 1008.
pub const RATE_BURST: f64 = 10.0;

/// Rate limit, sustained: messages per second refilled into the bucket of [`RATE_BURST`].
pub const RATE_PER_SECOND: f64 = 5.0;

/// A message from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMsg {
    /// Joins the room as `nick`: the first message of every connection, and only then.
    Hello {
        /// The nickname; the server applies [`clean_nick`] and refuses an empty result.
        nick: String,
    },
    /// One chat line, broadcast to everyone as [`ServerMsg::Msg`].
    Say {
        /// The text; the server keeps at most [`MAX_TEXT_CHARS`] characters of it.
        text: String,
    },
}

/// A message from the server to every client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMsg {
    /// A chat line said by `nick` (possibly the receiving client itself: senders get their own
    /// lines back).
    Msg {
        /// Who said it. Nicknames are not unique.
        nick: String,
        /// What was said.
        text: String,
    },
    /// Someone joined or left.
    System {
        /// What happened, for people: `"ann joined"`, `"ann left"`.
        text: String,
        /// How many clients are in the room after the change.
        online: u32,
    },
    /// A message type this version does not know: decoding yields it instead of failing, so a
    /// newer server may add types without breaking older clients, which ignore it. Encoding it
    /// is an error: a server never sends it.
    #[serde(other, skip_serializing)]
    Unknown,
}

/// The nickname the server accepts for `raw`: surrounding whitespace trimmed, at most
/// [`MAX_NICK_CHARS`] characters kept; `None` when nothing is left.
///
/// Clients apply it before sending their hello, so the name they show is the one the others
/// see.
///
/// ```
/// use isosock_chat_protocol::clean_nick;
///
/// assert_eq!(clean_nick("  ann \n").as_deref(), Some("ann"));
/// assert_eq!(clean_nick(" \t "), None);
/// assert_eq!(clean_nick(&"é".repeat(30)).map(|n| n.chars().count()), Some(24));
/// ```
pub fn clean_nick(raw: &str) -> Option<String> {
    let nick: String = raw.trim().chars().take(MAX_NICK_CHARS).collect();
    (!nick.is_empty()).then_some(nick)
}

/// The text the server broadcasts for `raw`: at most [`MAX_TEXT_CHARS`] characters.
pub fn clip_text(raw: &str) -> String {
    raw.chars().take(MAX_TEXT_CHARS).collect()
}

/// The chat's WebSocket URL for a page served by the chat server, from the page's
/// `location.protocol` (`"http:"` or `"https:"`) and `location.host` (`"127.0.0.1:8080"`):
/// same origin, path [`WS_PATH`].
///
/// # Errors
///
/// Any other protocol (a page opened from `file:`, say) cannot reach the server: the error
/// says so, for the page to show.
///
/// ```
/// use isosock_chat_protocol::ws_url;
///
/// assert_eq!(ws_url("http:", "127.0.0.1:8080").as_deref(), Ok("ws://127.0.0.1:8080/ws"));
/// assert_eq!(ws_url("https:", "chat.example").as_deref(), Ok("wss://chat.example/ws"));
/// assert!(ws_url("file:", "").is_err());
/// ```
pub fn ws_url(protocol: &str, host: &str) -> Result<String, String> {
    let scheme = match protocol {
        "http:" => "ws:",
        "https:" => "wss:",
        other => {
            return Err(format!(
                "open this page from the chat server (http://…), not from a {other} URL"
            ))
        }
    };
    Ok(format!("{scheme}//{host}{WS_PATH}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `value`, checks the exact JSON, and decodes that JSON back to `value`.
    fn round_trip<T>(value: T, json: &str)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        assert_eq!(serde_json::to_string(&value).unwrap(), json);
        assert_eq!(serde_json::from_str::<T>(json).unwrap(), value);
    }

    #[test]
    fn client_messages_round_trip_the_servers_json() {
        round_trip(
            ClientMsg::Hello { nick: "ann".into() },
            r#"{"type":"hello","nick":"ann"}"#,
        );
        round_trip(
            ClientMsg::Say { text: "hi".into() },
            r#"{"type":"say","text":"hi"}"#,
        );
    }

    #[test]
    fn server_messages_round_trip_the_servers_json() {
        round_trip(
            ServerMsg::Msg {
                nick: "ann".into(),
                text: "hi".into(),
            },
            r#"{"type":"msg","nick":"ann","text":"hi"}"#,
        );
        round_trip(
            ServerMsg::System {
                text: "ann joined".into(),
                online: 2,
            },
            r#"{"type":"system","text":"ann joined","online":2}"#,
        );
    }

    #[test]
    fn text_is_escaped_and_unescaped() {
        round_trip(
            ClientMsg::Say {
                text: "\"quoted\" \\ <b>é</b>\n😀".into(),
            },
            r#"{"type":"say","text":"\"quoted\" \\ <b>é</b>\n😀"}"#,
        );
    }

    #[test]
    fn field_order_and_unknown_fields_do_not_matter() {
        // What the server sent before this crate existed (serde_json's sorted keys).
        assert_eq!(
            serde_json::from_str::<ServerMsg>(r#"{"nick":"ann","text":"hi","type":"msg"}"#)
                .unwrap(),
            ServerMsg::Msg {
                nick: "ann".into(),
                text: "hi".into()
            }
        );
        assert_eq!(
            serde_json::from_str::<ClientMsg>(r#"{"nick":"ann","type":"hello","color":"red"}"#)
                .unwrap(),
            ClientMsg::Hello { nick: "ann".into() }
        );
    }

    #[test]
    fn unknown_server_types_decode_as_unknown() {
        assert_eq!(
            serde_json::from_str::<ServerMsg>(r#"{"type":"typing","nick":"ann"}"#).unwrap(),
            ServerMsg::Unknown
        );
        assert!(serde_json::to_string(&ServerMsg::Unknown).is_err());
    }

    #[test]
    fn malformed_messages_are_errors() {
        for bad in [
            r#"{"type":"hello"}"#,
            r#"{"type":"hello","nick":5}"#,
            r#"{"type":"say","text":null}"#,
            r#"{"type":"ping"}"#,
            r#"{"text":"no type"}"#,
            "not json",
        ] {
            assert!(serde_json::from_str::<ClientMsg>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<ServerMsg>(r#"{"type":"system","text":"x"}"#).is_err());
        assert!(
            serde_json::from_str::<ServerMsg>(r#"{"type":"system","text":"x","online":-1}"#)
                .is_err()
        );
    }

    #[test]
    fn the_array_form_is_read_too() {
        // serde reads an internally tagged enum from a sequence as well (tag first, then the
        // fields in order). Harmless: it holds the same fields, and no client sends it.
        assert_eq!(
            serde_json::from_str::<ClientMsg>(r#"["say","hi"]"#).unwrap(),
            ClientMsg::Say { text: "hi".into() }
        );
    }

    #[test]
    fn nicknames_are_trimmed_and_cut() {
        assert_eq!(clean_nick(" ann ").as_deref(), Some("ann"));
        assert_eq!(clean_nick(""), None);
        assert_eq!(clean_nick("\n\t"), None);
        let long = "x".repeat(MAX_NICK_CHARS + 5);
        assert_eq!(clean_nick(&long).unwrap().len(), MAX_NICK_CHARS);
    }

    #[test]
    fn texts_are_cut_by_characters_not_bytes() {
        let long = "é".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(clip_text(&long).chars().count(), MAX_TEXT_CHARS);
        assert_eq!(clip_text("  hi "), "  hi ");
    }

    #[test]
    fn the_largest_allowed_say_fits_the_servers_read_limit() {
        // Plain characters: 1000 of them, JSON-encoded, stay well under 4 KiB.
        let text = "a".repeat(MAX_TEXT_CHARS);
        let json = serde_json::to_string(&ClientMsg::Say { text }).unwrap();
        assert!(json.len() <= MAX_MESSAGE_BYTES);
    }
}
