//! A request that joins a conversation fetch already in flight raises it to its own class
//! and deadline: a real-time lookup is not held behind report work by a hydration fetch it
//! joined, nor refused when that fetch's own deadline passes; the id still costs exactly
//! one upstream call. Simulator and proxy on port 0, over HTTP; the budget's queue is read
//! from its stats, and filled or held through it directly.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as Days;
use genesys_proxy::upstream::budget::{BudgetSettings, Demand, Outcome};
use genesys_proxy::upstream::{Budget, Class};
use serde_json::json;
use support::{Reply, TestApp, anchor, assert_problem, proxy_settings, sim_config};

fn rfc(days_before_anchor: i64) -> String {
    (anchor() - Days::days(days_before_anchor)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn budget(app: &TestApp) -> Arc<dyn Budget> {
    app.state.client.budget().clone()
}

/// Waits (at most 5 s) until the budget's queue satisfies `ready`.
async fn queue_until(app: &TestApp, what: &str, ready: impl Fn([usize; 3]) -> bool) {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let queued = budget(app).stats().queued;
        if ready(queued) {
            return;
        }
        assert!(Instant::now() < give_up, "{what}: queued {queued:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn demand(class: Class, client: &str, timeout: Duration) -> Demand {
    Demand {
        class,
        client: Arc::from(client),
        weight: 1,
        deadline: tokio::time::Instant::now() + timeout,
    }
}

#[tokio::test]
async fn a_real_time_lookup_joining_a_queued_hydration_fetch_is_served_at_real_time_priority() {
    let mut settings = proxy_settings();
    // One call every half second; report and hydration work queues.
    settings.budget = BudgetSettings {
        rate: 120,
        period_secs: 60.0,
        burst: 0,
        realtime_reserve: 1,
        reset_guard_ms: 0,
        ..BudgetSettings::default()
    };
    settings.server.request_timeout_ms = 10_000;
    settings.reports.hydrate_max = 1;
    let app = TestApp::start(sim_config(), settings).await;
    let search = json!({"from": rfc(3), "to": rfc(1), "page_size": 1});
    let first = app.post("/reports/search", &search).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let id = first.json()["results"][0]["id"]
        .as_str()
        .expect("a hit")
        .to_owned();
    assert_eq!(app.upstream_conversation_calls(), 0);

    // Report work queues: ten report calls, about five seconds of budget.
    let mut reports = Vec::new();
    for _ in 0..10 {
        let budget = budget(&app);
        reports.push(tokio::spawn(async move {
            let permit = budget
                .acquire(demand(Class::Report, "reporter", Duration::from_secs(30)))
                .await
                .expect("a report call is served in time");
            permit.finish(Outcome::Responded(None));
        }));
    }
    queue_until(&app, "report work queued", |q| q[1] >= 8).await;

    // The same search with its hit hydrated: the page is cached, the hydration fetch of
    // `id` queues at hydration class, behind the report work.
    let hydrating = tokio::spawn({
        let (http, base) = (app.http.clone(), app.base.clone());
        let body = json!({"from": rfc(3), "to": rfc(1), "page_size": 1, "include": "conversation"});
        async move {
            let reply = http
                .post(format!("{base}/reports/search"))
                .bearer_auth(support::ADMIN_KEY)
                .json(&body)
                .send()
                .await
                .expect("sent");
            (
                reply.status().as_u16(),
                reply.json::<serde_json::Value>().await.expect("json"),
            )
        }
    });
    queue_until(&app, "hydration queued", |q| q[2] == 1).await;
    let reports_ahead = budget(&app).stats().queued[1];
    assert!(reports_ahead >= 6, "{reports_ahead} report calls ahead");

    // A real-time lookup of that id joins the fetch and raises it to real time: it is
    // served at the next real-time turn, not after the report queue.
    let asked = Instant::now();
    let reply = app.get(&format!("/conversations/{id}")).await;
    let took = asked.elapsed();
    let reports_left = budget(&app).stats().queued[1];
    assert_eq!(reply.status, 200, "{}", reply.text());
    let status = reply.header("cache-status").expect("cache-status");
    assert!(
        status.contains("collapsed"),
        "joined the hydration fetch: {status}"
    );
    assert!(
        reports_left > 0 && took < Duration::from_millis(2_500),
        "answered in {took:?} with {reports_left} report calls still queued ({reports_ahead} were ahead)"
    );
    assert_eq!(app.state.conversations.stats().raised, 1);

    // The search got its hydration from the same fetch: one upstream call for the id.
    let (status, body) = hydrating.await.expect("search task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["conversation"]["id"], id.as_str());
    for report in reports {
        report.await.expect("report task");
    }
    assert_eq!(app.upstream_conversation_calls(), 1);
    assert_eq!(
        budget(&app).stats().granted_by_class[2],
        0,
        "no hydration-class call"
    );
}

#[tokio::test]
async fn a_joiner_with_a_later_deadline_keeps_the_fetch_alive_past_the_leaders() {
    let mut settings = proxy_settings();
    // One call at a time; the test holds the one slot, so the fetch queues.
    settings.budget.max_concurrency = 1;
    settings.server.request_timeout_ms = 4_000;
    let app = TestApp::start(sim_config(), settings).await;
    let wait = app.state.upstream_wait();
    let id = app.ended_id();
    let path = format!("/conversations/{id}");
    let held = budget(&app)
        .acquire(demand(Class::Realtime, "test", Duration::from_secs(30)))
        .await
        .expect("the slot");

    let started = Instant::now();
    let leader = tokio::spawn({
        let (http, url) = (app.http.clone(), format!("{}{path}", app.base));
        async move {
            let reply = http
                .get(url)
                .bearer_auth(support::ADMIN_KEY)
                .send()
                .await
                .expect("sent");
            let reply = Reply {
                status: reply.status().as_u16(),
                headers: reply.headers().clone(),
                body: reply.bytes().await.expect("body"),
            };
            (reply, started.elapsed())
        }
    });
    queue_until(&app, "the leader's fetch queued", |q| q[0] == 1).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let joiner = tokio::spawn({
        let (http, url) = (app.http.clone(), format!("{}{path}", app.base));
        async move {
            let reply = http
                .get(url)
                .bearer_auth(support::ADMIN_KEY)
                .send()
                .await
                .expect("sent");
            let status = reply.status().as_u16();
            let cache_status = reply.headers().get("cache-status").cloned();
            (status, cache_status, started.elapsed())
        }
    });
    // The slot frees after the leader's deadline, before the joiner's.
    let free_at = wait + Duration::from_millis(500);
    tokio::time::sleep(free_at.saturating_sub(started.elapsed())).await;
    assert_eq!(
        budget(&app).stats().queued[0],
        1,
        "the fetch is still queued"
    );
    held.finish(Outcome::Responded(None));

    // The leader stopped waiting at its own deadline, with a 503 of its own.
    let (reply, took) = leader.await.expect("leader task");
    assert_problem(&reply, 503);
    assert!(
        reply.header("retry-after").is_some(),
        "a 503 has Retry-After"
    );
    assert!(took >= wait && took < free_at, "the leader waited {took:?}");
    // The joiner kept the fetch alive and got it.
    let (status, cache_status, took) = joiner.await.expect("joiner task");
    assert_eq!(status, 200);
    assert!(
        cache_status
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|s| s.contains("collapsed")),
        "{cache_status:?}"
    );
    assert!(took >= free_at, "served once the slot freed ({took:?})");
    assert_eq!(app.upstream_conversation_calls(), 1);
    let again = app.get(&path).await;
    assert_eq!(again.status, 200);
    assert!(
        again
            .header("cache-status")
            .expect("cache-status")
            .contains("; hit")
    );
    assert_eq!(app.upstream_conversation_calls(), 1);
}
