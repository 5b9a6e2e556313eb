//! `examples/axum_chat.rs`, `accept_http` in an axum `Router`, served in-process on loopback:
//! the upgrade, the chat between two clients, refusals as the route's HTTP answers next to a
//! plain route, and the shutdown's 1001.

use std::net::SocketAddr;

use isosock::{dial, Conn, DialOptions, Message, StatusCode};
use isosock_chat_protocol::{ClientMsg, ServerMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::axum_chat::{app, Room};
use crate::conformance::STEP;
use crate::util::bounded;

/// Serves the example's app for `room` with `axum::serve` on a free loopback port.
async fn serve(room: Room) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app(room)).await });
    addr
}

/// Dials the chat at `addr` and says hello as `nick`.
async fn join(addr: SocketAddr, nick: &str) -> Conn {
    let (conn, resp) = dial(&format!("ws://{addr}/ws"), &DialOptions::new())
        .await
        .expect("the upgrade through axum");
    assert_eq!(resp.status(), 101);
    let hello = serde_json::to_string(&ClientMsg::Hello { nick: nick.into() }).expect("encode");
    conn.write(hello).await.expect("hello");
    conn
}

/// The next message from the server, decoded.
async fn next(conn: &Conn) -> ServerMsg {
    let msg = tokio::time::timeout(STEP, conn.read())
        .await
        .expect("a message within the step limit")
        .expect("a message");
    serde_json::from_str(msg.as_text().expect("a text message")).expect("a ServerMsg")
}

fn system(text: &str, online: u32) -> ServerMsg {
    ServerMsg::System {
        text: text.into(),
        online,
    }
}

/// Sends `request` raw over TCP to `addr` and reads the answer to its end (the request says
/// `Connection: close`); returns the status and the whole answer.
async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(STEP, tcp.read_to_end(&mut answer))
        .await
        .expect("an answer within the step limit")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    (crate::conformance::status(&answer), answer)
}

#[tokio::test]
async fn axum_route_upgrades_and_relays_the_chat() {
    bounded(async {
        let addr = serve(Room::default()).await;
        let ann = join(addr, "ann").await;
        // The route's `AcceptOptions` reached the handshake: compression was agreed.
        assert!(
            ann.extensions().contains("permessage-deflate"),
            "{:?}",
            ann.extensions()
        );
        assert_eq!(next(&ann).await, system("ann joined", 1));
        let bob = join(addr, " bob ").await;
        assert_eq!(next(&ann).await, system("bob joined", 2));
        assert_eq!(next(&bob).await, system("bob joined", 2));

        let say = ClientMsg::Say {
            text: "hi from axum".into(),
        };
        ann.write(serde_json::to_string(&say).expect("encode"))
            .await
            .expect("say");
        let said = ServerMsg::Msg {
            nick: "ann".into(),
            text: "hi from axum".into(),
        };
        assert_eq!(next(&ann).await, said);
        assert_eq!(next(&bob).await, said);

        bob.close(StatusCode::NORMAL_CLOSURE, "bye")
            .await
            .expect("close");
        assert_eq!(next(&ann).await, system("bob left", 1));
    })
    .await;
}

#[tokio::test]
async fn axum_route_closes_a_client_without_a_hello_with_1008() {
    bounded(async {
        let addr = serve(Room::default()).await;
        let (conn, _) = dial(&format!("ws://{addr}/ws"), &DialOptions::new())
            .await
            .expect("dial");
        conn.write(Message::binary(vec![1, 2, 3]))
            .await
            .expect("write");
        let err = tokio::time::timeout(STEP, conn.read())
            .await
            .expect("an answer within the step limit")
            .expect_err("closed");
        assert_eq!(
            isosock::close_status(&err),
            Some(StatusCode::POLICY_VIOLATION)
        );
    })
    .await;
}

#[tokio::test]
async fn axum_route_refuses_non_websocket_requests_with_their_status() {
    bounded(async {
        let addr = serve(Room::default()).await;

        // A plain GET to the WebSocket route: accept_http's refusal, status and reason.
        let (status, answer) = raw_http(
            addr,
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status, 426, "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("upgrade: websocket"),
            "{answer}"
        );

        // A cross-origin page: 403 from the same-origin check, as `dial` sees it.
        let opts = DialOptions::new().header("Origin", "https://evil.example");
        let err = dial(&format!("ws://{addr}/ws"), &opts)
            .await
            .expect_err("cross-origin");
        assert_eq!(err.http_status(), Some(403));

        // The plain route next to it still serves HTTP.
        let (status, answer) = raw_http(
            addr,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer.contains("isosock's chat on axum"), "{answer}");
    })
    .await;
}

#[tokio::test]
async fn axum_room_close_all_sends_going_away() {
    bounded(async {
        let room = Room::default();
        let addr = serve(room.clone()).await;
        let ann = join(addr, "ann").await;
        assert_eq!(next(&ann).await, system("ann joined", 1));

        // Reading while the room closes: the close handshake needs the client's answer.
        let (_, read) = tokio::join!(room.close_all(STEP), tokio::time::timeout(STEP, ann.read()));
        let err = read
            .expect("an answer within the step limit")
            .expect_err("closed");
        assert_eq!(isosock::close_status(&err), Some(StatusCode::GOING_AWAY));
    })
    .await;
}
