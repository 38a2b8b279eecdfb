//! The budget's picture of Genesys' rate window: pacing (GCRA at the effective rate with a
//! small burst), a mirror of the window from `inin-ratelimit-*` headers, and the freeze
//! after a 429. Pure state over `tokio::time::Instant`, so it is tested with paused time.
//!
//! The mirror only moves forward within a window: replies may arrive out of order (a
//! count of 250, then a late 240), so a smaller count never lowers what is known to be
//! used. A new window is recognised by its reset time moving forward (by more than the
//! rounding of `inin-ratelimit-reset` and the latency of a reply can explain), or by the
//! mirrored reset time passing.
//!
//! A 429 freezes every call until its `Retry-After` has passed, and no longer: it may come
//! from a limit other than the per-token window (an org or endpoint limit), so the window
//! counts as spent only when the headers say so (count at or above allowed).

use std::time::Duration;

use tokio::time::Instant;

use super::{BudgetSettings, Class, Outcome, RateHeaders};

/// Pacing and window state.
#[derive(Debug)]
pub struct RateWindow {
    period: Duration,
    burst: u32,
    reserve: u32,
    reset_guard: Duration,
    /// A report whose reset lies more than this after the mirrored one starts a new window.
    new_window_after: Duration,
    /// The rate used for pacing: the configured one, lowered to what Genesys reports.
    pub effective_rate: u32,
    /// GCRA theoretical arrival time.
    tat: Instant,
    /// The window's limit as last reported (or configured).
    allowed: u32,
    /// Highest count Genesys reported in the current window, plus calls that ended with no
    /// answer (they may have counted).
    used: u32,
    /// When the current window resets, once a response has told.
    reset_at: Option<Instant>,
    /// No calls before this instant (after a 429).
    frozen_until: Option<Instant>,
}

impl RateWindow {
    pub fn new(settings: &BudgetSettings, now: Instant) -> Self {
        let period = settings.period();
        let reset_guard = Duration::from_millis(settings.reset_guard_ms);
        Self {
            period,
            burst: settings.burst,
            reserve: settings.realtime_reserve,
            reset_guard,
            // Reports of one window differ by the whole-second rounding of the reset, the
            // guard and the latency of the replies; a new window's is about a period later.
            new_window_after: (period / 2).max(Duration::from_secs(1) + reset_guard),
            effective_rate: settings.rate,
            tat: now,
            allowed: settings.rate,
            used: 0,
            reset_at: None,
            frozen_until: None,
        }
    }

    /// Time between two paced calls.
    pub fn spacing(&self) -> Duration {
        self.period / self.effective_rate.max(1)
    }

    fn roll(&mut self, now: Instant) {
        if self.reset_at.is_some_and(|at| now >= at) {
            self.reset_at = None;
            self.used = 0;
        }
        if self.frozen_until.is_some_and(|at| now >= at) {
            self.frozen_until = None;
        }
    }

    /// Calls `class` may still start in this window, given `in_flight` unanswered calls.
    pub fn available(&mut self, class: Class, in_flight: usize, now: Instant) -> u32 {
        self.roll(now);
        let reserve = if class == Class::Realtime {
            0
        } else {
            self.reserve
        };
        let in_flight = u32::try_from(in_flight).unwrap_or(u32::MAX);
        self.allowed
            .saturating_sub(self.used)
            .saturating_sub(in_flight)
            .saturating_sub(reserve)
    }

    /// Whether calls are frozen after a 429.
    pub fn frozen(&mut self, now: Instant) -> bool {
        self.roll(now);
        self.frozen_until.is_some()
    }

    /// The earliest instant a call of `class` could start, ignoring the concurrency cap;
    /// `None` when only a finishing call can make room (the window is spent and its reset
    /// time is not known yet).
    pub fn next_start(&mut self, class: Class, in_flight: usize, now: Instant) -> Option<Instant> {
        self.roll(now);
        let tolerance = self.spacing() * self.burst;
        let mut at = self.tat.checked_sub(tolerance).unwrap_or(now).max(now);
        if let Some(frozen) = self.frozen_until {
            at = at.max(frozen);
        }
        if self.available(class, in_flight, now) == 0 {
            if in_flight > 0 && self.reset_at.is_none() {
                return None;
            }
            at = at.max(self.reset_at.unwrap_or(now));
        }
        Some(at)
    }

