//! `GET /conversations/{id}` end to end: simulator and proxy on port 0, over HTTP.
//! Upstream calls are read from the simulator's counters: arrivals (every call that reached
//! Genesys, answered or not) and completions (responses sent).

mod support;

use std::time::{Duration, Instant};

use genesys_sim::{Faults, endpoint};
use support::{ADMIN_KEY, TestApp, assert_problem, proxy_settings, sim_config};

/// Longest wait for something a test waits for (an upstream call arriving, a background
/// refresh landing): far above what it takes on a loaded machine, it only bounds a failure.
const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until `condition` holds, checking every few milliseconds; panics naming `what`
/// after [`PATIENCE`].
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < PATIENCE,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether a `Cache-Status` value says the answer is a fresh hit (not a stale one).
fn is_fresh_hit(reply: &support::Reply) -> bool {
    reply
        .header("cache-status")
        .is_some_and(|s| s.contains("; hit") && !s.contains("detail="))
}

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
    // A thousand requests share one test thread with the proxy and the simulator: neither
    // their deadline nor the token exchange's timeout is what this test measures.
    let mut settings = proxy_settings();
    settings.server.request_timeout_ms = 30_000;
    settings.upstream.request_timeout_ms = 10_000;
    let app = TestApp::start(sim_config(), settings).await;
    // Long enough that requests still arriving on a loaded machine find the fetch running.
    app.sim.set_faults(Faults {
        latency_ms: 500,
        ..Faults::default()
    });
    let id = app.ended_id();
    let path = format!("/conversations/{id}");
    let requests = (0..1000).map(|_| app.get(&path));
    let replies = futures_util::future::join_all(requests).await;
    let failed: Vec<_> = replies.iter().filter(|r| r.status != 200).collect();
    assert!(
        failed.is_empty(),
        "every request answered 200; {} did not, such as {:?}",
        failed.len(),
        failed.first().map(|r| r.text())
    );
    let counters = app.sim.counters();
    assert_eq!(counters.arrivals_to(endpoint::GET_CONVERSATION), 1);
    assert_eq!(counters.calls_to(endpoint::GET_CONVERSATION), 1);
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
    let mut settings = proxy_settings();
    settings.upstream.request_timeout_ms = 5_000;
    settings.server.request_timeout_ms = 10_000;
    let app = TestApp::start(sim_config(), settings).await;
    // Readiness takes the token, so the first request's only upstream call is the lookup,
    // which Genesys answers after two seconds (well within the upstream timeout).
    let started = Instant::now();
    while app.get_with("/readyz", "", &[]).await.status != 200 {
        assert!(started.elapsed() < PATIENCE, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.sim.set_faults(Faults {
        latency_ms: 2_000,
        ..Faults::default()
    });
    let id = app.ended_id();
    let path = format!("/conversations/{id}");
    let first = tokio::spawn(
        app.http
            .get(format!("{}{path}", app.base))
            .bearer_auth(ADMIN_KEY)
            .send(),
    );
    wait_until("the first request's lookup reached Genesys", || {
        app.sim.counters().arrivals_to(endpoint::GET_CONVERSATION) == 1
    })
    .await;
    // The first client goes away while Genesys works on its lookup.
    first.abort();
    assert!(first.await.expect_err("aborted").is_cancelled());
    assert_eq!(
        app.sim.counters().calls_to(endpoint::GET_CONVERSATION),
        0,
        "the lookup was still in flight when its client left"
    );

    let replies = futures_util::future::join_all((0..50).map(|_| app.get(&path))).await;
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(replies.iter().all(|r| r.body == replies[0].body));
    // Counted on arrival: a lookup cancelled mid-flight and fetched again would be two
    // calls Genesys charges for, though only one of them is ever answered.
    let counters = app.sim.counters();
    assert_eq!(
        counters.arrivals_to(endpoint::GET_CONVERSATION),
        1,
        "the first client's fetch went on and was shared"
    );
    assert_eq!(counters.calls_to(endpoint::GET_CONVERSATION), 1);
    let over_http: serde_json::Value = app
        .http
        .get(format!("{}/sim/counters", app.sim.base_url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(over_http["arrivals"]["get_conversation"], 1);
}

#[tokio::test]
async fn an_active_conversation_is_refreshed_after_its_short_freshness_and_an_ended_one_is_not() {
    let mut settings = proxy_settings();
    settings.cache.active_fresh_secs = 1;
    settings.cache.stale_while_revalidate_secs = 0;
    // A stale request waits for its refresh however slow the machine (up to its deadline).
    settings.cache.stale_wait_ms = 10_000;
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
    // Were the stale copy not served at once, the request would wait out the refresh.
    settings.cache.stale_wait_ms = 10_000;
    settings.upstream.request_timeout_ms = 5_000;
    let app = TestApp::start(sim_config(), settings).await;
    let live = format!("/conversations/{}", app.live_id());
    let first = app.get(&live).await;
    assert_eq!(first.json()["state"], "active");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Meanwhile the conversation ends (so its refreshed copy stays fresh for minutes), and
    // Genesys takes two seconds to say so.
    app.sim.state().advance_clock(chrono::Duration::days(1));
    app.sim.set_faults(Faults {
        latency_ms: 2_000,
        ..Faults::default()
    });

    let stale = app.get(&live).await;
    let counters = app.sim.counters();
    assert_eq!(
        (
            counters.arrivals_to(endpoint::GET_CONVERSATION),
            counters.calls_to(endpoint::GET_CONVERSATION)
        ),
        (2, 1),
        "served while the refresh was still with Genesys"
    );
    assert!(
        stale
            .header("cache-status")
            .expect("status")
            .contains("stale-while-revalidate")
    );
    assert_eq!(stale.body, first.body, "the cached copy, byte for byte");
    // Requests while the refresh runs are served stale too, and start no other fetch.
    for _ in 0..5 {
        let again = app.get(&live).await;
        assert_eq!(again.body, first.body);
    }
    assert_eq!(
        app.sim.counters().arrivals_to(endpoint::GET_CONVERSATION),
        2
    );

    let started = Instant::now();
    let fresh = loop {
        let reply = app.get(&live).await;
        if is_fresh_hit(&reply) {
            break reply;
        }
        assert!(started.elapsed() < PATIENCE, "the refresh never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(fresh.json()["state"], "ended", "the refreshed copy");
    let counters = app.sim.counters();
    assert_eq!(counters.arrivals_to(endpoint::GET_CONVERSATION), 2);
    assert_eq!(counters.calls_to(endpoint::GET_CONVERSATION), 2);
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
    // "Quick" is measured against this: a proxy that waited for its deadline would take
    // ten seconds, the bounded retries take a fraction of one.
    settings.server.request_timeout_ms = 10_000;
    let app = TestApp::start(sim_config(), settings).await;
    let cached = format!("/conversations/{}", app.live_id());
    let uncached = format!("/conversations/{}", app.ended_id());
    let original = app.get(&cached).await;
    assert_eq!(original.status, 200);
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
    assert_eq!(stale.body, original.body, "the cached copy, byte for byte");

    let started = Instant::now();
    let failed = app.get(&uncached).await;
    let problem = assert_problem(&failed, 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered well before the ten-second request timeout: {:?}",
        started.elapsed()
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
    const BUDGET: u64 = 128 * 1024;
    let mut settings = proxy_settings();
    settings.cache.max_bytes = BUDGET;
    let app = TestApp::start(sim_config(), settings).await;
    // The oldest conversations: ended long ago, fresh for hours, never refreshed.
    let ids: Vec<_> = app
        .sim
        .data()
        .conversations
        .iter()
        .take(120)
        .map(|c| c.id)
        .collect();
    let mut fetched_bytes = 0;
    for id in &ids {
        let view = app.get(&format!("/conversations/{id}")).await;
        let full = app.get(&format!("/conversations/{id}?view=full")).await;
        assert_eq!((view.status, full.status), (200, 200));
        fetched_bytes += view.body.len() + full.body.len();
    }
    assert!(
        fetched_bytes > 2 * usize::try_from(BUDGET).expect("fits"),
        "more was fetched than fits: {fetched_bytes} bytes"
    );
    app.state.conversations.settle().await;
    let stats = app.state.conversations.stats();
    assert!(stats.bytes <= BUDGET, "{} bytes cached", stats.bytes);

    // Count independently of the cache's own figures: with Genesys down, a request can only
    // be answered from what the cache holds, and a miss cannot refill it. The bodies of the
    // hits (both representations each entry keeps) must fit in the budget.
    app.sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let app = &app;
    let probes = ids.iter().map(|id| async move {
        let view = app.get(&format!("/conversations/{id}")).await;
        if view.status != 200 {
            assert_problem(&view, 503);
            return None;
        }
        assert!(is_fresh_hit(&view), "{:?}", view.header("cache-status"));
        let full = app.get(&format!("/conversations/{id}?view=full")).await;
        assert!(
            is_fresh_hit(&full),
            "both representations live in one entry"
        );
        Some(view.body.len() + full.body.len())
    });
    let held: Vec<usize> = futures_util::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect();
    let held_bytes: usize = held.iter().sum();
    println!(
        "{held_bytes} bytes of bodies in {} entries held, {fetched_bytes} fetched",
        held.len()
    );
    assert!(
        held_bytes <= usize::try_from(BUDGET).expect("fits"),
        "{held_bytes} bytes of bodies served from the cache"
    );
    assert!(
        held.len() < ids.len(),
        "some entries were evicted ({} kept)",
        held.len()
    );
    assert!(held.len() > 5, "the cache still holds entries");
    assert_eq!(
        u64::try_from(held.len()).expect("fits"),
        stats.entries,
        "the cache's count agrees"
    );
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
