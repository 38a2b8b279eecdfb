//! What a dashboard polls and what its polls got: the ten report queries
//! ([`dashboard_queries`]), one poll ([`dash_poll`]) and the tally of each query's polls
//! ([`DashStats`]).

use std::sync::Mutex;

use tokio::time::Instant;

use crate::Control;
use crate::load::Part;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportKind {
    Search,
    Aggregates,
}

/// One report a dashboard shows: a GET of page 1.
#[derive(Debug, Clone)]
pub(crate) struct DashQuery {
    pub(crate) kind: ReportKind,
    /// Path and query string, as sent.
    pub(crate) path: String,
    /// The same, as printed (the queue id named).
    pub(crate) label: String,
}

/// What the polls of one query got.
#[derive(Debug, Default)]
pub(crate) struct DashStats {
    pub(crate) part: Part,
    /// 200 answers without `results` (search) or `series` (aggregates).
    pub(crate) malformed: u64,
    /// Fewest and most items (`results` or `series`) of a 200 answer.
    pub(crate) items: Option<(usize, usize)>,
    /// Ticks skipped because the dashboard's previous poll of this query was still running.
    pub(crate) skipped: u64,
    /// Per polling period of the run (by the poll's start): polls, answers other than 200
    /// (or none).
    pub(crate) by_period: Vec<(u64, u64)>,
}

/// The ten reports every dashboard polls.
pub(crate) fn dashboard_queries(queue: &str, queue_name: &str) -> Vec<DashQuery> {
    let search = |q: &str| ("search", format!("/reports/search?{q}&page_size=50"));
    let aggregates = |q: &str| ("aggregates", format!("/reports/aggregates?{q}"));
    let queue_q = format!("queue_ids={queue}");
    [
        search("last=PT15M&order=desc"),
        search("last=PT15M&media_types=voice&order=desc"),
        search("last=PT1H&order=desc"),
        search(&format!("last=PT1H&{queue_q}&order=asc")),
        search("last=P1D&order=asc"),
        search("last=P1D&media_types=voice&order=desc"),
        search(&format!("last=P1D&{queue_q}&order=desc")),
        aggregates("last=P1D&granularity=PT1H&group_by=queue_id&metrics=offered,handle"),
        aggregates("last=PT1H&granularity=PT15M&group_by=media_type&metrics=offered,wait,handle"),
        aggregates("last=PT15M&group_by=queue_id&metrics=offered,answered,abandon"),
    ]
    .into_iter()
    .map(|(kind, path)| DashQuery {
        kind: if kind == "search" {
            ReportKind::Search
        } else {
            ReportKind::Aggregates
        },
        label: format!("`{}`", path.replace(queue, &format!("{{{queue_name}}}"))),
        path,
    })
    .collect()
}

/// One poll: status, latency and the answer's shape.
pub(crate) async fn dash_poll(
    http: &Control,
    base: &str,
    key: &str,
    query: &DashQuery,
    stats: &Mutex<Vec<DashStats>>,
    index: usize,
    period: usize,
) {
    let started = Instant::now();
    let answer = http
        .get(&format!("{base}{}", query.path), &[("x-api-key", key)])
        .await;
    let latency = started.elapsed();
    let mut all = stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let s = &mut all[index];
    if s.by_period.len() <= period {
        s.by_period.resize(period + 1, (0, 0));
    }
    s.by_period[period].0 += 1;
    if !answer.as_ref().is_ok_and(|a| a.status.as_u16() == 200) {
        s.by_period[period].1 += 1;
    }
    match answer {
        Ok(answer) => {
            let status = answer.status.as_u16();
            s.part
                .record_answer(latency, status, answer.body.len() as u64, None);
            if status == 200 {
                let field = match query.kind {
                    ReportKind::Search => "results",
                    ReportKind::Aggregates => "series",
                };
                let items = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v.get(field).and_then(|f| f.as_array().map(Vec::len)));
                match items {
                    Some(n) => {
                        s.items = Some(s.items.map_or((n, n), |(lo, hi)| (lo.min(n), hi.max(n))));
                    }
                    None => s.malformed += 1,
                }
            }
        }
        Err(e) => {
            let reason = if format!("{e:#}").contains("no answer within") {
                "time-out"
            } else {
                "connection"
            };
            s.part.error(reason);
        }
    }
}
