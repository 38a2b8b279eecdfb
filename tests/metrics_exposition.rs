//! The shape of `/metrics` is an interface: dashboards and alerts name its families and
//! labels. Each component renders its own families (HTTP, caches, upstream, budget, token)
//! and the handler only assembles them; this test pins what the assembly shows after some
//! traffic through a proxy in front of the simulator: every family's `# HELP` and `# TYPE`
//! lines, and every series (a histogram's `_bucket`, `_sum` and `_count` lines read as one
//! series), in order. Sample values are left out: they depend on timing.
//!
//! The expected shape was taken from the proxy before the metrics moved into their
//! components; the one difference is the latency histogram of the `multi_get` endpoint,
//! which the proxy never called and no longer knows. Changed since, on purpose (issue 20,
//! listed in README's metrics section): `genesys_proxy_budget_refused_total` has a `class`
//! label and moved after the budget's waits (the upstream figures record refusals, as they
//! record waits), followed by the new `genesys_proxy_budget_refusal_retry_after_seconds`;
//! new are `genesys_proxy_upstream_last_rate_limited_timestamp_seconds`,
//! `genesys_proxy_budget_period_seconds`, `genesys_proxy_ready` and
//! `genesys_proxy_ready_component`.
//! Issue 18 added the notification families (`genesys_proxy_notification_*`) and the
//! latency series of the three notification endpoints.

mod support;

use serde_json::json;
use support::TestApp;

