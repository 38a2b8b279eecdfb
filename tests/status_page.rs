//! `/status` works in a real browser, offline, and shows real figures: the demo proxy runs
//! in-process (as `genesys-proxy --demo` does), takes some traffic (a conversation miss
//! and hit, a report search, then a 429 from Genesys that freezes the budget, so that the
//! next calls are refused with a `Retry-After`), and headless Chromium renders `/status`
//! with no host name resolvable but the proxy's. The rendered DOM must show each section
//! with those figures, agreeing with `/metrics` (the page reads the same components); a
//! screenshot is written under `target/tmp/` (its path is printed) for a person to look at.
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium`). Without it the browser test
//! prints "skipped: chromium not installed" and passes, except under CI (`CI` set).
//!
//! Only with the `demo` feature (the default): a build without it has no demo to start.
#![cfg(feature = "demo")]

mod support;

use std::path::PathBuf;

use genesys_sim::{Faults, Storm};
use support::Reply;
use support::browser::{self, Load};

/// The longest `Retry-After` a refusal can carry here: the storm's 60 s, rounded up, plus
/// the budget's guard after a reset (`budget.reset_guard_ms`, 1 s by default).
const MAX_RETRY_AFTER: u64 = 61;

/// Where the screenshot goes: the integration tests' scratch directory under `target/`.
fn screenshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png")
}

/// The demo with traffic behind it: a miss and a hit, a report search, a 429 and refusals.
struct Busy {
    run: support::DemoRun,
    http: reqwest::Client,
    base: String,
}

impl Busy {
    async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        Reply::read(request.send().await.expect("request sent")).await
    }

    async fn start() -> Self {
        let run = support::start_demo().await;
        let base = format!("http://{}", run.address);
        let busy = Self {
            run,
            http: reqwest::Client::new(),
            base,
        };
        let key = busy.run.demo.api_key.clone();
        let sim = &busy.run.demo.simulator;
        let now = sim.state().now();
        let ended: Vec<String> = sim
            .data()
            .conversations
            .iter()
            .filter(|c| c.is_over_at(now))
            .take(3)
            .map(|c| c.id.to_string())
            .collect();
        let first = format!("/conversations/{}", ended[0]);
        for _ in 0..2 {
            let reply = busy.get(&first, Some(&key)).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        let search = busy
            .get("/reports/search?last=PT1H&page_size=5", Some(&key))
            .await;
        assert_eq!(search.status, 200, "{}", search.text());
        // One 429 freezes the budget for a minute: the calls that follow are refused at
        // once (their deadline is 10 s away), answered 503 with Retry-After.
        sim.set_faults(Faults {
            storm: Some(Storm {
                retry_after_secs: 60,
                remaining: Some(1),
            }),
            ..Faults::default()
        });
        for id in &ended[1..] {
            let refused = busy.get(&format!("/conversations/{id}"), Some(&key)).await;
            assert_eq!(refused.status, 503, "{}", refused.text());
            let retry_after: u64 = refused
                .header("retry-after")
                .expect("a Retry-After")
                .parse()
                .expect("seconds");
            assert!(
                (1..=MAX_RETRY_AFTER).contains(&retry_after),
                "{retry_after}"
            );
        }
        sim.set_faults(Faults::default());
        busy
    }
}

/// The text of each cell of each body row of the table with `class` in `dom`.
fn table_rows(dom: &str, class: &str) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("<table class=\"{class}\">"))
        .unwrap_or_else(|| panic!("no table {class} in {dom}"));
    let table = &dom[start..];
    let table = &table[..table.find("</table>").expect("the table ends")];
    let body = &table[table.find("<tbody>").expect("a body")..];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td>")
                .skip(1)
                .map(|cell| cell[..cell.find("</td>").expect("a cell ends")].to_owned())
                .collect()
        })
        .collect()
}

/// The value of the metric line that starts with `series ` in `metrics`.
fn metric(metrics: &str, series: &str) -> String {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{series} ")))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
        .to_owned()
}

#[tokio::test]
async fn the_status_page_is_self_contained_html_without_secrets() {
    let busy = Busy::start().await;
    let reply = busy.get("/status", None).await;
    assert_eq!(reply.status, 200, "open, like /metrics: {}", reply.text());
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    let csp = reply.header("content-security-policy").expect("a CSP");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let page = reply.text();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    for absent in ["<script", "src=", "href=", "http://", "https://"] {
        assert!(!page.contains(absent), "the page holds `{absent}`: {page}");
    }
    assert!(
        !page.contains(&busy.run.demo.api_key),
        "the demo key is on the page"
    );
    assert!(
        !page.contains(genesys_sim::config::DEFAULT_CLIENT_SECRET),
        "the client secret is on the page"
    );
    assert!(!page.contains(">demo<"), "no client name: {page}");

    // The admin view counts the same refusals, by class.
    let admin = busy
        .get("/admin/cache", Some(&busy.run.demo.api_key))
        .await
        .json();
    assert_eq!(
        admin["budget"]["refused"],
        serde_json::json!({"realtime": 2, "report": 0, "hydrate": 0})
    );
}

#[tokio::test]
async fn the_status_page_renders_offline_in_a_browser_with_the_figures_of_the_metrics() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let busy = Busy::start().await;
    let url = format!("{}/status", busy.base);
    // No host name resolves: only the proxy, by its IP address, can serve the page. The
    // page reloads itself every 10 s; it is read after 3 s of virtual time.
    let load = Load {
        url: &url,
        resolver_rules: "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        virtual_time_ms: 3_000,
    };
    let dom = browser::render(&chromium, &load).await;
    let metrics = busy.get("/metrics", None).await.text();

    assert!(dom.contains("<title>genesys-proxy status</title>"), "{dom}");
    for section in ["budget", "caches", "token", "upstream", "refusals"] {
        assert!(
            dom.contains(&format!("<section id=\"{section}\"")),
            "section {section} in {dom}"
        );
    }
    assert!(
        dom.contains("id=\"readiness\">ready</span>"),
        "ready: {dom}"
    );

    // Budget by class: permits and refusals as /metrics counts them.
    let budget = table_rows(&dom, "budget-classes");
    let realtime = budget
        .iter()
        .find(|row| row[0] == "realtime")
        .expect("a realtime row");
    let permits: u64 = realtime[1].parse().expect("a number");
    assert!(permits >= 2, "a miss and the 429: {realtime:?}");
    assert_eq!(
        realtime[2],
        metric(
            &metrics,
            "genesys_proxy_budget_refused_total{class=\"realtime\"}"
        ),
        "the page's refusals are the metric's"
    );
    assert_eq!(realtime[2], "2", "two calls refused: {realtime:?}");
    assert_eq!(
        permits.to_string(),
        metric(
            &metrics,
            "genesys_proxy_budget_wait_seconds_count{class=\"realtime\"}"
        )
    );
    assert!(dom.contains("yes: Genesys answered 429"), "frozen: {dom}");

    // Caches: the conversation held, hit once.
    let caches = table_rows(&dom, "cache-figures");
    let conversations = caches
        .iter()
        .find(|row| row[0] == "conversations")
        .expect("a conversations row");
    assert_eq!(
        conversations[1],
        metric(
            &metrics,
            "genesys_proxy_cache_entries{cache=\"conversations\"}"
        )
    );
    assert_ne!(conversations[1], "0", "{conversations:?}");
    assert_eq!(
        conversations[4],
        metric(
            &metrics,
            "genesys_proxy_cache_requests_total{cache=\"conversations\",result=\"hit\"}"
        )
    );
    assert_ne!(conversations[3], "-", "a hit ratio: {conversations:?}");
    assert!(caches.iter().any(|row| row[0] == "report_pages"));

    // Token: valid, never shown.
    assert!(dom.contains("<dt>state</dt><dd>valid</dd>"), "{dom}");
    assert!(dom.contains("<dt>token requests</dt><dd>"), "{dom}");

    // Upstream: the 429 counted, and when it came.
    let calls = table_rows(&dom, "upstream-calls");
    let conversation_calls = calls
        .iter()
        .find(|row| row[0] == "get_conversation")
        .expect("a get_conversation row");
    assert_eq!(
        conversation_calls[4], "1",
        "one 429: {conversation_calls:?}"
    );
    assert!(
        calls.iter().any(|row| row[0] == "details_query"),
        "{calls:?}"
    );
    assert!(
        dom.contains("<dt>429s from Genesys</dt><dd>1</dd>"),
        "{dom}"
    );
    assert!(!dom.contains("<dt>last 429</dt><dd>never</dd>"), "{dom}");

    // Recent refusals: the two, newest first, with their Retry-After.
    let refusals = table_rows(&dom, "recent-refusals");
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    for row in &refusals {
        assert_eq!(row[1], "realtime");
        assert_eq!(row[2], "get_conversation");
        let secs: u64 = row[3]
            .strip_suffix(" s")
            .expect("seconds")
            .parse()
            .expect("a number");
        assert!((1..=MAX_RETRY_AFTER).contains(&secs), "{row:?}");
    }
    assert!(
        refusals[0][0] >= refusals[1][0],
        "newest first: {refusals:?}"
    );

    let path = screenshot_path();
    browser::screenshot(&chromium, &load, &path, (1280, 1100)).await;
    println!("status page screenshot: {}", path.display());
}

#[tokio::test]
async fn with_an_ops_listener_the_status_page_is_served_there_only() {
    let sim = genesys_sim::Simulator::start(support::sim_config())
        .await
        .expect("sim starts");
    let mut settings = support::proxy_settings();
    settings.server.ops_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let connection = genesys_proxy::config::GenesysConnection {
        endpoints: genesys_proxy::upstream::Endpoints::explicit(&sim.base_url(), &sim.base_url())
            .expect("urls"),
        credentials: support::credentials(genesys_sim::config::DEFAULT_CLIENT_SECRET),
    };
    let app = genesys_proxy::App::build(settings, connection)
        .await
        .expect("proxy builds");
    let (api, ops) = (app.local_addr(), app.ops_addr().expect("an ops listener"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let get = |address: std::net::SocketAddr| {
        let request = http.get(format!("http://{address}/status"));
        async move { Reply::read(request.send().await.expect("request sent")).await }
    };
    let page = get(ops).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("<title>genesys-proxy status</title>"));
    assert_eq!(
        get(api).await.status,
        404,
        "with an ops listener, /status leaves the API port as /metrics does"
    );
    let _ = stop.send(());
}
