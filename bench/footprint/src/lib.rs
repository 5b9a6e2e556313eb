//! The smallest useful isosock browser client, for measuring what isosock adds to a wasm
//! binary: dial, write one text message, read its echo, close. `scripts/bench-footprint.sh`
//! builds it like a shipped app (the `wasm-release` profile, then `wasm-opt -Oz`) and reports
//! its size.
#![cfg(target_arch = "wasm32")]

use isosock::{dial, DialOptions, Message, StatusCode};
use wasm_bindgen::prelude::{wasm_bindgen, JsError};

/// Dials `url`, sends `text`, and returns the echo's text.
///
/// # Errors
///
/// Throws an `Error` with isosock's message if any step fails or the echo is not text.
#[wasm_bindgen(js_name = echoOnce)]
pub async fn echo_once(url: String, text: String) -> Result<String, JsError> {
    let (conn, _) = dial(&url, &DialOptions::new()).await?;
    conn.write(text).await?;
    let echo = conn.read().await?;
    conn.close(StatusCode::NORMAL_CLOSURE, "").await?;
    match echo {
        Message::Text(t) => Ok(t),
        Message::Binary(_) => Err(JsError::new("the echo was binary")),
    }
}
