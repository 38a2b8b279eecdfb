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
//! Its answers are written to the access log like the router's (when it is on), with
//! `fast_path` set and no upstream call.
//!
//! With CORS origins configured, its answers carry the headers the CORS layer gives a
//! `GET` ([`CorsHeaders`], taken from that layer itself at start-up). It stands aside
//! entirely when `server.hit_fast_path` is off and while traces are exported (every
//! request then gets its span).

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use futures_util::FutureExt as _;
use futures_util::future::Either;
use tokio::time::Instant;
use tower::{Layer as _, Service, ServiceExt as _};
use tower_http::cors::CorsLayer;
use uuid::Uuid;

use super::conversations::{View, found_response, parse_id, parse_view};
use super::request_id::FastRequestId;
use super::{AppState, REQUEST_ID};
use crate::access_log::{AccessEntry, AccessLog, CONVERSATION_ROUTE};
use crate::auth::{ApiKeys, Scope, presented_key};
use crate::cache::CacheStatus;
use crate::conversations::{ConversationEntry, ConversationService};
use crate::metrics::{HttpMetrics, RequestSeries};

/// The route label of conversation lookups in the request metrics (as the router's).
const ROUTE: &str = CONVERSATION_ROUTE;

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
    /// `router` with the fast path in front of it when the settings allow one. `cors` is
    /// the router's CORS layer, if any.
    pub(super) fn new(
        state: &AppState,
        router: Router,
        request_ids: FastRequestId,
        cors: Option<CorsLayer>,
    ) -> Self {
        let server = &state.settings.server;
        // Outer `None`: the CORS headers could not be reproduced, so no fast path at all;
        // inner `None`: no CORS configured.
        let cors_headers = match cors {
            None => Some(None),
            Some(layer) => CorsHeaders::from_layer(&layer, &server.cors_allowed_origins).map(Some),
        };
        let hits = match cors_headers {
            Some(cors) if server.hit_fast_path => Some(Arc::new(HitPath {
                conversations: state.conversations.clone(),
                keys: state.keys.clone(),
                request_ids,
                metrics: state.http_metrics.clone(),
                access_log: state.http_metrics.access_log().clone(),
                cors,
                ok: OnceLock::new(),
                not_modified: OnceLock::new(),
            })),
            _ => None,
        };
        Self { hits, router }
    }
}

/// The headers the CORS layer puts on the answer to a `GET`: `Vary` and
/// `Access-Control-Expose-Headers` as the layer sets them for every request,
/// `Access-Control-Allow-Origin` for an allowed `Origin` (`*` when any is allowed).
#[derive(Debug)]
struct CorsHeaders {
    any_origin: bool,
    allowed: Vec<HeaderValue>,
    vary: Option<HeaderValue>,
    expose: Option<HeaderValue>,
}

impl CorsHeaders {
    /// Reads the constant headers off `layer`'s own answer to a `GET`, and checks that the
    /// origin rule here gives what the layer gives for the configured origins and for
    /// another one. `None` (the fast path then stands aside) if anything differs.
    fn from_layer(layer: &CorsLayer, origins: &[String]) -> Option<Self> {
        let answer = |origin: Option<&str>| {
            let mut request = Request::new(Body::empty());
            if let Some(origin) = origin {
                request
                    .headers_mut()
                    .insert(header::ORIGIN, HeaderValue::from_str(origin).ok()?);
            }
            let service = layer
                .clone()
                .layer(tower::service_fn(|_: Request<Body>| async {
                    Ok::<_, Infallible>(Response::new(Body::empty()))
                }));
            // The layer answers at once for fixed origin rules; if it ever did not, the
            // fast path stands aside rather than wait here.
            let response = service.oneshot(request).now_or_never()?.ok()?;
            Some(response.headers().clone())
        };
        let plain = answer(None)?;
        let cors = Self {
            any_origin: origins.iter().any(|o| o == "*"),
            allowed: origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
            vary: plain.get(header::VARY).cloned(),
            expose: plain.get(header::ACCESS_CONTROL_EXPOSE_HEADERS).cloned(),
        };
        let probes = origins
            .iter()
            .map(String::as_str)
            .chain(["https://not-configured.invalid"]);
        for origin in probes {
            let from_layer = answer(Some(origin))?;
            let mut mine = HeaderMap::new();
            cors.insert(HeaderValue::from_str(origin).ok().as_ref(), &mut mine);
            if from_layer != mine {
                tracing::warn!(
                    origin,
                    "the fast path's CORS headers differ from the CORS layer's; hits take the full stack"
                );
                return None;
            }
        }
        Some(cors)
    }

    /// Adds the headers for a request from `origin`.
    fn insert(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if let Some(vary) = &self.vary {
            headers.append(header::VARY, vary.clone());
        }
        if let Some(expose) = &self.expose {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
        let allow = if self.any_origin {
            Some(HeaderValue::from_static("*"))
        } else {
            origin.filter(|o| self.allowed.contains(o)).cloned()
        };
        if let Some(allow) = allow {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        }
    }
}

/// What the fast path needs.
struct HitPath {
    conversations: Arc<ConversationService>,
    keys: Arc<ApiKeys>,
    request_ids: FastRequestId,
    metrics: Arc<HttpMetrics>,
    access_log: Arc<AccessLog>,
    /// The CORS headers, when CORS origins are configured.
    cors: Option<CorsHeaders>,
    /// The metric series of its two answers, found once.
    ok: OnceLock<Arc<RequestSeries>>,
    not_modified: OnceLock<Arc<RequestSeries>>,
}

/// A request the fast path may answer: an authorised lookup of a well-formed id.
struct Candidate {
    id: Uuid,
    view: View,
    started: Instant,
    /// The caller's client name (for the access log).
    client: Arc<str>,
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
        caller.may(Scope::ConversationsRead).then(|| Candidate {
            id,
            view,
            started,
            client: caller.name.clone(),
        })
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
        if self.access_log.enabled() {
            let mut id_text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            self.access_log.write(&AccessEntry {
                request_id: request_id.to_str().unwrap_or("-"),
                method: Method::GET.as_str(),
                route: ROUTE,
                status: response.status().as_u16(),
                client: Some(&candidate.client),
                conversation_id: Some(candidate.id.hyphenated().encode_lower(&mut id_text)),
                cache: Some(CacheStatus::Hit),
                upstream_calls: Some(0),
                latency: candidate.started.elapsed(),
                fast_path: true,
            });
        }
        response.headers_mut().insert(REQUEST_ID, request_id);
        if let Some(cors) = &self.cors {
            cors.insert(request_headers.get(header::ORIGIN), response.headers_mut());
        }
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
