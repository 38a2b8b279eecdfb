//! `/reports/search` and `/reports/aggregates` end to end against the simulator. Expected
//! results are computed here from the generated records' raw fields (ids, legs, timestamps,
//! durations), not by the simulator's query code nor its record helpers: handle time and
//! the instant Genesys counts it are worked out below from Genesys' definition.

mod support;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use genesys_sim::data::{AgentWork, ConversationRecord, Dataset, Direction, MediaType};
use genesys_sim::{SimConfig, endpoint};
use serde_json::{Value, json};
use support::{TestApp, assert_problem, at, big_org, proxy_settings, rfc};

/// An independent expectation: which generated records a filter should select.
type Keep<'a> = Box<dyn Fn(&ConversationRecord) -> bool + 'a>;
/// count, sum (seconds), min, max of one metric.
type Stats = (u64, f64, f64, f64);
/// queue id -> metric -> stats, computed from the generated records.
type Expected = BTreeMap<String, BTreeMap<&'static str, Stats>>;
/// queue id -> metric -> stats, read from a response.
type Actual = BTreeMap<String, BTreeMap<String, Stats>>;

/// The agents' parts of a conversation, leg by leg (a leg abandoned in queue has none).
fn agent_parts(c: &ConversationRecord) -> impl Iterator<Item = &AgentWork> {
    c.legs.iter().filter_map(|leg| leg.agent.as_ref())
}

/// Genesys' tHandle of one agent, in milliseconds: talk and hold (the agent is connected
/// from `connected` until `disconnected`, a hold lies inside that span) plus the after-call
/// work that follows the disconnect.
fn handle_ms(agent: &AgentWork) -> i64 {
    (agent.disconnected - agent.connected).num_milliseconds() + agent.acw_ms
}

/// When an agent's after-call work ends: Genesys reports tHandle at that instant.
fn wrapup_end(agent: &AgentWork) -> DateTime<Utc> {
    agent.disconnected + Duration::milliseconds(agent.acw_ms)
}

fn expected(
    data: &Dataset,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: impl Fn(&ConversationRecord) -> bool,
) -> Vec<String> {
    data.conversations
        .iter()
        .filter(|c| c.start >= from && c.start < to && keep(c))
        .map(|c| c.id.to_string())
        .collect()
}

/// Every page of a search: the ids in order, and the number of pages.
async fn walk(app: &TestApp, mut body: Value) -> (Vec<String>, usize, Vec<Value>) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut responses = Vec::new();
    loop {
        let reply = app.post("/reports/search", &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let page = reply.json();
        pages += 1;
        ids.extend(
            page["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_owned()),
        );
        responses.push(page.clone());
        match page["next_cursor"].as_str() {
            Some(cursor) => body["cursor"] = json!(cursor),
            None => break,
        }
        assert!(pages < 200, "the walk ends");
    }
    (ids, pages, responses)
}

#[tokio::test]
async fn a_90_day_search_walks_three_chunks_in_order_and_returns_each_match_once() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let (from, to) = (at(95, 10), at(5, 10));
    let (ids, pages, responses) = walk(
        &app,
        json!({"from": rfc(from), "to": rfc(to), "page_size": 37}),
    )
    .await;
    let want = expected(app.sim.data(), from, to, |_| true);
    assert!(want.len() > 700, "a busy interval ({})", want.len());
    assert_eq!(
        ids, want,
        "every match once, in start order across chunk boundaries"
    );
    assert_eq!(pages, want.len().div_ceil(37));
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    assert!(
        responses
            .iter()
            .all(|r| r["results"].as_array().expect("results").len() <= 37)
    );
    // Three chunks, each queried (the upstream interval never exceeds 31 days).
    let counters = app.sim.counters();
    assert!(
        counters.calls_with(endpoint::DETAILS_QUERY, 400) == 0,
        "no query was refused upstream"
    );
    assert!(counters.calls_to(endpoint::DETAILS_QUERY) >= 3);
    // The window cuts days, so Genesys' count (whole touched days) is not the window's:
    // the proxy gives none until the last page, which counts what was returned.
    let (last, earlier) = responses.split_last().expect("pages");
    assert!(earlier.iter().all(|r| r.get("total_hits").is_none()));
    assert_eq!(last["total_hits"], json!(want.len()));
}

