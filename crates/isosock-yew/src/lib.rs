//! A Yew `use_websocket` hook over isosock's [`Reconnecting`] client.
//!
//! [`use_websocket`] starts one reconnecting client for the component that calls it and gives
//! back [`UseWebSocket`], a `Clone` handle: the connection's [`State`] (connecting with the
//! attempt's number, open, disconnected with the error, its close code and the delay before the
//! next attempt, closed for good), the latest message and a bounded history, and sends that
//! wait for the socket (backpressure). Every new state and message re-renders the component.
//! Everything about reconnecting is isosock's [`ReconnectOptions`]: jittered exponential
//! backoff, final close codes, a hello sent first on every connection
//! ([`ReconnectOptions::on_open`]), the opt-in bounded offline queue, a heartbeat. When the
//! component unmounts, the client is closed (1000) and its tasks end.
//!
//! In the browser the client starts after the component's first render (in an effect).
//! Natively (server-side rendering) the hook connects nowhere: its state stays
//! [`State::Connecting`] with attempt 0 and sends fail with [`ErrorKind::Unsupported`], so the
//! same component renders on the server and connects once hydrated.
//!
//! # Examples
//!
//! ```no_run
//! use isosock::{DialOptions, ReconnectOptions};
//! use isosock_yew::{use_websocket, UseWebSocketOptions};
//! use yew::platform::spawn_local;
//! use yew::prelude::*;
//!
//! #[function_component]
//! fn Feed() -> Html {
//!     let ws = use_websocket(
//!         UseWebSocketOptions::new(ReconnectOptions::new("wss://example.com/feed", DialOptions::new()))
//!             .history(50),
//!     );
//!     let send = {
//!         let ws = ws.clone();
//!         Callback::from(move |_: MouseEvent| {
//!             let ws = ws.clone();
//!             spawn_local(async move {
//!                 if let Err(e) = ws.send("ping").await {
//!                     web_sys_log(&format!("not sent: {e}"));
//!                 }
//!             });
//!         })
//!     };
//!     html! {
//!         <>
//!             <p>{ ws.status_text() }</p>
//!             <button onclick={send} disabled={!ws.is_open()}>{ "Send" }</button>
//!             <ul>{ for ws.history().iter().map(|m| html! { <li>{ format!("{m:?}") }</li> }) }</ul>
//!         </>
//!     }
//! }
//! # fn web_sys_log(_: &str) {}
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use isosock::reconnect::State;
use isosock::{Error, ErrorKind, Message, ReconnectOptions, Reconnecting, StatusCode};
use yew::prelude::*;

/// The default number of messages [`UseWebSocket::history`] keeps: 64.
pub const DEFAULT_HISTORY: usize = 64;
/// The most messages [`UseWebSocketOptions::history`] lets the history keep: 65,536.
pub const MAX_HISTORY: usize = 1 << 16;

/// A callback [`UseWebSocketOptions::on_message`] calls with every message.
type OnMessage = Box<dyn FnMut(&Message) + 'static>;

/// Options for [`use_websocket`]: isosock's [`ReconnectOptions`] (where to connect and how to
/// reconnect), how many messages the hook's history keeps, and an optional callback for every
/// message.
pub struct UseWebSocketOptions {
    reconnect: ReconnectOptions,
    history: usize,
    on_message: Option<OnMessage>,
}

impl std::fmt::Debug for UseWebSocketOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UseWebSocketOptions")
            .field("reconnect", &self.reconnect)
            .field("history", &self.history)
            .field("on_message", &self.on_message.is_some())
            .finish()
    }
}

impl UseWebSocketOptions {
    /// Options that connect and reconnect as `reconnect` says, with a history of
    /// [`DEFAULT_HISTORY`] messages.
    pub fn new(reconnect: ReconnectOptions) -> Self {
        UseWebSocketOptions {
            reconnect,
            history: DEFAULT_HISTORY,
            on_message: None,
        }
    }

