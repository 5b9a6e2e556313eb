//! The Leptos chat's server (feature `ssr`): renders the page from the same components the
//! browser hydrates, serves the page's wasm and stylesheet, and speaks the chat on `/ws`
//! through the route of `examples/axum_chat.rs` (isosock's `accept_http` in axum), all on one
//! port.
//!
//! Usage: `isosock-leptos-chat [PORT] [SITE_DIR]` (default port 8080, 0 picks a free one;
//! default directory `target/examples-web/leptos`, which `scripts/build-examples.sh leptos`
//! fills with `style.css` and `pkg/`). The first line on stdout is
//! `leptos chat server on http://127.0.0.1:PORT/`. Ctrl-C closes every chat connection with
//! 1001 (going away).
//!
//! Routes: `GET /` the rendered page; `GET /style.css` and `GET /pkg/<file>` files from
//! `SITE_DIR` (names of letters, digits, `.`, `_` and `-` only; anything else is 404);
//! `GET /ws` the chat, with that example's limits.

#[cfg(not(feature = "ssr"))]
fn main() {
    eprintln!(
        "isosock-leptos-chat: build the server with `--features ssr` and the page with \
         `--features hydrate` (scripts/build-examples.sh leptos does both)"
    );
    std::process::exit(2);
}

#[cfg(feature = "ssr")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    server::run()
}

/// The library's axum chat example, whose `/ws` route (and room) this server mounts as it is.
#[cfg(feature = "ssr")]
#[allow(dead_code, unreachable_pub)] // its `main`, `run` and plain page are not used here
#[path = "../../axum_chat.rs"]
mod axum_chat;

#[cfg(feature = "ssr")]
mod server {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::extract::{Path as UrlPath, State};
    use axum::http::{header, StatusCode};
    use axum::response::{Html, IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;
    use isosock_leptos_chat::shell;
    use leptos::prelude::*;
    use tokio::net::TcpListener;

    use crate::axum_chat::{self, Room};

    /// The name wasm-bindgen gives the page's files (`--out-name` in build-examples.sh).
    const OUTPUT_NAME: &str = "leptos_chat";

    /// What every request handler shares.
    #[derive(Debug, Clone)]
    struct Site {
        /// `style.css` and `pkg/`.
        dir: Arc<Path>,
        /// Where the hydration script finds the page's wasm.
        options: LeptosOptions,
    }

    /// The server's entry point.
    #[tokio::main]
    pub(crate) async fn run() -> Result<(), Box<dyn std::error::Error>> {
        let mut args = std::env::args().skip(1);
        let port: u16 = match args.next() {
            Some(p) => p.parse().map_err(|_| format!("not a port number: {p:?}"))?,
            None => 8080,
        };
        let dir = PathBuf::from(
            args.next()
                .unwrap_or_else(|| "target/examples-web/leptos".into()),
        );
        if !dir
            .join("pkg")
            .join(format!("{OUTPUT_NAME}_bg.wasm"))
            .is_file()
        {
            return Err(format!(
                "{} has no pkg/{OUTPUT_NAME}_bg.wasm: run scripts/build-examples.sh leptos",
                dir.display()
            )
            .into());
        }
        let options = LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_pkg_dir("pkg")
            .build();
        let site = Site {
            dir: dir.into(),
            options,
        };
        let room = Room::default();
        let app = Router::new()
            .route("/", get(page))
            .route(
                "/style.css",
                get(|site: State<Site>| file(site, "style.css")),
            )
            .route(
                "/pkg/{name}",
                get(|site: State<Site>, UrlPath(name): UrlPath<String>| pkg(site, name)),
            )
            .with_state(site)
            .merge(axum_chat::chat_routes(room.clone()));

        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("leptos chat server on http://{}/", listener.local_addr()?);
        tokio::select! {
            served = axum::serve(listener, app) => served?,
            _ = tokio::signal::ctrl_c() => {
                println!("shutting down: closing the chat's connections with 1001");
                room.close_all(Duration::from_secs(5)).await;
            }
        }
        Ok(())
    }

    /// `GET /`: the page, rendered from the components the browser then hydrates.
    async fn page(State(site): State<Site>) -> Html<String> {
        // A root owner per render: the page's signals live in it and go with it.
        let owner = Owner::new();
        let html = owner.with(|| shell(site.options.clone()).to_html());
        Html(html)
    }

    /// `GET /pkg/<name>`: the page's script and wasm.
    async fn pkg(site: State<Site>, name: String) -> Response {
        file(site, &format!("pkg/{name}")).await
    }

    /// A file under the site directory, by a relative path whose every part is a plain name.
    async fn file(State(site): State<Site>, path: &str) -> Response {
        let plain = |part: &str| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if !path.split('/').all(plain) {
            return StatusCode::NOT_FOUND.into_response();
        }
        let content_type = match path.rsplit_once('.').map(|(_, ext)| ext) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("wasm") => "application/wasm",
            Some("css") => "text/css; charset=utf-8",
            _ => return StatusCode::NOT_FOUND.into_response(),
        };
        match tokio::fs::read(site.dir.join(path)).await {
            Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        }
    }
}
