//! Genesys refusing freshly obtained tokens (a 401 that a new token does not cure, such
//! as `ip.not.authorized`): the refusal is remembered for an exponential, jittered pause
//! during which callers are answered at once, and after it one caller at a time (holding
//! the [`Probe`]) finds out whether it still holds.

use std::sync::PoisonError;
use std::time::Duration;

use tokio::time::Instant;

use super::{BAD_CREDENTIALS_BACKOFF, TokenManager};

/// Genesys refused a fresh token: callers are answered at once until `until`.
#[derive(Debug)]
pub(super) struct Refused {
    until: Instant,
    consecutive: u32,
    /// A caller is trying again after the pause: the others keep being answered at once.
    probing: bool,
}

/// The one caller allowed to try again after a refused-token pause; dropping it (whatever
/// became of the call) lets the next caller try.
#[derive(Debug)]
pub struct Probe<'a> {
    tokens: &'a TokenManager,
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if let Some(refused) = self.tokens.refused_state().as_mut() {
            refused.probing = false;
        }
    }
}

impl TokenManager {
    fn refused_state(&self) -> std::sync::MutexGuard<'_, Option<Refused>> {
        self.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a call may go upstream, given a remembered refusal of fresh tokens:
    /// `Ok(None)` when none is remembered; `Ok(Some(probe))` when the pause is over and
    /// this caller is the one to try again (hold the probe for the call); `Err(wait)`
    /// when callers are to be answered at once, `wait` being what is left of the pause.
    ///
    /// # Errors
    /// The time left of the pause while a refusal is remembered.
    pub fn refusal(&self) -> Result<Option<Probe<'_>>, Duration> {
        let mut state = self.refused_state();
        let Some(refused) = state.as_mut() else {
            return Ok(None);
        };
        let now = Instant::now();
        if now < refused.until {
            return Err(refused.until - now);
        }
        if refused.probing {
            // Another caller is finding out; it takes one call, or two with a new token.
            return Err(Duration::from_secs(1));
        }
        refused.probing = true;
        Ok(Some(Probe { tokens: self }))
    }

    /// Genesys answered 401 to a token obtained after an earlier 401: a fresh token does
    /// not help (an IP allow-list, a revoked grant). Remembers it for an exponential,
    /// jittered pause (from 10 s up to `token_backoff_max_secs`) and returns the pause.
    pub fn fresh_token_refused(&self, code: &str) -> Duration {
        let mut state = self.refused_state();
        let now = Instant::now();
        if let Some(refused) = state.as_ref().filter(|r| now < r.until) {
            // Calls that were under way when the refusal was first seen: one pause.
            return refused.until - now;
        }
        let consecutive = state.as_ref().map_or(0, |r| r.consecutive) + 1;
        let wait = self.backoff(BAD_CREDENTIALS_BACKOFF, consecutive);
        tracing::warn!(
            code,
            consecutive,
            backoff_ms = wait.as_millis(),
            "Genesys refused a freshly obtained token; answering callers at once during the backoff"
        );
        *state = Some(Refused {
            until: now + wait,
            consecutive,
            probing: false,
        });
        wait
    }

    /// Whether callers are being answered at once after a refused fresh token.
    pub fn refusing(&self) -> bool {
        self.refused_state()
            .as_ref()
            .is_some_and(|r| Instant::now() < r.until)
    }

    /// Genesys accepted a token: any remembered refusal is over.
    pub fn token_accepted(&self) {
        let mut state = self.refused_state();
        if state.take().is_some() {
            tracing::info!("Genesys accepts the token again");
        }
    }
}
