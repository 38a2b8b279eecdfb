//! One attempt of an upstream call: a budget permit, the token, one HTTP exchange (when
//! enough of the deadline is left), its outcome reported to the budget (a 429 freezes it,
//! the rate headers pace it), and the answer classified into an [`Attempt`]. Whether to
//! try again is not decided here: the retry policy (`upstream::retry`) decides that.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use tokio::time::Instant;
use url::Url;

use super::{Fetched, GenesysClient};
use crate::upstream::budget::{Demand, Outcome, Permit, RateHeaders};
use crate::upstream::context::CallContext;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::error::UpstreamError;
use crate::upstream::models::ErrorBody;
use crate::upstream::retry::Retryable;
use crate::upstream::token::Bearer;

/// One logical request: the endpoint, its URL and its JSON body.
#[derive(Debug)]
pub(super) struct UpstreamRequest {
    pub(super) endpoint: Endpoint,
    pub(super) url: Url,
    pub(super) body: Option<Bytes>,
}

/// What one attempt came to.
#[derive(Debug)]
pub(super) enum Attempt {
    /// Genesys answered with a success.
    Done(Fetched<Bytes>),
    /// A failure no retry cures.
    Failed(UpstreamError),
    /// A failure another attempt may cure.
    Retryable(Retryable),
    /// Genesys answered 401 to the token of `generation`; `code` is its `ErrorBody` code.
    Unauthorized { generation: u64, code: String },
}

/// What the attempts of one logical call have spent so far.
#[derive(Debug, Default)]
pub(super) struct Spent {
    pub(super) queue_wait: Duration,
    /// HTTP exchanges made.
    pub(super) attempts: u32,
}

/// Genesys' `inin-ratelimit-*` headers, when all three are there and readable.
fn rate_headers(headers: &reqwest::header::HeaderMap) -> Option<RateHeaders> {
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    Some(RateHeaders {
        count: u32::try_from(number("inin-ratelimit-count")?).ok()?,
        allowed: u32::try_from(number("inin-ratelimit-allowed")?).ok()?,
        reset: Duration::from_secs(number("inin-ratelimit-reset")?),
    })
}

