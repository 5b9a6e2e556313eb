//! The chat demo's browser client: isosock compiled to wasm, talking to
//! `examples/chat_server.rs`, which runs isosock natively. The same `dial`, `read`, `write`
//! and error kinds serve both ends.
//!
//! The page (`www/index.html`) loads this module; [`start`] finds its elements and listens
//! for the join and send forms. Joining starts one [`Reconnecting`] client for the page's
//! lifetime, the library's own reconnecting client:
//!
//! 1. it dials `ws(s)://<this page's host>/ws`, and its `on_open` hook sends `hello` with the
//!    nickname first on every connection (the server knows a connection only by its hello);
//! 2. one task reads and shows messages, from every connection in turn;
//! 3. another follows the client's states: it shows why a connection ended (close code and
//!    reason) and counts down the jittered, exponentially growing delay the client waits
//!    (250 ms doubling to 5 s, reset once a connection stayed up 10 s) before it dials again.
//!    Exactly one attempt per disconnect: the client's supervisor is the only place that dials.
//!
//! The messages, the nickname rule and the URL come from `isosock-chat-protocol`
//! (`examples/chat-protocol`), the crate the server and the other clients share.
//!
//! `#status` carries the state in `data-state` (`idle`, `connecting`, `open`,
//! `reconnecting`, `failed`), which `tests/e2e/chat.test.mjs` waits on, and while open the
//! connection's extensions in `data-extensions` (the browser negotiates permessage-deflate by
//! itself; the test checks that it did). Nothing here panics
//! on what the network or the page provides: failures are logged to the console and shown.
#![cfg(target_arch = "wasm32")]

mod dom;

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use isosock::reconnect::State as Link;
use isosock::{DialOptions, Error, ErrorKind, Message, ReconnectOptions, Reconnecting};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Event, EventTarget};

use dom::{State, Ui};
use isosock_chat_protocol::{self as protocol, ClientMsg, ServerMsg};

/// First reconnect delay (before jitter); doubles per failed attempt.
const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A connection that stayed up this long resets the backoff to its first delay.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Limit for one attempt (dial and hello), so a black-holed attempt does not stall the client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the page remembers the last nickname (`localStorage`).
const NICK_KEY: &str = "isosock-chat.nick";

/// A DOM event handler kept for the page's lifetime.
type Handler = Closure<dyn FnMut(Event)>;

thread_local! {
    /// The page's event handlers. They must live as long as the page, so they are kept here,
    /// one per form, made once by `start`; nothing is made or leaked per message.
    static HANDLERS: RefCell<Vec<Handler>> = const { RefCell::new(Vec::new()) };
}

/// The page's state.
struct App {
    ui: Ui,
    /// The nickname, set once by joining.
    nick: OnceCell<String>,
    /// The reconnecting client, started once by joining: what the send form writes to.
    client: OnceCell<Rc<Reconnecting>>,
}

/// The module's entry point, run by wasm-bindgen's `init()` in `index.html`.
#[wasm_bindgen(start)]
pub fn start() {
    let ui = match Ui::find() {
        Ok(ui) => ui,
        Err(e) => {
            log_error(&e);
            dom::show_fatal(&e);
            return;
        }
    };
    let app = Rc::new(App {
        ui,
        nick: OnceCell::new(),
        client: OnceCell::new(),
    });
    if let Some(nick) = stored_nick() {
        app.ui.nick.set_value(&nick);
    }
    let joining = app.clone();
    let sending = app.clone();
    let wired = listen(&app.ui.join, "submit", move |ev| {
        ev.prevent_default();
        joining.join();
    })
    .and_then(|()| {
        listen(&app.ui.compose, "submit", move |ev| {
            ev.prevent_default();
            sending.send();
        })
    });
    match wired {
        Ok(()) => app.ui.set_status(State::Idle, "not connected", ""),
        Err(e) => {
            log_error(&e);
            app.ui.set_status(State::Failed, "cannot start", &e);
        }
    }
}

/// Calls `handler` for every `event` on `target`, for the page's lifetime.
fn listen(
    target: &EventTarget,
    event: &str,
    handler: impl FnMut(Event) + 'static,
) -> Result<(), String> {
    let closure = Handler::new(handler);
    target
        .add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())
        .map_err(|e| format!("cannot listen for {event}: {}", js_text(&e)))?;
    HANDLERS.with(|h| h.borrow_mut().push(closure));
    Ok(())
}

