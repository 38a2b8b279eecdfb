//! [`Bearer`]: the token as one request carries it. Its `Debug` hides the token, and its
//! header value is marked sensitive; the secret is exposed only to build that header.

use std::fmt;
use std::sync::Arc;

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

/// A bearer token to put on one request. Never printed.
#[derive(Clone)]
pub struct Bearer {
    token: Arc<SecretString>,
    /// Which token this is: pass it back to [`TokenManager::invalidate`] after a 401.
    pub generation: u64,
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer")
            .field("token", &"[REDACTED]")
            .field("generation", &self.generation)
            .finish()
    }
}

impl Bearer {
    /// Token number `generation` (counted from 1 by the manager).
    pub(super) fn new(token: SecretString, generation: u64) -> Self {
        Self {
            token: Arc::new(token),
            generation,
        }
    }

    /// The token itself (to seal it into the shared tier).
    pub(super) fn secret(&self) -> &SecretString {
        &self.token
    }

    /// The `Authorization` header value, marked sensitive (hidden from HTTP debug output).
    #[must_use]
    pub fn header_value(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.token.expose_secret()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        value.set_sensitive(true);
        value
    }
}
