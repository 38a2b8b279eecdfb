//! `GET /conversations/{id}` end to end: simulator and proxy on port 0, over HTTP.
//! Upstream calls are read from the simulator's counters.

mod support;

use std::time::{Duration, Instant};

use genesys_sim::{Faults, endpoint};
use support::{TestApp, assert_problem, proxy_settings, sim_config};

#[tokio::test]
async fn a_second_request_is_served_from_the_cache() {
    let app = TestApp::default_app().await;
    let id = app.ended_id();
    let first = app.get(&format!("/conversations/{id}")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(
        first
            .header("cache-status")
            .expect("cache-status")
            .contains("fwd=miss")
    );
    let second = app.get(&format!("/conversations/{id}")).await;
    assert_eq!(second.status, 200);
    let status = second.header("cache-status").expect("cache-status");
    assert!(status.contains("; hit"), "{status}");
    assert_eq!(first.body, second.body);
    assert_eq!(app.upstream_conversation_calls(), 1);
    let view = second.json();
    assert_eq!(view["id"], id.to_string());
    assert_eq!(view["state"], "ended");
}

#[tokio::test]
async fn a_thousand_concurrent_requests_for_one_cold_id_make_one_upstream_call() {
    let app = TestApp::default_app().await;
    app.sim.set_faults(Faults {
        latency_ms: 200,
        ..Faults::default()
    });
    let id = app.ended_id();
    let path = format!("/conversations/{id}");
    let requests = (0..1000).map(|_| app.get(&path));
    let replies = futures_util::future::join_all(requests).await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "every request answered 200"
    );
    assert_eq!(app.upstream_conversation_calls(), 1);
    let collapsed = replies
        .iter()
        .filter(|r| {
            r.header("cache-status")
                .is_some_and(|s| s.contains("collapsed"))
        })
        .count();
    assert!(collapsed > 0, "concurrent requests joined the one fetch");
}

#[tokio::test]
async fn a_client_that_disconnects_early_does_not_cause_a_second_upstream_call() {
    let app = TestApp::default_app().await;
    app.sim.set_faults(Faults {
        latency_ms: 400,
        ..Faults::default()
    });
    let id = app.ended_id();
    let path = format!("/conversations/{id}");
    let first = tokio::time::timeout(Duration::from_millis(100), app.get(&path)).await;
    assert!(first.is_err(), "the first client gave up before the answer");
    let replies = futures_util::future::join_all((0..50).map(|_| app.get(&path))).await;
    assert!(replies.iter().all(|r| r.status == 200));
    assert_eq!(
        app.upstream_conversation_calls(),
        1,
        "the first client's fetch went on and was shared"
    );
}

#[tokio::test]
async fn an_active_conversation_is_refreshed_after_its_short_freshness_and_an_ended_one_is_not() {
    let mut settings = proxy_settings();
    settings.cache.active_fresh_secs = 1;
    settings.cache.stale_while_revalidate_secs = 0;
    let app = TestApp::start(sim_config(), settings).await;
    let live = format!("/conversations/{}", app.live_id());
    let ended = format!("/conversations/{}", app.ended_id());
    assert_eq!(app.get(&live).await.json()["state"], "active");
    assert_eq!(app.get(&ended).await.status, 200);
    assert_eq!(app.upstream_conversation_calls(), 2);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let refreshed = app.get(&live).await;
    assert!(
        refreshed
            .header("cache-status")
            .expect("status")
            .contains("fwd=stale")
    );
    let again = app.get(&ended).await;
    assert!(
        again
            .header("cache-status")
            .expect("status")
            .contains("; hit")
    );
    assert_eq!(
        app.upstream_conversation_calls(),
        3,
        "only the active one went upstream again"
    );
}

#[tokio::test]
async fn a_stale_entry_is_served_at_once_while_one_background_fetch_refreshes_it() {
    let mut settings = proxy_settings();
    settings.cache.active_fresh_secs = 1;
    settings.cache.stale_while_revalidate_secs = 30;
    let app = TestApp::start(sim_config(), settings).await;
    let live = format!("/conversations/{}", app.live_id());
    app.get(&live).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.sim.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let started = Instant::now();
    let stale = app.get(&live).await;
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "served without waiting for Genesys"
    );
    assert!(
        stale
            .header("cache-status")
            .expect("status")
            .contains("stale-while-revalidate")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fresh = app.get(&live).await;
    assert!(
        fresh
            .header("cache-status")
            .expect("status")
            .contains("; hit")
    );
    assert_eq!(app.upstream_conversation_calls(), 2);
}

#[tokio::test]
async fn an_unknown_id_is_a_404_remembered_for_the_negative_ttl() {
    let app = TestApp::default_app().await;
    let path = "/conversations/00000000-0000-4000-8000-000000000000";
    let first = app.get(path).await;
    let problem = assert_problem(&first, 404);
    assert_eq!(problem["type"], "urn:genesys-proxy:problem:not-found");
    let second = app.get(path).await;
    assert_problem(&second, 404);
    assert!(
        second
            .header("cache-status")
            .expect("status")
            .contains("; hit")
    );
    assert_eq!(app.upstream_conversation_calls(), 1);
}

