//! The chat demo as a Yew page: isosock's `dial`, `read` and `write` in the browser, the
//! shared `isosock-chat-protocol` messages, and a Yew component for the view.
//!
//! Build: `scripts/build-examples.sh` (into `target/examples-web/yew`). Run:
//! `cargo run --example chat_server --features hyper -- 8080 target/examples-web/yew`, then
//! open <http://127.0.0.1:8080/>. The page connects to `/ws` on its own origin.
//!
//! After joining, one connection loop runs for the page's lifetime: dial, send `hello`, show
//! messages until the connection ends, wait (250 ms doubling to 5 s; back to 250 ms after a
//! connection that worked), dial again. The loop talks to the component only through its
//! messages ([`Scope::send_message`](yew::html::Scope::send_message)). `#status` carries the
//! state in `data-state` (`idle`, `connecting`, `open`, `reconnecting`, `failed`) for tests
//! and styles; the markup matches `www/index.html`, so the demo's `style.css` applies.

// Browser only: natively there is nothing to run.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("isosock-yew-chat runs in a browser: build it with scripts/build-examples.sh");
}

#[cfg(target_arch = "wasm32")]
fn main() {
    yew::Renderer::<app::App>::new().render();
}

#[cfg(target_arch = "wasm32")]
mod app {
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::time::Duration;

    use isosock::{dial, Conn, DialOptions, Error, ErrorKind, Message};
    use isosock_chat_protocol::{self as protocol, ClientMsg, ServerMsg};
    use web_sys::HtmlInputElement;
    use yew::html::Scope;
    use yew::platform::{spawn_local, time::sleep};
    use yew::prelude::*;

    /// Limit for one dial, so a black-holed attempt does not stall the loop for 30 s.
    const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
    /// First and longest wait before reconnecting.
    const BACKOFF_MIN: Duration = Duration::from_millis(250);
    const BACKOFF_MAX: Duration = Duration::from_secs(5);
    /// Most entries the message list keeps; older ones are dropped.
    const MAX_ENTRIES: usize = 500;

    /// The connection's state, shown as `data-state` on `#status`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum State {
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

    /// One line of the message list.
    #[derive(Debug)]
    struct Entry {
        /// Unique for the page's lifetime: the list's key.
        id: u64,
        kind: EntryKind,
    }

    #[derive(Debug)]
    pub(crate) enum EntryKind {
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

    /// What changes the page: the user's input, and the connection loop's news.
    #[derive(Debug)]
    pub(crate) enum Msg {
        NickInput(String),
        TextInput(String),
        Join,
        Send,
        /// The status bar's state, text and detail (empty for none).
        Status(State, String, String),
        /// A text message from the server.
        Received(String),
        /// The room's size; `None` while not connected.
        Online(Option<u32>),
        Push(EntryKind),
        /// The open, greeted connection, or `None` once it ended.
        Conn(Option<Arc<Conn>>),
    }

    /// The page.
    #[derive(Debug)]
    pub(crate) struct App {
        /// The nickname, once joined.
        me: Option<String>,
        nick_input: String,
        text_input: String,
        state: State,
        status_text: String,
        status_detail: String,
        online: Option<u32>,
        entries: VecDeque<Entry>,
        next_id: u64,
        /// What the send form writes to.
        conn: Option<Arc<Conn>>,
        list: NodeRef,
    }

    impl Component for App {
        type Message = Msg;
        type Properties = ();

        fn create(_ctx: &Context<Self>) -> Self {
            App {
                me: None,
                nick_input: String::new(),
                text_input: String::new(),
                state: State::Idle,
                status_text: "not connected".to_owned(),
                status_detail: String::new(),
                online: None,
                entries: VecDeque::new(),
                next_id: 0,
                conn: None,
                list: NodeRef::default(),
            }
        }

        fn update(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
            match msg {
                Msg::NickInput(nick) => self.nick_input = nick,
                Msg::TextInput(text) => self.text_input = text,
                Msg::Join => {
                    if self.me.is_some() {
                        return false;
                    }
                    // The server's own rule, so the name shown is the one the others see.
                    match protocol::clean_nick(&self.nick_input) {
                        Some(nick) => {
                            self.me = Some(nick.clone());
                            spawn_local(run(ctx.link().clone(), nick));
                        }
                        // Only blanks: clear them so the input's `required` check explains.
                        None => self.nick_input.clear(),
                    }
                }
                Msg::Send => self.send(ctx),
                Msg::Status(state, text, detail) => {
                    self.state = state;
                    self.status_text = text;
                    self.status_detail = detail;
                }
                Msg::Received(text) => self.receive(&text),
                Msg::Online(online) => self.online = online,
                Msg::Push(kind) => self.push(kind),
                Msg::Conn(conn) => self.conn = conn,
            }
            true
        }