#[tokio::test]
async fn whole_day_intervals_give_the_window_count_on_the_first_page() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let (from, to) = (at(40, 0), at(4, 0));
    let want = expected(app.sim.data(), from, to, |_| true);
    let first = app
        .post(
            "/reports/search",
            &json!({"from": rfc(from), "to": rfc(to), "page_size": 10}),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["total_hits"], json!(want.len()));
}

#[tokio::test]
async fn a_cursor_from_other_walk_settings_is_refused_by_name() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let body = json!({"from": rfc(at(30, 0)), "to": rfc(at(2, 0)), "page_size": 5});
    let first = app.post("/reports/search", &body).await.json();
    let cursor = first["next_cursor"].as_str().expect("cursor").to_owned();
    let mut settings = proxy_settings();
    settings.reports.upstream_page_size = 50;
    let other = TestApp::start(big_org(), settings).await;
    let mut next = body.clone();
    next["cursor"] = json!(cursor);
    let reply = other.post("/reports/search", &next).await;
    let problem = assert_problem(&reply, 400);
    assert!(
        problem.to_string().contains("other report settings"),
        "{problem}"
    );
    // The same settings still walk on.
    assert_eq!(app.post("/reports/search", &next).await.status, 200);
}

#[tokio::test]
async fn relative_aggregates_obey_the_bucket_cap() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let reply = app
        .get("/reports/aggregates?last=P366D&granularity=PT1M&metrics=offered")
        .await;
    let problem = assert_problem(&reply, 400);
    assert!(problem.to_string().contains("granularity"), "{problem}");
    assert_eq!(
        app.sim.counters().calls_to(endpoint::AGGREGATES_QUERY),
        0,
        "nothing went upstream"
    );
}

#[tokio::test]
async fn descending_order_walks_the_chunks_backwards() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let (from, to) = (at(70, 3), at(20, 0));
    let (ids, _, _) = walk(
        &app,
        json!({"from": rfc(from), "to": rfc(to), "page_size": 100, "order": "desc"}),
    )
    .await;
    let mut want = expected(app.sim.data(), from, to, |_| true);
    want.reverse();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn filters_select_what_the_generated_data_says() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let data = app.sim.data();
    let org = &data.org;
    let (from, to) = (at(60, 0), at(1, 0));
    let (queue, agent, wrapup, division) = (3, 7, 2, 1);
    let cases: Vec<(Value, Keep<'_>)> = vec![
        (
            json!({"queue_ids": [org.queues[queue].id]}),
            Box::new(move |c| c.legs.iter().any(|l| l.queue == queue)),
        ),
        (
            json!({"user_ids": [org.agents[agent].id]}),
            Box::new(move |c| agent_parts(c).any(|a| a.agent == agent)),
        ),
        (
            json!({"media_types": ["chat", "email"]}),
            Box::new(|c| matches!(c.media, MediaType::Chat | MediaType::Email)),
        ),
        (
            json!({"directions": ["outbound"]}),
            Box::new(|c| c.direction == Direction::Outbound),
        ),
        (
            json!({"wrapup_codes": [org.wrapup_codes[wrapup].id]}),
            Box::new(move |c| agent_parts(c).any(|a| a.wrapup == wrapup)),
        ),
        (
            json!({"division_ids": [org.divisions[division].id]}),
            Box::new(move |c| {
                c.legs
                    .iter()
                    .any(|l| org.queues[l.queue].division == division)
            }),
        ),
        (
            json!({"min_handle_seconds": 300, "media_types": ["voice"]}),
            Box::new(|c| {
                c.media == MediaType::Voice && agent_parts(c).any(|a| handle_ms(a) >= 300_000)
            }),
        ),
        (
            json!({"min_handle_seconds": 60, "max_handle_seconds": 240}),
            Box::new(|c| agent_parts(c).any(|a| (60_000..=240_000).contains(&handle_ms(a)))),
        ),
    ];
    for (filter, keep) in cases {
        let mut body = filter.clone();
        body["from"] = json!(rfc(from));
        body["to"] = json!(rfc(to));
        body["page_size"] = json!(500);
        let (ids, _, _) = walk(&app, body).await;
        let want = expected(data, from, to, &keep);
        assert!(!want.is_empty(), "no data for {filter}");
        assert_eq!(ids, want, "filter {filter}");
    }
}

