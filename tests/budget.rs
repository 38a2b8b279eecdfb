//! The budget's scheduling. Against [`LocalBudget`] itself, with paused tokio time (the
//! budget runs on tokio's clock, so every grant instant is exact and a loaded machine
//! cannot move it): classes and their minimum shares, fairness across clients, deadlines
//! refused at once (with the minimum useful call time), a bounded queue, the concurrency
//! cap, and what one 429 costs. Through HTTP, against the simulator: the weights of the
//! configured API keys split the grants.
//!
//! Waits are event-driven: a test waits for the grants it needs to have happened, or for
//! spawned demands to be queued; where a paused-time test sleeps, the virtual time that
//! passes is what it asserts on. No assertion depends on how fast the machine is.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use genesys_proxy::upstream::budget::{
    Budget, BudgetSettings, Class, Demand, LocalBudget, Outcome, RateHeaders, Refusal,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use support::{TestApp, proxy_settings, sim_config};

fn settings(rate: u32) -> BudgetSettings {
    BudgetSettings {
        rate,
        period_secs: 1.0,
        burst: 0,
        max_concurrency: 4,
        max_queue: 100,
        realtime_reserve: 0,
        reset_guard_ms: 0,
        ..BudgetSettings::default()
    }
}

fn demand(class: Class, client: &str, timeout: Duration) -> Demand {
    Demand {
        class,
        client: Arc::from(client),
        weight: 1,
        deadline: Instant::now() + timeout,
    }
}

/// Queues `demand` and reports `label` on `done` when granted (the permit is finished at once).
fn spawn_call(
    budget: &Arc<LocalBudget>,
    demand: Demand,
    label: String,
    done: mpsc::UnboundedSender<String>,
) {
    let budget = budget.clone();
    tokio::spawn(async move {
        match budget.acquire(demand).await {
            Ok(permit) => {
                permit.finish(Outcome::Responded(None));
                let _ = done.send(label);
            }
            Err(refusal) => {
                let _ = done.send(format!("refused {label}: {refusal}"));
            }
        }
    });
}

/// Lets the spawned tasks run until `done` holds. It takes no virtual time: paused time
/// only moves when every task is idle, and a yielding task is not.
async fn settle(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{what} did not happen");
}

/// The next `n` labels reported on `order`.
async fn next_served(order: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
    let mut served = Vec::with_capacity(n);
    for _ in 0..n {
        served.push(order.recv().await.expect("a grant is reported"));
    }
    served
}

