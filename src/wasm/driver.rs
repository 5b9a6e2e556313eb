//! The driver task: the only place that touches the browser's `WebSocket`, its event
//! handlers and timers. See the module docs of `wasm` for the design.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::conn::Shared;
use crate::error::{Error, ErrorKind, Result};
use crate::message::Message;

/// What an opened socket reports: the subprotocol and the extensions the server selected.
pub(super) type Opened = (Option<String>, String);

/// How often a write waiting for `bufferedAmount` to fall re-checks it. The browser has no
/// "drain" event, so polling is the only way.
pub(super) const DRAIN_POLL: Duration = Duration::from_millis(5);

/// How long a dial waits for the `close` event that should follow an `error` event before
/// the socket opened. Chromium and Firefox fire both at once; WebKitGTK (2.50) and Node.js
/// 20's WebSocket (undici) fire only `error` for a refused connection and leave the socket
/// CONNECTING (WebKit still had fired no `close` 30 s later), so without this bound such a
/// dial would hang until its timeout.
const ERROR_GRACE: Duration = Duration::from_millis(500);

thread_local! {
    /// The open sockets of this thread with their connection ids, for the handle's direct
    /// sends ([`send_now`]). A `Socket` registers itself when created and leaves on drop. A
    /// page holds a few sockets, so a list (less code in the .wasm than a map) is enough.
    static SOCKETS: RefCell<Vec<(u64, WebSocket)>> = const { RefCell::new(Vec::new()) };
}

/// Sends `msg` on connection `id` right away, from the writer's own task, if this thread owns
/// the socket, it is open, and `bufferedAmount` is at or below `high_water_mark`. `Ok(false)`
/// means the caller must go through the driver instead (which waits for the buffer to drain).
/// The caller makes sure no earlier write is still queued in the driver.
pub(super) fn send_now(id: u64, msg: &Message, high_water_mark: usize) -> Result<bool> {
    let found = SOCKETS.with(|s| {
        let list = s.borrow();
        list.iter()
            .find(|(i, _)| *i == id)
            .map(|(_, ws)| ws.clone())
    });
    let Some(ws) = found else {
        return Ok(false);
    };
    if ws.ready_state() != WebSocket::OPEN {
        return Ok(false);
    }
    let buffered = usize::try_from(ws.buffered_amount()).unwrap_or(usize::MAX);
    if buffered > high_water_mark {
        return Ok(false);
    }
    send_on(&ws, msg).map(|()| true)
}

#[wasm_bindgen]
extern "C" {
    // The global timer functions exist in windows and workers alike.
    #[wasm_bindgen(js_name = setTimeout, catch)]
    pub(super) fn set_timeout(
        handler: &js_sys::Function,
        ms: i32,
    ) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = clearTimeout)]
    pub(super) fn clear_timeout(handle: &JsValue);
}

