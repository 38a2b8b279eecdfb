//! `GET /api/v2/routing/queues`: the org's queues as a `QueueEntityListing`, paged like
//! Genesys' listings (`pageSize` default 25, at most 500; `pageNumber` from 1), so a
//! client can discover the queue ids the conversations and notification topics use.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::data::Org;
use crate::error_body::ApiError;
use crate::render::format_time;
use crate::state::SimState;

/// `pageSize` when none is given.
const DEFAULT_PAGE_SIZE: usize = 25;
/// Largest `pageSize` accepted (Genesys' usual cap for directory listings).
const MAX_PAGE_SIZE: usize = 500;
const PATH: &str = "/api/v2/routing/queues";

fn number(query: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => text.parse::<usize>().map_err(|_| {
            ApiError::bad_field(
                "bad.request",
                name,
                format!("{name} must be a positive integer, not {text:?}"),
            )
        }),
    }
}

fn queue(org: &Org, index: usize, created: &str) -> Value {
    let queue = &org.queues[index];
    let division = &org.divisions[queue.division];
    let members = org.agents_of(index).len();
    json!({
        "id": queue.id,
        "name": queue.name,
        "division": {
            "id": division.id,
            "name": division.name,
            "selfUri": format!("/api/v2/authorization/divisions/{}", division.id),
        },
        "dateCreated": created,
        "memberCount": members,
        "userMemberCount": members,
        "joinedMemberCount": members,
        "acwSettings": {"wrapupPrompt": "MANDATORY_TIMEOUT", "timeoutMs": 60_000},
        "skillEvaluationMethod": "ALL",
        "autoAnswerOnly": false,
        "enableTranscription": false,
        "enableManualAssignment": false,
        "selfUri": format!("{PATH}/{}", queue.id),
    })
}

/// The handler.
pub async fn list(
    State(sim): State<Arc<SimState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (size, page) = match (
        number(&query, "pageSize", DEFAULT_PAGE_SIZE),
        number(&query, "pageNumber", 1),
    ) {
        (Ok(size), Ok(page)) if (1..=MAX_PAGE_SIZE).contains(&size) && page >= 1 => (size, page),
        (Err(error), _) | (_, Err(error)) => return error.into_response(),
        _ => {
            return ApiError::bad_field(
                "bad.request",
                "pageSize",
                format!("pageSize must be 1 to {MAX_PAGE_SIZE} and pageNumber at least 1"),
            )
            .into_response();
        }
    };
    let org = &sim.data.org;
    let total = org.queues.len();
    let pages = total.div_ceil(size);
    let created = format_time(sim.data.anchor - chrono::Duration::days(365));
    let entities: Vec<Value> = (0..total)
        .skip((page - 1) * size)
        .take(size)
        .map(|i| queue(org, i, &created))
        .collect();
    let uri = |n: usize| format!("{PATH}?pageSize={size}&pageNumber={n}");
    let mut body = json!({
        "entities": entities,
        "pageSize": size,
        "pageNumber": page,
        "total": total,
        "firstUri": uri(1),
        "selfUri": uri(page),
        "lastUri": uri(pages.max(1)),
        "pageCount": pages,
    });
    if page < pages {
        body["nextUri"] = json!(uri(page + 1));
    }
    if page > 1 {
        body["previousUri"] = json!(uri(page - 1));
    }
    Json(body).into_response()
}
