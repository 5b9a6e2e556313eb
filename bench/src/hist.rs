//! A log-bucketed latency histogram (HdrHistogram-like, about 1.6 % relative precision).
//!
//! Values below 128 are exact; above, each power of two is split into 64 buckets, so a bucket
//! spans at most 1/64 of its lower bound. Quantiles report a bucket's midpoint.

/// Values below `1 << SUB_BITS` get a bucket each.
const SUB_BITS: u32 = 7;
/// Buckets per power of two above that.
const HALF: usize = 1 << (SUB_BITS - 1);
/// Enough buckets for any `u64`.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * HALF + HALF;

/// Counts of recorded values (nanoseconds here) in logarithmic buckets.
#[derive(Debug, Clone)]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < (1 << SUB_BITS) {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - (SUB_BITS - 1);
    let mantissa = (v >> shift) as usize; // in [HALF, 2 * HALF)
    ((shift as usize) << (SUB_BITS - 1)) + mantissa
}

/// The smallest value that falls in bucket `idx`.
fn lower_bound(idx: usize) -> u64 {
    if idx < (1 << SUB_BITS) {
        return idx as u64;
    }
    let shift = idx / HALF - 1;
    let mantissa = (idx % HALF + HALF) as u64;
    mantissa << shift
}

impl Hist {
    /// Adds one value.
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
    }

    /// The value at quantile `q` (0.0 to 1.0): the midpoint of the bucket holding the
    /// `ceil(q * len)`th smallest value; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (idx, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let lo = lower_bound(idx);
                let hi = if idx + 1 < BUCKETS {
                    lower_bound(idx + 1).saturating_sub(1)
                } else {
                    u64::MAX
                };
                return lo + (hi - lo) / 2;
            }
        }
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            255,
            256,
            1000,
            1 << 20,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let i = index(v);
            assert!(i < BUCKETS, "{v}");
            assert!(lower_bound(i) <= v, "{v}");
            if i + 1 < BUCKETS {
                assert!(lower_bound(i + 1) > v, "{v}");
            }
        }
        for i in 1..BUCKETS {
            assert_eq!(index(lower_bound(i)), i);
        }
    }

    #[test]
    fn quantiles_within_two_percent() {
        let mut h = Hist::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [(0.5, 50_000_000.0), (0.99, 99_000_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
    }
}
