//! The page's elements (found by id in `www/index.html`) and everything that changes them.
//!
//! Text from the network only ever reaches the page through `textContent`, never as HTML.

use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlButtonElement, HtmlElement, HtmlInputElement};

/// Most entries the message list keeps; older ones are removed so a long session stays light.
const MAX_ENTRIES: u32 = 500;

/// The connection's state, shown as `data-state` on `#status` (what the end-to-end test waits
/// on) and styled by `style.css`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Ready, not joined yet.
    Idle,
    /// Dialing the server.
    Connecting,
    /// Connected and joined; messages can be sent.
    Open,
    /// Disconnected, waiting for the next attempt.
    Reconnecting,
    /// Given up: something only a reload can fix.
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

/// The page's elements.
#[derive(Debug)]
pub(crate) struct Ui {
    document: Document,
    status: HtmlElement,
    status_text: HtmlElement,
    status_detail: HtmlElement,
    online: HtmlElement,
    me: HtmlElement,
    pub(crate) join: HtmlElement,
    pub(crate) nick: HtmlInputElement,
    join_button: HtmlButtonElement,
    chat: HtmlElement,
    messages: HtmlElement,
    pub(crate) compose: HtmlElement,
    pub(crate) text: HtmlInputElement,
    send: HtmlButtonElement,
}

/// Finds the element `id` as a `T`, or says which one is missing or of the wrong kind.
fn by_id<T: JsCast>(document: &Document, id: &str) -> Result<T, String> {
    document
        .get_element_by_id(id)
        .ok_or_else(|| format!("the page has no element #{id}"))?
        .dyn_into::<T>()
        .map_err(|_| format!("#{id} is not the kind of element the client expects"))
}

impl Ui {
    /// Finds every element the client uses.
    ///
    /// # Errors
    ///
    /// Names the first element that is missing: the page and the client disagree.
    pub(crate) fn find() -> Result<Ui, String> {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .ok_or("no window.document: the client must run in a page")?;
        Ok(Ui {
            status: by_id(&document, "status")?,
            status_text: by_id(&document, "status-text")?,
            status_detail: by_id(&document, "status-detail")?,
            online: by_id(&document, "online")?,
            me: by_id(&document, "me")?,
            join: by_id(&document, "join")?,
            nick: by_id(&document, "nick")?,
            join_button: by_id(&document, "join-button")?,
            chat: by_id(&document, "chat")?,
            messages: by_id(&document, "messages")?,
            compose: by_id(&document, "compose")?,
            text: by_id(&document, "text")?,
            send: by_id(&document, "send")?,
            document,
        })
    }

    /// Shows the connection state, a short text and a detail (close code and reason, or
    /// why an attempt failed; empty for none). Sending is possible only while `Open`; the
    /// extensions shown by [`Ui::set_extensions`] are removed in every other state.
    pub(crate) fn set_status(&self, state: State, text: &str, detail: &str) {
        // `set_attribute` fails only for invalid attribute names; this one is constant.
        let _ = self.status.set_attribute("data-state", state.as_str());
        if state != State::Open {
            let _ = self.status.remove_attribute("data-extensions");
        }
        self.status_text.set_text_content(Some(text));
        self.status_detail.set_text_content(Some(detail));
        self.status_detail.set_hidden(detail.is_empty());
        self.send.set_disabled(state != State::Open);
        if state == State::Idle {
            self.join_button.set_disabled(false);
        }
    }

    /// Records the open connection's extensions (what the browser and the server agreed,
    /// `"permessage-deflate; ..."` when they compress) as `data-extensions` on `#status`, for
    /// the curious and for the end-to-end test; `set_status` removes it once the connection
    /// is no longer open.
    pub(crate) fn set_extensions(&self, extensions: &str) {
        let _ = self.status.set_attribute("data-extensions", extensions);
    }

    /// Shows how many people are in the room; `None` hides the count (not connected).
    pub(crate) fn set_online(&self, online: Option<u32>) {
        match online {
            Some(n) => {
                let _ = self.online.set_attribute("data-count", &n.to_string());
                self.online.set_text_content(Some(&format!("{n} online")));
                self.online.set_hidden(false);
            }
            None => {
                let _ = self.online.remove_attribute("data-count");
                self.online.set_hidden(true);
            }
        }
    }

    /// Swaps the join form for the chat, under `nick`.
    pub(crate) fn enter_chat(&self, nick: &str) {
        self.me.set_text_content(Some(nick));
        self.me.set_hidden(false);
        self.join.set_hidden(true);
        self.chat.set_hidden(false);
        let _ = self.text.focus();
    }

    /// Adds a chat line; `mine` marks this page's own messages.
    pub(crate) fn add_message(&self, nick: &str, text: &str, mine: bool) {
        let Some(li) = self.entry(if mine { "entry msg mine" } else { "entry msg" }) else {
            return;
        };
        self.append_span(&li, "nick", nick);
        self.append_span(&li, "text", text);
        self.append_time(&li);
        self.push(&li);
    }

    /// Adds a line from the server about the room (joins and leaves).
    pub(crate) fn add_system(&self, text: &str) {
        self.add_line("entry system", text);
    }

    /// Adds a line from this client about itself (connection lost, message not sent).
    pub(crate) fn add_notice(&self, text: &str) {
        self.add_line("entry notice", text);
    }

    fn add_line(&self, class: &str, text: &str) {
        let Some(li) = self.entry(class) else {
            return;
        };
        self.append_span(&li, "text", text);
        self.append_time(&li);
        self.push(&li);
    }

    fn entry(&self, class: &str) -> Option<Element> {
        let li = self.document.create_element("li").ok()?;
        li.set_class_name(class);
        Some(li)
    }

    fn append_span(&self, parent: &Element, class: &str, text: &str) {
        if let Ok(span) = self.document.create_element("span") {
            span.set_class_name(class);
            span.set_text_content(Some(text));
            let _ = parent.append_child(&span);
        }
    }

    fn append_time(&self, parent: &Element) {
        if let Ok(time) = self.document.create_element("time") {
            let now = js_sys::Date::new_0();
            time.set_text_content(Some(&format!(
                "{:02}:{:02}",
                now.get_hours(),
                now.get_minutes()
            )));
            let _ = parent.append_child(&time);
        }
    }

    /// Appends an entry, drops the oldest beyond `MAX_ENTRIES`, and keeps the list scrolled
    /// to the end unless the reader scrolled up.
    fn push(&self, li: &Element) {
        let list = &self.messages;
        let at_end = list.scroll_top() + list.client_height() + 40 >= list.scroll_height();
        let _ = list.append_child(li);
        while list.child_element_count() > MAX_ENTRIES {
            match list.first_element_child() {
                Some(old) => old.remove(),
                None => break,
            }
        }
        if at_end {
            list.set_scroll_top(list.scroll_height());
        }
    }
}

/// Shows a start-up failure in `#status`, if the page has one (the `Ui` could not be built).
pub(crate) fn show_fatal(msg: &str) {
    let status = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("status"));
    if let Some(status) = status {
        let _ = status.set_attribute("data-state", State::Failed.as_str());
        status.set_text_content(Some(&format!("cannot start: {msg}")));
    }
}
