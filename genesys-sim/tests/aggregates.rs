//! The aggregates query: metrics computed from the same generated conversations, grouped and
//! bucketed as asked, checked against sums computed here from the generated records.

#[path = "support/harness.rs"]
mod harness;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use genesys_sim::data::{Dataset, MediaType};
use harness::{Harness, anchor, interval_hours};
use serde_json::{Value, json};

const FROM: i64 = -96;
const TO: i64 = -2;

fn in_range(at: DateTime<Utc>) -> bool {
    at >= anchor() + Duration::hours(FROM) && at < anchor() + Duration::hours(TO)
}

/// queue id -> metric -> values, from the generated records.
fn expected_by_queue(
    data: &Dataset,
    media: Option<MediaType>,
    metrics: &[&str],
) -> BTreeMap<String, BTreeMap<&'static str, Vec<i64>>> {
    let mut out: BTreeMap<String, BTreeMap<&'static str, Vec<i64>>> = BTreeMap::new();
    for c in data
        .conversations
        .iter()
        .filter(|c| media.is_none_or(|m| c.media == m))
    {
        for leg in &c.legs {
            let queue = data.org.queues[leg.queue].id.to_string();
            let entry = out.entry(queue).or_default();
            if let Some(acd) = &leg.acd {
                if in_range(leg.enter) {
                    entry.entry("nOffered").or_default().push(1);
                }
                let left = leg.enter + Duration::milliseconds(acd.wait_ms);
                if in_range(left) {
                    entry.entry("tWait").or_default().push(acd.wait_ms);
                    if acd.abandoned {
                        entry.entry("tAbandon").or_default().push(acd.wait_ms);
                    }
                }
            }
            if let Some(agent) = &leg.agent {
                if in_range(agent.acw_end()) {
                    entry.entry("tHandle").or_default().push(agent.handle_ms());
                    entry.entry("tAcw").or_default().push(agent.acw_ms);
                }
                if in_range(agent.disconnected) {
                    entry.entry("tTalk").or_default().push(agent.talk_ms());
                    if agent.transferred {
                        entry.entry("nTransferred").or_default().push(1);
                    }
                }
            }
        }
    }
    for by_metric in out.values_mut() {
        by_metric.retain(|name, _| metrics.contains(name));
    }
    out.retain(|_, by_metric| !by_metric.is_empty());
    out
}

/// count, sum, max, min of one metric.
type Stats = (i64, i64, i64, i64);
/// queue id -> metric -> stats.
type Summary = BTreeMap<String, BTreeMap<String, Stats>>;

/// queue id -> metric -> stats, summed over media types and buckets of the response.
fn actual_by_queue(body: &Value) -> Summary {
    let mut out: Summary = BTreeMap::new();
    for result in body["results"].as_array().expect("results") {
        let queue = result["group"]["queueId"]
            .as_str()
            .expect("queue group")
            .to_owned();
        for bucket in result["data"].as_array().expect("data") {
            for metric in bucket["metrics"].as_array().expect("metrics") {
                let stats = &metric["stats"];
                let entry = out
                    .entry(queue.clone())
                    .or_default()
                    .entry(metric["metric"].as_str().expect("name").to_owned())
                    .or_insert((0, 0, i64::MIN, i64::MAX));
                entry.0 += stats["count"].as_i64().expect("count");
                entry.1 += stats["sum"].as_i64().unwrap_or(0);
                entry.2 = entry.2.max(stats["max"].as_i64().unwrap_or(i64::MIN));
                entry.3 = entry.3.min(stats["min"].as_i64().unwrap_or(i64::MAX));
            }
        }
    }
    out
}

fn summarise(expected: BTreeMap<String, BTreeMap<&'static str, Vec<i64>>>) -> Summary {
    expected
        .into_iter()
        .map(|(queue, metrics)| {
            let metrics = metrics
                .into_iter()
                .map(|(name, values)| {
                    let stats = if name.starts_with('n') {
                        (values.iter().sum(), 0, i64::MIN, i64::MAX)
                    } else {
                        (
                            i64::try_from(values.len()).expect("small"),
                            values.iter().sum(),
                            *values.iter().max().expect("non-empty"),
                            *values.iter().min().expect("non-empty"),
                        )
                    };
                    (name.to_owned(), stats)
                })
                .collect();
            (queue, metrics)
        })
        .collect()
}

