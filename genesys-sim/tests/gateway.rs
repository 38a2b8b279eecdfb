//! What Genesys' gateway does around every call: OAuth tokens, 401s, the per-token rate
//! limit with `inin-ratelimit-*` headers and 429 + `Retry-After`, injected faults, and the
//! counters tests read.

#[path = "support/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use genesys_sim::{Faults, SimConfig, Storm};
use harness::Harness;

fn conversation_path(h: &Harness) -> String {
    format!("/api/v2/conversations/{}", h.data().conversations[0].id)
}

#[tokio::test]
async fn the_token_endpoint_grants_client_credentials_and_refuses_wrong_ones() {
    let h = Harness::default_org().await;
    let good = h.token_request("sim-client", "sim-secret").await.json();
    assert_eq!(good["token_type"], "bearer");
    assert_eq!(good["expires_in"], 86_400);
    assert!(good["access_token"].as_str().expect("token").len() >= 32);

    let bad = h.token_request("sim-client", "not-the-secret").await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.json()["error"], "invalid_client");

    let no_grant = h
        .http
        .post(h.url("/oauth/token"))
        .basic_auth("sim-client", Some("sim-secret"))
        .body("grant_type=password")
        .send()
        .await
        .expect("sent");
    assert_eq!(no_grant.status(), 400);
    let counters = h.sim.counters();
    assert_eq!(
        counters.tokens_issued, 2,
        "the harness's token and the good request"
    );
    assert_eq!(counters.calls_with("oauth_token", 401), 1);
}

#[tokio::test]
async fn api_calls_need_a_valid_unexpired_token() {
    let mut config = harness::config();
    config.token_ttl = Duration::from_secs(1);
    let h = Harness::start(config).await;
    let path = conversation_path(&h);

    let missing = h.get_anonymous(&path).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["code"], "authentication.required");
    assert!(missing.header("inin-correlation-id").is_some());

    let wrong = h
        .http
        .get(h.url(&path))
        .bearer_auth("forged-token")
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<serde_json::Value>().await.expect("json")["code"],
        "bad.credentials"
    );

    assert_eq!(h.get(&path).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let expired = h.get(&path).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.json()["code"], "bad.credentials");
}

#[tokio::test]
async fn revoked_tokens_are_refused() {
    let h = Harness::default_org().await;
    let path = conversation_path(&h);
    assert_eq!(h.get(&path).await.status, 200);
    h.sim.revoke_tokens();
    let reply = h.get(&path).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["code"], "bad.credentials");
}

#[tokio::test]
async fn every_response_carries_rate_limit_headers_and_the_limit_answers_429() {
    let config = SimConfig {
        rate_limit: 5,
        ..harness::config()
    };
    let h = Harness::start(config).await;
    let path = conversation_path(&h);
    for expected in 1..=5 {
        let reply = h.get(&path).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("inin-ratelimit-count"),
            Some(expected.to_string())
        );
        assert_eq!(reply.header("inin-ratelimit-allowed").as_deref(), Some("5"));
        let reset: u64 = reply
            .header("inin-ratelimit-reset")
            .expect("reset")
            .parse()
            .expect("number");
        assert!((1..=60).contains(&reset));
        assert!(reply.header("inin-correlation-id").is_some());
    }
    let limited = h.get(&path).await;
    assert_eq!(limited.status, 429);
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after));
    let body = limited.json();
    assert_eq!(body["code"], "too.many.requests.retry.after");
    assert_eq!(body["status"], 429);
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains(&format!("[{retry_after}]"))
    );

    // Another token has its own window.
    let other = h.new_token().await;
    let reply = h
        .http
        .get(h.url(&path))
        .bearer_auth(&other)
        .send()
        .await
        .expect("sent");
    assert_eq!(reply.status(), 200);
    assert_eq!(h.sim.counters().rate_limited, 1);
}

#[tokio::test]
async fn a_rate_window_resets_after_its_length() {
    let config = SimConfig {
        rate_limit: 2,
        rate_window: Duration::from_secs(1),
        ..harness::config()
    };
    let h = Harness::start(config).await;
    let path = conversation_path(&h);
    assert_eq!(h.get(&path).await.status, 200);
    assert_eq!(h.get(&path).await.status, 200);
    assert_eq!(h.get(&path).await.status, 429);
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(h.get(&path).await.status, 200);
}

