//! Genesys notifications, end to end against the simulator: when Genesys refuses the
//! subscription (403, a missing permission: the simulator's `subscriptions_forbidden`
//! fault), the proxy must degrade to polling (one log line, the `notifications` component
//! of `/readyz`, the metrics) and go on serving conversations, never crash; with mode
//! `off` it makes no call; an event applied to the cache updates the summary only. The
//! subscription over a real socket and its keep-alive are in `tests/notifications_sim.rs`.

mod support;

use std::time::Duration;

use genesys_proxy::notifications::settings::Mode;
use support::{Reply, TestApp, proxy_settings, sim_config};
use tokio::time::Instant;

async fn app(mode: Mode, queue_ids: &[&str]) -> TestApp {
    let mut settings = proxy_settings();
    settings.notifications.mode = mode;
    settings.notifications.queue_ids = queue_ids.iter().map(|q| (*q).to_owned()).collect();
    TestApp::start(sim_config(), settings).await
}

/// As [`app`], against a simulator that refuses every subscription with 403 (the OAuth
/// client lacks a permission the topics need).
async fn refusing_app(mode: Mode, queue_ids: &[&str]) -> TestApp {
    let mut settings = proxy_settings();
    settings.notifications.mode = mode;
    settings.notifications.queue_ids = queue_ids.iter().map(|q| (*q).to_owned()).collect();
    let mut sim = sim_config();
    sim.faults.subscriptions_forbidden = true;
    TestApp::start(sim, settings).await
}

