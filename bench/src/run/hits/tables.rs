//! Tables 1, 1b and 1c of the hit runs: closed-loop throughput and latency per
//! representation with the proxy's per-round ratios, latency paced below saturation, and
//! the many-id, many-key runs.

use std::fmt::Write as _;

use super::runs::{ClosedRuns, PacedRuns};
use super::targets::{CEILING, HitTarget, NGINX, PROXY};
use super::{PACED_SHARES, WORKLOADS};
use crate::load::Part;
use crate::rounds::{self, RatioSummary};
use crate::run::cpu::CpuUse;
use crate::run::options::Options;
use crate::run::tables::{Table, each_round, left, met_or_not, quantiles_ms, right};

/// The proxy's figure over `of`'s, round by round (`per_cpu`: answers per server
/// CPU-second, else req/s), against `target`.
fn ratio_of(
    closed: &[ClosedRuns],
    targets: &[HitTarget],
    of: &str,
    per_cpu: bool,
    target: f64,
) -> RatioSummary {
    let find = |name: &str| targets.iter().position(|t| t.name == name);
    let values = |i: Option<usize>| {
        i.map_or_else(Vec::new, |i| {
            if per_cpu {
                closed[i].per_cpu.clone()
            } else {
                closed[i].rps.clone()
            }
        })
    };
    RatioSummary::new(
        rounds::per_round_ratios(&values(find(PROXY)), &values(find(of))),
        target,
    )
}

/// Non-200 answers and requests without an answer.
fn bad_answers(part: &Part) -> u64 {
    part.statuses
        .iter()
        .filter(|(s, _)| **s != 200)
        .map(|(_, n)| n)
        .sum::<u64>()
        + part.error_count()
}

/// `median (min-max)` of the rounds' req/s.
fn rps_of_rounds(runs: &ClosedRuns) -> String {
    format!(
        "{:.0} ({:.0}-{:.0})",
        rounds::median(&runs.rps),
        rounds::minimum(&runs.rps),
        rounds::maximum(&runs.rps)
    )
}

/// How the closed-loop runs ran, as the headings of tables 1 and 1c say.
fn closed_loop_terms(o: &Options) -> String {
    format!(
        "{} connections, closed loop, {} s per run after {} s warm-up, {} round(s)",
        o.connections, o.hit_secs, o.hit_warmup, o.rounds
    )
}

/// The quantiles of the closed-loop tables' latency column: p50 / p99 / p99.9.
const CLOSED_QUANTILES: [f64; 3] = [0.5, 0.99, 0.999];

/// The closed-loop table of the two representations, and their per-round ratios.
pub(crate) fn write_closed_tables(
    o: &Options,
    out: &mut String,
    targets: &[HitTarget],
    closed: &[Vec<ClosedRuns>],
    bodies: &[bytes::Bytes],
) {
    let _ = writeln!(
        out,
        "## 1. Cache-hit throughput: `GET /conversations/{{id}}`, one id, one key, {}, targets in a shuffled order within each round\n",
        closed_loop_terms(o)
    );
    let mut table = Table::new([
        left("representation"),
        left("target"),
        right("body bytes"),
        right("req/s, median (min-max) of rounds"),
        right("spread (max / min - 1)"),
        left("req/s of each round"),
        right("req per server CPU-second, median"),
        left("p50 / p99 / p99.9 ms, all rounds' answers"),
        left("p99 ms of each round"),
        left("non-200 / errors"),
        left("CPU, median of rounds: server / load gen / others on the server's core"),
    ]);
    for (w, body) in bodies.iter().enumerate().take(2) {
        for (t, target) in targets.iter().enumerate() {
            let runs = &closed[w][t];
            let total = runs.all.total();
            let cpu = |f: fn(&CpuUse) -> f64| {
                rounds::median(&runs.cpu.iter().map(f).collect::<Vec<_>>()) * 100.0
            };
            table.row(&[
                &WORKLOADS[w],
                &target.name,
                &body.len(),
                &rps_of_rounds(runs),
                &format!(
                    "{:.0}%",
                    (rounds::maximum(&runs.rps) / rounds::minimum(&runs.rps) - 1.0) * 100.0
                ),
                &each_round(&runs.rps, 0),
                &format!("{:.0}", rounds::median(&runs.per_cpu)),
                &quantiles_ms(&total, &CLOSED_QUANTILES, 3),
                &each_round(&runs.p99, 3),
                &bad_answers(&total),
                &format!(
                    "{:.0}% / {:.0}% / {:.0}%",
                    cpu(|c| c.server),
                    cpu(|c| c.load),
                    cpu(|c| c.other_on_server_core)
                ),
            ]);
        }
    }
    table.write(out);
    let _ = writeln!(
        out,
        "Ratios are taken within each round (the proxy's run over the other target's run of the same round), then summarised over the rounds; the verdict is the median's.\n"
    );
    let mut ratios = Table::new([
        left("representation"),
        left("proxy / ceiling, req/s (target >= 0.9)"),
        left("of each round"),
        left("proxy / nginx, req/s (target >= 1.3)"),
        left("of each round"),
        left("proxy / ceiling, per CPU-second: median, min"),
        left("proxy / nginx, per CPU-second: median, min"),
        left(format!(
            "proxy p99 at {} connections, all rounds' answers (target < 2 ms)",
            o.connections
        )),
    ]);
    for w in 0..2 {
        let vs_ceiling = ratio_of(&closed[w], targets, CEILING, false, 0.9);
        let vs_nginx = ratio_of(&closed[w], targets, NGINX, false, 1.3);
        let cpu_ceiling = ratio_of(&closed[w], targets, CEILING, true, 0.9);
        let cpu_nginx = ratio_of(&closed[w], targets, NGINX, true, 1.3);
        let p99 = closed[w][0].all.total().ms(0.99);
        ratios.row(&[
            &WORKLOADS[w],
            &vs_ceiling.verdict(),
            &vs_ceiling.each(),
            &vs_nginx.verdict(),
            &vs_nginx.each(),
            &format!("{:.2}x, {:.2}x", cpu_ceiling.median, cpu_ceiling.min),
            &format!("{:.2}x, {:.2}x", cpu_nginx.median, cpu_nginx.min),
            &format!("{p99:.3} ms ({})", met_or_not(p99 < 2.0)),
        ]);
    }
    ratios.write(out);
}

