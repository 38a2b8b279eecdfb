//! The token in shared mode: one refresh for all replicas. A replica that needs a token
//! first reads Redis; a token there with more than the refresh margin left is used as is.
//! Otherwise the replica takes Redis' refresh lock and asks the login host (re-reading
//! Redis once it holds the lock), or, when another replica holds the lock, waits for that
//! one's token, for at most `redis.token_lock_ms`. A token is stored sealed (see
//! [`crate::shared::seal`]). When Redis is unavailable (or the wait runs out), the replica
//! asks the login host itself: a local token until Redis answers again. Then the replica
//! rejoins: the next call takes the shared token from Redis, or, when Redis holds none,
//! stores the token it holds there for all (no new token is asked for): its local token,
//! or the shared one a Redis restarted empty has lost (a replica starting later would
//! otherwise find none and ask for a second token).

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;

use super::{Cached, TokenError, TokenManager};
use crate::shared::SharedTier;
use crate::shared::token::Found;

/// How often a replica waiting on another's refresh looks for its token.
const WAIT_STEP: Duration = Duration::from_millis(25);

/// A token obtained for this replica.
#[derive(Debug)]
pub(super) struct Obtained {
    pub(super) token: SecretString,
    /// Time left before it expires.
    pub(super) expires_in: Duration,
    /// Its lifetime when issued (sizes the refresh margin).
    pub(super) issued_for: Duration,
    /// The sealed value in Redis, when it is the shared token.
    pub(super) sealed: Option<Vec<u8>>,
}

impl TokenManager {
    /// Attaches the shared tier (once, at build): tokens are then shared through Redis.
    pub fn attach_shared(&self, shared: Arc<SharedTier>) {
        let _ = self.shared.set(shared);
    }

    /// The shared tier, in shared mode.
    pub fn shared(&self) -> Option<&Arc<SharedTier>> {
        self.shared.get()
    }

    /// Whether the token this replica holds is the shared one sealed as `sealed`.
    pub fn uses_sealed(&self, sealed: &[u8]) -> bool {
        self.cached()
            .and_then(|c| c.sealed.clone())
            .is_some_and(|mine| mine == sealed)
    }

    /// Whether Redis is available and `cached` is a local token (obtained while Redis was
    /// unavailable), or a shared token obtained before the replica's last rejoin (Redis
    /// may have restarted empty): the replica then rejoins the shared token, or puts its
    /// own back in Redis.
    pub(super) fn rejoining(&self, cached: &Cached) -> bool {
        self.shared.get().is_some_and(|s| {
            s.available() && (cached.sealed.is_none() || s.store.rejoins() != cached.rejoins)
        })
    }

    /// The shared tier's rejoin count (0 alone).
    pub(super) fn shared_rejoins(&self) -> u64 {
        self.shared.get().map_or(0, |s| s.store.rejoins())
    }

    /// The refresh margin for a token issued for `issued_for`.
    pub(super) fn margin(&self, issued_for: Duration) -> Duration {
        Duration::from_secs(self.settings.token_refresh_margin_secs).min(issued_for / 5)
    }

    /// A token from the login host (counted as a token request).
    async fn login_request(&self) -> Result<Obtained, TokenError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.requesting
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let outcome = self.login.request().await;
        self.requesting
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let (token, expires_in) = outcome?;
        Ok(Obtained {
            token,
            expires_in,
            issued_for: expires_in,
            sealed: None,
        })
    }

    /// A fresh token: from Redis, from this replica's refresh under Redis' lock, or (alone
    /// or with Redis unavailable) from the login host directly.
    pub(super) async fn obtain(&self) -> Result<Obtained, TokenError> {
        let Some(shared) = self.shared.get().filter(|s| s.available()) else {
            return self.login_request().await;
        };
        let give_up = Instant::now() + Duration::from_millis(shared.settings.token_lock_ms);
        loop {
            match shared.read_token().await {
                Ok(Some(found)) if self.usable(&found) => return Ok(self.found(found)),
                Ok(_) => {}
                Err(_) => return self.login_request().await,
            }
            match shared.lock_token().await {
                Ok(true) => return self.refresh_shared(shared).await,
                Ok(false) if Instant::now() < give_up => tokio::time::sleep(WAIT_STEP).await,
                Ok(false) => {
                    tracing::warn!(
                        "another replica holds the shared token's refresh lock for too long; obtaining a token of this replica's own"
                    );
                    return self.login_request().await;
                }
                Err(_) => return self.login_request().await,
            }
        }
    }

    /// Holding Redis' refresh lock: re-reads Redis (another replica may have just
    /// stored one), else asks the login host and stores its token sealed.
    async fn refresh_shared(&self, shared: &SharedTier) -> Result<Obtained, TokenError> {
        if let Ok(Some(found)) = shared.read_token().await {
            if self.usable(&found) {
                shared.unlock_token().await;
                return Ok(self.found(found));
            }
        }
        let outcome = match self.adoptable() {
            Some(held) => Ok(held),
            None => self.login_request().await,
        };
        if let Ok(obtained) = &outcome {
            match shared
                .write_token(&obtained.token, obtained.expires_in, obtained.issued_for)
                .await
            {
                Ok(sealed) => {
                    shared.unlock_token().await;
                    return outcome.map(|o| Obtained {
                        sealed: Some(sealed),
                        ..o
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "could not store the shared token; using it locally");
                }
            }
        }
        shared.unlock_token().await;
        outcome
    }

    /// The token this replica holds (a local one, obtained while Redis was unavailable, or
    /// the shared one Redis lost), when it has more than the refresh margin left: shared
    /// as it is when Redis holds none.
    fn adoptable(&self) -> Option<Obtained> {
        let cached = self.cached()?;
        let left = cached.expires_at.saturating_duration_since(Instant::now());
        (left > self.margin(cached.issued_for)).then(|| Obtained {
            token: cached.bearer.secret().clone(),
            expires_in: left,
            issued_for: cached.issued_for,
            sealed: None,
        })
    }

    /// Whether a token found in Redis is worth using: more than the refresh margin left,
    /// and not the one this replica saw refused.
    fn usable(&self, found: &Found) -> bool {
        let issued_for = Duration::from_secs(found.opened.issued_for_secs);
        let refused = self
            .refused_sealed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|sealed| *sealed == found.sealed);
        !refused && found.remaining > self.margin(issued_for)
    }

    fn found(&self, found: Found) -> Obtained {
        Obtained {
            token: found.opened.token,
            expires_in: found.remaining,
            issued_for: Duration::from_secs(found.opened.issued_for_secs),
            sealed: Some(found.sealed),
        }
    }

    /// Genesys answered 401 to the shared token `sealed`: drops it from Redis for every
    /// replica (unless already replaced), and never takes it from Redis again.
    pub(super) fn drop_shared(&self, sealed: Vec<u8>) {
        *self
            .refused_sealed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(sealed.clone());
        let Some(shared) = self.shared.get().cloned() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = shared.drop_token(sealed).await {
                    tracing::debug!(%error, "could not drop the refused shared token");
                }
            });
        }
    }
}
