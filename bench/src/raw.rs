//! A minimal WebSocket client for the idle-memory test: a bare `TcpStream` after the upgrade,
//! so that 10,000 connections cost the load process almost nothing, and one pre-masked frame
//! shared by every connection for the 1 MiB exchange.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::handshake::{self, WsUrl};
use crate::Result;

/// Connects and upgrades; the stream then carries raw frames.
pub async fn connect(url: &WsUrl) -> Result<TcpStream> {
    let mut tcp = url.connect_tcp().await?;
    handshake::connect(&mut tcp, url).await?;
    Ok(tcp)
}

/// One final, masked binary frame with a payload of `len` bytes (`0x5A` before masking).
pub fn masked_binary_frame(len: usize) -> Vec<u8> {
    let mask = [0x37, 0xFA, 0x21, 0x3D];
    let mut f = Vec::with_capacity(len + 14);
    f.push(0x82); // FIN, binary
    match len {
        0..=125 => f.push(0x80 | len as u8),
        126..=0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend((0..len).map(|i| 0x5A ^ mask[i % 4]));
    f
}

/// Sends `frame` (a whole binary message of `len` bytes) and reads its echo, which may come
/// in several frames; the payload is discarded in 64 KiB pieces.
pub async fn exchange(tcp: &mut TcpStream, frame: &[u8], len: usize) -> Result<()> {
    tcp.write_all(frame).await?;
    let mut scratch = vec![0u8; 64 << 10];
    let mut got = 0usize;
    loop {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).await?;
        let fin = head[0] & 0x80 != 0;
        let opcode = head[0] & 0x0F;
        if head[1] & 0x80 != 0 {
            return Err("the server masked a frame".into());
        }
        let n = match head[1] & 0x7F {
            126 => {
                let mut b = [0u8; 2];
                tcp.read_exact(&mut b).await?;
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                tcp.read_exact(&mut b).await?;
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut left = usize::try_from(n)?;
        let data = matches!(opcode, 0x0 | 0x2);
        if !data && opcode != 0x9 && opcode != 0xA {
            return Err(format!("unexpected frame with opcode {opcode:#x}").into());
        }
        while left > 0 {
            let k = left.min(scratch.len());
            tcp.read_exact(&mut scratch[..k]).await?;
            left -= k;
        }
        if data {
            got += usize::try_from(n)?;
            if fin {
                break;
            }
        }
    }
    if got != len {
        return Err(format!("echo of {got} bytes for {len} sent").into());
    }
    Ok(())
}
