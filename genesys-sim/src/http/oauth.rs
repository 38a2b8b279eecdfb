//! `POST /oauth/token`: the client-credentials grant of the login host (HTTP Basic client
//! authentication, form body `grant_type=client_credentials`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use crate::counters::endpoint;
use crate::error_body::oauth_error;
use crate::state::SimState;

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn grant_type(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("grant_type="))
        .map(str::to_owned)
}

/// The token endpoint.
pub async fn token(State(sim): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response {
    let faults = sim.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let response = if faults.outage || faults.login_outage {
        oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The login service is temporarily unavailable.",
        )
    } else {
        match basic_credentials(&headers) {
            None => oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required (HTTP Basic)",
            ),
            Some((id, secret))
                if id != sim.config.client_id || secret != sim.config.client_secret =>
            {
                let status = StatusCode::from_u16(sim.config.bad_client_status)
                    .unwrap_or(StatusCode::UNAUTHORIZED);
                oauth_error(
                    status,
                    "invalid_client",
                    "client not found or secret does not match",
                )
            }
            Some(_) => match grant_type(&body).as_deref() {
                Some("client_credentials") => {
                    let ttl = sim.config.token_ttl;
                    let access_token = sim.tokens.issue(ttl);
                    sim.counters.token_issued();
                    Json(json!({
                        "access_token": access_token,
                        "token_type": "bearer",
                        "expires_in": ttl.as_secs(),
                    }))
                    .into_response()
                }
                Some(other) => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    &format!("grant_type {other} is not supported"),
                ),
                None => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "grant_type is required",
                ),
            },
        }
    };
    sim.counters
        .record(endpoint::OAUTH_TOKEN, response.status().as_u16());
    response
}
