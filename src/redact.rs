//! Keeping secrets out of `Debug` output and error messages: credentials travel in headers
//! (`Authorization`, cookies) natively and in the query string in the browser, and both end up
//! in logs when printed whole.

use std::borrow::Cow;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use headers::Headers;

/// `url` with its userinfo and query replaced by `…`, for error messages.
pub(crate) fn url(url: &str) -> Cow<'_, str> {
    let (before_query, had_query) = match url.split_once('?') {
        Some((b, _)) => (b, true),
        None => (url, false),
    };
    let without_userinfo = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            match authority.rsplit_once('@') {
                Some((_, host)) => Cow::Owned(format!("{scheme}://…@{host}{path}")),
                None => Cow::Borrowed(before_query),
            }
        }
        None => Cow::Borrowed(before_query),
    };
    if !had_query {
        return without_userinfo;
    }
    Cow::Owned(format!("{without_userinfo}?…"))
}

/// Header redaction: headers exist natively only (the browser has no header API).
#[cfg(not(target_arch = "wasm32"))]
mod headers {
    use std::borrow::Cow;
    use std::fmt;

    /// Whether a header's value may be a credential.
    fn is_sensitive(name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        matches!(
            name.as_str(),
            "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
        ) || ["token", "secret", "key", "auth", "session", "password"]
            .iter()
            .any(|w| name.contains(w))
    }

    /// Headers as `Debug` shows them: names, and values unless they may be credentials.
    pub(crate) struct Headers<'a>(pub(crate) Vec<(&'a str, Cow<'a, str>)>);

    impl<'a> Headers<'a> {
        /// From `(name, value)` string pairs.
        pub(crate) fn pairs(pairs: &'a [(String, String)]) -> Self {
            Headers(
                pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str())))
                    .collect(),
            )
        }

        /// From an `http::HeaderMap`.
        pub(crate) fn map(map: &'a http::HeaderMap) -> Self {
            Headers(
                map.iter()
                    .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.as_bytes())))
                    .collect(),
            )
        }
    }

    impl fmt::Debug for Headers<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let mut map = f.debug_map();
            for (name, value) in &self.0 {
                if is_sensitive(name) {
                    map.entry(name, &"[redacted]");
                } else {
                    map.entry(name, value);
                }
            }
            map.finish()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sensitive_names() {
            for n in [
                "Authorization",
                "cookie",
                "X-Api-Key",
                "x-auth-token",
                "Set-Cookie",
            ] {
                assert!(is_sensitive(n), "{n}");
            }
            for n in ["user-agent", "origin", "x-request-id"] {
                assert!(!is_sensitive(n), "{n}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_query_and_userinfo() {
        assert_eq!(url("ws://h:1/p?token=s3cret"), "ws://h:1/p?…");
        assert_eq!(url("wss://user:pw@h/p"), "wss://…@h/p");
        assert_eq!(url("wss://user:pw@h?x"), "wss://…@h?…");
        assert_eq!(url("ws://h/p"), "ws://h/p");
        assert_eq!(url("not a url?x"), "not a url?…");
    }
}