    /// Calls `callback` with every message received, in order, before
    /// [`UseWebSocket::message`] and the history change. Default: none.
    ///
    /// [`UseWebSocket::message`] holds only the latest message, and Yew renders once for
    /// several messages that arrive together: an application that must see every message (a
    /// chat log, a stream of updates) handles them here. The callback is the first render's
    /// and lives as long as the client: to change the component's state from it, use a handle
    /// that stays current, such as a [`use_reducer`] dispatcher or a component's `Scope`.
    pub fn on_message(mut self, callback: impl FnMut(&Message) + 'static) -> Self {
        self.on_message = Some(Box::new(callback));
        self
    }

    /// Sets how many of the latest messages [`UseWebSocket::history`] keeps. Default: 64.
    ///
    /// `0` keeps none (only [`UseWebSocket::message`] is set); values above 65,536
    /// ([`MAX_HISTORY`]), `usize::MAX` included, mean 65,536. Each kept message can be as large
    /// as the connection's read limit.
    pub fn history(mut self, messages: usize) -> Self {
        self.history = messages.min(MAX_HISTORY);
        self
    }
}

impl From<ReconnectOptions> for UseWebSocketOptions {
    fn from(reconnect: ReconnectOptions) -> Self {
        UseWebSocketOptions::new(reconnect)
    }
}

/// What [`use_websocket`] returns: the connection's state and messages to render from, and
/// the client to send with.
///
/// It is `Clone` (a reference to the hook's store), so callbacks and tasks can each hold one.
/// Its accessors read the store as it is now, not as it was when the component rendered: a
/// clone held by a task or a callback never goes stale. Two handles are equal when they come
/// from the same hook and the same render's version of its store, so a child component that
/// gets the handle as a prop re-renders with every new state and message.
#[derive(Clone)]
pub struct UseWebSocket {
    inner: Rc<Inner>,
    /// The store's version when this handle was made.
    version: u64,
}

impl PartialEq for UseWebSocket {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner) && self.version == other.version
    }
}

impl std::fmt::Debug for UseWebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UseWebSocket")
            .field("state", &self.state())
            .field("message", &self.message())
            .field("history", &self.inner.store.borrow().history.len())
            .field("client", &self.inner.client.borrow().is_some())
            .finish()
    }
}

/// The hook's store, one per component instance, shared by its handles and its tasks.
struct Inner {
    store: RefCell<Store>,
    /// The client, from the effect that starts it until the component unmounts.
    client: RefCell<Option<Arc<Reconnecting>>>,
    /// Where the client is in the component's life.
    phase: Cell<Phase>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Rendered, the effect that starts the client has not run yet.
    Rendered,
    /// The effect ran (the client started, or could not and the state says why).
    Started,
    /// The component unmounted.
    Unmounted,
}

struct Store {
    state: State,
    /// Counts the states the hook has shown.
    state_changes: u64,
    message: Option<Message>,
    history: VecDeque<Message>,
    /// Counts every change (state or message).
    version: u64,
}

/// Starts a reconnecting WebSocket client for the calling component.
///
/// Only the first render's `options` count: the client starts once, after that render, and
/// later renders' options are ignored (building them again on each render is cheap). The
/// client runs until the component unmounts, then closes with 1000 and its tasks end; or until
/// it stops by itself (a final close code or error,
/// [`max_attempts`](ReconnectOptions::max_attempts)), which [`UseWebSocket::state`] shows as
/// [`State::Closed`]. Options that [`Reconnecting::start`] refuses (a zero connect timeout, a
/// heartbeat with a zero interval) show the same way, as `Closed` with the error.
///
/// Each call starts its own client: one per component instance, as with any hook.
#[hook]
pub fn use_websocket(options: impl Into<UseWebSocketOptions>) -> UseWebSocket {
    let options: UseWebSocketOptions = options.into();
    let rerender = use_force_update();
    let inner = use_memo((), |()| Inner {
        store: RefCell::new(Store {
            state: State::Connecting { attempt: 0 },
            state_changes: 0,
            message: None,
            history: VecDeque::new(),
            version: 0,
        }),
        client: RefCell::new(None),
        phase: Cell::new(Phase::Rendered),
    });
    let started = inner.clone();
    use_effect_with((), move |()| {
        start(&started, options, rerender);
        move || stop(&started)
    });
    let version = inner.store.borrow().version;
    UseWebSocket { inner, version }
}

