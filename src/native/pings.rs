//! Pings this side sent, each waiting for the pong that carries its id: the bookkeeping both
//! engines share. An engine sends the ping frame its own way; the waiting is written once.
//!
//! Locks: `waiters` is a leaf.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::closing::{lock, Closer};
use crate::error::{Error, ErrorKind, Result};

/// Pings waiting for their pong: ids are a counter, sent as the ping's 8-byte payload.
#[derive(Debug, Default)]
pub(crate) struct Pings {
    seq: AtomicU64,
    waiters: Mutex<Vec<(u64, oneshot::Sender<()>)>>,
}

impl Pings {
    /// Sends a ping through `send` (given the 8-byte payload to carry) and waits until a
    /// reader of `conn` sees its pong, or the connection ends.
    pub(crate) async fn ping<C, F>(&self, conn: &C, send: impl FnOnce([u8; 8]) -> F) -> Result<()>
    where
        C: Closer,
        F: Future<Output = Result<()>>,
    {
        conn.check_writable()?;
        let id = self.seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).push((id, tx));
        // Removes the waiter however this future ends (pong, error, or drop).
        struct Unregister<'a>(&'a Pings, u64);
        impl Drop for Unregister<'_> {
            fn drop(&mut self) {
                lock(&self.0.waiters).retain(|(id, _)| *id != self.1);
            }
        }
        let _unregister = Unregister(self, id);
        send(id.to_be_bytes()).await?;
        tokio::select! {
            r = rx => r.map_err(|_| Error::new(ErrorKind::ConnectionLost, "connection ended before the pong")),
            e = conn.wait_terminal() => Err(e),
        }
    }

    /// A pong arrived: wakes the ping it answers, if any (unsolicited pongs are ignored).
    pub(crate) fn on_pong(&self, payload: &[u8]) {
        let Ok(id) = <[u8; 8]>::try_from(payload) else {
            return;
        };
        let id = u64::from_be_bytes(id);
        let mut waiters = lock(&self.waiters);
        if let Some(i) = waiters.iter().position(|(p, _)| *p == id) {
            let (_, tx) = waiters.swap_remove(i);
            let _ = tx.send(());
        }
    }

    /// How many pings wait for their pong.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.waiters).len()
    }
}
