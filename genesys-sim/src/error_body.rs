//! Genesys' `ErrorBody`, the JSON every API error carries, and the OAuth-style error of
//! the token endpoint.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// One `details[]` entry of an ErrorBody.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    pub error_code: String,
    pub field_name: String,
}

/// An API error: status, Genesys `code` and message; rendered as ErrorBody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Detail>,
    /// `Retry-After` seconds (429 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with no field details.
    #[must_use]
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// A 400 about one field of the request body.
    #[must_use]
    pub fn bad_field(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, code, message);
        error.details.push(Detail {
            error_code: code.to_owned(),
            field_name: field.to_owned(),
        });
        error
    }

    /// 404 `not.found`.
    #[must_use]
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not.found",
            format!("The requested {what} was not found."),
        )
    }

    /// 429 `too.many.requests.retry.after` with `Retry-After`.
    #[must_use]
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too.many.requests.retry.after",
            format!(
                "Rate limit exceeded the maximum. Retry the request in [{retry_after_secs}] seconds"
            ),
        );
        error.retry_after = Some(retry_after_secs);
        error
    }

    /// The ErrorBody JSON, with `contextId` set to the response's correlation id.
    #[must_use]
    pub fn body(&self, context_id: &str) -> serde_json::Value {
        json!({
            "message": self.message,
            "code": self.code,
            "status": self.status.as_u16(),
            "messageParams": {},
            "contextId": context_id,
            "details": self.details,
            "errors": [],
        })
    }
}

impl IntoResponse for ApiError {
    /// The correlation id is filled in by the guard middleware, which owns it; here the
    /// body carries a placeholder that the guard replaces.
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let mut response = (self.status, axum::Json(self.body(""))).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// The token endpoint's OAuth-style error (`{error, description, error_description}`).
#[must_use]
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": error,
            "description": description,
            "error_description": description,
        })),
    )
        .into_response()
}
