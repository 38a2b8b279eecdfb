//! [`LocalBudget`]: the in-process budget. One dispatcher task grants permits: it wakes
//! when a demand arrives, a permit finishes, or the next grant time or deadline comes, and
//! otherwise sleeps (never a busy loop). Memory is bounded by `max_queue`.
//!
//! A demand is served only if its call can start at least `min_call_ms` before its
//! deadline: at enqueue (refused at once when the expected wait is too long) and while it
//! waits (told as soon as that latest start has passed).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::fair::{Waiter, WaitingRoom};
use super::window::RateWindow;
use super::{
    BoxFuture, Budget, BudgetSettings, BudgetStats, Class, Demand, Lease, Outcome, Permit, Refusal,
};

#[derive(Debug)]
struct State {
    room: WaitingRoom,
    window: RateWindow,
    in_flight: usize,
    stats: BudgetStats,
}

#[derive(Debug)]
struct Inner {
    settings: BudgetSettings,
    state: Mutex<State>,
    /// Wakes the dispatcher; shared with it so it can sleep without keeping `Inner` alive.
    wake: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Let the dispatcher notice that the budget is gone and stop.
        self.wake.notify_one();
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The in-process budget. Cheap to clone; the dispatcher stops when the last clone drops.
#[derive(Debug, Clone)]
pub struct LocalBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct LocalLease {
    inner: Weak<Inner>,
}

impl Lease for LocalLease {
    fn finish(&self, outcome: Outcome) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        {
            let mut state = inner.state();
            state.in_flight -= 1;
            if matches!(outcome, Outcome::RateLimited { .. }) {
                state.stats.rate_limited += 1;
            }
            state.window.observe(outcome, Instant::now());
        }
        inner.wake.notify_one();
    }
}

impl LocalBudget {
    /// A budget with `settings`; spawns its dispatcher on the current tokio runtime.
    #[must_use]
    pub fn new(settings: BudgetSettings) -> Self {
        let window = RateWindow::new(&settings, Instant::now());
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                room: WaitingRoom::with_min_shares(settings.min_shares()),
                window,
                in_flight: 0,
                stats: BudgetStats::default(),
            }),
            settings,
            wake: Arc::new(Notify::new()),
        });
        tokio::spawn(dispatch(Arc::downgrade(&inner), inner.wake.clone()));
        Self { inner }
    }

    /// The expected wait of a new demand, from the queue ahead of it and the window.
    fn expected_wait(state: &mut State, demand: &Demand, now: Instant) -> Duration {
        let ahead = state
            .room
            .turns_ahead(demand.class, &demand.client, demand.weight);
        Self::first_start(state, demand.class, now)
            + state.window.spacing() * u32::try_from(ahead).unwrap_or(u32::MAX)
    }

    /// How long until a call of `class` could start, queue aside: a freeze's end, the
    /// window's reset, the pacing (one spacing when only a finishing call can tell).
    fn first_start(state: &mut State, class: Class, now: Instant) -> Duration {
        let spacing = state.window.spacing();
        state
            .window
            .next_start(class, state.in_flight, now)
            .map_or(spacing, |at| at.saturating_duration_since(now))
    }
}

fn secs_ceil(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(Duration::from_secs(1))
}

impl Budget for LocalBudget {
    fn acquire(&self, demand: Demand) -> BoxFuture<'_, Result<Permit, Refusal>> {
        Box::pin(async move {
            let now = Instant::now();
            let receiver = {
                let mut state = self.inner.state();
                if state.room.len() >= self.inner.settings.max_queue {
                    state.stats.refused += 1;
                    let retry_after = secs_ceil(
                        Self::first_start(&mut state, demand.class, now)
                            + state.window.spacing()
                                * u32::try_from(state.room.len()).unwrap_or(u32::MAX),
                    );
                    return Err(Refusal::QueueFull { retry_after });
                }
                let expected_wait = Self::expected_wait(&mut state, &demand, now);
                // A call that starts with less than the minimum useful time left spends
                // quota and answers nobody.
                let latest_start = demand
                    .deadline
                    .checked_sub(self.inner.settings.min_call())
                    .filter(|&at| now + expected_wait <= at);
                let Some(latest_start) = latest_start else {
                    state.stats.refused += 1;
                    return Err(Refusal::WouldMissDeadline { expected_wait });
                };
                let (reply, receiver) = oneshot::channel();
                state.room.push(
                    demand.class,
                    demand.client.clone(),
                    demand.weight,
                    Waiter {
                        latest_start,
                        enqueued: now,
                        reply,
                    },
                );
                receiver
            };
            self.inner.wake.notify_one();
            match receiver.await {
                Ok(result) => result,
                // The dispatcher is gone: only when the budget is being dropped.
                Err(_) => Err(Refusal::QueueFull {
                    retry_after: Duration::from_secs(1),
                }),
            }
        })
    }

    fn stats(&self) -> BudgetStats {
        let mut state = self.inner.state();
        let now = Instant::now();
        let mut stats = state.stats.clone();
        for class in Class::ALL {
            stats.queued[class as usize] = state.room.len_of(class);
        }
        stats.in_flight = state.in_flight;
        stats.effective_rate = state.window.effective_rate;
        stats.frozen = state.window.frozen(now);
        stats
    }

    fn min_call(&self) -> Duration {
        self.inner.settings.min_call()
    }
}

/// Grants what can be granted now; returns when to look again (`None`: only on a wake-up).
fn grant_ready(inner: &Arc<Inner>) -> Option<Instant> {
    let mut state = inner.state();
    let now = Instant::now();
    // Those told it is too late learn when their class could start again.
    let spacing = state.window.spacing();
    let retry_after = Class::ALL
        .map(|class| secs_ceil(LocalBudget::first_start(&mut state, class, now).max(spacing)));
    state.room.expire(now, retry_after);
    loop {
        if state.room.len() == 0 {
            return None;
        }
        if state.in_flight >= inner.settings.max_concurrency {
            return state.room.earliest_deadline();
        }
        let in_flight = state.in_flight;
        // The first class in serving order that may start now; else the earliest time one
        // may (a class owed its minimum share but held back by the window's real-time
        // reserve does not hold back real time).
        let mut chosen = None;
        let mut next: Option<Instant> = state.room.earliest_deadline();
        for class in state.room.serving_order() {
            match state.window.next_start(class, in_flight, now) {
                Some(at) if at <= now => {
                    chosen = Some(class);
                    break;
                }
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        let Some(class) = chosen else {
            return next;
        };
        let Some(waiter) = state.room.pop(class) else {
            continue;
        };
        let waited = now.saturating_duration_since(waiter.enqueued);
        let lease = Box::new(LocalLease {
            inner: Arc::downgrade(inner),
        });
        // The permit is built before sending: if the caller has gone away, it comes back
        // inside the error and is dropped without counting against the window.
        state.in_flight += 1;
        let permit = Permit::new(lease, waited);
        match waiter.reply.send(Ok(permit)) {
            Ok(()) => {
                state.window.start(now);
                state.stats.granted += 1;
                state.stats.granted_by_class[class as usize] += 1;
                state.stats.total_wait_ms += u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
            }
            Err(returned) => {
                state.in_flight -= 1;
                if let Ok(mut permit) = returned {
                    // Disarm: nothing was sent upstream.
                    permit.lease.take();
                }
            }
        }
    }
}

async fn dispatch(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            grant_ready(&strong)
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => wake.notified().await,
        }
    }
}
