//! When to try a Dropbox call again: jittered exponential backoff for 5xx and transport errors,
//! Retry-After within a bounded budget for 429.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first try, for 5xx / transport errors / timeouts.
    pub max_retries: u32,
    /// First backoff ceiling; doubles each retry.
    pub base: Duration,
    pub max_backoff: Duration,
    /// Total Retry-After we are willing to wait out within one request.
    pub rate_limit_budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            rate_limit_budget: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// "Full jitter": uniform in [0, min(max, base·2^attempt)].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_backoff);
        ceiling.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RetryPolicy::default();
        for attempt in 0..20 {
            let b = p.backoff(attempt);
            let ceiling = (p.base * 2u32.saturating_pow(attempt)).min(p.max_backoff);
            assert!(b <= ceiling, "attempt {attempt}: {b:?} > {ceiling:?}");
        }
        assert!(p.backoff(30) <= p.max_backoff);
    }
}
