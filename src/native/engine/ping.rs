//! Pings this side sent, each waiting for the pong that carries its id.
//!
//! Locks: `waiters` is a leaf. A ping is queued like a control frame (between the frames of
//! a streamed message, without the message lock) after the queue has room.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::{lock, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::native::frame::OpCode;

/// Pings waiting for their pong: ids are a counter, sent as the ping's 8-byte payload.
#[derive(Debug, Default)]
pub(super) struct Pings {
    seq: AtomicU64,
    /// Lock 5.
    waiters: Mutex<Vec<(u64, oneshot::Sender<()>)>>,
}

impl Shared {
    /// Sends a ping and waits until a reader sees its pong.
    pub(super) async fn ping(&self) -> Result<()> {
        self.check_writable()?;
        let id = self.pings.seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pings.waiters).push((id, tx));
        // Removes the waiter however this future ends (pong, error, or drop).
        struct Unregister<'a>(&'a Pings, u64);
        impl Drop for Unregister<'_> {
            fn drop(&mut self) {
                lock(&self.0.waiters).retain(|(id, _)| *id != self.1);
            }
        }
        let _unregister = Unregister(&self.pings, id);
        self.send_ping(id).await?;
        tokio::select! {
            r = rx => r.map_err(|_| Error::new(ErrorKind::ConnectionLost, "connection ended before the pong")),
            e = self.wait_terminal() => Err(e),
        }
    }

    /// Queues a ping with `id` once the queue has room, and waits until it is written.
    async fn send_ping(&self, id: u64) -> Result<()> {
        poll_fn(|cx| self.poll_room(cx)).await?;
        let target = self.enqueue(true, OpCode::Ping, &id.to_be_bytes())?;
        poll_fn(|cx| self.poll_written(cx, target)).await
    }

    /// A pong arrived: wakes the ping it answers, if any (unsolicited pongs are ignored).
    pub(super) fn on_pong(&self, payload: &[u8]) {
        let Ok(id) = <[u8; 8]>::try_from(payload) else {
            return;
        };
        let id = u64::from_be_bytes(id);
        let mut waiters = lock(&self.pings.waiters);
        if let Some(i) = waiters.iter().position(|(p, _)| *p == id) {
            let (_, tx) = waiters.swap_remove(i);
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll};

    use super::super::lock;
    use super::super::testing::{bounded, frame, next_frame, pair, send};
    use crate::backend::Engine;
    use crate::native::frame::{OpCode, Role};

    #[tokio::test]
    async fn a_ping_resolves_on_its_own_pong_only() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Client, 1 << 20);
            let conn = std::sync::Arc::new(conn);
            let reader = {
                let conn = conn.clone();
                tokio::spawn(async move { conn.read().await })
            };
            let pinging = {
                let conn = conn.clone();
                tokio::spawn(async move { conn.ping().await })
            };
            let (_, opcode, id) = next_frame(&mut peer).await;
            assert_eq!((opcode, id.len()), (9, 8));
            // A pong for another ping, and an unsolicited one, change nothing.
            let mut other = id.clone();
            other[7] ^= 1;
            send(&mut peer, &frame(Role::Client, true, OpCode::Pong, &other)).await;
            send(
                &mut peer,
                &frame(Role::Client, true, OpCode::Pong, b"hello"),
            )
            .await;
            tokio::task::yield_now().await;
            assert!(!pinging.is_finished());
            send(&mut peer, &frame(Role::Client, true, OpCode::Pong, &id)).await;
            pinging.await.expect("ping task").expect("pong");
            assert!(lock(&conn.shared.pings.waiters).is_empty());
            reader.abort();
        })
        .await;
    }

    #[tokio::test]
    async fn a_dropped_ping_leaves_no_waiter_behind() {
        bounded(async {
            let (conn, mut peer) = pair(Role::Server, 1 << 20);
            {
                let mut ping = Box::pin(conn.ping());
                let mut cx = Context::from_waker(std::task::Waker::noop());
                assert!(matches!(ping.as_mut().poll(&mut cx), Poll::Pending));
                assert_eq!(lock(&conn.shared.pings.waiters).len(), 1);
            }
            assert!(lock(&conn.shared.pings.waiters).is_empty());
            let (_, opcode, _) = next_frame(&mut peer).await;
            assert_eq!(opcode, 9, "the ping was written before the drop");
        })
        .await;
    }
}
