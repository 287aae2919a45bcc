//! Rate limits for bulk work (`s3ferry migrate --bandwidth`, `--max-requests-per-second`): a
//! token bucket, so a migration does not starve the apps sharing a provider or run up its
//! request bill.
//!
//! The bucket may go into debt: a caller takes what it needs and goes as soon as the debt left
//! by those before it is repaid. One large object then goes at full speed and the next caller
//! waits for it, so the rate holds on average over the run whatever the object sizes, and an
//! object larger than a second's worth is never refused or cut up. The decision ([`BucketState::reserve`]) is pure,
//! with the clock passed in, and tested as such; [`TokenBucket::acquire`] only sleeps.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Tokens in a bucket at one moment.
#[derive(Debug, Clone, Copy)]
pub struct BucketState {
    tokens: f64,
    at: Instant,
}

impl BucketState {
    /// A full bucket at `now`.
    pub fn full(burst: f64, now: Instant) -> Self {
        Self { tokens: burst, at: now }
    }

    /// Takes `amount` tokens at `now` from a bucket that refills at `rate` per second up to
    /// `burst`, and returns how long the caller waits before it may go: until the debt left
    /// before its take is repaid.
    pub fn reserve(&mut self, rate: f64, burst: f64, now: Instant, amount: f64) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now.max(self.at);
        let wait = if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        };
        self.tokens -= amount;
        wait
    }
}

/// A rate limit shared by every task of a run: `rate` tokens (bytes, requests) per second,
/// with up to one second's worth saved up.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

impl TokenBucket {
    /// `rate` per second (at least 1).
    pub fn per_second(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        Self {
            rate,
            burst: rate,
            state: Mutex::new(BucketState::full(rate, Instant::now())),
        }
    }

    /// Takes `amount` tokens, waiting as long as the rate asks.
    pub async fn acquire(&self, amount: u64) {
        let wait = match self.state.lock() {
            Ok(mut state) => state.reserve(self.rate, self.burst, Instant::now(), amount as f64),
            // A panic elsewhere while holding the lock: pacing is best effort, so go.
            Err(_) => Duration::ZERO,
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Duration, b: Duration) -> bool {
        (a.as_secs_f64() - b.as_secs_f64()).abs() < 1e-6
    }

    #[test]
    fn a_full_bucket_lets_a_burst_through_then_paces() {
        let t0 = Instant::now();
        let mut b = BucketState::full(10.0, t0);
        for _ in 0..11 {
            assert_eq!(b.reserve(10.0, 10.0, t0, 1.0), Duration::ZERO);
        }
        // The 11th went into debt; the 12th waits a tenth of a second for it, the 13th two.
        assert!(close(b.reserve(10.0, 10.0, t0, 1.0), Duration::from_millis(100)));
        assert!(close(b.reserve(10.0, 10.0, t0, 1.0), Duration::from_millis(200)));
    }

    #[test]
    fn a_large_take_goes_at_once_and_the_next_waits_for_its_debt() {
        let t0 = Instant::now();
        let mut b = BucketState::full(100.0, t0);
        // 300 bytes at 100 B/s: the first caller goes now, leaving a debt of 200.
        assert_eq!(b.reserve(100.0, 100.0, t0, 300.0), Duration::ZERO);
        // A second later the debt is 100: the next caller waits one more second.
        let t1 = t0 + Duration::from_secs(1);
        assert!(close(b.reserve(100.0, 100.0, t1, 50.0), Duration::from_secs(1)));
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = BucketState::full(5.0, t0);
        assert_eq!(b.reserve(5.0, 5.0, t0, 5.0), Duration::ZERO);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.reserve(5.0, 5.0, later, 5.0), Duration::ZERO);
        assert_eq!(b.reserve(5.0, 5.0, later, 5.0), Duration::ZERO);
        assert!(close(b.reserve(5.0, 5.0, later, 5.0), Duration::from_secs(1)));
    }

    #[test]
    fn the_average_rate_holds_over_many_takes() {
        let t0 = Instant::now();
        let mut b = BucketState::full(1000.0, t0);
        let mut now = t0;
        // Callers that each wait their turn: 10,000 tokens at 1,000/s, less the burst of 1,000
        // and the last caller's debt of 100, take 8.9 s.
        for _ in 0..100 {
            now += b.reserve(1000.0, 1000.0, now, 100.0);
        }
        let took = now.duration_since(t0).as_secs_f64();
        assert!((took - 8.9).abs() < 0.01, "{took}");
    }
}
