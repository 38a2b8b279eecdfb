//! Genesys notifications end to end: the proxy and the simulator on port 0, over HTTP and a
//! real WebSocket, driven through the simulator's documented controls (`/sim/faults`,
//! `/sim/notifications/*`, `/sim/clock/advance`): a change pushed into the cache without
//! polling and never onto another conversation, reconnection after a dropped socket, after a
//! silent one and after `socket_closing`, re-creation of a channel before it expires without a
//! gap, topics spread over channels at the topic limit, and refused subscriptions degrading
//! to polling. Every wait polls for a condition with a generous deadline; nothing is timed.

mod support;

use std::time::Duration;

use genesys_proxy::notifications::settings::Mode;
use genesys_sim::{SimConfig, SocketSilence};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Reply, TestApp, eventually, eventually_some, proxy_settings, sim_config};

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

async fn metrics(app: &TestApp) -> String {
    app.get_with("/metrics", "", &[]).await.text()
}

async fn sim_get(app: &TestApp, path: &str) -> Value {
    app.http
        .get(format!("{}{path}", app.sim.base_url()))
        .send()
        .await
        .expect("sim control")
        .json()
        .await
        .expect("sim JSON")
}

async fn sim_send(app: &TestApp, method: Method, path: &str, body: Value) -> Value {
    let reply = app
        .http
        .request(method, format!("{}{path}", app.sim.base_url()))
        .json(&body)
        .send()
        .await
        .expect("sim control");
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.unwrap_or(Value::Null)
}

/// The simulator's notification counter `name`.
async fn sim_counter(app: &TestApp, name: &str) -> u64 {
    sim_get(app, "/sim/notifications").await["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("counter {name}"))
}

async fn readiness(app: &TestApp) -> Reply {
    app.get_with("/readyz", "", &[]).await
}

async fn notifications_status(app: &TestApp) -> Value {
    readiness(app).await.json()["components"]["notifications"].clone()
}

/// A proxy subscribed to every queue of a simulator started with `sim`, once its
/// `notifications` component says `ok`.
async fn subscribed_app(
    sim: SimConfig,
    tune: impl FnOnce(&mut genesys_proxy::notifications::settings::NotificationSettings),
) -> TestApp {
    let mut settings = proxy_settings();
    settings.notifications.mode = Mode::All;
    settings.notifications.reconnect_min_ms = 50;
    tune(&mut settings.notifications);
    let app = TestApp::start(sim, settings).await;
    until_connected(&app, "notifications ok").await;
    app
}

async fn default_subscribed_app() -> TestApp {
    subscribed_app(sim_config(), |_| {}).await
}

/// Waits until the proxy's `notifications` component says `ok` (`what`: why it should).
async fn until_connected(app: &TestApp, what: &str) {
    eventually(what, || async {
        notifications_status(app).await["status"] == "ok"
    })
    .await;
}

/// Waits until the simulator has accepted at least `sockets` sockets.
async fn until_sockets(app: &TestApp, sockets: u64) {
    eventually(&format!("{sockets} sockets"), || async {
        sim_counter(app, "sockets_accepted").await >= sockets
    })
    .await;
}

/// The proxy's count of reconnections for `reason`.
async fn reconnects(app: &TestApp, reason: &str) -> u64 {
    let name = format!("genesys_proxy_notification_reconnects_total{{reason=\"{reason}\"}}");
    metric(&metrics(app).await, &name)
}

/// A subscribed proxy that pings after 1 s of silence and gives up after 2 s, over sockets
/// that heartbeat every 200 ms until the simulator's `socket_silence` fault is set to
/// `silence`.
async fn app_with_silent_sockets(silence: SocketSilence) -> TestApp {
    let mut sim = sim_config();
    sim.notifications.heartbeat_interval = Duration::from_millis(200);
    let app = subscribed_app(sim, |n| {
        n.ping_after_secs = 1;
        n.silence_timeout_secs = 2;
    })
    .await;
    sim_send(
        &app,
        Method::PUT,
        "/sim/faults",
        json!({ "socket_silence": silence }),
    )
    .await;
    app
}

/// The versions `/sim/changes` gives each running conversation.
async fn versions(app: &TestApp) -> std::collections::BTreeMap<String, u64> {
    sim_get(app, "/sim/changes").await["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id").to_owned(),
                c["version"].as_u64().expect("version"),
            )
        })
        .collect()
}