#[tokio::test]
async fn the_get_form_answers_as_the_post_form() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let org = &app.sim.data().org;
    let (from, to) = (rfc(at(10, 0)), rfc(at(2, 0)));
    let post = app
        .post("/reports/search", &json!({"from": from, "to": to, "media_types": ["voice", "chat"], "queue_ids": [org.queues[0].id, org.queues[1].id]}))
        .await
        .json();
    let path = format!(
        "/reports/search?from={from}&to={to}&media_types=voice,chat&queue_ids={}&queue_ids={}",
        org.queues[0].id, org.queues[1].id
    );
    let get = app.get(&path).await.json();
    assert_eq!(post["results"], get["results"]);
    assert!(!post["results"].as_array().expect("results").is_empty());
}

#[tokio::test]
async fn twenty_identical_dashboard_polls_make_one_upstream_query_per_bucket() {
    // A simulator anchored now, so the last 15 minutes have data.
    let sim = SimConfig {
        anchor: None,
        live_conversations: 30,
        ..big_org()
    };
    let app = TestApp::start(sim, proxy_settings()).await;
    let polls = (0..20).map(|_| app.get("/reports/search?last=PT15M&page_size=10"));
    let replies = futures_util::future::join_all(polls).await;
    assert!(replies.iter().all(|r| r.status == 200));
    let first = replies[0].json();
    assert!(
        replies
            .iter()
            .all(|r| r.json()["interval"] == first["interval"]),
        "every poll saw the same interval"
    );
    let calls = app.sim.counters().calls_to(endpoint::DETAILS_QUERY);
    // One bucket, or two if the polls straddled a minute boundary.
    assert!(calls <= 2, "{calls} upstream queries for 20 polls");
    let later = app.get("/reports/search?last=PT15M&page_size=10").await;
    assert_eq!(later.status, 200);
    assert!(
        app.sim.counters().calls_to(endpoint::DETAILS_QUERY) <= 2,
        "a later poll in the bucket is served from the cache"
    );
}

/// Identical polls that arrive while one is being walked share its walk: the report page
/// cache sees one walk's reads, not twenty (each walk would read every page it needs from
/// the cache, and could take other pages, guided by the hints the first recorded).
#[tokio::test]
async fn identical_concurrent_searches_share_one_walk() {
    let mut sim = big_org();
    sim.faults.latency_ms = 300;
    let app = TestApp::start(sim, proxy_settings()).await;
    let query = format!(
        "/reports/search?from={}&to={}&page_size=10",
        rfc(at(2, 10)),
        rfc(at(2, 12))
    );
    let polls = (0..20).map(|_| app.get(&query));
    let replies = futures_util::future::join_all(polls).await;
    let first = replies[0].json();
    assert!(!first["results"].as_array().expect("results").is_empty());
    for reply in &replies {
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json(), first, "every poll got the same page");
    }
    let lookups = || async {
        let stats = app
            .get_with("/admin/cache", support::ADMIN_KEY, &[])
            .await
            .json();
        let pages = stats["reports"]["pages"].clone();
        ["hits", "misses", "stale", "collapsed"]
            .iter()
            .map(|k| pages[k].as_u64().expect("a count"))
            .sum::<u64>()
    };
    let by_twenty = lookups().await;
    assert_eq!(app.sim.counters().calls_to(endpoint::DETAILS_QUERY), 1);
    // The same walk once more, alone (its pages now cached): what one walk looks up.
    assert_eq!(app.get(&query).await.json(), first);
    let by_one = lookups().await - by_twenty;
    assert!(by_one >= 1);
    assert_eq!(
        by_twenty, by_one,
        "twenty identical concurrent polls looked up the pages of one walk"
    );
}

