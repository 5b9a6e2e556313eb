//! The proxy clients against arbitrary proxy answers: HTTP CONNECT (response head, status,
//! `Proxy-Authenticate`) and SOCKS5 (method choice, credentials status, reply with any address
//! type), with and without credentials, to any host. Never panics; a tunnel only opens through
//! an HTTP proxy whose answer held a whole head.
#![no_main]
use libfuzzer_sys::fuzz_target;

/// The proxies tried: each scheme, with and without credentials.
const PROXIES: [&str; 6] = [
    "http://127.0.0.1:3128",
    "http://user:pass@127.0.0.1:3128",
    "socks5://127.0.0.1:1080",
    "socks5://user:pass@127.0.0.1:1080",
    "socks5h://127.0.0.1:1080",
    "socks5h://user:pass@127.0.0.1:1080",
];

fuzz_target!(|input: (u8, Vec<u8>, String, u16)| {
    let (which, reply, host, port) = input;
    let proxy = PROXIES[usize::from(which) % PROXIES.len()];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // socks5:// resolves names locally; keep the fuzzer off the resolver with IP hosts there.
    let host = if proxy.starts_with("socks5://") {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    let result = rt.block_on(isosock::fuzz::proxy_tunnel(proxy, &reply, &host, port));
    if result.is_ok() && proxy.starts_with("http") {
        assert!(
            reply.windows(4).any(|w| w == b"\r\n\r\n"),
            "a tunnel opened without a whole CONNECT answer: {reply:?}"
        );
    }
});