    /// Records that a call starts now (advances the pacing).
    pub fn start(&mut self, now: Instant) {
        self.tat = self.tat.max(now) + self.spacing();
    }

    /// Learns from a finished call.
    pub fn observe(&mut self, outcome: Outcome, now: Instant) {
        self.roll(now);
        match outcome {
            Outcome::Responded(Some(headers)) => self.headers(headers, now),
            Outcome::Responded(None) => {}
            Outcome::NoResponse => {
                // It may have counted: assume it did, in a window that ends within a period.
                self.used = self.used.saturating_add(1);
                self.reset_at.get_or_insert(now + self.period);
            }
            Outcome::RateLimited {
                retry_after,
                headers,
            } => {
                // Resume when `Retry-After` has passed. The window is spent only if the
                // headers say so: the 429 may come from another limit.
                if let Some(headers) = headers {
                    self.headers(headers, now);
                }
                let until = now + retry_after;
                self.frozen_until = Some(self.frozen_until.map_or(until, |f| f.max(until)));
            }
        }
    }

    fn headers(&mut self, headers: RateHeaders, now: Instant) {
        if headers.allowed > 0 && headers.allowed != self.allowed {
            self.allowed = headers.allowed;
        }
        self.effective_rate = self.effective_rate.min(headers.allowed.max(1));
        let reported = now + headers.reset + self.reset_guard;
        match self.reset_at {
            Some(current) if reported <= current + self.new_window_after => {
                // The same window: counts only grow (a smaller one is a reply that arrived
                // late), and every report bounds the reset from above (given a guard that
                // matches how Genesys rounds `reset`): the earliest bound is the tightest.
                self.used = self.used.max(headers.count);
                self.reset_at = Some(current.min(reported));
            }
            // No window known yet, or the reset moved forward: a new window.
            _ => {
                self.used = headers.count;
                self.reset_at = Some(reported);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BudgetSettings {
        BudgetSettings {
            rate: 10,
            period_secs: 10.0,
            burst: 2,
            realtime_reserve: 1,
            reset_guard_ms: 0,
            ..BudgetSettings::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_allows_a_burst_then_one_call_per_spacing() {
        let now = Instant::now();
        let mut window = RateWindow::new(&settings(), now);
        for _ in 0..3 {
            assert_eq!(window.next_start(Class::Realtime, 0, now), Some(now));
            window.start(now);
        }
        assert_eq!(
            window.next_start(Class::Realtime, 0, now),
            Some(now + Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_window_waits_for_its_reported_reset() {
        let now = Instant::now();
        let mut window = RateWindow::new(&settings(), now);
        let headers = RateHeaders {
            count: 10,
            allowed: 10,
            reset: Duration::from_secs(7),
        };
        window.observe(Outcome::Responded(Some(headers)), now);
        assert_eq!(window.available(Class::Realtime, 0, now), 0);
        assert_eq!(
            window.next_start(Class::Realtime, 0, now),
            Some(now + Duration::from_secs(7))
        );
        let later = now + Duration::from_secs(7);
        assert_eq!(window.available(Class::Realtime, 0, later), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn reports_leave_the_realtime_reserve() {
        let now = Instant::now();
        let mut window = RateWindow::new(&settings(), now);
        let headers = RateHeaders {
            count: 9,
            allowed: 10,
            reset: Duration::from_secs(5),
        };
        window.observe(Outcome::Responded(Some(headers)), now);
        assert_eq!(window.available(Class::Realtime, 0, now), 1);
        assert_eq!(window.available(Class::Report, 0, now), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_freezes_until_retry_after_and_a_lower_limit_lowers_the_rate() {
        let now = Instant::now();
        let mut window = RateWindow::new(&settings(), now);
        window.observe(
            Outcome::RateLimited {
                retry_after: Duration::from_secs(4),
                headers: Some(RateHeaders {
                    count: 5,
                    allowed: 5,
                    reset: Duration::from_secs(4),
                }),
            },
            now,
        );
        assert!(window.frozen(now));
        assert_eq!(window.effective_rate, 5);
        assert_eq!(
            window.next_start(Class::Realtime, 0, now),
            Some(now + Duration::from_secs(4))
        );
        assert!(!window.frozen(now + Duration::from_secs(4)));
    }

    fn genesys() -> BudgetSettings {
        BudgetSettings {
            rate: 300,
            period_secs: 60.0,
            burst: 10,
            realtime_reserve: 5,
            reset_guard_ms: 0,
            ..BudgetSettings::default()
        }
    }

    fn headers(count: u32, reset_secs: u64) -> Option<RateHeaders> {
        Some(RateHeaders {
            count,
            allowed: 300,
            reset: Duration::from_secs(reset_secs),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_while_the_window_has_room_freezes_for_retry_after_only() {
        let now = Instant::now();
        let mut window = RateWindow::new(&genesys(), now);
        window.observe(Outcome::Responded(headers(1, 60)), now);
        // A 429 from some other limit: Retry-After 3 s, the token's window at 2 of 300.
        window.observe(
            Outcome::RateLimited {
                retry_after: Duration::from_secs(3),
                headers: headers(2, 59),
            },
            now,
        );
        let resume = now + Duration::from_secs(3);
        assert!(window.frozen(now));
        for class in Class::ALL {
            assert_eq!(window.next_start(class, 0, now), Some(resume), "{class:?}");
        }
        assert!(!window.frozen(resume));
        assert_eq!(window.available(Class::Realtime, 0, resume), 298);
        assert_eq!(window.available(Class::Report, 0, resume), 293);
        assert_eq!(window.next_start(Class::Report, 0, resume), Some(resume));

        // Without headers, too, the freeze is all there is.
        let mut window = RateWindow::new(&genesys(), now);
        window.observe(
            Outcome::RateLimited {
                retry_after: Duration::from_secs(2),
                headers: None,
            },
            now,
        );
        let resume = now + Duration::from_secs(2);
        assert_eq!(window.next_start(Class::Realtime, 0, now), Some(resume));
        assert_eq!(window.available(Class::Realtime, 0, resume), 300);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_whose_headers_say_the_window_is_spent_waits_for_the_reset() {
        let now = Instant::now();
        let mut window = RateWindow::new(&genesys(), now);
        window.observe(
            Outcome::RateLimited {
                retry_after: Duration::from_secs(3),
                headers: headers(300, 20),
            },
            now,
        );
        let reset = now + Duration::from_secs(20);
        assert_eq!(window.next_start(Class::Realtime, 0, now), Some(reset));
        assert!(!window.frozen(now + Duration::from_secs(3)));
        assert_eq!(window.available(Class::Realtime, 0, reset), 300);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_reply_with_a_smaller_count_does_not_open_a_new_window() {
        let now = Instant::now();
        let mut window = RateWindow::new(&genesys(), now);
        window.observe(Outcome::Responded(headers(250, 20)), now);
        // The reply counted 240th arrives a second after the 250th: same window.
        let later = now + Duration::from_secs(1);
        window.observe(Outcome::Responded(headers(240, 20)), later);
        assert_eq!(window.available(Class::Realtime, 0, later), 50);
        assert_eq!(window.available(Class::Report, 0, later), 45);
        // Near the end of the window, no extra calls get through.
        window.observe(
            Outcome::Responded(headers(300, 1)),
            now + Duration::from_secs(19),
        );
        let near_end = now + Duration::from_secs(19) + Duration::from_millis(500);
        window.observe(Outcome::Responded(headers(290, 1)), near_end);
        assert_eq!(window.available(Class::Realtime, 0, near_end), 0);
        assert_eq!(
            window.next_start(Class::Realtime, 0, near_end),
            Some(now + Duration::from_secs(20))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_moving_forward_starts_a_new_window() {
        let now = Instant::now();
        let mut window = RateWindow::new(
            &BudgetSettings {
                reset_guard_ms: 1_000,
                ..genesys()
            },
            now,
        );
        window.observe(Outcome::Responded(headers(250, 20)), now);
        // The mirror's reset (with its guard) lies a second after the true one: a reply
        // from the next window arrives before it and is recognised by its reset.
        let next = now + Duration::from_millis(20_500);
        window.observe(Outcome::Responded(headers(3, 60)), next);
        assert_eq!(window.available(Class::Realtime, 0, next), 297);
        assert_eq!(
            window.next_start(Class::Realtime, 0, next),
            Some(next),
            "not held to the old window's reset"
        );
    }
}
