//! OAuth bearer tokens the simulator has issued, and the per-token rate window Genesys
//! applies to each (300 requests per minute by default).
//!
//! Time is `tokio::time::Instant`, so tests that pause tokio's clock can expire tokens and
//! roll rate windows without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use tokio::time::Instant;

use crate::rng::SimRng;

/// What the store knows of a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    Valid,
    Expired,
    /// Never issued, or revoked.
    Unknown,
}

/// The outcome of counting one request against a token's rate window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The request may proceed.
    pub allowed: bool,
    /// Requests counted in the current window (after this one, when allowed).
    pub count: u32,
    /// The window's limit.
    pub limit: u32,
    /// Whole seconds until the window resets (rounded up).
    pub reset_secs: u64,
}

#[derive(Debug)]
struct Issued {
    expires_at: Instant,
    window_start: Option<Instant>,
    count: u32,
}

/// Issued tokens and their rate windows.
#[derive(Debug)]
pub struct TokenStore {
    tokens: Mutex<HashMap<String, Issued>>,
    rng: Mutex<SimRng>,
}

/// Above this many stored tokens, expired ones are dropped when a new one is issued.
const PRUNE_ABOVE: usize = 1_000;

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl TokenStore {
    /// An empty store whose tokens are drawn from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            tokens: Mutex::new(HashMap::new()),
            rng: Mutex::new(SimRng::new(seed ^ 0x746f_6b65_6e73)),
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Issues a new opaque token valid for `ttl`.
    pub fn issue(&self, ttl: Duration) -> String {
        let bytes: Vec<u8> = {
            let mut rng = self
                .rng
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (0..4).flat_map(|_| rng.next_u64().to_le_bytes()).collect()
        };
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut tokens = self.tokens();
        if tokens.len() > PRUNE_ABOVE {
            tokens.retain(|_, issued| issued.expires_at > now);
        }
        tokens.insert(
            token.clone(),
            Issued {
                expires_at: now + ttl,
                window_start: None,
                count: 0,
            },
        );
        token
    }

    /// Whether `token` is valid now.
    pub fn status(&self, token: &str) -> TokenStatus {
        match self.tokens().get(token) {
            Some(issued) if issued.expires_at > Instant::now() => TokenStatus::Valid,
            Some(_) => TokenStatus::Expired,
            None => TokenStatus::Unknown,
        }
    }

    /// Every token still stored (valid or expired; revoked ones are gone). For tests that
    /// check a token never leaks.
    #[must_use]
    pub fn issued(&self) -> Vec<String> {
        self.tokens().keys().cloned().collect()
    }

    /// Revokes every issued token.
    pub fn revoke_all(&self) {
        self.tokens().clear();
    }

    /// Counts a request against `token`'s window of `window` length and `limit` requests.
    /// A refused request is not counted.
    pub fn admit(&self, token: &str, limit: u32, window: Duration) -> Admission {
        let now = Instant::now();
        let mut tokens = self.tokens();
        let Some(issued) = tokens.get_mut(token) else {
            return Admission {
                allowed: false,
                count: 0,
                limit,
                reset_secs: ceil_secs(window),
            };
        };
        let start = match issued.window_start {
            Some(start) if now < start + window => start,
            _ => {
                issued.window_start = Some(now);
                issued.count = 0;
                now
            }
        };
        let reset_secs = ceil_secs(start + window - now).max(1);
        if issued.count >= limit {
            return Admission {
                allowed: false,
                count: issued.count,
                limit,
                reset_secs,
            };
        }
        issued.count += 1;
        Admission {
            allowed: true,
            count: issued.count,
            limit,
            reset_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokens_expire_after_their_ttl() {
        let store = TokenStore::new(1);
        let token = store.issue(Duration::from_secs(300));
        assert_eq!(store.status(&token), TokenStatus::Valid);
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!(store.status(&token), TokenStatus::Expired);
        assert_eq!(store.status("nonsense"), TokenStatus::Unknown);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_refuses_past_the_limit_and_resets() {
        let store = TokenStore::new(1);
        let token = store.issue(Duration::from_secs(3600));
        let window = Duration::from_secs(60);
        for expected in 1..=3 {
            let admission = store.admit(&token, 3, window);
            assert!(admission.allowed);
            assert_eq!(admission.count, expected);
        }
        let refused = store.admit(&token, 3, window);
        assert!(!refused.allowed);
        assert_eq!(refused.reset_secs, 60);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(store.admit(&token, 3, window).allowed);
    }

    #[test]
    fn revoked_tokens_are_unknown() {
        let store = TokenStore::new(1);
        let token = store.issue(Duration::from_secs(60));
        store.revoke_all();
        assert_eq!(store.status(&token), TokenStatus::Unknown);
    }
}
