//! The budget: the one scheduler every upstream call passes through, so that the proxy
//! as a whole stays inside Genesys' per-token rate limit and no client ever sees a 429.
//!
//! A caller states its [`Demand`] (class, client, weight, deadline) and waits for a
//! [`Permit`]. The budget grants permits at the configured rate, never more than the
//! concurrency cap at once, and weighted-fair across clients within a class. Between
//! classes, real-time lookups come first, but each other class with demand gets at least
//! its minimum share of the grants (`report_min_share`, `hydrate_min_share`), so report
//! work is never starved by real-time demand beyond the budget. It mirrors Genesys' rate
//! window from the `inin-ratelimit-*` headers each call reports back through its permit,
//! stops when the headers say the window is spent, and freezes every upstream call after a
//! 429 until `Retry-After` has passed (and no longer: the 429 may come from another limit).
//! A demand that cannot start early enough to leave `min_call_ms` before its deadline is
//! refused at once, with the expected wait, so the route can serve stale or answer 503 +
//! `Retry-After`; that wait counts down truthfully (a freeze's end, the window's reset).
//!
//! A demand that later callers may come to share (a cache fetch that other requests join)
//! is queued through [`Budget::acquire_raisable`] with an [`Urgency`]: while it waits, a
//! joiner of a higher class moves it to that class's queue, and a joiner with a later
//! deadline keeps it waiting longer, so nobody waits at another caller's class or shares
//! a refusal that its own deadline would have avoided.
//!
//! [`Budget`] is a small trait so that the shared (multi-replica, Redis-backed)
//! implementation, [`crate::shared::SharedBudget`], can stand in for [`LocalBudget`]. Whatever the implementation, its
//! figures are a [`BudgetStats`], which renders the budget's `/metrics` families.

mod fair;
mod local;
mod stats;
mod window;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

pub use local::LocalBudget;
pub use stats::BudgetStats;

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
    /// When the caller stops waiting: the call must have finished by then. The budget
    /// grants a permit only while at least `min_call_ms` is left before it.
    pub deadline: Instant,
}

/// The demand of a call that more callers may come to wait on (a cache fetch that later
/// requests join): its class and deadline can be raised, never lowered, while it waits.
/// A higher class brings the raising caller's client and weight with it (that caller is
/// the one waiting at that class); a later deadline keeps the demand queued longer.
#[derive(Debug)]
pub struct Urgency {
    current: watch::Sender<Demand>,
}

impl Urgency {
    /// Starts at `demand`.
    #[must_use]
    pub fn new(demand: Demand) -> Arc<Self> {
        Arc::new(Self {
            current: watch::channel(demand).0,
        })
    }

    /// The demand as it stands.
    #[must_use]
    pub fn current(&self) -> Demand {
        self.current.borrow().clone()
    }

    /// Raises the demand to `other`'s class (with its client and weight) when that is
    /// higher, and to its deadline when that is later; returns whether anything changed.
    pub fn raise(&self, other: &Demand) -> bool {
        self.current.send_if_modified(|current| {
            let mut raised = false;
            if other.class < current.class {
                current.class = other.class;
                current.client = other.client.clone();
                current.weight = other.weight;
                raised = true;
            }
            if other.deadline > current.deadline {
                current.deadline = other.deadline;
                raised = true;
            }
            raised
        })
    }

    /// Whether the demand now stands above `earlier` (a higher class or a later deadline).
    #[must_use]
    pub fn is_above(&self, earlier: &Demand) -> bool {
        let current = self.current.borrow();
        current.class < earlier.class || current.deadline > earlier.deadline
    }

