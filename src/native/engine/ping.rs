//! The own engine's pings: queued like a control frame (between the frames of a streamed
//! message, without the message lock) once the queue has room; the waiting for the pong is
//! `native/pings.rs`'s.

use std::future::poll_fn;

use super::Shared;
use crate::error::Result;
use crate::native::frame::OpCode;

impl Shared {
    /// Sends a ping and waits until a reader sees its pong.
    pub(super) async fn ping(&self) -> Result<()> {
        self.pings.ping(self, |id| self.send_ping(id)).await
    }

    /// Queues a ping carrying `id` once the queue has room, and waits until it is written.
    async fn send_ping(&self, id: [u8; 8]) -> Result<()> {
        poll_fn(|cx| self.poll_room(cx)).await?;
        let target = self.enqueue(true, OpCode::Ping, &id)?;
        poll_fn(|cx| self.poll_written(cx, target)).await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll};

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
            assert!(conn.shared.pings.waiting() == 0);
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
                assert_eq!(conn.shared.pings.waiting(), 1);
            }
            assert!(conn.shared.pings.waiting() == 0);
            let (_, opcode, _) = next_frame(&mut peer).await;
            assert_eq!(opcode, 9, "the ping was written before the drop");
        })
        .await;
    }
}