/// What the handle asks of the driver.
pub(super) enum Command {
    /// Send one whole message once `bufferedAmount` allows; reply when the browser took it.
    Send {
        msg: Message,
        done: oneshot::Sender<Result<()>>,
    },
    /// Close with a browser-legal code; reply when the `close` event arrived (or timed out).
    Close {
        code: u16,
        reason: String,
        done: oneshot::Sender<Result<()>>,
    },
    /// This side failed the connection (already recorded in `Shared`): close with 1000 and
    /// `reason`, then wait for the `close` event.
    Fail { reason: &'static str },
    /// Close now and stop (`close_now`).
    Abort,
}

/// What the browser told the driver.
enum Event {
    Open,
    Error,
    /// Message data that was neither a string nor an `ArrayBuffer`. (Data messages go
    /// straight from the handler into the inbound queue.)
    Undecodable,
    /// The inbound queue failed the connection (data after `close_read`, a reader too slow):
    /// close with 1000 and this reason.
    QueueFailed(&'static str),
    Close {
        code: u16,
        reason: String,
        clean: bool,
    },
    Timer(TimerKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    Dial,
    /// `ERROR_GRACE` after an `error` event during the dial.
    ErrorGrace,
    Drain,
    Close,
}

/// What `dial` asks for.
pub(super) struct Dial {
    pub(super) url: String,
    /// The URL for messages, without userinfo or query (they may hold credentials).
    pub(super) shown: String,
    pub(super) protocols: Vec<String>,
    pub(super) timeout: Duration,
}

/// Starts the driver of one connection on the page's event loop.
pub(super) fn spawn(
    dial: Dial,
    shared: Arc<Shared>,
    cmds: mpsc::UnboundedReceiver<Command>,
    opened: oneshot::Sender<Result<Opened>>,
) {
    wasm_bindgen_futures::spawn_local(async move {
        run(dial, &shared, cmds, opened).await;
        shared.finish("the connection is closed");
    });
}

async fn run(
    dial: Dial,
    shared: &Arc<Shared>,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    mut opened: oneshot::Sender<Result<Opened>>,
) {
    let (tx, mut events) = mpsc::unbounded();
    let socket = match Socket::open(&dial.url, &dial.shown, &dial.protocols, &tx, shared) {
        Ok(s) => s,
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    let dial_timer = Timer::start(dial.timeout, TimerKind::Dial, &tx);
    let mut saw_error = false;
    let mut _error_grace = None;
    loop {
        let event = poll_fn(|cx| {
            if opened.poll_canceled(cx).is_ready() {
                // The dial future was dropped.
                return Poll::Ready(None);
            }
            events.poll_next_unpin(cx)
        })
        .await;
        match event {
            // Dropping `socket` closes it and releases its closures.
            None => return,
            Some(Event::Open) => break,
            Some(Event::Error) => {
                saw_error = true;
                _error_grace = Timer::start(ERROR_GRACE, TimerKind::ErrorGrace, &tx);
            }
            Some(Event::Timer(TimerKind::ErrorGrace)) => {
                let _ = opened.send(Err(Error::new(
                    ErrorKind::Connect,
                    format!(
                        "could not open a WebSocket to {} (an error event, and no close event \
                         within {ERROR_GRACE:?}, so no close code: WebKit and Node.js 20 give \
                         none; JavaScript runtimes do not tell scripts why: unreachable, \
                         refused, TLS or a refused upgrade)",
                        dial.shown
                    ),
                )));
                return;
            }
            Some(Event::Close { code, .. }) => {
                let after = if saw_error {
                    " after an error event"
                } else {
                    ""
                };
                let _ = opened.send(Err(Error::new(
                    ErrorKind::Connect,
                    format!(
                        "the browser could not open a WebSocket to {} (closed with code \
                         {code}{after}; browsers do not tell scripts why: unreachable, refused, \
                         TLS or a refused upgrade)",
                        dial.shown
                    ),
                )));
                return;
            }
            Some(Event::Timer(TimerKind::Dial)) => {
                let _ = opened.send(Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the WebSocket to {} did not open within {:?}",
                        dial.shown, dial.timeout
                    ),
                )));
                return;
            }
            Some(_) => {}
        }
    }
    drop(dial_timer);
    let protocol = socket.ws.protocol();
    let subprotocol = (!protocol.is_empty()).then_some(protocol);
    if opened
        .send(Ok((subprotocol, socket.ws.extensions())))
        .is_err()
    {
        return;
    }
    let mut driver = Driver {
        socket,
        shared,
        tx,
        outbound: VecDeque::new(),
        drain_timer: None,
        close_timer: None,
        close_done: None,
        closing: false,
    };
    loop {
        let input = poll_fn(|cx| {
            if let Poll::Ready(Some(ev)) = events.poll_next_unpin(cx) {
                return Poll::Ready(Some(Input::Event(ev)));
            }
            cmds.poll_next_unpin(cx).map(|c| c.map(Input::Command))
        })
        .await;
        let go_on = match input {
            Some(Input::Event(ev)) => driver.on_event(ev),
            Some(Input::Command(cmd)) => driver.on_command(cmd),
            // The `Conn` was dropped.
            None => driver.abort(),
        };
        if !go_on {
            return;
        }
    }
}

enum Input {
    Event(Event),
    Command(Command),
}

/// The driver of an open connection.
struct Driver<'a> {
    socket: Socket,
    shared: &'a Shared,
    tx: mpsc::UnboundedSender<Event>,
    /// Messages waiting for `bufferedAmount` to fall, with their writers' replies. They all
    /// come from one write call (or batch, or `Writer`): a write hands a message over only
    /// once this is empty (`Shared::poll_driver_idle`), and each message taken out of it
    /// (sent or failed) goes through `Shared::send_settled`, which wakes that write.
    outbound: VecDeque<(Message, oneshot::Sender<Result<()>>)>,
    drain_timer: Option<Timer>,
    close_timer: Option<Timer>,
    /// The reply to `close`, once it was called.
    close_done: Option<oneshot::Sender<Result<()>>>,
    /// The close handshake has started (by `close` or a failure).
    closing: bool,
}

