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
//!
//! One logical call (`call`) is a loop of attempts (the `attempt` module: permit, token,
//! one HTTP exchange, classification); whether and when to try again is the decision of
//! the `RetryPolicy` (`super::retry`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;
use uuid::Uuid;

use self::attempt::{Attempt, Spent, UpstreamRequest};
use super::budget::Budget;
use super::context::CallContext;
use super::endpoint::Endpoint;
use super::error::UpstreamError;
use super::models::{AggregatesResponse, DetailsResponse};
use super::retry::RetryPolicy;
use super::settings::{ClientCredentials, Endpoints, UpstreamSettings};
use super::stats::UpstreamStats;
use super::token::TokenManager;
use super::trace::TraceUpstream;
use crate::egress::Egress;

mod attempt;
mod notifications;

pub use notifications::{Channel, QueuePage};

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

    /// The egress proxies its calls follow (the notification socket follows them too).
    #[must_use]
    pub fn egress(&self) -> &Egress {
        &self.egress
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
        let path = format!("api/v2/conversations/{id}");
        self.call(Endpoint::GetConversation, &path, None, ctx).await
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
        let path = "api/v2/analytics/conversations/details/query";
        let body = json_body(query)?;
        decode(
            self.call(Endpoint::DetailsQuery, path, Some(body), ctx)
                .await?,
        )
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
        let path = "api/v2/analytics/conversations/aggregates/query";
        let body = json_body(query)?;
        decode(
            self.call(Endpoint::AggregatesQuery, path, Some(body), ctx)
                .await?,
        )
    }

    /// One logical call: attempts until one succeeds, fails for good, or the retry policy
    /// gives up.
    async fn call(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: Option<Bytes>,
        ctx: &CallContext,
    ) -> Result<Fetched<Bytes>, UpstreamError> {
        let url = self.api.join(path).map_err(|e| UpstreamError::Decode {
            detail: format!("bad upstream path: {e}"),
        })?;
        let request = UpstreamRequest {
            endpoint,
            url,
            body,
        };
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
        let mut retry = RetryPolicy::new(&self.settings, min_call);
        let mut spent = Spent::default();
        loop {
            // Another call may have found the fresh token refused meanwhile.
            if probe.is_none() && self.tokens.refusing() {
                return Err(UpstreamError::Unauthorized);
            }
            match self.attempt(&request, ctx, min_call, &mut spent).await {
                Attempt::Done(fetched) => {
                    return Ok(Fetched {
                        queue_wait: spent.queue_wait,
                        attempts: spent.attempts,
                        ..fetched
                    });
                }
                Attempt::Failed(error) => return Err(error),
                Attempt::Unauthorized { generation, code } => {
                    if !retry.reauthenticate() {
                        // A fresh token was refused too: back off rather than ask for a
                        // token and spend two calls on every request.
                        self.tokens.fresh_token_refused(&code);
                        return Err(UpstreamError::Unauthorized);
                    }
                    self.stats.count_retry();
                    self.tokens.invalidate(generation);
                }
                Attempt::Retryable(failure) => {
                    let Some(pause) = retry.pause_after(&failure, ctx.demand().deadline) else {
                        return Err(failure.into_error());
                    };
                    tracing::debug!(error = %failure.error(), pause_ms = pause.as_millis(), "retrying upstream call");
                    self.stats.count_retry();
                    tokio::time::sleep(pause).await;
                }
            }
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
