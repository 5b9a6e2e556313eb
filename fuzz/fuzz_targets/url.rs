//! URL validation of `dial`: never panics; what it accepts is a ws/wss URL without spaces.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|url: &str| {
    if isosock::fuzz::parse_url(url) {
        let lower = url.to_ascii_lowercase();
        assert!(lower.starts_with("ws://") || lower.starts_with("wss://"), "{url:?}");
        assert!(!url.chars().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()), "{url:?}");
        assert!(!url.contains('#'), "{url:?}");
    }
});
