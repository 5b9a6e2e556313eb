//! The chat demo as a Yew page: isosock's Yew hook (`isosock-yew`, a reconnecting client that
//! re-renders its component), the shared `isosock-chat-protocol` messages, and a Yew component
//! for the view.
//!
//! Build: `scripts/build-examples.sh` (into `target/examples-web/yew`). Run:
//! `cargo run --example chat_server --features hyper -- 8080 target/examples-web/yew`, then
//! open <http://127.0.0.1:8080/>. The page connects to `/ws` on its own origin.
//!
//! Joining mounts the `Room` component, whose `use_websocket` hook connects for the page's
//! lifetime: its `on_open` sends `hello` first on every connection, its `on_message` hands
//! every message to the page, and an effect on its state drives the status line and the
//! notices; isosock's `Reconnecting` waits a jittered delay between attempts (250 ms doubling
//! to 5 s; back to 250 ms after a connection that stayed up 10 s). The room talks to the page
//! only through the page's messages (a [`Callback`](yew::Callback) from its
//! [`Scope`](yew::html::Scope)). `#status` carries the state in `data-state` (`idle`,
//! `connecting`, `open`, `reconnecting`, `failed`) for tests and styles; the markup matches
//! `www/index.html`, so the demo's `style.css` applies.

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
    use std::time::Duration;

    use isosock::reconnect::State as Link;
    use isosock::{DialOptions, Error, ErrorKind, Message, ReconnectOptions};
    use isosock_chat_protocol::{self as protocol, ClientMsg, ServerMsg};
    use isosock_yew::{use_websocket, UseWebSocket, UseWebSocketOptions};
    use web_sys::HtmlInputElement;
    use yew::platform::spawn_local;
    use yew::prelude::*;

    /// Limit for one attempt (dial and hello), so a black-holed attempt does not stall 30 s.
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// First and longest wait before reconnecting (before jitter).
    const BACKOFF_MIN: Duration = Duration::from_millis(250);
    const BACKOFF_MAX: Duration = Duration::from_secs(5);
    /// A connection that stayed up this long starts the retry delays over.
    const STABLE_AFTER: Duration = Duration::from_secs(10);
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

    /// What changes the page: the user's input, and the room's news.
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
        /// The room's WebSocket hook, once the room is mounted.
        Ws(UseWebSocket),
    }

    /// The page.
    #[derive(Debug)]
    pub(crate) struct App {
        /// The nickname, once joined.
        me: Option<String>,
        /// What the `Room` connects to and greets with, once joined.
        room: Option<RoomProps>,
        nick_input: String,
        text_input: String,
        state: State,
        status_text: String,
        status_detail: String,
        online: Option<u32>,
        entries: VecDeque<Entry>,
        next_id: u64,
        /// The room's WebSocket hook, once joined: what the send form writes to.
        ws: Option<UseWebSocket>,
        list: NodeRef,
    }

    impl Component for App {
        type Message = Msg;
        type Properties = ();

        fn create(_ctx: &Context<Self>) -> Self {
            App {
                me: None,
                room: None,
                nick_input: String::new(),
                text_input: String::new(),
                state: State::Idle,
                status_text: "not connected".to_owned(),
                status_detail: String::new(),
                online: None,
                entries: VecDeque::new(),
                next_id: 0,
                ws: None,
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
                            self.join(ctx, nick);
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
                Msg::Ws(ws) => self.ws = Some(ws),
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

                    { for self.room.clone().map(|room| html! { <Room ..room /> }) }

                    <footer class="foot">
                        { "Served by " }<code>{ "examples/chat_server.rs" }</code>
                        { " · page in " }<code>{ "examples/yew-chat" }</code>
                    </footer>
                </div>
            }
        }
    }

    impl App {
        /// The join form's second half: works out the room's URL and hello; the view then
        /// mounts the `Room`.
        fn join(&mut self, ctx: &Context<Self>, nick: String) {
            let url = web_sys::window()
                .map(|w| w.location())
                .and_then(|l| Some((l.protocol().ok()?, l.host().ok()?)))
                .ok_or_else(|| "cannot read this page's location".to_owned())
                .and_then(|(scheme, host)| protocol::ws_url(&scheme, &host));
            // Encoded once, sent again on every connection: the server knows a client by its
            // hello.
            let hello =
                serde_json::to_string(&ClientMsg::Hello { nick }).map_err(|e| e.to_string());
            match (url, hello) {
                (Ok(url), Ok(hello)) => {
                    self.room = Some(RoomProps {
                        url,
                        hello,
                        page: ctx.link().callback(|msg: Msg| msg),
                    });
                }
                (Err(e), _) | (_, Err(e)) => {
                    self.state = State::Failed;
                    self.status_text = "cannot connect".to_owned();
                    self.status_detail = e;
                }
            }
        }

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
            let ws = match &self.ws {
                Some(ws) if ws.is_open() => ws.clone(),
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
                    self.push(EntryKind::Notice(format!("Not sent ({e}): {text}")));
                    return;
                }
            };
            self.text_input.clear();
            let link = ctx.link().clone();
            spawn_local(async move {
                if let Err(e) = ws.send(Message::text(json)).await {
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

    /// What the `Room` needs: where to connect, the hello for every connection, and the
    /// page's messages to send its news to.
    #[derive(Debug, Clone, PartialEq, Properties)]
    pub(crate) struct RoomProps {
        url: String,
        hello: String,
        page: Callback<Msg>,
    }

    /// The room: mounted once joined, it holds the page's WebSocket hook for the page's
    /// lifetime and turns its state into the status line and notices. It renders nothing.
    #[function_component]
    fn Room(props: &RoomProps) -> Html {
        let page = props.page.clone();
        let hello = props.hello.clone();
        // Built on every render; the hook uses the first render's.
        let reconnect = ReconnectOptions::new(props.url.clone(), DialOptions::new())
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
        let to_page = page.clone();
        let ws = use_websocket(
            UseWebSocketOptions::new(reconnect)
                // Every message goes to the list; the hook's own history is not needed.
                .history(0)
                .on_message(move |msg| match msg {
                    Message::Text(text) => to_page.emit(Msg::Received(text.clone())),
                    Message::Binary(_) => {}
                }),
        );
        {
            let (page, ws) = (page.clone(), ws.clone());
            use_effect_with((), move |()| page.emit(Msg::Ws(ws)));
        }
        // Why the last open connection ended (once one did), and whether one is open.
        let dropped = use_mut_ref(|| None::<String>);
        let was_open = use_mut_ref(|| false);
        use_effect_with(ws.state_changes(), move |_| {
            let status = |state, text: &str, detail: String| {
                page.emit(Msg::Status(state, text.to_owned(), detail));
            };
            match ws.state() {
                Link::Connecting { .. } => {
                    let detail = dropped.borrow().clone();
                    let text = if detail.is_some() {
                        "reconnecting…"
                    } else {
                        "connecting…"
                    };
                    status(State::Connecting, text, detail.unwrap_or_default());
                }
                Link::Open => {
                    status(State::Open, "connected", String::new());
                    if dropped.borrow().is_some() {
                        page.emit(Msg::Push(EntryKind::Notice("Reconnected.".to_owned())));
                    }
                    *was_open.borrow_mut() = true;
                }
                Link::Disconnected { error, retry_in } => {
                    page.emit(Msg::Online(None));
                    let why = describe(&error);
                    if was_open.replace(false) {
                        let notice = format!("Disconnected ({why}).");
                        page.emit(Msg::Push(EntryKind::Notice(notice)));
                        *dropped.borrow_mut() = Some(why.clone());
                    }
                    let text = format!("reconnecting in {:.1} s", retry_in.as_secs_f64());
                    status(State::Reconnecting, &text, why);
                }
                Link::Closed { error } => {
                    let why = error.as_ref().map(describe).unwrap_or_default();
                    status(State::Failed, "disconnected for good", why);
                }
                // A state added in a later isosock: nothing to show.
                _ => {}
            }
        });
        Html::default()
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
