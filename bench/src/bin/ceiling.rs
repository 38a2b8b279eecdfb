//! `ceiling`: fixed bytes from a bare `tower::service_fn`, with no router, no extractor
//! and no middleware: the ceiling a cache hit of the proxy can approach on the proxy's own
//! serving stack (`axum::serve` over hyper, the same tokio runtime, `TCP_NODELAY`).
//!
//! ```text
//! ceiling --listen 127.0.0.1:9300 --dir DIR
//! ```
//! DIR holds `summary.body`/`summary.headers` and `full.body`/`full.headers` (headers as
//! `Name: value` lines), written by `bench-run` from the proxy's own answers to a hit.
//! `GET /healthz` answers 200; any other request the full document when its query is
//! `view=full`, else the summary, with the proxy's headers (hyper adds `date` and
//! `content-length`, as it does for the proxy). Everything an answer needs is built once
//! at start-up: a request costs a comparison, a clone of the header map and of the body's
//! handle, and what the HTTP stack itself costs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use bytes::Bytes;

/// One prebuilt answer: its body and its headers.
struct Answer {
    body: Bytes,
    headers: HeaderMap,
}

impl Answer {
    fn load(dir: &Path, name: &str) -> Result<Self> {
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
        Ok(Self {
            body: Bytes::from(body),
            headers,
        })
    }

    fn response(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.headers_mut() = self.headers.clone();
        response
    }
}

/// The three answers the ceiling gives.
struct Answers {
    summary: Answer,
    full: Answer,
    healthy: Answer,
}

impl Answers {
    fn answer(&self, request: &Request) -> Response {
        if request.uri().path() == "/healthz" {
            self.healthy.response()
        } else if request.uri().query() == Some("view=full") {
            self.full.response()
        } else {
            self.summary.response()
        }
    }
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
    let answers = Arc::new(Answers {
        summary: Answer::load(Path::new(&dir), "summary")?,
        full: Answer::load(Path::new(&dir), "full")?,
        healthy: Answer {
            body: Bytes::from_static(b"ok"),
            headers: HeaderMap::new(),
        },
    });
    let listen = listen.context("--listen ADDR")?;
    // The same runtime as the proxy's `#[tokio::main]`: one worker per CPU it may use.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let service = tower::service_fn(move |request: Request| {
            let response = answers.answer(&request);
            std::future::ready(Ok::<_, Infallible>(response))
        });
        // As the proxy serves its `ProxyService`: a make-service over a plain service.
        let make_service = axum::ServiceExt::<Request>::into_make_service(service);
        // The proxy's own socket options: TCP_NODELAY on every connection.
        let listener =
            axum::serve::ListenerExt::tap_io(tokio::net::TcpListener::bind(listen).await?, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
        axum::serve(listener, make_service).await?;
        Ok(())
    })
}