impl Driver<'_> {
    /// Handles one event; `false` ends the driver.
    fn on_event(&mut self, ev: Event) -> bool {
        match ev {
            Event::QueueFailed(reason) => self.start_close(1000, reason),
            Event::Undecodable => {
                self.shared.fail(Error::new(
                    ErrorKind::Protocol,
                    "the browser delivered a message that is neither text nor an ArrayBuffer; \
                     closed with 1000 \"unsupported data\"",
                ));
                self.start_close(1000, "unsupported data");
            }
            Event::Close {
                code,
                reason,
                clean,
            } => {
                self.shared.on_close(code, reason, clean);
                self.fail_outbound();
                if let Some(done) = self.close_done.take() {
                    let _ = done.send(self.shared.close_result());
                }
                return false;
            }
            Event::Timer(TimerKind::Drain) => {
                self.drain_timer = None;
                self.flush(false);
            }
            Event::Timer(TimerKind::Close) => {
                let timeout = self.shared.settings.close_timeout;
                self.shared.finish("the connection was closed by this side");
                self.fail_outbound();
                if let Some(done) = self.close_done.take() {
                    let _ = done.send(Err(Error::new(
                        ErrorKind::Timeout,
                        format!("the peer did not answer the close frame within {timeout:?}"),
                    )));
                }
                return false;
            }
            Event::Open
            | Event::Error
            | Event::Timer(TimerKind::Dial)
            | Event::Timer(TimerKind::ErrorGrace) => {}
        }
        true
    }

    /// Handles one command; `false` ends the driver.
    fn on_command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Send { msg, done } => {
                if self.closing {
                    self.shared.send_settled();
                    let _ = done.send(Err(self.shared.write_error()));
                } else {
                    self.outbound.push_back((msg, done));
                    self.flush(false);
                }
            }
            Command::Close { code, reason, done } => {
                if self.closing {
                    // A failure already started closing; report it when the socket closes.
                    self.close_done.get_or_insert(done);
                } else {
                    // Writes handed over before `close` still go out, ahead of the close frame.
                    self.flush(true);
                    self.close_done = Some(done);
                    self.start_close(code, &reason);
                }
            }
            Command::Fail { reason } => self.start_close(1000, reason),
            Command::Abort => return self.abort(),
        }
        true
    }

    /// Closes the socket and stops; the close handshake finishes in the browser unattended.
    fn abort(&mut self) -> bool {
        self.fail_outbound();
        self.socket.close(1000, "");
        false
    }

    /// Sends a close frame (`code` is already browser-legal) and arms the close timeout.
    fn start_close(&mut self, code: u16, reason: &str) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.fail_outbound();
        self.socket.close(code, reason);
        let timeout = self.shared.settings.close_timeout;
        self.close_timer = Timer::start(timeout, TimerKind::Close, &self.tx);
    }

    /// Hands queued messages to the browser while `bufferedAmount` is at or below the
    /// high-water mark (always, if `ignore_mark`).
    fn flush(&mut self, ignore_mark: bool) {
        while !self.outbound.is_empty() {
            match self.socket.ws.ready_state() {
                WebSocket::OPEN => {}
                // The `close` event is coming and will settle the queued writes.
                WebSocket::CLOSING => return,
                _ => return self.fail_outbound(),
            }
            let buffered = usize::try_from(self.socket.ws.buffered_amount()).unwrap_or(usize::MAX);
            if !ignore_mark && buffered > self.shared.settings.high_water_mark {
                if self.drain_timer.is_none() {
                    self.drain_timer = Timer::start(DRAIN_POLL, TimerKind::Drain, &self.tx);
                }
                // Without a timer nothing would wake us: send rather than hang.
                if self.drain_timer.is_some() {
                    return;
                }
            }
            let Some((msg, done)) = self.outbound.pop_front() else {
                return;
            };
            // Sent before the count drops, so a writer it wakes cannot overtake it.
            let sent = send_on(&self.socket.ws, &msg);
            self.shared.send_settled();
            let _ = done.send(sent);
        }
    }

    /// Fails every write still waiting for the socket.
    fn fail_outbound(&mut self) {
        for (_, done) in self.outbound.drain(..) {
            self.shared.send_settled();
            let _ = done.send(Err(self.shared.write_error()));
        }
        self.drain_timer = None;
    }
}