        fn rendered(&mut self, _ctx: &Context<Self>, _first_render: bool) {
            // Keep the newest message in view.
            if let Some(list) = self.list.cast::<web_sys::Element>() {
                list.set_scroll_top(list.scroll_height());
            }
        }

        fn view(&self, ctx: &Context<Self>) -> Html {
            let link = ctx.link();
            let joined = self.me.is_some();
            let on_join = link.callback(|ev: SubmitEvent| {
                ev.prevent_default();
                Msg::Join
            });
            let on_send = link.callback(|ev: SubmitEvent| {
                ev.prevent_default();
                Msg::Send
            });
            let on_nick = link.callback(|ev: InputEvent| {
                Msg::NickInput(ev.target_unchecked_into::<HtmlInputElement>().value())
            });
            let on_text = link.callback(|ev: InputEvent| {
                Msg::TextInput(ev.target_unchecked_into::<HtmlInputElement>().value())
            });
            html! {
                <div class="app">
                    <header class="top">
                        <div class="brand">
                            <span class="logo" aria-hidden="true">{ "⇄" }</span>
                            <div>
                                <h1>{ "isosock chat · Yew" }</h1>
                                <p class="tagline">{ "A Yew page on isosock, talking to a tokio server." }</p>
                            </div>
                        </div>
                        <span id="me" class="me" title="your nickname" hidden={!joined}>
                            { self.me.clone().unwrap_or_default() }
                        </span>
                    </header>

                    <div class="bar">
                        <div id="status" class="status" role="status" data-state={self.state.as_str()}>
                            <span class="dot" aria-hidden="true"></span>
                            <span id="status-text">{ &self.status_text }</span>
                            <span id="status-detail" class="detail" hidden={self.status_detail.is_empty()}>
                                { &self.status_detail }
                            </span>
                        </div>
                        <span
                            id="online"
                            class="online"
                            data-count={self.online.map(|n| n.to_string())}
                            hidden={self.online.is_none()}
                        >
                            { self.online.map(|n| format!("{n} online")).unwrap_or_default() }
                        </span>
                    </div>

                    <main class="main">
                        <form id="join" class="join card" hidden={joined} onsubmit={on_join}>
                            <h2>{ "Join the room" }</h2>
                            <p>{ "Pick a nickname. Open this page in a second tab to talk to yourself." }</p>
                            <div class="row">
                                <input
                                    id="nick"
                                    type="text"
                                    maxlength="24"
                                    required=true
                                    autofocus=true
                                    placeholder="Nickname, e.g. ann"
                                    aria-label="Nickname"
                                    value={self.nick_input.clone()}
                                    oninput={on_nick}
                                />
                                <button id="join-button" type="submit">{ "Join" }</button>
                            </div>
                        </form>

                        <section id="chat" class="chat card" hidden={!joined}>
                            <ol id="messages" class="messages" aria-label="Messages" ref={self.list.clone()}>
                                { for self.entries.iter().map(entry_view) }
                            </ol>
                            <form id="compose" class="compose" autocomplete="off" onsubmit={on_send}>
                                <input
                                    id="text"
                                    type="text"
                                    maxlength="1000"
                                    placeholder="Write a message…"
                                    aria-label="Message"
                                    value={self.text_input.clone()}
                                    oninput={on_text}
                                />
                                <button id="send" type="submit" disabled={self.state != State::Open}>
                                    { "Send" }
                                </button>
                            </form>
                        </section>
                    </main>

                    <footer class="foot">
                        { "Served by " }<code>{ "examples/chat_server.rs" }</code>
                        { " · page in " }<code>{ "examples/yew-chat" }</code>
                    </footer>
                </div>
            }
        }
    }

    impl App {
        fn push(&mut self, kind: EntryKind) {
            self.entries.push_back(Entry {
                id: self.next_id,
                kind,
            });
            self.next_id += 1;
            while self.entries.len() > MAX_ENTRIES {
                self.entries.pop_front();
            }
        }

        /// The send form: writes one `say` on the open connection.
        fn send(&mut self, ctx: &Context<Self>) {
            let text = self.text_input.trim().to_owned();
            if text.is_empty() {
                return;
            }
            let Some(conn) = self.conn.clone() else {
                self.push(EntryKind::Notice(
                    "Not connected: your message is still in the box.".to_owned(),
                ));
                return;
            };
            let json = match serde_json::to_string(&ClientMsg::Say { text: text.clone() }) {
                Ok(json) => json,
                Err(e) => {
                    self.push(EntryKind::Notice(format!("Not sent ({e}): {text}")));
                    return;
                }
            };
            self.text_input.clear();
            let link = ctx.link().clone();
            spawn_local(async move {
                if let Err(e) = conn.write(Message::text(json)).await {
                    let notice = format!("Not sent ({}): {text}", describe(&e));
                    link.send_message(Msg::Push(EntryKind::Notice(notice)));
                }
            });
        }

