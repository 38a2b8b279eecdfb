//! The token as a readiness probe sees it: [`TokenManager::readiness`] reads the state
//! without waiting on the login host, and [`TokenManager::refresh_in_background`] starts a
//! refresh in a task of its own that a probe may wait for a bounded moment.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use tokio::time::Instant;

use super::{TokenError, TokenManager};

/// The token as a readiness probe sees it, read without waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReadiness {
    /// A token is held and has not expired.
    pub held: bool,
    /// Seconds until the held token expires.
    pub expires_in_secs: Option<u64>,
    /// A token request is under way.
    pub refreshing: bool,
    /// The last token request failed (cleared by the next success).
    pub failure: Option<TokenError>,
    /// Genesys refuses freshly obtained tokens (see [`TokenManager::fresh_token_refused`]).
    pub refused: bool,
}

impl TokenReadiness {
    /// Whether calls to Genesys can be made with this token now.
    #[must_use]
    pub fn usable(&self) -> bool {
        self.held && !self.refused
    }

    /// The `genesys_token` component of `/readyz`: `status` is `ok` (held, last request
    /// fine), `failing` (the last token request failed; `detail` says why), `refused`
    /// (Genesys refuses fresh tokens) or `pending` (none held yet, a request under way).
    #[must_use]
    pub fn report(&self) -> serde_json::Value {
        let status = if self.refused {
            "refused"
        } else if self.failure.is_some() {
            "failing"
        } else if self.held {
            "ok"
        } else {
            "pending"
        };
        let mut report = serde_json::json!({
            "status": status,
            "held": self.held,
            "refreshing": self.refreshing,
        });
        if let Some(expires_in) = self.expires_in_secs {
            report["expires_in_secs"] = expires_in.into();
        }
        if let Some(failure) = &self.failure {
            report["detail"] = failure.to_string().into();
            report["retry_after_secs"] = failure.retry_after().as_secs().into();
        } else if self.refused {
            report["detail"] = "Genesys refused a freshly obtained token".into();
        }
        report
    }
}

impl TokenManager {
    /// The token's state for a readiness probe, read without waiting.
    pub fn readiness(&self) -> TokenReadiness {
        let now = Instant::now();
        let held = self.cached().filter(|c| now < c.expires_at);
        let failure = self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(error, until)| {
                error
                    .clone()
                    .with_retry_after(until.saturating_duration_since(now))
            });
        TokenReadiness {
            held: held.is_some(),
            expires_in_secs: held.map(|c| (c.expires_at - now).as_secs()),
            refreshing: self.requesting.load(Ordering::Relaxed),
            failure,
            refused: self.refusing(),
        }
    }

    /// Starts a refresh in a task of its own when the token is missing or due and none
    /// is running (the usual backoff after a failure applies). While a background refresh
    /// runs (this one or an earlier one), the receiver changes when it has finished;
    /// nobody has to wait for it. `None` when no refresh is running.
    pub fn refresh_in_background(self: &Arc<Self>) -> Option<tokio::sync::watch::Receiver<u64>> {
        let finished = self.background_done.subscribe();
        let now = Instant::now();
        let wanted = self.cached().is_none_or(|c| now >= c.refresh_at);
        if !wanted {
            return None;
        }
        if !self.background.swap(true, Ordering::AcqRel) {
            let tokens = Arc::clone(self);
            tokio::spawn(async move {
                // Flags the task finished even if the refresh panicked.
                struct Finished(Arc<TokenManager>);
                impl Drop for Finished {
                    fn drop(&mut self) {
                        self.0.background.store(false, Ordering::Release);
                        self.0.background_done.send_modify(|n| *n += 1);
                    }
                }
                let finished = Finished(tokens);
                if let Err(error) = finished.0.bearer().await {
                    tracing::debug!(%error, "background token refresh failed");
                }
            });
        }
        Some(finished)
    }
}