/// The exposition after the traffic of [`scrape_after_traffic`], values left out.
const EXPECTED_SHAPE: &str = r#"# HELP genesys_proxy_http_requests_total Inbound requests answered, by route, method and status.
# TYPE genesys_proxy_http_requests_total counter
genesys_proxy_http_requests_total{route="/conversations/{id}",method="GET",status="200"}
genesys_proxy_http_requests_total{route="/conversations/{id}",method="GET",status="404"}
genesys_proxy_http_requests_total{route="/reports/aggregates",method="GET",status="200"}
genesys_proxy_http_requests_total{route="/reports/search",method="POST",status="200"}
# HELP genesys_proxy_http_request_duration_seconds Inbound request latency, by route, method and status.
# TYPE genesys_proxy_http_request_duration_seconds histogram
genesys_proxy_http_request_duration_seconds{route="/conversations/{id}",method="GET",status="200"} (histogram)
genesys_proxy_http_request_duration_seconds{route="/conversations/{id}",method="GET",status="404"} (histogram)
genesys_proxy_http_request_duration_seconds{route="/reports/aggregates",method="GET",status="200"} (histogram)
genesys_proxy_http_request_duration_seconds{route="/reports/search",method="POST",status="200"} (histogram)
# HELP genesys_proxy_http_fast_path_answers_total Requests answered by the cache-hit fast path of GET /conversations/{id} (also counted in genesys_proxy_http_requests_total).
# TYPE genesys_proxy_http_fast_path_answers_total counter
genesys_proxy_http_fast_path_answers_total
# HELP genesys_proxy_cache_requests_total Cache lookups by cache and result (hit, miss, stale, collapsed).
# TYPE genesys_proxy_cache_requests_total counter
genesys_proxy_cache_requests_total{cache="conversations",result="hit"}
genesys_proxy_cache_requests_total{cache="conversations",result="miss"}
genesys_proxy_cache_requests_total{cache="conversations",result="stale"}
genesys_proxy_cache_requests_total{cache="conversations",result="collapsed"}
genesys_proxy_cache_requests_total{cache="report_pages",result="hit"}
genesys_proxy_cache_requests_total{cache="report_pages",result="miss"}
genesys_proxy_cache_requests_total{cache="report_pages",result="stale"}
genesys_proxy_cache_requests_total{cache="report_pages",result="collapsed"}
genesys_proxy_cache_requests_total{cache="aggregates",result="hit"}
genesys_proxy_cache_requests_total{cache="aggregates",result="miss"}
genesys_proxy_cache_requests_total{cache="aggregates",result="stale"}
genesys_proxy_cache_requests_total{cache="aggregates",result="collapsed"}
# HELP genesys_proxy_cache_fetches_total Upstream fetches started by the cache (one per key however many requests wait).
# TYPE genesys_proxy_cache_fetches_total counter
genesys_proxy_cache_fetches_total{cache="conversations"}
genesys_proxy_cache_fetches_total{cache="report_pages"}
genesys_proxy_cache_fetches_total{cache="aggregates"}
# HELP genesys_proxy_cache_fetch_errors_total Cache fetches that failed.
# TYPE genesys_proxy_cache_fetch_errors_total counter
genesys_proxy_cache_fetch_errors_total{cache="conversations"}
genesys_proxy_cache_fetch_errors_total{cache="report_pages"}
genesys_proxy_cache_fetch_errors_total{cache="aggregates"}
# HELP genesys_proxy_cache_entries Entries held.
# TYPE genesys_proxy_cache_entries gauge
genesys_proxy_cache_entries{cache="conversations"}
genesys_proxy_cache_entries{cache="report_pages"}
genesys_proxy_cache_entries{cache="aggregates"}
# HELP genesys_proxy_cache_bytes Bytes held (weighted size).
# TYPE genesys_proxy_cache_bytes gauge
genesys_proxy_cache_bytes{cache="conversations"}
genesys_proxy_cache_bytes{cache="report_pages"}
genesys_proxy_cache_bytes{cache="aggregates"}
# HELP genesys_proxy_cache_max_bytes Configured byte budget.
# TYPE genesys_proxy_cache_max_bytes gauge
genesys_proxy_cache_max_bytes{cache="conversations"}
genesys_proxy_cache_max_bytes{cache="report_pages"}
genesys_proxy_cache_max_bytes{cache="aggregates"}
# HELP genesys_proxy_upstream_requests_total HTTP exchanges with Genesys, by endpoint and status (error: no answer).
# TYPE genesys_proxy_upstream_requests_total counter
genesys_proxy_upstream_requests_total{endpoint="aggregates_query",status="200"}
genesys_proxy_upstream_requests_total{endpoint="details_query",status="200"}
genesys_proxy_upstream_requests_total{endpoint="get_conversation",status="200"}
genesys_proxy_upstream_requests_total{endpoint="get_conversation",status="404"}
# HELP genesys_proxy_upstream_request_duration_seconds Latency of HTTP exchanges with Genesys, by endpoint.
# TYPE genesys_proxy_upstream_request_duration_seconds histogram
genesys_proxy_upstream_request_duration_seconds{endpoint="get_conversation"} (histogram)
genesys_proxy_upstream_request_duration_seconds{endpoint="details_query"} (histogram)
genesys_proxy_upstream_request_duration_seconds{endpoint="aggregates_query"} (histogram)
genesys_proxy_upstream_request_duration_seconds{endpoint="create_channel"} (histogram)
genesys_proxy_upstream_request_duration_seconds{endpoint="replace_subscriptions"} (histogram)
genesys_proxy_upstream_request_duration_seconds{endpoint="list_queues"} (histogram)
# HELP genesys_proxy_upstream_rate_limited_total 429 answers received from Genesys (never passed on to clients).
# TYPE genesys_proxy_upstream_rate_limited_total counter
genesys_proxy_upstream_rate_limited_total
# HELP genesys_proxy_upstream_last_rate_limited_timestamp_seconds When Genesys last answered 429, in Unix seconds (0: never since the start).
# TYPE genesys_proxy_upstream_last_rate_limited_timestamp_seconds gauge
genesys_proxy_upstream_last_rate_limited_timestamp_seconds
# HELP genesys_proxy_upstream_retries_total Upstream attempts retried (transient failures, 401 refreshes, 429 freezes).
# TYPE genesys_proxy_upstream_retries_total counter
genesys_proxy_upstream_retries_total
# HELP genesys_proxy_budget_wait_seconds Time calls waited for the rate budget, by class.
# TYPE genesys_proxy_budget_wait_seconds histogram
genesys_proxy_budget_wait_seconds{class="realtime"} (histogram)
genesys_proxy_budget_wait_seconds{class="report"} (histogram)
genesys_proxy_budget_wait_seconds{class="hydrate"} (histogram)
# HELP genesys_proxy_budget_refused_total Upstream calls the rate budget refused (queue full, deadline unreachable or passed while queued), by class.
# TYPE genesys_proxy_budget_refused_total counter
genesys_proxy_budget_refused_total{class="realtime"}
genesys_proxy_budget_refused_total{class="report"}
genesys_proxy_budget_refused_total{class="hydrate"}
# HELP genesys_proxy_budget_refusal_retry_after_seconds Retry-After given with the budget's refusals (whole seconds), by class.
# TYPE genesys_proxy_budget_refusal_retry_after_seconds histogram
genesys_proxy_budget_refusal_retry_after_seconds{class="realtime"} (histogram)
genesys_proxy_budget_refusal_retry_after_seconds{class="report"} (histogram)
genesys_proxy_budget_refusal_retry_after_seconds{class="hydrate"} (histogram)
# HELP genesys_proxy_budget_queue_depth Calls waiting for the rate budget, by class.
# TYPE genesys_proxy_budget_queue_depth gauge
genesys_proxy_budget_queue_depth{class="realtime"}
genesys_proxy_budget_queue_depth{class="report"}
genesys_proxy_budget_queue_depth{class="hydrate"}
# HELP genesys_proxy_budget_in_flight Upstream calls in flight.
# TYPE genesys_proxy_budget_in_flight gauge
genesys_proxy_budget_in_flight
# HELP genesys_proxy_budget_granted_total Permits granted.
# TYPE genesys_proxy_budget_granted_total counter
genesys_proxy_budget_granted_total
# HELP genesys_proxy_budget_effective_rate Requests per period the budget paces at (lowered to Genesys' reported limit).
# TYPE genesys_proxy_budget_effective_rate gauge
genesys_proxy_budget_effective_rate
# HELP genesys_proxy_budget_frozen 1 while upstream calls are frozen after a 429.
# TYPE genesys_proxy_budget_frozen gauge
genesys_proxy_budget_frozen
# HELP genesys_proxy_budget_period_seconds The period, in seconds, the effective rate counts requests over (budget.period_secs).
# TYPE genesys_proxy_budget_period_seconds gauge
genesys_proxy_budget_period_seconds
# HELP genesys_proxy_token_requests_total Token requests sent to the Genesys login host (refreshes included).
# TYPE genesys_proxy_token_requests_total counter
genesys_proxy_token_requests_total
# HELP genesys_proxy_token_failures_total Token requests that failed.
# TYPE genesys_proxy_token_failures_total counter
genesys_proxy_token_failures_total
# HELP genesys_proxy_token_valid 1 while a valid Genesys token is held.
# TYPE genesys_proxy_token_valid gauge
genesys_proxy_token_valid
# HELP genesys_proxy_notification_channels Notification channels the topic plan asks for.
# TYPE genesys_proxy_notification_channels gauge
genesys_proxy_notification_channels
# HELP genesys_proxy_notification_channels_connected Notification channels with a connected socket.
# TYPE genesys_proxy_notification_channels_connected gauge
genesys_proxy_notification_channels_connected
# HELP genesys_proxy_notification_topics Topics subscribed over all channels.
# TYPE genesys_proxy_notification_topics gauge
genesys_proxy_notification_topics
# HELP genesys_proxy_notification_topics_left_out Topics beyond what max_channels x max_topics_per_channel can hold (polled).
# TYPE genesys_proxy_notification_topics_left_out gauge
genesys_proxy_notification_topics_left_out
# HELP genesys_proxy_notification_degraded 1 while Genesys refuses the subscription and conversations are polled.
# TYPE genesys_proxy_notification_degraded gauge
genesys_proxy_notification_degraded
# HELP genesys_proxy_notification_channels_created_total Channels created (each one upstream call).
# TYPE genesys_proxy_notification_channels_created_total counter
genesys_proxy_notification_channels_created_total
# HELP genesys_proxy_notification_heartbeats_total channel.metadata messages received (heartbeats and pongs).
# TYPE genesys_proxy_notification_heartbeats_total counter
genesys_proxy_notification_heartbeats_total
# HELP genesys_proxy_notification_gaps_total Times events may have been missed (a socket lost, a refusal); pushed conversations then fall back to TTL freshness.
# TYPE genesys_proxy_notification_gaps_total counter
genesys_proxy_notification_gaps_total
# HELP genesys_proxy_notification_demoted_total Pushed conversations returned to TTL freshness after a gap.
# TYPE genesys_proxy_notification_demoted_total counter
genesys_proxy_notification_demoted_total
# HELP genesys_proxy_notification_refusals_total Times Genesys refused a subscription, a channel or the queue listing.
# TYPE genesys_proxy_notification_refusals_total counter
genesys_proxy_notification_refusals_total
# HELP genesys_proxy_notification_events_total Notification events received, by outcome.
# TYPE genesys_proxy_notification_events_total counter
genesys_proxy_notification_events_total{outcome="applied"}
genesys_proxy_notification_events_total{outcome="not_cached"}
genesys_proxy_notification_events_total{outcome="forgotten"}
genesys_proxy_notification_events_total{outcome="rejected"}
genesys_proxy_notification_events_total{outcome="ignored"}
# HELP genesys_proxy_notification_reconnects_total Sockets replaced, by reason.
# TYPE genesys_proxy_notification_reconnects_total counter
genesys_proxy_notification_reconnects_total{reason="dropped"}
genesys_proxy_notification_reconnects_total{reason="silence"}
genesys_proxy_notification_reconnects_total{reason="socket_closing"}
genesys_proxy_notification_reconnects_total{reason="renewal"}
# HELP genesys_proxy_notification_event_lag_seconds Time from an event's arrival on the socket to the cache holding its update.
# TYPE genesys_proxy_notification_event_lag_seconds histogram
genesys_proxy_notification_event_lag_seconds (histogram)
# HELP genesys_proxy_ready 1 when /readyz answers 200 (a Genesys token is held, or cached data within its stale bound).
# TYPE genesys_proxy_ready gauge
genesys_proxy_ready
# HELP genesys_proxy_ready_component The status of each readiness component (as /readyz names it): 1 for its current status.
# TYPE genesys_proxy_ready_component gauge
genesys_proxy_ready_component{component="genesys_token",status="ok"}
genesys_proxy_ready_component{component="cache",status="ok"}
genesys_proxy_ready_component{component="budget",status="ok"}
genesys_proxy_ready_component{component="notifications",status="off"}
"#;

