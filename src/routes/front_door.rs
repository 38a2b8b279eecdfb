//! [`FrontDoor`]: the one envelope every request of a listener passes, whoever answers it.
//!
//! For each request, once: in one pass over its headers it hides the credential headers
//! from `Debug` output and finds the client's `x-request-id` (or makes one) and the
//! presented key, which it checks ([`KeyCheck`], borrowing the configured caller; a
//! request the router answers gets it as an [`Authentication`] request extension, which
//! each route's scope check reads), and then has the request answered by a
//! chain of its own making: CORS (tower-http's `Cors`, when origins are configured, so
//! preflights and headers are exactly that layer's), then [`Dispatch`] (an early answer,
//! or the router; panics become `500`s). The cache-hit answerer ([`HitPath`]) is asked
//! first; what it answers goes down the same chain in place of the router's call, so CORS
//! and everything after apply to it alike (without CORS there is nothing on the way, and
//! the door finishes the answer at once).
//! Once answered, the door puts the request id on the answer and records the request
//! metrics and the access-log line, with the route label [`route_label`] derives (the hit
//! answerer's route, or the route the router noted in the request's [`RouteSlot`]).
//!
//! A request the router answers runs in its own span (method, path, request id, client,
//! cache status; an inbound `traceparent` as its parent when traces are exported), its
//! access line is written inside it, and a `5xx` logs tower-http's `response failed` at
//! debug level, as the trace layer did. An early answer makes no span and no boxed future:
//! its chain is ready at once and the door finishes it in `call`. Behind the door the
//! router keeps what only concerns routed requests: problem rendering, the timeout, the
//! body limit and the routes ([`super::behind_the_door`]).
//!
//! The operations listener has a door too ([`DoorParts`] without keys, CORS, hit answerer,
//! access log or spans), so its requests are labelled and counted the same way.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::http::header::{self, Entry};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::Response;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Either, Ready, ready};
use tokio::time::Instant;
use tower::{Layer as _, Service, ServiceExt as _};
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::cors::CorsLayer;
use tower_http::trace::{DefaultOnFailure, OnFailure as _};
use tracing::{Instrument as _, Span};

use super::dispatch::{Dispatch, RouteProbe, RouteSlot, route_label};
use super::hit_path::HitPath;
use super::request_id::FastRequestId;
use super::{CONVERSATION_ROUTE, REQUEST_ID, conversation_prefix};
use crate::access_log::{AccessEntry, AccessLog, UpstreamCalls, attach_call_counter, cache_status};
use crate::auth::{ApiKeys, Authentication, KeyCheck, X_API_KEY};
use crate::metrics::{HttpMetrics, RequestSeries};

/// What a door is made of.
#[derive(Debug)]
pub struct DoorParts {
    /// The keys to authenticate presented keys with (`None`: a listener without
    /// protected routes).
    pub keys: Option<Arc<ApiKeys>>,
    pub metrics: Arc<HttpMetrics>,
    /// The access log to write (`None`: none for this listener).
    pub access_log: Option<Arc<AccessLog>>,
    /// The CORS rules, when origins are configured.
    pub cors: Option<CorsLayer>,
    /// The cache-hit answerer, when on.
    pub(super) hits: Option<HitPath>,
    /// Whether routed requests run in a request span.
    pub spans: bool,
}

impl DoorParts {
    /// A door that only names, counts and ids requests (no keys, CORS, hit answerer,
    /// access log or spans): the operations listener's.
    #[must_use]
    pub fn plain(metrics: Arc<HttpMetrics>) -> Self {
        Self {
            keys: None,
            metrics,
            access_log: None,
            cors: None,
            hits: None,
            spans: false,
        }
    }
}

/// The whole of a listener as one service: the door in front of `router`.
#[derive(Clone)]
pub struct FrontDoor {
    door: Arc<Door>,
    router: Router,
}

