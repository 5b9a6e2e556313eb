//! Jittered exponential backoff between reconnection attempts.

/// Delays before reconnecting: `base` doubling per failed attempt up to `max`, each drawn at
/// random from the upper half of that range ("equal jitter"), so that the clients a server
/// restart dropped do not all come back in the same millisecond, and none retries at once.
#[derive(Debug)]
pub(crate) struct Backoff {
    base_ms: f64,
    max_ms: f64,
    /// Attempts since the last reset; the exponent of the next delay.
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(base_ms: f64, max_ms: f64) -> Self {
        Backoff {
            base_ms,
            max_ms,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, in milliseconds; `random` is uniform in `[0, 1)`.
    pub(crate) fn next_delay_ms(&mut self, random: f64) -> f64 {
        // The exponent is capped so the shift cannot overflow; `max` caps the delay long before.
        let ceiling = (self.base_ms * f64::from(1u32 << self.attempt.min(20))).min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        ceiling / 2.0 + ceiling / 2.0 * random.clamp(0.0, 1.0)
    }

    /// Starts over from `base`, after a connection that stayed up long enough to count as
    /// healthy.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}