#[tokio::test]
async fn include_conversation_hydrates_hits_up_to_the_bound() {
    let mut settings = proxy_settings();
    settings.reports.hydrate_max = 3;
    let app = TestApp::start(big_org(), settings).await;
    let reply = app
        .post("/reports/search", &json!({"from": rfc(at(3, 0)), "to": rfc(at(1, 0)), "page_size": 5, "include": "conversation"}))
        .await
        .json();
    let results = reply["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    for (i, result) in results.iter().enumerate() {
        if i < 3 {
            assert_eq!(result["conversation"]["id"], result["id"]);
        } else {
            assert!(
                result.get("conversation").is_none(),
                "past the hydration bound"
            );
        }
    }
    assert_eq!(app.sim.counters().calls_to(endpoint::GET_CONVERSATION), 3);
}

#[tokio::test]
async fn a_cursor_survives_a_proxy_restart_and_a_tampered_one_is_refused() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let body = json!({"from": rfc(at(5, 0)), "to": rfc(at(1, 0)), "page_size": 10});
    let first = app.post("/reports/search", &body).await.json();
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_owned();

    // A second proxy (same Genesys credentials) continues where the first stopped.
    let other = TestApp::start(big_org(), proxy_settings()).await;
    let mut next = body.clone();
    next["cursor"] = json!(cursor);
    let second = other.post("/reports/search", &next).await;
    assert_eq!(second.status, 200, "{}", second.text());
    let want = expected(app.sim.data(), at(5, 0), at(1, 0), |_| true);
    let second_page = second.json();
    let second_ids: Vec<&str> = second_page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        second_ids,
        want[10..20].iter().map(String::as_str).collect::<Vec<_>>()
    );

    let mut tampered = cursor.clone().into_bytes();
    let middle = tampered.len() / 3;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    next["cursor"] = json!(String::from_utf8(tampered).expect("ascii"));
    let refused = app.post("/reports/search", &next).await;
    assert_eq!(assert_problem(&refused, 400)["errors"][0]["name"], "cursor");

    let mut other_query = body.clone();
    other_query["media_types"] = json!(["voice"]);
    other_query["cursor"] = json!(cursor);
    let refused = app.post("/reports/search", &other_query).await;
    assert_eq!(assert_problem(&refused, 400)["errors"][0]["name"], "cursor");
}

#[tokio::test]
async fn every_invalid_request_is_a_400_naming_the_field_and_nothing_goes_upstream() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let (from, to) = (rfc(at(5, 0)), rfc(at(1, 0)));
    let search_cases = [
        (json!({}), "from"),
        (json!({"from": from}), "to"),
        (json!({"from": to, "to": from}), "to"),
        (json!({"from": "yesterday", "to": to}), "from"),
        (json!({"last": "PT15M", "from": from, "to": to}), "last"),
        (json!({"last": "15 minutes"}), "last"),
        (json!({"last": "P2000D"}), "last"),
        (json!({"from": from, "to": to, "page_size": 0}), "page_size"),
        (
            json!({"from": from, "to": to, "page_size": 100_000}),
            "page_size",
        ),
        (
            json!({"from": from, "to": to, "cursor": "not-a-cursor"}),
            "cursor",
        ),
        (
            json!({"from": from, "to": to, "queue_ids": ["not-a-uuid"]}),
            "queue_ids[0]",
        ),
        (
            json!({"from": from, "to": to, "media_types": ["fax"]}),
            "media_types[0]",
        ),
        (
            json!({"from": from, "to": to, "directions": ["sideways"]}),
            "directions[0]",
        ),
        (
            json!({"from": from, "to": to, "directions": "inbound"}),
            "directions",
        ),
        (
            json!({"from": from, "to": to, "min_handle_seconds": 600, "max_handle_seconds": 60}),
            "max_handle_seconds",
        ),
        (
            json!({"from": from, "to": to, "include": "everything"}),
            "include",
        ),
        (json!({"from": from, "to": to, "order": "random"}), "order"),
        (
            json!({"from": from, "to": to, "expand": "participants"}),
            "expand",
        ),
    ];
    for (body, field) in search_cases {
        let reply = app.post("/reports/search", &body).await;
        let problem = assert_problem(&reply, 400);
        let names: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["name"].as_str().expect("name"))
            .collect();
        assert!(names.contains(&field), "{body}: {names:?}");
    }
    let aggregate_cases = [
        (json!({"from": from, "to": to}), "metrics"),
        (
            json!({"from": from, "to": to, "metrics": ["happiness"]}),
            "metrics[0]",
        ),
        (
            json!({"from": from, "to": to, "metrics": ["handle"], "group_by": ["shoe_size"]}),
            "group_by[0]",
        ),
        (
            json!({"from": from, "to": to, "metrics": ["handle"], "granularity": "P1M"}),
            "granularity",
        ),
        (
            json!({"from": from, "to": to, "metrics": ["handle"], "granularity": "PT10S"}),
            "granularity",
        ),
        (
            json!({"from": from, "to": to, "metrics": ["handle"], "min_handle_seconds": 5}),
            "min_handle_seconds",
        ),
        (
            json!({"from": from, "to": to, "metrics": ["handle"], "page_size": 5}),
            "page_size",
        ),
        (json!({"to": to, "metrics": ["handle"]}), "from"),
    ];
    for (body, field) in aggregate_cases {
        let reply = app.post("/reports/aggregates", &body).await;
        let problem = assert_problem(&reply, 400);
        let names: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["name"].as_str().expect("name"))
            .collect();
        assert!(names.contains(&field), "{body}: {names:?}");
    }
    let not_json = app
        .http
        .post(format!("{}/reports/search", app.base))
        .bearer_auth(support::ADMIN_KEY)
        .header("content-type", "text/plain")
        .body("from=x")
        .send()
        .await
        .expect("sent");
    assert_eq!(not_json.status(), 415);
    let broken = app
        .http
        .post(format!("{}/reports/search", app.base))
        .bearer_auth(support::ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{\"from\": ")
        .send()
        .await
        .expect("sent");
    assert_eq!(broken.status(), 400);
    let counters = app.sim.counters();
    assert_eq!(
        counters.calls_to(endpoint::DETAILS_QUERY) + counters.calls_to(endpoint::AGGREGATES_QUERY),
        0
    );
}

