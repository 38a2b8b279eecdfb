//! The Grafana dashboard (deploy/grafana/dashboards/genesys-proxy.json) and the alerting
//! rules (deploy/prometheus/rules.yml) query only what the proxy exports: a simulator and a
//! proxy on port 0 take enough traffic for every labelled series to appear (a conversation
//! miss and hit, a report search, an aggregates query, a request refused while Genesys is
//! down; the notification families are exported from the start, at zero, whether or not a
//! channel is up), and every metric name, every label matcher's label name and every
//! grouping label of every PromQL expression must be in the scrape. The shared tier's
//! families (`genesys_proxy_shared_*`) exist only in shared mode: the queries that name one
//! are checked against a second proxy, in shared mode on a `redis-server` of the test's
//! own (tests/support/redis.rs: skipped without it outside CI, a failure under CI). A
//! renamed metric or label breaks this test, not the pager.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use genesys_sim::Faults;
use support::redis::{RedisServer, Replica, shared_settings};
use support::{TestApp, assert_problem};

const DASHBOARD: &str = "deploy/grafana/dashboards/genesys-proxy.json";
const RULES: &str = "deploy/prometheus/rules.yml";

/// Names queried that the proxy does not export: Prometheus' own series of a target.
const OTHER_METRICS: [&str; 1] = ["up"];
/// Labels Prometheus attaches to every scraped series (target labels), not the proxy.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];
/// Labels whose values are a fixed set the proxy always exports: an `=` matcher on one of
/// them must name a value seen in the scrape (a typo in `cache="report_pages"` would
/// otherwise select nothing, silently). The notification families export every `outcome`
/// and `reason` from the start, at zero; the shared budget's grants both `gate`s.
const ENUMERATED_LABELS: [&str; 8] = [
    "cache", "class", "endpoint", "result", "method", "outcome", "reason", "gate",
];
/// The shared tier's families: exported only in shared mode (`[redis] url` set).
const SHARED_PREFIX: &str = "genesys_proxy_shared_";

/// What a scrape holds: series names, each with its label names and their values.
#[derive(Debug, Default)]
struct Scrape {
    series: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line
                .find(['{', ' '])
                .unwrap_or_else(|| panic!("not a sample line: {line}"));
            let (name, rest) = line.split_at(end);
            let labels = scrape.series.entry(name.to_owned()).or_default();
            if let Some(inner) = rest.strip_prefix('{') {
                let inner = &inner[..inner.rfind('}').expect("closing brace")];
                for pair in split_label_pairs(inner) {
                    let (label, value) = pair.split_once('=').expect("label=value");
                    labels
                        .entry(label.to_owned())
                        .or_default()
                        .insert(value.trim_matches('"').to_owned());
                }
            }
        }
        scrape
    }
}

/// `a="x",b="y,z"` into its pairs (commas inside quoted values are kept).
fn split_label_pairs(inner: &str) -> Vec<&str> {
    let mut pairs = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                pairs.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < inner.len() {
        pairs.push(&inner[start..]);
    }
    pairs
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    /// A Grafana variable (`$job`, `$__rate_interval`, `${x}`): not PromQL.
    Var,
    Punct(char),
    Op(String),
}

fn tokenize(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            // A comment runs to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let mut value = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' {
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    value.push(ch);
                }
                i += 1;
            }
            i += 1;
            tokens.push(Token::Str(value));
        } else if c == '[' {
            // A range or subquery: durations and Grafana's interval variables only.
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
            }
            tokens.push(Token::Var);
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration (`0.9`, `1e3`, `5m`).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if ident(c) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if "{}(),".contains(c) {
            tokens.push(Token::Punct(c));
            i += 1;
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = if ["!=", "=~", "!~", "==", ">=", "<="].contains(&two.as_str()) {
                two
            } else {
                c.to_string()
            };
            i += op.chars().count();
            tokens.push(Token::Op(op));
        }
    }
    tokens
}

