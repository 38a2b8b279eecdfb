//! The Notifications API's routes: `POST /api/v2/notifications/channels` (and the channel
//! listing and `HEAD`), `GET|POST|PUT|DELETE .../channels/{id}/subscriptions` behind the
//! guard like every API route, and the socket upgrade at `GET /channels/{id}` (the
//! `connectUri`, outside the guard: Genesys' streaming host takes no token).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use super::channels::Channel;
use super::{pump, socket, topics};
use crate::error_body::ApiError;
use crate::render::format_time;
use crate::state::SimState;

/// The permission the subscription fault reports missing, per topic kind (Genesys'
/// exact permission names for these topics are UNCONFIRMED).
fn permission_of(topic: &str) -> &'static str {
    match topics::parse(topic) {
        Some(topics::TopicKind::UserConversations) => "conversation:communication:view",
        _ => "routing:queue:view",
    }
}

fn channel_json(channel: &Channel, host: &str) -> Value {
    json!({
        "connectUri": format!("ws://{host}/channels/{}", channel.id),
        "id": channel.id,
        "expires": format_time(channel.expires),
    })
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_owned()
}

/// Forgets expired channels, counting them.
fn purge(sim: &SimState) {
    let expired = sim.notifications.channels().purge_expired(Instant::now());
    if expired > 0 {
        sim.notifications
            .count(|c| c.channels_expired += expired as u64);
    }
}

/// `POST /api/v2/notifications/channels`.
pub async fn create_channel(State(sim): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    pump::ensure_started(&sim);
    purge(&sim);
    let settings = sim.notifications.settings();
    let id = format!("streaming-0-{}", &Uuid::new_v4().simple().to_string()[..26]);
    let lifetime = settings.channel_lifetime;
    let expires = sim.now()
        + chrono::Duration::from_std(lifetime).unwrap_or_else(|_| chrono::Duration::days(1));
    let mut channels = sim.notifications.channels();
    let evicted = channels.create(
        id.clone(),
        expires,
        Instant::now() + lifetime,
        settings.max_channels,
    );
    let body = channels
        .get(&id)
        .map(|c| channel_json(c, &host(&headers)))
        .unwrap_or_default();
    drop(channels);
    sim.notifications.count(|c| {
        c.channels_created += 1;
        c.channels_evicted += u64::from(evicted.is_some());
    });
    Json(body).into_response()
}

/// `GET /api/v2/notifications/channels` (`ChannelEntityListing`: the client's channels).
pub async fn list_channels(State(sim): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    purge(&sim);
    let host = host(&headers);
    let channels = sim.notifications.channels();
    let mut entities: Vec<&Channel> = channels.iter().collect();
    entities.sort_by(|a, b| a.expires.cmp(&b.expires).then(a.id.cmp(&b.id)));
    let entities: Vec<Value> = entities.iter().map(|c| channel_json(c, &host)).collect();
    Json(json!({ "entities": entities })).into_response()
}

/// `HEAD /api/v2/notifications/channels/{channelId}`: 200 when it exists, else 404.
pub async fn head_channel(State(sim): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    purge(&sim);
    if sim.notifications.channels().use_channel(&id).is_some() {
        StatusCode::OK.into_response()
    } else {
        ApiError::not_found("channel").into_response()
    }
}

fn listing(channel: &Channel) -> Response {
    let entities: Vec<Value> = channel
        .topics()
        .iter()
        .map(|t| json!({"id": t, "state": "Permitted"}))
        .collect();
    Json(json!({ "entities": entities })).into_response()
}

/// `GET .../channels/{channelId}/subscriptions`.
pub async fn get_subscriptions(
    State(sim): State<Arc<SimState>>,
    Path(id): Path<String>,
) -> Response {
    purge(&sim);
    match sim.notifications.channels().use_channel(&id) {
        Some(channel) => listing(channel),
        None => ApiError::not_found("channel").into_response(),
    }
}

