//! The budget's scheduling, with paused time: classes, fairness across clients, deadlines
//! refused at once, and a bounded queue.

use std::sync::Arc;
use std::time::Duration;

use genesys_proxy::upstream::budget::{
    Budget, BudgetSettings, Class, Demand, LocalBudget, Outcome, Refusal,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn settings(rate: u32) -> BudgetSettings {
    BudgetSettings {
        rate,
        period_secs: 1.0,
        burst: 0,
        max_concurrency: 4,
        max_queue: 100,
        realtime_reserve: 0,
        reset_guard_ms: 0,
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

#[tokio::test(start_paused = true)]
async fn realtime_demands_overtake_queued_report_work() {
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
    tokio::time::sleep(Duration::from_millis(250)).await;
    spawn_call(
        &budget,
        demand(Class::Realtime, "dashboard", Duration::from_secs(60)),
        "realtime".into(),
        done.clone(),
    );
    let mut served = Vec::new();
    for _ in 0..21 {
        served.push(order.recv().await.expect("served"));
    }
    let position = served.iter().position(|s| s == "realtime").expect("served");
    // At 10 a second, 3 reports went in the first 250 ms; the realtime demand is next.
    assert!(
        position <= 4,
        "realtime served at position {position}: {served:?}"
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
    tokio::time::sleep(Duration::from_millis(150)).await;
    let quiet_started = Instant::now();
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
        served.push(order.recv().await.expect("served"));
    }
    let waited = quiet_started.elapsed();
    // Fair share: the quiet client's three demands alternate with the flood's, so they are
    // done within about six turns at 10 a second, not after the flood's 50.
    assert!(
        waited <= Duration::from_millis(700),
        "quiet client waited {waited:?}: {served:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_demand_that_cannot_make_its_deadline_is_refused_at_once_with_the_expected_wait() {
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
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let started = Instant::now();
    let refusal = budget
        .acquire(demand(Class::Report, "reports", Duration::from_millis(500)))
        .await
        .expect_err("cannot wait 500 ms behind its own 30 demands at 10 a second");
    assert_eq!(started.elapsed(), Duration::ZERO, "refused at once");
    match refusal {
        Refusal::WouldMissDeadline { expected_wait } => {
            assert!(
                expected_wait >= Duration::from_millis(500),
                "{expected_wait:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // A realtime demand is not behind the reports: it is served in time.
    let permit = budget
        .acquire(demand(
            Class::Realtime,
            "dashboard",
            Duration::from_millis(500),
        ))
        .await
        .expect("realtime fits");
    assert!(started.elapsed() <= Duration::from_millis(200));
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
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(budget.stats().queued[Class::Report as usize], 5);
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
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "a fifth call waits for a free slot");
    assert_eq!(budget.stats().in_flight, 4);
    held.pop().expect("held").finish(Outcome::Responded(None));
    let fifth = waiting
        .await
        .expect("task")
        .expect("granted after a finish");
    fifth.finish(Outcome::Responded(None));
}
