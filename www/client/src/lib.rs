//! The chat demo's browser client: isosock compiled to wasm, talking to
//! `examples/chat_server.rs`, which runs isosock natively. The same `dial`, `read`, `write`
//! and error kinds serve both ends.
//!
//! The page (`www/index.html`) loads this module; [`start`] finds its elements and listens
//! for the join and send forms. Joining starts one connection loop for the page's lifetime:
//!
//! 1. dial `ws(s)://<this page's host>/ws` and send `hello` with the nickname (again after
//!    every reconnect, since the server knows a connection only by its hello);
//! 2. read and show messages until the connection ends;
//! 3. show why it ended (close code and reason) and wait a jittered, exponentially growing
//!    delay (250 ms doubling to 5 s, reset once a connection stayed up 10 s), then go to 1.
//!    Exactly one attempt per disconnect: the loop is the only place that dials.
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

mod backoff;
mod dom;

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use isosock::{dial, Conn, DialOptions, Error, ErrorKind, Message};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Event, EventTarget};

use backoff::Backoff;
use dom::{State, Ui};
use isosock_chat_protocol::{self as protocol, ClientMsg, ServerMsg};

/// First reconnect delay (before jitter); doubles per failed attempt.
const BACKOFF_BASE_MS: f64 = 250.0;
/// Longest reconnect delay.
const BACKOFF_MAX_MS: f64 = 5_000.0;
/// A connection that stayed up this long resets the backoff to its base.
const STABLE_AFTER_MS: f64 = 10_000.0;
/// Limit for one dial, so a black-holed attempt does not stall the loop for the default 30 s.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// The connection while it is open and greeted: what the send form writes to.
    conn: RefCell<Option<Rc<Conn>>>,
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
        conn: RefCell::new(None),
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
        spawn_local(run(self.clone(), nick));
    }

    /// The send form: writes one `say` on the open connection.
    fn send(self: &Rc<Self>) {
        let value = self.ui.text.value();
        let text = value.trim();
        if text.is_empty() {
            return;
        }
        // Clone out of the cell: no borrow is held across the write below.
        let conn = self.conn.borrow().clone();
        let Some(conn) = conn else {
            self.ui
                .add_notice("Not connected: your message is still in the box.");
            return;
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
            if let Err(e) = conn.write(Message::text(json)).await {
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

/// The connection loop: connect, chat until the connection ends, wait, connect again.
async fn run(app: Rc<App>, nick: String) {
    let url = match ws_url() {
        Ok(url) => url,
        Err(e) => {
            log_error(&e);
            app.ui.set_status(State::Failed, "cannot connect", &e);
            return;
        }
    };
    // The nickname is fixed once joined: encode the hello once, resend it on every connection.
    let hello = match serde_json::to_string(&ClientMsg::Hello { nick }) {
        Ok(json) => json,
        Err(e) => {
            let e = format!("cannot encode the hello message: {e}");
            log_error(&e);
            app.ui.set_status(State::Failed, "cannot connect", &e);
            return;
        }
    };
    let mut backoff = Backoff::new(BACKOFF_BASE_MS, BACKOFF_MAX_MS);
    // Why the last open connection ended, and the failed attempts since: the status detail.
    let mut last_drop: Option<String> = None;
    let mut failures: u32 = 0;
    loop {
        let (text, detail) = match &last_drop {
            Some(why) => ("reconnecting…", why.as_str()),
            None => ("connecting…", ""),
        };
        app.ui.set_status(State::Connecting, text, detail);
        let again = last_drop.is_some();
        let why = match connect_and_chat(&app, &url, &hello, again).await {
            Ended::NotOpened(e) => {
                log_warn(&format!("connecting to {url} failed: {e}"));
                failures += 1;
                match &last_drop {
                    Some(drop) => format!("{drop}; retry {failures}: {}", describe(&e)),
                    None => format!("attempt {failures}: {}", describe(&e)),
                }
            }
            Ended::Dropped { error, up_ms } => {
                failures = 0;
                if up_ms >= STABLE_AFTER_MS {
                    backoff.reset();
                }
                log_warn(&format!("connection ended: {error}"));
                let why = describe(&error);
                app.ui.add_notice(&format!("Disconnected ({why})."));
                last_drop = Some(why.clone());
                why
            }
        };
        app.ui.set_online(None);
        let delay = backoff.next_delay_ms(js_sys::Math::random());
        if let Err(e) = countdown(&app.ui, delay, &why).await {
            log_error(&e);
            app.ui.set_status(State::Failed, "cannot reconnect", &e);
            return;
        }
    }
}

/// How a connection attempt ended.
enum Ended {
    /// The dial failed.
    NotOpened(Error),
    /// The connection opened, then ended with `error` after `up_ms` milliseconds.
    Dropped { error: Error, up_ms: f64 },
}

/// Dials, sends `hello`, and shows messages until the connection ends; `again` when a
/// connection had been open before.
async fn connect_and_chat(app: &App, url: &str, hello: &str, again: bool) -> Ended {
    let opts = DialOptions::new().timeout(DIAL_TIMEOUT);
    let conn = match dial(url, &opts).await {
        Ok((conn, _response)) => Rc::new(conn),
        Err(e) => return Ended::NotOpened(e),
    };
    let opened = js_sys::Date::now();
    let up_ms = || js_sys::Date::now() - opened;
    if let Err(error) = conn.write(Message::text(hello)).await {
        return Ended::Dropped {
            error,
            up_ms: up_ms(),
        };
    }
    *app.conn.borrow_mut() = Some(conn.clone());
    app.ui.set_status(State::Open, "connected", "");
    app.ui.set_extensions(conn.extensions());
    if again {
        app.ui.add_notice("Reconnected.");
    }
    let error = loop {
        match conn.read().await {
            Ok(Message::Text(text)) => app.receive(&text),
            Ok(Message::Binary(b)) => {
                log_warn(&format!("ignored a {}-byte binary message", b.len()))
            }
            Err(e) => break e,
        }
    };
    app.conn.borrow_mut().take();
    Ended::Dropped {
        error,
        up_ms: up_ms(),
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
