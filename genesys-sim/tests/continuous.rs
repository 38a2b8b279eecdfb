//! Continuous arrivals: conversations keep arriving after the simulator starts. Every API
//! shows a conversation only once the clock has reached its start, then running, then
//! ended, as the clock moves; at any hour the last fifteen minutes hold a contact centre's
//! worth of arrivals.

#[path = "support/harness.rs"]
mod harness;

use chrono::{DateTime, Duration, Utc};
use genesys_sim::data::{ConversationRecord, Direction};
use genesys_sim::render::format_time;
use genesys_sim::{IntervalMatching, SimConfig};
use harness::Harness;
use serde_json::{Value, json};

fn noon() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-12T12:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
}

/// 3,000 conversations a day, arriving continuously.
fn contact_centre() -> SimConfig {
    SimConfig {
        seed: 17,
        conversations: 6_000,
        days: 2,
        continuous: true,
        anchor: Some(noon()),
        interval_matching: IntervalMatching::StartedInInterval,
        ..SimConfig::default()
    }
}

/// Moves the simulator's clock (over its control API) to at least `to`.
async fn advance_to(h: &Harness, to: DateTime<Utc>) {
    let seconds = (to - h.sim.state().now()).num_seconds() + 1;
    let reply = h
        .post("/sim/clock/advance", &json!({"seconds": seconds.max(0)}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(h.sim.state().now() >= to);
}

fn by_id(id: &str, interval: &str) -> Value {
    json!({
        "interval": interval,
        "conversationFilters": [{"type": "and", "predicates": [
            {"type": "dimension", "dimension": "conversationId", "value": id}
        ]}],
    })
}

/// Everything the API shows of one conversation: the real-time document, single and
/// multi-get details, whether the details query finds it, and its aggregated metrics.
struct Seen {
    conversation: Option<Value>,
    details: Option<Value>,
    in_multi_get: bool,
    hits: u64,
    metrics: Vec<String>,
}

async fn seen(h: &Harness, record: &ConversationRecord) -> Seen {
    let id = record.id.to_string();
    let day = format!(
        "{}/{}",
        format_time(noon() - Duration::days(1)),
        format_time(noon() + Duration::days(2))
    );
    let conversation = h.get(&format!("/api/v2/conversations/{id}")).await;
    let details = h
        .get(&format!("/api/v2/analytics/conversations/{id}/details"))
        .await;
    let multi = h
        .get(&format!("/api/v2/analytics/conversations/details?id={id}"))
        .await;
    assert_eq!(multi.status, 200);
    let query = h.details(&by_id(&id, &day)).await;
    assert_eq!(query.status, 200, "{}", query.text);
    let aggregates = h
        .aggregates(&json!({
            "interval": day,
            "metrics": ["nConnected", "nOffered", "tAcd", "tTalk", "tHandle"],
            "filter": {"type": "and", "predicates": [
                {"type": "dimension", "dimension": "conversationId", "value": id}
            ]},
        }))
        .await;
    assert_eq!(aggregates.status, 200, "{}", aggregates.text);
    let present = |reply: &harness::Reply| match reply.status {
        200 => Some(reply.json()),
        404 => None,
        other => panic!("unexpected {other}: {}", reply.text),
    };
    let mut metrics: Vec<String> = aggregates.json()["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["data"][0]["metrics"].as_array().expect("metrics").clone())
        .map(|m| m["metric"].as_str().expect("name").to_owned())
        .collect();
    metrics.sort();
    Seen {
        conversation: present(&conversation),
        details: present(&details),
        in_multi_get: multi.json()["conversations"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["conversationId"] == id.as_str())),
        hits: query.json()["totalHits"].as_u64().expect("totalHits"),
        metrics,
    }
}

#[tokio::test]
async fn a_conversation_appears_when_it_starts_runs_and_then_ends() {
    let h = Harness::start(contact_centre()).await;
    // An inbound call answered by one agent, arriving an hour after the anchor.
    let record = h
        .data()
        .conversations
        .iter()
        .find(|c| {
            c.start > noon() + Duration::hours(1)
                && c.direction == Direction::Inbound
                && c.legs.len() == 1
                && c.agents().count() == 1
        })
        .expect("such a call arrives")
        .clone();

    let before = seen(&h, &record).await;
    assert!(
        before.conversation.is_none(),
        "GET answers 404 before it starts"
    );
    assert!(
        before.details.is_none(),
        "single details answer 404 before it starts"
    );
    assert!(!before.in_multi_get);
    assert_eq!(before.hits, 0);
    assert!(before.metrics.is_empty(), "{:?}", before.metrics);

    // Just after it starts: visible everywhere, running, with what has happened so far.
    advance_to(&h, record.start + Duration::milliseconds(500)).await;
    let running = seen(&h, &record).await;
    let conversation = running.conversation.expect("visible once started");
    assert!(conversation.get("endTime").is_none(), "{conversation}");
    let details = running.details.expect("visible once started");
    assert!(details.get("conversationEnd").is_none(), "{details}");
    assert!(running.in_multi_get);
    assert_eq!(running.hits, 1);
    assert_eq!(running.metrics, ["nConnected"]);

    // Once it and its wrap-up are over: ended everywhere, every metric in.
    advance_to(&h, record.last_event()).await;
    let ended = seen(&h, &record).await;
    let conversation = ended.conversation.expect("still there");
    assert_eq!(
        conversation["endTime"].as_str(),
        Some(format_time(record.disconnected()).as_str())
    );
    let details = ended.details.expect("still there");
    assert_eq!(
        details["conversationEnd"].as_str(),
        Some(format_time(record.last_event()).as_str())
    );
    assert_eq!(ended.hits, 1);
    assert_eq!(
        ended.metrics,
        ["nConnected", "nOffered", "tAcd", "tHandle", "tTalk"]
    );
}

#[tokio::test]
async fn the_last_fifteen_minutes_hold_a_contact_centre_s_arrivals_at_any_hour() {
    let h = Harness::start(contact_centre()).await;
    for hours in [0, 5, 7] {
        advance_to(&h, noon() + Duration::hours(hours)).await;
        let now = h.sim.state().now();
        let last = format!(
            "{}/{}",
            format_time(now - Duration::minutes(15)),
            format_time(now + Duration::seconds(1))
        );
        let reply = h.details(&json!({"interval": last})).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let json = reply.json();
        // 3,000 a day is about 31 in fifteen minutes, a few of them still running.
        let hits = json["totalHits"].as_u64().expect("totalHits");
        assert!(
            (15..=50).contains(&hits),
            "{hits} in the last 15 minutes at +{hours}h"
        );
        let conversations = json["conversations"].as_array().expect("a page");
        assert!(
            conversations
                .iter()
                .all(|c| c["conversationStart"].as_str() <= Some(format_time(now).as_str())),
            "nothing from the future"
        );
        let org = h.get("/sim/org").await.json();
        let started = org["conversations"]["started"].as_u64().expect("started");
        let total = org["conversations"]["total"].as_u64().expect("total");
        assert!(started < total, "more arrive later: {started} of {total}");
    }
}
