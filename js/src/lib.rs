//! JavaScript bindings of isosock: the npm package `isosock`.
//!
//! A Promise-based WebSocket client for browsers and Node.js ≥ 22, built from the same Rust
//! as the `isosock` crate's browser backend, so JavaScript users get its close semantics,
//! write backpressure, read limit and typed errors:
//!
//! ```js
//! import init, { Conn } from "isosock";
//! await init();                       // loads the wasm module (a no-op in Node.js)
//! const conn = await Conn.dial("ws://127.0.0.1:9001", { subprotocols: ["chat.v1"] });
//! await conn.write("hello");
//! for await (const msg of conn) {     // ends on a 1000/1001 close, throws on others
//!   console.log(msg.type, msg.data);
//! }
//! ```
//!
//! The exports live in this crate, not in the library, because `#[wasm_bindgen]` exports in a
//! library end up in every downstream wasm binary.
#![cfg(target_arch = "wasm32")]

mod reconnect;

use std::sync::Arc;
use std::time::Duration;

use isosock::{DialOptions, Error, ErrorKind, Message, StatusCode};
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** Options for `Conn.dial`; every field is optional. Unknown fields are an error. */
export interface DialOptions {
  /** Subprotocols to offer, most preferred first. Default: none. */
  subprotocols?: string[];
  /** Largest message `read` accepts, in bytes; a bigger one closes the connection. Default: 32768. */
  readLimit?: number;
  /** Time limit for opening the connection, in milliseconds. Default: 30000. */
  timeoutMs?: number;
  /** Time limit for the close handshake, in milliseconds. Default: 5000. */
  closeTimeoutMs?: number;
  /**
   * Bytes the socket may buffer (`bufferedAmount`) before `write` waits (backpressure).
   * Default: 1048576. WebKit (Safari) leaves out of `bufferedAmount` what its network
   * process holds, so there this bounds the page's memory, not the browser's.
   */
  writeHighWaterMark?: number;
}

/** A received message: text as a string, binary as a Uint8Array. */
export type Message =
  | { type: "text"; data: string }
  | { type: "binary"; data: Uint8Array };

/** What `write` sends: a string as a text message, bytes as a binary message. */
export type MessageData = string | Uint8Array | ArrayBuffer | ArrayBufferView;

/** The kinds of `IsosockError`, the same as the Rust crate's `ErrorKind`. */
export type ErrorKind =
  | "InvalidUrl" | "InvalidArgument" | "Connect" | "Handshake" | "Timeout" | "Rejected"
  | "Closed" | "AlreadyClosed" | "ConnectionLost" | "MessageTooBig" | "InvalidData"
  | "Protocol" | "Unsupported";

/**
 * Every error isosock throws or rejects with: an `Error` whose `name` is "IsosockError",
 * with a `kind` to branch on. For kind "Closed", `code` and `reason` are the peer's close
 * code and reason.
 */
export interface IsosockError extends Error {
  name: "IsosockError";
  kind: ErrorKind;
  /** The peer's close code (kind "Closed" only). */
  code?: number;
  /** The peer's close reason (kind "Closed" only). */
  reason?: string;
}

/** The close frame the peer sent. */
export interface CloseFrame {
  code: number;
  reason: string;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// A `DialOptions` object from JavaScript.
    #[wasm_bindgen(typescript_type = "DialOptions")]
    pub type JsDialOptions;

    /// What `write` accepts.
    #[wasm_bindgen(typescript_type = "MessageData")]
    pub type JsMessageData;

    /// The peer's close frame, or `undefined`.
    #[wasm_bindgen(typescript_type = "CloseFrame | undefined")]
    pub type JsCloseFrame;
}

/// The option names `Conn.dial` knows, for the unknown-option error.
const OPTION_NAMES: [&str; 5] = [
    "subprotocols",
    "readLimit",
    "timeoutMs",
    "closeTimeoutMs",
    "writeHighWaterMark",
];

/// An open WebSocket connection.
///
/// `read`, `write` and `close` return Promises; several writes may be pending at once (they
/// are sent in call order, whole), one `read` at a time is served in order. Dropping every
/// reference lets the garbage collector close the socket, but call `close` (or `closeNow`)
/// to close it when you are done.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Conn {
    inner: Arc<isosock::Conn>,
}