/// `DELETE .../channels/{channelId}/subscriptions`: removes every topic (no body, as
/// the official operation documents).
pub async fn delete_subscriptions(
    State(sim): State<Arc<SimState>>,
    Path(id): Path<String>,
) -> Response {
    purge(&sim);
    let found = sim
        .notifications
        .channels()
        .use_channel(&id)
        .map(|channel| channel.set_topics(Vec::new()))
        .is_some();
    if !found {
        return ApiError::not_found("channel").into_response();
    }
    sim.notifications.count(|c| c.subscription_changes += 1);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct ChannelTopic {
    id: String,
}

/// The topics of a `ChannelTopic[]` body, validated.
fn requested_topics(body: &Bytes) -> Result<Vec<String>, ApiError> {
    let topics: Vec<ChannelTopic> = serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad.request",
            format!(
                "The request body must be a list of ChannelTopic ({{\"id\": \"<topic>\"}}): {error}"
            ),
        )
    })?;
    let topics: Vec<String> = topics.into_iter().map(|t| t.id).collect();
    if let Some(bad) = topics.iter().find(|t| topics::parse(t).is_none()) {
        let mut error = ApiError::bad_field(
            "notification.invalid.topic",
            "id",
            "The subscription topic is not valid.",
        );
        error.message = format!("The subscription topic is not valid. ({bad})");
        return Err(error);
    }
    Ok(topics)
}

/// `POST` (add) and `PUT` (replace) `.../channels/{channelId}/subscriptions`.
async fn change_subscriptions(sim: &SimState, id: &str, body: &Bytes, replace: bool) -> Response {
    purge(sim);
    if sim.notifications.channels().get(id).is_none() {
        return ApiError::not_found("channel").into_response();
    }
    let topics = match requested_topics(body) {
        Ok(topics) => topics,
        Err(error) => return error.into_response(),
    };
    if sim.faults().subscriptions_forbidden && !topics.is_empty() {
        let mut missing: Vec<&str> = topics.iter().map(|t| permission_of(t)).collect();
        missing.sort_unstable();
        missing.dedup();
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "missing.permissions",
            format!(
                "Unable to perform the requested action. You are missing the following permission(s): [{}]",
                missing.join(", ")
            ),
        )
        .into_response();
    }
    let max = sim.notifications.settings().max_topics;
    let mut channels = sim.notifications.channels();
    let Some(channel) = channels.use_channel(id) else {
        return ApiError::not_found("channel").into_response();
    };
    let mut wanted: Vec<String> = if replace {
        Vec::new()
    } else {
        channel.topics().to_vec()
    };
    for topic in topics {
        if !wanted.contains(&topic) {
            wanted.push(topic);
        }
    }
    if wanted.len() > max {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "notification.subscription.too.many.subscriptions",
            format!("Too many subscriptions: a channel holds at most {max} topics."),
        )
        .into_response();
    }
    channel.set_topics(wanted);
    let response = listing(channel);
    drop(channels);
    sim.notifications.count(|c| c.subscription_changes += 1);
    response
}

/// `POST .../channels/{channelId}/subscriptions`: adds topics.
pub async fn post_subscriptions(
    State(sim): State<Arc<SimState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    change_subscriptions(&sim, &id, &body, false).await
}

/// `PUT .../channels/{channelId}/subscriptions`: replaces the topics.
pub async fn put_subscriptions(
    State(sim): State<Arc<SimState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    change_subscriptions(&sim, &id, &body, true).await
}

/// `GET /channels/{channelId}`: the WebSocket. An unknown or expired channel is refused
/// with 404 before the upgrade; a second socket on a channel closes the first.
pub async fn connect(
    State(sim): State<Arc<SimState>>,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    purge(&sim);
    let attached = sim.notifications.channels().attach(&id);
    let Ok(attachment) = attached else {
        sim.notifications.count(|c| c.sockets_refused += 1);
        return (
            StatusCode::NOT_FOUND,
            Json(json!({
                "message": "The channel does not exist or has expired.",
                "code": "not.found",
                "status": 404,
            })),
        )
            .into_response();
    };
    sim.notifications.count(|c| {
        c.sockets_accepted += 1;
        c.sockets_replaced += u64::from(attachment.replaced);
    });
    upgrade.on_upgrade(move |ws| socket::serve(ws, sim, id, attachment))
}
