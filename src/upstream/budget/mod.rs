//! The budget: the one scheduler every upstream call passes through, so that the proxy
//! as a whole stays inside Genesys' per-token rate limit and no client ever sees a 429.
//!
//! A caller states its [`Demand`] (class, client, weight, deadline) and waits for a
//! [`Permit`]. The budget grants permits at the configured rate, never more than the
//! concurrency cap at once, highest class first and weighted-fair across clients within a
//! class. It mirrors Genesys' rate window from the `inin-ratelimit-*` headers each call
//! reports back through its permit, stops when the window is spent, and freezes every
//! upstream call after a 429 until `Retry-After` has passed. A demand that cannot be
//! served before its deadline is refused at once, with the expected wait, so the route can
//! serve stale or answer 503 + `Retry-After`.
//!
//! [`Budget`] is a small trait so that a shared (multi-replica, e.g. Redis-backed)
//! implementation can replace [`LocalBudget`] later.

mod fair;
mod local;
mod window;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

pub use local::LocalBudget;

/// Priority class of an upstream call: lower variants are served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// A client is waiting on a real-time conversation lookup.
    Realtime = 0,
    /// A report page (details or aggregates query).
    Report = 1,
    /// Hydration of report hits through the conversation cache.
    Hydrate = 2,
}

impl Class {
    /// Every class, highest priority first.
    pub const ALL: [Self; 3] = [Self::Realtime, Self::Report, Self::Hydrate];

    /// A label for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Realtime => "realtime",
            Self::Report => "report",
            Self::Hydrate => "hydrate",
        }
    }
}

/// What a caller asks of the budget.
#[derive(Debug, Clone)]
pub struct Demand {
    pub class: Class,
    /// The internal client (API key name) the call is made for.
    pub client: Arc<str>,
    /// The client's fair-share weight (at least 1).
    pub weight: u32,
    /// The latest instant the call may start.
    pub deadline: Instant,
}

/// Why a demand was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The expected wait ends after the deadline: refused at once.
    #[error(
        "the upstream budget cannot serve this before its deadline (expected wait {expected_wait:?})"
    )]
    WouldMissDeadline { expected_wait: Duration },
    /// The queue is at its configured maximum.
    #[error("the upstream queue is full")]
    QueueFull { retry_after: Duration },
    /// The deadline passed while the demand was queued.
    #[error("the deadline passed while waiting for the upstream budget")]
    DeadlinePassed { retry_after: Duration },
}

impl Refusal {
    /// When trying again may succeed.
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        match *self {
            Self::WouldMissDeadline { expected_wait } => expected_wait,
            Self::QueueFull { retry_after } | Self::DeadlinePassed { retry_after } => retry_after,
        }
    }
}

/// Genesys' `inin-ratelimit-*` headers of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// `inin-ratelimit-count`: requests used in the current window.
    pub count: u32,
    /// `inin-ratelimit-allowed`: the window's limit.
    pub allowed: u32,
    /// `inin-ratelimit-reset`: time until the window resets.
    pub reset: Duration,
}

/// What became of a granted call; reported through [`Permit::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Genesys answered (any status but 429).
    Responded(Option<RateHeaders>),
    /// Genesys answered 429.
    RateLimited {
        retry_after: Duration,
        headers: Option<RateHeaders>,
    },
    /// No answer (connect error, timeout): the call may or may not have counted.
    NoResponse,
}

/// The budget's side of a granted permit.
pub trait Lease: Send + Sync + fmt::Debug {
    /// Reports the outcome; called exactly once.
    fn finish(&self, outcome: Outcome);
}

/// Permission to make one upstream call. Report its outcome with [`Permit::finish`];
/// dropping it unreported counts as [`Outcome::NoResponse`].
#[derive(Debug)]
pub struct Permit {
    lease: Option<Box<dyn Lease>>,
    /// How long the demand waited in the queue.
    pub waited: Duration,
}