    /// Follows the raises from now on (a budget that re-queues the demand).
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<Demand> {
        self.current.subscribe()
    }
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

/// A boxed future, so that [`Budget`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The scheduler in front of every upstream call.
pub trait Budget: Send + Sync + fmt::Debug {
    /// Waits for permission to make one upstream call, or refuses.
    fn acquire(&self, demand: Demand) -> BoxFuture<'_, Result<Permit, Refusal>>;
    /// As [`Budget::acquire`], for the demand `urgency` holds, re-prioritised while it
    /// waits when it is raised. This default reads it once, when the demand is queued.
    fn acquire_raisable(&self, urgency: Arc<Urgency>) -> BoxFuture<'_, Result<Permit, Refusal>> {
        self.acquire(urgency.current())
    }
    /// Current figures.
    fn stats(&self) -> BudgetStats;
    /// The shortest time left before a deadline for which a call is still worth making.
    fn min_call(&self) -> Duration {
        Duration::ZERO
    }
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
fn default_min_call_ms() -> u64 {
    100
}
fn default_report_min_share() -> f64 {
    0.2
}
fn default_hydrate_min_share() -> f64 {
    0.05
}

/// Budget settings (`[budget]` in the config file).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetSettings {
    /// Requests allowed per period: Genesys' per-token limit (300 per minute by default;
    /// raisable by Genesys support). Alone, each replica holds its own token and budget;
    /// in shared mode (`[redis]`), it is the one budget of all replicas together.
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
    /// Shortest time, in milliseconds, that must be left before a demand's deadline for a
    /// permit to be granted: a call that starts a few milliseconds before its caller gives
    /// up spends quota and answers nobody. Set it near the upstream latency's median
    /// (`genesys_proxy_upstream_request_duration_seconds`); 100 is a floor that suits
    /// Genesys' usual latency.
    #[serde(default = "default_min_call_ms")]
    pub min_call_ms: u64,
    /// Smallest share of the grants that report pages get while they have demand (0 to
    /// 1): real-time lookups come first, but not beyond the other classes' minimum shares.
    #[serde(default = "default_report_min_share")]
    pub report_min_share: f64,
    /// Smallest share of the grants that hydration (`include=conversation`) gets while it
    /// has demand (0 to 1). With `report_min_share`, it must leave room for real time
    /// (sum below 1).
    #[serde(default = "default_hydrate_min_share")]
    pub hydrate_min_share: f64,
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
            min_call_ms: default_min_call_ms(),
            report_min_share: default_report_min_share(),
            hydrate_min_share: default_hydrate_min_share(),
        }
    }
}

impl BudgetSettings {
    /// The window length.
    #[must_use]
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(self.period_secs)
    }

    /// The shortest useful call: see `min_call_ms`.
    #[must_use]
    pub fn min_call(&self) -> Duration {
        Duration::from_millis(self.min_call_ms)
    }

    /// Minimum shares per class (realtime, report, hydrate); real time has none, it has
    /// priority.
    #[must_use]
    pub fn min_shares(&self) -> [f64; 3] {
        [0.0, self.report_min_share, self.hydrate_min_share]
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
        for (name, share) in [
            ("report_min_share", self.report_min_share),
            ("hydrate_min_share", self.hydrate_min_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("budget.{name} must be a share between 0 and 1"));
            }
        }
        if self.report_min_share + self.hydrate_min_share >= 1.0 {
            return Err(
                "budget.report_min_share + budget.hydrate_min_share must be below 1, leaving room for real time"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_urgency_is_raised_never_lowered() {
        let now = Instant::now();
        let demand = |class, client: &str, secs| Demand {
            class,
            client: Arc::from(client),
            weight: 1,
            deadline: now + Duration::from_secs(secs),
        };
        let urgency = Urgency::new(demand(Class::Hydrate, "reporter", 5));
        let changes = urgency.watch();
        // Lower or equal: nothing changes, nobody is woken.
        assert!(!urgency.raise(&demand(Class::Hydrate, "other", 4)));
        assert!(!changes.has_changed().expect("open"));
        // A later deadline of the same class keeps the client.
        assert!(urgency.raise(&demand(Class::Hydrate, "other", 8)));
        assert!(changes.has_changed().expect("open"));
        let current = urgency.current();
        assert_eq!(
            (current.class, &*current.client, current.deadline),
            (Class::Hydrate, "reporter", now + Duration::from_secs(8))
        );
        // A higher class brings its client and weight, and keeps the later deadline.
        let earlier = urgency.current();
        assert!(urgency.raise(&Demand {
            weight: 3,
            ..demand(Class::Realtime, "tester", 2)
        }));
        assert!(urgency.is_above(&earlier));
        let current = urgency.current();
        assert_eq!(
            (
                current.class,
                &*current.client,
                current.weight,
                current.deadline
            ),
            (Class::Realtime, "tester", 3, now + Duration::from_secs(8))
        );
        assert!(!urgency.is_above(&current));
    }

    #[test]
    fn minimum_shares_must_leave_room_for_real_time() {
        assert!(BudgetSettings::default().validate().is_ok());
        assert_eq!(BudgetSettings::default().min_shares(), [0.0, 0.2, 0.05]);
        assert_eq!(
            BudgetSettings::default().min_call(),
            Duration::from_millis(100)
        );
        for (report, hydrate, bad) in [
            (0.6, 0.4, "below 1"),
            (-0.1, 0.0, "budget.report_min_share"),
            (0.2, f64::NAN, "budget.hydrate_min_share"),
        ] {
            let error = BudgetSettings {
                report_min_share: report,
                hydrate_min_share: hydrate,
                ..BudgetSettings::default()
            }
            .validate()
            .expect_err("invalid shares");
            assert!(error.contains(bad), "{error}");
        }
    }
}
