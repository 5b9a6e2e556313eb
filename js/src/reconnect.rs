//! `ReconnectingConn`: the library's `Reconnecting` client for JavaScript, with state events,
//! jittered backoff, final close codes, an `onOpen` hook and the bounded opt-in queue.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;
use isosock::reconnect::State;
use isosock::{ReconnectOptions, Reconnecting, StatusCode};
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};

use super::{
    close_code, dial_options, ends_iteration, integer, invalid_argument, message_from_js,
    message_to_js, millis_option, number, set, step, to_js, type_of, url_text, usize_option, Conn,
    JsMessageData, OPTION_NAMES,
};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/**
 * Options for `ReconnectingConn.start`: the dial options of `Conn.dial` (except `timeoutMs`,
 * which `connectTimeoutMs` replaces) and how to reconnect. Every field is optional; unknown
 * fields are an error.
 */
export interface ReconnectOptions extends Omit<DialOptions, "timeoutMs"> {
  /** Time limit for one attempt (dial and `onOpen`), in milliseconds. Default: 10000. */
  connectTimeoutMs?: number;
  /** First delay before reconnecting, in milliseconds (before jitter); at least 1. Default: 500. */
  initialDelayMs?: number;
  /** Longest delay before reconnecting, in milliseconds. Default: 30000. */
  maxDelayMs?: number;
  /** Uptime after which a connection counts as stable and the delays start over, in ms. Default: 10000. */
  stableAfterMs?: number;
  /** Close codes after which the client stops instead of reconnecting. Default: none. */
  finalCodes?: number[];
  /** Failed attempts in a row after which the client stops. Default: never. */
  maxAttempts?: number;
  /** Writes kept while offline and sent, in order, on the next connection. Default: 0 (writes fail). */
  queueWhileOffline?: number;
  /** Received messages read ahead of `read`. Default: 16. */
  readAhead?: number;
  /**
   * Runs first on every new connection, before it counts as open: send a hello, subscribe,
   * authenticate. May return a Promise; a throw or rejection is a failed attempt.
   */
  onOpen?: (conn: Conn) => void | Promise<void>;
  /** Called with every state change, starting with the first "connecting". */
  onState?: (state: ReconnectState) => void;
}

/** Where a `ReconnectingConn` stands. */
export type ReconnectState =
  | { type: "connecting"; attempt: number }
  | { type: "open" }
  | { type: "disconnected"; error: IsosockError; retryInMs: number }
  | { type: "closed"; error?: IsosockError };
"#;

#[wasm_bindgen]
extern "C" {
    /// A `ReconnectOptions` object from JavaScript.
    #[wasm_bindgen(typescript_type = "ReconnectOptions")]
    pub type JsReconnectOptions;

    /// A `ReconnectState` object.
    #[wasm_bindgen(typescript_type = "ReconnectState")]
    pub type JsReconnectState;
}

/// The option names `ReconnectingConn.start` knows besides the dial options.
const RECONNECT_OPTION_NAMES: [&str; 10] = [
    "connectTimeoutMs",
    "initialDelayMs",
    "maxDelayMs",
    "stableAfterMs",
    "finalCodes",
    "maxAttempts",
    "queueWhileOffline",
    "readAhead",
    "onOpen",
    "onState",
];

/// A WebSocket client that reconnects by itself.
///
/// `ReconnectingConn.start` returns at once; the client dials in the background and dials
/// again after each disconnect, waiting a jittered, exponentially growing delay, until `close`
/// is called, a close code in `finalCodes` arrives, or `maxAttempts` attempts failed in a row.
/// Messages from every connection arrive through `read` (or `for await`); `write` goes to the
/// current connection. Delivery is at most once: a write that failed because the connection
/// dropped is reported, never resent.
#[wasm_bindgen]
#[derive(Debug)]
pub struct ReconnectingConn {
    inner: Arc<Reconnecting>,
}

#[wasm_bindgen]
impl ReconnectingConn {
    /// Starts the client for a `ws://` or `wss://` URL.
    ///
    /// Throws an `IsosockError` of kind "InvalidArgument" for bad options (an unknown field,
    /// a wrong type, a `connectTimeoutMs` of 0); connection failures are not thrown but shown
    /// in the states and retried.
    pub fn start(
        #[wasm_bindgen(unchecked_param_type = "string | URL")] url: JsValue,
        options: Option<JsReconnectOptions>,
    ) -> Result<ReconnectingConn, JsValue> {
        let url = url_text(&url)?;
        let (opts, on_state) = reconnect_options(url, options.as_deref())?;
        let inner = Arc::new(Reconnecting::start(opts).map_err(to_js)?);
        if let Some(callback) = on_state {
            let mut states = inner.states();
            spawn_local(async move {
                while let Some(state) = poll_fn(|cx| Pin::new(&mut states).poll_next(cx)).await {
                    if let Err(e) = callback.call1(&JsValue::UNDEFINED, &state_to_js(&state)) {
                        report("onState threw", &e);
                    }
                }
            });
        }
        Ok(ReconnectingConn { inner })
    }