impl std::fmt::Debug for FrontDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontDoor")
            .field("hit_fast_path", &self.door.parts.hits.is_some())
            .field("cors", &self.door.parts.cors.is_some())
            .finish_non_exhaustive()
    }
}

/// The door's parts and what it finds once.
#[derive(Debug)]
struct Door {
    parts: DoorParts,
    request_ids: FastRequestId,
    /// The label of conversation lookups (the hit answerer's route).
    conversation_route: String,
    /// The path before a conversation id, for the access log's `conversation_id`.
    conversation_prefix: &'static str,
    /// The metric series of the hit answerer's answers (`200`, `304`), found once.
    early_ok: OnceLock<Arc<RequestSeries>>,
    early_not_modified: OnceLock<Arc<RequestSeries>>,
}

impl FrontDoor {
    /// A door made of `parts` in front of `router` (see [`super::behind_the_door`]).
    #[must_use]
    pub fn new(parts: DoorParts, router: Router) -> Self {
        let door = Door {
            parts,
            request_ids: FastRequestId::default(),
            conversation_route: route_label(Some(CONVERSATION_ROUTE)).into_owned(),
            conversation_prefix: conversation_prefix(),
            early_ok: OnceLock::new(),
            early_not_modified: OnceLock::new(),
        };
        Self {
            door: Arc::new(door),
            router,
        }
    }
}

/// The door's answer: ready at once (an early answer, finished in the call), or the
/// router's, boxed.
pub type DoorAnswer =
    Either<Ready<Result<Response, Infallible>>, BoxFuture<'static, Result<Response, Infallible>>>;

/// Who knocked, and when: what the door keeps of a request to record its answer.
struct Visit {
    started: Instant,
    method: Method,
    request_id: HeaderValue,
    /// The caller's name, with the access log on.
    client: Option<Arc<str>>,
    /// With the access log on: the request's URI (for the conversation id) and the
    /// counter of its upstream calls (`None` when they cannot be counted). Boxed: a visit
    /// without it is small enough to move without a `memcpy` call.
    logged: Option<Box<(Uri, Option<UpstreamCalls>)>>,
}

/// Which route answered.
enum Answerer {
    /// The hit answerer.
    Early,
    /// The router, which noted its route here.
    Router(RouteSlot),
}

type Answer = Either<
    tower_http::cors::ResponseFuture<<Dispatch as Service<Request<Body>>>::Future>,
    <Dispatch as Service<Request<Body>>>::Future,
>;

impl Door {
    /// Answers `request` down the chain: CORS when configured, then `dispatch`.
    fn chain(&self, dispatch: Dispatch, request: Request<Body>) -> Answer {
        match &self.parts.cors {
            Some(cors) => Either::Left(cors.layer(dispatch).call(request)),
            None => Either::Right({
                let mut dispatch = dispatch;
                dispatch.call(request)
            }),
        }
    }

    /// Puts the request id on `response` and records it in the metrics and the access log.
    fn finish(&self, mut response: Response, visit: Visit, answerer: &Answerer) -> Response {
        let latency = visit.started.elapsed();
        let status = response.status();
        let route = match answerer {
            Answerer::Early => std::borrow::Cow::Borrowed(self.conversation_route.as_str()),
            Answerer::Router(slot) => route_label(slot.template()),
        };
        let early = matches!(answerer, Answerer::Early);
        self.observe(early, &route, &visit.method, status, latency);
        if early {
            self.parts.metrics.count_fast_path_answer();
        }
        if let (Some(log), Some((uri, calls))) = (&self.parts.access_log, visit.logged.as_deref()) {
            let conversation_id = (route == self.conversation_route)
                .then(|| uri.path().strip_prefix(self.conversation_prefix))
                .flatten()
                .filter(|id| uuid::Uuid::try_parse(id).is_ok());
            log.write(&AccessEntry {
                request_id: visit.request_id.to_str().unwrap_or("-"),
                method: visit.method.as_str(),
                route: &route,
                status: status.as_u16(),
                client: visit.client.as_deref(),
                conversation_id,
                cache: cache_status(response.headers()),
                upstream_calls: if early {
                    Some(0)
                } else {
                    calls.as_ref().map(UpstreamCalls::count)
                },
                latency,
                fast_path: early,
            });
        }
        let headers = response.headers_mut();
        if early && self.parts.cors.is_none() {
            // An early answer made without CORS on the way may end with a placeholder of
            // the id (see `HitPath::answer`): the id takes its place, found without
            // hashing the name.
            match headers.iter_mut().last() {
                Some((name, value)) if name == REQUEST_ID => *value = visit.request_id,
                _ => {
                    headers.insert(REQUEST_ID, visit.request_id);
                }
            }
        } else if let Entry::Vacant(slot) = headers.entry(REQUEST_ID) {
            slot.insert(visit.request_id);
        }
        response
    }

