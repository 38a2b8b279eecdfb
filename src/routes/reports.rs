//! `/reports/search` and `/reports/aggregates`, as POST (JSON body) and GET (the same
//! fields as query parameters, for dashboards and browsers).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};
use tokio::time::Instant;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::reports::request::{
    AggregatesQuery, AggregatesRequest, Field, SearchQuery, SearchRequest, fields_from_query,
};
use crate::reports::{AggregatesResponseBody, SearchResponse};

/// The error answers of every report route, as the document describes them (the handlers
/// answer [`ApiError`]s).
#[derive(Debug)]
pub struct ReportErrors;

impl IntoResponses for ReportErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            (400, "Invalid fields, each named in `errors`"),
            (401, "No or unknown API key"),
            (403, "The key lacks the reports:read scope"),
            (502, "Genesys refused or sent an unusable answer"),
            (503, "Genesys cannot answer in time; see Retry-After"),
        ])
    }
}

/// The further error answers of the report routes that take a JSON body (the POST forms).
#[derive(Debug)]
pub struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            (413, "The body exceeds the configured limit"),
            (415, "The body is not JSON"),
        ])
    }
}

/// `application/problem+json` answers, by status, each described.
fn problems(answers: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    answers
        .iter()
        .map(|&(status, description)| {
            let problem = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/problem+json", problem)
                .build();
            (status.to_string(), response.into())
        })
        .collect()
}

/// The fields of a JSON body.
fn body_fields(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as application/json",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_field("body", "must be a JSON object")),
        Err(error) => Err(ApiError::invalid_field(
            "body",
            format!("is not valid JSON: {error}"),
        )),
    }
}

/// The fields of GET query parameters, for a request whose fields are `fields`.
fn query_fields(query: Option<&str>, fields: &[Field]) -> Result<Map<String, Value>, ApiError> {
    fields_from_query(query.unwrap_or(""), fields)
}

async fn search(
    state: &AppState,
    caller: &Caller,
    fields: &Map<String, Value>,
) -> Result<Json<SearchResponse>, ApiError> {
    let query = SearchQuery::parse(fields, &state.settings.reports)?;
    let deadline = Instant::now() + state.upstream_wait();
    state
        .reports
        .search(&query, caller, deadline)
        .await
        .map(Json)
}

async fn aggregates(
    state: &AppState,
    caller: &Caller,
    fields: &Map<String, Value>,
) -> Result<Json<AggregatesResponseBody>, ApiError> {
    let query = AggregatesQuery::parse(fields, &state.settings.reports)?;
    let deadline = Instant::now() + state.upstream_wait();
    state
        .reports
        .aggregate(&query, caller, deadline)
        .await
        .map(Json)
}

/// Find conversations by interval and filters (historical).
///
/// Give `from`/`to` or `last`, and any filters (each list matches any of its values; lists
/// combine with AND). Results are ordered by conversation start and paged: pass
/// `next_cursor` as `cursor` with the same fields for the next page. Long intervals are
/// split into Genesys-sized chunks behind the scenes. Identical queries share one cached
/// Genesys query; relative intervals (`last`) end on the minute so dashboards share it too.
#[utoipa::path(
    post,
    path = "/reports/search",
    tag = "reports",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "A page of matching conversations", body = SearchResponse),
        ReportErrors,
        BodyErrors,
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn search_post(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SearchResponse>, ApiError> {
    let fields = body_fields(&headers, &body)?;
    search(&state, &caller, &fields).await
}

/// Find conversations (GET form).
///
/// The same search as `POST /reports/search`, with its fields as query parameters: the
/// interval as `from` and `to` or as `last`, each list comma-separated or repeated
/// (`queue_ids=a,b` or `queue_ids=a&queue_ids=b`). Results are ordered by conversation
/// start and paged: pass `next_cursor` as `cursor` with the same parameters for the next
/// page.
#[utoipa::path(
    get,
    path = "/reports/search",
    tag = "reports",
    params(SearchRequest),
    responses(
        (status = 200, description = "A page of matching conversations", body = SearchResponse),
        ReportErrors,
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn search_get(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    RawQuery(query): RawQuery,
) -> Result<Json<SearchResponse>, ApiError> {
    let fields = query_fields(query.as_deref(), SearchRequest::FIELDS)?;
    search(&state, &caller, &fields).await
}

/// Aggregate metrics over an interval (historical).
///
/// Counts and durations per group and bucket, such as the average wait of a queue per
/// hour: give `from`/`to` or `last`, the `metrics`, and optionally `group_by`, a
/// `granularity` and filters. Counts come as `count`; durations as `count`, `sum`, `avg`,
/// `min` and `max`, in seconds. Groups and buckets without data are left out. Identical
/// queries share one cached Genesys query.
#[utoipa::path(
    post,
    path = "/reports/aggregates",
    tag = "reports",
    request_body = AggregatesRequest,
    responses(
        (status = 200, description = "Series of metric statistics", body = AggregatesResponseBody),
        ReportErrors,
        BodyErrors,
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn aggregates_post(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<AggregatesResponseBody>, ApiError> {
    let fields = body_fields(&headers, &body)?;
    aggregates(&state, &caller, &fields).await
}

/// Aggregate metrics (GET form).
///
/// The same aggregation as `POST /reports/aggregates`, with its fields as query
/// parameters: the interval as `from` and `to` or as `last`, each list comma-separated or
/// repeated (`metrics=offered,wait` or `metrics=offered&metrics=wait`).
#[utoipa::path(
    get,
    path = "/reports/aggregates",
    tag = "reports",
    params(AggregatesRequest),
    responses(
        (status = 200, description = "Series of metric statistics", body = AggregatesResponseBody),
        ReportErrors,
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn aggregates_get(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    RawQuery(query): RawQuery,
) -> Result<Json<AggregatesResponseBody>, ApiError> {
    let fields = query_fields(query.as_deref(), AggregatesRequest::FIELDS)?;
    aggregates(&state, &caller, &fields).await
}
