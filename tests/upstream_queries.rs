//! What the proxy asks Genesys is what Genesys accepts: every analytics query body the
//! simulator journals while the proxy answers reports (searches with every filter kind, in
//! both orders, over pages and 31-day chunks; aggregates with every group-by, metric and
//! granularity; relative and absolute intervals) validates against the official
//! `ConversationQuery` / `ConversationAggregationQuery` definitions
//! (`genesys-sim/tests/contract/definitions.json`: required fields, enums, closed objects),
//! its interval and granularity are ISO-8601, and each predicate's value is in the official
//! vocabulary of its dimension. Each case also proves its filter reached the query, so a
//! filter the proxy dropped cannot pass for a valid one.

mod support;

#[path = "../genesys-sim/tests/support/contract.rs"]
mod contract;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use chrono::{DateTime, Duration};
use genesys_sim::journal::{JournaledQuery, QueryKind};
use genesys_sim::{SimConfig, endpoint};
use serde_json::{Value, json};
use support::{Reply, TestApp, proxy_settings, rfc, sim_config};
use uuid::Uuid;

const DEFINITIONS_JSON: &str = include_str!("../genesys-sim/tests/contract/definitions.json");

/// An org anchored at start-up (so `last=` intervals have data) over more than one
/// 31-day chunk, read by the proxy in small upstream pages (so walks turn pages).
fn org() -> SimConfig {
    SimConfig {
        conversations: 700,
        days: 40,
        anchor: None,
        ..sim_config()
    }
}

async fn app() -> TestApp {
    let mut settings = proxy_settings();
    settings.reports.upstream_page_size = 25;
    TestApp::start(org(), settings).await
}

/// An enum of the official definitions: `definition.properties.property.enum`.
fn official_enum(definition: &str, property: &str) -> Vec<String> {
    static DEFINITIONS: OnceLock<Value> = OnceLock::new();
    let definitions = DEFINITIONS.get_or_init(|| {
        serde_json::from_str::<Value>(DEFINITIONS_JSON).expect("the official definitions")
    });
    definitions["definitions"][definition]["properties"][property]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{definition}.{property} has an enum"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// `AnalyticsSession.mediaType`.
fn official_media_types() -> Vec<String> {
    official_enum("AnalyticsSession", "mediaType")
}

/// `AnalyticsConversationWithoutAttributes.originatingDirection`.
fn official_directions() -> Vec<String> {
    official_enum(
        "AnalyticsConversationWithoutAttributes",
        "originatingDirection",
    )
}

/// Every predicate of a query, wherever it sits (`segmentFilters`, `conversationFilters`,
/// `filter`; directly or inside clauses).
fn predicates(body: &Value) -> Vec<&Value> {
    let mut filters: Vec<&Value> = ["segmentFilters", "conversationFilters"]
        .iter()
        .filter_map(|key| body[*key].as_array())
        .flatten()
        .collect();
    if body["filter"].is_object() {
        filters.push(&body["filter"]);
    }
    let mut out = Vec::new();
    for filter in filters {
        out.extend(filter["predicates"].as_array().into_iter().flatten());
        for clause in filter["clauses"].as_array().into_iter().flatten() {
            out.extend(clause["predicates"].as_array().into_iter().flatten());
        }
    }
    out
}

/// `PnDTnHnMnS` with at least one part (ISO-8601 duration as Genesys takes it).
fn is_iso_duration(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('P') else {
        return false;
    };
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let parts = |s: &str, units: &[char]| -> Option<usize> {
        let mut count = 0;
        let mut digits = 0;
        let mut allowed = units;
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits += 1;
                continue;
            }
            let at = allowed.iter().position(|u| *u == c)?;
            if digits == 0 {
                return None;
            }
            allowed = &allowed[at + 1..];
            digits = 0;
            count += 1;
        }
        (digits == 0).then_some(count)
    };
    match (
        parts(date, &['Y', 'M', 'W', 'D']),
        parts(time, &['H', 'M', 'S']),
    ) {
        (Some(d), Some(t)) => d + t > 0 && (t > 0 || !rest.contains('T')),
        _ => false,
    }
}

