//! [`RetryPolicy`]: whether a logical upstream call tries again after a failed attempt,
//! and after what pause. It only decides; the client makes the attempts, sleeps and counts.
//!
//! - a 401 is retried once per call, at once, with a fresh token;
//! - a 429 is retried whatever the count, at once: the budget holds the next attempt until
//!   its freeze ends;
//! - a transient failure (no answer, 502/503/504, a body cut short) is retried at most
//!   `max_retries` times, after a jittered exponential backoff (`retry_base_ms` doubling up
//!   to `retry_max_ms`, a uniformly random part of it);
//! - a 429 or a transient failure is retried only while the pause and the budget's minimum
//!   useful call time still fit before the deadline.

use std::time::Duration;

use tokio::time::Instant;

use super::error::UpstreamError;
use super::settings::UpstreamSettings;

/// A failed attempt that another attempt may cure.
#[derive(Debug)]
pub enum Retryable {
    /// No answer, 502/503/504 or a body cut short: retried after a backoff.
    Transient(UpstreamError),
    /// Genesys answered 429: retried when the budget's freeze allows.
    RateLimited(UpstreamError),
}

impl Retryable {
    /// What went wrong.
    #[must_use]
    pub fn error(&self) -> &UpstreamError {
        match self {
            Self::Transient(error) | Self::RateLimited(error) => error,
        }
    }

    /// What went wrong, to give up with.
    #[must_use]
    pub fn into_error(self) -> UpstreamError {
        match self {
            Self::Transient(error) | Self::RateLimited(error) => error,
        }
    }
}

/// The retry state of one logical call.
#[derive(Debug)]
pub struct RetryPolicy {
    /// First backoff.
    base: Duration,
    /// Longest backoff.
    cap: Duration,
    /// Transient failures retried at most.
    max_transient: u32,
    /// The budget's shortest useful call: an attempt needs this much before the deadline.
    min_call: Duration,
    transient_retries: u32,
    reauthenticated: bool,
}

impl RetryPolicy {
    /// The policy of `settings` for a call whose attempts need `min_call` before the
    /// deadline.
    #[must_use]
    pub fn new(settings: &UpstreamSettings, min_call: Duration) -> Self {
        Self {
            base: Duration::from_millis(settings.retry_base_ms),
            cap: Duration::from_millis(settings.retry_max_ms),
            max_transient: settings.max_retries,
            min_call,
            transient_retries: 0,
            reauthenticated: false,
        }
    }

    /// Whether a 401 may be retried with a fresh token: the first time only.
    pub fn reauthenticate(&mut self) -> bool {
        !std::mem::replace(&mut self.reauthenticated, true)
    }

    /// The pause before the next attempt after `failure`, or `None` when the call is to
    /// give up: no retry is left, or none fits before `deadline`.
    pub fn pause_after(&mut self, failure: &Retryable, deadline: Instant) -> Option<Duration> {
        let pause = match failure {
            Retryable::RateLimited(_) => Duration::ZERO,
            Retryable::Transient(_) => {
                if self.transient_retries >= self.max_transient {
                    return None;
                }
                let pause = self.backoff();
                self.transient_retries += 1;
                pause
            }
        };
        (Instant::now() + pause + self.min_call < deadline).then_some(pause)
    }

    /// A random part of the exponential backoff of the transient retries so far.
    fn backoff(&self) -> Duration {
        let exponential = self
            .base
            .saturating_mul(1 << self.transient_retries.min(16))
            .min(self.cap);
        exponential.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_retries: u32) -> RetryPolicy {
        let settings = UpstreamSettings {
            retry_base_ms: 100,
            retry_max_ms: 300,
            max_retries,
            ..UpstreamSettings::default()
        };
        RetryPolicy::new(&settings, Duration::from_millis(50))
    }

    fn unavailable() -> Retryable {
        Retryable::Transient(UpstreamError::Unavailable {
            detail: "Genesys answered 503".to_owned(),
        })
    }

    fn rate_limited() -> Retryable {
        Retryable::RateLimited(UpstreamError::RateLimited {
            retry_after: Duration::from_secs(1),
        })
    }

    #[test]
    fn a_401_is_retried_once_per_call() {
        let mut retry = policy(2);
        assert!(retry.reauthenticate());
        assert!(!retry.reauthenticate());
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_a_bounded_number_of_times_after_a_growing_capped_backoff()
     {
        let mut retry = policy(3);
        let deadline = Instant::now() + Duration::from_secs(60);
        for cap in [100, 200, 300] {
            let pause = retry
                .pause_after(&unavailable(), deadline)
                .expect("a retry is left");
            assert!(
                pause <= Duration::from_millis(cap),
                "{pause:?} over {cap} ms"
            );
        }
        assert_eq!(retry.pause_after(&unavailable(), deadline), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_is_retried_at_once_whatever_the_count_of_transient_retries() {
        let mut retry = policy(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(
                retry.pause_after(&rate_limited(), deadline),
                Some(Duration::ZERO)
            );
        }
        assert_eq!(retry.pause_after(&unavailable(), deadline), None);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_is_made_when_the_minimum_call_time_no_longer_fits_before_the_deadline() {
        let mut retry = policy(5);
        let deadline = Instant::now() + Duration::from_millis(50);
        assert_eq!(retry.pause_after(&rate_limited(), deadline), None);
        let deadline = Instant::now() + Duration::from_millis(51);
        assert_eq!(
            retry.pause_after(&rate_limited(), deadline),
            Some(Duration::ZERO)
        );
    }
}
