//! The details query selects, orders and pages conversations as Genesys documents, and
//! refuses bad queries with a 400 ErrorBody naming the field. Expectations are computed
//! from the generated records, never from the simulator's own filter code.

#[path = "support/harness.rs"]
mod harness;

use std::collections::HashSet;

use genesys_sim::data::{ConversationRecord, Direction, MediaType};
use harness::{Harness, expected_ids, interval_hours, sorted};
use serde_json::{Value, json};

/// An independent expectation: which generated records a filter should select.
type Keep = Box<dyn Fn(&ConversationRecord) -> bool>;

const FROM: i64 = -96;
const TO: i64 = -2;

fn query(segment: Value, conversation: Value) -> Value {
    let mut body = json!({ "interval": interval_hours(FROM, TO) });
    if !segment.is_null() {
        body["segmentFilters"] = segment;
    }
    if !conversation.is_null() {
        body["conversationFilters"] = conversation;
    }
    body
}

fn dimension(name: &str, value: &str) -> Value {
    json!({"type": "dimension", "dimension": name, "operator": "matches", "value": value})
}

async fn ids_for(h: &Harness, body: Value) -> Vec<String> {
    sorted(h.all_ids(body, 100).await)
}

#[tokio::test]
async fn an_unfiltered_query_returns_every_conversation_started_in_the_interval() {
    let h = Harness::default_org().await;
    let expected = expected_ids(h.data(), FROM, TO, |_| true);
    assert!(expected.len() > 150, "the test org should be busy enough");
    assert_eq!(ids_for(&h, query(Value::Null, Value::Null)).await, expected);
}

#[tokio::test]
async fn segment_dimension_filters_select_what_they_name() {
    let h = Harness::default_org().await;
    let org = &h.data().org;
    let queue = 2;
    let agent = 5;
    let wrapup = 3;
    let queue_id = org.queues[queue].id.to_string();
    let agent_id = org.agents[agent].id.to_string();
    let wrapup_id = org.wrapup_codes[wrapup].id.to_string();
    let cases: Vec<(Value, Keep)> = vec![
        (
            dimension("queueId", &queue_id),
            Box::new(move |c: &ConversationRecord| c.legs.iter().any(|l| l.queue == queue)),
        ),
        (
            dimension("userId", &agent_id),
            Box::new(move |c: &ConversationRecord| c.agents().any(|a| a.agent == agent)),
        ),
        (
            dimension("mediaType", "email"),
            Box::new(|c: &ConversationRecord| c.media == MediaType::Email),
        ),
        (
            dimension("direction", "outbound"),
            Box::new(|c: &ConversationRecord| c.direction == Direction::Outbound),
        ),
        (
            dimension("wrapUpCode", &wrapup_id),
            Box::new(move |c: &ConversationRecord| c.agents().any(|a| a.wrapup == wrapup)),
        ),
    ];
    for (predicate, keep) in cases {
        let body = query(
            json!([{"type": "and", "predicates": [predicate.clone()]}]),
            Value::Null,
        );
        let expected = expected_ids(h.data(), FROM, TO, keep);
        assert!(!expected.is_empty(), "no data for {predicate}");
        assert_eq!(ids_for(&h, body).await, expected, "filter {predicate}");
    }
}

#[tokio::test]
async fn conversation_dimension_filters_select_divisions_and_ids() {
    let h = Harness::default_org().await;
    let org = &h.data().org;
    let division = 1;
    let division_id = org.divisions[division].id.to_string();
    let body = query(
        Value::Null,
        json!([{"type": "and", "predicates": [dimension("divisionId", &division_id)]}]),
    );
    let expected = expected_ids(h.data(), FROM, TO, |c| {
        c.legs
            .iter()
            .any(|l| org.queues[l.queue].division == division)
    });
    assert!(!expected.is_empty());
    assert_eq!(ids_for(&h, body).await, expected);

    let some = expected_ids(h.data(), FROM, TO, |_| true);
    let picked = [some[3].clone(), some[40].clone()];
    let body = query(
        Value::Null,
        json!([{"type": "or", "predicates": [dimension("conversationId", &picked[0]), dimension("conversationId", &picked[1])]}]),
    );
    assert_eq!(ids_for(&h, body).await, sorted(picked.to_vec()));
}

#[tokio::test]
async fn metric_ranges_select_on_any_agent_leg() {
    let h = Harness::default_org().await;
    let cases: Vec<(&str, Value, Keep)> = vec![
        (
            "tHandle",
            json!({"gt": 300_000}),
            Box::new(|c: &ConversationRecord| c.agents().any(|a| a.handle_ms() > 300_000)),
        ),
        (
            "tTalk",
            json!({"gte": 60_000, "lt": 240_000}),
            Box::new(|c: &ConversationRecord| {
                c.agents().any(|a| (60_000..240_000).contains(&a.talk_ms()))
            }),
        ),
        (
            "tAcw",
            json!({"lte": 10_000}),
            Box::new(|c: &ConversationRecord| c.agents().any(|a| a.acw_ms <= 10_000)),
        ),
    ];
    for (metric, range, keep) in cases {
        let body = query(
            Value::Null,
            json!([{"type": "and", "predicates": [{"type": "metric", "metric": metric, "range": range}]}]),
        );
        let expected = expected_ids(h.data(), FROM, TO, keep);
        assert!(!expected.is_empty(), "no data for {metric}");
        assert_eq!(ids_for(&h, body).await, expected, "metric {metric} {range}");
    }
}