    /// Reads the next message, from whichever connection is open, as `Conn.read` returns
    /// them.
    ///
    /// Rejects once the client stopped: with the final error (a close code in `finalCodes`,
    /// too many attempts), or "AlreadyClosed" after `close`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Message>")]
    pub fn read(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { inner.read().await.map(message_to_js).map_err(to_js) })
    }

    /// Sends one message on the current connection, as `Conn.write` does (waiting while the
    /// socket's buffer is above `writeHighWaterMark`).
    ///
    /// While offline the message waits in the queue if `queueWhileOffline` leaves room, or
    /// the write rejects ("ConnectionLost" offline, "AlreadyClosed" or the final error after
    /// the client stopped).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn write(&self, data: JsMessageData) -> Promise {
        let inner = self.inner.clone();
        let msg = message_from_js(&data);
        future_to_promise(async move {
            inner.write(msg?).await.map_err(to_js)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Stops the client: closes the open connection with `code` (default 1000) and `reason`
    /// (default "") and makes no more attempts. Codes are checked as for `Conn.close`.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self, code: Option<f64>, reason: Option<String>) -> Promise {
        let inner = self.inner.clone();
        let code = close_code(code);
        future_to_promise(async move {
            inner
                .close(code?, reason.as_deref().unwrap_or(""))
                .await
                .map_err(to_js)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The current state: `{ type: "connecting", attempt }`, `{ type: "open" }`,
    /// `{ type: "disconnected", error, retryInMs }` or `{ type: "closed", error? }`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> JsReconnectState {
        state_to_js(&self.inner.state()).unchecked_into()
    }

    /// The open connection, for its `subprotocol` and `extensions` (reading it directly would
    /// take messages from `read`); `undefined` while offline.
    #[wasm_bindgen(getter)]
    pub fn conn(&self) -> Option<Conn> {
        self.inner.conn().map(|inner| Conn { inner })
    }

    /// Iterates over the messages of every connection, in order, with `for await`; ends when
    /// the client is closed (by `close`, or a final 1000/1001 close) and throws the final
    /// error otherwise.
    #[wasm_bindgen(js_name = "[Symbol.asyncIterator]")]
    pub fn messages(&self) -> ReconnectingIterator {
        ReconnectingIterator {
            inner: self.inner.clone(),
        }
    }
}

/// The async iterator over a `ReconnectingConn`'s messages.
#[wasm_bindgen]
#[derive(Debug)]
pub struct ReconnectingIterator {
    inner: Arc<Reconnecting>,
}

#[wasm_bindgen]
impl ReconnectingIterator {
    /// Reads the next message as `{ value, done: false }`; `{ value: undefined, done: true }`
    /// once the client was closed.
    #[wasm_bindgen(unchecked_return_type = "Promise<IteratorResult<Message, undefined>>")]
    pub fn next(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            match inner.read().await {
                Ok(msg) => Ok(step(message_to_js(msg), false)),
                Err(e) if ends_iteration(&e) => Ok(step(JsValue::UNDEFINED, true)),
                Err(e) => Err(to_js(e)),
            }
        })
    }

    /// Ends the iteration (called by `break` in `for await`); the client keeps running.
    #[wasm_bindgen(
        js_name = "return",
        unchecked_return_type = "Promise<IteratorResult<Message, undefined>>"
    )]
    pub fn finish(&self) -> Promise {
        Promise::resolve(&step(JsValue::UNDEFINED, true))
    }
}

/// A state as the plain object `ReconnectState` describes.
fn state_to_js(state: &State) -> JsValue {
    let obj = Object::new();
    match state {
        State::Connecting { attempt } => {
            set(&obj, "type", &"connecting".into());
            set(&obj, "attempt", &JsValue::from(*attempt));
        }
        State::Open => set(&obj, "type", &"open".into()),
        State::Disconnected { error, retry_in } => {
            set(&obj, "type", &"disconnected".into());
            set(&obj, "error", &to_js(error.clone()));
            set(
                &obj,
                "retryInMs",
                &JsValue::from(retry_in.as_secs_f64() * 1000.0),
            );
        }
        State::Closed { error } => {
            set(&obj, "type", &"closed".into());
            if let Some(e) = error {
                set(&obj, "error", &to_js(e.clone()));
            }
        }
        // A state added in a later isosock.
        _ => set(&obj, "type", &"unknown".into()),
    }
    obj.into()
}