/// Reads every id once (filling the cache), moves the simulated clock on until at least
/// one of them has changed, and waits until the proxy has applied an event. Returns the
/// ids, their first replies, and the versions before and after.
async fn cache_then_change(app: &TestApp) -> (Vec<String>, Vec<Reply>, ChangedVersions) {
    let ids = app.live_ids();
    assert!(ids.len() >= 2, "the org has live conversations");
    let mut first = Vec::new();
    for id in &ids {
        let reply = app.get(&format!("/conversations/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        first.push(reply);
    }
    let before = versions(app).await;
    let applied = r#"genesys_proxy_notification_events_total{outcome="applied"}"#;
    let applied_before = metric(&metrics(app).await, applied);
    let mut after = before.clone();
    // Small steps, so that some conversations change and (most) are still running.
    for _ in 0..60 {
        app.advance_sim_clock(20).await;
        after = versions(app).await;
        if ids.iter().any(|id| after.get(id) > before.get(id)) {
            break;
        }
    }
    assert!(
        ids.iter().any(|id| after.get(id) > before.get(id)),
        "some cached conversation changed"
    );
    eventually("an event applied", || async {
        metric(&metrics(app).await, applied) > applied_before
    })
    .await;
    (ids, first, ChangedVersions { before, after })
}

struct ChangedVersions {
    before: std::collections::BTreeMap<String, u64>,
    after: std::collections::BTreeMap<String, u64>,
}

impl ChangedVersions {
    fn changed(&self, id: &str) -> bool {
        self.after.get(id) > self.before.get(id)
    }
}

#[tokio::test]
async fn a_changed_conversation_is_pushed_and_served_fresh_without_polling() {
    let app = default_subscribed_app().await;
    assert_eq!(sim_counter(&app, "sockets_accepted").await, 1);
    let (ids, first, _) = cache_then_change(&app).await;
    let calls = app.upstream_conversation_calls();
    assert_eq!(calls, ids.len() as u64, "one fetch per conversation");

    // A change need not show in the summary (a hold does not): the clock moves on until a
    // pushed conversation shows new data.
    let (i, reply) = eventually_some("served as pushed with new data", || async {
        for (i, id) in ids.iter().enumerate() {
            let reply = app.get(&format!("/conversations/{id}")).await;
            let pushed = reply
                .header("cache-status")
                .unwrap_or_default()
                .contains("detail=pushed");
            if pushed && reply.header("etag") != first[i].header("etag") {
                return Some((i, reply));
            }
        }
        app.advance_sim_clock(20).await;
        // Time for the pump to push what the step changed.
        tokio::time::sleep(Duration::from_millis(150)).await;
        None
    })
    .await;
    assert_eq!(reply.status, 200);
    let status = reply.header("cache-status").expect("cache-status");
    assert!(
        status.starts_with("genesys-proxy; hit;"),
        "fresh hit: {status}"
    );
    assert_ne!(reply.header("etag"), first[i].header("etag"), "new data");
    assert_ne!(reply.json(), first[i].json());
    assert_eq!(reply.json()["id"], ids[i].as_str(), "its own conversation");
    assert_eq!(app.upstream_conversation_calls(), calls, "no polling");
    assert_eq!(
        sim_counter(&app, "sockets_accepted").await,
        1,
        "one socket all along"
    );
}

#[tokio::test]
async fn no_event_updates_a_conversation_that_did_not_change() {
    let app = default_subscribed_app().await;
    let (ids, first, versions) = cache_then_change(&app).await;
    let calls = app.upstream_conversation_calls();
    // Give the pump a few ticks to deliver everything due.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut unchanged = 0;
    for (i, id) in ids.iter().enumerate() {
        let reply = app.get(&format!("/conversations/{id}")).await;
        assert_eq!(reply.json()["id"], id.as_str());
        if !versions.changed(id) {
            unchanged += 1;
            assert_eq!(reply.header("etag"), first[i].header("etag"), "{id}");
            assert_eq!(reply.body, first[i].body, "{id}");
            // (It may still be served as `detail=pushed`: fetched while its queue was
            // subscribed, it is kept fresh by the notifications.)
        }
    }
    assert_eq!(app.upstream_conversation_calls(), calls);
    // The test proves something only if some conversation stayed as it was.
    assert!(unchanged > 0 || ids.iter().all(|id| versions.changed(id)));
}

#[tokio::test]
async fn a_dropped_socket_reconnects_to_the_same_channel_and_pushes_again() {
    let app = default_subscribed_app().await;
    let dropped = sim_send(&app, Method::POST, "/sim/notifications/drop", json!({})).await;
    assert_eq!(dropped["dropped"], 1);
    until_sockets(&app, 2).await;
    until_connected(&app, "connected again").await;
    assert_eq!(reconnects(&app, "dropped").await, 1);
    let text = metrics(&app).await;
    assert!(metric(&text, "genesys_proxy_notification_gaps_total") >= 1);
    assert_eq!(
        sim_counter(&app, "channels_created").await,
        1,
        "same channel"
    );

    // Events flow over the new socket.
    let (ids, _, versions) = cache_then_change(&app).await;
    eventually("pushed after the reconnection", || async {
        for id in ids.iter().filter(|id| versions.changed(id)) {
            let reply = app.get(&format!("/conversations/{id}")).await;
            if reply
                .header("cache-status")
                .unwrap_or_default()
                .contains("pushed")
            {
                return true;
            }
        }
        false
    })
    .await;
}

#[tokio::test]
async fn a_silent_socket_is_given_up_and_reconnected() {
    let app = app_with_silent_sockets(SocketSilence::HalfOpen).await;
    eventually("a reconnection for silence", || async {
        reconnects(&app, "silence").await >= 1
    })
    .await;
    until_sockets(&app, 2).await;
    sim_send(&app, Method::DELETE, "/sim/faults", json!({})).await;
    until_connected(&app, "connected again").await;
}

#[tokio::test]
async fn stopped_heartbeats_with_answered_pings_keep_the_socket() {
    let app = app_with_silent_sockets(SocketSilence::Heartbeats).await;
    eventually("pings answered", || async {
        sim_counter(&app, "pongs_sent").await >= 3
    })
    .await;
    assert_eq!(sim_counter(&app, "sockets_accepted").await, 1);
    assert_eq!(reconnects(&app, "silence").await, 0);
}

#[tokio::test]
async fn socket_closing_reconnects_to_the_same_channel() {
    let app = default_subscribed_app().await;
    let closed = sim_send(
        &app,
        Method::POST,
        "/sim/notifications/maintenance",
        json!({}),
    )
    .await;
    assert_eq!(closed["closed"], 1);
    eventually("reconnected after socket_closing", || async {
        reconnects(&app, "socket_closing").await >= 1
            && sim_counter(&app, "sockets_accepted").await >= 2
    })
    .await;
    assert_eq!(sim_counter(&app, "socket_closing_sent").await, 1);
    assert_eq!(
        sim_counter(&app, "channels_created").await,
        1,
        "same channel"
    );
    until_connected(&app, "connected again").await;
}

#[tokio::test]
async fn a_channel_is_re_created_before_it_expires_without_a_gap() {
    // The channel's `expires` is on the simulated clock: anchored at the wall clock here, so
    // that the proxy reads the 4 s lifetime (an anchor in the past reads as expired).
    let mut sim = sim_config();
    sim.anchor = None;
    sim.notifications.channel_lifetime = Duration::from_secs(4);
    let app = subscribed_app(sim, |n| n.renew_before_secs = 2).await;
    eventually("a renewal", || async {
        reconnects(&app, "renewal").await >= 1
    })
    .await;
    assert!(sim_counter(&app, "channels_created").await >= 2);
    let text = metrics(&app).await;
    assert_eq!(metric(&text, "genesys_proxy_notification_gaps_total"), 0);
    assert_eq!(
        sim_counter(&app, "channels_expired").await,
        0,
        "re-created before the old one expired"
    );
    assert_eq!(notifications_status(&app).await["status"], "ok");
}

#[tokio::test]
async fn topics_are_spread_over_channels_at_the_topic_limit() {
    // The simulator's org has a handful of queues and no flag for more, so the limit is
    // lowered on both sides instead of raising the queue count past 1,000 (the proxy's
    // plan over 1,500 queues is a unit test of src/notifications/plan.rs).
    let mut sim = sim_config();
    sim.notifications.max_topics = 2;
    let app = subscribed_app(sim, |n| n.max_topics_per_channel = 2).await;
    let queues = app.sim.data().org.queues.len();
    assert!(queues > 2, "more queues than one channel holds");
    let overview = sim_get(&app, "/sim/notifications").await;
    let channels = overview["channels"].as_array().expect("channels");
    assert_eq!(channels.len(), queues.div_ceil(2));
    let mut topics: Vec<String> = channels
        .iter()
        .flat_map(|c| c["topics"].as_array().expect("topics").clone())
        .map(|t| t.as_str().expect("topic").to_owned())
        .collect();
    assert!(
        channels
            .iter()
            .all(|c| c["topics"].as_array().expect("t").len() <= 2)
    );
    topics.sort();
    topics.dedup();
    assert_eq!(topics.len(), queues, "every queue once");
    let text = metrics(&app).await;
    assert_eq!(
        metric(&text, "genesys_proxy_notification_topics_left_out"),
        0
    );
    let refused = app.sim.counters();
    assert_eq!(
        refused.calls_with(genesys_sim::endpoint::SUBSCRIPTIONS, 400),
        0,
        "no too.many.subscriptions"
    );
}

#[tokio::test]
async fn refused_subscriptions_degrade_to_polling() {
    let mut sim = sim_config();
    sim.faults.subscriptions_forbidden = true;
    let mut settings = proxy_settings();
    settings.notifications.mode = Mode::All;
    let app = TestApp::start(sim, settings).await;
    eventually("degraded", || async {
        notifications_status(&app).await["status"] == "degraded"
    })
    .await;
    let reply = readiness(&app).await;
    assert_eq!(reply.status, 200, "degraded is still ready");
    let detail = reply.json()["components"]["notifications"]["detail"]
        .as_str()
        .expect("detail")
        .to_owned();
    assert!(
        detail.contains("403") && detail.contains("polled"),
        "{detail}"
    );
    assert_eq!(
        metric(&metrics(&app).await, "genesys_proxy_notification_degraded"),
        1
    );

    let id = app.live_id();
    let first = app.get(&format!("/conversations/{id}")).await;
    assert_eq!(first.status, 200);
    let second = app.get(&format!("/conversations/{id}")).await;
    let status = second.header("cache-status").expect("cache-status");
    assert!(status.starts_with("genesys-proxy; hit;"), "{status}");
    assert!(!status.contains("pushed"), "{status}");
    assert_eq!(app.upstream_conversation_calls(), 1);
    assert!(
        app.sim
            .counters()
            .calls_with(genesys_sim::endpoint::SUBSCRIPTIONS, 403)
            >= 1
    );
}

/// A conversation fetched while one of its queues is subscribed needs no event to stay
/// fresh past its TTL: any change would be pushed. One without a queue is polled on its
/// TTL, and after a gap (a dropped socket) every such conversation is back on its TTL.
#[tokio::test]
async fn conversations_of_subscribed_queues_stay_fresh_without_events_until_a_gap() {
    let mut settings = proxy_settings();
    settings.notifications.mode = Mode::All;
    settings.notifications.reconnect_min_ms = 50;
    settings.cache.active_fresh_secs = 1;
    settings.cache.stale_while_revalidate_secs = 0;
    let app = TestApp::start(sim_config(), settings).await;
    until_connected(&app, "notifications ok").await;
    let ids = app.live_ids();
    let mut queued = Vec::new();
    for id in &ids {
        let reply = app.get(&format!("/conversations/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let in_queue = !reply.json()["queues"].as_array().is_none_or(Vec::is_empty);
        queued.push(in_queue);
    }
    let queued_count = queued.iter().filter(|q| **q).count() as u64;
    assert!(queued_count > 0, "some live conversation is in a queue");
    let calls = app.upstream_conversation_calls();
    assert_eq!(calls, ids.len() as u64);

    // Past the 1 s TTL, with the simulated clock still (no change, so no event).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for (id, in_queue) in ids.iter().zip(&queued) {
        let reply = app.get(&format!("/conversations/{id}")).await;
        assert_eq!(reply.status, 200);
        let status = reply.header("cache-status").unwrap_or_default();
        if *in_queue {
            assert!(
                status.starts_with("genesys-proxy; hit;") && status.contains("detail=pushed"),
                "{id}: {status}"
            );
        } else {
            assert!(!status.contains("pushed"), "{id}: {status}");
        }
    }
    assert_eq!(
        app.upstream_conversation_calls(),
        calls + (ids.len() as u64 - queued_count),
        "only the conversations without a subscribed queue were fetched again"
    );

    // A gap: every conversation is back on its TTL, which has run out.
    sim_send(
        &app,
        reqwest::Method::POST,
        "/sim/notifications/drop",
        json!({}),
    )
    .await;
    eventually("a gap", || async {
        metric(
            &metrics(&app).await,
            "genesys_proxy_notification_gaps_total",
        ) >= 1
    })
    .await;
    let calls = app.upstream_conversation_calls();
    for id in ids
        .iter()
        .zip(&queued)
        .filter(|(_, q)| **q)
        .map(|(id, _)| id)
    {
        let reply = app.get(&format!("/conversations/{id}")).await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(
        app.upstream_conversation_calls(),
        calls + queued_count,
        "after the gap each was fetched again"
    );
}
