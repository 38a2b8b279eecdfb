//! The service surface: problem+json on every error path of every route, scopes,
//! readiness that follows the Genesys login, and Prometheus metrics.

mod support;

use std::time::{Duration, Instant};

use genesys_sim::{Faults, endpoint};
use serde_json::json;
use support::{ADMIN_KEY, REPORTS_KEY, TestApp, assert_problem, proxy_settings, sim_config};

#[tokio::test]
async fn every_route_answers_problem_json_on_its_error_paths() {
    let mut settings = proxy_settings();
    settings.server.body_limit_bytes = 2048;
    let app = TestApp::start(sim_config(), settings).await;
    let id = app.ended_id();

    // Unknown route and wrong method.
    assert_problem(&app.get("/no/such/route").await, 404);
    let wrong_method = app
        .http
        .delete(format!("{}/conversations/{id}", app.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(
        wrong_method.headers()["content-type"],
        "application/problem+json"
    );

    // Authentication and scopes on every protected route.
    let protected = [
        format!("/conversations/{id}"),
        "/reports/search?last=PT1H".to_owned(),
        "/reports/aggregates?last=PT1H&metrics=offered".to_owned(),
        "/admin/cache".to_owned(),
    ];
    for path in &protected {
        assert_problem(&app.get_with(path, "", &[]).await, 401);
        assert_problem(&app.get_with(path, "gp_unknown", &[]).await, 401);
    }
    assert_problem(
        &app.get_with(&format!("/conversations/{id}"), REPORTS_KEY, &[])
            .await,
        403,
    );
    assert_problem(&app.get_with("/admin/cache", REPORTS_KEY, &[]).await, 403);
    assert_eq!(
        app.get_with("/reports/search?last=PT1H", REPORTS_KEY, &[])
            .await
            .status,
        200
    );

    // Bodies: too large, not JSON, not an object.
    for path in ["/reports/search", "/reports/aggregates"] {
        let big = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(format!("{{\"from\": \"{}\"}}", "x".repeat(4096)))
            .send()
            .await
            .expect("sent");
        assert_eq!(big.status(), 413, "{path}");
        assert_eq!(big.headers()["content-type"], "application/problem+json");
        let text = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "text/csv")
            .body("a,b")
            .send()
            .await
            .expect("sent");
        assert_eq!(text.status(), 415, "{path}");
        let array = app.post(path, &json!([1, 2])).await;
        assert_eq!(assert_problem(&array, 400)["errors"][0]["name"], "body");
    }
    // Every problem carries the request id of its response.
    let reply = app.get("/no/such/route").await;
    assert!(
        reply
            .header("x-request-id")
            .is_some_and(|id| id.len() >= 32)
    );
}

#[tokio::test]
async fn a_client_supplied_request_id_is_kept() {
    let app = TestApp::default_app().await;
    let reply = app
        .get_with(
            "/no/such/route",
            ADMIN_KEY,
            &[("x-request-id", "trace-me-123")],
        )
        .await;
    assert_eq!(
        reply.header("x-request-id").as_deref(),
        Some("trace-me-123")
    );
    assert_eq!(assert_problem(&reply, 404)["instance"], "trace-me-123");
}

#[tokio::test]
async fn readiness_follows_the_genesys_login_and_recovers_without_a_restart() {
    let app = TestApp::start(sim_config(), proxy_settings()).await;
    assert_eq!(app.get_with("/healthz", "", &[]).await.status, 200);
    app.sim.set_faults(Faults {
        login_outage: true,
        ..Faults::default()
    });
    let not_ready = app.get_with("/readyz", "", &[]).await;
    assert_eq!(not_ready.status, 503);
    let body = not_ready.json();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["components"]["genesys_token"]["status"], "failing");
    assert_eq!(
        app.get_with("/healthz", "", &[]).await.status,
        200,
        "liveness does no I/O"
    );

    app.sim.set_faults(Faults::default());
    // The login backoff after one failure is at most half a second: ten seconds only
    // bound a proxy that never tries again.
    let started = Instant::now();
    loop {
        let reply = app.get_with("/readyz", "", &[]).await;
        if reply.status == 200 {
            assert_eq!(reply.json()["status"], "ready");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "ready again once the login host answers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.sim.counters().calls_with(endpoint::OAUTH_TOKEN, 200),
        1,
        "one token request once the login host answers again"
    );
}

#[tokio::test]
async fn metrics_show_a_hit_after_a_hit_and_upstream_calls_by_status() {
    let app = TestApp::default_app().await;
    let path = format!("/conversations/{}", app.ended_id());
    app.get(&path).await;
    app.get(&path).await;
    let metrics = app.get_with("/metrics", "", &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .expect("type")
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text();
    for line in [
        "genesys_proxy_cache_requests_total{cache=\"conversations\",result=\"hit\"} 1",
        "genesys_proxy_cache_requests_total{cache=\"conversations\",result=\"miss\"} 1",
        "genesys_proxy_upstream_requests_total{endpoint=\"get_conversation\",status=\"200\"} 1",
        "genesys_proxy_http_requests_total{route=\"/conversations/{id}\",method=\"GET\",status=\"200\"} 2",
        "genesys_proxy_http_fast_path_answers_total 1",
        "genesys_proxy_cache_entries{cache=\"conversations\"} 1",
        "genesys_proxy_token_requests_total 1",
        "genesys_proxy_budget_in_flight 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    // Every sample line belongs to a family announced just before it.
    let mut announced = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().expect("name");
            assert!(announced.insert(name.to_owned()), "{name} announced twice");
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().expect("name");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| announced.contains(*f)))
                .unwrap_or(name);
            assert!(announced.contains(family), "{name} has no TYPE line");
        }
    }
    assert!(!text.contains(ADMIN_KEY));
}

