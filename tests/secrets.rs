//! No secret leaves the proxy: the Genesys client secret (raw, base64 of `id:secret` as in
//! the Basic header of the token request, and base64 of the secret alone), the Genesys
//! tokens, and the clients' API keys (configured ones, and wrong ones presented) never
//! appear in logs, response bodies, response headers or `/metrics`, while the proxy works
//! through fetches, reports, a 401 from Genesys and the token refresh it causes, a token
//! refresh before expiry, wrong API keys, an outage, and credentials Genesys refuses.
//!
//! Logs are captured at TRACE for every crate (and `log` records), through the subscriber
//! of `support::capture::logs_at_trace`, with a fixed level filter and no `EnvFilter`:
//! `RUST_LOG` has no say in what is captured. It writes every event twice, as JSON lines
//! with the whole span list and as plain text lines, so span fields show whichever way the
//! proxy is configured to log; the text lines also show every span as it opens and closes,
//! with all its fields, whether or not an event happened inside it.

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use genesys_sim::config::DEFAULT_CLIENT_ID;
use genesys_sim::endpoint::{GET_CONVERSATION, OAUTH_TOKEN};
use genesys_sim::{Faults, SimConfig};
use serde_json::json;
use support::capture::logs_at_trace;
use support::{ADMIN_KEY, REPORTS_KEY, Reply, TestApp, proxy_settings, sim_config};
use tracing_subscriber::filter::LevelFilter;

/// Reports over the days before the simulated org's anchor (`support::anchor`).
const AGGREGATES: &str =
    "/reports/aggregates?from=2025-03-11T00:00:00Z&to=2025-03-12T00:00:00Z&metrics=handle";

/// The client secret the simulator accepts and the working proxy holds.
const SECRET: &str = "s3cr3t-never-to-be-logged-7f3a";
/// A secret the simulator refuses (held by the proxy of the bad-credentials test).
const WRONG_SECRET: &str = "wr0ng-s3cr3t-never-to-be-logged-c41e";
/// An API key no client is configured with.
const UNKNOWN_KEY: &str = "gp_unknown_key_never_to_be_logged_0123456789abcdef";

/// Every form of `secret` that must not be seen: raw, the Basic header of the token
/// request (`base64(client_id:secret)`), and base64 of the secret alone, in the standard
/// and URL-safe alphabets, padded or not.
fn secret_forms(secret: &str) -> Vec<(String, String)> {
    let basic = format!("{DEFAULT_CLIENT_ID}:{secret}");
    let mut forms = vec![
        (format!("the secret {secret:?}"), secret.to_owned()),
        (
            format!("the Basic header of {secret:?}"),
            STANDARD.encode(&basic),
        ),
    ];
    for (alphabet, engine) in [
        ("standard", &STANDARD),
        ("standard unpadded", &STANDARD_NO_PAD),
        ("URL-safe", &URL_SAFE),
        ("URL-safe unpadded", &URL_SAFE_NO_PAD),
    ] {
        forms.push((
            format!("base64 ({alphabet}) of {secret:?}"),
            engine.encode(secret),
        ));
        forms.push((
            format!("base64 ({alphabet}) of the Basic credentials of {secret:?}"),
            engine.encode(&basic),
        ));
    }
    forms
}

/// The API keys of this file: the configured ones and those presented wrongly.
fn api_keys() -> Vec<(String, String)> {
    [
        ("the admin client's key", ADMIN_KEY),
        ("the reports client's key", REPORTS_KEY),
        ("an unknown key", UNKNOWN_KEY),
        (
            "the admin key with one character changed",
            &near_miss(ADMIN_KEY),
        ),
    ]
    .into_iter()
    .map(|(name, key)| (name.to_owned(), key.to_owned()))
    .collect()
}

/// `key` with its last character changed: a typo of a real key.
fn near_miss(key: &str) -> String {
    let mut near = key[..key.len() - 1].to_owned();
    near.push(if key.ends_with('x') { 'y' } else { 'x' });
    near
}

/// What the clients of the proxy saw: status line, every header, every body.
#[derive(Default)]
struct Seen(String);

