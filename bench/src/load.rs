//! The load generator.
//!
//! Every connection is a keep-alive HTTP/1.1 connection (no pipelining) that sends its
//! next request as soon as the previous answer's body has been read whole. The closed
//! loop, which measures the highest rates, writes pre-serialised requests and parses
//! answers with `httparse` on the connection's own task ([`crate::raw`]), so that the load
//! generator costs well under the servers it measures; the other modes here use hyper's
//! client connection. Latency is measured from just before the request is written to the
//! last byte of the body, and recorded in microseconds into an HDR histogram (3 significant
//! digits). Modes:
//!
//! - [`closed_loop`]: N connections for a fixed time after a warm-up, cycling through a
//!   list of requests (the throughput runs);
//! - [`each_once`]: N connections sharing one list, each request sent exactly once
//!   (filling a cache with distinct ids);
//! - [`all_at_once`]: N connections opened first, then one request each released at the
//!   same instant (the coalescing run);
//! - [`OpenLoop`]: requests started at a fixed rate whatever the answers do, each on a
//!   pooled connection, with a client time-out (the budget run); a request may carry a
//!   [`Tally`] that counts things in its 200 answer's body (say, report hits).
//!
//! The paced loop of the latency runs (a fixed rate on raw connections, timed from each
//! request's scheduled send) is [`crate::paced`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::HOST;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::raw;

/// Largest latency recorded: 60 s, in microseconds.
const MAX_MICROS: u64 = 60_000_000;

/// Counts things in the body of a 200 answer (say, hits and hydrated hits of a report
/// page), as named counts that [`Part::tallies`] sums. Only [`OpenLoop`] applies it.
pub type Tally = fn(&[u8]) -> Vec<(&'static str, u64)>;

/// One request to send.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    /// Path and query.
    pub uri: Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// Which part of the report its answer is counted in.
    pub tag: usize,
    /// What to count in a 200 answer's body ([`OpenLoop`] only).
    pub tally: Option<Tally>,
}

impl Req {
    /// A GET of `path_and_query` with `headers`.
    ///
    /// # Panics
    /// On a path or header that is not valid HTTP.
    #[must_use]
    pub fn get(path_and_query: &str, headers: &[(&str, &str)]) -> Self {
        Self {
            method: Method::GET,
            uri: path_and_query.parse().expect("a valid path"),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        HeaderName::from_bytes(n.as_bytes()).expect("a header name"),
                        HeaderValue::from_str(v).expect("a header value"),
                    )
                })
                .collect(),
            body: Bytes::new(),
            tag: 0,
            tally: None,
        }
    }

    /// A POST of a JSON body.
    #[must_use]
    pub fn post_json(path: &str, headers: &[(&str, &str)], body: String) -> Self {
        let mut req = Self::get(path, headers);
        req.method = Method::POST;
        req.headers.push((
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ));
        req.body = Bytes::from(body);
        req
    }

    /// The same request counted under `tag`.
    #[must_use]
    pub fn tagged(mut self, tag: usize) -> Self {
        self.tag = tag;
        self
    }

    /// The same request, its 200 answers' bodies counted by `tally` ([`OpenLoop`] only).
    #[must_use]
    pub fn tallied(mut self, tally: Tally) -> Self {
        self.tally = Some(tally);
        self
    }

    /// The request as it goes on the wire, with `Host: host`.
    pub(crate) fn wire(&self, host: &HeaderValue) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.uri.to_string().as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !self.body.is_empty() || self.method == Method::POST {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    fn build(&self, host: &HeaderValue) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, host.clone());
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        request
    }
}

/// Answers of one tag.
#[derive(Debug, Clone)]
pub struct Part {
    /// Answers received (any status).
    pub answered: u64,
    /// Latency of answered requests, microseconds.
    pub latency: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer, by reason.
    pub errors: BTreeMap<String, u64>,
    pub body_bytes: u64,
    /// Values of the captured response header (e.g. `cache-status`).
    pub captured: BTreeMap<String, u64>,
    /// Sums of the requests' [`Tally`] counts over their 200 answers.
    pub tallies: BTreeMap<&'static str, u64>,
}

impl Default for Part {
    fn default() -> Self {
        Self {
            answered: 0,
            latency: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds"),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            body_bytes: 0,
            captured: BTreeMap::new(),
            tallies: BTreeMap::new(),
        }
    }
}

impl Part {
    fn record(&mut self, latency: Duration, outcome: &Outcome) {
        self.record_answer(
            latency,
            outcome.status,
            outcome.body_bytes,
            outcome.captured.as_deref(),
        );
        for (name, n) in &outcome.tallies {
            *self.tallies.entry(name).or_default() += n;
        }
    }