#[tokio::test]
async fn admin_can_see_and_purge_the_cache() {
    let app = TestApp::default_app().await;
    let path = format!("/conversations/{}", app.ended_id());
    app.get(&path).await;
    let stats = app.get("/admin/cache").await.json();
    assert_eq!(stats["conversations"]["entries"], 1);
    let purge = app
        .http
        .delete(format!("{}/admin/cache", app.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("sent");
    assert_eq!(purge.status(), 204);
    assert_eq!(
        app.get("/admin/cache").await.json()["conversations"]["entries"],
        0
    );
    assert!(
        app.get(&path)
            .await
            .header("cache-status")
            .expect("status")
            .contains("fwd=miss")
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let sim = genesys_sim::Simulator::start(sim_config())
        .await
        .expect("sim");
    let connection = genesys_proxy::config::GenesysConnection {
        endpoints: genesys_proxy::upstream::Endpoints::explicit(&sim.base_url(), &sim.base_url())
            .expect("urls"),
        credentials: support::credentials("sim-secret"),
    };
    let mut settings = proxy_settings();
    settings.upstream.request_timeout_ms = 5_000;
    settings.server.request_timeout_ms = 10_000;
    let app = genesys_proxy::App::build(settings, connection)
        .await
        .expect("builds");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    // Take the token first (ready means one is held), so the request's only upstream call
    // is its lookup.
    let started = Instant::now();
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("sent")
        .status()
        != 200
    {
        assert!(started.elapsed() < Duration::from_secs(10), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.set_faults(Faults {
        latency_ms: 2_000,
        ..Faults::default()
    });
    let id = sim.data().conversations[0].id;
    let in_flight = tokio::spawn(
        http.get(format!("{base}/conversations/{id}"))
            .bearer_auth(ADMIN_KEY)
            .send(),
    );
    let started = Instant::now();
    while sim.counters().arrivals_to(endpoint::GET_CONVERSATION) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the request never reached Genesys"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        sim.counters().calls_to(endpoint::GET_CONVERSATION),
        0,
        "the request is in flight when the shutdown starts"
    );
    let _ = stop.send(());
    // Well under the 20 s grace: the server stops once its one request is answered, and
    // not before (a test runtime keeps connections alive after `serve` returns, so that
    // order is what shows the drain).
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stopped after draining")
        .expect("task")
        .expect("clean stop");
    assert_eq!(
        sim.counters().calls_to(endpoint::GET_CONVERSATION),
        1,
        "the server stopped only after the lookup in flight was answered"
    );
    assert_eq!(
        in_flight.await.expect("task").expect("answered").status(),
        200,
        "the request in flight completed"
    );
}
