//! The paced loop: requests sent at a fixed rate over keep-alive connections, each timed
//! from the instant it was scheduled, not from the instant it could be sent.
//!
//! A closed loop at its highest rate only says how long a request waits behind the 63
//! others in flight: its p99 restates the throughput. Timing an open loop from the actual
//! send hides every request that should have gone out while the server stalled (the load
//! generator waited with it: "coordinated omission"). Here request `k` is due at
//! `start + k / rate` ([`Schedule`]); the first connection free takes the next due request
//! (a pool of clients sharing one arrival stream); its latency runs from when it was due
//! to the last byte of its answer. A request taken after it was due (every connection was
//! busy) is counted as queued, and its wait is in its latency. A request taken before it
//! was due waits for its time: it sleeps on tokio's timer (1 ms granularity) until
//! [`SPIN_BEFORE`] ahead, then yields until due, so sends keep to the schedule within
//! tens of microseconds; that lateness, the load generator's own, is measured apart
//! ([`Pacing::own_lateness`]). The spinning keeps the load generator's core busy: its CPU
//! share says nothing in these runs.
//!
//! Connections are the closed loop's minimal HTTP/1.1 client ([`crate::raw`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use hdrhistogram::Histogram;
use http::HeaderName;
use tokio::time::Instant;

use crate::load::{Part, Report, Req, host_of, short, tags};
use crate::raw;

/// How long before a request is due its connection stops sleeping and starts yielding:
/// tokio's timer fires on whole milliseconds, so a sleep can end up to 1 ms late; 2 ms
/// leaves room for a busy runtime.
pub const SPIN_BEFORE: Duration = Duration::from_millis(2);

/// Largest lateness recorded: 60 s, in nanoseconds.
const MAX_NANOS: u64 = 60_000_000_000;

/// When each request of a paced run is due: request `k` at `k / rate` seconds from the
/// start; those due in the first `warmup` are sent but not counted, those due in the
/// following `duration` are counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Requests per second.
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
}

impl Schedule {
    /// When request `slot` is due, from the start.
    #[must_use]
    pub fn due(&self, slot: u64) -> Duration {
        Duration::from_secs_f64(slot as f64 / self.rate)
    }

    /// Requests due before the end of the run (warm-up and measured time).
    #[must_use]
    pub fn slots(&self) -> u64 {
        ((self.warmup + self.duration).as_secs_f64() * self.rate).ceil() as u64
    }

    /// Whether request `slot` is due within the measured time.
    #[must_use]
    pub fn counted(&self, slot: u64) -> bool {
        let due = self.due(slot);
        due >= self.warmup && due < self.warmup + self.duration
    }

    /// Requests due within the measured time.
    #[must_use]
    pub fn counted_slots(&self) -> u64 {
        (0..self.slots()).filter(|s| self.counted(*s)).count() as u64
    }
}

/// How a request met its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A connection was free before it was due and sent it on time.
    OnTime,
    /// Every connection was busy when it was due: it waited for one, and the wait counts.
    Queued,
}

impl Taken {
    /// Whether a request due at `due` and taken by a connection at `taken` was on time.
    #[must_use]
    pub fn at(due: Instant, taken: Instant) -> Self {
        if taken < due {
            Self::OnTime
        } else {
            Self::Queued
        }
    }
}

/// A paced run: `connections` connections sending `requests` in turn on `schedule`.
#[derive(Debug, Clone)]
pub struct Paced {
    pub addr: SocketAddr,
    pub connections: usize,
    pub schedule: Schedule,
    pub requests: Arc<Vec<Req>>,
    pub capture: Option<HeaderName>,
    /// How long after the end of the schedule requests still queued are sent; those left
    /// are counted as [`Pacing::unsent`].
    pub grace: Duration,
}

