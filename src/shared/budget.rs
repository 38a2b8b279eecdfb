//! [`SharedBudget`]: the budget of shared mode, one for all replicas. Each replica keeps
//! its [`LocalBudget`] (the queue with deadlines, the classes' priorities and minimum
//! shares, weighted fairness across its clients, the concurrency cap, its mirror of the
//! window); a call it grants then passes a gate in Redis before it may go: a server-side
//! script that, on Redis' clock, refuses while the shared freeze after a 429 runs, waits
//! for the window's reset when the shared mirror of `inin-ratelimit-*` says it is spent
//! (keeping the real-time reserve for real-time calls), and otherwise paces all replicas
//! together with GCRA (as go-redis/redis_rate does): one rate, one burst, for the org.
//! Every call's outcome goes back to Redis: a 429 freezes every replica until its
//! `Retry-After`, and rate headers update the shared mirror.
//!
//! Calls pass the gate one at a time per replica, in the order the local budget granted
//! them. Fairness across clients is therefore exact within a replica and holds across
//! replicas as far as the load balancer spreads each client's calls (the gate itself is
//! first come, first served between replicas).
//!
//! When Redis is unavailable, the gate is local: a GCRA at rate / (replicas last seen
//! alive), so the replicas together stay within the rate without Redis; when the
//! heartbeat finds Redis again, the gate is shared again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use redis::Script;
use tokio::time::Instant;

use super::SharedTier;
use super::store::StoreError;
use crate::upstream::budget::{
    BoxFuture, Budget, BudgetSettings, BudgetStats, Class, Demand, Lease, LocalBudget, Outcome,
    Permit, Refusal, Urgency,
};

/// The gate: `{1, 0, 0}` to go, or `{0, wait_ms, why}` (why: 0 pacing, 1 frozen, 2 window
/// spent).
static GATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local frozen = tonumber(redis.call('GET', KEYS[2]) or '0')
if frozen > now then return {0, math.ceil(frozen - now), 1} end
local w = redis.call('HMGET', KEYS[3], 'used', 'allowed', 'reset_at')
local used = tonumber(w[1] or '0')
local allowed = tonumber(w[2] or '0')
local reset_at = tonumber(w[3] or '0')
local in_window = reset_at > now and allowed > 0
if in_window and used + tonumber(ARGV[3]) >= allowed then
  return {0, math.ceil(reset_at - now), 2}
end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - tolerance
if allow_at > now then return {0, math.ceil(allow_at - now), 0} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now + tolerance) + 1000)
if in_window then redis.call('HINCRBY', KEYS[3], 'used', 1) end
return {1, 0, 0}
",
    )
});

/// A response's `inin-ratelimit-*` into the shared mirror (the same rules as the local
/// mirror: counts only grow within a window; a reset moving forward is a new window).
static OBSERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local count = tonumber(ARGV[1])
local reported = now + tonumber(ARGV[3])
local w = redis.call('HMGET', KEYS[1], 'used', 'reset_at')
local used = tonumber(w[1] or '0')
local reset_at = tonumber(w[2] or '0')
if reset_at > now and reported <= reset_at + tonumber(ARGV[4]) then
  if count > used then used = count end
  if reported < reset_at then reset_at = reported end
else
  used = count
  reset_at = reported
end
redis.call('HSET', KEYS[1], 'used', used, 'allowed', ARGV[2], 'reset_at', string.format('%.3f', reset_at))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset_at - now) + 60000)
return used
",
    )
});

/// A 429: every replica waits until `Retry-After` has passed (the later freeze wins).
static FREEZE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local until_ms = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < until_ms then
  redis.call('SET', KEYS[1], string.format('%.3f', until_ms), 'PX', math.ceil(until_ms - now) + 1000)
end
return 1
",
    )
});

/// The gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Go,
    Wait(Duration),
    /// Every replica is frozen after a 429 for this long.
    Frozen(Duration),
}

/// The gate while Redis is unavailable: GCRA at rate / live replicas.
#[derive(Debug)]
struct LocalGate {
    tat: Instant,
}

/// Counters of the gate (held by the tier, so routes read them there).
#[derive(Debug, Default)]
pub struct GateCounts {
    shared: AtomicU64,
    local: AtomicU64,
    refused: AtomicU64,
}

/// Figures of the shared gate, for `/metrics` and `/admin/cache`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct GateStats {
    /// Calls let through by the shared (Redis) gate.
    pub shared_grants: u64,
    /// Calls let through by the local fallback gate (Redis unavailable).
    pub local_grants: u64,
    /// Calls the gate could not let through before their deadline.
    pub refused: u64,
}

