//! The Genesys token and the client secret never appear in logs (captured at TRACE level
//! for every crate while the proxy works through fetches, reports, a token revocation and
//! failures) nor in any response.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use genesys_proxy::telemetry::{LogFormat, TelemetrySettings, init_with_writer};
use genesys_sim::{Faults, SimConfig};
use serde_json::json;
use support::{TestApp, proxy_settings, sim_config};

const SECRET: &str = "s3cr3t-never-to-be-logged-7f3a";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn neither_token_nor_secret_appears_in_logs_or_responses() {
    let capture = Capture::default();
    let settings = TelemetrySettings {
        log_format: LogFormat::Json,
        log_filter: "trace".into(),
        otlp_endpoint: None,
    };
    let _guard = init_with_writer(&settings, capture.clone());

    let sim = SimConfig {
        client_secret: SECRET.into(),
        ..sim_config()
    };
    let mut proxy = proxy_settings();
    proxy.cache.active_fresh_secs = 1;
    let app = TestApp::start_with_secret(sim, proxy, SECRET).await;
    let mut bodies = String::new();
    let ids: Vec<_> = app
        .sim
        .data()
        .conversations
        .iter()
        .take(5)
        .map(|c| c.id)
        .collect();
    for id in &ids {
        bodies.push_str(
            &app.get(&format!("/conversations/{id}?view=full"))
                .await
                .text(),
        );
    }
    app.sim.revoke_tokens();
    bodies.push_str(
        &app.get(&format!("/conversations/{}", app.live_id()))
            .await
            .text(),
    );
    bodies.push_str(
        &app.post(
            "/reports/search",
            &json!({"last": "P3D", "include": "conversation", "page_size": 3}),
        )
        .await
        .text(),
    );
    bodies.push_str(
        &app.get("/reports/aggregates?last=P1D&metrics=handle")
            .await
            .text(),
    );
    app.sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    bodies.push_str(
        &app.get("/conversations/00000000-0000-4000-8000-000000000001")
            .await
            .text(),
    );
    app.sim.set_faults(Faults::default());
    bodies.push_str(&app.get_with("/readyz", "", &[]).await.text());
    bodies.push_str(&app.get_with("/metrics", "", &[]).await.text());
    bodies.push_str(&app.get("/admin/cache").await.text());

    let tokens = app.sim.state().tokens.issued();
    assert!(!tokens.is_empty(), "the proxy obtained tokens");
    assert!(
        app.sim.counters().tokens_issued >= 2,
        "the revocation forced a refresh"
    );
    let logs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf-8 logs");
    assert!(
        logs.len() > 1_000,
        "logs were captured ({} bytes)",
        logs.len()
    );
    for (name, text) in [("logs", &logs), ("responses", &bodies)] {
        assert!(
            !text.contains(SECRET),
            "the client secret appears in the {name}"
        );
        for token in &tokens {
            assert!(
                !text.contains(token.as_str()),
                "a Genesys token appears in the {name}"
            );
        }
    }
}
