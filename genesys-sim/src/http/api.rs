//! Handlers of the simulated Platform API routes. Auth, rate limits and faults are
//! already handled by the guard; these only answer with data or an ErrorBody (and note
//! each analytics query body in the journal first).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use crate::data::ConversationRecord;
use crate::error_body::ApiError;
use crate::journal::QueryKind;
use crate::query::aggregates::AggregatesQuery;
use crate::query::details::DetailsQuery;
use crate::render;
use crate::state::SimState;

/// A conversation visible at `now` (it has started), by id text.
fn visible<'a>(sim: &'a SimState, id: &str) -> Option<&'a ConversationRecord> {
    let id = Uuid::parse_str(id).ok()?;
    sim.data.get(&id).filter(|c| c.start <= sim.now())
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad.request",
            format!(
                "The request could not be understood by the server due to malformed syntax: {error}"
            ),
        )
    })
}

/// `GET /api/v2/conversations/{conversationId}`.
pub async fn get_conversation(
    State(sim): State<Arc<SimState>>,
    Path(id): Path<String>,
) -> Response {
    match visible(&sim, &id) {
        Some(record) => {
            Json(render::realtime::at(record, &sim.data.org, sim.now())).into_response()
        }
        None => ApiError::not_found("conversation").into_response(),
    }
}

/// `POST /api/v2/analytics/conversations/details/query`.
pub async fn details_query(State(sim): State<Arc<SimState>>, body: Bytes) -> Response {
    sim.journal.record(QueryKind::Details, &body);
    let query = match json_body(&body).and_then(|b| DetailsQuery::parse(&b, &sim.config.limits)) {
        Ok(query) => query,
        Err(error) => return error.into_response(),
    };
    json_response(sim.details_page(&query).to_json())
}

/// `GET /api/v2/analytics/conversations/details?id=a,b&id=c` (multi-get).
pub async fn details_multi_get(
    State(sim): State<Arc<SimState>>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut ids = Vec::new();
    for pair in query.as_deref().unwrap_or("").split('&') {
        if let Some(value) = pair.strip_prefix("id=") {
            let decoded = value.replace("%2C", ",").replace("%2c", ",");
            ids.extend(
                decoded
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    let max = sim.config.limits.max_multi_get_ids;
    if ids.len() > max {
        return ApiError::bad_field(
            "bad.request",
            "id",
            format!(
                "{} ids were requested; at most {max} may be requested at once",
                ids.len()
            ),
        )
        .into_response();
    }
    let now = sim.now();
    let mut body = String::from("{\"conversations\":[");
    for (i, record) in ids.iter().filter_map(|id| visible(&sim, id)).enumerate() {
        if i > 0 {
            body.push(',');
        }
        render::analytics::at(record, &sim.data.org, now).write_json(&mut body);
    }
    body.push_str("]}");
    json_response(body)
}

/// A 200 with a JSON body already written.
fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /api/v2/analytics/conversations/{conversationId}/details`.
pub async fn details_get(State(sim): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match visible(&sim, &id) {
        Some(record) => {
            let mut body = String::new();
            render::analytics::at(record, &sim.data.org, sim.now()).write_json(&mut body);
            json_response(body)
        }
        None => ApiError::not_found("conversation").into_response(),
    }
}

/// `POST /api/v2/analytics/conversations/aggregates/query`.
pub async fn aggregates_query(State(sim): State<Arc<SimState>>, body: Bytes) -> Response {
    sim.journal.record(QueryKind::Aggregates, &body);
    let query = match json_body(&body).and_then(|b| AggregatesQuery::parse(&b, &sim.config.limits))
    {
        Ok(query) => query,
        Err(error) => return error.into_response(),
    };
    json_response(query.run(&sim.data, sim.now()))
}

/// Any other `/api/v2` path: 404 ErrorBody.
pub async fn unknown_route() -> Response {
    ApiError::not_found("resource").into_response()
}