impl App {
    /// The join form: takes the nickname and starts the connection loop, once.
    fn join(self: &Rc<Self>) {
        if self.nick.get().is_some() {
            return;
        }
        // The server's own rule, so the name shown is the one the others see.
        let Some(nick) = protocol::clean_nick(&self.ui.nick.value()) else {
            // Only blanks: clear them so the input's `required` check explains itself.
            self.ui.nick.set_value("");
            let _ = self.ui.nick.focus();
            return;
        };
        remember_nick(&nick);
        self.ui.enter_chat(&nick);
        let _ = self.nick.set(nick.clone());
        match connect(nick) {
            Ok(client) => {
                let client = Rc::new(client);
                let _ = self.client.set(client.clone());
                spawn_local(show_states(self.clone(), client.clone()));
                spawn_local(show_messages(self.clone(), client));
            }
            Err(e) => {
                log_error(&e);
                self.ui.set_status(State::Failed, "cannot connect", &e);
            }
        }
    }

    /// The send form: writes one `say` on the open connection.
    fn send(self: &Rc<Self>) {
        let value = self.ui.text.value();
        let text = value.trim();
        if text.is_empty() {
            return;
        }
        let client = match self.client.get() {
            Some(client) if matches!(client.state(), Link::Open) => client.clone(),
            _ => {
                self.ui
                    .add_notice("Not connected: your message is still in the box.");
                return;
            }
        };
        let say = ClientMsg::Say {
            text: text.to_owned(),
        };
        let json = match serde_json::to_string(&say) {
            Ok(json) => json,
            Err(e) => {
                log_error(&format!("cannot encode a message: {e}"));
                return;
            }
        };
        self.ui.text.set_value("");
        let app = self.clone();
        let text = text.to_owned();
        spawn_local(async move {
            if let Err(e) = client.write(Message::text(json)).await {
                log_warn(&format!("send failed: {e}"));
                app.ui
                    .add_notice(&format!("Not sent ({}): {text}", describe(&e)));
            }
        });
    }

    /// Shows one message from the server.
    fn receive(&self, text: &str) {
        match serde_json::from_str::<ServerMsg>(text) {
            Ok(ServerMsg::Msg { nick, text }) => {
                // The server does not make nicknames unique: same nickname, same side.
                let mine = self.nick.get() == Some(&nick);
                self.ui.add_message(&nick, &text, mine);
            }
            Ok(ServerMsg::System { text, online }) => {
                self.ui.add_system(&text);
                self.ui.set_online(Some(online));
            }
            Ok(ServerMsg::Unknown) => {}
            Err(e) => log_warn(&format!(
                "ignored a message the client cannot read ({e}): {text}"
            )),
        }
    }
}

/// Starts the page's reconnecting client for `nick`: the chat's URL, the demo's backoff, and
/// a hello sent first on every connection.
fn connect(nick: String) -> Result<Reconnecting, String> {
    let url = ws_url()?;
    // The nickname is fixed once joined: encode the hello once, resend it on every connection.
    let hello = serde_json::to_string(&ClientMsg::Hello { nick })
        .map_err(|e| format!("cannot encode the hello message: {e}"))?;
    let opts = ReconnectOptions::new(url, DialOptions::new())
        .connect_timeout(CONNECT_TIMEOUT)
        .backoff(BACKOFF_INITIAL, BACKOFF_MAX)
        .stable_after(STABLE_AFTER)
        .on_open(move |conn| {
            let hello = Message::text(hello.as_str());
            async move {
                conn.write(hello).await?;
                Ok(())
            }
        });
    Reconnecting::start(opts).map_err(|e| e.to_string())
}

/// Follows the client's states: the status line, the notices when a connection ends and
/// comes back, and the countdown to the next attempt.
async fn show_states(app: Rc<App>, client: Rc<Reconnecting>) {
    let mut states = client.states();
    // Why the last open connection ended, and the failed attempts since: the status detail.
    let mut last_drop: Option<String> = None;
    let mut failures: u32 = 0;
    let mut was_open = false;
    while let Some(state) = states.next().await {
        match state {
            Link::Connecting { .. } => {
                let (text, detail) = match &last_drop {
                    Some(why) => ("reconnecting…", why.as_str()),
                    None => ("connecting…", ""),
                };
                app.ui.set_status(State::Connecting, text, detail);
            }
            Link::Open => {
                failures = 0;
                app.ui.set_status(State::Open, "connected", "");
                if let Some(conn) = client.conn() {
                    app.ui.set_extensions(conn.extensions());
                }
                if last_drop.is_some() {
                    app.ui.add_notice("Reconnected.");
                }
                was_open = true;
            }
            Link::Disconnected { error, retry_in } => {
                app.ui.set_online(None);
                let why = if std::mem::take(&mut was_open) {
                    log_warn(&format!("connection ended: {error}"));
                    let why = describe(&error);
                    app.ui.add_notice(&format!("Disconnected ({why})."));
                    last_drop = Some(why.clone());
                    why
                } else {
                    log_warn(&format!("connecting failed: {error}"));
                    failures += 1;
                    match &last_drop {
                        Some(drop) => format!("{drop}; retry {failures}: {}", describe(&error)),
                        None => format!("attempt {failures}: {}", describe(&error)),
                    }
                };
                if let Err(e) = countdown(&app.ui, retry_in.as_secs_f64() * 1000.0, &why).await {
                    log_error(&e);
                    app.ui.set_status(State::Failed, "cannot reconnect", &e);
                    return;
                }
            }
            Link::Closed { error } => {
                let why = error.as_ref().map(describe).unwrap_or_default();
                log_error(&format!("the client stopped: {why}"));
                app.ui
                    .set_status(State::Failed, "disconnected for good", &why);
                return;
            }
            // A state added in a later isosock: nothing to show.
            _ => {}
        }
    }
}

