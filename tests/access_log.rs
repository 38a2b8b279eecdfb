//! The access log, as an operator reads it in JSON lines: one `request answered` line per
//! request, answered on the hit fast path or by the router, with the route template,
//! status, client, cache status, upstream calls, latency and request id, and never a key
//! or a query string; nothing at all while it is off.
//!
//! The subscriber is the proxy's own (`telemetry::init_with_writer`, JSON format),
//! installed once for this file and writing into memory.

mod support;

use std::sync::OnceLock;

use genesys_proxy::telemetry::{LogFormat, TelemetrySettings, init_with_writer};
use serde_json::Value;
use support::capture::Capture;
use support::{ADMIN_KEY, REPORTS_KEY, TestApp, proxy_settings, sim_config};

/// The access lines of the request with `request_id`.
fn access_lines(capture: &Capture, request_id: &str) -> Vec<Value> {
    capture
        .text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == "request answered" && event["request_id"] == request_id)
        .collect()
}

fn capture_json_logs() -> Capture {
    static CAPTURE: OnceLock<(Capture, genesys_proxy::telemetry::TelemetryGuard)> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let settings = TelemetrySettings {
                log_format: LogFormat::Json,
                log_filter: "info".into(),
                ..TelemetrySettings::default()
            };
            let guard = init_with_writer(&settings, capture.clone());
            (capture, guard)
        })
        .0
        .clone()
}

/// GETs `path` with `key` and the request id `request_id`; the status.
async fn get(app: &TestApp, path: &str, key: &str, request_id: &str) -> u16 {
    let reply = app
        .get_with(path, key, &[("x-request-id", request_id)])
        .await;
    assert_eq!(
        reply.header("x-request-id").as_deref(),
        Some(request_id),
        "{path}"
    );
    reply.status
}

/// The one access line of `request_id`.
fn one_line(capture: &Capture, request_id: &str) -> Value {
    let lines = access_lines(capture, request_id);
    assert_eq!(
        lines.len(),
        1,
        "one access line for {request_id}: {lines:?}"
    );
    let line = lines.into_iter().next().expect("one line");
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(
        line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );
    line
}

#[tokio::test]
async fn every_answered_request_writes_one_access_line_with_its_fields() {
    let capture = capture_json_logs();
    let mut settings = proxy_settings();
    settings.telemetry.access_log = true;
    let app = TestApp::start(sim_config(), settings).await;
    let id = app.ended_id().to_string();
    let conversation = format!("/conversations/{id}");

    // A miss, through the router: one upstream call.
    assert_eq!(
        get(&app, &conversation, ADMIN_KEY, "access-miss").await,
        200
    );
    let miss = one_line(&capture, "access-miss");
    assert_eq!(miss["method"], "GET");
    assert_eq!(miss["route"], "/conversations/{id}");
    assert_eq!(miss["status"], 200);
    assert_eq!(miss["client"], "tester");
    assert_eq!(miss["conversation_id"], id.as_str());
    assert_eq!(miss["cache"], "miss");
    assert_eq!(miss["upstream_calls"], 1, "{miss}");
    assert_eq!(miss["fast_path"], false);

    // A fresh hit, answered before the router: no upstream call.
    assert_eq!(get(&app, &conversation, ADMIN_KEY, "access-hit").await, 200);
    let hit = one_line(&capture, "access-hit");
    assert_eq!(hit["route"], "/conversations/{id}");
    assert_eq!(hit["status"], 200);
    assert_eq!(hit["client"], "tester");
    assert_eq!(hit["conversation_id"], id.as_str());
    assert_eq!(hit["cache"], "hit");
    assert_eq!(hit["upstream_calls"], 0);
    assert_eq!(hit["fast_path"], true, "{hit}");

    // A report: the route template, never the query with the ids of other parties.
    let agent = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let report = format!(
        "/reports/search?from=2025-03-11T00:00:00Z&to=2025-03-11T06:00:00Z&user_ids={agent}"
    );
    assert_eq!(get(&app, &report, REPORTS_KEY, "access-report").await, 200);
    let line = one_line(&capture, "access-report");
    assert_eq!(line["route"], "/reports/search");
    assert_eq!(line["client"], "reporter");
    assert_eq!(line["cache"], "-");
    assert!(line["upstream_calls"].as_u64() >= Some(1), "{line}");
    assert!(line.get("conversation_id").is_none(), "{line}");
    assert!(!line.to_string().contains(agent), "{line}");

    // Refused and open requests are logged too, without a client.
    assert_eq!(get(&app, &conversation, "", "access-anonymous").await, 401);
    let anonymous = one_line(&capture, "access-anonymous");
    assert_eq!(anonymous["status"], 401);
    assert_eq!(anonymous["client"], "-");
    assert_eq!(get(&app, "/healthz", "", "access-health").await, 200);
    assert_eq!(one_line(&capture, "access-health")["route"], "/healthz");

    let logs = capture.text();
    for key in [ADMIN_KEY, REPORTS_KEY] {
        assert!(!logs.contains(key), "an API key was logged");
    }
}

#[tokio::test]
async fn nothing_is_written_while_the_access_log_is_off() {
    let capture = capture_json_logs();
    let app = TestApp::default_app().await;
    let conversation = format!("/conversations/{}", app.ended_id());
    for request_id in ["quiet-miss", "quiet-hit"] {
        assert_eq!(get(&app, &conversation, ADMIN_KEY, request_id).await, 200);
    }
    assert_eq!(get(&app, "/healthz", "", "quiet-health").await, 200);
    // The same requests write their lines once it is on.
    app.state.http_metrics.access_log().set_enabled(true);
    assert_eq!(get(&app, &conversation, ADMIN_KEY, "loud-hit").await, 200);
    assert_eq!(one_line(&capture, "loud-hit")["fast_path"], true);
    for request_id in ["quiet-miss", "quiet-hit", "quiet-health"] {
        assert!(
            access_lines(&capture, request_id).is_empty(),
            "{request_id} was logged"
        );
    }
}