/// Sends a little of every kind of traffic (a miss and a hit, an unknown conversation, a
/// report search and an aggregates query), then scrapes `/metrics`.
async fn scrape_after_traffic(app: &TestApp) -> String {
    let conversation = format!("/conversations/{}", app.ended_id());
    assert_eq!(app.get(&conversation).await.status, 200);
    assert_eq!(app.get(&conversation).await.status, 200);
    let unknown = "/conversations/00000000-0000-4000-8000-000000000000";
    assert_eq!(app.get(unknown).await.status, 404);
    let search = app
        .post(
            "/reports/search",
            &json!({"from": "2025-03-10T00:00:00Z", "to": "2025-03-11T00:00:00Z", "page_size": 5}),
        )
        .await;
    assert_eq!(search.status, 200, "{}", search.text());
    let aggregates = app
        .get("/reports/aggregates?from=2025-03-10T00:00:00Z&to=2025-03-11T00:00:00Z&granularity=PT1H&metrics=offered")
        .await;
    assert_eq!(aggregates.status, 200, "{}", aggregates.text());
    let metrics = app.get_with("/metrics", "", &[]).await;
    assert_eq!(metrics.status, 200);
    metrics.text()
}

/// The exposition with sample values left out and each histogram series on one line.
fn shape(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            lines.push(line.to_owned());
            continue;
        }
        let (series, _value) = line.rsplit_once(' ').expect("a sample has a value");
        let series = histogram_series(series).unwrap_or_else(|| series.to_owned());
        if lines.last() != Some(&series) {
            lines.push(series);
        }
    }
    lines.join("\n") + "\n"
}

/// `name{labels}` of the histogram series a `_bucket`, `_sum` or `_count` sample belongs
/// to (its `le` label dropped); `None` for any other sample.
fn histogram_series(sample: &str) -> Option<String> {
    let (name, labels) = sample.split_once('{').unwrap_or((sample, ""));
    let labels = labels.strip_suffix('}').unwrap_or(labels);
    let family = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))?;
    let labels: Vec<&str> = labels
        .split(',')
        .filter(|l| !l.is_empty() && !l.starts_with("le="))
        .collect();
    Some(if labels.is_empty() {
        format!("{family} (histogram)")
    } else {
        format!("{family}{{{}}} (histogram)", labels.join(","))
    })
}

#[tokio::test]
async fn metrics_show_the_same_families_labels_and_order_after_traffic() {
    let app = TestApp::default_app().await;
    let text = scrape_after_traffic(&app).await;
    let shape = shape(&text);
    assert_eq!(shape, EXPECTED_SHAPE, "the exposition changed:\n{text}");
}
