//! W3C trace context (with tracing on): an inbound `traceparent` continues into the
//! upstream call the proxy makes for it, even though that call runs in a task of its own.

mod support;

use genesys_proxy::telemetry::{TelemetrySettings, init_with_writer};
use support::TestApp;

#[tokio::test]
async fn an_inbound_traceparent_reaches_genesys_on_the_upstream_call() {
    // An endpoint turns tracing on; nothing listens there, so exports fail quietly.
    let settings = TelemetrySettings {
        otlp_endpoint: Some("http://127.0.0.1:9".into()),
        ..TelemetrySettings::default()
    };
    let _guard = init_with_writer(&settings, std::io::sink);
    let app = TestApp::default_app().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let inbound = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let reply = app
        .get_with(
            &format!("/conversations/{}", app.ended_id()),
            support::ADMIN_KEY,
            &[("traceparent", &inbound)],
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = app.sim.state().recent_requests();
    let upstream = seen
        .iter()
        .find(|r| r.endpoint == "get_conversation")
        .expect("the conversation call reached the simulator");
    let traceparent = upstream
        .traceparent
        .as_deref()
        .expect("a traceparent was sent upstream");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1], trace_id, "same trace");
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "a child span of the inbound one"
    );

    // Without an inbound traceparent, the upstream call starts a trace of its own.
    let other = app.get(&format!("/conversations/{}", app.live_id())).await;
    assert_eq!(other.status, 200);
    let seen = app.sim.state().recent_requests();
    let last = seen
        .iter()
        .rev()
        .find(|r| r.endpoint == "get_conversation")
        .expect("second call");
    let fresh = last.traceparent.as_deref().expect("a traceparent");
    assert!(!fresh.contains(trace_id));
}