#[tokio::test]
async fn exists_and_not_exists_test_for_presence() {
    let h = Harness::default_org().await;
    // Abandoned conversations have no agent, hence no wrap-up code anywhere.
    let with_wrapup = query(
        json!([{"type": "and", "predicates": [{"dimension": "wrapUpCode", "operator": "exists"}]}]),
        Value::Null,
    );
    let answered = expected_ids(h.data(), FROM, TO, |c| c.agents().next().is_some());
    assert_eq!(ids_for(&h, with_wrapup).await, answered);

    let without_tag = query(
        Value::Null,
        json!([{"type": "and", "predicates": [{"dimension": "externalTag", "operator": "notExists"}]}]),
    );
    let untagged = expected_ids(h.data(), FROM, TO, |c| c.external_tag.is_none());
    assert!(untagged.len() < expected_ids(h.data(), FROM, TO, |_| true).len());
    assert_eq!(ids_for(&h, without_tag).await, untagged);

    let abandoned = query(
        Value::Null,
        json!([{"type": "and", "predicates": [{"type": "metric", "metric": "tAbandon", "operator": "exists"}]}]),
    );
    let expected = expected_ids(h.data(), FROM, TO, |c| {
        c.legs
            .iter()
            .any(|l| l.acd.as_ref().is_some_and(|a| a.abandoned))
    });
    assert!(!expected.is_empty());
    assert_eq!(ids_for(&h, abandoned).await, expected);
}

#[tokio::test]
async fn and_or_and_clauses_combine_as_documented() {
    let h = Harness::default_org().await;
    let org = &h.data().org;
    let (q1, q2) = (0, 4);
    let q1_id = org.queues[q1].id.to_string();
    let q2_id = org.queues[q2].id.to_string();
    // voice AND (queue q1 OR queue q2), evaluated on one segment: the media type is on every
    // segment of the conversation, so this is voice conversations touching either queue.
    let body = query(
        json!([{
            "type": "and",
            "predicates": [dimension("mediaType", "voice")],
            "clauses": [{"type": "or", "predicates": [dimension("queueId", &q1_id), dimension("queueId", &q2_id)]}],
        }]),
        Value::Null,
    );
    let expected = expected_ids(h.data(), FROM, TO, |c| {
        c.media == MediaType::Voice && c.legs.iter().any(|l| l.queue == q1 || l.queue == q2)
    });
    assert!(!expected.is_empty());
    assert_eq!(ids_for(&h, body).await, expected);

    // Two segment filters must both hold (on possibly different segments); a conversation
    // filter must hold as well.
    let body = query(
        json!([
            {"type": "and", "predicates": [dimension("direction", "inbound")]},
            {"type": "or", "predicates": [dimension("mediaType", "chat"), dimension("mediaType", "message")]},
        ]),
        json!([{"type": "and", "predicates": [{"type": "metric", "metric": "tHandle", "range": {"gt": 600_000}}]}]),
    );
    let expected = expected_ids(h.data(), FROM, TO, |c| {
        c.direction == Direction::Inbound
            && matches!(c.media, MediaType::Chat | MediaType::Message)
            && c.agents().any(|a| a.handle_ms() > 600_000)
    });
    assert!(!expected.is_empty());
    assert_eq!(ids_for(&h, body).await, expected);
}

#[tokio::test]
async fn paging_covers_every_match_exactly_once_in_a_stable_order() {
    let h = Harness::default_org().await;
    let body = query(Value::Null, Value::Null);
    let by_7 = h.all_ids(body.clone(), 7).await;
    let by_100 = h.all_ids(body.clone(), 100).await;
    let unique: HashSet<&String> = by_7.iter().collect();
    assert_eq!(unique.len(), by_7.len(), "no id appears twice");
    assert_eq!(by_7, by_100, "the order does not depend on the page size");
    assert_eq!(
        sorted(by_7.clone()),
        expected_ids(h.data(), FROM, TO, |_| true)
    );

    // Ascending by conversation start, ties by id.
    let starts: Vec<_> = by_7
        .iter()
        .map(|id| {
            h.data()
                .get(&id.parse().expect("uuid"))
                .expect("known")
                .start
        })
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));

    let mut desc = body.clone();
    desc["order"] = json!("desc");
    let reversed = h.all_ids(desc, 50).await;
    assert_eq!(reversed, by_7.iter().rev().cloned().collect::<Vec<_>>());

    let first = h.details(&json!({"interval": interval_hours(FROM, TO), "paging": {"pageSize": 5, "pageNumber": 1}})).await.json();
    assert_eq!(
        first["totalHits"].as_u64().expect("totalHits") as usize,
        by_7.len()
    );
    assert_eq!(first["conversations"].as_array().expect("page").len(), 5);
}

