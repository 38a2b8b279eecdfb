//! Report walks at contact-centre volume, end to end: a simulator holding 3,000
//! conversations a day (arriving continuously, busier in office hours), with Genesys'
//! documented whole-day interval matching, and the proxy's clock set to the simulator's at
//! three times of day. Every walk is compared with the generated records and its upstream
//! details queries are counted against ceil(hits / 100) + 2.

mod support;

use chrono::{DateTime, Utc};
use genesys_proxy::reports::IntervalMatching as Expected;
use genesys_sim::{IntervalMatching, SimConfig, endpoint};
use serde_json::{Value, json};
use support::{TestApp, proxy_settings};

const PER_DAY: usize = 3_000;

fn sim_at(anchor: DateTime<Utc>, days: u32, matching: IntervalMatching) -> SimConfig {
    SimConfig {
        seed: 12,
        conversations: PER_DAY * days as usize,
        days,
        anchor: Some(anchor),
        continuous: true,
        diurnal: true,
        rate_limit: 1_000_000,
        interval_matching: matching,
        ..SimConfig::default()
    }
}

async fn start(anchor: DateTime<Utc>, days: u32, matching: IntervalMatching) -> TestApp {
    start_expecting(anchor, days, matching, Expected::default()).await
}

async fn start_expecting(
    anchor: DateTime<Utc>,
    days: u32,
    matching: IntervalMatching,
    expected: Expected,
) -> TestApp {
    let mut settings = proxy_settings();
    settings.reports.upstream_interval_matching = expected;
    settings.server.request_timeout_ms = 20_000;
    // The proxy's "now" is the simulator's (which runs from `anchor`).
    settings.reports.clock_offset_ms = (anchor - Utc::now()).num_milliseconds();
    TestApp::start(sim_at(anchor, days, matching), settings).await
}

/// Walks every page of a GET search; the ids in order and the details queries it cost.
async fn walk(app: &TestApp, query: &str) -> (Vec<String>, u64, Value) {
    let before = app.sim.counters().calls_to(endpoint::DETAILS_QUERY);
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut first = Value::Null;
    for page in 0.. {
        assert!(page < 2_000, "the walk ends");
        let path = match &cursor {
            Some(c) => format!("/reports/search?{query}&cursor={c}"),
            None => format!("/reports/search?{query}"),
        };
        let reply = app.get(&path).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.text());
        let body = reply.json();
        if page == 0 {
            first = body.clone();
        }
        let results = body["results"].as_array().expect("results");
        ids.extend(
            results
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(next) => {
                assert!(!results.is_empty(), "{query}: an empty page with a cursor");
                cursor = Some(next.to_owned());
            }
            None => {
                assert_eq!(
                    body["total_hits"],
                    json!(ids.len()),
                    "{query}: last page counts"
                );
                break;
            }
        }
    }
    let cost = app.sim.counters().calls_to(endpoint::DETAILS_QUERY) - before;
    (ids, cost, first)
}

