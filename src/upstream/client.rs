//! [`GenesysClient`]: typed calls to the Genesys Platform API, each one passing through
//! the budget and carrying the shared token.
//!
//! Every call: waits for a budget permit (refused at once if its deadline cannot be met),
//! takes the bearer token, sends with a timeout no longer than what is left of the
//! deadline (and not at all when less than the budget's minimum useful call time is
//! left), reports the rate headers back to the budget, and then:
//! - 401: invalidates that token, takes a fresh one and retries once; if the fresh token
//!   is refused too, the token manager remembers it for a jittered backoff, during which
//!   calls fail at once with [`UpstreamError::Unauthorized`] (one caller at a time tries
//!   again after it), instead of each costing two API calls and a token request;
//! - 429: the budget freezes until `Retry-After`; the call retries inside its deadline
//!   (it waits out the freeze when its deadline allows);
//! - connect errors, timeouts, 502/503/504: bounded, jittered retries inside the deadline;
//! - anything else is classified into an [`UpstreamError`].
//!
//! Its HTTP client follows the egress rules of [`crate::egress`] (proxy variables, loopback
//! hosts always direct); a failed connection names the egress proxy when it is the cause.
//! Each HTTP attempt is counted for the access log of the request it serves
//! ([`crate::access_log::count_upstream_call`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;
use uuid::Uuid;

use super::budget::{Budget, Class, Demand, Outcome, RateHeaders, Urgency};
use super::error::UpstreamError;
use super::models::{AggregatesResponse, DetailsResponse, ErrorBody, MultiGetResponse};
use super::settings::{ClientCredentials, Endpoints, UpstreamSettings};
use super::stats::UpstreamStats;
use super::token::TokenManager;
use super::trace::TraceUpstream;
use crate::egress::Egress;

/// Who a call is for and how long it may take.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub class: Class,
    /// The internal client (API key name).
    pub client: Arc<str>,
    /// The client's fair-share weight.
    pub weight: u32,
    /// The call must have finished by then.
    pub deadline: Instant,
    /// Set when later callers may come to share the call (a cache fetch they join): the
    /// class, client and deadline above are where it started, and the urgency is where it
    /// stands now (raised while the call waits for the budget or between attempts).
    pub urgency: Option<Arc<Urgency>>,
}

impl CallContext {
    /// A context for `client` that must finish by `deadline`.
    #[must_use]
    pub fn until(
        class: Class,
        client: impl Into<Arc<str>>,
        weight: u32,
        deadline: Instant,
    ) -> Self {
        Self {
            class,
            client: client.into(),
            weight,
            deadline,
            urgency: None,
        }
    }

    /// A context that follows `urgency`: callers that join the call may raise its class
    /// and deadline while it waits.
    #[must_use]
    pub fn raisable(urgency: Arc<Urgency>) -> Self {
        let Demand {
            class,
            client,
            weight,
            deadline,
        } = urgency.current();
        Self {
            class,
            client,
            weight,
            deadline,
            urgency: Some(urgency),
        }
    }

    /// The budget demand as it stands now.
    #[must_use]
    pub fn demand(&self) -> Demand {
        match &self.urgency {
            Some(urgency) => urgency.current(),
            None => Demand {
                class: self.class,
                client: self.client.clone(),
                weight: self.weight,
                deadline: self.deadline,
            },
        }
    }

    /// A context for `client` with `timeout` from now.
    #[must_use]
    pub fn new(class: Class, client: impl Into<Arc<str>>, weight: u32, timeout: Duration) -> Self {
        Self {
            class,
            client: client.into(),
            weight,
            deadline: Instant::now() + timeout,
            urgency: None,
        }
    }
}

/// A successful upstream response.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub body: T,
    /// Genesys' `inin-correlation-id` of the response.
    pub correlation_id: Option<String>,
    /// Time spent waiting for budget permits, over all attempts.
    pub queue_wait: Duration,
    /// HTTP attempts made (1 when nothing was retried).
    pub attempts: u32,
    /// Size of the response body in bytes (as received).
    pub size: usize,
}