#[tokio::test]
async fn a_query_without_matches_omits_conversations_as_genesys_does() {
    let h = Harness::default_org().await;
    let reply = h
        .details(&query(json!([{"type": "and", "predicates": [dimension("queueId", "00000000-0000-4000-8000-000000000000")]}]), Value::Null))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"totalHits": 0}));
    // A page past the end has no conversations either.
    let past = h
        .details(&json!({"interval": interval_hours(FROM, TO), "paging": {"pageSize": 100, "pageNumber": 50}}))
        .await
        .json();
    assert!(past.get("conversations").is_none());
    assert!(past["totalHits"].as_u64().expect("total") > 0);
}

#[tokio::test]
async fn without_paging_the_documented_default_page_size_of_25_applies() {
    let h = Harness::default_org().await;
    let reply = h
        .details(&json!({"interval": interval_hours(FROM, TO)}))
        .await
        .json();
    assert_eq!(reply["conversations"].as_array().expect("page").len(), 25);
}

#[tokio::test]
async fn the_documented_interval_matching_includes_whole_touched_days() {
    let mut config = harness::config();
    config.interval_matching = genesys_sim::IntervalMatching::StartedOnTouchedDay;
    let h = Harness::start(config).await;
    // 10:00 to 14:00 three days before the anchor touches one UTC day: the whole day matches.
    let body = json!({"interval": interval_hours(-62, -58)});
    let got = sorted(h.all_ids(body, 100).await);
    assert_eq!(got, expected_ids(h.data(), -72, -48, |_| true));
    assert!(got.len() > expected_ids(h.data(), -62, -58, |_| true).len());
}

async fn assert_bad_request(h: &Harness, body: Value, field: &str, code: &str) {
    let reply = h.details(&body).await;
    assert_eq!(
        reply.status, 400,
        "{body} should be refused: {}",
        reply.text
    );
    let error = reply.json();
    assert_eq!(error["status"], 400);
    assert_eq!(error["code"], code, "{}", reply.text);
    assert_eq!(error["details"][0]["fieldName"], field, "{}", reply.text);
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains(field.split('[').next().unwrap_or(field))
    );
    assert_eq!(
        Some(error["contextId"].as_str().expect("contextId").to_owned()),
        reply.header("inin-correlation-id")
    );
}

#[tokio::test]
async fn limits_and_bad_queries_get_a_400_error_body_naming_the_field() {
    let h = Harness::default_org().await;
    let interval = interval_hours(FROM, TO);
    assert_bad_request(&h, json!({}), "interval", "bad.request").await;
    assert_bad_request(
        &h,
        json!({"interval": "last week"}),
        "interval",
        "invalid.date",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval_hours(-1, -2)}),
        "interval",
        "bad.request",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval_hours(-24 * 40, -2)}),
        "interval",
        "bad.request",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval, "paging": {"pageSize": 101, "pageNumber": 1}}),
        "paging.pageSize",
        "bad.request",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval, "paging": {"pageSize": 10, "pageNumber": 0}}),
        "paging.pageNumber",
        "bad.request",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval, "paging": {"pageSize": 10}}),
        "paging.pageNumber",
        "bad.request",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval, "order": "sideways"}),
        "order",
        "invalid.value",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval, "orderBy": "duration"}),
        "orderBy",
        "invalid.value",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval, "expand": "everything"}),
        "expand",
        "bad.request",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval, "segmentFilters": [{"type": "and", "predicates": [dimension("favouriteColour", "blue")]}]}),
        "segmentFilters[0].predicates[0].dimension",
        "invalid.value",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval, "conversationFilters": [{"type": "xor", "predicates": []}]}),
        "conversationFilters[0].type",
        "invalid.value",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval, "conversationFilters": [{"type": "and", "predicates": [{"type": "metric", "metric": "tHandle"}]}]}),
        "conversationFilters[0].predicates[0].value",
        "bad.request",
    )
    .await;
    assert_bad_request(
        &h,
        json!({"interval": interval, "conversationFilters": [{"type": "and", "predicates": [{"type": "metric", "metric": "tNapping", "range": {"gt": 1}}]}]}),
        "conversationFilters[0].predicates[0].metric",
        "invalid.value",
    )
    .await;

    let reply = h
        .http
        .post(h.url("/api/v2/analytics/conversations/details/query"))
        .bearer_auth(&h.token)
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(reply.status(), 400);
    // None of these reached the data: every details call was a 400.
    let counters = h.sim.counters();
    assert_eq!(
        counters.calls_to("details_query"),
        counters.calls_with("details_query", 400)
    );
}