/// queue id -> metric -> (count, sum seconds, min, max), from the generated records.
fn expected_aggregates(data: &Dataset, from: DateTime<Utc>, to: DateTime<Utc>) -> Expected {
    let inside = |t: DateTime<Utc>| t >= from && t < to;
    let mut out: BTreeMap<String, BTreeMap<&'static str, Vec<i64>>> = BTreeMap::new(); // raw values
    for c in &data.conversations {
        for leg in &c.legs {
            let metrics = out
                .entry(data.org.queues[leg.queue].id.to_string())
                .or_default();
            if let Some(acd) = &leg.acd {
                if inside(leg.enter) {
                    metrics.entry("offered").or_default().push(1);
                }
                if inside(leg.enter + Duration::milliseconds(acd.wait_ms)) {
                    metrics.entry("wait").or_default().push(acd.wait_ms);
                }
            }
            if let Some(agent) = &leg.agent {
                if inside(wrapup_end(agent)) {
                    metrics.entry("handle").or_default().push(handle_ms(agent));
                }
            }
        }
    }
    out.into_iter()
        .map(|(queue, metrics)| {
            let stats = metrics
                .into_iter()
                .map(|(name, values)| {
                    let count = if name == "offered" {
                        values.iter().sum::<i64>()
                    } else {
                        values.len() as i64
                    };
                    let ms = |v: i64| v as f64 / 1000.0;
                    (
                        name,
                        (
                            count as u64,
                            ms(values.iter().sum()),
                            ms(*values.iter().min().expect("values")),
                            ms(*values.iter().max().expect("values")),
                        ),
                    )
                })
                .collect();
            (queue, stats)
        })
        .filter(|(_, m): &(String, BTreeMap<&str, _>)| !m.is_empty())
        .collect()
}