#[tokio::test]
async fn during_an_outage_cached_ids_answer_stale_and_uncached_ids_get_a_quick_503_then_recover() {
    let mut settings = proxy_settings();
    settings.cache.active_fresh_secs = 1;
    settings.cache.stale_while_revalidate_secs = 0;
    settings.cache.stale_if_error_secs = 60;
    settings.server.request_timeout_ms = 2_000;
    let app = TestApp::start(sim_config(), settings).await;
    let cached = format!("/conversations/{}", app.live_id());
    let uncached = format!("/conversations/{}", app.ended_id());
    assert_eq!(app.get(&cached).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });

    let stale = app.get(&cached).await;
    assert_eq!(stale.status, 200);
    assert!(
        stale
            .header("cache-status")
            .expect("status")
            .contains("stale-if-error")
    );

    let started = Instant::now();
    let failed = app.get(&uncached).await;
    let problem = assert_problem(&failed, 503);
    assert!(
        started.elapsed() < Duration::from_millis(2_000),
        "answered within the request timeout"
    );
    assert!(failed.header("retry-after").is_some());
    assert!(problem["retry_after"].as_u64().is_some());
    assert!(
        !failed.text().contains("service.unavailable"),
        "no raw Genesys body"
    );

    app.sim.set_faults(Faults::default());
    assert_eq!(
        app.get(&uncached).await.status,
        200,
        "recovered without a restart"
    );
}

#[tokio::test]
async fn bad_ids_get_a_400_and_nothing_goes_upstream() {
    let app = TestApp::default_app().await;
    let long = "a".repeat(10 * 1024);
    for id in [
        "abc",
        "..%2F..%2Fusers%2Fme",
        "5f1c2b7e8a4d4c319e0f2d6b7a9c1e44",
        long.as_str(),
        "a/b",
    ] {
        let reply = app.get(&format!("/conversations/{id}")).await;
        let problem = assert_problem(&reply, 400);
        assert_eq!(problem["errors"][0]["name"], "id", "{id:.40}");
        assert!(reply.body.len() < 1_000, "the bad id is not echoed whole");
    }
    let reply = app
        .get(&format!("/conversations/{}?view=raw", app.ended_id()))
        .await;
    assert_eq!(assert_problem(&reply, 400)["errors"][0]["name"], "view");
    assert_eq!(app.sim.counters().calls_to(endpoint::GET_CONVERSATION), 0);
}

#[tokio::test]
async fn the_full_view_is_genesys_document_byte_for_byte() {
    let app = TestApp::default_app().await;
    let id = app.ended_id();
    let full = app.get(&format!("/conversations/{id}?view=full")).await;
    assert_eq!(full.status, 200);
    // Ask the simulator directly for the same document.
    let token: serde_json::Value = app
        .http
        .post(format!("{}/oauth/token", app.sim.base_url()))
        .basic_auth("sim-client", Some("sim-secret"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let direct = app
        .http
        .get(format!("{}/api/v2/conversations/{id}", app.sim.base_url()))
        .bearer_auth(token["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("direct")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(full.body, direct);
    assert_ne!(
        full.header("etag"),
        app.get(&format!("/conversations/{id}"))
            .await
            .header("etag")
    );
}

#[tokio::test]
async fn if_none_match_with_the_current_etag_gets_304() {
    let app = TestApp::default_app().await;
    let path = format!("/conversations/{}", app.ended_id());
    let first = app.get(&path).await;
    let etag = first.header("etag").expect("etag");
    let not_modified = app
        .get_with(&path, support::ADMIN_KEY, &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag));
    assert!(
        not_modified
            .header("cache-control")
            .expect("cache-control")
            .starts_with("private, max-age=")
    );
    let other = app
        .get_with(
            &path,
            support::ADMIN_KEY,
            &[("if-none-match", "\"v-other\"")],
        )
        .await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn a_missing_genesys_permission_is_a_502_naming_it() {
    let app = TestApp::default_app().await;
    app.sim.set_faults(Faults {
        forbidden: true,
        ..Faults::default()
    });
    let reply = app.get(&format!("/conversations/{}", app.ended_id())).await;
    let problem = assert_problem(&reply, 502);
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("conversation:communication:view")
    );
}

#[tokio::test]
async fn memory_stays_within_the_byte_budget_when_more_conversations_are_fetched_than_fit() {
    let mut settings = proxy_settings();
    settings.cache.max_bytes = 128 * 1024;
    let app = TestApp::start(sim_config(), settings).await;
    let ids: Vec<_> = app
        .sim
        .data()
        .conversations
        .iter()
        .take(120)
        .map(|c| c.id)
        .collect();
    for id in &ids {
        assert_eq!(app.get(&format!("/conversations/{id}")).await.status, 200);
    }
    app.state.conversations.settle().await;
    let stats = app.state.conversations.stats();
    assert!(stats.bytes <= 128 * 1024, "{} bytes cached", stats.bytes);
    assert!(
        stats.entries < 120,
        "some entries were evicted ({} kept)",
        stats.entries
    );
    assert!(stats.entries > 5, "the cache still holds entries");
}

#[tokio::test]
async fn keys_are_required_and_scopes_enforced() {
    let app = TestApp::default_app().await;
    let path = format!("/conversations/{}", app.ended_id());
    let none = app.get_with(&path, "", &[]).await;
    assert_problem(&none, 401);
    assert_eq!(none.header("www-authenticate").as_deref(), Some("Bearer"));
    assert_problem(&app.get_with(&path, "gp_not_a_key", &[]).await, 401);
    assert_problem(&app.get_with(&path, support::REPORTS_KEY, &[]).await, 403);
    let via_header = app
        .get_with(&path, "", &[("x-api-key", support::ADMIN_KEY)])
        .await;
    assert_eq!(via_header.status, 200);
    assert_eq!(app.upstream_conversation_calls(), 1);
}
