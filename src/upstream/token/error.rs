//! [`TokenError`]: why no token could be had, with the backoff in force, worded for the
//! operator (never with the secret).

use std::time::Duration;

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The login host refused the client credentials.
    #[error(
        "Genesys refused the OAuth client credentials ({reason}); check GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET"
    )]
    BadCredentials {
        reason: String,
        retry_after: Duration,
    },
    /// The login host could not be reached or failed.
    #[error("the Genesys login service is unavailable ({reason})")]
    LoginUnavailable {
        reason: String,
        retry_after: Duration,
    },
}

impl TokenError {
    /// When asking again may succeed (the backoff in force).
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::BadCredentials { retry_after, .. }
            | Self::LoginUnavailable { retry_after, .. } => *retry_after,
        }
    }

    pub(super) fn with_retry_after(self, wait: Duration) -> Self {
        match self {
            Self::BadCredentials { reason, .. } => Self::BadCredentials {
                reason,
                retry_after: wait,
            },
            Self::LoginUnavailable { reason, .. } => Self::LoginUnavailable {
                reason,
                retry_after: wait,
            },
        }
    }
}
