//! [`LocalBudget`]: the in-process budget. One dispatcher task grants permits: it wakes
//! when a demand arrives, a permit finishes, or the next grant time or deadline comes, and
//! otherwise sleeps (never a busy loop). Memory is bounded by `max_queue`.
//!
//! A demand is served only if its call can start at least `min_call_ms` before its
//! deadline: at enqueue (refused at once when the expected wait is too long) and while it
//! waits (told as soon as that latest start has passed). A raisable demand
//! ([`Budget::acquire_raisable`]) is re-queued, keeping its place in time, when a caller
//! that joins it extends its deadline or raises its class while it waits: the room never
//! holds a waiter past the latest start it can use, so no grant is wasted on one.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::fair::{Waiter, WaitingRoom};
use super::window::RateWindow;
use super::{
    BoxFuture, Budget, BudgetSettings, BudgetStats, Class, Demand, Lease, Outcome, Permit, Refusal,
    Urgency,
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

/// A queued demand, as its acquirer holds it.
struct Queued {
    reply: oneshot::Receiver<Result<Permit, Refusal>>,
    /// The latest useful start: its deadline less the minimum call time. The room never
    /// grants the waiter after it (a grant the caller cannot use would spend a pacing slot
    /// for nothing), so a raise that moves it later re-queues the demand.
    latest_start: Instant,
}

impl LocalBudget {
    /// Queues `demand`, or refuses it at once (queue full, or its expected wait ends too
    /// late).
    fn enqueue(&self, demand: &Demand) -> Result<Queued, Refusal> {
        let now = Instant::now();
        let mut state = self.inner.state();
        if state.room.len() >= self.inner.settings.max_queue {
            let retry_after = secs_ceil(
                Self::first_start(&mut state, demand.class, now)
                    + state.window.spacing() * u32::try_from(state.room.len()).unwrap_or(u32::MAX),
            );
            return Err(Refusal::QueueFull { retry_after });
        }
        let expected_wait = Self::expected_wait(&mut state, demand, now);
        // A call that starts with less than the minimum useful time left spends quota and
        // answers nobody.
        let latest_start = demand
            .deadline
            .checked_sub(self.inner.settings.min_call())
            .filter(|&at| now + expected_wait <= at);
        let Some(latest_start) = latest_start else {
            return Err(Refusal::WouldMissDeadline { expected_wait });
        };
        Ok(Self::push(&mut state, demand, now, latest_start))
    }

    fn push(
        state: &mut State,
        demand: &Demand,
        enqueued: Instant,
        latest_start: Instant,
    ) -> Queued {
        let (reply, receiver) = oneshot::channel();
        state.room.push(
            demand.class,
            demand.client.clone(),
            demand.weight,
            Waiter {
                latest_start,
                enqueued,
                reply,
            },
        );
        Queued {
            reply: receiver,
            latest_start,
        }
    }

    /// Stops waiting: returns the permit if one was granted meanwhile, else tells when
    /// the class could start again. The waiter left in the room is dropped at the
    /// dispatcher's next look.
    fn give_up(&self, queued: &mut Queued, class: Class) -> Result<Permit, Refusal> {
        queued.reply.close();
        if let Ok(granted) = queued.reply.try_recv() {
            return granted;
        }
        self.inner.wake.notify_one();
        let mut state = self.inner.state();
        let now = Instant::now();
        let spacing = state.window.spacing();
        let retry_after = secs_ceil(Self::first_start(&mut state, class, now).max(spacing));
        Err(Refusal::DeadlinePassed { retry_after })
    }
}

fn answer(
    reply: Result<Result<Permit, Refusal>, oneshot::error::RecvError>,
) -> Result<Permit, Refusal> {
    match reply {
        Ok(result) => result,
        // The dispatcher is gone: only when the budget is being dropped.
        Err(_) => Err(Refusal::QueueFull {
            retry_after: Duration::from_secs(1),
        }),
    }
}

impl Budget for LocalBudget {
    fn acquire(&self, demand: Demand) -> BoxFuture<'_, Result<Permit, Refusal>> {
        Box::pin(async move {
            let queued = self.enqueue(&demand)?;
            self.inner.wake.notify_one();
            answer(queued.reply.await)
        })
    }

    /// A raise re-prioritises the queued demand at once: a higher class (or another
    /// client) re-queues it there, keeping its enqueue time (the copy left behind is
    /// closed, and dropped at the dispatcher's next look); a later deadline lets it wait
    /// longer where it is.
    fn acquire_raisable(&self, urgency: Arc<Urgency>) -> BoxFuture<'_, Result<Permit, Refusal>> {
        Box::pin(async move {
            let mut raises = urgency.watch();
            let mut demand = raises.borrow_and_update().clone();
            let enqueued = Instant::now();
            let mut queued = self.enqueue(&demand)?;
            self.inner.wake.notify_one();
            let mut open = true;
            loop {
                tokio::select! {
                    biased;
                    reply = &mut queued.reply => return answer(reply),
                    () = tokio::time::sleep_until(queued.latest_start) => {
                        return self.give_up(&mut queued, demand.class);
                    }
                    raised = raises.changed(), if open => {
                        if raised.is_err() {
                            // Nobody can raise it any more.
                            open = false;
                            continue;
                        }
                        let raised = raises.borrow_and_update().clone();
                        let latest_start = raised
                            .deadline
                            .checked_sub(self.inner.settings.min_call())
                            .map_or(queued.latest_start, |at| at.max(queued.latest_start));
                        if raised.class != demand.class
                            || raised.client != demand.client
                            || latest_start > queued.latest_start
                        {
                            queued.reply.close();
                            if let Ok(granted) = queued.reply.try_recv() {
                                return granted;
                            }
                            let mut state = self.inner.state();
                            queued = Self::push(&mut state, &raised, enqueued, latest_start);
                        }
                        tracing::debug!(
                            class = raised.class.as_str(),
                            client = %raised.client,
                            "a queued demand was raised by a caller that joined it"
                        );
                        demand = raised;
                        self.inner.wake.notify_one();
                    }
                }
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
        stats.period_secs = self.inner.settings.period_secs;
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    fn demand(class: Class, client: &str, deadline: Instant) -> Demand {
        Demand {
            class,
            client: Arc::from(client),
            weight: 1,
            deadline,
        }
    }

    /// Lets the dispatcher and the acquirers run (time is paused: nothing else moves).
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_demand_raised_to_real_time_is_served_before_the_hydration_queued_ahead_of_it() {
        let budget = LocalBudget::new(BudgetSettings {
            rate: 60,
            period_secs: 60.0,
            burst: 0,
            realtime_reserve: 0,
            ..BudgetSettings::default()
        });
        let start = Instant::now();
        let deadline = start + Duration::from_secs(60);
        let granted = Arc::new(StdMutex::new(Vec::new()));
        let mut urgencies = Vec::new();
        for i in 0..4 {
            let urgency = Urgency::new(demand(Class::Hydrate, "reporter", deadline));
            urgencies.push(urgency.clone());
            let (budget, granted) = (budget.clone(), granted.clone());
            tokio::spawn(async move {
                let permit = budget.acquire_raisable(urgency).await.expect("granted");
                granted
                    .lock()
                    .expect("lock")
                    .push((i, Instant::now() - start));
                permit.finish(Outcome::Responded(None));
            });
            settle().await;
        }
        // One call a second: the first went at once, three hydration demands wait.
        assert_eq!(budget.stats().queued, [0, 0, 3]);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(urgencies[3].raise(&demand(Class::Realtime, "tester", start)));
        settle().await;
        // Moved, not copied: the copy left in the hydration queue is gone.
        assert_eq!(budget.stats().queued, [1, 0, 2]);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let order: Vec<(i32, u64)> = granted
            .lock()
            .expect("lock")
            .iter()
            .map(|&(i, at)| (i, at.as_secs()))
            .collect();
        assert_eq!(order, [(0, 0), (3, 1), (1, 2), (2, 3)]);
        let stats = budget.stats();
        assert_eq!(stats.granted_by_class, [1, 0, 3]);
        assert_eq!(stats.queued, [0, 0, 0]);
        assert_eq!(stats.in_flight, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_keeps_a_queued_demand_waiting_past_its_first_one() {
        let budget = LocalBudget::new(BudgetSettings {
            max_concurrency: 1,
            ..BudgetSettings::default()
        });
        let start = Instant::now();
        let blocker = budget
            .acquire(demand(
                Class::Realtime,
                "a",
                start + Duration::from_secs(60),
            ))
            .await
            .expect("granted at once");
        let spawn = |urgency: Arc<Urgency>| {
            let budget = budget.clone();
            tokio::spawn(async move {
                let result = budget.acquire_raisable(urgency).await;
                let at = Instant::now() - start;
                result
                    .map(|permit| permit.finish(Outcome::Responded(None)))
                    .map(|()| at)
                    .map_err(|refusal| (refusal, at))
            })
        };
        let first_deadline = start + Duration::from_secs(2);
        let raised = Urgency::new(demand(Class::Realtime, "b", first_deadline));
        let left = Urgency::new(demand(Class::Realtime, "c", first_deadline));
        let raised_task = spawn(raised.clone());
        let left_task = spawn(left.clone());
        settle().await;
        assert_eq!(budget.stats().queued, [2, 0, 0]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(raised.raise(&demand(
            Class::Realtime,
            "b",
            start + Duration::from_secs(10)
        )));
        tokio::time::sleep(Duration::from_secs(4)).await;
        // The one left alone was told at its latest start (deadline less the minimum call).
        let Err((Refusal::DeadlinePassed { retry_after }, at)) = left_task.await.expect("task")
        else {
            panic!("refused at its deadline")
        };
        assert_eq!(at, Duration::from_millis(1_900));
        assert!(retry_after >= Duration::from_secs(1));
        assert_eq!(budget.stats().queued, [1, 0, 0]);
        // Raised again, far beyond how long the room holds it: re-queued, still waiting.
        assert!(raised.raise(&demand(
            Class::Realtime,
            "b",
            start + Duration::from_secs(3 * 3_600)
        )));
        tokio::time::sleep(Duration::from_secs(2 * 3_600)).await;
        assert_eq!(budget.stats().queued, [1, 0, 0]);
        blocker.finish(Outcome::Responded(None));
        let granted_at = raised_task
            .await
            .expect("task")
            .expect("granted once the blocker finished");
        assert_eq!(granted_at.as_secs(), 2 * 3_600 + 5);
        assert_eq!(budget.stats().queued, [0, 0, 0]);
    }
}
