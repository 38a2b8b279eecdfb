//! `Cache-Control: max-age` and `Age` on `GET /conversations/{id}`, read as an RFC 9111
//! cache reads them (§4.2): freshness lifetime minus current age is what is left, and it
//! must be what the proxy itself has left, on the handler's answers and on the hit fast
//! path's alike.
//!
//! The entry is aged with tokio's clock (paused, advanced, resumed: the offset stays), not
//! by sleeping; the clock is running while requests are in flight, so no timer fires early.

mod support;

use std::time::Duration;

use support::{TestApp, proxy_settings, sim_config};
use tokio::time::Instant;
use uuid::Uuid;

/// `max-age`, `Age` and the `Cache-Status` ttl of an answer.
fn cache_headers(reply: &support::Reply) -> (u64, u64, i64) {
    let cache_control = reply.header("cache-control").expect("cache-control");
    let max_age = cache_control
        .strip_prefix("private, max-age=")
        .unwrap_or_else(|| panic!("unexpected Cache-Control {cache_control:?}"))
        .parse()
        .expect("delta-seconds");
    let age = reply
        .header("age")
        .expect("age")
        .parse()
        .expect("delta-seconds");
    let status = reply.header("cache-status").expect("cache-status");
    let ttl = status
        .split("; ")
        .find_map(|part| part.strip_prefix("ttl="))
        .expect("ttl")
        .parse()
        .expect("a number");
    (max_age, age, ttl)
}

/// The freshness lifetime of `id`'s entry and the whole seconds it has left now.
async fn entry_figures(app: &TestApp, id: Uuid) -> (Duration, u64) {
    let entry = app
        .state
        .conversations
        .fresh_hit(id)
        .await
        .expect("a fresh entry");
    (
        entry.fresh_until - entry.fetched_at,
        entry.fresh_secs(Instant::now()),
    )
}

/// Moves tokio's clock so that `id`'s entry was fetched `age` ago, and lets it run on.
async fn age_entry(app: &TestApp, id: Uuid, age: Duration) {
    tokio::time::pause();
    let entry = app
        .state
        .conversations
        .fresh_hit(id)
        .await
        .expect("a fresh entry");
    let so_far = Instant::now() - entry.fetched_at;
    tokio::time::advance(age.saturating_sub(so_far)).await;
    tokio::time::resume();
}

async fn a_cache_downstream_computes_the_proxys_freshness(fast_path: bool) {
    // Arrange: an ended conversation, fetched once (fresh for a minute or for hours).
    let mut settings = proxy_settings();
    settings.server.hit_fast_path = fast_path;
    let app = TestApp::start(sim_config(), settings).await;
    let id = app.ended_id();
    let path = format!("/conversations/{id}");
    let miss = app.get(&path).await;
    assert_eq!(miss.status, 200);
    let (lifetime, _) = entry_figures(&app, id).await;
    let (max_age, age, ttl) = cache_headers(&miss);
    assert_eq!(
        max_age,
        lifetime.as_secs(),
        "max-age is the freshness lifetime"
    );
    assert_eq!(max_age.saturating_sub(age), ttl.unsigned_abs());

    // Act: the same request once the entry is 10.5 s old (half a second from any tick).
    age_entry(&app, id, Duration::from_millis(10_500)).await;
    let hit = app.get(&path).await;
    let (_, proxy_left) = entry_figures(&app, id).await;

    // Assert: lifetime minus age, as RFC 9111 computes it, is what the proxy has left.
    assert_eq!(hit.status, 200);
    assert!(
        hit.header("cache-status")
            .expect("status")
            .contains("; hit;")
    );
    let (max_age, age, ttl) = cache_headers(&hit);
    assert_eq!(max_age, lifetime.as_secs(), "max-age does not count down");
    assert_eq!(age, 11, "seconds since the fetch, rounded up");
    assert_eq!(
        max_age - age,
        proxy_left,
        "an RFC 9111 cache keeps the copy exactly as long as the proxy does"
    );
    assert_eq!(ttl, i64::try_from(proxy_left).expect("small"));
}

#[tokio::test]
async fn max_age_and_age_leave_a_downstream_cache_the_proxys_freshness_on_the_fast_path() {
    a_cache_downstream_computes_the_proxys_freshness(true).await;
}

#[tokio::test]
async fn max_age_and_age_leave_a_downstream_cache_the_proxys_freshness_on_the_handler_path() {
    a_cache_downstream_computes_the_proxys_freshness(false).await;
}