/// The browser's `WebSocket` and the closures it calls, owned together.
struct Socket {
    ws: WebSocket,
    /// The connection's id in `SOCKETS`.
    id: u64,
    _on_open: Closure<dyn FnMut(web_sys::Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    fn open(
        url: &str,
        shown: &str,
        protocols: &[String],
        events: &mpsc::UnboundedSender<Event>,
        shared: &Arc<Shared>,
    ) -> Result<Self> {
        missing_websocket()?;
        let ws = if protocols.is_empty() {
            WebSocket::new(url)
        } else {
            let list = js_sys::Array::new();
            for p in protocols {
                list.push(&JsValue::from_str(p));
            }
            WebSocket::new_with_str_sequence(url, &list)
        };
        let ws = ws.map_err(|e| {
            let text = js_text(&e);
            // The browser throws a SyntaxError for URLs it will not open.
            let kind = if text.starts_with("SyntaxError") {
                ErrorKind::InvalidUrl
            } else {
                ErrorKind::Connect
            };
            Error::with_source(kind, format!("the browser refused to open {shown}"), text)
        })?;
        ws.set_binary_type(BinaryType::Arraybuffer);

        let tx = events.clone();
        let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
            let _ = tx.unbounded_send(Event::Open);
        });
        let tx = events.clone();
        let queue = shared.clone();
        // Straight into the inbound queue, waking the reader: no hop through the driver task.
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let event = match decode(e.data()) {
                Some(msg) => match queue.push(msg) {
                    Some(reason) => Event::QueueFailed(reason),
                    None => return,
                },
                None => Event::Undecodable,
            };
            let _ = tx.unbounded_send(event);
        });
        // The `error` event carries no detail by spec (it is a plain `Event`, never an
        // `ErrorEvent`); the `close` event that follows says how the connection ended.
        let tx = events.clone();
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
            let _ = tx.unbounded_send(Event::Error);
        });
        let tx = events.clone();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            let _ = tx.unbounded_send(Event::Close {
                code: e.code(),
                reason: e.reason(),
                clean: e.was_clean(),
            });
        });
        ws.set_onopen(Some(on_open.as_js_value().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_js_value().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_js_value().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_js_value().unchecked_ref()));
        SOCKETS.with(|s| s.borrow_mut().push((shared.id, ws.clone())));
        Ok(Socket {
            ws,
            id: shared.id,
            _on_open: on_open,
            _on_message: on_message,
            _on_error: on_error,
            _on_close: on_close,
        })
    }

    /// Starts the browser's close handshake. Never throws: `code` is browser-legal and the
    /// reason was checked, and an exception would only be swallowed anyway.
    fn close(&self, code: u16, reason: &str) {
        if self.ws.close_with_code_and_reason(code, reason).is_err() {
            let _ = self.ws.close();
        }
    }
}