#[wasm_bindgen]
impl Conn {
    /// Opens a connection to a `ws://` or `wss://` URL.
    ///
    /// Resolves once the socket is open. Rejects with an `IsosockError`: kind "InvalidUrl" or
    /// "InvalidArgument" for bad arguments, "Connect" if the socket could not be opened (the
    /// browser does not say why), "Timeout" after `timeoutMs`, "Unsupported" if this runtime
    /// has no global `WebSocket` (Node.js < 22 without `--experimental-websocket`).
    #[wasm_bindgen(unchecked_return_type = "Promise<Conn>")]
    pub fn dial(
        #[wasm_bindgen(unchecked_param_type = "string | URL")] url: JsValue,
        options: Option<JsDialOptions>,
    ) -> Promise {
        let prepared = url_text(&url).and_then(|url| Ok((url, dial_options(options.as_deref())?)));
        future_to_promise(async move {
            let (url, opts) = prepared?;
            let (conn, _) = isosock::dial(&url, &opts).await.map_err(to_js)?;
            Ok(Conn {
                inner: Arc::new(conn),
            }
            .into())
        })
    }

    /// Reads the next message: `{ type: "text", data: string }` or
    /// `{ type: "binary", data: Uint8Array }`.
    ///
    /// Rejects with an `IsosockError` once the connection is over: kind "Closed" with the
    /// peer's `code` and `reason` after a close handshake, "ConnectionLost" without one,
    /// "MessageTooBig" when a message exceeded `readLimit` (the connection is then closed).
    /// Reads are served one at a time, in call order.
    #[wasm_bindgen(unchecked_return_type = "Promise<Message>")]
    pub fn read(&self) -> Promise {
        let conn = self.inner.clone();
        future_to_promise(async move { conn.read().await.map(message_to_js).map_err(to_js) })
    }

