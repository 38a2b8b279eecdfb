//! `GET /conversations/{id}`: a conversation's live state, from the cache or Genesys.
//!
//! The id must be a UUID (else 400 and nothing goes upstream). The default body is the
//! simplified [`ConversationView`](crate::conversations::ConversationView); `?view=full`
//! returns Genesys' document byte for byte. Responses carry `ETag`, `Cache-Control`,
//! `Age` and `Cache-Status`; `If-None-Match` gives 304.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use super::AppState;
use crate::auth::Caller;
use crate::cache::{CacheStatus, Cached, headers};
use crate::conversations::{ConversationEntry, ConversationView, Representations};
use crate::error::{ApiError, Problem};
use crate::upstream::Class;

/// The schema of a 200 body: the summary view, or with `view=full` Genesys' own
/// document (which the proxy passes on byte for byte and does not describe).
#[derive(Debug)]
pub struct ConversationBody;

impl utoipa::PartialSchema for ConversationBody {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(ConversationView::name()))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .title(Some("GenesysConversation"))
                    .description(Some(
                        "With `view=full`: Genesys' `Conversation` document (GET /api/v2/conversations/{id}), byte for byte, as Genesys' API reference describes it.",
                    )),
            )
            .description(Some(
                "The conversation: the simplified `ConversationView` (`view=summary`, the default), or Genesys' `Conversation` document (`view=full`).",
            ))
            .into()
    }
}

impl ToSchema for ConversationBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ConversationBody")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            ConversationView::name().into_owned(),
            ConversationView::schema(),
        ));
        <ConversationView as ToSchema>::schemas(schemas);
    }
}

/// Which representation to return (`view`; an empty value means `summary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub(super) enum View {
    /// The simplified `ConversationView` (the default).
    Summary,
    /// Genesys' `Conversation` document, byte for byte.
    Full,
}

pub(super) fn parse_view(query: Option<&str>) -> Result<View, ApiError> {
    // The queries dashboards send, without splitting them.
    match query {
        None | Some("" | "view=summary") => return Ok(View::Summary),
        Some("view=full") => return Ok(View::Full),
        Some(_) => {}
    }
    let mut view = View::Summary;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (key, value) {
            ("view", "full") => view = View::Full,
            ("view", "summary" | "") => view = View::Summary,
            ("view", other) => {
                return Err(ApiError::invalid_field(
                    "view",
                    format!("must be `summary` or `full`, not {other:?}"),
                ));
            }
            (other, _) => {
                return Err(ApiError::invalid_field(
                    other,
                    "unknown query parameter (this endpoint takes only `view`)",
                ));
            }
        }
    }
    Ok(view)
}

/// Parses a conversation id: a UUID in its hyphenated form.
pub(super) fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    // The echo of a bad id is bounded, and only made for a bad id.
    let shown = || text.chars().take(64).collect::<String>();
    if text.len() != 36 {
        return Err(ApiError::invalid_field(
            "id",
            format!(
                "must be a conversation UUID such as 5f1c2b7e-8a4d-4c31-9e0f-2d6b7a9c1e44, not {:?}",
                shown()
            ),
        ));
    }
    Uuid::try_parse(text).map_err(|_| {
        ApiError::invalid_field(
            "id",
            format!("must be a conversation UUID, not {:?}", shown()),
        )
    })
}

