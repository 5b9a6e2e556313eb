//! The chat demo as a Leptos app, one set of components built twice: rendered to HTML on a
//! native axum server (feature `ssr`, `src/main.rs`) and hydrated in the browser (feature
//! `hydrate`, this library as wasm). isosock's Leptos hook (`isosock-leptos`, a reconnecting
//! client with reactive state), the shared `isosock-chat-protocol` messages, and Leptos
//! signals for the view.
//!
//! Build both with `scripts/build-examples.sh leptos` (the page's wasm into
//! `target/examples-web/leptos`, the server into `target/debug/isosock-leptos-chat`). Run:
//! `target/debug/isosock-leptos-chat 8080 target/examples-web/leptos`, then open
//! <http://127.0.0.1:8080/>. The server renders the page, serves its wasm and speaks the chat
//! on `/ws` (`examples/axum_chat.rs`'s route); the page connects to `/ws` on its own origin.
//!
//! Until the wasm has hydrated the server's markup, `#status` says `loading` and the join
//! button is disabled: a submit before then would reload the page instead of joining.
//! Joining mounts the `Room` component (in the browser only: the server always renders the
//! join form), whose `use_websocket` hook connects for the page's lifetime: its `on_open`
//! sends `hello` first on every connection, its `on_message` shows every message, and its
//! state signal drives the status line and the notices; isosock's `Reconnecting` waits a
//! jittered delay between attempts (250 ms doubling to 5 s; back to 250 ms after a
//! connection that stayed up 10 s). `#status` carries the state in `data-state` (`loading`,
//! `idle`, `connecting`, `open`, `reconnecting`, `failed`) for tests and styles; the markup
//! matches `www/index.html`, so the demo's `style.css` applies.

use std::time::Duration;

use isosock::reconnect::State as Link;
use isosock::{DialOptions, Error, ErrorKind, Message, ReconnectOptions};
use isosock_chat_protocol::{self as protocol, ClientMsg, ServerMsg};
use isosock_leptos::{use_websocket, UseWebSocket, UseWebSocketOptions};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Limit for one attempt (dial and hello), so a black-holed attempt does not stall 30 s.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First and longest wait before reconnecting (before jitter).
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A connection that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Most entries the message list keeps; older ones are dropped.
const MAX_ENTRIES: usize = 500;

/// The connection's state, shown as `data-state` on `#status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Connecting,
    Open,
    Reconnecting,
    Failed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Open => "open",
            State::Reconnecting => "reconnecting",
            State::Failed => "failed",
        }
    }
}

/// What the status bar shows.
#[derive(Debug, Clone, PartialEq)]
struct Status {
    state: State,
    text: String,
    /// Why the last connection ended or the last attempt failed; empty for nothing.
    detail: String,
}

/// One line of the message list.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// Unique for the page's lifetime: the list's key.
    id: u64,
    kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq)]
enum EntryKind {
    /// A chat line; `mine` when it carries this page's nickname.
    Msg {
        nick: String,
        text: String,
        mine: bool,
    },
    /// The room's news from the server (joins and leaves).
    System(String),
    /// This page's own news (disconnected, not sent).
    Notice(String),
}

/// The page's state. Every field is a `Copy` handle into Leptos's arena, so the view's
/// closures and the hook's callbacks each hold a copy.
#[derive(Debug, Clone, Copy)]
struct Chat {
    /// The nickname, once joined.
    me: RwSignal<Option<String>>,
    status: RwSignal<Status>,
    /// Clients in the room, while connected.
    online: RwSignal<Option<u32>>,
    entries: RwSignal<Vec<Entry>>,
    next_id: StoredValue<u64>,
    /// The room's WebSocket hook, once joined: what the send form writes to.
    ws: StoredValue<Option<UseWebSocket>>,
    /// The two text inputs.
    nick_input: RwSignal<String>,
    text_input: RwSignal<String>,
}

impl Chat {
    fn new() -> Self {
        Chat {
            me: RwSignal::new(None),
            status: RwSignal::new(Status {
                state: State::Idle,
                text: "not connected".to_owned(),
                detail: String::new(),
            }),
            online: RwSignal::new(None),
            entries: RwSignal::new(Vec::new()),
            next_id: StoredValue::new(0),
            ws: StoredValue::new(None),
            nick_input: RwSignal::new(String::new()),
            text_input: RwSignal::new(String::new()),
        }
    }

    fn set_status(&self, state: State, text: impl Into<String>, detail: impl Into<String>) {
        self.status.set(Status {
            state,
            text: text.into(),
            detail: detail.into(),
        });
    }

    fn push(&self, kind: EntryKind) {
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        self.entries.update(|entries| {
            entries.push(Entry { id, kind });
            let excess = entries.len().saturating_sub(MAX_ENTRIES);
            entries.drain(..excess);
        });
    }

    /// The join form: takes the nickname, once; the view then mounts the `Room`.
    fn join(self) {
        if self.me.get_untracked().is_some() {
            return;
        }
        let Some(nick) = protocol::clean_nick(&self.nick_input.get_untracked()) else {
            // Only blanks: clear them so the input's `required` check explains itself.
            self.nick_input.set(String::new());
            return;
        };
        self.me.set(Some(nick));
    }