/// Hands one whole message to the browser.
fn send_on(ws: &WebSocket, msg: &Message) -> Result<()> {
    let sent = match msg {
        Message::Text(t) => ws.send_with_str(t),
        Message::Binary(b) => ws.send_with_u8_array(b),
    };
    sent.map_err(|e| {
        Error::with_source(
            ErrorKind::ConnectionLost,
            "the browser refused to send the message",
            js_text(&e),
        )
    })
}

impl Drop for Socket {
    fn drop(&mut self) {
        // `try_with`: during thread teardown the registry may already be gone.
        let _ = SOCKETS.try_with(|s| {
            let mut list = s.borrow_mut();
            if let Some(i) = list.iter().position(|(id, _)| *id == self.id) {
                list.swap_remove(i);
            }
        });
        // Unset the handlers before the closures are dropped (right after this function), so
        // the browser never calls into a freed closure.
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onerror(None);
        self.ws.set_onclose(None);
        match self.ws.ready_state() {
            WebSocket::CONNECTING | WebSocket::OPEN => self.close(1000, ""),
            _ => {}
        }
    }
}

/// Fails with `Unsupported` when this JavaScript environment has no global `WebSocket`
/// (Node.js before 22 runs without one unless started with `--experimental-websocket`), instead
/// of the `ReferenceError` the constructor call would throw.
fn missing_websocket() -> Result<()> {
    let global = js_sys::global();
    if js_sys::Reflect::has(&global, &JsValue::from_str("WebSocket")).unwrap_or(true) {
        return Ok(());
    }
    let node = js_sys::Reflect::get(&global, &JsValue::from_str("process"))
        .and_then(|p| js_sys::Reflect::get(&p, &JsValue::from_str("versions")))
        .and_then(|v| js_sys::Reflect::get(&v, &JsValue::from_str("node")))
        .ok()
        .and_then(|v| v.as_string());
    let message = match node {
        Some(version) => format!(
            "this JavaScript environment has no global WebSocket: Node.js {version} provides one \
             from version 22 on (versions 20 and 21 need `node --experimental-websocket`)"
        ),
        None => "this JavaScript environment has no global WebSocket".to_owned(),
    };
    Err(Error::new(ErrorKind::Unsupported, message))
}

/// Converts a `message` event's data: a string is text, an `ArrayBuffer` binary.
fn decode(data: JsValue) -> Option<Message> {
    if let Some(text) = data.as_string() {
        return Some(Message::Text(text));
    }
    let buf = data.dyn_into::<js_sys::ArrayBuffer>().ok()?;
    Some(Message::Binary(Bytes::from(
        js_sys::Uint8Array::new(&buf).to_vec(),
    )))
}

/// A JavaScript exception as text: `JsValue` is not `Send`, so errors carry its text as their
/// `source`.
fn js_text(v: &JsValue) -> String {
    if let Some(e) = v.dyn_ref::<js_sys::Error>() {
        format!("{}: {}", String::from(e.name()), String::from(e.message()))
    } else if let Some(s) = v.as_string() {
        s
    } else {
        format!("{v:?}")
    }
}

/// A `setTimeout` that posts `kind` to the driver; cleared and released on drop.
struct Timer {
    handle: JsValue,
    _callback: Closure<dyn FnMut()>,
}

impl Timer {
    /// Returns `None` if the timer could not be set (no `setTimeout` in this global scope).
    fn start(
        after: Duration,
        kind: TimerKind,
        events: &mpsc::UnboundedSender<Event>,
    ) -> Option<Self> {
        let tx = events.clone();
        let callback = Closure::<dyn FnMut()>::new(move || {
            let _ = tx.unbounded_send(Event::Timer(kind));
        });
        // Browsers treat delays above i32::MAX ms as 0: clamp instead.
        let ms = i32::try_from(after.as_millis()).unwrap_or(i32::MAX);
        let handle = set_timeout(callback.as_js_value().unchecked_ref(), ms).ok()?;
        Some(Timer {
            handle,
            _callback: callback,
        })
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        clear_timeout(&self.handle);
    }
}