/// Violations of one journaled body: the official definition, then what the definitions
/// leave as free text (interval, granularity, predicate values).
fn violations(query: &JournaledQuery) -> Vec<String> {
    let body = &query.body;
    let definition = match query.kind {
        QueryKind::Details => "ConversationQuery",
        QueryKind::Aggregates => "ConversationAggregationQuery",
    };
    let mut out = contract::Contract::load()
        .validate(definition, body)
        .err()
        .unwrap_or_default();
    let interval = body["interval"].as_str().unwrap_or_default();
    let bounds: Vec<_> = interval
        .split('/')
        .map(DateTime::parse_from_rfc3339)
        .collect();
    match bounds.as_slice() {
        [Ok(start), Ok(end)] if start < end => {}
        _ => out.push(format!(
            "/interval: {interval:?} is not an ISO-8601 `start/end` of RFC 3339 instants, start first"
        )),
    }
    if let Some(granularity) = body.get("granularity") {
        if !granularity.as_str().is_some_and(is_iso_duration) {
            out.push(format!(
                "/granularity: {granularity} is not an ISO-8601 duration"
            ));
        }
    }
    for predicate in predicates(body) {
        let value = predicate["value"].as_str();
        let (kind, dimension, metric) = (
            predicate["type"].as_str(),
            predicate["dimension"].as_str(),
            predicate["metric"].as_str(),
        );
        let shaped = match kind {
            Some("dimension") => dimension.is_some() && metric.is_none() && value.is_some(),
            Some("metric") => {
                metric.is_some() && dimension.is_none() && predicate["range"].is_object()
            }
            _ => false,
        };
        if !shaped {
            out.push(format!(
                "predicate {predicate}: a dimension predicate names a dimension and a value, a metric predicate a metric and a range"
            ));
        }
        let in_vocabulary = match dimension {
            Some("mediaType") => {
                value.is_some_and(|v| official_media_types().iter().any(|m| m == v))
            }
            Some("originatingDirection") => {
                value.is_some_and(|v| official_directions().iter().any(|d| d == v))
            }
            Some("queueId" | "userId" | "wrapUpCode" | "divisionId") => {
                value.is_some_and(|v| Uuid::parse_str(v).is_ok())
            }
            _ => true,
        };
        if !in_vocabulary {
            out.push(format!(
                "predicate {predicate}: the value is not in the official vocabulary of its dimension"
            ));
        }
    }
    out
}

/// Asserts every body journaled since the last clear is an official query of `kind`, and
/// returns them (the journal is cleared).
fn take_valid(app: &TestApp, kind: QueryKind, case: &str) -> Vec<Value> {
    let journaled = app.sim.state().journal.entries();
    app.sim.state().journal.clear();
    assert!(!journaled.is_empty(), "{case}: no query went upstream");
    let mut bodies = Vec::new();
    for query in journaled {
        assert_eq!(query.kind, kind, "{case}: {}", query.body);
        let found = violations(&query);
        assert!(
            found.is_empty(),
            "{case}: the proxy sent a query Genesys' definitions reject:\n  {}\nquery: {}",
            found.join("\n  "),
            query.body
        );
        bodies.push(query.body);
    }
    bodies
}

/// The values and ranges of the predicates on `dimension_or_metric` in `bodies`.
fn predicate_values(bodies: &[Value], dimension_or_metric: &str) -> BTreeSet<String> {
    bodies
        .iter()
        .flat_map(predicates)
        .filter(|p| p["dimension"] == dimension_or_metric || p["metric"] == dimension_or_metric)
        .map(|p| match p["value"].as_str() {
            Some(value) => value.to_owned(),
            None => p["range"].to_string(),
        })
        .collect()
}