/// The paced runs: latency at fixed shares of the ceiling's throughput.
pub(crate) fn write_paced_table(
    o: &Options,
    out: &mut String,
    targets: &[HitTarget],
    paced: &[Vec<Vec<PacedRuns>>],
) {
    if o.paced_secs <= 0.0 {
        return;
    }
    let _ = writeln!(
        out,
        "### 1b. Latency below saturation: paced at {} of the ceiling's closed-loop req/s of the same round, {} connections, {} s per run after {} s warm-up, timed from each request's scheduled send\n",
        PACED_SHARES
            .iter()
            .map(|s| format!("{:.0}%", s * 100.0))
            .collect::<Vec<_>>()
            .join(" and "),
        o.connections,
        o.paced_secs,
        o.hit_warmup
    );
    let mut table = Table::new([
        left("representation"),
        left("load"),
        left("target"),
        right("offered req/s, median"),
        right("answered req/s, median"),
        right("server CPU, median"),
        left("p50 / p99 / p99.9 / max ms, all rounds' answers"),
        left("p99 ms of each round"),
        right("queued behind busy connections"),
        left("load generator's own lateness p50 / p99"),
        left("non-200 / errors / unsent"),
    ]);
    for (w, by_share) in paced.iter().enumerate() {
        for (s, by_target) in by_share.iter().enumerate() {
            for (t, runs) in by_target.iter().enumerate() {
                if runs.offered.is_empty() {
                    continue;
                }
                let total = runs.all.total();
                let p = &runs.pacing;
                table.row(&[
                    &WORKLOADS[w],
                    &format!("{:.0}%", PACED_SHARES[s] * 100.0),
                    &targets[t].name,
                    &format!("{:.0}", rounds::median(&runs.offered)),
                    &format!("{:.0}", rounds::median(&runs.answered)),
                    &format!("{:.0}%", rounds::median(&runs.server_cpu) * 100.0),
                    &quantiles_ms(&total, &[0.5, 0.99, 0.999, 1.0], 3),
                    &each_round(&runs.p99, 3),
                    &format!(
                        "{} of {} ({:.2}%)",
                        p.queued,
                        p.scheduled,
                        p.queued as f64 * 100.0 / p.scheduled.max(1) as f64
                    ),
                    &format!(
                        "{:.0} / {:.0} us",
                        p.own_lateness_us(0.5),
                        p.own_lateness_us(0.99)
                    ),
                    &format!("{} / {}", bad_answers(&total), p.unsent),
                ]);
            }
        }
    }
    table.write(out);
}

/// The many-id, many-key closed-loop runs.
pub(crate) fn write_many_table(
    o: &Options,
    out: &mut String,
    targets: &[HitTarget],
    closed: &[ClosedRuns],
    ids: usize,
    keys: usize,
) {
    let _ = writeln!(
        out,
        "### 1c. Many ids, many keys: {ids} cached conversations (`?view=full`), {keys} API keys, {}\n",
        closed_loop_terms(o)
    );
    let mut table = Table::new([
        left("target"),
        right("body bytes per answer"),
        right("req/s, median (min-max) of rounds"),
        left("req/s of each round"),
        right("req per server CPU-second, median"),
        left("p50 / p99 / p99.9 ms, all rounds' answers"),
        left("cache hits (by the target's own header)"),
        left("non-200 / errors"),
    ]);
    for (t, target) in targets.iter().enumerate() {
        let runs = &closed[t];
        let total = runs.all.total();
        table.row(&[
            &target.name,
            &format!(
                "{:.0}",
                total.body_bytes as f64 / total.answered.max(1) as f64
            ),
            &rps_of_rounds(runs),
            &each_round(&runs.rps, 0),
            &format!("{:.0}", rounds::median(&runs.per_cpu)),
            &quantiles_ms(&total, &CLOSED_QUANTILES, 3),
            &format!("{} of {}", target.hits(&total), total.answered),
            &bad_answers(&total),
        ]);
    }
    table.write(out);
    let vs_ceiling = ratio_of(closed, targets, CEILING, false, 0.9);
    let vs_nginx = ratio_of(closed, targets, NGINX, false, 1.3);
    let _ = writeln!(
        out,
        "proxy / ceiling, req/s: {} (each round {}); proxy / nginx, req/s: {} (each round {}). The ceiling answers one fixed document whatever the id; the proxy and nginx each id's own.\n",
        vs_ceiling.verdict(),
        vs_ceiling.each(),
        vs_nginx.verdict(),
        vs_nginx.each()
    );
}
