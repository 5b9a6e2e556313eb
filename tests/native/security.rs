//! Security: credentials stay out of `Debug` output and error messages (headers, cookies, URL
//! query tokens, userinfo), and origin patterns hold against hostile `Origin` values.

use std::sync::{Arc, Mutex};

use isosock::{dial, AcceptOptions, DialOptions, ErrorKind, Upgrade};

use crate::accept::{next_result, server};
use crate::util::bounded;

const SECRET: &str = "s3cr3t-value";

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} leaks the secret: {text}");
}

#[test]
fn dial_options_debug_hides_credentials() {
    let opts = DialOptions::new()
        .header("Authorization", format!("Bearer {SECRET}"))
        .header("Cookie", format!("sid={SECRET}"))
        .header("X-Api-Key", SECRET)
        .header("X-Request-Id", "visible-id");
    let text = format!("{opts:?}");
    assert_clean("DialOptions Debug", &text);
    assert!(
        text.contains("Authorization") && text.contains("[redacted]"),
        "{text}"
    );
    assert!(
        text.contains("visible-id"),
        "harmless headers stay visible: {text}"
    );
}

#[tokio::test]
async fn dial_errors_hide_query_tokens_and_userinfo() {
    bounded(async {
        let urls = [
            format!("ws://127.0.0.1:1/feed?token={SECRET}"),
            format!("ws://user:{SECRET}@127.0.0.1:1/feed"),
            format!("wss://127.0.0.1:1/x?token={SECRET}#frag"),
            format!("http://example.com/?token={SECRET}"),
            format!("ws://exa mple.com/?token={SECRET}"),
        ];
        for url in &urls {
            let err = dial(url, &DialOptions::new()).await.expect_err(url);
            assert_clean("error Display", &err.to_string());
            assert_clean("error Debug", &format!("{err:?}"));
        }
        // A timeout's message names the URL too.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "ws://{}/?token={SECRET}",
            listener.local_addr().expect("addr")
        );
        let opts = DialOptions::new().timeout(std::time::Duration::from_millis(100));
        let err = dial(&url, &opts).await.expect_err("silent server");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_clean("timeout error", &err.to_string());
        drop(listener);
    })
    .await;
}

#[tokio::test]
async fn server_side_debug_hides_credentials() {
    bounded(async {
        let seen = Arc::new(Mutex::new(String::new()));
        let keep = seen.clone();
        let opts = AcceptOptions::new()
            .insecure_skip_verify(true)
            .on_request(move |req| {
                *keep.lock().expect("lock") = format!("{req:?}");
                Ok(Upgrade::new().header("Set-Cookie", format!("sid={SECRET}")))
            });
        let (addr, mut rx) = server(opts).await;
        let client = DialOptions::new()
            .header("Cookie", format!("sid={SECRET}"))
            .header("Authorization", format!("Basic {SECRET}"));
        let (conn, resp) = dial(&format!("ws://{addr}/path?token={SECRET}"), &client)
            .await
            .expect("dial");
        next_result(&mut rx).await.expect("accepted");
        let request = seen.lock().expect("lock").clone();
        assert!(request.contains("/path"), "{request}");
        assert_clean("UpgradeRequest Debug", &request);
        let response = format!("{resp:?}");
        assert!(response.contains("set-cookie"), "{response}");
        assert_clean("Response Debug", &response);
        assert_clean("Conn Debug", &format!("{conn:?}"));
    })
    .await;
}

/// Origin patterns against values an attacker controls: look-alike hosts, userinfo, paths,
/// ports, odd schemes, `null`. Each is refused with 403 by a real `accept`.
#[tokio::test]
async fn hostile_origins_are_refused() {
    bounded(async {
        let opts = AcceptOptions::new().origin_patterns(["app.example.com", "*.trusted.test"]);
        let (addr, mut rx) = server(opts).await;
        let url = format!("ws://{addr}/");
        for good in [
            "https://app.example.com",
            "https://APP.EXAMPLE.COM",
            "https://a.trusted.test",
        ] {
            let opts = DialOptions::new().header("Origin", good);
            let (conn, _) = dial(&url, &opts).await.expect(good);
            next_result(&mut rx).await.expect("accepted");
            conn.close_now();
        }
        for evil in [
            "https://app.example.com.evil.net",
            "https://evilapp.example.com",
            "https://app.example.com@evil.net",
            "https://evil.net/app.example.com",
            "https://evil.net?app.example.com",
            "https://evil.net#app.example.com",
            "https://app.example.com:8443",
            "https://trusted.test",
            "https://a.b/trusted.test",
            "https://evil.net/.trusted.test",
            "https://x.trusted.test.evil.net",
            "null",
            "file://",
            "app.example.com",
            "https://",
            "https://app.example.com /",
        ] {
            let opts = DialOptions::new().header("Origin", evil);
            let err = dial(&url, &opts).await.expect_err(evil);
            assert_eq!(err.http_status(), Some(403), "{evil}: {err:?}");
            let server_err = next_result(&mut rx).await.expect_err(evil);
            assert_eq!(server_err.kind(), ErrorKind::Rejected, "{evil}");
        }
    })
    .await;
}
