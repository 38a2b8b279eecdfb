//! Scenario 4, memory: a fresh proxy per cache budget fetches 10 000, then 100 000
//! distinct conversations (each as the summary view, then as the full document); its RSS
//! and its cache's entries and weighed bytes against the bytes it served per conversation.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use tokio::time::Instant;

use super::Session;
use super::proxy::{Key, Proxy, start_proxy};
use super::sim::{Listed, Sim};
use super::tables::{Table, met_or_not, mib, right, statuses};
use crate::load::{self, Part};
use crate::{Control, Req};

/// The most bytes the cache may hold per cached conversation, as a multiple of the bytes
/// it served for it (both representations).
const HELD_PER_SERVED_TARGET: f64 = 1.3;

/// The conversation cache's entries and weighed bytes, from `GET /admin/cache` (which
/// settles the cache's pending evictions first).
async fn cache_figures(http: &Control, proxy: &Proxy, key: &Key) -> Result<(u64, u64)> {
    let answer = http
        .get(
            &format!("{}/admin/cache", proxy.base),
            &[("authorization", &key.bearer)],
        )
        .await?;
    let v = answer.json()?;
    let c = &v["conversations"];
    Ok((
        c["entries"].as_u64().context("entries")?,
        c["bytes"].as_u64().context("bytes")?,
    ))
}

/// One representation of a conversation, as the memory run asks for it.
struct View {
    name: &'static str,
    query: &'static str,
}

/// The summary view first (the fill the table times), then the full document.
const VIEWS: [View; 2] = [
    View {
        name: "summary",
        query: "",
    },
    View {
        name: "full",
        query: "?view=full",
    },
];

/// Body bytes the proxy served per view, summed over every conversation fetched so far.
#[derive(Default)]
struct Served {
    conversations: u64,
    bytes: [u64; 2],
}

impl Served {
    fn per_conversation(&self) -> f64 {
        self.bytes.iter().sum::<u64>() as f64 / self.conversations.max(1) as f64
    }

    /// `total (summary + full)`, bytes per conversation.
    fn cell(&self) -> String {
        let per = |bytes: u64| bytes as f64 / self.conversations.max(1) as f64;
        format!(
            "{:.0} ({:.0} + {:.0})",
            self.per_conversation(),
            per(self.bytes[0]),
            per(self.bytes[1])
        )
    }

    /// `held` bytes per cached conversation over the bytes served per conversation.
    fn ratio(&self, held: f64) -> f64 {
        held / self.per_conversation().max(1.0)
    }
}

/// Fetches `conversations` once each in `view` through `proxy`; a failure for each answer
/// other than 200.
async fn fetch_all(
    proxy: &Proxy,
    key: &Key,
    conversations: &[Listed],
    view: &View,
    failures: &mut Vec<String>,
    label: &str,
) -> Result<(Part, Duration)> {
    let requests: Vec<Req> = conversations
        .iter()
        .map(|c| {
            Req::get(
                &format!("/conversations/{}{}", c.id, view.query),
                &[("authorization", &key.bearer)],
            )
        })
        .collect();
    let started = Instant::now();
    let report = load::each_once(proxy.addr, 32, Arc::new(requests), None).await?;
    let took = started.elapsed();
    eprintln!(
        "bench: memory {label} ({}): {}",
        view.name,
        report.summary()
    );
    let t = report.total();
    let bad = t.answered - t.statuses.get(&200).copied().unwrap_or(0) + t.error_count();
    if bad > 0 {
        failures.push(format!(
            "memory {label}: {bad} fetches of the {} view did not answer 200: {}",
            view.name,
            statuses(&t)
        ));
    }
    Ok((t, took))
}

