//! The layer in front of every `/api/v2` route, doing what Genesys' gateway does: it
//! checks the bearer token, counts the request against the token's rate window, injects
//! configured faults, stamps `inin-correlation-id` and `inin-ratelimit-*`, puts the
//! correlation id into ErrorBody's `contextId`, and counts the response (arrivals are
//! counted before it, by the router in `http`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::counters::endpoint;
use crate::error_body::ApiError;
use crate::faults::INJECTABLE_STATUSES;
use crate::state::SimState;
use crate::tokens::{Admission, TokenStatus};

/// Largest response body the malformed-body fault will buffer to truncate.
const MAX_BUFFERED_BODY: usize = 64 * 1024 * 1024;

/// The counter label of a request.
pub fn label(method: &Method, path: &str) -> &'static str {
    let rest = path.strip_prefix("/api/v2/").unwrap_or("");
    let parts: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["conversations", _]) => endpoint::GET_CONVERSATION,
        ("POST", ["analytics", "conversations", "details", "query"]) => endpoint::DETAILS_QUERY,
        ("POST", ["analytics", "conversations", "aggregates", "query"]) => {
            endpoint::AGGREGATES_QUERY
        }
        ("GET", ["analytics", "conversations", "details"]) => endpoint::DETAILS_MULTI_GET,
        ("GET", ["analytics", "conversations", _, "details"]) => endpoint::DETAILS_GET,
        ("POST" | "GET", ["notifications", "channels"])
        | ("HEAD", ["notifications", "channels", _]) => endpoint::CHANNELS,
        ("GET" | "POST" | "PUT" | "DELETE", ["notifications", "channels", _, "subscriptions"]) => {
            endpoint::SUBSCRIPTIONS
        }
        ("GET", ["routing", "queues"]) => endpoint::ROUTING_QUEUES,
        _ => endpoint::UNKNOWN,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

fn injected(status: u16) -> ApiError {
    let (code, message) = match status {
        500 => (
            "internal.server.error",
            "The server encountered an unexpected condition.",
        ),
        502 => (
            "bad.gateway",
            "The gateway received an invalid response from an upstream service.",
        ),
        503 => ("service.unavailable", "Service is currently unavailable."),
        _ => ("request.timeout", "The request timed out."),
    };
    ApiError::new(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        code,
        message,
    )
}

fn rate_headers(response: &mut Response, admission: Admission) {
    let headers = response.headers_mut();
    headers.insert("inin-ratelimit-count", HeaderValue::from(admission.count));
    headers.insert("inin-ratelimit-allowed", HeaderValue::from(admission.limit));
    headers.insert(
        "inin-ratelimit-reset",
        HeaderValue::from(admission.reset_secs),
    );
}

/// Decides the response for an authenticated request, before or instead of the handler.
async fn admitted(sim: &SimState, token: &str, request: Request, next: Next) -> Response {
    let storm = sim.update_faults(|faults| {
        let storm = faults.storm.clone()?;
        match storm.remaining {
            Some(0) => {
                faults.storm = None;
                None
            }
            Some(n) => {
                faults.storm = Some(crate::faults::Storm {
                    remaining: Some(n - 1),
                    ..storm
                });
                Some(storm.retry_after_secs)
            }
            None => Some(storm.retry_after_secs),
        }
    });
    let limit = sim.config.rate_limit;
    if let Some(retry_after) = storm {
        let mut response = ApiError::rate_limited(retry_after).into_response();
        rate_headers(
            &mut response,
            Admission {
                allowed: false,
                count: limit,
                limit,
                reset_secs: retry_after,
            },
        );
        return response;
    }
    let admission = sim.tokens.admit(token, limit, sim.config.rate_window);
    if !admission.allowed {
        let mut response = ApiError::rate_limited(admission.reset_secs).into_response();
        rate_headers(&mut response, admission);
        return response;
    }
    let faults = sim.faults();
    let draw = sim.fault_draw();
    let mut cumulative = 0.0;
    let mut failure = None;
    for status in INJECTABLE_STATUSES {
        cumulative += faults.error_rates.get(&status).copied().unwrap_or(0.0);
        if failure.is_none() && draw < cumulative {
            failure = Some(status);
        }
    }
    let mut response = match failure {
        Some(status) => injected(status).into_response(),
        None if faults.forbidden => ApiError::new(
            StatusCode::FORBIDDEN,
            "missing.permissions",
            "Unable to perform the requested action. You are missing the following permission(s): [conversation:communication:view]",
        )
        .into_response(),
        None => next.run(request).await,
    };
    if response.status() == StatusCode::OK && faults.malformed_responses > 0 {
        let take = sim.update_faults(|f| {
            let take = f.malformed_responses > 0;
            f.malformed_responses = f.malformed_responses.saturating_sub(1);
            take
        });
        if take {
            response = malformed(response).await;
        }
    }
    rate_headers(&mut response, admission);
    response
}

async fn malformed(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BUFFERED_BODY)
        .await
        .unwrap_or_default();
    let cut = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}

/// The middleware.
pub async fn guard(State(sim): State<Arc<SimState>>, request: Request, next: Next) -> Response {
    let label = label(request.method(), request.uri().path());
    sim.note_request(crate::state::SeenRequest {
        endpoint: label.to_owned(),
        traceparent: request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    let correlation = sim.correlation_id();
    let faults = sim.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let mut response = if faults.outage {
        injected(503).into_response()
    } else {
        match bearer(request.headers()).map(str::to_owned) {
            None => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
            )
            .into_response(),
            Some(token) => match sim.tokens.status(&token) {
                TokenStatus::Unknown => ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad.credentials",
                    "Invalid login credentials.",
                )
                .into_response(),
                TokenStatus::Expired => ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    sim.config.expired_token_code.as_str(),
                    "The supplied credentials are expired and cannot be used.",
                )
                .into_response(),
                TokenStatus::Valid => admitted(&sim, &token, request, next).await,
            },
        }
    };
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        let body = axum::Json(error.body(&correlation));
        let headers = std::mem::take(response.headers_mut());
        let status = response.status();
        response = (status, body).into_response();
        for (name, value) in &headers {
            if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        response.headers_mut().insert("inin-correlation-id", value);
    }
    sim.counters.record(label, response.status().as_u16());
    response
}
