//! Readiness (`/readyz`) follows what the proxy can serve: a Genesys token, or cached data
//! within its stale bound. A login outage does not take a replica with a warm cache out
//! of the load balancer; one with neither is not ready; a probe never waits on a hanging
//! login host past its timeout. The body names the failing component either way.

mod support;

use std::time::Duration;

use genesys_sim::faults::Faults;
use genesys_sim::{SimConfig, Simulator};
use support::{Reply, TestApp, proxy_settings, sim_config};
use tokio::time::Instant;

fn login_outage() -> Faults {
    Faults {
        login_outage: true,
        ..Faults::default()
    }
}

/// Polls `/readyz` until `done` holds, for at most `limit`.
async fn readyz_until(app: &TestApp, limit: Duration, done: impl Fn(&Reply) -> bool) -> Reply {
    let started = Instant::now();
    loop {
        let reply = app.get_with("/readyz", "", &[]).await;
        if done(&reply) {
            return reply;
        }
        assert!(
            started.elapsed() < limit,
            "/readyz never got there: {} {}",
            reply.status,
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_login_outage_leaves_a_replica_with_cached_data_ready_until_the_stale_bound() {
    let mut settings = proxy_settings();
    // Whatever state the cached conversation is in: fresh for 2 s, then servable when
    // Genesys fails for 10 s more; it leaves the cache after those 12 s.
    settings.cache.ended_fresh_secs = 2;
    settings.cache.settled_fresh_secs = 2;
    settings.cache.active_fresh_secs = 2;
    settings.cache.stale_if_error_secs = 10;
    settings.cache.stale_while_revalidate_secs = 0;
    let app = TestApp::start(sim_config(), settings).await;
    let ready = app.get_with("/readyz", "", &[]).await;
    assert_eq!(
        ready.status,
        200,
        "ready at the first probe: {}",
        ready.text()
    );
    assert_eq!(ready.json()["components"]["genesys_token"]["status"], "ok");
    let cached = app.get(&format!("/conversations/{}", app.ended_id())).await;
    assert_eq!(cached.status, 200, "{}", cached.text());

    // The login host fails and Genesys stops accepting the token: the proxy loses it.
    app.sim.set_faults(login_outage());
    app.sim.state().tokens.revoke_all();
    let uncached = app.get(&format!("/conversations/{}", app.live_id())).await;
    assert_eq!(uncached.status, 503, "{}", uncached.text());

    let reply = app.get_with("/readyz", "", &[]).await;
    assert_eq!(
        reply.status,
        200,
        "the cache can still serve: {}",
        reply.text()
    );
    let body = reply.json();
    assert_eq!(body["status"], "ready");
    let token = &body["components"]["genesys_token"];
    assert_eq!(token["status"], "failing", "{body}");
    assert_eq!(token["held"], false, "{body}");
    assert!(
        token["detail"]
            .as_str()
            .is_some_and(|d| d.contains("login")),
        "{body}"
    );
    assert_eq!(body["components"]["cache"]["status"], "ok", "{body}");
    assert!(body["components"]["cache"]["entries"].as_u64() >= Some(1));
    // What readiness promises is served indeed.
    let stale = app.get(&format!("/conversations/{}", app.ended_id())).await;
    assert_eq!(stale.status, 200, "{}", stale.text());

    // Once the cached data is past its stale bound, nothing can be served.
    let gone = readyz_until(&app, Duration::from_secs(30), |r| r.status == 503).await;
    let body = gone.json();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["components"]["cache"]["status"], "empty", "{body}");
    assert_eq!(body["components"]["genesys_token"]["status"], "failing");
}

#[tokio::test]
async fn a_replica_with_no_token_and_nothing_cached_is_not_ready() {
    let app = TestApp::start(
        SimConfig {
            faults: login_outage(),
            ..sim_config()
        },
        proxy_settings(),
    )
    .await;
    // The first probe starts the token request; it may answer before the request fails.
    let reply = readyz_until(&app, Duration::from_secs(10), |r| {
        r.json()["components"]["genesys_token"]["status"] == "failing"
    })
    .await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["components"]["cache"]["status"], "empty", "{body}");
    assert_eq!(body["components"]["cache"]["entries"], 0, "{body}");
    assert!(
        body["components"]["genesys_token"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("login")),
        "{body}"
    );
    assert!(
        app.sim
            .counters()
            .calls_to(genesys_sim::endpoint::OAUTH_TOKEN)
            >= 1,
        "the probe asked for a token"
    );
}

/// A login host that accepts connections and never answers.
async fn hanging_login_host() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

#[tokio::test]
async fn a_probe_answers_within_its_timeout_while_the_login_host_hangs() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let (login, _hanging) = hanging_login_host().await;
    let mut settings = proxy_settings();
    // A token request waits this long: far past any probe timeout.
    settings.upstream.request_timeout_ms = 60_000;
    settings.server.request_timeout_ms = 60_000;
    let connection = genesys_proxy::config::GenesysConnection {
        endpoints: genesys_proxy::upstream::Endpoints::explicit(&sim.base_url(), &login)
            .expect("urls"),
        credentials: support::credentials(genesys_sim::config::DEFAULT_CLIENT_SECRET),
    };
    let app = genesys_proxy::App::build(settings, connection)
        .await
        .expect("builds");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    // Kubernetes' default probe timeout is one second; allow for a loaded machine.
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    for attempt in 0..3 {
        let reply = probe
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("probe {attempt} got no answer in time: {e}"));
        assert_eq!(reply.status(), 503, "probe {attempt}");
        let body: serde_json::Value = reply.json().await.expect("json");
        let token = &body["components"]["genesys_token"];
        assert_eq!(token["status"], "pending", "{body}");
        if attempt == 2 {
            assert_eq!(token["refreshing"], true, "still waiting: {body}");
        }
    }
    let _ = stop.send(());
}
