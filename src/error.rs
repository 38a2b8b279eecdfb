//! [`ApiError`]: every error the proxy answers, rendered as `application/problem+json`
//! (RFC 9457) with a stable `type`, `title`, `status`, `detail`, `instance` (the request
//! id) and, for validation errors, one entry per bad field.
//!
//! Handlers return `ApiError`; the [`problem_layer`] middleware renders it with the
//! request id, and also turns any other error response (axum's 404/405/413/415/408,
//! tower-http's rejections) into a problem, so no error path answers plain text.

use std::time::Duration;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::upstream::UpstreamError;

/// The content type of problems.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name as the client sent it (e.g. `page_size`, `id`).
    #[schema(example = "page_size")]
    pub name: String,
    /// What is wrong with it.
    #[schema(example = "must be between 1 and 100")]
    pub reason: String,
}

/// A problem document (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; stable, so clients can switch on it.
    #[schema(example = "urn:genesys-proxy:problem:invalid-request")]
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    #[schema(example = "The request is invalid")]
    pub title: String,
    /// The HTTP status.
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong with this request.
    #[schema(example = "id: must be a conversation UUID")]
    pub detail: String,
    /// The request id (also in the `x-request-id` header and the logs).
    #[schema(example = "5b0e7c3e-3f0a-4a8e-9a49-4f1f2e3d4c5b")]
    pub instance: String,
    /// One entry per invalid field (validation errors only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds after which retrying may succeed (also in `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// An error answer of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// The last part of the problem `type` (e.g. `invalid-request`).
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with no field list.
    #[must_use]
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 listing the invalid fields.
    #[must_use]
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.name, e.reason))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            errors,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "The request is invalid",
                detail,
            )
        }
    }

    /// 400 about one field.
    #[must_use]
    pub fn invalid_field(name: &str, reason: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError {
            name: name.to_owned(),
            reason: reason.into(),
        }])
    }

    /// 404 for a resource that does not exist.
    #[must_use]
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 503 with `Retry-After`: the proxy sheds load or Genesys cannot be reached in time.
    #[must_use]
    pub fn unavailable(detail: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after.max(Duration::from_secs(1))),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream-unavailable",
                "Genesys Cloud cannot answer right now",
                detail,
            )
        }
    }

    /// Renders the problem with `instance` (the request id).
    #[must_use]
    pub fn problem(&self, instance: &str) -> Problem {
        Problem {
            kind: format!("urn:genesys-proxy:problem:{}", self.slug),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            instance: instance.to_owned(),
            errors: self.errors.clone(),
            retry_after: self.retry_after.map(ceil_secs),
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl From<UpstreamError> for ApiError {
    /// One mapping from what Genesys did to what the client sees. Genesys' own bodies
    /// are never passed on; causes are logged in full where they happen.
    fn from(error: UpstreamError) -> Self {
        let retry = error.retry_after().unwrap_or(Duration::from_secs(5));
        match error {
            UpstreamError::NotFound => Self::not_found("Genesys Cloud has no such conversation"),
            UpstreamError::Forbidden { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream-permission-missing",
                "The proxy's Genesys OAuth client lacks a permission",
                "Genesys Cloud refused the proxy's OAuth client: grant it the permission conversation:communication:view (and analytics:conversationDetail:view / analytics:conversationAggregate:view for reports)",
            ),
            UpstreamError::Unauthorized
            | UpstreamError::Token(crate::upstream::token::TokenError::BadCredentials { .. }) => {
                Self {
                    retry_after: Some(retry),
                    ..Self::new(
                        StatusCode::BAD_GATEWAY,
                        "upstream-credentials-rejected",
                        "Genesys Cloud rejected the proxy's credentials",
                        "Genesys Cloud rejected the proxy's OAuth client credentials; the operator must fix GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET",
                    )
                }
            }
            UpstreamError::Token(crate::upstream::token::TokenError::LoginUnavailable {
                ..
            }) => Self::unavailable("the Genesys Cloud login service is unavailable", retry),
            UpstreamError::Overloaded { .. } | UpstreamError::RateLimited { .. } => {
                Self::unavailable(
                    "the Genesys Cloud rate budget cannot serve this request in time; retry later",
                    retry,
                )
            }
            UpstreamError::Unavailable { .. } => {
                Self::unavailable("Genesys Cloud is unavailable", retry)
            }
            UpstreamError::BadRequest { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream-rejected-query",
                "Genesys Cloud rejected the proxy's query",
                "Genesys Cloud rejected the query the proxy built from this request",
            ),
            UpstreamError::Decode { .. } | UpstreamError::Unexpected { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream-bad-response",
                "Genesys Cloud sent an unusable response",
                "Genesys Cloud sent a response the proxy could not use",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The body is rendered by `problem_layer`, which knows the request id; this
        // placeholder only shows if the layer is missing.
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The request id of a request (set by the request-id layer).
fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// A problem for an error response that no handler described (router 404/405, body
/// limit 413, unsupported media 415, timeouts 408, panics 500).
fn generic(status: StatusCode) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::not_found("no route matches this path; see /docs"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method-not-allowed",
            "Method not allowed",
            "this path does not accept this method; see /docs",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "body-too-large",
            "Request body too large",
            "the request body exceeds the configured limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as application/json",
        ),
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ApiError::new(
            status,
            "timeout",
            "The request timed out",
            "the request took longer than the configured inbound timeout",
        ),
        StatusCode::BAD_REQUEST => ApiError::new(
            status,
            "invalid-request",
            "The request is invalid",
            "the request could not be read",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::new(
            status,
            "invalid-request",
            "The request is invalid",
            "the request body could not be read",
        ),
        _ if status.is_server_error() => ApiError::new(
            status,
            "internal",
            "Internal error",
            "the proxy failed to handle this request; the cause is in its logs under this request id",
        ),
        _ => ApiError::new(
            status,
            "error",
            "Error",
            status.canonical_reason().unwrap_or("error"),
        ),
    }
}

/// Renders every error response as problem+json with the request id.
pub async fn problem_layer(request: Request, next: Next) -> Response {
    let instance = request_id(request.headers());
    let mut response = next.run(request).await;
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(error) => error,
        None => {
            let status = response.status();
            // A JSON error body written on purpose (the problem itself, or /readyz's
            // per-component report) stays; empty and plain-text ones become problems.
            let is_json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(PROBLEM_JSON) || v.starts_with("application/json"));
            if !(status.is_client_error() || status.is_server_error()) || is_json {
                return response;
            }
            generic(status)
        }
    };
    let problem = error.problem(&instance);
    let mut rendered = (error.status, Json(problem)).into_response();
    rendered
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(retry) = error.retry_after {
        rendered
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(ceil_secs(retry)));
    }
    // Keep the headers other layers set (request id, CORS, WWW-Authenticate).
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE
            && name != header::CONTENT_LENGTH
            && !rendered.headers().contains_key(name)
        {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}
