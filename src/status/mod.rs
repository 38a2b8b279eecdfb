//! The status page (`GET /status`): a read-only HTML summary for people without Grafana.
//! [`Figures`] holds what the page shows, read by the handler
//! ([`crate::routes::status`]) from the same components that render `/metrics` (the
//! caches' [`CacheStats`], the budget's [`BudgetStats`], the upstream [`UpstreamStats`]
//! and its refusal log, the token's readiness and [`TokenStats`], the readiness verdict):
//! no figure is counted twice. [`render`] turns them into one self-contained page: style
//! inline, no script, no asset from anywhere (a `<meta http-equiv="refresh">` reloads
//! it), every word and figure HTML-escaped. Nothing secret is among the figures: no token,
//! no key, no client secret, no client name.

mod html;

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::cache::CacheStats;
use crate::upstream::Class;
use crate::upstream::budget::BudgetStats;
use crate::upstream::stats::{RecentRefusal, UpstreamStats};
use crate::upstream::token::{TokenReadiness, TokenStats};
pub use html::escape;

/// Seconds between reloads of the page.
pub const REFRESH_SECS: u32 = 10;

/// Everything the page shows, read at one moment.
#[derive(Debug, Clone)]
pub struct Figures {
    pub generated_at: DateTime<Utc>,
    /// Whether `/readyz` answers 200, and each of its components with its status.
    pub ready: bool,
    pub components: Vec<(String, String)>,
    pub budget: BudgetStats,
    /// Permits granted by class (indexed by [`Class`]).
    pub permits_by_class: [u64; 3],
    /// Refusals by class (indexed by [`Class`]).
    pub refused_by_class: [u64; 3],
    /// The caches by name.
    pub caches: Vec<(&'static str, CacheStats)>,
    pub token: TokenReadiness,
    pub token_stats: TokenStats,
    pub upstream: Upstream,
    /// The last refusals, newest first.
    pub recent_refusals: Vec<RecentRefusal>,
}

/// The upstream figures the page shows.
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    /// (endpoint, status or `error`, count).
    pub exchanges: Vec<(&'static str, String, u64)>,
    pub rate_limited: u64,
    pub last_rate_limited: Option<DateTime<Utc>>,
    pub retries: u64,
}

impl Upstream {
    /// The figures of `stats`.
    #[must_use]
    pub fn of(stats: &UpstreamStats) -> Self {
        let (rate_limited, last_rate_limited) = stats.rate_limited();
        Self {
            exchanges: stats.exchanges(),
            rate_limited,
            last_rate_limited,
            retries: stats.retries(),
        }
    }
}

const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2430}\
header{background:#1d2430;color:#fff;padding:14px 24px;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}\
header h1{font-size:20px;margin:0}header .at{color:#b8c0cc;font-size:13px}\
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:16px;padding:16px 24px}\
section{background:#fff;border:1px solid #d9dde3;border-radius:6px;padding:12px 16px;overflow-x:auto}section.wide{grid-column:1/-1}\
h2{font-size:16px;margin:0 0 8px}table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}\
th,td{text-align:right;padding:3px 8px;border-bottom:1px solid #eceef1;white-space:nowrap}th:first-child,td:first-child{text-align:left}\
th{font-weight:600;color:#4a5566;font-size:13px}dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0 0}\
dt{color:#4a5566}dd{margin:0}.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;font-size:13px}\
.ok{background:#d6f5dd;color:#125c24}.bad{background:#fbd9d7;color:#8a1c12}.warn{background:#fdf0c8;color:#6b4e00}\
p.note{color:#4a5566;font-size:13px;margin:8px 0 0}";

/// The whole page.
#[must_use]
pub fn render(figures: &Figures) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>genesys-proxy status</title><style>{STYLE}</style></head><body>"
    );
    header(&mut out, figures);
    out.push_str("<main>");
    budget(&mut out, figures);
    token(&mut out, figures);
    caches(&mut out, figures);
    upstream(&mut out, figures);
    refusals(&mut out, figures);
    out.push_str("</main></body></html>\n");
    out
}

fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn badge(out: &mut String, id: &str, kind: &str, text: &str) {
    let _ = write!(
        out,
        "<span class=\"badge {}\" id=\"{}\">{}</span>",
        escape(kind),
        escape(id),
        escape(text)
    );
}

fn header(out: &mut String, figures: &Figures) {
    out.push_str("<header><h1>genesys-proxy status</h1>");
    if figures.ready {
        badge(out, "readiness", "ok", "ready");
    } else {
        badge(out, "readiness", "bad", "not ready");
    }
    for (component, status) in &figures.components {
        let kind = if status == "ok" { "ok" } else { "warn" };
        badge(
            out,
            &format!("component-{component}"),
            kind,
            &format!("{component}: {status}"),
        );
    }
    let _ = write!(
        out,
        "<span class=\"at\">figures at {} (UTC), since the start of this instance; reloads every {REFRESH_SECS} s</span></header>",
        escape(&when(figures.generated_at))
    );
}

fn budget(out: &mut String, figures: &Figures) {
    let stats = &figures.budget;
    out.push_str("<section id=\"budget\"><h2>Rate budget by class</h2>");
    let rows: Vec<Vec<String>> = Class::ALL
        .iter()
        .map(|&class| {
            let i = class as usize;
            vec![
                class.as_str().to_owned(),
                figures.permits_by_class[i].to_string(),
                figures.refused_by_class[i].to_string(),
                stats.queued[i].to_string(),
            ]
        })
        .collect();
    html::table(
        out,
        "budget-classes",
        &["class", "permits granted", "refused", "queued now"],
        &rows,
    );
    let frozen = if stats.frozen {
        "yes: Genesys answered 429, calls wait for its Retry-After"
    } else {
        "no"
    };
    html::facts(
        out,
        "budget-facts",
        &[
            (
                "rate",
                format!(
                    "{} requests per {} s",
                    stats.effective_rate,
                    format_secs(stats.period_secs)
                ),
            ),
            ("permits granted", stats.granted.to_string()),
            ("calls in flight", stats.in_flight.to_string()),
            ("frozen", frozen.to_owned()),
        ],
    );
    out.push_str("</section>");
}

fn format_secs(secs: f64) -> String {
    if secs.fract() == 0.0 {
        format!("{secs:.0}")
    } else {
        format!("{secs}")
    }
}

fn caches(out: &mut String, figures: &Figures) {
    out.push_str("<section id=\"caches\" class=\"wide\"><h2>Caches</h2>");
    let rows: Vec<Vec<String>> = figures
        .caches
        .iter()
        .map(|(name, s)| {
            let lookups = s.hits + s.misses + s.stale + s.collapsed;
            vec![
                (*name).to_owned(),
                s.entries.to_string(),
                format!("{} of {}", html::bytes(s.bytes), html::bytes(s.max_bytes)),
                html::percent(s.hits + s.stale + s.collapsed, lookups),
                s.hits.to_string(),
                s.misses.to_string(),
                s.stale.to_string(),
                s.collapsed.to_string(),
                s.fetch_errors.to_string(),
            ]
        })
        .collect();
    html::table(
        out,
        "cache-figures",
        &[
            "cache",
            "entries",
            "bytes",
            "hit ratio",
            "hits",
            "misses",
            "stale",
            "collapsed",
            "fetch errors",
        ],
        &rows,
    );
    out.push_str(
        "<p class=\"note\">Hit ratio: lookups answered without waiting for Genesys (hits, stale, collapsed) over all lookups.</p></section>",
    );
}

fn token(out: &mut String, figures: &Figures) {
    let token = &figures.token;
    let state = if token.refused {
        "refused: Genesys refuses freshly obtained tokens"
    } else if token.failure.is_some() {
        "failing: the last token request failed"
    } else if token.held && token.expires_in_secs.is_some_and(|secs| secs < 300) {
        "expiring: valid for less than 5 minutes"
    } else if token.held {
        "valid"
    } else {
        "none held yet"
    };
    out.push_str("<section id=\"token\"><h2>Genesys token</h2>");
    let mut pairs = vec![("state", state.to_owned())];
    if let Some(secs) = token.expires_in_secs {
        pairs.push(("expires in", format!("{secs} s")));
    }
    if let Some(failure) = &token.failure {
        pairs.push(("last failure", failure.to_string()));
    }
    pairs.extend([
        (
            "refresh under way",
            if token.refreshing { "yes" } else { "no" }.to_owned(),
        ),
        ("token requests", figures.token_stats.requests.to_string()),
        ("failed requests", figures.token_stats.failures.to_string()),
    ]);
    html::facts(out, "token-facts", &pairs);
    out.push_str("</section>");
}

fn upstream(out: &mut String, figures: &Figures) {
    let upstream = &figures.upstream;
    out.push_str("<section id=\"upstream\"><h2>Calls to Genesys</h2>");
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut endpoints: Vec<&str> = upstream.exchanges.iter().map(|(e, _, _)| *e).collect();
    endpoints.dedup();
    for endpoint in endpoints {
        // calls, 2xx, 4xx but 429, 429, 5xx, no answer
        let mut counts = [0_u64; 6];
        for (_, status, count) in upstream.exchanges.iter().filter(|(e, _, _)| *e == endpoint) {
            counts[0] += count;
            let column = match status.as_bytes().first() {
                _ if status == "429" => 3,
                Some(b'2') => 1,
                Some(b'4') => 2,
                Some(b'5') => 4,
                _ if status == "error" => 5,
                _ => continue,
            };
            counts[column] += count;
        }
        let mut row = vec![endpoint.to_owned()];
        row.extend(counts.iter().map(ToString::to_string));
        rows.push(row);
    }
    if rows.is_empty() {
        out.push_str("<p class=\"note\">No call to Genesys yet.</p>");
    } else {
        html::table(
            out,
            "upstream-calls",
            &["endpoint", "calls", "2xx", "4xx", "429", "5xx", "no answer"],
            &rows,
        );
    }
    let last = upstream
        .last_rate_limited
        .map_or_else(|| "never".to_owned(), |at| format!("{} (UTC)", when(at)));
    html::facts(
        out,
        "upstream-facts",
        &[
            ("429s from Genesys", upstream.rate_limited.to_string()),
            ("last 429", last),
            ("attempts retried", upstream.retries.to_string()),
        ],
    );
    out.push_str("</section>");
}

fn refusals(out: &mut String, figures: &Figures) {
    out.push_str("<section id=\"refusals\"><h2>Recent refusals</h2>");
    if figures.recent_refusals.is_empty() {
        out.push_str("<p class=\"note\">No call refused by the budget since the start.</p>");
    } else {
        let rows: Vec<Vec<String>> = figures
            .recent_refusals
            .iter()
            .map(|r| {
                vec![
                    when(r.at),
                    r.class.as_str().to_owned(),
                    r.endpoint.as_str().to_owned(),
                    format!("{} s", r.retry_after_secs),
                ]
            })
            .collect();
        html::table(
            out,
            "recent-refusals",
            &["time (UTC)", "class", "Genesys endpoint", "Retry-After"],
            &rows,
        );
    }
    let _ = write!(
        out,
        "<p class=\"note\">The last {} upstream calls the rate budget refused (the client was answered 503 with this Retry-After, or served a stale copy).</p></section>",
        crate::upstream::stats::RECENT
    );
}

#[cfg(test)]
mod tests;
