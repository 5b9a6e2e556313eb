//! The hook mounted in a real page, against the native echo server (examples/echo_server.rs,
//! whose URL scripts/test-wasm.sh bakes in): state, messages, bounded history, JSON,
//! final close codes, and cleanup when the component unmounts.
#![cfg(target_arch = "wasm32")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use isosock::reconnect::State;
use isosock::{close_status, DialOptions, ErrorKind, Message, ReconnectOptions, StatusCode};
use isosock_leptos::{use_websocket, UseWebSocket, UseWebSocketOptions};
use leptos::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::wasm_bindgen::JsCast;

wasm_bindgen_test_configure!(run_in_browser);

/// The longest any condition below may take to come true.
const WAIT: Duration = Duration::from_secs(10);

fn echo_url() -> &'static str {
    match option_env!("ISOSOCK_ECHO_URL") {
        Some(url) => url,
        None => panic!("ISOSOCK_ECHO_URL was not set at compile time: run scripts/test-wasm.sh"),
    }
}

/// A URL whose `!count` counts only this test's connections.
fn unique_url(name: &str) -> String {
    let salt = (js_sys_random() * 1e12) as u64;
    format!("{}?id={name}-{salt:x}", echo_url())
}

fn js_sys_random() -> f64 {
    web_sys::js_sys::Math::random()
}

/// Mounts a component that calls the hook with `options`; returns the hook's handle and the
/// mount (dropping it unmounts the component).
fn mount(options: UseWebSocketOptions) -> (UseWebSocket, impl Drop) {
    let slot: Rc<RefCell<Option<UseWebSocket>>> = Rc::default();
    let options = RefCell::new(Some(options));
    let out = slot.clone();
    let document = leptos::prelude::document();
    let parent = document.create_element("div").expect("a div");
    document
        .body()
        .expect("a body")
        .append_child(&parent)
        .expect("append");
    let handle = leptos::mount::mount_to(parent.unchecked_into(), move || {
        let ws = use_websocket(options.borrow_mut().take().expect("mounted once"));
        *out.borrow_mut() = Some(ws);
        view! { <p>{move || ws.status_text()}</p> }
    });
    let ws = slot.borrow_mut().take().expect("the component ran");
    (ws, handle)
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let mut waited = Duration::ZERO;
    while !cond() {
        assert!(waited < WAIT, "{what}: not within {WAIT:?}");
        gloo_timers::future::TimeoutFuture::new(10).await;
        waited += Duration::from_millis(10);
    }
}

fn options(url: &str) -> ReconnectOptions {
    ReconnectOptions::new(url, DialOptions::new())
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
}

#[wasm_bindgen_test]
async fn the_hook_shows_state_messages_and_a_bounded_history() {
    let seen: Rc<RefCell<Vec<Message>>> = Rc::default();
    let log = seen.clone();
    let (ws, _mounted) = mount(
        UseWebSocketOptions::new(options(echo_url()))
            .history(3)
            .on_message(move |m| log.borrow_mut().push(m.clone())),
    );
    wait_until("open", || ws.is_open()).await;
    for i in 1..=5 {
        ws.send(format!("m{i}")).await.expect("send");
    }
    wait_until("the fifth echo", || {
        ws.message.get_untracked() == Some(Message::text("m5"))
    })
    .await;
    let kept: Vec<Message> = ws.history.get_untracked().into_iter().collect();
    assert_eq!(
        kept,
        vec![
            Message::text("m3"),
            Message::text("m4"),
            Message::text("m5")
        ]
    );
    // The callback saw every message, in order, however the signal updates were batched.
    let all: Vec<Message> = (1..=5).map(|i| Message::text(format!("m{i}"))).collect();
    assert_eq!(*seen.borrow(), all);
}

#[wasm_bindgen_test]
async fn the_hook_reconnects_once_per_drop() {
    let url = unique_url("drop");
    let (ws, _mounted) = mount(options(&url).into());
    wait_until("open", || ws.is_open()).await;
    ws.send("!drop").await.expect("send");
    wait_until("not open", || !ws.is_open()).await;
    wait_until("open again", || ws.is_open()).await;
    ws.send("!count").await.expect("send");
    wait_until("the count", || ws.message.get_untracked().is_some()).await;
    assert_eq!(ws.message.get_untracked(), Some(Message::text("2")));
}

#[wasm_bindgen_test]
async fn a_final_close_code_shows_as_closed_with_its_code_and_reason() {
    let (ws, _mounted) = mount(
        options(echo_url())
            .final_codes([StatusCode::from(4001)])
            .into(),
    );
    wait_until("open", || ws.is_open()).await;
    ws.send("!close 4001 go away").await.expect("send");
    wait_until("closed", || {
        matches!(ws.state.get_untracked(), State::Closed { .. })
    })
    .await;
    let State::Closed { error: Some(error) } = ws.state.get_untracked() else {
        panic!("closed without the final error");
    };
    assert_eq!(close_status(&error), Some(StatusCode::from(4001)));
    assert_eq!(ws.status_text(), "closed (4001 go away)");
    let err = ws.send("late").await.expect_err("the client stopped");
    assert_eq!(close_status(&err), Some(StatusCode::from(4001)), "{err:?}");
}

#[wasm_bindgen_test]
async fn unmounting_closes_the_client() {
    let (ws, mounted) = mount(options(echo_url()).into());
    wait_until("open", || ws.is_open()).await;
    let client = ws.reconnecting().expect("a client");
    drop(mounted);
    wait_until("the client closed", || {
        matches!(client.state(), State::Closed { error: None })
    })
    .await;
    let err = client.write("late").await.expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::AlreadyClosed, "{err:?}");
    assert!(ws.reconnecting().is_none());
}

#[wasm_bindgen_test]
async fn a_start_the_client_refuses_shows_as_closed() {
    let (ws, _mounted) = mount(options(echo_url()).connect_timeout(Duration::ZERO).into());
    let State::Closed { error: Some(error) } = ws.state.get_untracked() else {
        panic!("started with a zero connect timeout");
    };
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    let err = ws.send("x").await.expect_err("never started");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[cfg(feature = "json")]
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Note {
    id: u32,
    text: String,
}

#[cfg(feature = "json")]
#[wasm_bindgen_test]
async fn json_round_trip() {
    let (ws, _mounted) = mount(options(echo_url()).into());
    wait_until("open", || ws.is_open()).await;
    let note = Note {
        id: 7,
        text: "seven".into(),
    };
    ws.send_json(&note).await.expect("send");
    wait_until("the echo", || ws.message.get_untracked().is_some()).await;
    let got: Note = ws
        .message_json()
        .expect("a message")
        .expect("JSON for a Note");
    assert_eq!(got, note);
    ws.send("not json").await.expect("send");
    wait_until("the second echo", || {
        ws.message.get_untracked() == Some(Message::text("not json"))
    })
    .await;
    let err = ws
        .message_json::<Note>()
        .expect("a message")
        .expect_err("not JSON");
    assert_eq!(err.kind(), ErrorKind::Decode);
}
