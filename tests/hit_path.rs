//! The cache-hit fast path of `GET /conversations/{id}` (src/routes/hit_path.rs), over
//! HTTP: a hit answers exactly as the full stack would, it never serves a request the full
//! stack would refuse, and it stands aside where it must.

mod support;

use support::{ADMIN_KEY, REPORTS_KEY, TestApp, assert_problem, proxy_settings, sim_config};

/// Answers by the fast path so far, from `/metrics`.
async fn fast_path_answers(app: &TestApp) -> u64 {
    let text = app.get_with("/metrics", "", &[]).await.text();
    text.lines()
        .find_map(|l| l.strip_prefix("genesys_proxy_http_fast_path_answers_total "))
        .expect("the fast-path counter is exported")
        .parse()
        .expect("a count")
}

/// A hit's headers, in the order they were sent, with the parts that differ from request to
/// request (the clock and the request id) taken out.
fn comparable(reply: &support::Reply) -> Vec<(String, String)> {
    reply
        .headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
        .map(|(name, value)| {
            let value = value.to_str().expect("ascii");
            // `max-age`, `Age` and `ttl` count seconds and may tick between two requests.
            let value = match name.as_str() {
                "cache-control" | "age" | "cache-status" => value
                    .split(|c: char| c.is_ascii_digit())
                    .collect::<Vec<_>>()
                    .join("N"),
                _ => value.to_owned(),
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

#[tokio::test]
async fn a_hit_answers_the_same_with_and_without_the_fast_path() {
    let fast = TestApp::default_app().await;
    let mut settings = proxy_settings();
    settings.server.hit_fast_path = false;
    let full_stack = TestApp::start(sim_config(), settings).await;
    // Same seed, same org: the same conversation on both.
    let id = fast.ended_id();
    assert_eq!(id, full_stack.ended_id());
    for query in ["", "?view=full", "?view=summary"] {
        let path = format!("/conversations/{id}{query}");
        let (a, b) = (fast.get(&path).await, full_stack.get(&path).await);
        assert_eq!(comparable(&a), comparable(&b), "the misses of {path}");
        let (a, b) = (fast.get(&path).await, full_stack.get(&path).await);
        assert_eq!((a.status, &a.body), (b.status, &b.body), "{path}");
        assert_eq!(comparable(&a), comparable(&b), "the hits of {path}");
        assert!(a.header("cache-status").expect("status").contains("; hit"));
        assert!(a.header("x-request-id").is_some_and(|v| v.len() == 36));
        let etag = a.header("etag").expect("etag");
        let (a, b) = (
            fast.get_with(&path, ADMIN_KEY, &[("if-none-match", &etag)])
                .await,
            full_stack
                .get_with(&path, ADMIN_KEY, &[("if-none-match", &etag)])
                .await,
        );
        assert_eq!((a.status, b.status), (304, 304), "{path}");
        assert!(a.body.is_empty());
        assert_eq!(comparable(&a), comparable(&b), "the 304s of {path}");
    }
    // Every request after the first miss: 5 hits and 3 304s.
    assert_eq!(fast_path_answers(&fast).await, 8);
    assert_eq!(fast_path_answers(&full_stack).await, 0, "switched off");
    assert_eq!(fast.upstream_conversation_calls(), 1);
    // The cache and the request metrics count the fast path's answers as the handler's.
    let stats = fast.state.conversations.stats();
    assert_eq!((stats.hits, stats.misses), (8, 1), "{stats:?}");
    let metrics = fast.get_with("/metrics", "", &[]).await.text();
    for line in [
        "genesys_proxy_http_requests_total{route=\"/conversations/{id}\",method=\"GET\",status=\"200\"} 6",
        "genesys_proxy_http_requests_total{route=\"/conversations/{id}\",method=\"GET\",status=\"304\"} 3",
        "genesys_proxy_http_request_duration_seconds_count{route=\"/conversations/{id}\",method=\"GET\",status=\"304\"} 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_cached_conversation_is_never_served_to_a_request_the_full_stack_refuses() {
    let app = TestApp::default_app().await;
    let id = app.ended_id();
    let path = format!("/conversations/{id}");
    assert_eq!(app.get(&path).await.status, 200);
    assert_eq!(app.get(&path).await.status, 200);
    assert_eq!(fast_path_answers(&app).await, 1);

    let none = app.get_with(&path, "", &[]).await;
    assert_problem(&none, 401);
    assert_eq!(none.header("www-authenticate").as_deref(), Some("Bearer"));
    assert_problem(&app.get_with(&path, "gp_not_a_key", &[]).await, 401);
    let wrong_scheme = app
        .get_with(
            &path,
            "",
            &[("authorization", &format!("Basic {ADMIN_KEY}"))],
        )
        .await;
    assert_problem(&wrong_scheme, 401);
    assert_problem(&app.get_with(&path, REPORTS_KEY, &[]).await, 403);
    let bad_view = app.get(&format!("{path}?view=bogus")).await;
    assert_eq!(assert_problem(&bad_view, 400)["errors"][0]["name"], "view");
    let extra = app.get(&format!("{path}?view=full&expand=x")).await;
    assert_eq!(assert_problem(&extra, 400)["errors"][0]["name"], "expand");
    let post = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("sent");
    assert_eq!(post.status(), 405);
    // A GET with a body larger than the body limit: the limit answers, not the cache.
    let with_body = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(ADMIN_KEY)
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .expect("sent");
    assert_eq!(with_body.status(), 413);

    assert_eq!(fast_path_answers(&app).await, 1, "none of those was a hit");
    // The same key as X-API-Key, and an upper-case id, are hits of the same entry.
    let upper = path
        .to_uppercase()
        .replace("/CONVERSATIONS/", "/conversations/");
    let via_header = app.get_with(&upper, "", &[("x-api-key", ADMIN_KEY)]).await;
    assert_eq!(via_header.status, 200);
    assert_eq!(fast_path_answers(&app).await, 2);
    assert_eq!(app.upstream_conversation_calls(), 1);
}

#[tokio::test]
async fn a_client_request_id_is_echoed_and_generated_ids_differ() {
    let app = TestApp::default_app().await;
    let path = format!("/conversations/{}", app.ended_id());
    app.get(&path).await;
    let mine = app
        .get_with(&path, ADMIN_KEY, &[("x-request-id", "dashboard-42")])
        .await;
    assert_eq!(mine.header("x-request-id").as_deref(), Some("dashboard-42"));
    let a = app.get(&path).await.header("x-request-id").expect("id");
    let b = app.get(&path).await.header("x-request-id").expect("id");
    assert_ne!(a, b);
    assert!(uuid::Uuid::try_parse(&a).is_ok(), "{a}");
    assert_eq!(fast_path_answers(&app).await, 3);
}

#[tokio::test]
async fn a_remembered_404_goes_the_long_way_and_is_still_a_problem() {
    let app = TestApp::default_app().await;
    let path = format!("/conversations/{}", uuid::Uuid::new_v4());
    assert_problem(&app.get(&path).await, 404);
    let again = app.get(&path).await;
    assert_problem(&again, 404);
    assert!(
        again
            .header("cache-status")
            .expect("status")
            .contains("; hit")
    );
    assert_eq!(fast_path_answers(&app).await, 0);
    assert_eq!(app.upstream_conversation_calls(), 1);
}

#[tokio::test]
async fn with_cors_configured_hits_carry_the_cors_layers_headers_on_both_paths() {
    for origins in [
        vec!["https://dash.example.com", "https://wall.example.com"],
        vec!["*"],
    ] {
        let mut settings = proxy_settings();
        settings.server.cors_allowed_origins = origins.iter().map(|o| (*o).to_owned()).collect();
        let fast = TestApp::start(sim_config(), settings.clone()).await;
        settings.server.hit_fast_path = false;
        let full_stack = TestApp::start(sim_config(), settings).await;
        let path = format!("/conversations/{}", fast.ended_id());
        fast.get(&path).await;
        full_stack.get(&path).await;
        let requests: [&[(&str, &str)]; 4] = [
            &[("origin", "https://dash.example.com")],
            &[("origin", "https://wall.example.com")],
            &[("origin", "https://elsewhere.example.com")],
            &[],
        ];
        for headers in requests {
            let a = fast.get_with(&path, ADMIN_KEY, headers).await;
            let b = full_stack.get_with(&path, ADMIN_KEY, headers).await;
            assert_eq!((a.status, b.status), (200, 200));
            assert_eq!(comparable(&a), comparable(&b), "{origins:?} {headers:?}");
            // A list of origins makes the answer vary by origin; `*` does not.
            assert_eq!(
                a.header("vary").is_some_and(|v| v.contains("origin")),
                origins != ["*"],
                "{:?}",
                a.headers
            );
        }
        let allowed = fast
            .get_with(&path, ADMIN_KEY, &[("origin", "https://dash.example.com")])
            .await;
        let expected = if origins == ["*"] {
            "*"
        } else {
            "https://dash.example.com"
        };
        assert_eq!(
            allowed.header("access-control-allow-origin").as_deref(),
            Some(expected)
        );
        assert!(
            allowed
                .header("access-control-expose-headers")
                .is_some_and(|v| v.contains("cache-status"))
        );
        let elsewhere = fast
            .get_with(
                &path,
                ADMIN_KEY,
                &[("origin", "https://elsewhere.example.com")],
            )
            .await;
        assert_eq!(
            elsewhere.header("access-control-allow-origin").is_some(),
            origins == ["*"]
        );
        assert_eq!(fast_path_answers(&fast).await, 6, "{origins:?}");
        assert_eq!(fast_path_answers(&full_stack).await, 0);
    }
}

#[tokio::test]
async fn with_cors_configured_a_preflight_is_answered_by_the_cors_layer_with_a_request_id() {
    let mut settings = proxy_settings();
    settings.server.cors_allowed_origins = vec!["https://dash.example.com".to_owned()];
    let app = TestApp::start(sim_config(), settings).await;
    let preflight = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/conversations/{}", app.base, app.ended_id()),
        )
        .header("origin", "https://dash.example.com")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("sent");
    assert_eq!(preflight.status(), 200);
    let headers = preflight.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://dash.example.com"
    );
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .is_ok_and(|v| v.contains("GET"))
    );
    assert!(headers.get("x-request-id").is_some_and(|id| id.len() == 36));
    assert_eq!(fast_path_answers(&app).await, 0);
    assert_eq!(
        app.upstream_conversation_calls(),
        0,
        "nothing went upstream"
    );
}