impl Permit {
    /// A permit backed by `lease`.
    #[must_use]
    pub fn new(lease: Box<dyn Lease>, waited: Duration) -> Self {
        Self {
            lease: Some(lease),
            waited,
        }
    }

    /// Reports what became of the call and releases the permit.
    pub fn finish(mut self, outcome: Outcome) {
        if let Some(lease) = self.lease.take() {
            lease.finish(outcome);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.finish(Outcome::NoResponse);
        }
    }
}

/// A point-in-time view of the budget, for metrics and `/admin`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BudgetStats {
    /// Queued demands per class (realtime, report, hydrate).
    pub queued: [usize; 3],
    pub in_flight: usize,
    pub granted: u64,
    pub refused: u64,
    /// 429s reported by calls.
    pub rate_limited: u64,
    /// The rate currently used, in requests per period.
    pub effective_rate: u32,
    /// Whether calls are frozen after a 429.
    pub frozen: bool,
    /// Sum of queue waits of granted permits, in milliseconds.
    pub total_wait_ms: u64,
}

/// A boxed future, so that [`Budget`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The scheduler in front of every upstream call.
pub trait Budget: Send + Sync + fmt::Debug {
    /// Waits for permission to make one upstream call, or refuses.
    fn acquire(&self, demand: Demand) -> BoxFuture<'_, Result<Permit, Refusal>>;
    /// Current figures.
    fn stats(&self) -> BudgetStats;
}

fn default_rate() -> u32 {
    300
}
fn default_period_secs() -> f64 {
    60.0
}
fn default_burst() -> u32 {
    10
}
fn default_max_concurrency() -> usize {
    16
}
fn default_max_queue() -> usize {
    10_000
}
fn default_realtime_reserve() -> u32 {
    5
}
fn default_reset_guard_ms() -> u64 {
    1_000
}

/// Budget settings (`[budget]` in the config file).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetSettings {
    /// Requests allowed per period: Genesys' per-token limit (300 per minute by default;
    /// raisable by Genesys support). With several replicas, each holds its own token and
    /// budget: give each its own OAuth client, or divide the limit.
    #[serde(default = "default_rate")]
    pub rate: u32,
    /// Length of the rate window in seconds (Genesys: 60).
    #[serde(default = "default_period_secs")]
    pub period_secs: f64,
    /// Calls that may be granted back to back before pacing applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Upstream calls in flight at once.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Demands that may wait at once; more are refused with 503.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// Calls per window kept for real-time lookups: report and hydration calls stop this
    /// many short of the window's limit.
    #[serde(default = "default_realtime_reserve")]
    pub realtime_reserve: u32,
    /// Extra wait after the reset time Genesys reports, in milliseconds. Whether
    /// `inin-ratelimit-reset` (whole seconds) is rounded up or down is not documented:
    /// 1000 is safe either way; 0 is right if it is rounded up (as the simulator does).
    #[serde(default = "default_reset_guard_ms")]
    pub reset_guard_ms: u64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            rate: default_rate(),
            period_secs: default_period_secs(),
            burst: default_burst(),
            max_concurrency: default_max_concurrency(),
            max_queue: default_max_queue(),
            realtime_reserve: default_realtime_reserve(),
            reset_guard_ms: default_reset_guard_ms(),
        }
    }
}

impl BudgetSettings {
    /// The window length.
    #[must_use]
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(self.period_secs)
    }

    /// Checks the settings; the message names the bad one.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate == 0 {
            return Err("budget.rate must be at least 1".into());
        }
        if !(self.period_secs.is_finite() && self.period_secs > 0.0) {
            return Err("budget.period_secs must be a positive number of seconds".into());
        }
        if self.max_concurrency == 0 {
            return Err("budget.max_concurrency must be at least 1".into());
        }
        if self.max_queue == 0 {
            return Err("budget.max_queue must be at least 1".into());
        }
        if self.realtime_reserve >= self.rate {
            return Err("budget.realtime_reserve must be smaller than budget.rate".into());
        }
        Ok(())
    }
}