        /// Shows one message from the server; what it cannot read is ignored.
        fn receive(&mut self, text: &str) {
            match serde_json::from_str::<ServerMsg>(text) {
                Ok(ServerMsg::Msg { nick, text }) => {
                    let mine = self.me.as_ref() == Some(&nick);
                    self.push(EntryKind::Msg { nick, text, mine });
                }
                Ok(ServerMsg::System { text, online }) => {
                    self.push(EntryKind::System(text));
                    self.online = Some(online);
                }
                Ok(ServerMsg::Unknown) | Err(_) => {}
            }
        }
    }

    /// One message list entry. Text from the network is only ever rendered as text.
    fn entry_view(entry: &Entry) -> Html {
        match &entry.kind {
            EntryKind::Msg { nick, text, mine } => html! {
                <li key={entry.id} class={classes!("entry", "msg", mine.then_some("mine"))}>
                    <span class="nick">{ nick }</span>
                    <span class="text">{ text }</span>
                </li>
            },
            EntryKind::System(text) => html! {
                <li key={entry.id} class="entry system"><span class="text">{ text }</span></li>
            },
            EntryKind::Notice(text) => html! {
                <li key={entry.id} class="entry notice"><span class="text">{ text }</span></li>
            },
        }
    }

    fn set_status(link: &Scope<App>, state: State, text: impl Into<String>, detail: &str) {
        link.send_message(Msg::Status(state, text.into(), detail.to_owned()));
    }

    /// The connection loop: connect, chat until the connection ends, wait, connect again.
    async fn run(link: Scope<App>, nick: String) {
        let url = web_sys::window()
            .map(|w| w.location())
            .and_then(|l| Some((l.protocol().ok()?, l.host().ok()?)))
            .ok_or_else(|| "cannot read this page's location".to_owned())
            .and_then(|(scheme, host)| protocol::ws_url(&scheme, &host));
        let url = match url {
            Ok(url) => url,
            Err(e) => return set_status(&link, State::Failed, "cannot connect", &e),
        };
        // Encoded once, sent again on every connection: the server knows a client by its hello.
        let hello = match serde_json::to_string(&ClientMsg::Hello { nick }) {
            Ok(json) => json,
            Err(e) => {
                return set_status(&link, State::Failed, "cannot connect", &e.to_string());
            }
        };
        let opts = DialOptions::new().timeout(DIAL_TIMEOUT);
        let mut delay = BACKOFF_MIN;
        // Why the last open connection ended: set once one did.
        let mut dropped: Option<String> = None;
        loop {
            let text = if dropped.is_some() {
                "reconnecting…"
            } else {
                "connecting…"
            };
            set_status(
                &link,
                State::Connecting,
                text,
                dropped.as_deref().unwrap_or(""),
            );
            let why = match dial(&url, &opts).await {
                Err(e) => describe(&e),
                Ok((conn, _response)) => {
                    let (why, worked) =
                        chat_on(&link, Arc::new(conn), &hello, dropped.is_some()).await;
                    if worked {
                        delay = BACKOFF_MIN;
                    }
                    link.send_message(Msg::Push(EntryKind::Notice(format!(
                        "Disconnected ({why})."
                    ))));
                    dropped = Some(why.clone());
                    why
                }
            };
            link.send_message(Msg::Online(None));
            let text = format!("reconnecting in {:.1} s", delay.as_secs_f64());
            set_status(&link, State::Reconnecting, text, &why);
            sleep(delay).await;
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }

    /// Greets the server on `conn` and hands its messages to the page until the connection
    /// ends. Returns why it ended, and whether the server answered at all.
    async fn chat_on(
        link: &Scope<App>,
        conn: Arc<Conn>,
        hello: &str,
        again: bool,
    ) -> (String, bool) {
        if let Err(e) = conn.write(Message::text(hello)).await {
            return (describe(&e), false);
        }
        link.send_message(Msg::Conn(Some(conn.clone())));
        set_status(link, State::Open, "connected", "");
        if again {
            link.send_message(Msg::Push(EntryKind::Notice("Reconnected.".to_owned())));
        }
        let mut worked = false;
        let error = loop {
            match conn.read().await {
                Ok(Message::Text(text)) => {
                    worked = true;
                    link.send_message(Msg::Received(text));
                }
                Ok(Message::Binary(_)) => {}
                Err(e) => break e,
            }
        };
        link.send_message(Msg::Conn(None));
        (describe(&error), worked)
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
}