/// A vector selector: its metric name (None for `{...}` alone) and its matchers.
#[derive(Debug, Default)]
struct Selector {
    name: Option<String>,
    matchers: Vec<(String, String, String)>,
}

/// The selectors of an expression and the labels it groups or matches on.
#[derive(Debug, Default)]
struct Query {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
}

/// Binary operators, modifiers and literals spelt as words, and the aggregation operators
/// (which may be followed by `by (...)` rather than their parenthesis).
const KEYWORDS: [&str; 21] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
];
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn parse(expr: &str) -> Query {
    let tokens = tokenize(expr);
    let mut query = Query::default();
    let mut i = 0;
    while i < tokens.len() {
        let next = tokens.get(i + 1);
        match &tokens[i] {
            Token::Ident(word)
                if LABEL_LISTS.contains(&word.as_str()) && next == Some(&Token::Punct('(')) =>
            {
                i += 2;
                while i < tokens.len() && tokens[i] != Token::Punct(')') {
                    if let Token::Ident(label) = &tokens[i] {
                        query.grouping.push(label.clone());
                    }
                    i += 1;
                }
            }
            Token::Ident(_) if next == Some(&Token::Punct('(')) => {} // a function
            // A keyword, or `group_left`/`group_right` without a label list.
            Token::Ident(word)
                if KEYWORDS.contains(&word.to_lowercase().as_str())
                    || LABEL_LISTS.contains(&word.as_str()) => {}
            Token::Ident(name) => {
                let mut selector = Selector {
                    name: Some(name.clone()),
                    ..Selector::default()
                };
                if next == Some(&Token::Punct('{')) {
                    i = matchers(&tokens, i + 1, &mut selector);
                }
                query.selectors.push(selector);
            }
            Token::Punct('{') => {
                let mut selector = Selector::default();
                i = matchers(&tokens, i, &mut selector);
                query.selectors.push(selector);
            }
            _ => {}
        }
        i += 1;
    }
    query
}

/// Reads the matchers from the `{` at `open`; returns the index of the closing `}`.
fn matchers(tokens: &[Token], open: usize, selector: &mut Selector) -> usize {
    let mut i = open + 1;
    while i < tokens.len() && tokens[i] != Token::Punct('}') {
        match (&tokens[i], tokens.get(i + 1), tokens.get(i + 2)) {
            (Token::Ident(label), Some(Token::Op(op)), Some(value)) => {
                let value = match value {
                    Token::Str(s) => s.clone(),
                    other => panic!("matcher {label}{op} without a string value: {other:?}"),
                };
                selector.matchers.push((label.clone(), op.clone(), value));
                i += 3;
            }
            (Token::Punct(','), _, _) => i += 1,
            (other, _, _) => panic!("unexpected {other:?} in a selector"),
        }
    }
    i
}

/// Every problem of `expr` against `scrape` (empty: all it queries exists).
fn problems(origin: &str, expr: &str, scrape: &Scrape) -> Vec<String> {
    let query = parse(expr);
    let mut out = Vec::new();
    if query.selectors.is_empty() {
        out.push(format!("{origin}: no selector found in {expr:?}"));
    }
    let mut queried_labels: BTreeSet<&str> = BTreeSet::new();
    for selector in &query.selectors {
        let Some(name) = &selector.name else {
            out.push(format!(
                "{origin}: a selector without a metric name ({{__name__=...}}) cannot be checked: {expr:?}"
            ));
            continue;
        };
        if !name.starts_with("genesys_proxy_") {
            if !OTHER_METRICS.contains(&name.as_str()) {
                out.push(format!(
                    "{origin}: {name} is neither a genesys_proxy_* metric nor allowlisted"
                ));
            }
            continue;
        }
        let Some(labels) = scrape.series.get(name) else {
            out.push(format!("{origin}: metric {name} is not in the scrape"));
            continue;
        };
        queried_labels.extend(labels.keys().map(String::as_str));
        for (label, op, value) in &selector.matchers {
            if TARGET_LABELS.contains(&label.as_str()) {
                continue;
            }
            match labels.get(label) {
                None => out.push(format!("{origin}: {name} has no label {label}")),
                Some(values) => {
                    if op == "="
                        && ENUMERATED_LABELS.contains(&label.as_str())
                        && !values.contains(value)
                    {
                        out.push(format!(
                            "{origin}: {name}{{{label}=\"{value}\"}} selects nothing (values: {values:?})"
                        ));
                    }
                }
            }
        }
    }
    for label in &query.grouping {
        let known = TARGET_LABELS.contains(&label.as_str())
            || label == "le"
            || queried_labels.contains(label.as_str());
        if !known {
            out.push(format!(
                "{origin}: groups or matches on {label}, which none of its proxy metrics has"
            ));
        }
    }
    out
}

