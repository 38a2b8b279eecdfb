//! What stands behind the front door ([`super::front_door`]): the early answer when there
//! is one, else the router; and what the router tells the door back, the route a request
//! matched.
//!
//! [`Dispatch`] is the innermost service of the door's chain: it hands back an answer the
//! door already has (a cache hit) or calls the router, and turns a panic of the router
//! into tower-http's own `500` answer (`CatchPanic`'s, so the answer is as it was), inside
//! CORS like the answers it stands for.
//!
//! The route label of the request metrics and the access log (the matched route's
//! template, the id wildcard read as `{id}`, `unmatched` for none) is derived here only,
//! by [`route_label`]. The router knows which route matched; [`NoteRoute`], its outermost
//! per-route layer, writes that into the [`RouteSlot`] the door put into the request,
//! before any handler runs (so a request that panics is still labelled). A CORS preflight
//! is answered by the door without the router, so the door asks the router for its route
//! with a [`RouteProbe`], which `NoteRoute` answers at once.

use std::any::Any;
use std::borrow::Cow;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::future::RouteFuture;
use futures_util::FutureExt as _;
use futures_util::future::{CatchUnwind, Either, Map, Ready, ready};
use tower::{Layer, Service};
use tower_http::catch_panic::{DefaultResponseForPanic, ResponseForPanic as _};

/// The label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// The route label of a matched route's `template` (`None`: no route matched).
#[must_use]
pub(super) fn route_label(template: Option<&str>) -> Cow<'_, str> {
    match template {
        None => Cow::Borrowed(UNMATCHED),
        Some(template) if template.contains("{*id}") => {
            Cow::Owned(template.replace("{*id}", "{id}"))
        }
        Some(template) => Cow::Borrowed(template),
    }
}

/// Where the router notes the route a request matched (a request extension the door
/// adds; empty for a request that matched none).
#[derive(Debug, Clone, Default)]
pub(super) struct RouteSlot(Arc<OnceLock<MatchedPath>>);

impl RouteSlot {
    /// The template of the matched route, if one matched.
    pub(super) fn template(&self) -> Option<&str> {
        self.0.get().map(MatchedPath::as_str)
    }
}

/// A request extension: only find the route, do not answer (see [`NoteRoute`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct RouteProbe;

/// The layer of [`NoteRoute`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct NoteRouteLayer;

impl<S> Layer<S> for NoteRouteLayer {
    type Service = NoteRoute<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NoteRoute(inner)
    }
}

/// The router's outermost per-route layer: notes the matched route in the request's
/// [`RouteSlot`], and answers a [`RouteProbe`] at once, with an empty `204`.
#[derive(Debug, Clone)]
pub(super) struct NoteRoute<S>(S);

impl<S> Service<Request> for NoteRoute<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let extensions = request.extensions();
        if let (Some(slot), Some(matched)) = (
            extensions.get::<RouteSlot>(),
            extensions.get::<MatchedPath>(),
        ) {
            let _ = slot.0.set(matched.clone());
        }
        if extensions.get::<RouteProbe>().is_some() {
            return Either::Left(ready(Ok(StatusCode::NO_CONTENT.into_response())));
        }
        Either::Right(self.0.call(request))
    }
}

/// The router's answer, a panic turned into the panic answer.
type RouterAnswer = Map<
    CatchUnwind<AssertUnwindSafe<RouteFuture<Infallible>>>,
    fn(Result<Result<Response, Infallible>, Box<dyn Any + Send>>) -> Result<Response, Infallible>,
>;

/// The innermost service of the door's chain, made for one request.
#[derive(Debug)]
pub(super) enum Dispatch {
    /// The door's early answer.
    Early(Option<Response>),
    /// The router answers.
    Router(Router),
}

impl Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, RouterAnswer>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The router is always ready; an early answer is.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self {
            Self::Early(answer) => Either::Left(ready(Ok(answer
                .take()
                .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())))),
            Self::Router(router) => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| router.call(request))) {
                    Ok(answer) => Either::Right(
                        AssertUnwindSafe(answer)
                            .catch_unwind()
                            .map(unless_panicked as _),
                    ),
                    Err(panic) => Either::Left(ready(Ok(panic_answer(panic)))),
                }
            }
        }
    }
}

fn unless_panicked(
    answered: Result<Result<Response, Infallible>, Box<dyn Any + Send>>,
) -> Result<Response, Infallible> {
    answered.unwrap_or_else(|panic| Ok(panic_answer(panic)))
}

/// The answer to a request whose handling panicked: tower-http's (`500`, plain text,
/// the panic logged as an error).
fn panic_answer(panic: Box<dyn Any + Send>) -> Response {
    DefaultResponseForPanic::default()
        .response_for_panic(panic)
        .map(Body::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_the_id_wildcard_as_id_and_name_unmatched_requests() {
        assert_eq!(
            route_label(Some("/conversations/{*id}")),
            "/conversations/{id}"
        );
        assert_eq!(route_label(Some("/reports/search")), "/reports/search");
        assert_eq!(route_label(None), "unmatched");
    }
}
