//! Reports at contact-centre volume: 3,000 conversations a day (120,000 over 40 days). A
//! walk of a month's details pages, filtered or not, returns every hit once in order, and
//! page after page stays cheap; aggregates over the month are not pathologically slow.
//!
//! Timings are printed (`cargo test -p genesys-sim --test volume -- --nocapture`): walks
//! over HTTP (the client reading only the ids) and inside the simulator. The asserted
//! bounds are loose (several times the targets) so that a busy machine does not fail the
//! test, while a return to rescanning the month for every page would.

#[path = "support/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use genesys_sim::data::{ConversationRecord, Dataset, Direction};
use genesys_sim::query::details::DetailsQuery;
use genesys_sim::render::format_time;
use genesys_sim::{IntervalMatching, SimConfig};
use harness::{Harness, anchor};
use serde::Deserialize;
use serde_json::{Value, json};

const PAGES: u32 = 20;
const PAGE_SIZE: u32 = 100;

fn volume() -> SimConfig {
    SimConfig {
        seed: 5,
        conversations: 120_000,
        days: 40,
        anchor: Some(anchor()),
        interval_matching: IntervalMatching::StartedOnTouchedDay,
        ..SimConfig::default()
    }
}

/// The 31 days before the anchor (the anchor is a midnight, so whole days).
fn month() -> String {
    format!(
        "{}/{}",
        format_time(anchor() - chrono::Duration::days(31)),
        format_time(anchor())
    )
}

