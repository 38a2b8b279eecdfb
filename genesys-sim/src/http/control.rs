//! The `/sim` control API: read and set faults, read and reset counters, read and clear
//! the journal of analytics query bodies, revoke tokens, move the simulated clock, and list
//! the org's directory with sample conversation ids.
//! It is unauthenticated: the simulator is a test and demo tool, never exposed.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::Faults;
use crate::render::format_time;
use crate::state::SimState;

/// The control routes.
pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route(
            "/sim/faults",
            get(get_faults).put(put_faults).delete(clear_faults),
        )
        .route("/sim/counters", get(get_counters).delete(reset_counters))
        .route("/sim/journal", get(get_journal).delete(clear_journal))
        .route("/sim/tokens/revoke", post(revoke_tokens))
        .route("/sim/clock", get(get_clock))
        .route("/sim/clock/advance", post(advance_clock))
        .route("/sim/org", get(org))
        .route("/sim/requests", get(requests))
}

async fn get_faults(State(sim): State<Arc<SimState>>) -> Json<Faults> {
    Json(sim.faults())
}

async fn put_faults(State(sim): State<Arc<SimState>>, body: axum::body::Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(faults) => faults,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": error.to_string()})),
            )
                .into_response();
        }
    };
    if let Err(message) = faults.validate() {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response();
    }
    sim.set_faults(faults.clone());
    Json(faults).into_response()
}

async fn clear_faults(State(sim): State<Arc<SimState>>) -> Json<Faults> {
    sim.set_faults(Faults::default());
    Json(Faults::default())
}

async fn get_counters(State(sim): State<Arc<SimState>>) -> Response {
    Json(sim.counters.snapshot()).into_response()
}

async fn reset_counters(State(sim): State<Arc<SimState>>) -> StatusCode {
    sim.counters.reset();
    StatusCode::NO_CONTENT
}

async fn get_journal(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({ "queries": sim.journal.entries() }))
}

async fn clear_journal(State(sim): State<Arc<SimState>>) -> StatusCode {
    sim.journal.clear();
    StatusCode::NO_CONTENT
}

async fn revoke_tokens(State(sim): State<Arc<SimState>>) -> StatusCode {
    sim.tokens.revoke_all();
    StatusCode::NO_CONTENT
}

fn clock(sim: &SimState) -> Value {
    json!({ "now": format_time(sim.now()), "anchor": format_time(sim.data.anchor) })
}

async fn get_clock(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(clock(&sim))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(State(sim): State<Arc<SimState>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Advance>(&body) {
        Ok(advance) if advance.seconds >= 0 => {
            sim.advance_clock(chrono::Duration::seconds(advance.seconds));
            Json(clock(&sim)).into_response()
        }
        Ok(_) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "seconds must not be negative"})),
        )
            .into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": error.to_string()})),
        )
            .into_response(),
    }
}

async fn requests(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({ "requests": sim.recent_requests() }))
}

/// Number of sample ids of each kind `/sim/org` lists.
const SAMPLES: usize = 5;

async fn org(State(sim): State<Arc<SimState>>) -> Json<Value> {
    let org = &sim.data.org;
    let now = sim.now();
    let live: Vec<_> = sim
        .data
        .conversations
        .iter()
        .filter(|c| c.start <= now && !c.is_over_at(now))
        .take(SAMPLES)
        .map(|c| c.id)
        .collect();
    let ended: Vec<_> = sim
        .data
        .conversations
        .iter()
        .rev()
        .filter(|c| c.is_over_at(now))
        .take(SAMPLES)
        .map(|c| c.id)
        .collect();
    Json(json!({
        "divisions": org.divisions.iter().map(|d| json!({"id": d.id, "name": d.name})).collect::<Vec<_>>(),
        "queues": org.queues.iter().map(|q| json!({"id": q.id, "name": q.name, "divisionId": org.divisions[q.division].id})).collect::<Vec<_>>(),
        "agents": org.agents.iter().map(|a| json!({"id": a.id, "name": a.name})).collect::<Vec<_>>(),
        "wrapupCodes": org.wrapup_codes.iter().map(|w| json!({"id": w.id, "name": w.name})).collect::<Vec<_>>(),
        "conversations": {
            "total": sim.data.conversations.len(),
            "started": sim.data.conversations.partition_point(|c| c.start <= now),
            "last_start": sim.data.conversations.last().map(|c| format_time(c.start)),
            "first_start": sim.data.conversations.first().map(|c| format_time(c.start)),
            "sample_live_ids": live,
            "sample_ended_ids": ended,
        },
    }))
}
