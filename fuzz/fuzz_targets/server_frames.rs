//! A server `Conn` fed arbitrary bytes after a valid upgrade, over an in-memory stream: every
//! read ends in a message or a typed error, never a panic, and memory stays within the read
//! limit.
#![no_main]
use isosock::{accept, AcceptOptions};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const UPGRADE: &[u8] = b"GET /fuzz HTTP/1.1\r\nHost: fuzz.test\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

fuzz_target!(|frames: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let frames = frames.to_vec();
    rt.block_on(async move {
        let (client, server) = tokio::io::duplex(64 << 10);
        let (mut client_rx, mut client_tx) = tokio::io::split(client);
        let peer_writes = async move {
            let _ = client_tx.write_all(UPGRADE).await;
            let _ = client_tx.write_all(&frames).await;
            let _ = client_tx.shutdown().await;
        };
        // Drain what the server sends (the 101, pongs, close frames) so it never blocks.
        let peer_reads = async move {
            let mut sink = [0u8; 4096];
            while let Ok(n) = client_rx.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let server = async move {
            let opts = AcceptOptions::new().read_limit(64 << 10);
            if let Ok(conn) = accept(server, &opts).await {
                for _ in 0..10_000 {
                    if conn.read().await.is_err() {
                        break;
                    }
                }
            }
        };
        tokio::join!(peer_writes, peer_reads, server);
    });
});