/// `/readyz` once its `notifications` component has left `starting`.
async fn settled_readiness(app: &TestApp) -> Reply {
    let started = Instant::now();
    loop {
        let reply = app.get_with("/readyz", "", &[]).await;
        if reply.json()["components"]["notifications"]["status"] != "starting" {
            return reply;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "notifications never settled: {}",
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_refused_subscription_degrades_to_polling_and_says_so() {
    let app = refusing_app(Mode::All, &[]).await;
    let reply = settled_readiness(&app).await;
    assert_eq!(
        reply.status,
        200,
        "degraded is still ready: {}",
        reply.text()
    );
    let component = &reply.json()["components"]["notifications"];
    assert_eq!(component["status"], "degraded", "{component}");
    let detail = component["detail"].as_str().expect("detail");
    assert!(
        detail.contains("403") && detail.contains("polled"),
        "{detail}"
    );

    // Conversations are served by polling, never as pushed.
    let id = app.live_id();
    let first = app.get(&format!("/conversations/{id}")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = app.get(&format!("/conversations/{id}")).await;
    let status = second.header("cache-status").expect("cache-status");
    assert!(status.starts_with("genesys-proxy; hit;"), "{status}");
    assert!(!status.contains("pushed"), "{status}");
    let full = app.get(&format!("/conversations/{id}?view=full")).await;
    assert_eq!(full.status, 200);
    assert_eq!(app.upstream_conversation_calls(), 1, "one fetch, then hits");

    let metrics = app.get_with("/metrics", "", &[]).await.text();
    assert_eq!(
        metric(&metrics, "genesys_proxy_notification_degraded"),
        Some(1)
    );
    assert_eq!(
        metric(&metrics, "genesys_proxy_notification_refusals_total"),
        Some(1)
    );
    assert_eq!(
        metric(&metrics, "genesys_proxy_notification_channels_connected"),
        Some(0)
    );
    assert!(
        metrics.contains(
            "genesys_proxy_upstream_requests_total{endpoint=\"list_queues\",status=\"200\"} 1"
        ),
        "the queue listing is an upstream call like any other"
    );
    assert!(
        metrics.contains(
            "genesys_proxy_upstream_requests_total{endpoint=\"replace_subscriptions\",status=\"403\"} 1"
        ),
        "one subscription, refused"
    );
}

#[tokio::test]
async fn a_configured_queue_list_lists_no_queues_and_degrades_at_the_subscription() {
    let app = refusing_app(Mode::List, &["8f2a4c6e-1b3d-4f5a-9c7e-0d2b4f6a8c1e"]).await;
    let reply = settled_readiness(&app).await;
    let component = &reply.json()["components"]["notifications"];
    assert_eq!(component["status"], "degraded", "{component}");
    let metrics = app.get_with("/metrics", "", &[]).await.text();
    assert!(
        metrics.contains(
            "genesys_proxy_upstream_requests_total{endpoint=\"replace_subscriptions\",status=\"403\"} 1"
        ),
        "one subscription, refused"
    );
    assert!(metrics.contains(
        "genesys_proxy_upstream_request_duration_seconds_count{endpoint=\"list_queues\"} 0"
    ));
}

#[tokio::test]
async fn mode_off_makes_no_call_and_reports_off() {
    let app = app(Mode::Off, &[]).await;
    let reply = app.get_with("/readyz", "", &[]).await;
    assert_eq!(reply.json()["components"]["notifications"]["status"], "off");
    let metrics = app.get_with("/metrics", "", &[]).await.text();
    assert_eq!(
        metric(&metrics, "genesys_proxy_notification_degraded"),
        Some(0)
    );
    assert_eq!(
        metric(&metrics, "genesys_proxy_notification_channels"),
        Some(0)
    );
    assert!(metrics.contains(
        "genesys_proxy_upstream_request_duration_seconds_count{endpoint=\"create_channel\"} 0"
    ));
}

/// A queue conversation event for the conversation whose document is `full`: its
/// participants as the event model carries them (no start times, no queue names), and a
/// new agent.
fn event_with_new_agent(full: &serde_json::Value) -> serde_json::Value {
    let mut participants: Vec<serde_json::Value> = full["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p["id"], "purpose": p["purpose"], "queueId": p["queueId"],
                "userId": p["userId"], "endTime": p["endTime"],
            })
        })
        .collect();
    participants.push(serde_json::json!({
        "id": "9d2c6a0e-0000-4000-8000-00000000a9e7", "purpose": "agent",
        "userId": "agent-from-an-event", "name": "Pushed Agent",
        "connectedTime": "2026-01-01T10:00:09.000Z",
    }));
    serde_json::json!({"id": full["id"], "participants": participants})
}

#[tokio::test]
async fn a_pushed_summary_is_a_fresh_hit_and_view_full_stays_genesys_document() {
    let mut settings = proxy_settings();
    settings.cache.active_fresh_secs = 1;
    let app = TestApp::start(sim_config(), settings).await;
    let id = app.live_id();
    let summary_path = format!("/conversations/{id}");
    let full_path = format!("/conversations/{id}?view=full");
    let before = app.get(&summary_path).await;
    assert_eq!(before.status, 200);
    let full = app.get(&full_path).await;
    assert_eq!(app.upstream_conversation_calls(), 1);

    let event = event_with_new_agent(&full.json());
    let outcome = app
        .state
        .conversations
        .apply_event(&event, Duration::from_secs(300))
        .await;
    assert_eq!(
        outcome,
        genesys_proxy::conversations::PushOutcome::Updated { extended: true }
    );

    let pushed = app.get(&summary_path).await;
    let status = pushed.header("cache-status").expect("cache-status");
    assert!(status.ends_with("; detail=pushed"), "{status}");
    assert_ne!(pushed.header("etag"), before.header("etag"));
    let agents = pushed.json()["agents"].clone();
    assert!(
        agents
            .as_array()
            .expect("agents")
            .iter()
            .any(|a| a["user_id"] == "agent-from-an-event"),
        "{agents}"
    );
    assert_eq!(pushed.json()["start"], before.json()["start"], "kept");

    // The full document is still Genesys' own, served under its own freshness.
    let full_again = app.get(&full_path).await;
    assert_eq!(full_again.body, full.body, "byte for byte");
    let status = full_again.header("cache-status").expect("cache-status");
    assert!(!status.contains("pushed"), "{status}");
    assert_eq!(full_again.header("etag"), full.header("etag"));
    assert_eq!(app.upstream_conversation_calls(), 1);

    // Past the document's own (1 s) freshness: the summary is still a pushed hit, with
    // no upstream call; the full document is fetched again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let still = app.get(&summary_path).await;
    assert!(
        still
            .header("cache-status")
            .expect("cache-status")
            .ends_with("; detail=pushed")
    );
    assert_eq!(app.upstream_conversation_calls(), 1, "no polling");
    let refetched = app.get(&full_path).await;
    assert_eq!(refetched.status, 200);
    assert_eq!(
        app.upstream_conversation_calls(),
        2,
        "the document is refetched"
    );
    let status = refetched.header("cache-status").expect("cache-status");
    assert!(status.contains("fwd=miss"), "{status}");
    // The fetch replaced the whole entry: the summary is Genesys' again.
    let after = app.get(&summary_path).await;
    assert!(!after.header("cache-status").expect("cs").contains("pushed"));
}
