//! `/reports/search` and `/reports/aggregates`, as POST (JSON body) and GET (the same
//! fields as query parameters, for dashboards and browsers).

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::reports::request::{
    AggregatesQuery, AggregatesRequest, SearchQuery, SearchRequest, fields_from_query,
};
use crate::reports::{AggregatesResponseBody, SearchResponse};

/// The error answers of every report route.
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only: handlers answer `ApiError`
pub enum ReportErrors {
    /// Invalid fields, each named in `errors`
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(Problem),
    /// No or unknown API key
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The key lacks the reports:read scope
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Genesys refused or sent an unusable answer
    #[response(status = 502, content_type = "application/problem+json")]
    BadGateway(Problem),
    /// Genesys cannot answer in time; see Retry-After
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// The further error answers of the report routes that take a JSON body (the POST forms).
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only: handlers answer `ApiError`
pub enum BodyErrors {
    /// The body exceeds the configured limit
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not JSON
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
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

fn query_fields(query: Option<&str>) -> Result<Map<String, Value>, ApiError> {
    fields_from_query(query.unwrap_or(""))
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

/// Find conversations (GET form: the same fields as query parameters; lists
/// comma-separated or repeated).
#[utoipa::path(
    get,
    path = "/reports/search",
    tag = "reports",
    params(
        ("from" = Option<String>, Query, description = "Interval start (RFC 3339), with `to`"),
        ("to" = Option<String>, Query, description = "Interval end (RFC 3339, exclusive)"),
        ("last" = Option<String>, Query, description = "Instead of from/to: ISO-8601 duration ending now, e.g. PT15M", example = "PT15M"),
        ("queue_ids" = Option<String>, Query, description = "Comma-separated queue ids"),
        ("user_ids" = Option<String>, Query, description = "Comma-separated agent user ids"),
        ("media_types" = Option<String>, Query, description = "Comma-separated media types"),
        ("directions" = Option<String>, Query, description = "inbound and/or outbound"),
        ("wrapup_codes" = Option<String>, Query, description = "Comma-separated wrap-up codes"),
        ("division_ids" = Option<String>, Query, description = "Comma-separated division ids"),
        ("min_handle_seconds" = Option<u64>, Query, description = "Some agent's handle time is at least this"),
        ("max_handle_seconds" = Option<u64>, Query, description = "Some agent's handle time is at most this"),
        ("order" = Option<String>, Query, description = "asc (default) or desc"),
        ("page_size" = Option<u32>, Query, description = "Results per page (default 50, at most 500)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("include" = Option<String>, Query, description = "`conversation` to attach each hit's live view"),
    ),
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
    let fields = query_fields(query.as_deref())?;
    search(&state, &caller, &fields).await
}

/// Aggregate metrics over an interval (historical): counts and durations per group and
/// bucket, such as the average wait of a queue per hour.
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

/// Aggregate metrics (GET form: the same fields as query parameters).
#[utoipa::path(
    get,
    path = "/reports/aggregates",
    tag = "reports",
    params(
        ("from" = Option<String>, Query, description = "Interval start (RFC 3339), with `to`"),
        ("to" = Option<String>, Query, description = "Interval end (RFC 3339, exclusive)"),
        ("last" = Option<String>, Query, description = "Instead of from/to: ISO-8601 duration ending now"),
        ("granularity" = Option<String>, Query, description = "Bucket length, ISO-8601 (PT30M, PT1H, P1D)"),
        ("group_by" = Option<String>, Query, description = "Comma-separated: queue_id, user_id, media_type, direction, wrapup_code, division_id"),
        ("metrics" = String, Query, description = "Comma-separated: offered, connected, transferred, handle, talk, hold, acw, wait, abandon, answered, alert"),
        ("queue_ids" = Option<String>, Query, description = "Comma-separated queue ids"),
        ("user_ids" = Option<String>, Query, description = "Comma-separated agent user ids"),
        ("media_types" = Option<String>, Query, description = "Comma-separated media types"),
        ("directions" = Option<String>, Query, description = "inbound and/or outbound"),
        ("wrapup_codes" = Option<String>, Query, description = "Comma-separated wrap-up codes"),
        ("division_ids" = Option<String>, Query, description = "Comma-separated division ids"),
    ),
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
    let fields = query_fields(query.as_deref())?;
    aggregates(&state, &caller, &fields).await
}