#[tokio::test]
async fn error_rates_answer_the_configured_status_with_an_error_body() {
    let h = Harness::default_org().await;
    let path = conversation_path(&h);
    for (status, code) in [
        (500, "internal.server.error"),
        (502, "bad.gateway"),
        (503, "service.unavailable"),
        (504, "request.timeout"),
    ] {
        h.sim.set_faults(Faults {
            error_rates: [(status, 1.0)].into(),
            ..Faults::default()
        });
        let reply = h.get(&path).await;
        assert_eq!(reply.status, status);
        assert_eq!(reply.json()["code"], code);
    }
    // A rate of one half fails about half the calls (seeded, so the count is stable).
    h.sim.set_faults(Faults {
        error_rates: [(503, 0.5)].into(),
        ..Faults::default()
    });
    let mut failures = 0;
    for _ in 0..100 {
        if h.get(&path).await.status == 503 {
            failures += 1;
        }
    }
    assert!((25..=75).contains(&failures), "{failures} of 100 failed");
}

#[tokio::test]
async fn an_outage_fails_the_api_and_the_login_host_until_cleared() {
    let h = Harness::default_org().await;
    let path = conversation_path(&h);
    h.sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    assert_eq!(h.get(&path).await.status, 503);
    assert_eq!(
        h.token_request("sim-client", "sim-secret").await.status,
        503
    );
    h.sim.set_faults(Faults::default());
    assert_eq!(h.get(&path).await.status, 200);

    h.sim.set_faults(Faults {
        login_outage: true,
        ..Faults::default()
    });
    assert_eq!(
        h.token_request("sim-client", "sim-secret").await.status,
        503
    );
    assert_eq!(h.get(&path).await.status, 200, "issued tokens keep working");
}

#[tokio::test]
async fn a_429_storm_sends_the_chosen_retry_after_for_the_chosen_count() {
    let h = Harness::default_org().await;
    let path = conversation_path(&h);
    h.sim.set_faults(Faults {
        storm: Some(Storm {
            retry_after_secs: 7,
            remaining: Some(3),
        }),
        ..Faults::default()
    });
    for _ in 0..3 {
        let reply = h.get(&path).await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after").as_deref(), Some("7"));
    }
    assert_eq!(h.get(&path).await.status, 200);
    assert_eq!(h.sim.counters().rate_limited, 3);
}

#[tokio::test]
async fn latency_delays_every_call() {
    let h = Harness::default_org().await;
    let path = conversation_path(&h);
    h.sim.set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(h.get(&path).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_missing_permission_answers_403_with_its_code() {
    let h = Harness::default_org().await;
    h.sim.set_faults(Faults {
        forbidden: true,
        ..Faults::default()
    });
    let reply = h.get(&conversation_path(&h)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["code"], "missing.permissions");
}

#[tokio::test]
async fn malformed_bodies_cannot_be_parsed() {
    let h = Harness::default_org().await;
    let path = conversation_path(&h);
    h.sim.set_faults(Faults {
        malformed_responses: 1,
        ..Faults::default()
    });
    let reply = h.get(&path).await;
    assert_eq!(reply.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&reply.text).is_err());
    let next = h.get(&path).await;
    assert!(serde_json::from_str::<serde_json::Value>(&next.text).is_ok());
}

#[tokio::test]
async fn faults_can_be_set_over_http_and_bad_ones_are_refused() {
    let h = Harness::default_org().await;
    let path = conversation_path(&h);
    let set = h
        .http
        .put(h.url("/sim/faults"))
        .json(&serde_json::json!({"error_rates": {"502": 1.0}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(set.status(), 200);
    assert_eq!(h.get(&path).await.status, 502);
    for bad in [
        serde_json::json!({"error_rates": {"418": 1.0}}),
        serde_json::json!({"error_rates": {"500": 2.0}}),
        serde_json::json!({"latency": 5}),
    ] {
        let refused = h
            .http
            .put(h.url("/sim/faults"))
            .json(&bad)
            .send()
            .await
            .expect("sent");
        assert_eq!(refused.status(), 400, "{bad}");
    }
    let cleared = h
        .http
        .delete(h.url("/sim/faults"))
        .send()
        .await
        .expect("sent");
    assert_eq!(cleared.status(), 200);
    assert_eq!(h.get(&path).await.status, 200);
}

#[tokio::test]
async fn counters_count_calls_per_endpoint_and_status() {
    let h = Harness::default_org().await;
    let path = conversation_path(&h);
    h.get(&path).await;
    h.get(&path).await;
    h.get("/api/v2/conversations/00000000-0000-4000-8000-000000000000")
        .await;
    h.get("/api/v2/no/such/route").await;
    let counters: serde_json::Value = h
        .http
        .get(h.url("/sim/counters"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(counters["calls"]["get_conversation"]["200"], 2);
    assert_eq!(counters["calls"]["get_conversation"]["404"], 1);
    assert_eq!(counters["calls"]["unknown"]["404"], 1);
    assert_eq!(counters["tokens_issued"], 1);
    h.http
        .delete(h.url("/sim/counters"))
        .send()
        .await
        .expect("sent");
    assert_eq!(h.sim.counters().calls_to("get_conversation"), 0);
}
