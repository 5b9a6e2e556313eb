//! A Leptos `use_websocket` hook over isosock's [`Reconnecting`] client.
//!
//! [`use_websocket`] starts one reconnecting client for the component that calls it and gives
//! back [`UseWebSocket`]: signals for the connection's [`State`] (connecting with the attempt's
//! number, open, disconnected with the error, its close code and the delay before the next
//! attempt, closed for good), the latest message and a bounded history, and sends that wait
//! for the socket (backpressure). Everything about reconnecting is isosock's
//! [`ReconnectOptions`]: jittered exponential backoff, final close codes, a hello sent first on
//! every connection ([`ReconnectOptions::on_open`]), the opt-in bounded offline queue, a
//! heartbeat. When the component unmounts, the client is closed (1000) and its tasks end.
//!
//! In the browser the client starts when the hook is called. Natively (server-side rendering)
//! the hook connects nowhere: its state stays [`State::Connecting`] with attempt 0 and sends
//! fail with [`ErrorKind::Unsupported`], so the same component renders on the server and
//! connects once hydrated.
//!
//! # Examples
//!
//! ```no_run
//! use isosock::{DialOptions, ReconnectOptions};
//! use isosock_leptos::{use_websocket, UseWebSocketOptions};
//! use leptos::prelude::*;
//! use leptos::task::spawn_local;
//!
//! #[component]
//! fn Feed() -> impl IntoView {
//!     let ws = use_websocket(
//!         UseWebSocketOptions::new(ReconnectOptions::new("wss://example.com/feed", DialOptions::new()))
//!             .history(50),
//!     );
//!     let send = move |_| spawn_local(async move {
//!         if let Err(e) = ws.send("ping").await {
//!             leptos::logging::warn!("not sent: {e}");
//!         }
//!     });
//!     view! {
//!         <p>{move || ws.status_text()}</p>
//!         <button on:click=send disabled=move || !ws.is_open()>"Send"</button>
//!         <ul>{move || ws.history.get().into_iter().map(|m| view! { <li>{format!("{m:?}")}</li> }).collect_view()}</ul>
//!     }
//! }
//! ```

use std::collections::VecDeque;
use std::sync::Arc;

use isosock::reconnect::State;
use isosock::{Error, ErrorKind, Message, ReconnectOptions, Reconnecting, StatusCode};
use leptos::prelude::*;

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
    /// [`UseWebSocket::message`] holds only the latest message, and effects that track it
    /// run once for several messages that arrive together: an application that must see
    /// every message (a chat log, a stream of updates) handles them here.
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

/// What [`use_websocket`] returns: signals to render from, and the client to send with.
///
/// It is `Copy` (every field is a handle into the component's reactive scope), so event
/// handlers and tasks can each hold one.
#[derive(Debug, Clone, Copy)]
pub struct UseWebSocket {
    /// The client's state: connecting (attempt number), open, disconnected (the error, whose
    /// [`close_status`](isosock::close_status) and `close_frame` give the peer's close code
    /// and reason, and the delay before the next attempt), closed for good.
    pub state: ReadSignal<State>,
    /// The latest message received, from any connection.
    pub message: ReadSignal<Option<Message>>,
    /// The latest messages received, oldest first, at most
    /// [`UseWebSocketOptions::history`] of them.
    pub history: ReadSignal<VecDeque<Message>>,
    client: StoredValue<Option<Arc<Reconnecting>>>,
}

const _: () = {
    const fn assert_handle<T: Copy + Send + Sync + 'static>() {}
    assert_handle::<UseWebSocket>();
};

/// Starts a reconnecting WebSocket client for the calling component.
///
/// The client runs until the component's reactive owner is cleaned up (the component
/// unmounts), then closes with 1000 and its tasks end; or until it stops by itself (a final
/// close code or error, [`max_attempts`](ReconnectOptions::max_attempts)), which
/// [`UseWebSocket::state`] shows as [`State::Closed`]. Options that
/// [`Reconnecting::start`] refuses (a zero connect timeout, a heartbeat with a zero interval)
/// show the same way, as `Closed` with the error.
///
/// Call it once per component instance, as with any hook: each call starts its own client.
pub fn use_websocket(options: impl Into<UseWebSocketOptions>) -> UseWebSocket {
    let UseWebSocketOptions {
        reconnect,
        history,
        on_message,
    } = options.into();
    let (state, set_state) = signal(State::Connecting { attempt: 0 });
    let (message, set_message) = signal(None::<Message>);
    let (history_signal, set_history) = signal(VecDeque::<Message>::new());
    let client = StoredValue::new(None::<Arc<Reconnecting>>);
    let hook = UseWebSocket {
        state,
        message,
        history: history_signal,
        client,
    };
    if !cfg!(target_arch = "wasm32") {
        // Server-side rendering: render, connect nowhere.
        return hook;
    }
    match Reconnecting::start(reconnect) {
        Ok(started) => {
            let started = Arc::new(started);
            client.set_value(Some(started.clone()));
            let sinks = Sinks {
                state: set_state,
                message: set_message,
                history: set_history,
                keep: history,
                on_message,
            };
            spawn_tasks(started, sinks);
        }
        Err(error) => set_state.set(State::Closed { error: Some(error) }),
    }
    on_cleanup(move || {
        if let Some(client) = client.try_update_value(Option::take).flatten() {
            leptos::task::spawn_local(async move {
                // Closing an already stopped client fails with AlreadyClosed: nothing to do.
                let _ = client.close(StatusCode::NORMAL_CLOSURE, "").await;
            });
        }
    });
    hook
}