/// Asserts `reply` is a 200. When it is not, what went upstream is checked first, so a
/// query Genesys refused is reported by what is wrong with it.
#[track_caller]
fn assert_answered(app: &TestApp, reply: &Reply, kind: QueryKind, case: &str) {
    if reply.status != 200 {
        if !app.sim.state().journal.entries().is_empty() {
            take_valid(app, kind, case);
        }
        panic!("{case}: {} {}", reply.status, reply.text());
    }
}

/// Walks a search to its end (POST), asserting every page is a 200.
async fn walk(app: &TestApp, mut body: Value) -> usize {
    let mut pages = 0;
    loop {
        let reply = app.post("/reports/search", &body).await;
        assert_answered(app, &reply, QueryKind::Details, &body.to_string());
        pages += 1;
        match reply.json()["next_cursor"].as_str() {
            Some(cursor) => body["cursor"] = json!(cursor),
            None => return pages,
        }
        assert!(pages < 100, "the walk ends");
    }
}

fn strings(values: &[impl ToString]) -> BTreeSet<String> {
    values.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn every_search_filter_reaches_genesys_as_an_official_conversation_query() {
    let app = app().await;
    let org = &app.sim.data().org;
    let anchor = app.sim.data().anchor;
    let (from, to) = (
        rfc(anchor - Duration::days(9)),
        rfc(anchor - Duration::days(1)),
    );
    let queues = [org.queues[0].id, org.queues[2].id];
    let agents = [org.agents[1].id, org.agents[4].id];
    let wrapups = [org.wrapup_codes[0].id, org.wrapup_codes[3].id];
    let divisions = [org.divisions[1].id];
    // Every official media type but one (all of them would be no filter at all).
    let media: Vec<String> = official_media_types()
        .into_iter()
        .filter(|m| m != "voice")
        .collect();
    let directions = ["outbound"];
    // (request filters, dimension or metric, the values the query must carry)
    let cases: Vec<(Value, &str, BTreeSet<String>)> = vec![
        (json!({"queue_ids": queues}), "queueId", strings(&queues)),
        (json!({"user_ids": agents}), "userId", strings(&agents)),
        (json!({"media_types": media}), "mediaType", strings(&media)),
        (
            json!({"directions": directions}),
            "originatingDirection",
            strings(&directions),
        ),
        (
            json!({"wrapup_codes": wrapups}),
            "wrapUpCode",
            strings(&wrapups),
        ),
        (
            json!({"division_ids": divisions}),
            "divisionId",
            strings(&divisions),
        ),
        // Genesys' t-metrics are milliseconds.
        (
            json!({"min_handle_seconds": 120}),
            "tHandle",
            strings(&[json!({"gte": 120_000})]),
        ),
        (
            json!({"max_handle_seconds": 600}),
            "tHandle",
            strings(&[json!({"lte": 600_000})]),
        ),
        (
            json!({"min_handle_seconds": 60, "max_handle_seconds": 900}),
            "tHandle",
            strings(&[json!({"gte": 60_000, "lte": 900_000})]),
        ),
    ];
    for (filters, on, want) in cases {
        for order in ["asc", "desc"] {
            let mut body = filters.clone();
            body["from"] = json!(from);
            body["to"] = json!(to);
            body["order"] = json!(order);
            body["page_size"] = json!(100);
            walk(&app, body).await;
            let case = format!("{filters} {order}");
            let bodies = take_valid(&app, QueryKind::Details, &case);
            assert_eq!(predicate_values(&bodies, on), want, "{case}");
        }
    }
    // The GET form, every filter at once.
    let path = format!(
        "/reports/search?from={from}&to={to}&queue_ids={}&user_ids={}&media_types=voice,chat&directions=inbound&wrapup_codes={}&division_ids={}&min_handle_seconds=30&order=desc",
        queues[0], agents[0], wrapups[0], divisions[0]
    );
    let reply = app.get(&path).await;
    assert_answered(&app, &reply, QueryKind::Details, &path);
    let bodies = take_valid(&app, QueryKind::Details, "GET with every filter");
    for on in [
        "queueId",
        "userId",
        "mediaType",
        "originatingDirection",
        "wrapUpCode",
        "divisionId",
        "tHandle",
    ] {
        assert!(
            !predicate_values(&bodies, on).is_empty(),
            "GET with every filter: {on} is in the query"
        );
    }
    assert_eq!(
        app.sim.counters().calls_with(endpoint::DETAILS_QUERY, 400),
        0,
        "Genesys (the simulator) refused no query"
    );
}

#[tokio::test]
async fn long_and_relative_search_walks_send_only_official_queries_in_both_orders() {
    let app = app().await;
    let anchor = app.sim.data().anchor;
    let (from, to) = (
        rfc(anchor - Duration::days(38) + Duration::hours(5)),
        rfc(anchor - Duration::hours(3)),
    );
    let mut orders = BTreeSet::new();
    let mut pages = BTreeSet::new();
    let requests = [
        json!({"from": from, "to": to, "page_size": 100}),
        json!({"from": from, "to": to, "page_size": 100, "order": "desc"}),
        json!({"last": "P2D", "page_size": 30}),
        json!({"last": "PT6H", "page_size": 30, "order": "desc"}),
        json!({"last": "PT15M"}),
    ];
    for request in requests {
        let walked = walk(&app, request.clone()).await;
        assert!(walked >= 1);
        for body in take_valid(&app, QueryKind::Details, &request.to_string()) {
            orders.insert(body["order"].as_str().expect("order").to_owned());
            pages.insert(body["paging"]["pageNumber"].as_i64().expect("page"));
            let paging = &body["paging"];
            let size = paging["pageSize"].as_i64().expect("pageSize");
            assert!(
                (1..=100).contains(&size) && paging["pageNumber"].as_i64() >= Some(1),
                "paging {paging} within Genesys' bounds (pages count from 1)"
            );
        }
    }
    assert_eq!(
        orders,
        BTreeSet::from(["asc".to_owned(), "desc".to_owned()])
    );
    assert!(
        pages.iter().any(|&page| page > 1),
        "walks turned upstream pages: {pages:?}"
    );
    assert_eq!(
        app.sim.counters().calls_with(endpoint::DETAILS_QUERY, 400),
        0
    );
}

#[tokio::test]
async fn every_aggregates_request_reaches_genesys_as_an_official_aggregation_query() {
    let app = app().await;
    let org = &app.sim.data().org;
    let anchor = app.sim.data().anchor;
    let day = |n: i64| rfc(anchor - Duration::days(n));
    let all_metrics =
        "offered,connected,transferred,handle,talk,hold,acw,wait,abandon,answered,alert";
    let groups = [
        "queue_id",
        "user_id",
        "media_type",
        "direction",
        "wrapup_code",
        "division_id",
    ];
    let mut group_bys = BTreeSet::new();
    let mut metrics = BTreeSet::new();
    let mut granularities = BTreeSet::new();
    let mut requests: Vec<String> = groups
        .iter()
        .map(|group| {
            format!(
                "from={}&to={}&group_by={group}&metrics={all_metrics}",
                day(6),
                day(2)
            )
        })
        .collect();
    requests.extend([
        // granularities, absolute (one spans two 31-day chunks) and relative
        format!("from={}&to={}&granularity=PT30M&metrics=offered,handle", day(3), day(2)),
        format!("from={}&to={}&granularity=PT1H&group_by=queue_id,media_type&metrics=wait", day(4), day(2)),
        format!("from={}&to={}&granularity=P1D&group_by=queue_id&metrics=offered,handle", day(39), day(1)),
        format!("last=PT6H&granularity=PT15M&metrics={all_metrics}"),
        "last=P7D&granularity=P1D&group_by=user_id&metrics=talk,hold".to_owned(),
        "last=PT15M&metrics=offered".to_owned(),
        // every filter
        format!(
            "from={}&to={}&metrics=offered&queue_ids={},{}&user_ids={}&media_types={}&directions=outbound&wrapup_codes={}&division_ids={}",
            day(6),
            day(2),
            org.queues[0].id,
            org.queues[1].id,
            org.agents[2].id,
            official_media_types()[..4].join(","),
            org.wrapup_codes[1].id,
            org.divisions[0].id,
        ),
    ]);
    for request in &requests {
        let reply = app.get(&format!("/reports/aggregates?{request}")).await;
        assert_answered(&app, &reply, QueryKind::Aggregates, request);
        for body in take_valid(&app, QueryKind::Aggregates, request) {
            group_bys.extend(
                body["groupBy"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|g| g.as_str().expect("group").to_owned()),
            );
            metrics.extend(
                body["metrics"]
                    .as_array()
                    .expect("metrics")
                    .iter()
                    .map(|m| m.as_str().expect("metric").to_owned()),
            );
            if let Some(granularity) = body["granularity"].as_str() {
                granularities.insert(granularity.to_owned());
            }
        }
    }
    // The POST form with every filter says the same.
    let reply = app
        .post(
            "/reports/aggregates",
            &json!({"from": day(6), "to": day(2), "metrics": ["offered"], "group_by": ["queue_id"],
                "queue_ids": [org.queues[0].id], "media_types": ["voice"], "directions": ["inbound"]}),
        )
        .await;
    assert_answered(&app, &reply, QueryKind::Aggregates, "POST with filters");
    let bodies = take_valid(&app, QueryKind::Aggregates, "POST with filters");
    assert_eq!(
        predicate_values(&bodies, "queueId"),
        strings(&[org.queues[0].id])
    );
    assert_eq!(predicate_values(&bodies, "mediaType"), strings(&["voice"]));
    assert_eq!(
        predicate_values(&bodies, "originatingDirection"),
        strings(&["inbound"])
    );

    assert_eq!(
        group_bys.len(),
        groups.len(),
        "each group_by became its own Genesys dimension: {group_bys:?}"
    );
    assert_eq!(
        metrics.len(),
        11,
        "each metric became its own Genesys metric: {metrics:?}"
    );
    assert!(
        ["PT30M", "PT1H", "P1D", "PT15M"]
            .iter()
            .all(|g| granularities.contains(*g)),
        "every granularity went upstream as given: {granularities:?}"
    );
    assert_eq!(
        app.sim
            .counters()
            .calls_with(endpoint::AGGREGATES_QUERY, 400),
        0
    );
}

#[tokio::test]
async fn the_simulator_journal_is_readable_and_clearable_over_http() {
    let app = TestApp::start(sim_config(), proxy_settings()).await;
    let reply = app
        .get(
            "/reports/aggregates?from=2025-03-10T00:00:00Z&to=2025-03-11T00:00:00Z&metrics=offered",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let journal_url = format!("{}/sim/journal", app.sim.base_url());
    let read = app
        .http
        .get(&journal_url)
        .send()
        .await
        .expect("journal read");
    assert_eq!(read.status(), 200);
    let listed: Value = read.json().await.expect("JSON");
    let queries = listed["queries"].as_array().expect("queries");
    assert_eq!(queries.len(), 1, "{listed}");
    assert_eq!(queries[0]["kind"], "aggregates");
    assert_eq!(queries[0]["body"]["metrics"], json!(["nOffered"]));
    assert_eq!(
        queries[0]["body"],
        app.sim.state().journal.entries()[0].body,
        "the same entry in-process"
    );
    let cleared = app
        .http
        .delete(&journal_url)
        .send()
        .await
        .expect("journal clear");
    assert_eq!(cleared.status(), 204);
    assert!(app.sim.state().journal.entries().is_empty());
}