/// Reads `ReconnectOptions` from a JS object (refusing unknown fields and wrong types); returns
/// them with the `onState` callback, if any.
fn reconnect_options(
    url: String,
    options: Option<&JsValue>,
) -> Result<(ReconnectOptions, Option<Function>), JsValue> {
    let Some(obj) = options.filter(|o| !o.is_undefined() && !o.is_null()) else {
        return Ok((ReconnectOptions::new(url, dial_options(None)?), None));
    };
    if !obj.is_object() || Array::is_array(obj) {
        return Err(invalid_argument(format!(
            "options must be an object, not {}",
            type_of(obj)
        )));
    }
    // The dial options go to `dial_options`, the rest are read here.
    let dial = Object::new();
    for key in Object::keys(obj.unchecked_ref::<Object>()).iter() {
        let name = key.as_string().unwrap_or_default();
        if name == "timeoutMs" {
            return Err(invalid_argument(
                "timeoutMs is a Conn.dial option; ReconnectingConn takes connectTimeoutMs",
            ));
        }
        if OPTION_NAMES.contains(&name.as_str()) {
            set(&dial, &name, &Reflect::get(obj, &key)?);
        } else if !RECONNECT_OPTION_NAMES.contains(&name.as_str()) {
            return Err(invalid_argument(format!(
                "unknown option {name:?} (known: {}, {})",
                OPTION_NAMES
                    .iter()
                    .filter(|n| **n != "timeoutMs")
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
                RECONNECT_OPTION_NAMES.join(", ")
            )));
        }
    }
    let mut opts = ReconnectOptions::new(url, dial_options(Some(&dial))?);
    let field = |name: &str| -> Result<Option<JsValue>, JsValue> {
        let v = Reflect::get(obj, &JsValue::from_str(name))?;
        Ok((!v.is_undefined()).then_some(v))
    };
    if let Some(v) = field("connectTimeoutMs")? {
        opts = opts.connect_timeout(millis_option(&v, "connectTimeoutMs")?);
    }
    let initial = match field("initialDelayMs")? {
        Some(v) => millis_option(&v, "initialDelayMs")?,
        None => isosock::reconnect::DEFAULT_INITIAL_DELAY,
    };
    let max = match field("maxDelayMs")? {
        Some(v) => millis_option(&v, "maxDelayMs")?,
        None => isosock::reconnect::DEFAULT_MAX_DELAY,
    };
    opts = opts.backoff(initial, max);
    if let Some(v) = field("stableAfterMs")? {
        opts = opts.stable_after(millis_option(&v, "stableAfterMs")?);
    }
    if let Some(list) = field("finalCodes")? {
        if !Array::is_array(&list) {
            return Err(invalid_argument(format!(
                "finalCodes must be an array of close codes, not {}",
                type_of(&list)
            )));
        }
        let mut codes = Vec::new();
        for c in Array::from(&list).iter() {
            let n = integer(number(&c, "finalCodes")?, "finalCodes", 4999)?;
            codes.push(StatusCode::from(u16::try_from(n).unwrap_or(u16::MAX)));
        }
        opts = opts.final_codes(codes);
    }
    if let Some(v) = field("maxAttempts")? {
        let n = integer(
            number(&v, "maxAttempts")?,
            "maxAttempts",
            u64::from(u32::MAX),
        )?;
        opts = opts.max_attempts(u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some(v) = field("queueWhileOffline")? {
        opts = opts.queue_while_offline(usize_option(&v, "queueWhileOffline")?);
    }
    if let Some(v) = field("readAhead")? {
        opts = opts.read_ahead(usize_option(&v, "readAhead")?);
    }
    if let Some(v) = field("onOpen")? {
        let hook = function(v, "onOpen")?;
        opts = opts.on_open(move |conn| {
            let hook = hook.clone();
            async move {
                let conn: JsValue = Conn { inner: conn }.into();
                let returned = hook
                    .call1(&JsValue::UNDEFINED, &conn)
                    .map_err(|e| hook_error("onOpen threw", &e))?;
                JsFuture::from(Promise::resolve(&returned))
                    .await
                    .map_err(|e| hook_error("onOpen rejected", &e))?;
                Ok(())
            }
        });
    }
    let on_state = field("onState")?
        .map(|v| function(v, "onState"))
        .transpose()?;
    Ok((opts, on_state))
}

fn function(v: JsValue, name: &str) -> Result<Function, JsValue> {
    v.dyn_into::<Function>()
        .map_err(|v| invalid_argument(format!("{name} must be a function, not {}", type_of(&v))))
}

/// A JS exception as text, for an error message.
fn js_text(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// What an `onOpen` hook threw, as the error of the failed attempt.
fn hook_error(what: &str, e: &JsValue) -> isosock::reconnect::ProviderError {
    format!("{what}: {}", js_text(e)).into()
}

/// Reports an exception of an application callback on the console: isosock cannot hand it
/// back to anyone, and must not lose it.
fn report(what: &str, e: &JsValue) {
    let console = Reflect::get(&js_sys::global(), &"console".into()).ok();
    let error = console
        .as_ref()
        .and_then(|c| Reflect::get(c, &"error".into()).ok())
        .and_then(|f| f.dyn_into::<Function>().ok());
    if let (Some(console), Some(error)) = (console, error) {
        let _ = error.call2(
            &console,
            &JsValue::from_str(&format!("isosock: {what}:")),
            e,
        );
    }
}