/// Where the hook's tasks put what they learn.
struct Sinks {
    state: WriteSignal<State>,
    message: WriteSignal<Option<Message>>,
    history: WriteSignal<VecDeque<Message>>,
    /// How many messages the history keeps.
    keep: usize,
    on_message: Option<OnMessage>,
}

/// The hook's two tasks: one follows the client's states into the state signal, one reads
/// messages into the callback, the history and the message signal. Both end when the client
/// stops (or the signals were disposed): neither holds the client longer.
fn spawn_tasks(client: Arc<Reconnecting>, mut sinks: Sinks) {
    use futures_util::StreamExt;

    let mut states = client.states();
    let set_state = sinks.state;
    leptos::task::spawn_local(async move {
        while let Some(state) = states.next().await {
            if set_state.try_set(state).is_some() {
                // The component is gone.
                return;
            }
        }
    });
    leptos::task::spawn_local(async move {
        while let Ok(msg) = client.read().await {
            if let Some(callback) = sinks.on_message.as_mut() {
                callback(&msg);
            }
            if sinks.keep > 0 {
                let keep = sinks.keep;
                let kept = sinks.history.try_update(|history| {
                    if history.len() == keep {
                        history.pop_front();
                    }
                    history.push_back(msg.clone());
                });
                if kept.is_none() {
                    return;
                }
            }
            if sinks.message.try_set(Some(msg)).is_some() {
                return;
            }
        }
    });
}

impl UseWebSocket {
    /// Sends one message on the current connection; waits while the socket's buffer is above
    /// the connection's write high-water mark (backpressure), so awaiting each send keeps a
    /// fast producer's memory bounded.
    ///
    /// # Errors
    ///
    /// As [`Reconnecting::write`]: offline, the message waits in the offline queue when
    /// [`queue_while_offline`](ReconnectOptions::queue_while_offline) allows it, else the
    /// send fails; after the client stopped, the reason it stopped. Natively (server-side
    /// rendering) [`ErrorKind::Unsupported`].
    pub async fn send(&self, msg: impl Into<Message>) -> isosock::Result<()> {
        self.client()?.write(msg).await
    }

    /// Encodes `value` as JSON and sends it as one text message (feature `json`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] if `value` cannot be encoded (nothing is sent), and
    /// every error of [`send`](Self::send).
    #[cfg(feature = "json")]
    pub async fn send_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> isosock::Result<()> {
        let msg = isosock::json::encode(value)?;
        self.send(msg).await
    }

    /// The latest message decoded as JSON into a `T` (feature `json`); `None` before the
    /// first message. Reactive: it tracks [`message`](Self::message).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Decode`] when the latest message is not JSON for `T`.
    #[cfg(feature = "json")]
    pub fn message_json<T: serde::de::DeserializeOwned>(&self) -> Option<isosock::Result<T>> {
        self.message
            .with(|msg| msg.as_ref().map(isosock::json::decode))
    }

    /// Closes the client for good: the open connection with `code` and `reason`, and no more
    /// attempts. The component unmounting does this too (with 1000).
    ///
    /// # Errors
    ///
    /// As [`Reconnecting::close`].
    pub async fn close(&self, code: StatusCode, reason: &str) -> isosock::Result<()> {
        self.client()?.close(code, reason).await
    }

    /// Whether a connection is open now. Reactive: it tracks [`state`](Self::state).
    pub fn is_open(&self) -> bool {
        self.state.with(|s| matches!(s, State::Open))
    }

    /// The state in a few words, for a status line: "connecting (attempt 2)", "open",
    /// "reconnecting in 1.2 s (4001 bye)", "closed (1008 policy)" (isosock's `Display` of
    /// [`State`]). Reactive.
    pub fn status_text(&self) -> String {
        self.state.with(ToString::to_string)
    }

    /// The client itself, for what the hook does not cover (`conn()` for the open
    /// connection's subprotocol and extensions, `states()`); `None` natively (server-side
    /// rendering), if it could not start, or after the component unmounted.
    pub fn reconnecting(&self) -> Option<Arc<Reconnecting>> {
        self.client.try_get_value().flatten()
    }

    fn client(&self) -> isosock::Result<Arc<Reconnecting>> {
        if let Some(client) = self.reconnecting() {
            return Ok(client);
        }
        Err(match self.state.try_get_untracked() {
            Some(State::Closed { error: Some(e) }) => e,
            _ if !cfg!(target_arch = "wasm32") => Error::new(
                ErrorKind::Unsupported,
                "isosock-leptos connects only in the browser, not during server-side rendering",
            ),
            _ => Error::new(
                ErrorKind::AlreadyClosed,
                "the component that started this WebSocket client was unmounted",
            ),
        })
    }
}