fn actual_aggregates(body: &Value) -> Actual {
    let mut out: Actual = BTreeMap::new();
    for point in body["series"].as_array().expect("series") {
        let queue = point["group"]["queue_id"]
            .as_str()
            .expect("queue")
            .to_owned();
        for (name, stats) in point["metrics"].as_object().expect("metrics") {
            let entry = out
                .entry(queue.clone())
                .or_default()
                .entry(name.clone())
                .or_insert((0, 0.0, f64::MAX, f64::MIN));
            entry.0 += stats["count"].as_u64().expect("count");
            entry.1 += stats["sum"].as_f64().unwrap_or(0.0);
            entry.2 = entry.2.min(stats["min"].as_f64().unwrap_or(f64::MAX));
            entry.3 = entry.3.max(stats["max"].as_f64().unwrap_or(f64::MIN));
            if stats["unit"] == "seconds" {
                let avg = stats["avg"].as_f64().expect("avg");
                let expected =
                    stats["sum"].as_f64().expect("sum") / stats["count"].as_f64().expect("count");
                assert!((avg - expected).abs() < 0.002, "avg is sum / count");
            }
        }
    }
    out
}

fn assert_close(actual: &Actual, expected: &Expected) {
    assert_eq!(actual.len(), expected.len(), "groups");
    for (queue, metrics) in expected {
        let got = actual
            .get(queue)
            .unwrap_or_else(|| panic!("queue {queue} missing"));
        for (name, (count, sum, min, max)) in metrics {
            let (g_count, g_sum, g_min, g_max) = got
                .get(*name)
                .unwrap_or_else(|| panic!("{name} missing for {queue}"));
            assert_eq!(g_count, count, "{queue} {name} count");
            if *name != "offered" {
                assert!(
                    (g_sum - sum).abs() < 0.01,
                    "{queue} {name} sum {g_sum} vs {sum}"
                );
                assert!(
                    (g_min - min).abs() < 0.001 && (g_max - max).abs() < 0.001,
                    "{queue} {name} min/max"
                );
            }
        }
    }
}

#[tokio::test]
async fn aggregates_match_sums_and_averages_computed_from_the_generated_data() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let (from, to) = (at(20, 0), at(2, 0));
    let reply = app
        .post("/reports/aggregates", &json!({"from": rfc(from), "to": rfc(to), "group_by": ["queue_id"], "metrics": ["offered", "wait", "handle"]}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    // One point per queue: the media type Genesys adds to every group is merged away.
    let points = body["series"].as_array().expect("series");
    assert_eq!(points.len(), app.sim.data().org.queues.len());
    assert!(
        points
            .iter()
            .all(|p| p["group"].as_object().expect("group").len() == 1)
    );
    assert_close(
        &actual_aggregates(&body),
        &expected_aggregates(app.sim.data(), from, to),
    );
}

#[tokio::test]
async fn aggregates_over_more_than_one_upstream_interval_merge_chunks_and_align_buckets() {
    let app = TestApp::start(big_org(), proxy_settings()).await;
    let (from, to) = (at(75, 0), at(5, 0));
    let reply = app
        .post(
            "/reports/aggregates",
            &json!({"from": rfc(from), "to": rfc(to), "granularity": "P1D", "group_by": ["queue_id"], "metrics": ["offered", "wait", "handle"]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert!(
        app.sim.counters().calls_to(endpoint::AGGREGATES_QUERY) >= 3,
        "70 days took three upstream queries"
    );
    for point in body["series"].as_array().expect("series") {
        let start = DateTime::parse_from_rfc3339(point["interval"]["from"].as_str().expect("from"))
            .expect("time");
        let end = DateTime::parse_from_rfc3339(point["interval"]["to"].as_str().expect("to"))
            .expect("time");
        assert_eq!(
            end - start,
            Duration::days(1),
            "day buckets, aligned across chunks"
        );
    }
    assert_close(
        &actual_aggregates(&body),
        &expected_aggregates(app.sim.data(), from, to),
    );

    let whole = app
        .get(&format!(
            "/reports/aggregates?from={}&to={}&group_by=queue_id&metrics=offered,wait,handle",
            rfc(from),
            rfc(to)
        ))
        .await
        .json();
    assert!(
        whole["series"]
            .as_array()
            .expect("series")
            .iter()
            .all(|p| p["interval"]["from"] == json!(rfc(from).replace("Z", ".000Z")))
    );
    assert_close(
        &actual_aggregates(&whole),
        &expected_aggregates(app.sim.data(), from, to),
    );
}