#[derive(Debug)]
struct Inner {
    local: LocalBudget,
    tier: Arc<SharedTier>,
    settings: BudgetSettings,
    /// Calls pass the gate one at a time, in the order the local budget granted them.
    turn: tokio::sync::Mutex<()>,
    fallback: Mutex<LocalGate>,
    /// Whether the last verdict came from the fallback gate. A replica that falls back
    /// from the shared gate does not know what the others spent of Genesys' window, so
    /// the fallback then starts with its burst already spent (at the steady rate only):
    /// together the replicas cannot add a burst to a window the shared gate has just
    /// filled. An atomic, so a shared verdict costs no lock to clear it.
    fallback_in_use: AtomicBool,
    /// The end of the shared freeze, as the gate last told (for `stats`).
    frozen_until: Mutex<Option<Instant>>,
}

/// The budget shared by all replicas. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedBudget {
    inner: Arc<Inner>,
}

/// The shared side of a permit: reports the outcome to the local budget and to Redis.
#[derive(Debug)]
struct SharedLease {
    local: Mutex<Option<Permit>>,
    inner: Arc<Inner>,
}

impl Lease for SharedLease {
    fn finish(&self, outcome: Outcome) {
        if let Some(permit) = self
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            permit.finish(outcome);
        }
        let report = match outcome {
            Outcome::Responded(Some(_)) | Outcome::RateLimited { .. } => outcome,
            Outcome::Responded(None) | Outcome::NoResponse => return,
        };
        let inner = self.inner.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { inner.report(report).await });
        }
    }
}

impl SharedBudget {
    /// A shared budget with `settings` over `tier`; spawns the local dispatcher.
    #[must_use]
    pub fn new(settings: BudgetSettings, tier: Arc<SharedTier>) -> Self {
        Self {
            inner: Arc::new(Inner {
                local: LocalBudget::new(settings.clone()),
                tier,
                settings,
                turn: tokio::sync::Mutex::new(()),
                fallback: Mutex::new(LocalGate {
                    tat: Instant::now(),
                }),
                fallback_in_use: AtomicBool::new(false),
                frozen_until: Mutex::new(None),
            }),
        }
    }
}