    /// The send form: writes one `say` on the open connection.
    fn send(self) {
        let text = self.text_input.get_untracked().trim().to_owned();
        if text.is_empty() {
            return;
        }
        let ws = match self.ws.get_value() {
            Some(ws) if ws.state.with_untracked(|s| matches!(s, Link::Open)) => ws,
            _ => {
                self.push(EntryKind::Notice(
                    "Not connected: your message is still in the box.".to_owned(),
                ));
                return;
            }
        };
        let json = match serde_json::to_string(&ClientMsg::Say { text: text.clone() }) {
            Ok(json) => json,
            Err(e) => {
                leptos::logging::error!("isosock chat: cannot encode a message: {e}");
                return;
            }
        };
        self.text_input.set(String::new());
        spawn_local(async move {
            if let Err(e) = ws.send(Message::text(json)).await {
                self.push(EntryKind::Notice(format!(
                    "Not sent ({}): {text}",
                    describe(&e)
                )));
            }
        });
    }

    /// Shows one message from the server.
    fn receive(&self, text: &str) {
        match serde_json::from_str::<ServerMsg>(text) {
            Ok(ServerMsg::Msg { nick, text }) => {
                let mine = self.me.with_untracked(|me| me.as_ref() == Some(&nick));
                self.push(EntryKind::Msg { nick, text, mine });
            }
            Ok(ServerMsg::System { text, online }) => {
                self.push(EntryKind::System(text));
                self.online.set(Some(online));
            }
            Ok(ServerMsg::Unknown) => {}
            Err(e) => leptos::logging::warn!("isosock chat: ignored {text:?}: {e}"),
        }
    }
}

/// The room: mounted once joined, it holds the page's WebSocket hook for the page's
/// lifetime and turns its state into the status line and notices. It renders nothing.
#[component]
fn Room(chat: Chat, nick: String) -> impl IntoView {
    let location = window().location();
    let url = match (location.protocol(), location.host()) {
        (Ok(scheme), Ok(host)) => protocol::ws_url(&scheme, &host),
        _ => Err("cannot read this page's location".to_owned()),
    };
    // Encoded once, sent again on every connection: the server knows a client by its hello.
    let hello = serde_json::to_string(&ClientMsg::Hello { nick }).map_err(|e| e.to_string());
    let (url, hello) = match (url, hello) {
        (Ok(url), Ok(hello)) => (url, hello),
        (Err(e), _) | (_, Err(e)) => {
            chat.set_status(State::Failed, "cannot connect", e);
            return;
        }
    };
    let reconnect = ReconnectOptions::new(url, DialOptions::new())
        .connect_timeout(CONNECT_TIMEOUT)
        .backoff(BACKOFF_MIN, BACKOFF_MAX)
        .stable_after(STABLE_AFTER)
        .on_open(move |conn| {
            let hello = Message::text(hello.as_str());
            async move {
                conn.write(hello).await?;
                Ok(())
            }
        });
    let ws = use_websocket(
        UseWebSocketOptions::new(reconnect)
            // Every message goes to the list; the hook's own history is not needed.
            .history(0)
            .on_message(move |msg| match msg {
                Message::Text(text) => chat.receive(text),
                Message::Binary(_) => {}
            }),
    );
    chat.ws.set_value(Some(ws));
    // Why the last open connection ended (once one did), and whether one is open.
    let dropped = StoredValue::new(None::<String>);
    let was_open = StoredValue::new(false);
    Effect::new(move |_| {
        ws.state.with(|state| match state {
            Link::Connecting { .. } => {
                let detail = dropped.get_value();
                let text = if detail.is_some() {
                    "reconnecting…"
                } else {
                    "connecting…"
                };
                chat.set_status(State::Connecting, text, detail.unwrap_or_default());
            }
            Link::Open => {
                chat.set_status(State::Open, "connected", "");
                if dropped.with_value(Option::is_some) {
                    chat.push(EntryKind::Notice("Reconnected.".to_owned()));
                }
                was_open.set_value(true);
            }
            Link::Disconnected { error, retry_in } => {
                chat.online.set(None);
                let why = describe(error);
                if was_open.get_value() {
                    was_open.set_value(false);
                    chat.push(EntryKind::Notice(format!("Disconnected ({why}).")));
                    dropped.set_value(Some(why.clone()));
                }
                chat.set_status(
                    State::Reconnecting,
                    format!("reconnecting in {:.1} s", retry_in.as_secs_f64()),
                    why,
                );
            }
            Link::Closed { error } => {
                let why = error.as_ref().map(describe).unwrap_or_default();
                chat.set_status(State::Failed, "disconnected for good", why);
            }
            // A state added in a later isosock: nothing to show.
            _ => {}
        });
    });
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

/// The browser's entry point, which the server's page calls once the wasm has loaded: takes
/// over the server-rendered `<body>` (its nodes are kept, not rebuilt) for the page's lifetime.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    leptos::mount::hydrate_body(App);
}