    /// Records an answer in its metric series (those of early answers are kept).
    fn observe(
        &self,
        early: bool,
        route: &str,
        method: &Method,
        status: StatusCode,
        latency: std::time::Duration,
    ) {
        let series = || {
            self.parts
                .metrics
                .series(route, method.as_str(), status.as_u16())
        };
        match status {
            StatusCode::OK if early => self.early_ok.get_or_init(series).observe(latency),
            StatusCode::NOT_MODIFIED if early => {
                self.early_not_modified.get_or_init(series).observe(latency);
            }
            _ => series().observe(latency),
        }
    }
}

impl Service<Request<Body>> for FrontDoor {
    type Response = Response;
    type Error = Infallible;
    type Future = DoorAnswer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The router is always ready, and so is the rest of the chain.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.answer(request)
    }
}

impl FrontDoor {
    /// Answers `request`: what [`Service::call`] does, through a shared reference.
    pub fn answer(&self, request: Request<Body>) -> DoorAnswer {
        self.answer_at(request, Instant::now())
    }

    /// Answers `request`, which arrived at `started` (the connection calls the door this
    /// way, without cloning it per request, with the reading of the clock it took).
    pub fn answer_at(&self, mut request: Request<Body>, started: Instant) -> DoorAnswer {
        let door = &self.door;
        let (client_id, key_check, conditional) = {
            let read = RequestHeaders::read(request.headers_mut());
            let key_check = door
                .parts
                .keys
                .as_ref()
                .map(|keys| keys.check(read.api_key, read.authorization));
            (read.request_id.cloned(), key_check, read.conditional)
        };
        let caller = key_check.and_then(KeyCheck::caller);
        let logging = door
            .parts
            .access_log
            .as_ref()
            .is_some_and(|log| log.enabled());
        let early = door.parts.hits.as_ref().and_then(|hits| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // Without CORS, nothing adds headers after the id: the answer may
                // carry a placeholder of it, which `finish` replaces.
                let request_id_slot = door.parts.cors.is_none();
                hits.answer(
                    &request,
                    caller.map(AsRef::as_ref),
                    started,
                    conditional,
                    request_id_slot,
                )
            }))
            .unwrap_or_else(|_panic| {
                tracing::error!("the cache-hit answerer panicked; answering the long way");
                None
            })
        });
        let mut visit = Visit {
            started,
            method: request.method().clone(),
            request_id: client_id
                .clone()
                .unwrap_or_else(|| door.request_ids.next_header_value()),
            client: caller.filter(|_| logging).map(|caller| caller.name.clone()),
            logged: logging.then(|| Box::new((request.uri().clone(), None))),
        };
        if let Some(response) = early {
            if door.parts.cors.is_none() {
                // Nothing to add on the way: the answer is finished at once.
                drop(request);
                return Either::Left(ready(Ok(door.finish(response, visit, &Answerer::Early))));
            }
            let mut answer = door.chain(Dispatch::Early(Some(response)), request);
            // Ready at once: the answer is there, and CORS adds its headers in place.
            if let Some(Ok(response)) = (&mut answer).now_or_never() {
                return Either::Left(ready(Ok(door.finish(response, visit, &Answerer::Early))));
            }
            let door = door.clone();
            return Either::Right(Box::pin(async move {
                let Ok(response) = answer.await;
                Ok(door.finish(response, visit, &Answerer::Early))
            }));
        }
        if client_id.is_none() {
            request
                .headers_mut()
                .insert(REQUEST_ID, visit.request_id.clone());
        }
        if let Some(key_check) = key_check {
            request
                .extensions_mut()
                .insert(Authentication::from(key_check));
        }
        let slot = RouteSlot::default();
        let span = if door.parts.spans {
            request_span(&request)
        } else {
            Span::none()
        };
        if let Some((_, calls)) = visit.logged.as_deref_mut() {
            *calls = span.in_scope(attach_call_counter);
        }
        if door.parts.cors.is_some() && request.method() == Method::OPTIONS {
            // CORS answers a preflight without the router: ask it only for the route.
            self.probe_route(&request, &slot);
        }
        request.extensions_mut().insert(slot.clone());
        let answer = span.in_scope(|| door.chain(Dispatch::Router(self.router.clone()), request));
        let door = door.clone();
        Either::Right(Box::pin(async move {
            let Ok(response) = answer.instrument(span.clone()).await;
            Ok(span.in_scope(|| {
                if response.status().is_server_error() {
                    DefaultOnFailure::new()
                        .level(tracing::Level::DEBUG)
                        .on_failure(
                            ServerErrorsFailureClass::StatusCode(response.status()),
                            visit.started.elapsed(),
                            &span,
                        );
                }
                door.finish(response, visit, &Answerer::Router(slot))
            }))
        }))
    }
}