/// The effect after the first render: starts the client and the tasks that follow it.
fn start(inner: &Rc<Inner>, options: UseWebSocketOptions, rerender: UseForceUpdateHandle) {
    inner.phase.set(Phase::Started);
    if !cfg!(target_arch = "wasm32") {
        // Effects do not run during server-side rendering; nowhere else to connect natively.
        return;
    }
    let UseWebSocketOptions {
        reconnect,
        history,
        on_message,
    } = options;
    match Reconnecting::start(reconnect) {
        Ok(client) => {
            let client = Arc::new(client);
            *inner.client.borrow_mut() = Some(client.clone());
            let sinks = Sinks {
                inner: inner.clone(),
                rerender,
                keep: history,
                on_message,
            };
            spawn_tasks(client, sinks);
        }
        Err(error) => {
            inner.set_state(State::Closed { error: Some(error) });
            rerender.force_update();
        }
    }
}

/// The effect's destructor, when the component unmounts: closes the client with 1000.
fn stop(inner: &Inner) {
    inner.phase.set(Phase::Unmounted);
    if let Some(client) = inner.client.borrow_mut().take() {
        yew::platform::spawn_local(async move {
            // Closing an already stopped client fails with AlreadyClosed: nothing to do.
            let _ = client.close(StatusCode::NORMAL_CLOSURE, "").await;
        });
    }
}

impl Inner {
    fn set_state(&self, state: State) {
        let mut store = self.store.borrow_mut();
        store.state = state;
        store.state_changes += 1;
        store.version += 1;
    }

    /// Keeps `msg` as the latest message and in the history (at most `keep` messages).
    fn push_message(&self, msg: Message, keep: usize) {
        let mut store = self.store.borrow_mut();
        if keep > 0 {
            if store.history.len() >= keep {
                store.history.pop_front();
            }
            store.history.push_back(msg.clone());
        }
        store.message = Some(msg);
        store.version += 1;
    }

    fn unmounted(&self) -> bool {
        self.phase.get() == Phase::Unmounted
    }
}

/// Where the hook's tasks put what they learn.
struct Sinks {
    inner: Rc<Inner>,
    rerender: UseForceUpdateHandle,
    /// How many messages the history keeps.
    keep: usize,
    on_message: Option<OnMessage>,
}

/// The hook's two tasks: one follows the client's states into the store, one reads messages
/// into the callback, the history and the latest message; each change re-renders the
/// component. Both end when the client stops (or the component unmounted): neither holds the
/// client longer.
fn spawn_tasks(client: Arc<Reconnecting>, mut sinks: Sinks) {
    use futures_util::StreamExt;

    let mut states = client.states();
    let inner = sinks.inner.clone();
    let rerender = sinks.rerender.clone();
    yew::platform::spawn_local(async move {
        while let Some(state) = states.next().await {
            if inner.unmounted() {
                return;
            }
            inner.set_state(state);
            rerender.force_update();
        }
    });
    yew::platform::spawn_local(async move {
        while let Ok(msg) = client.read().await {
            if sinks.inner.unmounted() {
                return;
            }
            // No borrow of the store is held here: the callback may read the handle.
            if let Some(callback) = sinks.on_message.as_mut() {
                callback(&msg);
            }
            sinks.inner.push_message(msg, sinks.keep);
            sinks.rerender.force_update();
        }
    });
}

impl UseWebSocket {
    /// The client's state: connecting (attempt number), open, disconnected (the error, whose
    /// [`close_status`](isosock::close_status) and `close_frame` give the peer's close code
    /// and reason, and the delay before the next attempt), closed for good.
    pub fn state(&self) -> State {
        self.inner.store.borrow().state.clone()
    }

    /// How many states the hook has shown: it changes with each new state, and only then, so
    /// `use_effect_with(ws.state_changes(), ..)` runs once per state the component renders
    /// (several states between two renders show as the latest, as the client's
    /// [`states`](Reconnecting::states) stream does for a slow observer).
    pub fn state_changes(&self) -> u64 {
        self.inner.store.borrow().state_changes
    }

    /// The latest message received, from any connection.
    pub fn message(&self) -> Option<Message> {
        self.inner.store.borrow().message.clone()
    }