/// The answer for a found conversation: the `view` representation, or 304 when
/// `If-None-Match` names its ETag, with `ETag` and the cache headers. The handler and the
/// hit fast path both answer with it, so a hit looks the same whichever way it went.
pub(super) fn found_response(
    entry: &Cached<ConversationEntry>,
    representations: &Representations,
    status: CacheStatus,
    view: View,
    request_headers: &HeaderMap,
) -> Response {
    let (body, etag) = match view {
        View::Summary => (&representations.view, &representations.view_etag),
        View::Full => (&representations.full, &representations.full_etag),
    };
    let not_modified = matches_etag(request_headers, etag);
    let mut response = if not_modified {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        Response::new(Body::from(body.clone()))
    };
    let headers = response.headers_mut();
    // The headers set here and `x-request-id`: one allocation, no growth.
    headers.reserve(7);
    if !not_modified {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    headers.insert(header::ETAG, etag.clone());
    let memo = Some(&representations.hit_headers);
    if status == CacheStatus::Hit && view == View::Summary && representations.is_pushed() {
        headers::insert_pushed(entry, memo, headers);
    } else {
        headers::insert(entry, status, memo, headers);
    }
    response
}

/// The early answer to a fresh hit at `now` (the hit path's): as [`found_response`] with
/// [`CacheStatus::Hit`], the same headers in the same order as the router's answer
/// (`Content-Length` included), but a `200`'s whole header
/// block comes from the entry's memo ([`headers::hit_block`]: made once per `Age` and
/// `ttl` per view, then cloned). With `request_id_slot` the block ends with an
/// `x-request-id` placeholder, so that the front door's id takes its place instead of
/// growing the map: the front door must then replace it (it does when nothing adds
/// headers on the way, where the id comes last anyway). `revalidation` is the request's
/// headers when it has an `If-None-Match` (`None`: it has none, nothing to compare).
/// `None` leaves the request to the router (and a `304` to [`found_response`]).
pub(super) fn hit_response(
    entry: &Cached<ConversationEntry>,
    representations: &Representations,
    view: View,
    revalidation: Option<&HeaderMap>,
    now: Instant,
    request_id_slot: bool,
) -> Option<Response> {
    let (body, etag) = match view {
        View::Summary => (&representations.view, &representations.view_etag),
        View::Full => (&representations.full, &representations.full_etag),
    };
    if revalidation.is_some_and(|headers| matches_etag(headers, etag)) {
        return None;
    }
    let pushed = view == View::Summary && representations.is_pushed();
    let kind = view as u8 | u8::from(request_id_slot) << 1;
    let block = headers::hit_block(
        entry,
        pushed,
        &representations.hit_headers,
        kind,
        now,
        |values| {
            // Room for 7 (these six and the id): its index then has 16 slots, so that a
            // clone (whose index is as long) takes the front door's id, or CORS's
            // headers and the id, without growing.
            let mut block = HeaderMap::with_capacity(7);
            block.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            block.insert(header::ETAG, etag.clone());
            headers::put(&mut block, values);
            // Where the router's answer has it (axum sets it before the layers on the
            // way add theirs); hyper would otherwise add it last.
            block.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            if request_id_slot {
                block.insert(super::REQUEST_ID, HeaderValue::from_static("-"));
            }
            block
        },
    )?;
    let mut response = Response::new(Body::from(body.clone()));
    *response.headers_mut() = block;
    Some(response)
}

fn matches_etag(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let candidates = headers.get_all(header::IF_NONE_MATCH);
    // Most requests have none: the ETag's text is then not checked for nothing.
    if candidates.iter().next().is_none() {
        return false;
    }
    let etag = etag.to_str().unwrap_or_default();
    candidates
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| {
            candidate == "*" || candidate == etag || candidate.strip_prefix("W/") == Some(etag)
        })
}