#[tokio::test(start_paused = true)]
async fn realtime_demands_overtake_queued_report_work() {
    // 10 a second, no burst: one grant every 100 ms.
    let budget = Arc::new(LocalBudget::new(settings(10)));
    let (done, mut order) = mpsc::unbounded_channel();
    for i in 0..20 {
        spawn_call(
            &budget,
            demand(Class::Report, "reports", Duration::from_secs(60)),
            format!("report{i}"),
            done.clone(),
        );
    }
    // Three reports have gone in when a real-time demand arrives, 17 still wait.
    let mut served = next_served(&mut order, 3).await;
    spawn_call(
        &budget,
        demand(Class::Realtime, "dashboard", Duration::from_secs(60)),
        "realtime".into(),
        done.clone(),
    );
    served.extend(next_served(&mut order, 18).await);
    assert_eq!(
        served.iter().position(|s| s == "realtime"),
        Some(3),
        "the real-time demand takes the very next grant: {served:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_flooding_client_does_not_delay_another_beyond_its_fair_share() {
    let budget = Arc::new(LocalBudget::new(settings(10)));
    let (done, mut order) = mpsc::unbounded_channel();
    for i in 0..50 {
        spawn_call(
            &budget,
            demand(Class::Report, "flood", Duration::from_secs(60)),
            format!("flood{i}"),
            done.clone(),
        );
    }
    // Two of the flood's demands have gone in when the quiet client asks three times.
    next_served(&mut order, 2).await;
    for i in 0..3 {
        spawn_call(
            &budget,
            demand(Class::Report, "quiet", Duration::from_secs(60)),
            format!("quiet{i}"),
            done.clone(),
        );
    }
    let mut served = Vec::new();
    while served
        .iter()
        .filter(|s: &&String| s.starts_with("quiet"))
        .count()
        < 3
    {
        served.extend(next_served(&mut order, 1).await);
    }
    // Fair share: the quiet client's demands alternate with the flood's (its k-th is among
    // the first 2k + 2 grants after it arrived), instead of waiting behind the flood's 48.
    let quiet: Vec<usize> = served
        .iter()
        .enumerate()
        .filter(|(_, s)| s.starts_with("quiet"))
        .map(|(at, _)| at)
        .collect();
    for (k, at) in quiet.iter().enumerate() {
        assert!(
            *at <= 2 * k + 1,
            "quiet{k} took grant {at} after its arrival (counting from 0): {served:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_demand_that_cannot_make_its_deadline_is_refused_at_once_with_the_expected_wait() {
    // 10 a second, no burst: grants at 0, 100, 200 ms...
    let created = Instant::now();
    let budget = Arc::new(LocalBudget::new(settings(10)));
    let (done, _order) = mpsc::unbounded_channel();
    for i in 0..30 {
        spawn_call(
            &budget,
            demand(Class::Report, "reports", Duration::from_secs(60)),
            format!("r{i}"),
            done.clone(),
        );
    }
    settle("the 30 demands are granted or queued", || {
        let stats = budget.stats();
        stats.granted + stats.queued[Class::Report as usize] as u64 == 30
    })
    .await;
    assert_eq!(budget.stats().granted, 1, "one grant at once, no burst");
    let refusal = budget
        .acquire(demand(Class::Report, "reports", Duration::from_millis(500)))
        .await
        .expect_err("cannot wait 500 ms behind its own 29 demands at 10 a second");
    assert_eq!(created.elapsed(), Duration::ZERO, "refused at once");
    match refusal {
        Refusal::WouldMissDeadline { expected_wait } => {
            // The next grant in 100 ms, then the 29 queued ahead of it, 100 ms each.
            assert_eq!(expected_wait, Duration::from_secs(3), "{expected_wait:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // A real-time demand is not behind the reports: it takes the next grant, at 100 ms.
    let permit = budget
        .acquire(demand(
            Class::Realtime,
            "dashboard",
            Duration::from_millis(500),
        ))
        .await
        .expect("realtime fits");
    assert_eq!(created.elapsed(), Duration::from_millis(100));
    permit.finish(Outcome::Responded(None));
}

#[tokio::test(start_paused = true)]
async fn the_queue_is_bounded() {
    let budget = Arc::new(LocalBudget::new(BudgetSettings {
        max_queue: 5,
        max_concurrency: 1,
        ..settings(100)
    }));
    let held = budget
        .acquire(demand(Class::Report, "r", Duration::from_secs(5)))
        .await
        .expect("first");
    let (done, _order) = mpsc::unbounded_channel();
    for i in 0..5 {
        spawn_call(
            &budget,
            demand(Class::Report, "r", Duration::from_secs(3600)),
            format!("r{i}"),
            done.clone(),
        );
    }
    settle("five demands are queued", || {
        budget.stats().queued[Class::Report as usize] == 5
    })
    .await;
    let refusal = budget
        .acquire(demand(Class::Report, "r", Duration::from_secs(3600)))
        .await
        .expect_err("queue full");
    assert!(matches!(refusal, Refusal::QueueFull { .. }), "{refusal:?}");
    assert!(refusal.retry_after() >= Duration::from_secs(1));
    held.finish(Outcome::Responded(None));
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_cap_holds_until_permits_finish() {
    let budget = Arc::new(LocalBudget::new(BudgetSettings {
        rate: 1000,
        burst: 1000,
        ..settings(1000)
    }));
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            budget
                .acquire(demand(Class::Realtime, "a", Duration::from_secs(5)))
                .await
                .expect("granted"),
        );
    }
    let waiting = {
        let budget = budget.clone();
        tokio::spawn(async move {
            budget
                .acquire(demand(Class::Realtime, "a", Duration::from_secs(5)))
                .await
        })
    };
    // A whole second of virtual time: at 1,000 a second with a burst of 1,000, pacing
    // holds nothing back; only the cap does.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "a fifth call waits for a free slot");
    assert_eq!(budget.stats().in_flight, 4);
    held.pop().expect("held").finish(Outcome::Responded(None));
    let fifth = waiting
        .await
        .expect("task")
        .expect("granted after a finish");
    fifth.finish(Outcome::Responded(None));
}

/// Genesys' defaults: 300 a minute, the default burst, reserve and guard.
fn genesys() -> BudgetSettings {
    BudgetSettings {
        max_queue: 1_000,
        ..BudgetSettings::default()
    }
}

fn window(count: u32, reset_secs: u64) -> Option<RateHeaders> {
    Some(RateHeaders {
        count,
        allowed: 300,
        reset: Duration::from_secs(reset_secs),
    })
}

#[tokio::test(start_paused = true)]
async fn one_429_with_room_in_the_window_costs_its_retry_after_not_the_window() {
    let budget = Arc::new(LocalBudget::new(genesys()));
    let first = budget
        .acquire(demand(Class::Realtime, "a", Duration::from_secs(10)))
        .await
        .expect("granted");
    first.finish(Outcome::Responded(window(1, 60)));
    let second = budget
        .acquire(demand(Class::Realtime, "a", Duration::from_secs(10)))
        .await
        .expect("granted");
    // One 429 with Retry-After 3 while the token's window shows 2 of 300.
    second.finish(Outcome::RateLimited {
        retry_after: Duration::from_secs(3),
        headers: window(2, 59),
    });
    let met = Instant::now();
    assert!(budget.stats().frozen);

    // A demand whose deadline allows waiting out the freeze waits and is served.
    let waiting: Vec<_> = [Class::Realtime, Class::Report, Class::Hydrate]
        .into_iter()
        .map(|class| {
            let budget = budget.clone();
            tokio::spawn(async move {
                let permit = budget
                    .acquire(demand(class, "b", Duration::from_secs(10)))
                    .await;
                (permit, met.elapsed())
            })
        })
        .collect();

    settle("one demand of each class is queued", || {
        budget.stats().queued == [1, 1, 1]
    })
    .await;

    // One that cannot is told at once when to try again: the time left of the freeze (and
    // the turn of the one real-time demand queued ahead of it), counting down.
    let mut quoted = Vec::new();
    for _ in 0..3 {
        let refusal = budget
            .acquire(demand(Class::Realtime, "c", Duration::from_millis(500)))
            .await
            .expect_err("cannot wait out the freeze");
        quoted.push(refusal.retry_after());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        quoted[0] >= Duration::from_secs(3) && quoted[0] <= Duration::from_millis(3_500),
        "{quoted:?}"
    );
    assert_eq!(quoted[1], quoted[0] - Duration::from_secs(1), "{quoted:?}");
    assert_eq!(quoted[2], quoted[0] - Duration::from_secs(2), "{quoted:?}");
    for task in waiting {
        let (permit, after) = task.await.expect("task");
        let permit = permit.expect("served once the freeze has passed");
        // The burst has room for all three: each is served as the freeze ends.
        assert_eq!(
            after,
            Duration::from_secs(3),
            "served {after:?} after the 429"
        );
        permit.finish(Outcome::Responded(window(5, 55)));
    }
    assert!(!budget.stats().frozen);
    // After the freeze, a demand with a short deadline is served at once: the window
    // is not spent.
    let started = Instant::now();
    let permit = budget
        .acquire(demand(Class::Report, "c", Duration::from_millis(500)))
        .await
        .expect("the window has room");
    assert_eq!(started.elapsed(), Duration::ZERO);
    permit.finish(Outcome::Responded(window(6, 55)));
}

#[tokio::test(start_paused = true)]
async fn a_429_whose_headers_say_the_window_is_spent_waits_for_its_reset() {
    let budget = Arc::new(LocalBudget::new(BudgetSettings {
        reset_guard_ms: 0,
        ..genesys()
    }));
    let permit = budget
        .acquire(demand(Class::Realtime, "a", Duration::from_secs(10)))
        .await
        .expect("granted");
    permit.finish(Outcome::RateLimited {
        retry_after: Duration::from_secs(3),
        headers: window(300, 20),
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    let refusal = budget
        .acquire(demand(Class::Realtime, "a", Duration::from_secs(10)))
        .await
        .expect_err("the window is spent for 16 s more");
    assert_eq!(refusal.retry_after(), Duration::from_secs(16));
}

#[tokio::test(start_paused = true)]
async fn no_permit_is_granted_with_less_than_the_minimum_call_time_left() {
    // 10 a second, no burst: one grant every 100 ms; the default minimum call is 100 ms.
    let budget = Arc::new(LocalBudget::new(settings(10)));
    let started = Instant::now();
    budget
        .acquire(demand(Class::Realtime, "a", Duration::from_secs(5)))
        .await
        .expect("first")
        .finish(Outcome::Responded(None));
    // The next start is in 100 ms, which would leave 50 ms: refused at once.
    let refusal = budget
        .acquire(demand(Class::Realtime, "a", Duration::from_millis(150)))
        .await
        .expect_err("would start with 50 ms left");
    assert!(
        matches!(refusal, Refusal::WouldMissDeadline { .. }),
        "{refusal:?}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO);

    // Queued in time, then overtaken by real time: told when its latest useful start
    // (deadline less 100 ms) passes, instead of granted 50 ms before its deadline.
    let report = {
        let budget = budget.clone();
        tokio::spawn(async move {
            let result = budget
                .acquire(demand(Class::Report, "r", Duration::from_millis(350)))
                .await;
            (
                result.map(|p| p.finish(Outcome::Responded(None))),
                started.elapsed(),
            )
        })
    };
    settle("the report demand is queued", || {
        budget.stats().queued[Class::Report as usize] == 1
    })
    .await;
    let (done, mut order) = mpsc::unbounded_channel();
    for i in 0..2 {
        spawn_call(
            &budget,
            demand(Class::Realtime, "rt", Duration::from_secs(5)),
            format!("rt{i}"),
            done.clone(),
        );
    }
    let (result, at) = report.await.expect("task");
    assert!(
        matches!(result, Err(Refusal::DeadlinePassed { .. })),
        "{result:?} at {at:?}"
    );
    assert_eq!(at, Duration::from_millis(250));
    for _ in 0..2 {
        assert!(order.recv().await.expect("served").starts_with("rt"));
    }
}

#[tokio::test(start_paused = true)]
async fn under_oversubscription_each_class_gets_at_least_its_minimum_share() {
    // 10 a second for 20 s, with ten times that demand in every class.
    let budget = Arc::new(LocalBudget::new(BudgetSettings {
        max_queue: 10_000,
        ..settings(10)
    }));
    let (done, mut order) = mpsc::unbounded_channel();
    for class in Class::ALL {
        for i in 0..2_000 {
            spawn_call(
                &budget,
                demand(class, class.as_str(), Duration::from_secs(3_600)),
                format!("{}{i}", class.as_str()),
                done.clone(),
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut served = [0_u32; 3];
    while let Ok(label) = order.try_recv() {
        let class = Class::ALL
            .into_iter()
            .find(|c| label.starts_with(c.as_str()))
            .expect("a class");
        served[class as usize] += 1;
    }
    let total: u32 = served.iter().sum();
    let share = |class: Class| f64::from(served[class as usize]) / f64::from(total);
    println!("grants by class over 20 s: {served:?}");
    assert!((195..=205).contains(&total), "{served:?}");
    assert!(share(Class::Report) >= 0.19, "reports {served:?}");
    assert!(share(Class::Hydrate) >= 0.045, "hydration {served:?}");
    // Real time keeps priority over the rest: everything beyond the minimum shares.
    assert!(share(Class::Realtime) >= 0.73, "real time {served:?}");
}

/// The key of the weight-3 client of [`api_key_weights_split_the_grants_through_http`].
const WALLBOARD_KEY: &str = "gp_test_wallboard_key_0123456789abcdefghijklmnopqrs";
/// The key of its weight-1 client.
const BATCH_KEY: &str = "gp_test_batch_key_0123456789abcdefghijklmnopqrstuvw";

#[tokio::test]
async fn api_key_weights_split_the_grants_through_http() {
    use genesys_proxy::auth::{ClientSettings, Scope, hash_key};
    const CALLS_EACH: usize = 36;
    // Two keys configured with weights 3 and 1; a small budget (20 calls a second, one
    // at a time) and a request timeout far beyond the 3.6 s the 72 calls take.
    let mut settings = proxy_settings();
    settings.server.request_timeout_ms = 60_000;
    settings.budget = BudgetSettings {
        rate: 20,
        period_secs: 1.0,
        burst: 0,
        max_concurrency: 1,
        reset_guard_ms: 0,
        ..BudgetSettings::default()
    };
    for (name, key, weight) in [("wallboard", WALLBOARD_KEY, 3), ("batch", BATCH_KEY, 1)] {
        settings.clients.push(ClientSettings {
            name: name.into(),
            key_sha256: hash_key(key),
            scopes: vec![Scope::ConversationsRead],
            weight,
        });
    }
    let app = TestApp::start(sim_config(), settings).await;
    let ids: Vec<_> = app
        .sim
        .data()
        .conversations
        .iter()
        .map(|c| c.id)
        .take(2 * CALLS_EACH)
        .collect();
    // The test holds the budget's one slot until both clients' calls are all queued, so
    // the split does not depend on how fast requests arrive on a loaded machine.
    let budget = app.state.client.budget().clone();
    let held = budget
        .acquire(Demand {
            class: Class::Realtime,
            client: Arc::from("test"),
            weight: 1,
            deadline: Instant::now() + Duration::from_secs(60),
        })
        .await
        .expect("the slot");
    let completions = Mutex::new(Vec::new());
    let load = |key: &'static str, ids: &[uuid::Uuid]| {
        let requests: Vec<_> = ids
            .iter()
            .copied()
            .map(|id| {
                let completions = &completions;
                let app = &app;
                async move {
                    let reply = app
                        .get_with(&format!("/conversations/{id}"), key, &[])
                        .await;
                    completions.lock().expect("lock").push(key);
                    reply
                }
            })
            .collect();
        futures_util::future::join_all(requests)
    };
    let release = async {
        let queued_at = Instant::now();
        while budget.stats().queued[Class::Realtime as usize] < 2 * CALLS_EACH {
            assert!(
                queued_at.elapsed() < Duration::from_secs(30),
                "the calls are queued: {:?}",
                budget.stats()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        held.finish(Outcome::Responded(None));
    };
    let ((), wallboard, batch) = tokio::join!(
        release,
        load(WALLBOARD_KEY, &ids[..CALLS_EACH]),
        load(BATCH_KEY, &ids[CALLS_EACH..]),
    );

    for reply in wallboard.iter().chain(&batch) {
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(
            reply
                .header("cache-status")
                .is_some_and(|status| status.contains("fwd=miss")),
            "{:?}",
            reply.headers
        );
    }
    assert_eq!(app.upstream_conversation_calls(), 2 * CALLS_EACH as u64);
    let completions = completions.into_inner().expect("lock");
    let wallboard_done = completions
        .iter()
        .rposition(|key| *key == WALLBOARD_KEY)
        .expect("wallboard served");
    let batch_by_then = completions[..wallboard_done]
        .iter()
        .filter(|key| **key == BATCH_KEY)
        .count();
    let order: String = completions
        .iter()
        .map(|key| if *key == WALLBOARD_KEY { 'W' } else { 'b' })
        .collect();
    println!("completions (W = wallboard, b = batch): {order}");
    // Weighted-fair turns, 3 to 1: by the wallboard's 36th call the batch client has had
    // 12. The margin covers replies that overtake each other on their way back to the
    // client; equal weights give 36 (each client's turns alternate).
    assert!(
        (9..=16).contains(&batch_by_then),
        "the batch client had {batch_by_then} calls by the wallboard's last (W = wallboard, b = batch, in completion order): {order}"
    );
}
