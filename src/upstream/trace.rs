//! A `reqwest-middleware` layer that wraps every HTTP exchange with Genesys in a tracing
//! span carrying the method, the path (never the query or headers), the status and
//! Genesys' `inin-correlation-id`, so one upstream call can be found in Genesys support
//! tickets from the proxy's logs and traces. It also sends the span's W3C `traceparent`.

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};
use tracing::Instrument;

use crate::egress::describe_transport_error;

/// The tracing middleware.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceUpstream;

#[async_trait::async_trait]
impl Middleware for TraceUpstream {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let span = tracing::info_span!(
            "genesys.http",
            http.method = %request.method(),
            url.path = %request.url().path(),
            http.status = tracing::field::Empty,
            inin.correlation_id = tracing::field::Empty,
        );
        span.in_scope(|| crate::telemetry::inject_current(request.headers_mut()));
        let result = next.run(request, extensions).instrument(span.clone()).await;
        match &result {
            Ok(response) => {
                span.record("http.status", response.status().as_u16());
                if let Some(id) = response
                    .headers()
                    .get("inin-correlation-id")
                    .and_then(|v| v.to_str().ok())
                {
                    span.record("inin.correlation_id", id);
                }
            }
            Err(error) => {
                span.in_scope(
                    || tracing::debug!(error = %describe(error), "upstream exchange failed"),
                );
            }
        }
        result
    }
}

/// A transport error described without the URL's query or any header.
fn describe(error: &reqwest_middleware::Error) -> String {
    match error {
        reqwest_middleware::Error::Reqwest(error) => describe_transport_error(error),
        reqwest_middleware::Error::Middleware(_) => "a middleware failed".to_owned(),
    }
}
