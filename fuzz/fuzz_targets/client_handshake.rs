//! The client's opening handshake against arbitrary server responses (`{ACCEPT}` in the input
//! stands for the correct accept key, so the fuzzer reaches past that check): never panics;
//! a successful handshake only ever selects a subprotocol the client offered.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, Vec<String>)| {
    let (response, offered) = input;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let result = rt.block_on(isosock::fuzz::client_handshake(&response, &offered));
    if let Ok(Some(protocol)) = result {
        assert!(offered.contains(&protocol), "selected {protocol:?}, offered {offered:?}");
    }
});
