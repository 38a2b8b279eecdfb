//! `loadgen`: a closed-loop keep-alive HTTP/1.1 load generator.
//!
//! ```text
//! loadgen --url http://127.0.0.1:8080/conversations/ID [--url ...] [-H 'Name: value']...
//!         [-c 64] [-d 10] [--warmup 2] [--threads 1] [--capture cache-status]
//! ```
//! Prints one summary line (req/s, p50/p99/p99.9/max latency, statuses, errors). Run it
//! under `taskset -c 0` and the server under `taskset -c 1` on a 2-core machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use genesys_proxy_bench::Req;
use genesys_proxy_bench::load::{ClosedLoop, closed_loop};
use http::HeaderName;

fn main() -> Result<()> {
    let mut urls = Vec::new();
    let mut headers: Vec<(String, String)> = Vec::new();
    let (mut connections, mut duration, mut warmup, mut threads) =
        (64usize, 10.0f64, 2.0f64, 1usize);
    let mut capture = None;
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
            "-h" | "--help" => {
                println!(
                    "loadgen --url URL [--url URL]... [-H 'Name: value']... [-c 64] [-d 10] [--warmup 2] [--threads 1] [--capture HEADER]"
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
    let report = runtime.block_on(closed_loop(ClosedLoop {
        addr: addr.context("an address")?,
        connections,
        warmup: Duration::from_secs_f64(warmup),
        duration: Duration::from_secs_f64(duration),
        requests: Arc::new(requests),
        capture,
    }))?;
    println!("{}", report.summary());
    Ok(())
}