/// The PromQL of every dashboard panel (rows' nested panels too) and template variable.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn panels(list: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((format!("panel {title:?}"), expr.to_owned()));
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .expect("a query variable has a query");
        // Grafana's label_values(selector, label): the label is a target label here.
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query is not label_values(...): {query}"));
        let (selector, label) = inner
            .rsplit_once(',')
            .expect("label_values(selector, label)");
        assert!(
            TARGET_LABELS.contains(&label.trim()),
            "variable {query}: label {label} is not a target label"
        );
        out.push((
            format!("variable {}", variable["name"]),
            selector.to_owned(),
        ));
    }
    out
}

/// The `expr` of every rule of a Prometheus rules file: a one-line value or a block
/// scalar (`|`, `>`). Just enough YAML for the file's own shape; the count of `alert:` and
/// `record:` keys keeps it honest.
fn rule_queries(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut rule = String::from("?");
    let mut rules = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let content = line.trim_start().trim_start_matches("- ");
        let indent = line.len() - line.trim_start().len();
        if let Some(name) = content
            .strip_prefix("alert:")
            .or_else(|| content.strip_prefix("record:"))
        {
            rule = name.trim().to_owned();
            rules += 1;
        }
        if let Some(value) = content.strip_prefix("expr:") {
            let value = value.trim();
            if value.starts_with('|') || value.starts_with('>') {
                let mut block = Vec::new();
                while let Some(next) = lines.get(i + 1) {
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    block.push(next.trim());
                    i += 1;
                }
                out.push((format!("rule {rule}"), block.join("\n")));
            } else {
                let unquoted = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .unwrap_or(value);
                out.push((format!("rule {rule}"), unquoted.to_owned()));
            }
        }
        i += 1;
    }
    assert_eq!(out.len(), rules, "one expr per rule in {RULES}");
    out
}

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn every_metric_and_label_the_dashboard_and_the_alerts_query_is_exported() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    let mut queries = dashboard_queries(&dashboard);
    let panel_queries = queries.len();
    let rules = rule_queries(&read(RULES));
    let rule_count = rules.len();
    queries.extend(rules);
    assert!(
        panel_queries >= 20,
        "{panel_queries} dashboard queries found"
    );
    assert!(rule_count >= 5, "{rule_count} rules found");

    let app = TestApp::default_app().await;
    // A conversation miss then hit, a report search (a details query), an aggregates query.
    let conversation = format!("/conversations/{}", app.ended_id());
    for _ in 0..2 {
        assert_eq!(app.get(&conversation).await.status, 200);
    }
    let search = app.get("/reports/search?last=PT1H&page_size=5").await;
    assert_eq!(search.status, 200, "{}", search.text());
    let aggregates = app
        .get("/reports/aggregates?last=P1D&granularity=PT6H&group_by=queue_id&metrics=offered,wait,handle")
        .await;
    assert_eq!(aggregates.status, 200, "{}", aggregates.text());
    // A client refused: Genesys is down and the conversation is not cached.
    app.sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    assert_problem(
        &app.get(&format!("/conversations/{}", app.live_id())).await,
        503,
    );
    app.sim.set_faults(Faults::default());

    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let scrape = Scrape::parse(&metrics.text());
    assert!(
        scrape
            .series
            .contains_key("genesys_proxy_http_requests_total"),
        "the scrape parses"
    );

    let shared_names: Vec<&String> = scrape
        .series
        .keys()
        .filter(|name| name.starts_with(SHARED_PREFIX))
        .collect();
    assert!(
        shared_names.is_empty(),
        "a single-process proxy exports no shared tier series: {shared_names:?}"
    );
    let (shared_queries, local_queries): (Vec<_>, Vec<_>) = queries
        .iter()
        .partition(|(_, expr)| expr.contains(SHARED_PREFIX));
    assert!(
        shared_queries.len() >= 7,
        "{} queries of the shared tier found",
        shared_queries.len()
    );

    let mut all = Vec::new();
    for (origin, expr) in &local_queries {
        all.extend(problems(origin, expr, &scrape));
    }
    match shared_scrape(&app).await {
        Some(shared) => {
            for (origin, expr) in &shared_queries {
                all.extend(problems(origin, expr, &shared));
            }
        }
        None => eprintln!(
            "skipped: {} queries of the shared tier not checked (no redis-server)",
            shared_queries.len()
        ),
    }
    assert!(
        all.is_empty(),
        "the dashboard or the rules query what /metrics does not export:\n  {}",
        all.join("\n  ")
    );
}