/// Shows the messages of every connection, in order, until the client stops.
async fn show_messages(app: Rc<App>, client: Rc<Reconnecting>) {
    loop {
        match client.read().await {
            Ok(Message::Text(text)) => app.receive(&text),
            Ok(Message::Binary(b)) => {
                log_warn(&format!("ignored a {}-byte binary message", b.len()))
            }
            Err(e) => {
                log_warn(&format!("no more messages: {e}"));
                return;
            }
        }
    }
}

/// Why a connection ended or could not open, in a few words: close code first, then reason.
fn describe(e: &Error) -> String {
    match (e.kind(), e.close_frame()) {
        (_, Some(f)) if f.reason.is_empty() => format!("{} closed by the server", f.code),
        (_, Some(f)) => format!("{} {}", f.code, f.reason),
        (ErrorKind::ConnectionLost, _) => "1006 connection lost".to_owned(),
        (ErrorKind::Connect, _) => "server unreachable".to_owned(),
        (ErrorKind::Timeout, _) => "no answer from the server".to_owned(),
        _ => e.to_string(),
    }
}

/// Waits `delay_ms`, showing the seconds left in the status.
async fn countdown(ui: &Ui, delay_ms: f64, why: &str) -> Result<(), String> {
    let deadline = js_sys::Date::now() + delay_ms;
    loop {
        let left = deadline - js_sys::Date::now();
        if left <= 0.0 {
            return Ok(());
        }
        let secs = (left / 1000.0).ceil();
        ui.set_status(
            State::Reconnecting,
            &format!("reconnecting in {secs} s"),
            why,
        );
        // Sleep until the number shown changes (or the wait ends).
        sleep_ms(left - (secs - 1.0) * 1000.0).await?;
    }
}

/// Resolves after `ms` milliseconds (a `setTimeout` promise; nothing outlives it).
async fn sleep_ms(ms: f64) -> Result<(), String> {
    let window = web_sys::window().ok_or("no window")?;
    // Whole milliseconds, within what setTimeout accepts.
    let ms = ms.ceil().clamp(0.0, 60_000.0) as i32;
    let mut scheduled = Ok(0);
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        scheduled = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    scheduled.map_err(|e| format!("setTimeout failed: {}", js_text(&e)))?;
    JsFuture::from(promise)
        .await
        .map(drop)
        .map_err(|e| js_text(&e))
}

/// The chat's WebSocket URL: this page's origin, path `/ws`.
fn ws_url() -> Result<String, String> {
    let location = web_sys::window().ok_or("no window")?.location();
    let scheme = location.protocol().map_err(|e| js_text(&e))?;
    let host = location.host().map_err(|e| js_text(&e))?;
    protocol::ws_url(&scheme, &host)
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The nickname used last time, if the browser kept it.
fn stored_nick() -> Option<String> {
    storage()?.get_item(NICK_KEY).ok().flatten()
}

/// Remembers the nickname for the next visit; best effort (storage may be disabled).
fn remember_nick(nick: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(NICK_KEY, nick);
    }
}

/// A JS exception or value as text, for messages.
fn js_text(v: &JsValue) -> String {
    v.as_string()
        .or_else(|| {
            v.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{v:?}"))
}

fn log_error(msg: &str) {
    web_sys::console::error_1(&JsValue::from_str(&format!("isosock chat: {msg}")));
}

fn log_warn(msg: &str) {
    web_sys::console::warn_1(&JsValue::from_str(&format!("isosock chat: {msg}")));
}
