//! DRAFT, not built (cargo does not discover tests/drafts/): the end-to-end tests of
//! Genesys notifications against the simulator once h18sim's Notifications API is merged
//! (contract: notes/NOTIFICATIONS-CONTRACT.md). To add: move this file to
//! tests/notifications_sim.rs and replace each `sim_control(...)` with the control API the
//! simulator documents in genesys-sim/README.md (names below are placeholders).
//!
//! Scenarios (each asserts bodies, headers, status and simulator counters):
//! 1. subscribed: readyz `notifications.status == "ok"`; a live conversation read once, then
//!    changed by the simulator, is served with `detail=pushed` and its new state, with no
//!    further GET /conversations call (sim counter unchanged).
//! 2. dropped socket: the sim drops sockets; the proxy reconnects to the same channel (sim:
//!    sockets accepted +1, channels created unchanged), `reconnects_total{reason="dropped"}`
//!    and `gaps_total` +1; the pushed entry falls back to the TTL (a read after the TTL is a
//!    `fwd=stale`/refresh, one upstream call).
//! 3. missed heartbeats: the sim stops heartbeats (and pongs); with
//!    `silence_timeout_secs = 2`, `ping_after_secs = 1` the proxy reconnects
//!    (`reason="silence"`).
//! 4. socket_closing: the sim sends maintenance; reconnect to the same connectUri at once
//!    (`reason="socket_closing"`), channels created unchanged.
//! 5. re-creation before expiry: sim channel lifetime 4 s, `renew_before_secs = 2`: a second
//!    channel is created and subscribed before the first expires; `gaps_total` stays 0.
//! 6. topic limits: a sim org with 1,500 queues: 2 channels of 750 topics (sim: subscription
//!    calls 2, no `too.many.subscriptions`).
//! 7. refused subscriptions: the sim's permission fault on: readyz `degraded` with the 403,
//!    `genesys_proxy_notification_degraded 1`, conversations still served (polling).
//! 8. no wrong conversation: two live conversations in one queue, only one changed: the
//!    other's ETag and body are unchanged.

mod support;

use std::time::Duration;

use genesys_proxy::notifications::settings::Mode;
use support::{Reply, TestApp, proxy_settings, sim_config};
use tokio::time::Instant;

/// Placeholder for the simulator's control API (h18sim documents the real shapes).
async fn sim_control(app: &TestApp, path: &str, body: serde_json::Value) {
    let reply = app
        .http
        .post(format!("{}{path}", app.sim.base_url()))
        .json(&body)
        .send()
        .await
        .expect("sim control");
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

async fn metrics(app: &TestApp) -> String {
    app.get_with("/metrics", "", &[]).await.text()
}

async fn subscribed_app(tune: impl FnOnce(&mut genesys_proxy::Settings)) -> TestApp {
    let mut settings = proxy_settings();
    settings.notifications.mode = Mode::All;
    settings.notifications.reconnect_min_ms = 50;
    tune(&mut settings);
    let app = TestApp::start(sim_config(), settings).await;
    wait_for(&app, Duration::from_secs(20), |r| {
        r.json()["components"]["notifications"]["status"] == "ok"
    })
    .await;
    app
}

async fn wait_for(app: &TestApp, limit: Duration, done: impl Fn(&Reply) -> bool) -> Reply {
    let started = Instant::now();
    loop {
        let reply = app.get_with("/readyz", "", &[]).await;
        if done(&reply) {
            return reply;
        }
        assert!(started.elapsed() < limit, "{}", reply.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `/metrics` shows `name` at least `at_least`.
async fn wait_metric(app: &TestApp, name: &str, at_least: u64) {
    let started = Instant::now();
    while metric(&metrics(app).await, name) < at_least {
        assert!(started.elapsed() < Duration::from_secs(20), "{name} < {at_least}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_changed_conversation_is_pushed_without_polling() {
    let app = subscribed_app(|_| {}).await;
    let id = app.live_id();
    let path = format!("/conversations/{id}");
    let before = app.get(&path).await;
    let calls = app.upstream_conversation_calls();
    // Let the simulated conversation change (its clock moves it on; events follow).
    app.sim.state().advance_clock(chrono::TimeDelta::seconds(30));
    wait_metric(&app, "genesys_proxy_notification_events_total{outcome=\"applied\"}", 1).await;
    let after = app.get(&path).await;
    assert!(after.header("cache-status").expect("cs").ends_with("detail=pushed"));
    assert_ne!(after.header("etag"), before.header("etag"));
    assert_eq!(app.upstream_conversation_calls(), calls, "no polling");
}

#[tokio::test]
async fn a_dropped_socket_reconnects_to_the_same_channel_and_opens_a_gap() {
    let app = subscribed_app(|_| {}).await;
    sim_control(&app, "/sim/notifications/drop", serde_json::json!({})).await;
    wait_metric(&app, "genesys_proxy_notification_reconnects_total{reason=\"dropped\"}", 1).await;
    wait_for(&app, Duration::from_secs(20), |r| {
        r.json()["components"]["notifications"]["connected"] == 1
    })
    .await;
    let text = metrics(&app).await;
    assert_eq!(metric(&text, "genesys_proxy_notification_channels_created_total"), 1);
    assert!(metric(&text, "genesys_proxy_notification_gaps_total") >= 1);
}

#[tokio::test]
async fn missed_heartbeats_reconnect() {
    let app = subscribed_app(|s| {
        s.notifications.ping_after_secs = 1;
        s.notifications.silence_timeout_secs = 2;
    })
    .await;
    sim_control(&app, "/sim/notifications/heartbeats", serde_json::json!({"enabled": false})).await;
    wait_metric(&app, "genesys_proxy_notification_reconnects_total{reason=\"silence\"}", 1).await;
}

#[tokio::test]
async fn socket_closing_reconnects_to_the_same_uri() {
    let app = subscribed_app(|_| {}).await;
    sim_control(&app, "/sim/notifications/maintenance", serde_json::json!({})).await;
    wait_metric(
        &app,
        "genesys_proxy_notification_reconnects_total{reason=\"socket_closing\"}",
        1,
    )
    .await;
    assert_eq!(
        metric(&metrics(&app).await, "genesys_proxy_notification_channels_created_total"),
        1
    );
}

#[tokio::test]
async fn a_channel_is_re_created_before_it_expires() {
    let app = subscribed_app(|s| s.notifications.renew_before_secs = 2).await;
    // The sim's channel lifetime must be set before the channel is created: in the real
    // test, start the sim with a 4 s lifetime (its SimConfig field) instead.
    sim_control(&app, "/sim/notifications/settings", serde_json::json!({"channel_lifetime_secs": 4})).await;
    wait_metric(&app, "genesys_proxy_notification_reconnects_total{reason=\"renewal\"}", 1).await;
    assert_eq!(metric(&metrics(&app).await, "genesys_proxy_notification_gaps_total"), 0);
}

#[tokio::test]
async fn refused_subscriptions_degrade_to_polling() {
    let mut settings = proxy_settings();
    settings.notifications.mode = Mode::All;
    let app = TestApp::start(sim_config(), settings).await;
    sim_control(&app, "/sim/notifications/permissions", serde_json::json!({"refuse": true})).await;
    let reply = wait_for(&app, Duration::from_secs(20), |r| {
        r.json()["components"]["notifications"]["status"] == "degraded"
    })
    .await;
    assert_eq!(reply.status, 200);
    let id = app.live_id();
    assert_eq!(app.get(&format!("/conversations/{id}")).await.status, 200);
    assert_eq!(metric(&metrics(&app).await, "genesys_proxy_notification_degraded"), 1);
}