    /// The latest messages received, oldest first, at most [`UseWebSocketOptions::history`]
    /// of them (a copy: the store keeps its own).
    pub fn history(&self) -> VecDeque<Message> {
        self.inner.store.borrow().history.clone()
    }

    /// Sends one message on the current connection; waits while the socket's buffer is above
    /// the connection's write high-water mark (backpressure), so awaiting each send keeps a
    /// fast producer's memory bounded.
    ///
    /// # Errors
    ///
    /// As [`Reconnecting::write`]: offline, the message waits in the offline queue when
    /// [`queue_while_offline`](ReconnectOptions::queue_while_offline) allows it, else the
    /// send fails; after the client stopped, the reason it stopped.
    /// [`ErrorKind::ConnectionLost`] before the client started (the effect after the first
    /// render starts it), [`ErrorKind::AlreadyClosed`] after the component unmounted.
    /// Natively (server-side rendering) [`ErrorKind::Unsupported`].
    ///
    /// # Cancel safety
    ///
    /// As [`Reconnecting::write`].
    pub async fn send(&self, msg: impl Into<Message>) -> isosock::Result<()> {
        self.client()?.write(msg).await
    }

    /// Encodes `value` as JSON and sends it as one text message (feature `json`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] if `value` cannot be encoded (nothing is sent), and
    /// every error of [`send`](Self::send).
    ///
    /// # Cancel safety
    ///
    /// As [`send`](Self::send).
    #[cfg(feature = "json")]
    pub async fn send_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> isosock::Result<()> {
        let msg = isosock::json::encode(value)?;
        self.send(msg).await
    }

    /// The latest message decoded as JSON into a `T` (feature `json`); `None` before the
    /// first message.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Decode`] when the latest message is not JSON for `T`.
    #[cfg(feature = "json")]
    pub fn message_json<T: serde::de::DeserializeOwned>(&self) -> Option<isosock::Result<T>> {
        self.inner
            .store
            .borrow()
            .message
            .as_ref()
            .map(isosock::json::decode)
    }

    /// Closes the client for good: the open connection with `code` and `reason`, and no more
    /// attempts. The component unmounting does this too (with 1000).
    ///
    /// # Errors
    ///
    /// As [`Reconnecting::close`], and those of [`send`](Self::send) when there is no client.
    ///
    /// # Cancel safety
    ///
    /// As [`Reconnecting::close`].
    pub async fn close(&self, code: StatusCode, reason: &str) -> isosock::Result<()> {
        self.client()?.close(code, reason).await
    }

    /// Whether a connection is open now.
    pub fn is_open(&self) -> bool {
        matches!(self.inner.store.borrow().state, State::Open)
    }

    /// The state in a few words, for a status line: "connecting (attempt 2)", "open",
    /// "reconnecting in 1.2 s (4001 bye)", "closed (1008 policy)".
    pub fn status_text(&self) -> String {
        self.inner.store.borrow().state.to_string()
    }

    /// The client itself, for what the hook does not cover (`conn()` for the open
    /// connection's subprotocol and extensions, `states()`); `None` natively (server-side
    /// rendering), before the effect after the first render started it, if it could not
    /// start, or after the component unmounted.
    pub fn reconnecting(&self) -> Option<Arc<Reconnecting>> {
        self.inner.client.borrow().clone()
    }

    fn client(&self) -> isosock::Result<Arc<Reconnecting>> {
        if let Some(client) = self.reconnecting() {
            return Ok(client);
        }
        if let State::Closed { error: Some(e) } = &self.inner.store.borrow().state {
            return Err(e.clone());
        }
        Err(match self.inner.phase.get() {
            _ if !cfg!(target_arch = "wasm32") => Error::new(
                ErrorKind::Unsupported,
                "isosock-yew connects only in the browser, not during server-side rendering",
            ),
            Phase::Rendered => Error::new(
                ErrorKind::ConnectionLost,
                "not connected yet: the client starts after the component's first render",
            ),
            Phase::Started | Phase::Unmounted => Error::new(
                ErrorKind::AlreadyClosed,
                "the component that started this WebSocket client was unmounted",
            ),
        })
    }
}