/// The generated conversations that started in the interval the proxy reported, in order.
fn expected(
    app: &TestApp,
    interval: &Value,
    desc: bool,
    keep: impl Fn(&str) -> bool,
) -> Vec<String> {
    let parse = |key: &str| {
        DateTime::parse_from_rfc3339(interval[key].as_str().expect("bound"))
            .expect("time")
            .with_timezone(&Utc)
    };
    let (from, to) = (parse("from"), parse("to"));
    let mut hits: Vec<(DateTime<Utc>, String)> = app
        .sim
        .data()
        .conversations
        .iter()
        .filter(|c| c.start >= from && c.start < to && keep(c.media.as_str()))
        .map(|c| (c.start, c.id.to_string()))
        .collect();
    hits.sort();
    if desc {
        hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    }
    hits.into_iter().map(|(_, id)| id).collect()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

async fn check_windows(anchor: DateTime<Utc>, matching: IntervalMatching, setting: Expected) {
    let app = start_expecting(anchor, 3, matching, setting).await;
    let mut lines = Vec::new();
    for last in ["PT15M", "PT1H", "P1D"] {
        for order in ["asc", "desc"] {
            let query = format!("last={last}&order={order}&page_size=200");
            let (ids, cost, first) = walk(&app, &query).await;
            let want = expected(&app, &first["interval"], order == "desc", |_| true);
            assert!(!want.is_empty(), "{query}: the window holds conversations");
            assert_eq!(
                ids, want,
                "{anchor} {query}: each conversation of the window once, in order"
            );
            let pages = want.len().div_ceil(100) as u64;
            lines.push(format!(
                "{anchor} {matching:?} (setting {setting:?}) {query}: {} hits, {cost} details queries ({pages} for the hits)",
                want.len()
            ));
            // The bound: + 2; under `learn`, + 1 for the app's first walk, which teaches
            // the proxy whether this Genesys widens intervals to whole days.
            let learning = setting == Expected::Learn && lines.len() == 1;
            let allowance = 2 + u64::from(learning);
            assert!(cost <= pages + allowance, "{}", lines.last().expect("line"));
        }
    }
    println!("{}", lines.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_windows_just_after_midnight_cost_their_pages() {
    check_windows(
        at("2025-03-12T00:07:30Z"),
        IntervalMatching::StartedOnTouchedDay,
        Expected::TouchedDay,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_windows_at_mid_day_cost_their_pages_under_both_matchings() {
    check_windows(
        at("2025-03-12T13:55:30Z"),
        IntervalMatching::StartedOnTouchedDay,
        Expected::TouchedDay,
    )
    .await;
    check_windows(
        at("2025-03-12T13:55:30Z"),
        IntervalMatching::StartedInInterval,
        Expected::TouchedDay,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learning_the_matching_costs_one_query_once_under_either_matching() {
    for matching in [
        IntervalMatching::StartedOnTouchedDay,
        IntervalMatching::StartedInInterval,
    ] {
        check_windows(at("2025-03-12T13:55:30Z"), matching, Expected::Learn).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_windows_just_before_midnight_cost_their_pages() {
    check_windows(
        at("2025-03-12T23:52:30Z"),
        IntervalMatching::StartedOnTouchedDay,
        Expected::TouchedDay,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forty_day_filtered_walk_returns_each_match_once_in_both_orders() {
    let anchor = at("2025-03-12T13:55:30Z");
    let app = start(anchor, 41, IntervalMatching::StartedOnTouchedDay).await;
    for order in ["asc", "desc"] {
        let query = format!("last=P40D&order={order}&media_types=email&page_size=500");
        let (ids, cost, first) = walk(&app, &query).await;
        let want = expected(&app, &first["interval"], order == "desc", |m| m == "email");
        assert!(want.len() > 1_000, "{query}: {} hits", want.len());
        assert_eq!(ids, want, "{query}");
        let pages = want.len().div_ceil(100) as u64;
        println!(
            "{query}: {} hits, {cost} details queries ({pages} for the hits)",
            want.len()
        );
        assert!(
            cost <= pages + 2,
            "{query}: {cost} queries for {pages} pages of hits"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_poll_in_the_same_bucket_costs_nothing_across_pages() {
    let anchor = at("2025-03-12T13:55:30Z");
    let app = start(anchor, 2, IntervalMatching::StartedOnTouchedDay).await;
    let query = "last=PT1H&page_size=20";
    let (first_ids, first_cost, _) = walk(&app, query).await;
    assert!(first_cost > 0);
    assert!(first_ids.len() > 60, "several pages ({})", first_ids.len());
    let (again_ids, again_cost, _) = walk(&app, query).await;
    assert_eq!(again_ids, first_ids);
    // The simulator's clock started 30 s before the next minute bucket; both walks fit.
    assert_eq!(
        again_cost, 0,
        "a repeat walk costs nothing in its bucket ({again_cost} queries)"
    );
}
