//! A WebSocket client that sends a few messages to an echo server and prints what came back.
//!
//! Usage: `cargo run --example echo_client -- [URL]` (default `ws://127.0.0.1:9001`).

// Native only: `cargo test --target wasm32-unknown-unknown` builds the examples too.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)] // unused where the tests include this file as a module
fn main() -> Result<(), Box<dyn std::error::Error>> {
    native::run()
}

#[cfg(not(target_arch = "wasm32"))]
#[allow(unused_imports)]
pub use native::*;

#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)] // the native tests include this file as a module and use parts of it
mod native {
    use std::time::Duration;

    use isosock::{dial, DialOptions, Message, StatusCode};

    /// The example's entry point.
    #[tokio::main]
    pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
        let url = std::env::args()
            .nth(1)
            .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
        let opts = DialOptions::new()
            .subprotocols(["echo.v1"])
            .timeout(Duration::from_secs(10));
        let (conn, resp) = dial(&url, &opts).await?;
        println!("connected to {url} (subprotocol: {:?})", resp.subprotocol());

        let outgoing = [
            Message::text("hello, isosock"),
            Message::binary(vec![0u8, 1, 2, 3, 254, 255]),
            Message::text("ünïcödé ✓"),
        ];
        for msg in outgoing {
            println!("sent:     {}", describe(&msg));
            conn.write(msg.clone()).await?;
            let reply = conn.read().await?;
            println!("received: {}", describe(&reply));
            if reply != msg {
                return Err(format!("echo mismatch: sent {msg:?}, got {reply:?}").into());
            }
        }
        conn.close(StatusCode::NORMAL_CLOSURE, "bye").await?;
        println!("closed with 1000 \"bye\"; the server answered the close handshake");
        Ok(())
    }

    fn describe(msg: &Message) -> String {
        match msg {
            Message::Text(t) => format!("text   {t:?}"),
            Message::Binary(b) => format!("binary {:02x?}", &b[..]),
        }
    }
}