    /// Sends one message: a string as text; a `Uint8Array`, `ArrayBuffer` or other
    /// `ArrayBufferView` as binary.
    ///
    /// Resolves once the socket took the message; waits first while more than
    /// `writeHighWaterMark` bytes are buffered, so awaiting each write keeps memory bounded.
    /// Writes are sent whole, in call order. Rejects with "InvalidArgument" for other values,
    /// "AlreadyClosed" after `close`/`closeNow`, or the close error once the peer closed.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn write(&self, data: JsMessageData) -> Promise {
        let conn = self.inner.clone();
        let msg = message_from_js(&data);
        future_to_promise(async move {
            conn.write(msg?).await.map_err(to_js)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Closes the connection with a close handshake: sends `code` (default 1000) and `reason`
    /// (default ""), waits for the peer's close frame (at most `closeTimeoutMs`).
    ///
    /// Codes other than 1000 and 3000–4999 that RFC 6455 lets applications send (1001–1003,
    /// 1007–1014) go out as 1000 with the same reason, since browsers refuse them. Rejects
    /// with "InvalidArgument" for a code that may not be sent or a reason over 123 UTF-8
    /// bytes (nothing is sent), "AlreadyClosed" if called before, "Timeout" if the peer did
    /// not answer.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self, code: Option<f64>, reason: Option<String>) -> Promise {
        let conn = self.inner.clone();
        let code = close_code(code);
        future_to_promise(async move {
            conn.close(code?, reason.as_deref().unwrap_or(""))
                .await
                .map_err(to_js)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Closes the connection at once, without waiting for a close handshake (the socket is
    /// closed with 1000). Pending and later calls reject with "AlreadyClosed". Never throws.
    #[wasm_bindgen(js_name = closeNow)]
    pub fn close_now(&self) {
        self.inner.close_now();
    }

    /// Sets the largest message, in bytes, that later reads accept.
    ///
    /// Throws an `IsosockError` of kind "InvalidArgument" unless `bytes` is a non-negative
    /// integer.
    #[wasm_bindgen(js_name = setReadLimit)]
    pub fn set_read_limit(&self, bytes: f64) -> Result<(), JsValue> {
        let bytes = integer(bytes, "readLimit", u64::from(u32::MAX))?;
        self.inner
            .set_read_limit(usize::try_from(bytes).unwrap_or(usize::MAX));
        Ok(())
    }

    /// The subprotocol the server selected, or `undefined`.
    #[wasm_bindgen(getter)]
    pub fn subprotocol(&self) -> Option<String> {
        self.inner.subprotocol().map(str::to_owned)
    }

    /// The extensions the server agreed to, as its `Sec-WebSocket-Extensions` header stated
    /// them (the runtime's `WebSocket.extensions`); `""` when none. Browsers and Node.js offer
    /// permessage-deflate on every connection by themselves, so this starts with
    /// `"permessage-deflate"` whenever the server compresses; there is no option to turn it off.
    #[wasm_bindgen(getter)]
    pub fn extensions(&self) -> String {
        self.inner.extensions().to_owned()
    }

    /// The close frame the peer sent (`{ code, reason }`), once the connection closed
    /// cleanly; `undefined` before that or after an abnormal closure.
    #[wasm_bindgen(getter, js_name = peerCloseFrame)]
    pub fn peer_close_frame(&self) -> JsCloseFrame {
        match self.inner.peer_close_frame() {
            Some(frame) => {
                let obj = Object::new();
                set(&obj, "code", &JsValue::from(frame.code.as_u16()));
                set(&obj, "reason", &JsValue::from(frame.reason));
                obj.unchecked_into()
            }
            None => JsValue::UNDEFINED.unchecked_into(),
        }
    }

    /// Iterates over received messages: `for await (const msg of conn)`.
    ///
    /// The loop ends when the peer closes with 1000 (normal closure) or 1001 (going away), or
    /// after this side closed; any other close code or failure is thrown as the
    /// `IsosockError` that `read` would reject with. Leaving the loop early (`break`) does
    /// not close the connection.
    #[wasm_bindgen(js_name = "[Symbol.asyncIterator]")]
    pub fn messages(&self) -> MessageIterator {
        MessageIterator {
            inner: self.inner.clone(),
        }
    }
}

/// The async iterator over a connection's messages, from `conn[Symbol.asyncIterator]()`.
#[wasm_bindgen]
#[derive(Debug)]
pub struct MessageIterator {
    inner: Arc<isosock::Conn>,
}

#[wasm_bindgen]
impl MessageIterator {
    /// Reads the next message as `{ value, done: false }`; `{ value: undefined, done: true }`
    /// once the connection closed normally.
    #[wasm_bindgen(unchecked_return_type = "Promise<IteratorResult<Message, undefined>>")]
    pub fn next(&self) -> Promise {
        let conn = self.inner.clone();
        future_to_promise(async move {
            match conn.read().await {
                Ok(msg) => Ok(step(message_to_js(msg), false)),
                Err(e) if ends_iteration(&e) => Ok(step(JsValue::UNDEFINED, true)),
                Err(e) => Err(to_js(e)),
            }
        })
    }

    /// Ends the iteration (called by `break` in `for await`); the connection stays open.
    #[wasm_bindgen(
        js_name = "return",
        unchecked_return_type = "Promise<IteratorResult<Message, undefined>>"
    )]
    pub fn finish(&self) -> Promise {
        Promise::resolve(&step(JsValue::UNDEFINED, true))
    }
}

/// A close code from JavaScript: 1000 when left out, else an integer up to 65535 (which codes
/// may be sent is checked by the library).
fn close_code(code: Option<f64>) -> Result<StatusCode, JsValue> {
    match code {
        None => Ok(StatusCode::NORMAL_CLOSURE),
        Some(c) => integer(c, "code", u64::from(u16::MAX))
            .and_then(|c| u16::try_from(c).map_err(|_| invalid_argument("code is too large")))
            .map(StatusCode::from),
    }
}

/// Whether a read error is the normal end of a message stream.
fn ends_iteration(e: &Error) -> bool {
    match e.kind() {
        ErrorKind::AlreadyClosed => true,
        ErrorKind::Closed => matches!(
            isosock::close_status(e),
            Some(StatusCode::NORMAL_CLOSURE | StatusCode::GOING_AWAY)
        ),
        _ => false,
    }
}

fn step(value: JsValue, done: bool) -> JsValue {
    let obj = Object::new();
    set(&obj, "value", &value);
    set(&obj, "done", &JsValue::from_bool(done));
    obj.into()
}

/// Sets a property on a fresh plain object (cannot fail for those; ignored if it did).
fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn message_to_js(msg: Message) -> JsValue {
    let obj = Object::new();
    match msg {
        Message::Text(text) => {
            set(&obj, "type", &JsValue::from_str("text"));
            set(&obj, "data", &JsValue::from(text));
        }
        Message::Binary(bytes) => {
            set(&obj, "type", &JsValue::from_str("binary"));
            set(&obj, "data", &Uint8Array::from(&bytes[..]));
        }
    }
    obj.into()
}

fn message_from_js(data: &JsValue) -> Result<Message, JsValue> {
    if let Some(text) = data.as_string() {
        return Ok(Message::text(text));
    }
    if let Some(bytes) = data.dyn_ref::<Uint8Array>() {
        return Ok(Message::binary(bytes.to_vec()));
    }
    if let Some(buf) = data.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Message::binary(Uint8Array::new(buf).to_vec()));
    }
    if js_sys::ArrayBuffer::is_view(data) {
        // DataView, other typed arrays, Node's Buffer: their bytes, as they lie in memory.
        let offset = Reflect::get(data, &JsValue::from_str("byteOffset"))?;
        let length = Reflect::get(data, &JsValue::from_str("byteLength"))?;
        let buffer = Reflect::get(data, &JsValue::from_str("buffer"))?;
        let view = Uint8Array::new_with_byte_offset_and_length(
            &buffer,
            offset.as_f64().unwrap_or(0.0) as u32,
            length.as_f64().unwrap_or(0.0) as u32,
        );
        return Ok(Message::binary(view.to_vec()));
    }
    Err(invalid_argument(format!(
        "write takes a string, Uint8Array, ArrayBuffer or ArrayBufferView, not {}",
        type_of(data)
    )))
}

/// The URL as text: a string, or a `URL` object's `href`.
fn url_text(url: &JsValue) -> Result<String, JsValue> {
    if let Some(text) = url.as_string() {
        return Ok(text);
    }
    if url.is_object() {
        if let Some(href) = Reflect::get(url, &JsValue::from_str("href"))?.as_string() {
            return Ok(href);
        }
    }
    Err(invalid_argument(format!(
        "url must be a string or a URL, not {}",
        type_of(url)
    )))
}

/// Reads `DialOptions` from a JS object, refusing unknown fields and wrong types.
fn dial_options(options: Option<&JsValue>) -> Result<DialOptions, JsValue> {
    let mut opts = DialOptions::new();
    let Some(obj) = options.filter(|o| !o.is_undefined() && !o.is_null()) else {
        return Ok(opts);
    };
    if !obj.is_object() || Array::is_array(obj) {
        return Err(invalid_argument(format!(
            "options must be an object, not {}",
            type_of(obj)
        )));
    }
    for key in Object::keys(obj.unchecked_ref::<Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !OPTION_NAMES.contains(&key.as_str()) {
            return Err(invalid_argument(format!(
                "unknown option {key:?} (known: {})",
                OPTION_NAMES.join(", ")
            )));
        }
    }
    let field = |name: &str| -> Result<Option<JsValue>, JsValue> {
        let v = Reflect::get(obj, &JsValue::from_str(name))?;
        Ok((!v.is_undefined()).then_some(v))
    };
    if let Some(list) = field("subprotocols")? {
        if !Array::is_array(&list) {
            return Err(invalid_argument(format!(
                "subprotocols must be an array of strings, not {}",
                type_of(&list)
            )));
        }
        let mut protocols = Vec::new();
        for p in Array::from(&list).iter() {
            protocols.push(p.as_string().ok_or_else(|| {
                invalid_argument(format!(
                    "subprotocols must be an array of strings; found {}",
                    type_of(&p)
                ))
            })?);
        }
        opts = opts.subprotocols(protocols);
    }
    if let Some(v) = field("readLimit")? {
        opts = opts.read_limit(usize_option(&v, "readLimit")?);
    }
    if let Some(v) = field("writeHighWaterMark")? {
        opts = opts.write_high_water_mark(usize_option(&v, "writeHighWaterMark")?);
    }
    if let Some(v) = field("timeoutMs")? {
        opts = opts.timeout(millis_option(&v, "timeoutMs")?);
    }
    if let Some(v) = field("closeTimeoutMs")? {
        opts = opts.close_timeout(millis_option(&v, "closeTimeoutMs")?);
    }
    Ok(opts)
}

/// A non-negative integer number no larger than `max`.
fn integer(n: f64, name: &str, max: u64) -> Result<u64, JsValue> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= max as f64 {
        Ok(n as u64)
    } else {
        Err(invalid_argument(format!(
            "{name} must be an integer from 0 to {max}, not {n}"
        )))
    }
}