/// The Genesys client.
#[derive(Debug)]
pub struct GenesysClient {
    http: ClientWithMiddleware,
    egress: Egress,
    api: Url,
    tokens: Arc<TokenManager>,
    budget: Arc<dyn Budget>,
    settings: UpstreamSettings,
    stats: UpstreamStats,
}

fn rate_headers(headers: &reqwest::header::HeaderMap) -> Option<RateHeaders> {
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    Some(RateHeaders {
        count: u32::try_from(number("inin-ratelimit-count")?).ok()?,
        allowed: u32::try_from(number("inin-ratelimit-allowed")?).ok()?,
        reset: Duration::from_secs(number("inin-ratelimit-reset")?),
    })
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// What to do after one attempt.
enum Step {
    Done(Fetched<Bytes>),
    Fail(UpstreamError),
    /// Retry after the given pause (transient failure), if the deadline allows.
    Retry(UpstreamError, Duration),
    /// Retry at once with a fresh token.
    Reauthenticate(u64),
}

impl GenesysClient {
    /// A client for the org at `endpoints`, sharing `budget`, with the egress proxies of
    /// the environment ([`Egress::from_env`]).
    ///
    /// # Errors
    /// When the HTTP client cannot be built or a URL is unusable.
    pub fn new(
        endpoints: &Endpoints,
        credentials: ClientCredentials,
        settings: UpstreamSettings,
        budget: Arc<dyn Budget>,
    ) -> Result<Self, String> {
        Self::with_egress(endpoints, credentials, settings, budget, Egress::from_env())
    }

    /// As [`new`](Self::new), with the egress proxies given.
    ///
    /// # Errors
    /// When the HTTP client cannot be built or a URL is unusable.
    pub fn with_egress(
        endpoints: &Endpoints,
        credentials: ClientCredentials,
        settings: UpstreamSettings,
        budget: Arc<dyn Budget>,
        egress: Egress,
    ) -> Result<Self, String> {
        let builder = reqwest::Client::builder()
            .user_agent(concat!("genesys-proxy/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.request_timeout().min(Duration::from_secs(5)))
            .pool_max_idle_per_host(32);
        let raw = egress
            .configure(builder)?
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let tokens = Arc::new(TokenManager::new(
            raw.clone(),
            egress.clone(),
            &endpoints.login,
            credentials,
            settings.clone(),
        )?);
        let http = ClientBuilder::new(raw).with(TraceUpstream).build();
        Ok(Self {
            http,
            egress,
            api: endpoints.api.clone(),
            tokens,
            budget,
            settings,
            stats: UpstreamStats::default(),
        })
    }

    /// Upstream figures (metrics).
    #[must_use]
    pub fn stats(&self) -> &UpstreamStats {
        &self.stats
    }

    /// The token manager (readiness, metrics).
    #[must_use]
    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.tokens
    }

    /// The budget (metrics).
    #[must_use]
    pub fn budget(&self) -> &Arc<dyn Budget> {
        &self.budget
    }

    /// `GET /api/v2/conversations/{id}`: the conversation document, byte for byte.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn get_conversation(
        &self,
        id: Uuid,
        ctx: &CallContext,
    ) -> Result<Fetched<Bytes>, UpstreamError> {
        self.call(
            0,
            Method::GET,
            &format!("api/v2/conversations/{id}"),
            None,
            ctx,
        )
        .await
    }

    /// `POST /api/v2/analytics/conversations/details/query`.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn details_query(
        &self,
        query: &impl Serialize,
        ctx: &CallContext,
    ) -> Result<Fetched<DetailsResponse>, UpstreamError> {
        let body = json_body(query)?;
        let fetched = self
            .call(
                1,
                Method::POST,
                "api/v2/analytics/conversations/details/query",
                Some(body),
                ctx,
            )
            .await?;
        decode(fetched)
    }

    /// `GET /api/v2/analytics/conversations/details?id=...` (multi-get).
    ///
    /// # Errors
    /// The classified failure.
    pub async fn multi_get(
        &self,
        ids: &[Uuid],
        ctx: &CallContext,
    ) -> Result<Fetched<MultiGetResponse>, UpstreamError> {
        let joined: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let path = format!(
            "api/v2/analytics/conversations/details?id={}",
            joined.join(",")
        );
        decode(self.call(2, Method::GET, &path, None, ctx).await?)
    }

    /// `POST /api/v2/analytics/conversations/aggregates/query`.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn aggregates_query(
        &self,
        query: &impl Serialize,
        ctx: &CallContext,
    ) -> Result<Fetched<AggregatesResponse>, UpstreamError> {
        let body = json_body(query)?;
        decode(
            self.call(
                3,
                Method::POST,
                "api/v2/analytics/conversations/aggregates/query",
                Some(body),
                ctx,
            )
            .await?,
        )
    }

    fn backoff(&self, retry: u32) -> Duration {
        let base = Duration::from_millis(self.settings.retry_base_ms);
        let cap = Duration::from_millis(self.settings.retry_max_ms);
        let exponential = base.saturating_mul(1 << retry.min(16)).min(cap);
        exponential.mul_f64(fastrand::f64())
    }

    /// One logical call: budget, token, HTTP, classification, retries.
    async fn call(
        &self,
        endpoint: usize,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        ctx: &CallContext,
    ) -> Result<Fetched<Bytes>, UpstreamError> {
        let url = self.api.join(path).map_err(|e| UpstreamError::Decode {
            detail: format!("bad upstream path: {e}"),
        })?;
        // While Genesys refuses fresh tokens, answer at once; after the pause, one caller
        // (holding the probe) finds out whether it still does.
        let probe = self.tokens.refusal().map_err(|wait| {
            tracing::debug!(
                wait_ms = wait.as_millis(),
                "Genesys refuses fresh tokens; not calling during the backoff"
            );
            UpstreamError::Unauthorized
        })?;
        let min_call = self.budget.min_call();
        let mut reauthenticated = false;
        let mut transient_retries = 0;
        let mut queue_wait = Duration::ZERO;
        let mut attempts = 0;
        loop {
            // Another call may have found the fresh token refused meanwhile.
            if probe.is_none() && self.tokens.refusing() {
                return Err(UpstreamError::Unauthorized);
            }
            let permit = match &ctx.urgency {
                Some(urgency) => self.budget.acquire_raisable(urgency.clone()).await?,
                None => self.budget.acquire(ctx.demand()).await?,
            };
            // Where the demand stands now that it is granted (joiners may have raised it).
            let demand = ctx.demand();
            queue_wait += permit.waited;
            self.stats.waited(demand.class, permit.waited);
            let bearer = match self.tokens.bearer().await {
                Ok(bearer) => bearer,
                Err(error) => {
                    permit.finish(Outcome::Responded(None));
                    return Err(error.into());
                }
            };
            let remaining = ctx
                .demand()
                .deadline
                .saturating_duration_since(Instant::now());
            // A call with only a few milliseconds left would spend quota and answer nobody.
            if remaining.is_zero() || remaining < min_call {
                permit.finish(Outcome::Responded(None));
                return Err(UpstreamError::Overloaded {
                    retry_after: Duration::from_secs(1),
                });
            }
            attempts += 1;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(reqwest::header::AUTHORIZATION, bearer.header_value())
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(self.settings.request_timeout().min(remaining));
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let sent = Instant::now();
            let span = tracing::info_span!(
                "genesys.call",
                endpoint = super::stats::ENDPOINTS[endpoint],
                class = demand.class.as_str(),
                client = %demand.client,
                attempt = attempts,
                queue_wait_ms = u64::try_from(permit.waited.as_millis()).unwrap_or(u64::MAX),
            );
            crate::access_log::count_upstream_call();
            let sent_result = tracing::Instrument::instrument(request.send(), span).await;
            self.stats.exchange(
                endpoint,
                sent_result.as_ref().ok().map(|r| r.status().as_u16()),
                sent.elapsed(),
            );
            let step = match sent_result {
                Err(error) => {
                    permit.finish(Outcome::NoResponse);
                    let detail = self.describe(&error, &url);
                    Step::Retry(
                        UpstreamError::Unavailable { detail },
                        self.backoff(transient_retries),
                    )
                }
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let rate = rate_headers(&headers);
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let wait = retry_after(&headers)
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
                        Step::Retry(
                            UpstreamError::RateLimited { retry_after: wait },
                            Duration::ZERO,
                        )
                    } else {
                        permit.finish(Outcome::Responded(rate));
                        let correlation_id = headers
                            .get("inin-correlation-id")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        match response.bytes().await {
                            Err(error) => Step::Retry(
                                UpstreamError::Unavailable {
                                    detail: self.egress.describe(&error, &url),
                                },
                                self.backoff(transient_retries),
                            ),
                            Ok(bytes) => self.classify(
                                status,
                                bytes,
                                correlation_id,
                                bearer.generation,
                                reauthenticated,
                                transient_retries,
                            ),
                        }
                    }
                }
            };
            match step {
                Step::Done(mut fetched) => {
                    fetched.queue_wait = queue_wait;
                    fetched.attempts = attempts;
                    return Ok(fetched);
                }
                Step::Fail(error) => return Err(error),
                Step::Reauthenticate(generation) => {
                    self.stats
                        .retries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.tokens.invalidate(generation);
                    reauthenticated = true;
                }
                Step::Retry(error, pause) => {
                    let is_rate_limit = matches!(error, UpstreamError::RateLimited { .. });
                    if !is_rate_limit {
                        if transient_retries >= self.settings.max_retries {
                            return Err(error);
                        }
                        transient_retries += 1;
                    }
                    if Instant::now() + pause + min_call >= ctx.demand().deadline {
                        return Err(error);
                    }
                    tracing::debug!(%error, pause_ms = pause.as_millis(), "retrying upstream call");
                    self.stats
                        .retries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                }
            }
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

    fn classify(
        &self,
        status: StatusCode,
        bytes: Bytes,
        correlation_id: Option<String>,
        generation: u64,
        reauthenticated: bool,
        transient_retries: u32,
    ) -> Step {
        let error_body = || serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_default();
        if status.is_success() || matches!(status.as_u16(), 400 | 404) {
            // Genesys authenticated the request.
            self.tokens.token_accepted();
        }
        match status.as_u16() {
            200..=299 => Step::Done(Fetched {
                size: bytes.len(),
                body: bytes,
                correlation_id,
                queue_wait: Duration::ZERO,
                attempts: 0,
            }),
            401 if !reauthenticated => Step::Reauthenticate(generation),
            401 => {
                // A fresh token was refused too: back off rather than ask for a token and
                // spend two calls on every request.
                self.tokens.fresh_token_refused(&error_body().code);
                Step::Fail(UpstreamError::Unauthorized)
            }
            404 => Step::Fail(UpstreamError::NotFound),
            403 => Step::Fail(UpstreamError::Forbidden {
                message: error_body().message,
            }),
            400 => {
                let body = error_body();
                Step::Fail(UpstreamError::BadRequest {
                    code: body.code,
                    message: body.message,
                })
            }
            502..=504 => Step::Retry(
                UpstreamError::Unavailable {
                    detail: format!("Genesys answered {status}"),
                },
                self.backoff(transient_retries),
            ),
            500 => Step::Fail(UpstreamError::Unavailable {
                detail: format!("Genesys answered {status}"),
            }),
            other => Step::Fail(UpstreamError::Unexpected { status: other }),
        }
    }
}

fn json_body(query: &impl Serialize) -> Result<Bytes, UpstreamError> {
    serde_json::to_vec(query)
        .map(Bytes::from)
        .map_err(|e| UpstreamError::Decode {
            detail: format!("cannot encode the query: {e}"),
        })
}

fn decode<T: DeserializeOwned>(fetched: Fetched<Bytes>) -> Result<Fetched<T>, UpstreamError> {
    let body = serde_json::from_slice(&fetched.body).map_err(|e| UpstreamError::Decode {
        detail: e.to_string(),
    })?;
    Ok(Fetched {
        body,
        correlation_id: fetched.correlation_id,
        queue_wait: fetched.queue_wait,
        attempts: fetched.attempts,
        size: fetched.size,
    })
}