const METRICS: [&str; 6] = ["nOffered", "tWait", "tAbandon", "tHandle", "tAcw", "tTalk"];

#[tokio::test]
async fn metrics_by_queue_match_the_generated_data() {
    let h = Harness::default_org().await;
    let mut metrics = METRICS.to_vec();
    metrics.push("nTransferred");
    let body = h
        .aggregates(&json!({"interval": interval_hours(FROM, TO), "groupBy": ["queueId"], "metrics": metrics}))
        .await
        .json();
    let expected = summarise(expected_by_queue(h.data(), None, &metrics));
    assert!(expected.len() >= 6);
    assert_eq!(actual_by_queue(&body), expected);
    // n metrics carry only a count; t metrics max, min, count and sum.
    let first = &body["results"][0]["data"][0]["metrics"];
    for metric in first.as_array().expect("metrics") {
        let keys: Vec<&String> = metric["stats"].as_object().expect("stats").keys().collect();
        if metric["metric"].as_str().expect("name").starts_with('n') {
            assert_eq!(keys, ["count"]);
        } else {
            assert_eq!(keys.len(), 4);
        }
    }
}

#[tokio::test]
async fn buckets_of_a_granularity_add_up_to_the_whole_interval() {
    let h = Harness::default_org().await;
    let body = h
        .aggregates(&json!({"interval": interval_hours(FROM, TO), "granularity": "PT12H", "groupBy": ["queueId"], "metrics": METRICS}))
        .await
        .json();
    for result in body["results"].as_array().expect("results") {
        for bucket in result["data"].as_array().expect("data") {
            let interval = bucket["interval"].as_str().expect("interval");
            let (start, end) = interval.split_once('/').expect("start/end");
            let start = DateTime::parse_from_rfc3339(start).expect("start");
            let end = DateTime::parse_from_rfc3339(end).expect("end");
            assert!(end - start <= Duration::hours(12));
        }
    }
    assert_eq!(
        actual_by_queue(&body),
        summarise(expected_by_queue(h.data(), None, &METRICS))
    );
}

#[tokio::test]
async fn a_filter_restricts_the_observations() {
    let h = Harness::default_org().await;
    let body = h
        .aggregates(&json!({
            "interval": interval_hours(FROM, TO),
            "groupBy": ["queueId"],
            "metrics": METRICS,
            "filter": {"type": "and", "predicates": [{"type": "dimension", "dimension": "mediaType", "operator": "matches", "value": "voice"}]},
        }))
        .await
        .json();
    assert_eq!(
        actual_by_queue(&body),
        summarise(expected_by_queue(
            h.data(),
            Some(MediaType::Voice),
            &METRICS
        ))
    );
    assert!(
        body["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["group"]["mediaType"] == "voice")
    );
}

#[tokio::test]
async fn bad_aggregate_queries_get_a_400_naming_the_field() {
    let h = Harness::default_org().await;
    let interval = interval_hours(FROM, TO);
    let cases = [
        (json!({"interval": interval}), "metrics"),
        (json!({"interval": interval, "metrics": []}), "metrics"),
        (
            json!({"interval": interval, "metrics": ["tNapping"]}),
            "metrics[0]",
        ),
        (
            json!({"interval": interval, "metrics": ["tHandle"], "groupBy": ["shoeSize"]}),
            "groupBy[0]",
        ),
        (
            json!({"interval": interval, "metrics": ["tHandle"], "granularity": "P1M"}),
            "granularity",
        ),
        (
            json!({"interval": interval, "metrics": ["tHandle"], "granularity": "PT1S"}),
            "granularity",
        ),
        (json!({"metrics": ["tHandle"]}), "interval"),
        (
            json!({"interval": interval, "metrics": ["tHandle"], "filter": {"type": "and", "predicates": [{"dimension": "nope", "value": "x"}]}}),
            "filter.predicates[0].dimension",
        ),
    ];
    for (body, field) in cases {
        let reply = h.aggregates(&body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.json()["details"][0]["fieldName"], field, "{body}");
    }
}

#[tokio::test]
async fn an_interval_with_no_data_returns_no_results() {
    let h = Harness::default_org().await;
    let body = h
        .aggregates(&json!({"interval": interval_hours(-1000, -990), "metrics": ["nOffered"]}))
        .await
        .json();
    assert_eq!(body, json!({}));
}