impl Seen {
    fn record(&mut self, reply: &Reply) -> &mut Self {
        self.0.push_str(&format!("{}\n", reply.status));
        for (name, value) in &reply.headers {
            self.0.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        self.0.push_str(&reply.text());
        self.0.push('\n');
        self
    }
}

/// Asserts that no `secret` appears in the captured logs nor in what clients saw.
fn assert_nothing_leaked(logs: &str, seen: &Seen, secrets: &[(String, String)]) {
    for (place, text) in [("the logs", logs), ("the responses", &seen.0)] {
        for (name, secret) in secrets {
            assert!(!text.contains(secret.as_str()), "{name} appears in {place}");
        }
    }
}

/// Asserts that the capture runs at TRACE and holds TRACE events.
fn assert_captured_at_trace(logs: &str) {
    assert_eq!(LevelFilter::current(), LevelFilter::TRACE);
    assert!(
        logs.contains(r#""level":"TRACE""#),
        "TRACE events are captured ({} bytes of logs)",
        logs.len()
    );
}

#[tokio::test]
async fn no_secret_leaves_the_proxy_while_it_works_fails_and_refreshes_its_token() {
    let capture = logs_at_trace();
    // Tokens live 3 s: the proxy refreshes them before expiry (a fifth of the lifetime
    // ahead) during the test, besides the refresh a revocation forces.
    let sim = SimConfig {
        client_secret: SECRET.into(),
        token_ttl: Duration::from_secs(3),
        ..sim_config()
    };
    let mut proxy = proxy_settings();
    proxy.cache.active_fresh_secs = 1;
    let app = TestApp::start_with_secret(sim, proxy, SECRET).await;
    let mut seen = Seen::default();

    // Work: conversations (Genesys' document and the view), reports with hydration.
    let ids: Vec<_> = app
        .sim
        .data()
        .conversations
        .iter()
        .take(5)
        .map(|c| c.id)
        .collect();
    for id in &ids {
        let reply = app.get(&format!("/conversations/{id}?view=full")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        seen.record(&reply);
    }
    let reply = app
        .post(
            "/reports/search",
            &json!({"from": "2025-03-09T00:00:00Z", "to": "2025-03-12T00:00:00Z",
                    "include": "conversation", "page_size": 3}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    seen.record(&reply);
    let reply = app.get_with(AGGREGATES, REPORTS_KEY, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    seen.record(&reply);

    // Genesys answers 401 to the token it issued: the proxy gets a new one and retries.
    // (Revoked tokens leave the simulator's store: keep them to look for them.)
    let mut tokens = app.sim.state().tokens.issued();
    let tokens_before = app.sim.counters().tokens_issued;
    app.sim.revoke_tokens();
    let reply = app.get(&format!("/conversations/{}", app.live_id())).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    seen.record(&reply);
    assert!(app.sim.counters().calls_with(GET_CONVERSATION, 401) >= 1);
    assert!(app.sim.counters().tokens_issued > tokens_before);

    // The token comes due: the proxy refreshes it before it expires (each lookup is of
    // a conversation not cached yet, so each needs the token).
    let tokens_before = app.sim.counters().tokens_issued;
    let waited = tokio::time::Instant::now();
    let mut uncached = app.sim.data().conversations.iter().skip(ids.len());
    while app.sim.counters().tokens_issued == tokens_before {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the token was refreshed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let id = uncached.next().expect("conversations left").id;
        let reply = app.get(&format!("/conversations/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        seen.record(&reply);
    }

    // Wrong API keys, presented both ways.
    for key in [UNKNOWN_KEY, &near_miss(ADMIN_KEY)] {
        let path = format!("/conversations/{}", ids[1]);
        let reply = app.get_with(&path, key, &[]).await;
        assert_eq!(reply.status, 401, "{}", reply.text());
        seen.record(&reply);
        let reply = app.get_with(&path, "", &[("x-api-key", key)]).await;
        assert_eq!(reply.status, 401, "{}", reply.text());
        seen.record(&reply);
    }
    // A key without the scope.
    let reply = app.get_with("/admin/cache", REPORTS_KEY, &[]).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    seen.record(&reply);

    // Genesys is down.
    app.sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let reply = app
        .get("/conversations/00000000-0000-4000-8000-000000000001")
        .await;
    assert!(reply.status >= 500, "{}", reply.text());
    seen.record(&reply);
    app.sim.set_faults(Faults::default());

    // What operators read.
    for path in ["/readyz", "/healthz", "/metrics"] {
        let reply = app.get_with(path, "", &[]).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        seen.record(&reply);
    }
    seen.record(&app.get("/admin/cache").await);
    assert!(
        seen.0.contains("genesys_proxy_token_requests_total"),
        "/metrics was read"
    );

    tokens.extend(app.sim.state().tokens.issued());
    assert!(
        tokens.len() >= 3,
        "tokens: the first, after the 401, before expiry"
    );
    let logs = capture.text();
    assert_captured_at_trace(&logs);
    let mut secrets = secret_forms(SECRET);
    secrets.extend(api_keys());
    secrets.extend(
        tokens
            .iter()
            .map(|t| ("a Genesys token".to_owned(), t.clone())),
    );
    assert_nothing_leaked(&logs, &seen, &secrets);
}

#[tokio::test]
async fn no_secret_leaves_the_proxy_when_genesys_refuses_its_credentials() {
    let capture = logs_at_trace();
    let sim = SimConfig {
        client_secret: SECRET.into(),
        ..sim_config()
    };
    let app = TestApp::start_with_secret(sim, proxy_settings(), WRONG_SECRET).await;
    let mut seen = Seen::default();
    let id = app.ended_id();

    let reply = app.get(&format!("/conversations/{id}")).await;
    assert!(reply.status >= 500, "{}", reply.text());
    seen.record(&reply);
    let reply = app.get_with(AGGREGATES, REPORTS_KEY, &[]).await;
    assert!(reply.status >= 500, "{}", reply.text());
    seen.record(&reply);
    for path in ["/readyz", "/metrics"] {
        seen.record(&app.get_with(path, "", &[]).await);
    }
    seen.record(&app.get("/admin/cache").await);
    assert!(
        app.sim.counters().calls_with(OAUTH_TOKEN, 401) >= 1,
        "the login host refused the credentials"
    );
    assert_eq!(app.sim.counters().tokens_issued, 0);

    let logs = capture.text();
    assert_captured_at_trace(&logs);
    assert!(
        logs.contains("Genesys token request failed"),
        "the refusal was logged"
    );
    let mut secrets = secret_forms(WRONG_SECRET);
    secrets.extend(secret_forms(SECRET));
    secrets.extend(api_keys());
    assert_nothing_leaked(&logs, &seen, &secrets);
}
