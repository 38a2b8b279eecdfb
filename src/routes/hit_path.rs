//! The early answer to a fresh cache hit of `GET /conversations/{id}`.
//!
//! Dashboards poll the same conversations again and again, so most requests are fresh
//! hits. [`HitPath::answer`] gives those their answer before the router is asked (no
//! routing, no per-route layers, no handler future): a `200` with the entry's memoised
//! header block ([`super::conversations::hit_response`]: the router's headers, in its
//! order), a `304` with the handler's own response builder
//! ([`super::conversations::found_response`]), so a hit looks the same whichever way it
//! went. It answers *inside* the front door ([`super::front_door`]): the request id,
//! the authentication it reads, CORS, the request metrics, the access log and panic
//! catching are the door's, the same for its answers as for the router's.
//!
//! It answers only an authorised lookup of a well-formed id without a request body whose
//! entry is fresh; anything else (no or an unknown key, a missing scope, a bad id or
//! query, a body, a miss, a stale entry, a remembered 404) is left to the router, which
//! answers it as before. The cache is first asked for an entry it holds ready (the entries
//! read in the last second, [`crate::cache::MokaTier`]'s front); else its lookup is polled
//! once, in place: an in-memory hit is ready at once, and a lookup that is not (the store
//! busy with its housekeeping) is dropped and left to the router too, so no future is
//! boxed for a hit. It stands aside
//! while traces are exported (every request then gets its span), and is not built at all
//! when `server.hit_fast_path` is off.

use std::future::Future as _;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use axum::body::{Body, HttpBody};
use axum::http::{Method, Request};
use axum::response::Response;
use tokio::time::Instant;

use super::conversation_prefix;
use super::conversations::{View, found_response, hit_response, parse_id, parse_view};
use crate::auth::{Caller, Scope};
use crate::cache::CacheStatus;
use crate::conversations::{ConversationEntry, ConversationService};

/// The hit answerer of conversation lookups.
#[derive(Debug)]
pub(super) struct HitPath {
    conversations: Arc<ConversationService>,
    /// The path before the id (`/conversations/`), from the route's template.
    prefix: &'static str,
}

impl HitPath {
    pub(super) fn new(conversations: Arc<ConversationService>) -> Self {
        Self {
            conversations,
            prefix: conversation_prefix(),
        }
    }

    /// The answer to `request` (arrived at `now`) from `caller` when it is an authorised
    /// `GET` of a freshly cached conversation; `None` leaves the request to the router.
    /// `conditional` says whether the request has an `If-None-Match` (the door saw its
    /// headers once already). With `request_id_slot`, a `200` carries an `x-request-id`
    /// placeholder that the caller must replace (see [`hit_response`]).
    pub(super) fn answer(
        &self,
        request: &Request<Body>,
        caller: Option<&Caller>,
        now: Instant,
        conditional: bool,
        request_id_slot: bool,
    ) -> Option<Response> {
        // A GET with a body goes the long way: the body limit answers a large one with 413.
        if request.method() != Method::GET
            || !HttpBody::is_end_stream(request.body())
            || crate::telemetry::tracing_enabled()
        {
            return None;
        }
        let id = request.uri().path().strip_prefix(self.prefix)?;
        let id = parse_id(id).ok()?;
        let view = parse_view(request.uri().query()).ok()?;
        if !caller?.may(Scope::ConversationsRead) {
            return None;
        }
        let entry = match self.conversations.fresh_hit_ready(id, now) {
            Some(entry) => entry,
            None => {
                // Polled in place (as `now_or_never` would, without moving the future).
                let lookup = std::pin::pin!(self.conversations.fresh_hit_at(id, now));
                let Poll::Ready(Some(entry)) = lookup.poll(&mut Context::from_waker(Waker::noop()))
                else {
                    return None;
                };
                entry
            }
        };
        let ConversationEntry::Found(representations) = &entry.value else {
            return None;
        };
        // The document of a pushed entry has its own freshness: the router serves it.
        if view == View::Full && representations.is_pushed() {
            return None;
        }
        // A `200` gets the entry's memoised header block; a revalidation that names the
        // ETag (`If-None-Match`) its `304`, made as the router makes it.
        hit_response(
            &entry,
            representations,
            view,
            conditional.then(|| request.headers()),
            now,
            request_id_slot,
        )
        .or_else(|| {
            Some(found_response(
                &entry,
                representations,
                CacheStatus::Hit,
                view,
                request.headers(),
            ))
        })
    }
}