fn number(v: &JsValue, name: &str) -> Result<f64, JsValue> {
    v.as_f64()
        .ok_or_else(|| invalid_argument(format!("{name} must be a number, not {}", type_of(v))))
}

fn usize_option(v: &JsValue, name: &str) -> Result<usize, JsValue> {
    let n = integer(number(v, name)?, name, u64::from(u32::MAX))?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

fn millis_option(v: &JsValue, name: &str) -> Result<Duration, JsValue> {
    // setTimeout takes at most 2^31 - 1 ms (about 24.8 days).
    let n = integer(number(v, name)?, name, i32::MAX as u64)?;
    Ok(Duration::from_millis(n))
}

/// `typeof`, with `null` and arrays told apart, for error messages.
fn type_of(v: &JsValue) -> String {
    if v.is_null() {
        "null".to_owned()
    } else if Array::is_array(v) {
        "an array".to_owned()
    } else {
        v.js_typeof()
            .as_string()
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

/// An `IsosockError` for a bad argument, made in the bindings themselves.
fn invalid_argument(message: impl Into<String>) -> JsValue {
    make_error(ErrorKind::InvalidArgument, &message.into(), None)
}

/// Converts the library's error into an `IsosockError`.
fn to_js(e: Error) -> JsValue {
    make_error(e.kind(), &e.to_string(), e.close_frame())
}

fn make_error(kind: ErrorKind, message: &str, close: Option<&isosock::CloseFrame>) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("IsosockError");
    set(&err, "kind", &JsValue::from_str(&format!("{kind:?}")));
    if let Some(frame) = close {
        set(&err, "code", &JsValue::from(frame.code.as_u16()));
        set(&err, "reason", &JsValue::from_str(&frame.reason));
    }
    err.into()
}
