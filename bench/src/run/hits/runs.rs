//! The measured runs of the hit scenario: one closed-loop or paced run of a target with
//! the CPU it used, and the runs of a target kept round by round ([`ClosedRuns`],
//! [`PacedRuns`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::targets::HitTarget;
use crate::Req;
use crate::load::{self, ClosedLoop, Report};
use crate::paced::{self, Paced, PacedReport, Pacing, Schedule};
use crate::run::cpu::{CpuProbe, CpuUse};
use crate::run::options::Options;

/// How long after the end of a paced run's schedule requests still queued are sent (a
/// target slower than the offered rate builds a queue; what is left is counted unsent).
const PACED_GRACE: Duration = Duration::from_secs(3);
/// The closed-loop runs of one target and one workload, round by round.
#[derive(Default)]
pub(crate) struct ClosedRuns {
    pub(crate) rps: Vec<f64>,
    /// Answers per CPU-second of the server.
    pub(crate) per_cpu: Vec<f64>,
    pub(crate) p99: Vec<f64>,
    pub(crate) cpu: Vec<CpuUse>,
    /// Every round's answers together (latency quantiles of all of them).
    pub(crate) all: Report,
}

impl ClosedRuns {
    pub(crate) fn push(&mut self, report: &Report, cpu: CpuUse) {
        self.rps.push(report.rps());
        self.per_cpu.push(report.rps() / cpu.server.max(0.01));
        self.p99.push(report.total().ms(0.99));
        self.cpu.push(cpu);
        self.all.add(report);
    }
}

/// The paced runs of one target, representation and load, round by round.
#[derive(Default)]
pub(crate) struct PacedRuns {
    pub(crate) offered: Vec<f64>,
    pub(crate) answered: Vec<f64>,
    pub(crate) server_cpu: Vec<f64>,
    pub(crate) p99: Vec<f64>,
    pub(crate) all: Report,
    pub(crate) pacing: Pacing,
}

impl PacedRuns {
    pub(crate) fn push(&mut self, rate: f64, run: &PacedReport, server_cpu: f64) {
        self.offered.push(rate);
        self.answered.push(run.report.rps());
        self.server_cpu.push(server_cpu);
        self.p99.push(run.report.total().ms(0.99));
        self.all.add(&run.report);
        self.pacing.add(&run.pacing);
    }
}

/// One closed-loop run of `requests` against `target`, with the CPU it used.
pub(crate) async fn closed_run(
    o: &Options,
    target: &HitTarget,
    requests: Arc<Vec<Req>>,
    label: &str,
    round: usize,
) -> Result<(Report, CpuUse)> {
    let run = ClosedLoop {
        addr: target.addr,
        connections: o.connections,
        warmup: Duration::from_secs_f64(o.hit_warmup),
        duration: Duration::from_secs_f64(o.hit_secs),
        requests,
        capture: Some(target.capture.clone()),
    };
    let (warmup, secs) = (run.warmup, run.duration);
    let probe = async {
        tokio::time::sleep(warmup).await;
        let probe = CpuProbe::start(target.pid);
        tokio::time::sleep(secs).await;
        probe.stop()
    };
    let (report, cpu) = tokio::join!(load::closed_loop(run), probe);
    let report = report?;
    eprintln!(
        "bench: hits {label} {} round {}: {}; CPU server {:.2}, load generator {:.2}, others on the server's core {:.2}",
        target.name,
        round + 1,
        report.summary(),
        cpu.server,
        cpu.load,
        cpu.other_on_server_core
    );
    Ok((report, cpu))
}

/// One paced run of `requests` against `target` at `rate`, with the server's CPU.
pub(crate) async fn paced_run(
    o: &Options,
    target: &HitTarget,
    requests: Arc<Vec<Req>>,
    rate: f64,
    label: &str,
    round: usize,
) -> Result<(PacedReport, f64)> {
    let schedule = Schedule {
        rate,
        warmup: Duration::from_secs_f64(o.hit_warmup),
        duration: Duration::from_secs_f64(o.paced_secs),
    };
    let run = Paced {
        addr: target.addr,
        connections: o.connections,
        schedule,
        requests,
        capture: Some(target.capture.clone()),
        grace: PACED_GRACE,
    };
    let probe = async {
        tokio::time::sleep(schedule.warmup).await;
        let probe = CpuProbe::start(target.pid);
        tokio::time::sleep(schedule.duration).await;
        probe.stop()
    };
    let (paced, cpu) = tokio::join!(paced::paced_loop(run), probe);
    let paced = paced?;
    eprintln!(
        "bench: paced {label} {} at {rate:.0}/s round {}: {}; queued {}, unsent {}, own lateness p99 {:.0} us; CPU server {:.2}",
        target.name,
        round + 1,
        paced.report.summary(),
        paced.pacing.queued,
        paced.pacing.unsent,
        paced.pacing.own_lateness_us(0.99),
        cpu.server
    );
    Ok((paced, cpu.server))
}