    /// Counts one answer (for callers that send their own requests).
    pub fn record_answer(
        &mut self,
        latency: Duration,
        status: u16,
        body_bytes: u64,
        captured: Option<&str>,
    ) {
        self.answered += 1;
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
        let _ = self.latency.record(micros.clamp(1, MAX_MICROS));
        *self.statuses.entry(status).or_default() += 1;
        self.body_bytes += body_bytes;
        if let Some(value) = captured {
            match self.captured.get_mut(value) {
                Some(count) => *count += 1,
                None => {
                    self.captured.insert(value.to_owned(), 1);
                }
            }
        }
    }

    /// Counts one request that got no answer.
    pub fn error(&mut self, reason: &str) {
        *self.errors.entry(reason.to_owned()).or_default() += 1;
    }

    fn merge(&mut self, other: &Self) {
        self.answered += other.answered;
        let _ = self.latency.add(&other.latency);
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.body_bytes += other.body_bytes;
        for (k, v) in &other.captured {
            *self.captured.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.tallies {
            *self.tallies.entry(k).or_default() += v;
        }
    }

    /// A latency quantile in milliseconds.
    #[must_use]
    pub fn ms(&self, quantile: f64) -> f64 {
        if self.latency.is_empty() {
            return f64::NAN;
        }
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Requests without an answer.
    #[must_use]
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The measured time (the fixed duration, or first start to last answer).
    pub elapsed: Duration,
    /// One part per tag.
    pub parts: Vec<Part>,
}

impl Report {
    /// Every tag together.
    #[must_use]
    pub fn total(&self) -> Part {
        let mut total = Part::default();
        for part in &self.parts {
            total.merge(part);
        }
        total
    }

    /// Answers per second.
    #[must_use]
    pub fn rps(&self) -> f64 {
        self.total().answered as f64 / self.elapsed.as_secs_f64()
    }

    /// Adds the answers of `other` (another round, say) to these, and its measured time.
    pub fn add(&mut self, other: &Self) {
        self.merge(&other.parts);
        self.elapsed += other.elapsed;
    }

    pub(crate) fn merge(&mut self, parts: &[Part]) {
        if self.parts.len() < parts.len() {
            self.parts.resize_with(parts.len(), Part::default);
        }
        for (mine, theirs) in self.parts.iter_mut().zip(parts) {
            mine.merge(theirs);
        }
    }

    /// A one-line summary.
    #[must_use]
    pub fn summary(&self) -> String {
        let t = self.total();
        format!(
            "{} answers in {:.2} s = {:.0} req/s; p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms; statuses {:?}; errors {:?}; {:.0} body bytes/answer; captured {:?}",
            t.answered,
            self.elapsed.as_secs_f64(),
            self.rps(),
            t.ms(0.5),
            t.ms(0.99),
            t.ms(0.999),
            t.ms(1.0),
            t.statuses,
            t.errors,
            t.body_bytes as f64 / t.answered.max(1) as f64,
            t.captured,
        )
    }
}

struct Outcome {
    status: u16,
    body_bytes: u64,
    captured: Option<String>,
    tallies: Vec<(&'static str, u64)>,
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("handshake")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn exchange(
    sender: &mut Sender,
    req: &Req,
    host: &HeaderValue,
    capture: Option<&HeaderName>,
) -> Result<Outcome> {
    sender.ready().await?;
    let response = sender.send_request(req.build(host)).await?;
    let status = response.status().as_u16();
    let captured = capture
        .and_then(|name| response.headers().get(name))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = response.into_body();
    let mut body_bytes = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            body_bytes += data.len() as u64;
        }
    }
    Ok(Outcome {
        status,
        body_bytes,
        captured,
        tallies: Vec::new(),
    })
}

pub(crate) fn tags(requests: &[Req]) -> usize {
    requests.iter().map(|r| r.tag + 1).max().unwrap_or(1)
}

pub(crate) fn host_of(addr: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&addr.to_string()).expect("an address is a valid host")
}

/// A closed-loop run: `connections` connections for `warmup` (not counted) then
/// `duration` (counted), cycling through `requests`.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    pub addr: SocketAddr,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub requests: Arc<Vec<Req>>,
    pub capture: Option<HeaderName>,
}

