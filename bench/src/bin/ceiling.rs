//! `ceiling`: a bare axum handler serving fixed bytes: the ceiling a cache hit of the proxy
//! can approach (same runtime, same HTTP stack, no middleware, no lookup).
//!
//! ```text
//! ceiling --listen 127.0.0.1:9300 --dir DIR
//! ```
//! DIR holds `summary.body`/`summary.headers` and `full.body`/`full.headers` (headers as
//! `Name: value` lines), written by `bench-run` from the proxy's own answers.
//! `GET /conversations/{anything}` answers the summary, `?view=full` the full document,
//! with the same headers as the proxy's hit; `GET /healthz` answers 200.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;

#[derive(Clone)]
struct Fixed {
    summary: (Bytes, HeaderMap),
    full: (Bytes, HeaderMap),
}

fn load(dir: &Path, name: &str) -> Result<(Bytes, HeaderMap)> {
    let body = std::fs::read(dir.join(format!("{name}.body")))
        .with_context(|| format!("{}/{name}.body", dir.display()))?;
    let text = std::fs::read_to_string(dir.join(format!("{name}.headers")))
        .with_context(|| format!("{}/{name}.headers", dir.display()))?;
    let mut headers = HeaderMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (n, v) = line.split_once(':').context("Name: value")?;
        headers.append(
            HeaderName::from_bytes(n.trim().as_bytes())?,
            HeaderValue::from_str(v.trim())?,
        );
    }
    Ok((Bytes::from(body), headers))
}

/// The fixed answer. The state is shared (`Arc`: axum clones the state for every
/// request), the query read in place, and the headers inserted into a map sized once:
/// what a hit could cost at best, so the proxy is measured against a tight ceiling.
async fn conversation(State(fixed): State<Arc<Fixed>>, request: Request) -> Response {
    let (body, headers) = if request.uri().query() == Some("view=full") {
        &fixed.full
    } else {
        &fixed.summary
    };
    let mut response = Response::new(Body::from(body.clone()));
    let map = response.headers_mut();
    map.reserve(headers.len());
    for (name, value) in headers {
        map.insert(name.clone(), value.clone());
    }
    response
}

fn main() -> Result<()> {
    let mut listen: Option<SocketAddr> = None;
    let mut dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = Some(args.next().context("an address")?.parse()?),
            "--dir" => dir = Some(args.next().context("a directory")?),
            other => bail!("unknown argument {other:?}: ceiling --listen ADDR --dir DIR"),
        }
    }
    let dir = dir.context("--dir DIR")?;
    let fixed = Fixed {
        summary: load(Path::new(&dir), "summary")?,
        full: load(Path::new(&dir), "full")?,
    };
    let listen = listen.context("--listen ADDR")?;
    // The same runtime as the proxy's `#[tokio::main]`: one worker per CPU it may use.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Router::new()
            .route("/conversations/{*id}", get(conversation))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(Arc::new(fixed));
        // The proxy's own socket options: TCP_NODELAY on every connection.
        let listener =
            axum::serve::ListenerExt::tap_io(tokio::net::TcpListener::bind(listen).await?, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
        axum::serve(listener, app).await?;
        Ok(())
    })
}
