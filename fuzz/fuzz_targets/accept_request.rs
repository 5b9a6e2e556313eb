//! `accept` on arbitrary bytes as the client's upgrade request, over an in-memory stream:
//! never panics, always finishes (an HTTP error answer or an upgrade).
#![no_main]
use std::time::Duration;

use isosock::{accept, AcceptOptions};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|input: (Vec<u8>, Vec<String>, Vec<String>)| {
    let (request, subprotocols, patterns) = input;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(64 << 10);
        let opts = AcceptOptions::new()
            .subprotocols(subprotocols)
            .origin_patterns(patterns)
            .handshake_timeout(Duration::from_secs(5));
        let peer = async move {
            let _ = client.write_all(&request).await;
            let _ = client.shutdown().await;
            let mut sink = Vec::new();
            let _ = client.read_to_end(&mut sink).await;
        };
        let (_, result) = tokio::join!(peer, accept(server, &opts));
        drop(result);
    });
});