/// How well the run kept to its schedule (counted requests only).
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Requests due within the measured time.
    pub scheduled: u64,
    /// Sent on time by a connection that was waiting for them.
    pub on_time: u64,
    /// Taken after they were due, every connection having been busy.
    pub queued: u64,
    /// Still queued when the grace ran out: never sent.
    pub unsent: u64,
    /// How late the on-time requests were written (the load generator's own lateness),
    /// nanoseconds.
    pub own_lateness: Histogram<u64>,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            scheduled: 0,
            on_time: 0,
            queued: 0,
            unsent: 0,
            own_lateness: Histogram::new_with_bounds(1, MAX_NANOS, 3).expect("valid bounds"),
        }
    }
}

impl Pacing {
    /// Adds the counts of `other` (another connection or round) to these.
    pub fn add(&mut self, other: &Self) {
        self.scheduled += other.scheduled;
        self.on_time += other.on_time;
        self.queued += other.queued;
        self.unsent += other.unsent;
        let _ = self.own_lateness.add(&other.own_lateness);
    }

    /// A quantile of the load generator's own lateness, microseconds.
    #[must_use]
    pub fn own_lateness_us(&self, quantile: f64) -> f64 {
        if self.own_lateness.is_empty() {
            return f64::NAN;
        }
        self.own_lateness.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// What a paced run measured: latencies from the scheduled send, and the pacing.
#[derive(Debug, Clone)]
pub struct PacedReport {
    /// `elapsed` is the measured time; latencies run from each request's due time.
    pub report: Report,
    pub pacing: Pacing,
}

/// Waits until `due`: a sleep while it is more than [`SPIN_BEFORE`] away, then yields.
async fn wait_until(due: Instant) {
    if let Some(early) = due.checked_sub(SPIN_BEFORE)
        && Instant::now() < early
    {
        tokio::time::sleep_until(early).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

/// Runs a paced loop: opens every connection, then sends on the schedule.
///
/// # Errors
/// When a connection cannot be opened, or a task panics.
pub async fn paced_loop(run: Paced) -> Result<PacedReport> {
    let host = host_of(run.addr);
    let wire: Arc<Vec<Vec<u8>>> = Arc::new(run.requests.iter().map(|r| r.wire(&host)).collect());
    let n_tags = tags(&run.requests);
    let mut conns = Vec::with_capacity(run.connections);
    for _ in 0..run.connections {
        conns.push(raw::Conn::open(run.addr).await?);
    }
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let give_up = start + run.schedule.warmup + run.schedule.duration + run.grace;
    let slots = run.schedule.slots();
    let mut tasks = Vec::with_capacity(conns.len());
    for mut conn in conns {
        let (run, wire, next) = (run.clone(), wire.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut parts = vec![Part::default(); n_tags];
            let mut pacing = Pacing::default();
            loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                if slot >= slots {
                    break;
                }
                let due = start + run.schedule.due(slot);
                let counted = run.schedule.counted(slot);
                let taken = Taken::at(due, Instant::now());
                wait_until(due).await;
                let sent = Instant::now();
                if sent > give_up {
                    pacing.unsent += u64::from(counted);
                    continue;
                }
                let at = usize::try_from(slot).unwrap_or(0) % wire.len();
                let tag = run.requests[at].tag;
                let result = conn.exchange(&wire[at], run.capture.as_ref()).await;
                let done = Instant::now();
                if counted {
                    match taken {
                        Taken::OnTime => {
                            pacing.on_time += 1;
                            let late = u64::try_from((sent - due).as_nanos()).unwrap_or(MAX_NANOS);
                            let _ = pacing.own_lateness.record(late.clamp(1, MAX_NANOS));
                        }
                        Taken::Queued => pacing.queued += 1,
                    }
                }
                match result {
                    Ok(answer) => {
                        if counted {
                            parts[tag].record_answer(
                                done - due,
                                answer.status,
                                answer.body_bytes,
                                answer.captured,
                            );
                        }
                        if answer.close {
                            conn.reopen().await;
                        }
                    }
                    Err(e) => {
                        if counted {
                            parts[tag].error(&short(&e));
                        }
                        if !conn.reopen().await {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }
            (parts, pacing)
        }));
    }
    let mut report = Report {
        elapsed: run.schedule.duration,
        parts: vec![Part::default(); n_tags],
    };
    let mut pacing = Pacing {
        scheduled: run.schedule.counted_slots(),
        ..Pacing::default()
    };
    for task in tasks {
        let (parts, theirs) = task.await?;
        report.merge(&parts);
        pacing.add(&theirs);
    }
    Ok(PacedReport { report, pacing })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn schedule(rate: f64, warmup_ms: u64, duration_ms: u64) -> Schedule {
        Schedule {
            rate,
            warmup: Duration::from_millis(warmup_ms),
            duration: Duration::from_millis(duration_ms),
        }
    }

    #[test]
    fn request_k_is_due_k_over_rate_seconds_after_the_start() {
        let s = schedule(1000.0, 0, 1000);
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), Duration::from_millis(1));
        assert_eq!(s.due(2500), Duration::from_millis(2500));
    }

    #[test]
    fn only_requests_due_in_the_measured_time_are_counted() {
        let s = schedule(100.0, 1000, 2000);
        assert_eq!(s.slots(), 300);
        assert!(!s.counted(99), "due at 0.99 s, in the warm-up");
        assert!(s.counted(100), "due at 1 s, the first counted");
        assert!(s.counted(299));
        assert!(!s.counted(300), "due at 3 s, after the end");
        assert_eq!(s.counted_slots(), 200);
    }

    #[test]
    fn a_fractional_rate_rounds_the_last_request_up() {
        let s = schedule(2.5, 0, 1000);
        // Due at 0, 0.4 and 0.8 s.
        assert_eq!(s.slots(), 3);
        assert_eq!(s.counted_slots(), 3);
    }

    #[test]
    fn a_request_taken_after_it_was_due_is_queued() {
        let due = Instant::now();
        assert_eq!(
            Taken::at(due, due - Duration::from_micros(1)),
            Taken::OnTime
        );
        assert_eq!(Taken::at(due, due), Taken::Queued);
        assert_eq!(
            Taken::at(due, due + Duration::from_millis(5)),
            Taken::Queued
        );
    }

    /// A server answering `ok` at once, except that it holds the answer to its `stall_at`th
    /// request for `stall`.
    async fn stalling_server(stall_at: usize, stall: Duration) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut served = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let mut pending = Vec::new();
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        served += 1;
                        if served == stall_at {
                            tokio::time::sleep(stall).await;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_stall_is_charged_to_every_request_due_during_it() {
        // 1000 requests a second on one connection; the 300th answer (due at 0.3 s) is
        // held 100 ms, so the ~100 requests due meanwhile wait, and that wait counts.
        let addr = stalling_server(300, Duration::from_millis(100)).await;
        let run = Paced {
            addr,
            connections: 1,
            schedule: schedule(1000.0, 100, 500),
            requests: Arc::new(vec![Req::get("/", &[])]),
            capture: None,
            grace: Duration::from_secs(2),
        };
        let PacedReport { report, pacing } = paced_loop(run).await.unwrap();
        let total = report.total();
        assert_eq!(pacing.scheduled, 500);
        assert_eq!(total.answered + total.error_count(), 500);
        assert_eq!(total.statuses.get(&200), Some(&total.answered));
        assert!(pacing.queued >= 50, "queued {}", pacing.queued);
        assert!(total.ms(1.0) >= 95.0, "max {} ms", total.ms(1.0));
        // Timed from the actual send, one request in 500 would show the stall, and p99
        // would not; timed from the schedule, a tenth or more of them do.
        assert!(total.ms(0.9) >= 5.0, "p90 {} ms", total.ms(0.9));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_idle_server_is_paced_on_time() {
        let addr = stalling_server(usize::MAX, Duration::ZERO).await;
        let run = Paced {
            addr,
            connections: 4,
            schedule: schedule(2000.0, 50, 300),
            requests: Arc::new(vec![Req::get("/", &[])]),
            capture: None,
            grace: Duration::from_secs(2),
        };
        let PacedReport { report, pacing } = paced_loop(run).await.unwrap();
        assert_eq!(report.total().answered, 600);
        assert_eq!(pacing.unsent, 0);
        assert_eq!(pacing.on_time + pacing.queued, 600);
    }
}
