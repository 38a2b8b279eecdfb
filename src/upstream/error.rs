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

    /// Whether the failure says nothing about the resource itself (so a cached copy may
    /// be served instead): everything but 404.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::NotFound)
    }
}

impl From<Refusal> for UpstreamError {
    fn from(refusal: Refusal) -> Self {
        Self::Overloaded {
            retry_after: refusal.retry_after(),
        }
    }
}