/// `Retry-After` in whole seconds (the form Genesys sends).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl GenesysClient {
    /// One attempt: a budget permit, the token, one HTTP exchange if enough of the
    /// deadline is left, its outcome reported to the budget, and the answer classified.
    pub(super) async fn attempt(
        &self,
        request: &UpstreamRequest,
        ctx: &CallContext,
        min_call: Duration,
        spent: &mut Spent,
    ) -> Attempt {
        let permit = match &ctx.urgency {
            Some(urgency) => self.budget.acquire_raisable(urgency.clone()).await,
            None => self.budget.acquire(ctx.demand()).await,
        };
        let permit = match permit {
            Ok(permit) => permit,
            Err(refusal) => {
                let class = ctx.demand().class;
                self.stats
                    .refused(class, request.endpoint, refusal.retry_after());
                return Attempt::Failed(refusal.into());
            }
        };
        // Where the demand stands now that it is granted (joiners may have raised it).
        let demand = ctx.demand();
        spent.queue_wait += permit.waited;
        self.stats.waited(demand.class, permit.waited);
        let bearer = match self.tokens.bearer().await {
            Ok(bearer) => bearer,
            Err(error) => {
                permit.finish(Outcome::Responded(None));
                return Attempt::Failed(error.into());
            }
        };
        let remaining = ctx
            .demand()
            .deadline
            .saturating_duration_since(Instant::now());
        // A call with only a few milliseconds left would spend quota and answer nobody.
        if remaining.is_zero() || remaining < min_call {
            permit.finish(Outcome::Responded(None));
            return Attempt::Failed(UpstreamError::Overloaded {
                retry_after: Duration::from_secs(1),
            });
        }
        spent.attempts += 1;
        let sent = self
            .send(
                request,
                &bearer,
                remaining,
                &demand,
                &permit,
                spent.attempts,
            )
            .await;
        match sent {
            Err(error) => {
                permit.finish(Outcome::NoResponse);
                Attempt::Retryable(Retryable::Transient(UpstreamError::Unavailable {
                    detail: self.describe(&error, &request.url),
                }))
            }
            Ok(response) => {
                self.answer(response, permit, &request.url, bearer.generation)
                    .await
            }
        }
    }

    /// Sends the request once with `bearer`, within `remaining`, in a span naming the
    /// endpoint, the demand and the attempt; counts the exchange.
    async fn send(
        &self,
        request: &UpstreamRequest,
        bearer: &Bearer,
        remaining: Duration,
        demand: &Demand,
        permit: &Permit,
        attempt: u32,
    ) -> Result<reqwest::Response, reqwest_middleware::Error> {
        let mut builder = self
            .http
            .request(request.endpoint.method(), request.url.clone())
            .header(reqwest::header::AUTHORIZATION, bearer.header_value())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.settings.request_timeout().min(remaining));
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let started = Instant::now();
        let span = tracing::info_span!(
            "genesys.call",
            endpoint = request.endpoint.as_str(),
            class = demand.class.as_str(),
            client = %demand.client,
            attempt,
            queue_wait_ms = u64::try_from(permit.waited.as_millis()).unwrap_or(u64::MAX),
        );
        crate::access_log::count_upstream_call();
        let sent = tracing::Instrument::instrument(builder.send(), span).await;
        self.stats.exchange(
            request.endpoint,
            sent.as_ref().ok().map(|r| r.status().as_u16()),
            started.elapsed(),
        );
        sent
    }

    /// Reports what Genesys answered to the budget (a 429 freezes it), reads the body and
    /// classifies the answer.
    async fn answer(
        &self,
        response: reqwest::Response,
        permit: Permit,
        url: &Url,
        generation: u64,
    ) -> Attempt {
        let status = response.status();
        let headers = response.headers();
        let rate = rate_headers(headers);
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after(headers)
                .or(rate.map(|r| r.reset))
                .unwrap_or(Duration::from_secs(1));
            permit.finish(Outcome::RateLimited {
                retry_after: wait,
                headers: rate,
            });
            tracing::warn!(
                retry_after_secs = wait.as_secs(),
                "Genesys answered 429; the budget freezes"
            );
            // The budget holds the next attempt until the freeze ends.
            return Attempt::Retryable(Retryable::RateLimited(UpstreamError::RateLimited {
                retry_after: wait,
            }));
        }
        permit.finish(Outcome::Responded(rate));
        let correlation_id = headers
            .get("inin-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match response.bytes().await {
            Err(error) => Attempt::Retryable(Retryable::Transient(UpstreamError::Unavailable {
                detail: self.egress.describe(&error, url),
            })),
            Ok(bytes) => self.classify(status, bytes, correlation_id, generation),
        }
    }

    /// A transport error described without the URL's query or any header, naming the
    /// egress proxy when it failed.
    fn describe(&self, error: &reqwest_middleware::Error, url: &Url) -> String {
        match error {
            reqwest_middleware::Error::Reqwest(error) => self.egress.describe(error, url),
            reqwest_middleware::Error::Middleware(_) => "a middleware failed".to_owned(),
        }
    }

    /// What an answer other than 429 means; an answer that shows Genesys authenticated the
    /// token ends any remembered refusal of fresh tokens.
    fn classify(
        &self,
        status: StatusCode,
        bytes: Bytes,
        correlation_id: Option<String>,
        generation: u64,
    ) -> Attempt {
        let error_body = || serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_default();
        if status.is_success() || matches!(status.as_u16(), 400 | 404) {
            // Genesys authenticated the request.
            self.tokens.token_accepted();
        }
        match status.as_u16() {
            200..=299 => Attempt::Done(Fetched {
                size: bytes.len(),
                body: bytes,
                correlation_id,
                queue_wait: Duration::ZERO,
                attempts: 0,
            }),
            401 => Attempt::Unauthorized {
                generation,
                code: error_body().code,
            },
            404 => Attempt::Failed(UpstreamError::NotFound),
            403 => Attempt::Failed(UpstreamError::Forbidden {
                message: error_body().message,
            }),
            400 => {
                let body = error_body();
                Attempt::Failed(UpstreamError::BadRequest {
                    code: body.code,
                    message: body.message,
                })
            }
            502..=504 => Attempt::Retryable(Retryable::Transient(UpstreamError::Unavailable {
                detail: format!("Genesys answered {status}"),
            })),
            500 => Attempt::Failed(UpstreamError::Unavailable {
                detail: format!("Genesys answered {status}"),
            }),
            other => Attempt::Failed(UpstreamError::Unexpected { status: other }),
        }
    }
}