/// Runs a closed loop.
///
/// # Errors
/// When no connection could be opened.
pub async fn closed_loop(run: ClosedLoop) -> Result<Report> {
    let host = host_of(run.addr);
    let start = Instant::now();
    let measure_from = start + run.warmup;
    let end = measure_from + run.duration;
    let n_tags = tags(&run.requests);
    // Serialised once for every connection (a many-id run lists 10 000 requests).
    let wire: Arc<Vec<Vec<u8>>> = Arc::new(run.requests.iter().map(|r| r.wire(&host)).collect());
    let mut tasks = Vec::with_capacity(run.connections);
    for c in 0..run.connections {
        let run = run.clone();
        let wire = wire.clone();
        tasks.push(tokio::spawn(async move {
            let mut parts = vec![Part::default(); n_tags];
            let mut conn = match raw::Conn::open(run.addr).await {
                Ok(c) => c,
                Err(e) => {
                    parts[0].error(&format!("connect: {e}"));
                    return parts;
                }
            };
            // Connections start spread over the list, not on neighbouring requests.
            let mut i = c * run.requests.len() / run.connections.max(1);
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let at = i % run.requests.len();
                let tag = run.requests[at].tag;
                i += 1;
                let result = conn.exchange(&wire[at], run.capture.as_ref()).await;
                let counted = t0 >= measure_from;
                match result {
                    Ok(answer) => {
                        if counted {
                            parts[tag].record_answer(
                                t0.elapsed(),
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
            parts
        }));
    }
    let mut report = Report {
        elapsed: run.duration,
        parts: vec![Part::default(); n_tags],
    };
    for task in tasks {
        report.merge(&task.await?);
    }
    Ok(report)
}

/// Sends every request of `requests` exactly once over `connections` connections.
///
/// # Errors
/// When a task panics.
pub async fn each_once(
    addr: SocketAddr,
    connections: usize,
    requests: Arc<Vec<Req>>,
    capture: Option<HeaderName>,
) -> Result<Report> {
    let host = host_of(addr);
    let next = Arc::new(AtomicUsize::new(0));
    let n_tags = tags(&requests);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (requests, next, host, capture) = (
            requests.clone(),
            next.clone(),
            host.clone(),
            capture.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut parts = vec![Part::default(); n_tags];
            let mut sender = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { break };
                if sender.is_none() {
                    sender = connect(addr).await.ok();
                }
                let Some(s) = sender.as_mut() else {
                    parts[req.tag].error("connect");
                    continue;
                };
                let t0 = Instant::now();
                match exchange(s, req, &host, capture.as_ref()).await {
                    Ok(outcome) => parts[req.tag].record(t0.elapsed(), &outcome),
                    Err(e) => {
                        parts[req.tag].error(&short(&e));
                        sender = None;
                    }
                }
            }
            parts
        }));
    }
    let mut report = Report::default();
    for task in tasks {
        report.merge(&task.await?);
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Opens one connection per request, waits until all are open, then sends every request
/// at the same instant.
///
/// # Errors
/// When a task panics.
pub async fn all_at_once(
    addr: SocketAddr,
    requests: Vec<Req>,
    capture: Option<HeaderName>,
) -> Result<Report> {
    let host = host_of(addr);
    let n_tags = tags(&requests);
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len() + 1));
    let mut tasks = Vec::with_capacity(requests.len());
    for req in requests {
        let (barrier, host, capture) = (barrier.clone(), host.clone(), capture.clone());
        tasks.push(tokio::spawn(async move {
            let mut parts = vec![Part::default(); n_tags];
            let sender = connect(addr).await;
            barrier.wait().await;
            match sender {
                Ok(mut s) => {
                    let t0 = Instant::now();
                    match exchange(&mut s, &req, &host, capture.as_ref()).await {
                        Ok(outcome) => parts[req.tag].record(t0.elapsed(), &outcome),
                        Err(e) => parts[req.tag].error(&short(&e)),
                    }
                }
                Err(e) => parts[req.tag].error(&short(&e)),
            }
            parts
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut report = Report::default();
    for task in tasks {
        report.merge(&task.await?);
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// An open-loop run in progress: request `i` starts at `start + i / rate` whatever the
/// earlier ones are doing.
#[derive(Debug)]
pub struct OpenLoop {
    sending: tokio::task::JoinHandle<Vec<tokio::task::JoinHandle<()>>>,
    report: Arc<Mutex<Report>>,
    start: Instant,
}

impl OpenLoop {
    /// Starts sending `requests` to `base` (`http://host:port`) at `rate` per second, each
    /// with `timeout`.
    #[must_use]
    pub fn start(base: &str, requests: Vec<Req>, rate: f64, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(connector);
        let n_tags = tags(&requests);
        let report = Arc::new(Mutex::new(Report {
            elapsed: Duration::ZERO,
            parts: vec![Part::default(); n_tags],
        }));
        let start = Instant::now();
        let base: Uri = base.parse().expect("a base URL");
        let host = HeaderValue::from_str(base.authority().expect("an authority").as_str())
            .expect("a host");
        let interval = Duration::from_secs_f64(1.0 / rate);
        let shared = report.clone();
        let sending = tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(requests.len());
            for (i, req) in requests.into_iter().enumerate() {
                tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
                let (client, report, host, base) =
                    (client.clone(), shared.clone(), host.clone(), base.clone());
                tasks.push(tokio::spawn(async move {
                    let mut request = req.build(&host);
                    let mut parts = base.clone().into_parts();
                    parts.path_and_query = req.uri.path_and_query().cloned();
                    *request.uri_mut() = Uri::from_parts(parts).expect("a URL");
                    let t0 = Instant::now();
                    let call = async {
                        let response = client.request(request).await?;
                        let status = response.status().as_u16();
                        let body = response.into_body().collect().await?.to_bytes();
                        let tallies = match req.tally {
                            Some(tally) if status == 200 => tally(&body),
                            _ => Vec::new(),
                        };
                        Ok::<_, anyhow::Error>(Outcome {
                            status,
                            body_bytes: body.len() as u64,
                            captured: None,
                            tallies,
                        })
                    };
                    let result = tokio::time::timeout(timeout, call).await;
                    let latency = t0.elapsed();
                    let mut report = report.lock().await;
                    let part = &mut report.parts[req.tag];
                    match result {
                        Ok(Ok(outcome)) => part.record(latency, &outcome),
                        Ok(Err(e)) => part.error(&short(&e)),
                        Err(_) => part.error("client time-out"),
                    }
                }));
            }
            tasks
        });
        Self {
            sending,
            report,
            start,
        }
    }

    /// Waits until the last request has been started; returns the answers-in-flight handle.
    ///
    /// # Errors
    /// When the sending task panicked.
    pub async fn sent(self) -> Result<Draining> {
        let tasks = self.sending.await?;
        Ok(Draining {
            tasks,
            report: self.report,
            start: self.start,
        })
    }
}

/// An open-loop run whose requests have all been started.
#[derive(Debug)]
pub struct Draining {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    report: Arc<Mutex<Report>>,
    start: Instant,
}

impl Draining {
    /// Waits for every answer (each bounded by the client time-out).
    ///
    /// # Errors
    /// When a task panicked.
    pub async fn finish(self) -> Result<Report> {
        for task in self.tasks {
            task.await?;
        }
        let mut report = self.report.lock().await.clone();
        report.elapsed = self.start.elapsed();
        Ok(report)
    }
}

pub(crate) fn short(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part_of(micros: impl IntoIterator<Item = u64>) -> Part {
        let mut part = Part::default();
        for us in micros {
            part.record_answer(Duration::from_micros(us), 200, 10, None);
        }
        part
    }

    #[test]
    fn latency_quantiles_are_read_in_milliseconds_within_three_digits() {
        let part = part_of(1..=1000);
        assert!((part.ms(0.5) - 0.5).abs() <= 0.001, "p50 {}", part.ms(0.5));
        assert!(
            (part.ms(0.99) - 0.99).abs() <= 0.001,
            "p99 {}",
            part.ms(0.99)
        );
        assert!((part.ms(1.0) - 1.0).abs() <= 0.001, "max {}", part.ms(1.0));
    }

    #[test]
    fn an_empty_part_has_no_quantile() {
        assert!(Part::default().ms(0.99).is_nan());
    }

    #[test]
    fn merged_rounds_give_the_quantiles_of_all_their_answers() {
        // Two rounds: 990 fast answers and 10 slow ones. The p99 of all 1000 answers is
        // in the fast group; taking one round's p99 would report either 0.1 or 50 ms.
        let mut report = Report::default();
        report.merge(&[part_of(std::iter::repeat_n(100, 990))]);
        report.merge(&[part_of(std::iter::repeat_n(50_000, 10))]);
        let total = report.total();
        assert_eq!(total.answered, 1000);
        assert!(
            (total.ms(0.99) - 0.1).abs() <= 0.001,
            "p99 {}",
            total.ms(0.99)
        );
        assert!(total.ms(0.995) >= 49.9, "p99.5 {}", total.ms(0.995));
    }

    #[test]
    fn the_wire_form_is_a_complete_http11_request() {
        let req = Req::get(
            "/conversations/x?view=full",
            &[("authorization", "Bearer k")],
        );
        let wire = req.wire(&HeaderValue::from_static("127.0.0.1:1"));
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "GET /conversations/x?view=full HTTP/1.1\r\nhost: 127.0.0.1:1\r\nauthorization: Bearer k\r\n\r\n"
        );
    }
}