/// What the walk reads of a page: the ids (reading the whole page into a
/// `serde_json::Value` would cost the test more, in a debug build, than the simulator
/// spends serving it).
#[derive(Deserialize)]
struct Page {
    conversations: Vec<Hit>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hit {
    conversation_id: String,
}

/// Walks `PAGES` pages of `body`; returns the ids in page order and the mean time a page.
async fn walk(h: &Harness, mut body: Value) -> (Vec<String>, Duration) {
    let mut ids = Vec::new();
    let started = Instant::now();
    for page in 1..=PAGES {
        body["paging"] = json!({"pageSize": PAGE_SIZE, "pageNumber": page});
        let reply = h.details(&body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let page: Page = serde_json::from_str(&reply.text).expect("a details page");
        assert_eq!(page.conversations.len(), PAGE_SIZE as usize);
        ids.extend(page.conversations.into_iter().map(|c| c.conversation_id));
    }
    (ids, started.elapsed() / PAGES)
}

/// Asserts that two id lists are equal, naming the first difference (not printing them).
fn assert_same(actual: &[String], expected: &[String], what: &str) {
    let first = actual.iter().zip(expected).position(|(a, e)| a != e);
    assert!(
        first.is_none() && actual.len() == expected.len(),
        "{what}: {} ids, {} expected, first difference at {first:?}: {:?} instead of {:?}",
        actual.len(),
        expected.len(),
        first.map(|i| &actual[i]),
        first.map(|i| &expected[i]),
    );
}

/// The first `PAGES * PAGE_SIZE` ids of the month's conversations that `keep` selects, in
/// `order`, from the records alone (every one of them is over at the anchor).
fn expected(
    data: &Dataset,
    keep: impl Fn(&ConversationRecord) -> bool,
    order: impl Fn(&ConversationRecord) -> (DateTime<Utc>, bool),
) -> Vec<String> {
    let from = anchor() - chrono::Duration::days(31);
    let mut hits: Vec<&ConversationRecord> = data
        .conversations
        .iter()
        .filter(|c| c.start >= from && c.start < anchor() && keep(c))
        .collect();
    hits.sort_by(|a, b| {
        let ((ka, desc), (kb, _)) = (order(a), order(b));
        let by_key = if desc { kb.cmp(&ka) } else { ka.cmp(&kb) };
        by_key.then(a.id.cmp(&b.id))
    });
    hits.iter()
        .take((PAGES * PAGE_SIZE) as usize)
        .map(|c| c.id.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_a_contact_centre_pages_quickly_and_completely() {
    let started = Instant::now();
    let h = Harness::start(volume()).await;
    let generation = started.elapsed();
    println!(
        "generation of {} conversations: {generation:?}",
        h.data().conversations.len()
    );
    assert!(
        generation < Duration::from_secs(25),
        "generation took {generation:?}"
    );

    // Unfiltered, in conversation-start order (the target: < 30 ms a page in debug).
    let (ids, per_page) = walk(&h, json!({"interval": month()})).await;
    println!("unfiltered walk: {per_page:?} a page");
    assert_same(
        &ids,
        &expected(h.data(), |_| true, |c| (c.start, false)),
        "unfiltered",
    );
    assert!(per_page < Duration::from_millis(150), "{per_page:?} a page");

    // The same walk's cost inside the simulator (query, page, JSON text), latest first.
    let started = Instant::now();
    for page in 1..=PAGES {
        let body = json!({
            "interval": month(),
            "order": "desc",
            "paging": {"pageSize": PAGE_SIZE, "pageNumber": page},
        });
        let query = DetailsQuery::parse(&body, &h.sim.state().config.limits).expect("valid");
        let text = h.sim.state().details_page(&query).to_json();
        assert!(text.len() > 100_000);
    }
    let per_page = started.elapsed() / PAGES;
    println!("unfiltered walk, inside the simulator: {per_page:?} a page");

    // A queue, as the proxy's reports filter.
    let queue = h.data().org.queues[3].id;
    let body = json!({
        "interval": month(),
        "segmentFilters": [{"type": "and", "predicates": [
            {"type": "dimension", "dimension": "queueId", "operator": "matches", "value": queue.to_string()}
        ]}],
    });
    let (ids, per_page) = walk(&h, body).await;
    println!("queue walk: {per_page:?} a page");
    let in_queue = |c: &ConversationRecord| {
        c.legs
            .iter()
            .any(|leg| h.data().org.queues[leg.queue].id == queue)
    };
    assert_same(
        &ids,
        &expected(h.data(), in_queue, |c| (c.start, false)),
        "queue",
    );
    assert!(per_page < Duration::from_millis(250), "{per_page:?} a page");

    // Handle time over ten minutes on inbound calls, in order of their end (the running
    // conversations, which may end during the test, come last: after the pages read).
    let body = json!({
        "interval": month(),
        "orderBy": "conversationEnd",
        "conversationFilters": [{"type": "and", "predicates": [
            {"type": "metric", "metric": "tHandle", "range": {"gt": 600_000}},
            {"type": "dimension", "dimension": "originatingDirection", "value": "inbound"}
        ]}],
    });
    let (ids, per_page) = walk(&h, body).await;
    println!("handle-time walk: {per_page:?} a page");
    let long = |c: &ConversationRecord| {
        c.direction == Direction::Inbound && c.agents().any(|a| a.handle_ms() > 600_000)
    };
    assert_same(
        &ids,
        &expected(h.data(), long, |c| (c.last_event(), false)),
        "handle time",
    );
    assert!(per_page < Duration::from_millis(250), "{per_page:?} a page");

    // Aggregates over the month, by the hour and queue.
    let started = Instant::now();
    let reply = h
        .aggregates(&json!({
            "interval": month(),
            "granularity": "PT1H",
            "groupBy": ["queueId"],
            "metrics": ["nOffered", "tHandle", "tAcd", "tTalk"],
        }))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.text);
    let offered: i64 = reply.json()["results"]
        .as_array()
        .expect("results")
        .iter()
        .flat_map(|group| group["data"].as_array().expect("data").iter())
        .flat_map(|bucket| bucket["metrics"].as_array().expect("metrics").iter())
        .filter(|m| m["metric"] == "nOffered")
        .map(|m| m["stats"]["count"].as_i64().expect("count"))
        .sum();
    println!("aggregates (31 days, PT1H, by queue): {elapsed:?}, nOffered {offered}");
    assert!(offered > 80_000, "a month of offers, got {offered}");
    assert!(
        elapsed < Duration::from_secs(20),
        "aggregates took {elapsed:?}"
    );
}
