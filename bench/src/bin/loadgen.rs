//! `loadgen`: a keep-alive HTTP/1.1 load generator, closed loop or paced.
//!
//! ```text
//! loadgen --url http://127.0.0.1:8080/conversations/ID [--url ...] [-H 'Name: value']...
//!         [-c 64] [-d 10] [--warmup 2] [--threads 1] [--capture cache-status] [--rate R]
//! ```
//! Prints one summary line (req/s, p50/p99/p99.9/max latency, statuses, errors). With
//! `--rate R` it sends R requests a second whatever the answers do and times each from its
//! scheduled send ([`genesys_proxy_bench::paced`]), and adds a second line on how well it
//! kept to the schedule. Run it under `taskset -c 0` and the server under `taskset -c 1`
//! on a 2-core machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use genesys_proxy_bench::Req;
use genesys_proxy_bench::load::{ClosedLoop, closed_loop};
use genesys_proxy_bench::paced::{Paced, Schedule, paced_loop};
use http::HeaderName;

fn main() -> Result<()> {
    let mut urls = Vec::new();
    let mut headers: Vec<(String, String)> = Vec::new();
    let (mut connections, mut duration, mut warmup, mut threads) =
        (64usize, 10.0f64, 2.0f64, 1usize);
    let mut capture = None;
    let mut rate: Option<f64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value after the flag");
        match arg.as_str() {
            "--url" => urls.push(value()?),
            "-H" | "--header" => {
                let v = value()?;
                let (n, val) = v.split_once(':').context("a header is Name: value")?;
                headers.push((n.trim().to_owned(), val.trim().to_owned()));
            }
            "-c" | "--connections" => connections = value()?.parse()?,
            "-d" | "--duration" => duration = value()?.parse()?,
            "--warmup" => warmup = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            "--capture" => capture = Some(HeaderName::from_bytes(value()?.as_bytes())?),
            "--rate" => rate = Some(value()?.parse()?),
            "-h" | "--help" => {
                println!(
                    "loadgen --url URL [--url URL]... [-H 'Name: value']... [-c 64] [-d 10] [--warmup 2] [--threads 1] [--capture HEADER] [--rate R]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if urls.is_empty() {
        bail!("give at least one --url");
    }
    let mut addr: Option<SocketAddr> = None;
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut requests = Vec::new();
    for url in &urls {
        let uri: http::Uri = url.parse()?;
        let a: SocketAddr = uri
            .authority()
            .context("an http://IP:PORT/ URL")?
            .as_str()
            .parse()
            .context("the URL's host must be IP:PORT")?;
        if addr.is_some_and(|x| x != a) {
            bail!("every --url must have the same host");
        }
        addr = Some(a);
        requests.push(Req::get(
            uri.path_and_query().map_or("/", |p| p.as_str()),
            &header_refs,
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    let addr = addr.context("an address")?;
    let (warmup, duration) = (
        Duration::from_secs_f64(warmup),
        Duration::from_secs_f64(duration),
    );
    let requests = Arc::new(requests);
    if let Some(rate) = rate {
        let paced = runtime.block_on(paced_loop(Paced {
            addr,
            connections,
            schedule: Schedule {
                rate,
                warmup,
                duration,
            },
            requests,
            capture,
            grace: Duration::from_secs(5),
        }))?;
        let p = &paced.pacing;
        println!("{}", paced.report.summary());
        println!(
            "paced at {rate} req/s: {} due, {} sent on time (own lateness p50 {:.0} us, p99 {:.0} us, max {:.0} us), {} queued behind busy connections, {} never sent",
            p.scheduled,
            p.on_time,
            p.own_lateness_us(0.5),
            p.own_lateness_us(0.99),
            p.own_lateness_us(1.0),
            p.queued,
            p.unsent
        );
        return Ok(());
    }
    let report = runtime.block_on(closed_loop(ClosedLoop {
        addr,
        connections,
        warmup,
        duration,
        requests,
        capture,
    }))?;
    println!("{}", report.summary());
    Ok(())
}
