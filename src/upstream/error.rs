//! [`UpstreamError`]: what Genesys (or the way to it) did, classified. Routes map each
//! kind to one status and problem; nothing of Genesys' raw body is passed on.

use std::time::Duration;

use super::budget::Refusal;
use super::token::TokenError;

/// A failed upstream call, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Genesys answered 404.
    #[error("Genesys has no such resource")]
    NotFound,
    /// Genesys answered 403: the OAuth client lacks a permission.
    #[error("the Genesys OAuth client lacks a permission: {message}")]
    Forbidden { message: String },
    /// Genesys still answered 401 after a fresh token.
    #[error("Genesys refused a freshly obtained token")]
    Unauthorized,
    /// No token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The budget could not serve the call before its deadline.
    #[error("the upstream rate budget cannot serve this call in time")]
    Overloaded { retry_after: Duration },
    /// Genesys kept answering 429 until the deadline.
    #[error("Genesys is rate limiting this proxy")]
    RateLimited { retry_after: Duration },
    /// Genesys kept failing (5xx) or could not be reached until the retries ran out.
    #[error("Genesys is unavailable: {detail}")]
    Unavailable { detail: String },
    /// Genesys answered 400: the proxy sent a query Genesys does not accept.
    #[error("Genesys rejected the request ({code}): {message}")]
    BadRequest { code: String, message: String },
    /// A success response whose body could not be decoded.
    #[error("Genesys sent a response that could not be decoded: {detail}")]
    Decode { detail: String },
    /// Any other status.
    #[error("Genesys answered with unexpected status {status}")]
    Unexpected { status: u16 },
}

impl UpstreamError {
    /// When trying again may help, if that is known.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Overloaded { retry_after } | Self::RateLimited { retry_after } => {
                Some(*retry_after)
            }
            Self::Token(error) => Some(error.retry_after()),
            _ => None,
        }
    }

    /// A short stable label (metrics, logs).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Forbidden { .. } => "forbidden",
            Self::Unauthorized => "unauthorized",
            Self::Token(TokenError::BadCredentials { .. }) => "bad_credentials",
            Self::Token(TokenError::LoginUnavailable { .. }) => "login_unavailable",
            Self::Overloaded { .. } => "overloaded",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::BadRequest { .. } => "bad_request",
            Self::Decode { .. } => "decode",
            Self::Unexpected { .. } => "unexpected",
        }
    }

    /// Whether a cached copy of the resource may be served instead of this error (within
    /// its stale-if-error bound). The rule, class by class:
    ///
    /// - **Genesys could not answer**: serve stale. Connection failures, timeouts and 5xx
    ///   (`Unavailable`, an `Unexpected` 5xx or 408), a 429 storm or our own budget's
    ///   refusal (`RateLimited`, `Overloaded`: the budget holds further calls back, so the
    ///   stale copy does not hammer Genesys), the login host down, and a body that cannot be
    ///   decoded (a truncated answer says nothing about the resource). The copy was true
    ///   when fetched; it is the best answer there is until Genesys answers again.
    /// - **Our own credentials fail** (`Token(BadCredentials)`, `Unauthorized`): serve
    ///   stale. The copy was obtained legitimately, and a rotated secret should not take
    ///   down every wallboard at once; each failed token request is logged as a warning
    ///   naming the settings to fix, and fresh fetches fail until it is fixed.
    /// - **Genesys answered about the resource or the request**: do not. 404 (it is gone),
    ///   403 (the OAuth client lost the permission to read it: the revocation is respected
    ///   at once), 400 (Genesys refuses the query; asking again will not change that) and
    ///   any other 4xx. The cache also drops its stale copy on these answers.
    #[must_use]
    pub fn may_serve_stale(&self) -> bool {
        match self {
            Self::Unavailable { .. }
            | Self::Overloaded { .. }
            | Self::RateLimited { .. }
            | Self::Decode { .. }
            | Self::Token(_)
            | Self::Unauthorized => true,
            Self::Unexpected { status } => *status == 408 || *status >= 500,
            Self::NotFound | Self::Forbidden { .. } | Self::BadRequest { .. } => false,
        }
    }
}

impl From<Refusal> for UpstreamError {
    fn from(refusal: Refusal) -> Self {
        Self::Overloaded {
            retry_after: refusal.retry_after(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_to_answer_and_our_own_credentials_may_serve_stale() {
        let secs = Duration::from_secs;
        let serve_stale = [
            UpstreamError::Unavailable {
                detail: "Genesys answered 503".into(),
            },
            UpstreamError::Unexpected { status: 501 },
            UpstreamError::Unexpected { status: 408 },
            UpstreamError::RateLimited {
                retry_after: secs(30),
            },
            UpstreamError::Overloaded {
                retry_after: secs(1),
            },
            UpstreamError::Decode {
                detail: "EOF while parsing".into(),
            },
            UpstreamError::Token(TokenError::LoginUnavailable {
                reason: "login host answered 503".into(),
                retry_after: secs(1),
            }),
            UpstreamError::Token(TokenError::BadCredentials {
                reason: "login host answered 401, invalid_client".into(),
                retry_after: secs(30),
            }),
            UpstreamError::Unauthorized,
        ];
        let answer_the_error = [
            UpstreamError::NotFound,
            UpstreamError::Forbidden {
                message: "missing.permissions".into(),
            },
            UpstreamError::BadRequest {
                code: "bad.request".into(),
                message: "interval".into(),
            },
            UpstreamError::Unexpected { status: 410 },
            UpstreamError::Unexpected { status: 409 },
        ];
        for error in serve_stale {
            assert!(
                error.may_serve_stale(),
                "{} should serve stale",
                error.kind()
            );
        }
        for error in answer_the_error {
            assert!(
                !error.may_serve_stale(),
                "{} should not serve stale",
                error.kind()
            );
        }
    }
}