/// Scenario 4: for each cache budget, a fresh proxy fetches the conversations of `listed`
/// up to each of `o.mem_points`; writes table 4.
pub(crate) async fn scenario_memory(
    session: &mut Session<'_>,
    sim: &Sim,
    key: &Key,
    listed: &[Listed],
) -> Result<()> {
    let (o, http, out, failures) = session.parts();
    let _ = writeln!(
        out,
        "## 4. Memory: RSS and cache bytes with {} distinct conversations fetched\n",
        o.mem_points
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" then ")
    );
    let _ = writeln!(
        out,
        "Each conversation is fetched once as the summary view (the fetch timed in `time to fetch`), then once as the full document (`?view=full`); \"bytes served\" are the body bytes of those answers per conversation fetched, and the cache holds both representations of each entry (target: at most {HELD_PER_SERVED_TARGET}x the bytes served per cached conversation).\n"
    );
    let mut table = Table::new([
        right("cache.max_bytes"),
        right("fetched"),
        right("entries"),
        right("cache bytes"),
        right("of budget"),
        right("bytes/entry"),
        right("RSS"),
        right("RSS - RSS at start"),
        right("peak RSS (VmHWM)"),
        right("time to fetch"),
        right("bytes served per conversation: summary + full"),
        right(format!(
            "cache bytes per entry / bytes served (target <= {HELD_PER_SERVED_TARGET}x)"
        )),
        right("(RSS - RSS at start) per entry / bytes served"),
    ]);
    let need = *o.mem_points.iter().max().unwrap_or(&0);
    ensure!(
        listed.len() >= need,
        "the simulator lists {} conversations, {need} are needed",
        listed.len()
    );
    for budget_mib in &o.mem_budgets_mib {
        let max_bytes = budget_mib * 1024 * 1024;
        let name = format!("proxy-mem-{budget_mib}");
        let proxy = start_proxy(
            o,
            http,
            &name,
            None,
            sim,
            key,
            &format!(
                "[budget]\nrate = 1000000\nburst = 100000\nmax_concurrency = 64\nmax_queue = 100000\n\n[cache]\nmax_bytes = {max_bytes}\n"
            ),
        )
        .await?;
        let rss0 = proxy.proc.status_kib("VmRSS:").unwrap_or(0) * 1024;
        table.row(&[
            &mib(max_bytes as f64),
            &0,
            &0,
            &0,
            &"0%",
            &"-",
            &mib(rss0 as f64),
            &"-",
            &"-",
            &"-",
            &"-",
            &"-",
            &"-",
        ]);
        let mut done = 0;
        let mut served = Served::default();
        for point in &o.mem_points {
            let label = format!("{name} fill to {point}");
            let fetched = &listed[done..*point];
            let mut took = Duration::ZERO;
            for (v, view) in VIEWS.iter().enumerate() {
                let (answers, view_took) =
                    fetch_all(&proxy, key, fetched, view, failures, &label).await?;
                served.bytes[v] += answers.body_bytes;
                if v == 0 {
                    took = view_took;
                }
            }
            served.conversations += fetched.len() as u64;
            done = *point;
            let (entries, bytes) = cache_figures(http, &proxy, key).await?;
            let rss = proxy.proc.status_kib("VmRSS:").unwrap_or(0) * 1024;
            let hwm = proxy.proc.status_kib("VmHWM:").unwrap_or(0) * 1024;
            if bytes > max_bytes {
                failures.push(format!(
                    "memory {name}: cache bytes {bytes} exceed max_bytes {max_bytes}"
                ));
            }
            let bytes_per_entry = bytes as f64 / entries.max(1) as f64;
            let rss_per_entry = rss.saturating_sub(rss0) as f64 / entries.max(1) as f64;
            let held_per_served = served.ratio(bytes_per_entry);
            table.row(&[
                &mib(max_bytes as f64),
                point,
                &entries,
                &mib(bytes as f64),
                &format!("{:.0}%", bytes as f64 * 100.0 / max_bytes as f64),
                &format!("{bytes_per_entry:.0}"),
                &mib(rss as f64),
                &mib(rss.saturating_sub(rss0) as f64),
                &mib(hwm as f64),
                &format!("{:.1} s", took.as_secs_f64()),
                &served.cell(),
                &format!(
                    "{held_per_served:.2}x ({})",
                    met_or_not(held_per_served <= HELD_PER_SERVED_TARGET)
                ),
                &format!("{:.2}x", served.ratio(rss_per_entry)),
            ]);
        }
        drop(proxy);
    }
    table.write(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_held_are_compared_with_both_views_served_per_conversation() {
        let served = Served {
            conversations: 10,
            bytes: [11_000, 49_000],
        };
        assert_eq!(served.cell(), "6000 (1100 + 4900)");
        assert!((served.ratio(7_800.0) - 1.3).abs() < 1e-9);
    }

    #[test]
    fn nothing_served_yet_has_no_division_by_zero() {
        let served = Served::default();
        assert_eq!(served.cell(), "0 (0 + 0)");
        assert!(served.ratio(100.0).is_finite());
    }
}