/// The whole document the server renders: `<head>` with the stylesheet and Leptos's
/// hydration script (which loads `/pkg/leptos_chat.js` and calls [`hydrate`]), and `App` as
/// `<body>`.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <title>"isosock chat · Leptos"</title>
                <link rel="icon" href="data:," />
                <link rel="stylesheet" href="/style.css" />
                <HydrationScripts options />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The page: the same markup as `www/index.html`, so the demo's stylesheet applies.
#[component]
pub fn App() -> impl IntoView {
    let chat = Chat::new();
    let status = chat.status;
    // False on the server and while hydrating; effects run in the browser only, after it.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let state = move || {
        if hydrated.get() {
            status.with(|s| s.state.as_str())
        } else {
            "loading"
        }
    };
    let list: NodeRef<leptos::html::Ol> = NodeRef::new();
    // Keep the newest message in view.
    Effect::new(move |_| {
        chat.entries.track();
        if let Some(list) = list.get() {
            list.set_scroll_top(list.scroll_height());
        }
    });
    let joined = move || chat.me.with(Option::is_some);

    view! {
        <div class="app">
            <header class="top">
                <div class="brand">
                    <span class="logo" aria-hidden="true">"⇄"</span>
                    <div>
                        <h1>"isosock chat · Leptos"</h1>
                        <p class="tagline">"A Leptos page on isosock, talking to a tokio server."</p>
                    </div>
                </div>
                <span id="me" class="me" title="your nickname" hidden=move || !joined()>
                    {move || chat.me.get()}
                </span>
            </header>

            <div class="bar">
                <div
                    id="status"
                    class="status"
                    role="status"
                    data-state=state
                >
                    <span class="dot" aria-hidden="true"></span>
                    <span id="status-text">
                        {move || {
                            if hydrated.get() {
                                status.with(|s| s.text.clone())
                            } else {
                                "loading…".to_owned()
                            }
                        }}
                    </span>
                    <span
                        id="status-detail"
                        class="detail"
                        hidden=move || status.with(|s| s.detail.is_empty())
                    >
                        {move || status.with(|s| s.detail.clone())}
                    </span>
                </div>
                <span
                    id="online"
                    class="online"
                    data-count=move || chat.online.get().map(|n| n.to_string())
                    hidden=move || chat.online.with(Option::is_none)
                >
                    {move || chat.online.get().map(|n| format!("{n} online"))}
                </span>
            </div>

            <main class="main">
                <form
                    id="join"
                    class="join card"
                    hidden=joined
                    on:submit=move |ev| {
                        ev.prevent_default();
                        chat.join();
                    }
                >
                    <h2>"Join the room"</h2>
                    <p>"Pick a nickname. Open this page in a second tab to talk to yourself."</p>
                    <div class="row">
                        <input
                            id="nick"
                            type="text"
                            maxlength="24"
                            required=true
                            autofocus=true
                            placeholder="Nickname, e.g. ann"
                            aria-label="Nickname"
                            bind:value=chat.nick_input
                        />
                        <button id="join-button" type="submit" disabled=move || !hydrated.get()>
                            "Join"
                        </button>
                    </div>
                </form>

                <section id="chat" class="chat card" hidden=move || !joined()>
                    <ol id="messages" class="messages" aria-label="Messages" node_ref=list>
                        <For each=move || chat.entries.get() key=|entry| entry.id let:entry>
                            {entry_view(entry)}
                        </For>
                    </ol>
                    <form
                        id="compose"
                        class="compose"
                        autocomplete="off"
                        on:submit=move |ev| {
                            ev.prevent_default();
                            chat.send();
                        }
                    >
                        <input
                            id="text"
                            type="text"
                            maxlength="1000"
                            placeholder="Write a message…"
                            aria-label="Message"
                            bind:value=chat.text_input
                        />
                        <button
                            id="send"
                            type="submit"
                            disabled=move || status.with(|s| s.state != State::Open)
                        >
                            "Send"
                        </button>
                    </form>
                </section>
            </main>

            {move || chat.me.get().map(|nick| view! { <Room chat=chat nick=nick /> })}

            <footer class="foot">
                "Rendered by " <code>"examples/leptos-chat"</code>
                " on an axum server, hydrated in your browser"
            </footer>
        </div>
    }
}

/// One message list entry. Text from the network is only ever rendered as text.
fn entry_view(entry: Entry) -> impl IntoView {
    match entry.kind {
        EntryKind::Msg { nick, text, mine } => {
            let class = if mine { "entry msg mine" } else { "entry msg" };
            view! {
                <li class=class>
                    <span class="nick">{nick}</span>
                    <span class="text">{text}</span>
                </li>
            }
            .into_any()
        }
        EntryKind::System(text) => view! {
            <li class="entry system"><span class="text">{text}</span></li>
        }
        .into_any(),
        EntryKind::Notice(text) => view! {
            <li class="entry notice"><span class="text">{text}</span></li>
        }
        .into_any(),
    }
}
