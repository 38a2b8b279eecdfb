//! The cache-hit fast path of `GET /conversations/{id}`.
//!
//! Dashboards poll the same conversations again and again, so most requests are fresh
//! hits. [`ProxyService`] answers those before the router and the generic middleware stack
//! (request-id, span, panic-catching, problem, metrics and timeout layers, each a boxed
//! future per request): it authenticates, looks the entry up and answers, doing the
//! request id and the request metrics itself, with the same answer the handler gives
//! ([`super::conversations::found_response`]). Anything else (an unknown key, a missing
//! scope, a bad id or query, a request body, a miss, a stale entry, a remembered 404) goes
//! the long way unchanged, where it is answered, counted and logged as before; so does a
//! request whose fast-path answer panicked.
//!
//! It stands aside entirely when `server.hit_fast_path` is off, when CORS origins are
//! configured (the CORS layer's headers belong on every answer) and while traces are
//! exported (every request then gets its span).

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::Response;
use futures_util::FutureExt as _;
use futures_util::future::Either;
use tokio::time::Instant;
use tower::{Service, ServiceExt as _};
use uuid::Uuid;

use super::conversations::{View, found_response, parse_id, parse_view};
use super::request_id::FastRequestId;
use super::{AppState, REQUEST_ID};
use crate::auth::{ApiKeys, Scope, presented_key};
use crate::cache::CacheStatus;
use crate::conversations::{ConversationEntry, ConversationService};
use crate::metrics::{HttpMetrics, RequestSeries};

/// The route label of conversation lookups in the request metrics (as the router's).
const ROUTE: &str = "/conversations/{id}";

/// The whole proxy as one service: the hit fast path in front of the router.
#[derive(Clone)]
pub struct ProxyService {
    hits: Option<Arc<HitPath>>,
    router: Router,
}

impl std::fmt::Debug for ProxyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyService")
            .field("hit_fast_path", &self.hits.is_some())
            .finish_non_exhaustive()
    }
}

impl ProxyService {
    /// `router` with the fast path in front of it when the settings allow one.
    pub(super) fn new(state: &AppState, router: Router, request_ids: FastRequestId) -> Self {
        let server = &state.settings.server;
        let hits = (server.hit_fast_path && server.cors_allowed_origins.is_empty()).then(|| {
            Arc::new(HitPath {
                conversations: state.conversations.clone(),
                keys: state.keys.clone(),
                request_ids,
                metrics: state.http_metrics.clone(),
                ok: OnceLock::new(),
                not_modified: OnceLock::new(),
            })
        });
        Self { hits, router }
    }
}

/// What the fast path needs.
struct HitPath {
    conversations: Arc<ConversationService>,
    keys: Arc<ApiKeys>,
    request_ids: FastRequestId,
    metrics: Arc<HttpMetrics>,
    /// The metric series of its two answers, found once.
    ok: OnceLock<Arc<RequestSeries>>,
    not_modified: OnceLock<Arc<RequestSeries>>,
}

/// A request the fast path may answer: an authorised lookup of a well-formed id.
struct Candidate {
    id: Uuid,
    view: View,
    started: Instant,
}

impl HitPath {
    /// Whether `request` is an authorised `GET /conversations/{id}` with a valid id and
    /// query. Anything else (including every error) is for the long way to answer.
    fn candidate(&self, request: &Request<Body>) -> Option<Candidate> {
        // A GET with a body goes the long way: the body limit answers a large one with 413.
        if request.method() != Method::GET
            || !HttpBody::is_end_stream(request.body())
            || crate::telemetry::tracing_enabled()
        {
            return None;
        }
        let started = Instant::now();
        let id = request.uri().path().strip_prefix("/conversations/")?;
        let id = parse_id(id).ok()?;
        let view = parse_view(request.uri().query()).ok()?;
        let caller = self.keys.authenticate(presented_key(request.headers())?)?;
        caller
            .may(Scope::ConversationsRead)
            .then_some(Candidate { id, view, started })
    }

    /// The answer when the conversation is freshly cached.
    async fn answer(&self, candidate: &Candidate, request_headers: &HeaderMap) -> Option<Response> {
        let entry = self.conversations.fresh_hit(candidate.id).await?;
        let ConversationEntry::Found(representations) = &entry.value else {
            return None;
        };
        let mut response = found_response(
            &entry,
            representations,
            CacheStatus::Hit,
            candidate.view,
            request_headers,
        );
        let request_id = request_headers
            .get(&REQUEST_ID)
            .cloned()
            .unwrap_or_else(|| self.request_ids.next_header_value());
        response.headers_mut().insert(REQUEST_ID, request_id);
        let series = if response.status() == StatusCode::NOT_MODIFIED {
            &self.not_modified
        } else {
            &self.ok
        };
        series
            .get_or_init(|| {
                self.metrics
                    .series(ROUTE, Method::GET.as_str(), response.status().as_u16())
            })
            .observe(candidate.started.elapsed());
        self.metrics.count_fast_path_answer();
        Some(response)
    }
}

type BoxedAnswer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request<Body>> for ProxyService {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<BoxedAnswer, <Router as Service<Request<Body>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<Request<Body>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let Some(hits) = &self.hits else {
            return Either::Right(self.router.call(request));
        };
        let Some(candidate) = hits.candidate(&request) else {
            return Either::Right(self.router.call(request));
        };
        let hits = hits.clone();
        let router = self.router.clone();
        Either::Left(Box::pin(async move {
            // A panic here must not cost the connection: the request then goes the long
            // way, whose panic layer answers 500 if it fails there too.
            let answered = AssertUnwindSafe(hits.answer(&candidate, request.headers()))
                .catch_unwind()
                .await;
            match answered {
                Ok(Some(response)) => Ok(response),
                Ok(None) => router.oneshot(request).await,
                Err(_panic) => {
                    tracing::error!("the cache-hit fast path panicked; answering the long way");
                    router.oneshot(request).await
                }
            }
        }))
    }
}