/// Get a conversation's live state.
///
/// Served from the proxy's cache while fresh (seconds for an active conversation, longer
/// once it has ended); concurrent requests for the same id share one Genesys call; when
/// Genesys is slow or down, a cached copy is served within bounds (`Cache-Status` says so).
#[utoipa::path(
    get,
    path = "/conversations/{id}",
    tag = "conversations",
    params(
        ("id" = uuid::Uuid, Path, description = "The conversation id: a UUID in its hyphenated form", example = "5f1c2b7e-8a4d-4c31-9e0f-2d6b7a9c1e44"),
        ("view" = inline(Option<View>), Query, description = "`summary` (default): the simplified ConversationView; `full`: Genesys' Conversation document byte for byte"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier response: 304 when unchanged"),
    ),
    responses(
        (status = 200, description = "The conversation (summary view; with `view=full`, Genesys' `Conversation` document)", body = ConversationBody,
            headers(
                ("ETag" = String, description = "Identifies this representation"),
                ("Cache-Control" = String, description = "`private, max-age=<freshness lifetime in seconds>`: what is left is max-age minus Age (RFC 9111 §4.2)"),
                ("Age" = u64, description = "Seconds since the proxy fetched it from Genesys, rounded up"),
                ("Cache-Status" = String, description = "RFC 9211: `hit`, `fwd=miss`, `fwd=stale`, `collapsed`, `detail=stale-if-error`, `detail=pushed` (the summary was updated by a Genesys notification)"),
            )),
        (status = 304, description = "Unchanged since the ETag in If-None-Match"),
        (status = 400, description = "The id is not a UUID, or a query parameter is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the conversations:read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Genesys has no such conversation", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Genesys refused the proxy (missing permission, rejected credentials) or sent an unusable answer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Genesys cannot answer in time and nothing cached may be served; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The request took longer than the proxy's inbound timeout", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn get_conversation(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let id = parse_id(&id)?;
    let view = parse_view(query.as_deref())?;
    let deadline = Instant::now() + state.upstream_wait();
    let conversations = &state.conversations;
    let served = match view {
        View::Summary => {
            conversations
                .get(id, Class::Realtime, &caller, deadline)
                .await
        }
        // A view pushed by a notification is newer than the document: `get_document`
        // serves the document under its own freshness.
        View::Full => {
            conversations
                .get_document(id, Class::Realtime, &caller, deadline)
                .await
        }
    }
    .map_err(ApiError::from)?;
    tracing::Span::current().record("cache.status", served.status.label());
    match &served.entry.value {
        ConversationEntry::NotFound => {
            let mut response =
                ApiError::not_found(format!("Genesys Cloud has no conversation {id}"))
                    .into_response();
            headers::insert(&served.entry, served.status, None, response.headers_mut());
            Ok(response)
        }
        ConversationEntry::Found(representations) => Ok(found_response(
            &served.entry,
            representations,
            served.status,
            view,
            headers,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_read_the_same_with_and_without_the_shortcut() {
        for (query, view) in [
            (None, Some(View::Summary)),
            (Some(""), Some(View::Summary)),
            (Some("view=summary"), Some(View::Summary)),
            (Some("view="), Some(View::Summary)),
            (Some("view=full"), Some(View::Full)),
            (Some("view=full&"), Some(View::Full)),
            (Some("view=summary&view=full"), Some(View::Full)),
            (Some("view=fulll"), None),
            (Some("view=full&x=1"), None),
            (Some("View=full"), None),
        ] {
            assert_eq!(parse_view(query).ok(), view, "{query:?}");
        }
    }

    #[test]
    fn ids_must_be_hyphenated_uuids() {
        assert!(parse_id("5f1c2b7e-8a4d-4c31-9e0f-2d6b7a9c1e44").is_ok());
        for bad in [
            "abc",
            "5f1c2b7e8a4d4c319e0f2d6b7a9c1e44",
            "{5f1c2b7e-8a4d-4c31-9e0f-2d6b7a9c1e4}",
            &"x".repeat(10_000),
        ] {
            let error = parse_id(bad).expect_err("invalid");
            assert_eq!(error.errors[0].name, "id");
            assert!(error.detail.len() < 300, "the echo is bounded");
        }
    }

    #[test]
    fn only_the_view_parameter_is_accepted() {
        assert_eq!(parse_view(None).expect("none"), View::Summary);
        assert_eq!(parse_view(Some("view=full")).expect("full"), View::Full);
        assert_eq!(
            parse_view(Some("view=bogus")).expect_err("bad").errors[0].name,
            "view"
        );
        assert_eq!(
            parse_view(Some("expand=participants"))
                .expect_err("unknown")
                .errors[0]
                .name,
            "expand"
        );
    }
}