impl GateCounts {
    /// The gate's figures.
    #[must_use]
    pub fn stats(&self) -> GateStats {
        let counts = self;
        GateStats {
            shared_grants: counts.shared.load(Ordering::Relaxed),
            local_grants: counts.local.load(Ordering::Relaxed),
            refused: counts.refused.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    fn interval(&self) -> Duration {
        self.settings.period() / self.settings.rate.max(1)
    }

    /// Asks the shared gate.
    async fn shared_verdict(&self, class: Class) -> Result<Verdict, StoreError> {
        let keys = &self.tier.keys;
        let (tat, frozen, window) = (
            keys.budget_tat.clone(),
            keys.budget_frozen.clone(),
            keys.budget_window.clone(),
        );
        let interval_ms = self.interval().as_secs_f64() * 1_000.0;
        let tolerance_ms = interval_ms * f64::from(self.settings.burst);
        let reserve = if class == Class::Realtime {
            0
        } else {
            self.settings.realtime_reserve
        };
        let (go, wait_ms, why): (u8, u64, u8) = self
            .tier
            .store
            .run(|mut connection| async move {
                GATE.key(tat)
                    .key(frozen)
                    .key(window)
                    .arg(interval_ms)
                    .arg(tolerance_ms)
                    .arg(reserve)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        let wait = Duration::from_millis(wait_ms.max(1));
        Ok(match (go, why) {
            (1, _) => Verdict::Go,
            (_, 1) => Verdict::Frozen(wait),
            _ => Verdict::Wait(wait),
        })
    }

    /// The fallback gate: GCRA at rate / live replicas, with the burst divided alike.
    fn local_verdict(&self) -> Verdict {
        let replicas = self.tier.live_replicas();
        let interval = self.interval() * replicas;
        let tolerance = interval * (self.settings.burst / replicas);
        let now = Instant::now();
        let mut gate = self.fallback.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.fallback_in_use.swap(true, Ordering::Relaxed) {
            gate.tat = gate.tat.max(now + tolerance);
        }
        let tat = gate.tat.max(now);
        let allow_at = tat.checked_sub(tolerance).unwrap_or(now);
        if allow_at > now {
            return Verdict::Wait(allow_at - now);
        }
        gate.tat = tat + interval;
        Verdict::Go
    }

    /// Waits at the gate for the call of `demand` until it may go, or refuses it when its
    /// latest useful start would pass.
    async fn pass(&self, demand: &Demand) -> Result<(), Refusal> {
        let latest = demand
            .deadline
            .checked_sub(self.settings.min_call())
            .unwrap_or_else(Instant::now);
        let refuse = |wait: Duration| {
            self.tier.gate.refused.fetch_add(1, Ordering::Relaxed);
            Refusal::DeadlinePassed {
                retry_after: secs_ceil(wait),
            }
        };
        let Ok(_turn) = tokio::time::timeout_at(latest, self.turn.lock()).await else {
            return Err(refuse(self.interval()));
        };
        loop {
            let (verdict, shared) = match self.shared_verdict(demand.class).await {
                Ok(verdict) => {
                    self.fallback_in_use.store(false, Ordering::Relaxed);
                    (verdict, true)
                }
                Err(_) => (self.local_verdict(), false),
            };
            match verdict {
                Verdict::Go => {
                    let count = if shared {
                        &self.tier.gate.shared
                    } else {
                        &self.tier.gate.local
                    };
                    count.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Verdict::Wait(wait) | Verdict::Frozen(wait) => {
                    if let Verdict::Frozen(wait) = verdict {
                        *self
                            .frozen_until
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + wait);
                    }
                    if Instant::now() + wait > latest {
                        return Err(refuse(wait));
                    }
                    // Look again after the wait (another replica may have taken the slot).
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Reports a call's outcome to the shared window and freeze (best effort).
    async fn report(&self, outcome: Outcome) {
        let keys = &self.tier.keys;
        let guard_ms = self.settings.reset_guard_ms;
        let new_window_after = (self.settings.period() / 2)
            .max(Duration::from_secs(1) + Duration::from_millis(guard_ms));
        let (headers, retry_after) = match outcome {
            Outcome::Responded(headers) => (headers, None),
            Outcome::RateLimited {
                retry_after,
                headers,
            } => (headers, Some(retry_after)),
            Outcome::NoResponse => (None, None),
        };
        if let Some(retry_after) = retry_after {
            let key = keys.budget_frozen.clone();
            let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
            let frozen: Result<u8, _> = self
                .tier
                .store
                .run(|mut connection| async move {
                    FREEZE.key(key).arg(ms).invoke_async(&mut connection).await
                })
                .await;
            if frozen.is_ok() {
                tracing::info!(
                    retry_after_ms = ms,
                    "Genesys answered 429: every replica is frozen until Retry-After"
                );
            }
        }
        if let Some(headers) = headers {
            let key = keys.budget_window.clone();
            let reset_ms =
                u64::try_from((headers.reset + Duration::from_millis(guard_ms)).as_millis())
                    .unwrap_or(u64::MAX);
            let after_ms = u64::try_from(new_window_after.as_millis()).unwrap_or(u64::MAX);
            let _: Result<u64, _> = self
                .tier
                .store
                .run(|mut connection| async move {
                    OBSERVE
                        .key(key)
                        .arg(headers.count)
                        .arg(headers.allowed)
                        .arg(reset_ms)
                        .arg(after_ms)
                        .invoke_async(&mut connection)
                        .await
                })
                .await;
        }
    }

    /// Wraps a permit of the local budget that has passed the gate.
    fn permit(self: &Arc<Self>, local: Permit, since: Instant) -> Permit {
        let waited = Instant::now().saturating_duration_since(since);
        Permit::new(
            Box::new(SharedLease {
                local: Mutex::new(Some(local)),
                inner: self.clone(),
            }),
            waited,
        )
    }

    async fn admit(
        self: &Arc<Self>,
        demand: &Demand,
        local: Permit,
        since: Instant,
    ) -> Result<Permit, Refusal> {
        match self.pass(demand).await {
            Ok(()) => Ok(self.permit(local, since)),
            Err(refusal) => {
                // Nothing was sent: the local budget's permit goes back unspent.
                local.finish(Outcome::Responded(None));
                Err(refusal)
            }
        }
    }
}

fn secs_ceil(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(Duration::from_secs(1))
}

impl Budget for SharedBudget {
    fn acquire(&self, demand: Demand) -> BoxFuture<'_, Result<Permit, Refusal>> {
        Box::pin(async move {
            let since = Instant::now();
            let local = self.inner.local.acquire(demand.clone()).await?;
            self.inner.admit(&demand, local, since).await
        })
    }

    fn acquire_raisable(&self, urgency: Arc<Urgency>) -> BoxFuture<'_, Result<Permit, Refusal>> {
        Box::pin(async move {
            let since = Instant::now();
            let local = self.inner.local.acquire_raisable(urgency.clone()).await?;
            self.inner.admit(&urgency.current(), local, since).await
        })
    }

    /// The local budget's figures; frozen also while the gate reports the shared freeze
    /// (a 429 seen by another replica).
    fn stats(&self) -> BudgetStats {
        let mut stats = self.inner.local.stats();
        let shared_freeze = *self
            .inner
            .frozen_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        stats.frozen |= shared_freeze.is_some_and(|until| Instant::now() < until);
        stats
    }

    fn min_call(&self) -> Duration {
        self.inner.settings.min_call()
    }
}