/// The scrape of a proxy in shared mode (on a `redis-server` of its own, in front of the
/// demo's simulator) once it uses Redis and has let one call through the shared gate;
/// `None` when `redis-server` is not installed (outside CI).
async fn shared_scrape(app: &TestApp) -> Option<Scrape> {
    let redis = RedisServer::start("dashboard_metrics (shared tier)")?;
    let replica = Replica::start(&app.sim, shared_settings(&redis)).await;
    let mut admin = serde_json::Value::Null;
    for _ in 0..200 {
        admin = replica.admin().await;
        if admin["shared"]["mode"] == "shared" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(admin["shared"]["mode"], "shared", "shared mode: {admin}");
    let conversation = replica
        .get(&format!("/conversations/{}", app.live_id()))
        .await;
    assert_eq!(conversation.status, 200, "{}", conversation.text());
    let metrics = replica.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let scrape = Scrape::parse(&metrics.text());
    assert!(
        scrape.series.contains_key("genesys_proxy_shared_available"),
        "a proxy in shared mode exports the shared tier: {}",
        metrics.text()
    );
    Some(scrape)
}

/// The checker itself fails on what it must catch (it runs on a fixed scrape here).
#[test]
fn the_checker_rejects_unknown_metrics_labels_and_values() {
    let scrape = Scrape::parse(
        "# TYPE genesys_proxy_cache_requests_total counter\n\
         genesys_proxy_cache_requests_total{cache=\"conversations\",result=\"hit\"} 1\n\
         genesys_proxy_token_valid 1\n",
    );
    let good = r#"sum by (cache) (rate(genesys_proxy_cache_requests_total{job=~"$job", result="hit"}[$__rate_interval])) / on (instance) group_left genesys_proxy_token_valid or up == 0"#;
    assert_eq!(problems("good", good, &scrape), Vec::<String>::new());
    for (bad, why) in [
        ("genesys_proxy_token_valids == 0", "a renamed metric"),
        (
            r#"genesys_proxy_cache_requests_total{results="hit"}"#,
            "an unknown label",
        ),
        (
            r#"genesys_proxy_cache_requests_total{cache="report_page"}"#,
            "an unknown value of an enumerated label",
        ),
        (
            "sum by (route) (genesys_proxy_cache_requests_total)",
            "an unknown grouping label",
        ),
        (
            "node_load1 > 1",
            "a metric neither the proxy's nor allowlisted",
        ),
        (
            r#"{__name__="genesys_proxy_token_valid"}"#,
            "a selector without a metric name",
        ),
        ("vector(1)", "no selector at all"),
    ] {
        assert!(
            !problems("bad", bad, &scrape).is_empty(),
            "accepted {why}: {bad}"
        );
    }
}
