//! The `/sim` controls of the Notifications API and of conversation changes: read the
//! channels and counters, change the timings, cut every socket, close them for
//! maintenance, and list when conversations changed (for the staleness benchmark).
//! Refused subscriptions and stopped heartbeats are faults (`PUT /sim/faults`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::changes::{change_instants, version_at};
use crate::config::NotificationSettings;
use crate::render::format_time;
use crate::state::SimState;

/// The routes.
pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/sim/notifications", get(overview))
        .route(
            "/sim/notifications/counters",
            axum::routing::delete(reset_counters),
        )
        .route("/sim/notifications/settings", put(put_settings))
        .route("/sim/notifications/drop", post(drop_sockets))
        .route("/sim/notifications/maintenance", post(maintenance))
        .route("/sim/changes", get(changes))
}

fn settings_json(settings: &NotificationSettings) -> Value {
    json!({
        "channel_lifetime_secs": settings.channel_lifetime.as_secs_f64(),
        "heartbeat_interval_ms": settings.heartbeat_interval.as_millis() as u64,
        "max_channels": settings.max_channels,
        "max_topics": settings.max_topics,
        "event_tick_ms": settings.event_tick.as_millis() as u64,
    })
}

async fn overview(State(sim): State<Arc<SimState>>) -> Json<Value> {
    let notifications = &sim.notifications;
    let mut channels: Vec<Value> = notifications
        .channels()
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "expires": format_time(c.expires),
                "connected": c.connected(),
                "topics": c.topics(),
            })
        })
        .collect();
    channels.sort_by_key(|c| c["id"].as_str().unwrap_or_default().to_owned());
    Json(json!({
        "settings": settings_json(&notifications.settings()),
        "channels": channels,
        "counters": notifications.counters(),
    }))
}

async fn reset_counters(State(sim): State<Arc<SimState>>) -> StatusCode {
    sim.notifications.reset_counters();
    StatusCode::NO_CONTENT
}

/// A partial change of the settings; absent fields keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    channel_lifetime_secs: Option<f64>,
    heartbeat_interval_ms: Option<u64>,
    max_channels: Option<usize>,
    max_topics: Option<usize>,
    event_tick_ms: Option<u64>,
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

async fn put_settings(State(sim): State<Arc<SimState>>, body: axum::body::Bytes) -> Response {
    let change: SettingsChange = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(error) => return bad(error.to_string()),
    };
    let mut settings = sim.notifications.settings();
    if let Some(secs) = change.channel_lifetime_secs {
        match Duration::try_from_secs_f64(secs) {
            Ok(lifetime) if secs > 0.0 => settings.channel_lifetime = lifetime,
            _ => return bad("channel_lifetime_secs must be a positive number of seconds"),
        }
    }
    for (value, field, name) in [
        (
            change.heartbeat_interval_ms,
            &mut settings.heartbeat_interval,
            "heartbeat_interval_ms",
        ),
        (
            change.event_tick_ms,
            &mut settings.event_tick,
            "event_tick_ms",
        ),
    ] {
        if let Some(ms) = value {
            if ms == 0 {
                return bad(format!("{name} must be at least 1"));
            }
            *field = Duration::from_millis(ms);
        }
    }
    for (value, field, name) in [
        (
            change.max_channels,
            &mut settings.max_channels,
            "max_channels",
        ),
        (change.max_topics, &mut settings.max_topics, "max_topics"),
    ] {
        if let Some(n) = value {
            if n == 0 {
                return bad(format!("{name} must be at least 1"));
            }
            *field = n;
        }
    }
    sim.notifications.set_settings(settings.clone());
    Json(settings_json(&settings)).into_response()
}

async fn drop_sockets(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({"dropped": sim.notifications.drop_sockets()}))
}

async fn maintenance(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({"closed": sim.notifications.close_for_maintenance()}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    since: Option<DateTime<Utc>>,
}

/// `GET /sim/changes?since=`: every conversation running now or changed in
/// `(since, now]` (simulated clock; `since` defaults to now), with its version, when it
/// last changed (simulated time and Unix milliseconds of the wall clock) and the changes
/// after `since`.
async fn changes(
    State(sim): State<Arc<SimState>>,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad("since must be an RFC 3339 instant");
    };
    let now = sim.now();
    let since = query.since.unwrap_or(now).min(now);
    let offset = now - Utc::now();
    let started = sim.data.conversations.partition_point(|c| c.start <= now);
    let conversations: Vec<Value> = sim.data.conversations[..started]
        .iter()
        .filter(|c| c.last_event() > since)
        .map(|record| {
            let instants = change_instants(record, &sim.data.org);
            let version = version_at(&instants, now);
            let last = instants[version.saturating_sub(1)];
            let recent: Vec<String> = instants[..version]
                .iter()
                .filter(|&&at| at > since)
                .map(|&at| format_time(at))
                .collect();
            json!({
                "id": record.id,
                "version": version,
                "last_change": format_time(last),
                "last_change_unix_ms": (last - offset).timestamp_millis(),
                "next_change": instants.get(version).map(|&at| format_time(at)),
                "changes_since": recent,
            })
        })
        .collect();
    Json(json!({
        "now": format_time(now),
        "clock_offset_ms": offset.num_milliseconds(),
        "conversations": conversations,
    }))
    .into_response()
}