impl FrontDoor {
    /// Notes in `slot` the route `request` would take, without answering it.
    fn probe_route(&self, request: &Request<Body>, slot: &RouteSlot) {
        let mut probe = Request::new(Body::empty());
        *probe.method_mut() = request.method().clone();
        *probe.uri_mut() = request.uri().clone();
        probe.extensions_mut().insert(slot.clone());
        probe.extensions_mut().insert(RouteProbe);
        let _ = self.router.clone().oneshot(probe).now_or_never();
    }
}

/// What the door reads off a request's headers, in one pass over them (a request has a
/// few headers: a pass costs less than a hashed lookup of each name).
#[derive(Default)]
struct RequestHeaders<'a> {
    /// The first `x-request-id`.
    request_id: Option<&'a HeaderValue>,
    /// An `If-None-Match` is there (the hit answerer then compares ETags).
    conditional: bool,
    /// The first `x-api-key` and `authorization`.
    api_key: Option<&'a HeaderValue>,
    authorization: Option<&'a HeaderValue>,
}

impl<'a> RequestHeaders<'a> {
    /// Reads `headers`, marking every value that carries an API key as sensitive (shown as
    /// `Sensitive` by `Debug`).
    fn read(headers: &'a mut HeaderMap) -> Self {
        let mut read = Self::default();
        for (name, value) in headers.iter_mut() {
            let first = if name == header::AUTHORIZATION {
                &mut read.authorization
            } else if name == X_API_KEY {
                &mut read.api_key
            } else {
                if name == REQUEST_ID && read.request_id.is_none() {
                    read.request_id = Some(value);
                } else if name == header::IF_NONE_MATCH {
                    read.conditional = true;
                }
                continue;
            };
            value.set_sensitive(true);
            if first.is_none() {
                *first = Some(value);
            }
        }
        read
    }
}

/// The span of one routed request: method, path, request id, and (filled in later) the
/// client and the cache status. An inbound W3C `traceparent` becomes its parent.
fn request_span(request: &Request<Body>) -> Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
        cache.status = tracing::field::Empty,
        client = tracing::field::Empty,
    );
    if crate::telemetry::tracing_enabled() {
        let _ = span.set_parent(crate::telemetry::extract_context(request.headers()));
    }
    span
}
