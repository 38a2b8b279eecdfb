//! [`TokenManager`]: the one Genesys OAuth token the proxy holds (client-credentials
//! grant against the login host).
//!
//! The token is cached and refreshed a margin before it expires; however many callers
//! ask at once, one request goes to the login host (the refresh holds a lock, as
//! crates.io's GitHub-app client does). A caller whose call got a 401 invalidates the
//! token it used and asks again. Failures are classified (bad credentials vs login host
//! down) and remembered with an exponential, jittered backoff, so a broken secret cannot
//! hammer the login host. A refresh that is due re-checks, once it holds the lock, whether
//! another caller has just refreshed.
//!
//! When Genesys refuses a freshly obtained token too (a 401 that a new token does not cure,
//! such as `ip.not.authorized`), the client reports it with
//! [`TokenManager::fresh_token_refused`]: the refusal is remembered for an exponential,
//! jittered pause, during which callers are answered at once ([`TokenManager::refusal`])
//! instead of each spending two API calls and a token request. After the pause one caller
//! at a time tries again. The token and the secret never appear in logs or errors.
//!
//! Readiness probes never wait on the login host inline: [`TokenManager::readiness`]
//! reads the state as it is (a token held, due, the last failure), and
//! [`TokenManager::refresh_in_background`] starts a refresh in a task of its own when the
//! token is missing or due, which a probe may wait for a bounded moment.
//!
//! This file holds the cached token and its refresh; beside it: the token request to the
//! login host (`login`), the refusal of fresh tokens (`refusal`), the readiness view
//! (`readiness`), the counters and their metrics (`stats`), [`Bearer`] and [`TokenError`].

mod bearer;
mod error;
mod login;
mod readiness;
mod refusal;
mod shared;
mod stats;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

pub use bearer::Bearer;
pub use error::TokenError;
use login::Login;
pub use readiness::TokenReadiness;
pub use refusal::Probe;
use refusal::Refused;
pub use stats::TokenStats;

use super::settings::{ClientCredentials, UpstreamSettings};
use crate::egress::Egress;
use crate::shared::SharedTier;

#[derive(Debug)]
struct Cached {
    bearer: Bearer,
    refresh_at: Instant,
    expires_at: Instant,
    /// The sealed value in Redis, when it is the shared token.
    sealed: Option<Vec<u8>>,
    /// Its lifetime when issued.
    issued_for: Duration,
    /// The shared tier's rejoin count when it was obtained (0 alone): after a rejoin,
    /// Redis may have lost the shared token, and the next call looks (see `rejoining`).
    rejoins: u64,
}

#[derive(Debug)]
struct Failure {
    error: TokenError,
    until: Instant,
    consecutive: u32,
}

/// The shared Genesys token.
#[derive(Debug)]
pub struct TokenManager {
    login: Login,
    settings: UpstreamSettings,
    current: RwLock<Option<Arc<Cached>>>,
    /// Held while a token request is in flight; remembers the last failure.
    refresh: tokio::sync::Mutex<Option<Failure>>,
    /// Genesys refused a fresh token (see [`TokenManager::fresh_token_refused`]).
    refused: Mutex<Option<Refused>>,
    /// The last failure and when its backoff ends, readable while a request is under
    /// way (the `refresh` lock is held then).
    last_failure: Mutex<Option<(TokenError, Instant)>>,
    /// A token request is under way.
    requesting: AtomicBool,
    /// A background refresh task is running.
    background: AtomicBool,
    /// Counts finished background refreshes (a probe waits for the next one).
    background_done: tokio::sync::watch::Sender<u64>,
    generation: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    /// The shared tier, in shared mode (see `shared`).
    shared: OnceLock<Arc<SharedTier>>,
    /// The last shared token Genesys refused: never taken from Redis again.
    refused_sealed: Mutex<Option<Vec<u8>>>,
}

/// Shortest backoff after a failed token request.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Backoff after the login host refused the credentials: a secret does not fix itself
/// quickly, so wait longer from the first failure.
const BAD_CREDENTIALS_BACKOFF: Duration = Duration::from_secs(10);

impl TokenManager {
    /// A manager for `credentials` against `login` (the login base URL), calling it with
    /// `http` (built with `egress`, which names the proxy when it fails).
    ///
    /// # Errors
    /// When `login` cannot be joined with `/oauth/token`.
    pub fn new(
        http: reqwest::Client,
        egress: Egress,
        login: &Url,
        credentials: ClientCredentials,
        settings: UpstreamSettings,
    ) -> Result<Self, String> {
        let token_url = login.join("oauth/token").map_err(|e| e.to_string())?;
        Ok(Self {
            login: Login {
                http,
                egress,
                token_url,
                credentials,
                timeout: settings.request_timeout(),
            },
            settings,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(None),
            refused: Mutex::new(None),
            last_failure: Mutex::new(None),
            requesting: AtomicBool::new(false),
            background: AtomicBool::new(false),
            background_done: tokio::sync::watch::Sender::new(0),
            generation: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            shared: OnceLock::new(),
            refused_sealed: Mutex::new(None),
        })
    }

    fn cached(&self) -> Option<Arc<Cached>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A valid token: the cached one, or a fresh one if it is missing or due.
    ///
    /// # Errors
    /// When the login host refuses or fails (also while a previous failure's backoff runs).
    pub async fn bearer(&self) -> Result<Bearer, TokenError> {
        let now = Instant::now();
        if let Some(cached) = self.cached() {
            if now < cached.refresh_at && !self.rejoining(&cached) {
                return Ok(cached.bearer.clone());
            }
            if now < cached.expires_at {
                return Ok(self.refresh_due(&cached).await);
            }
        }
        let guard = self.refresh.lock().await;
        if let Some(cached) = self.cached() {
            if Instant::now() < cached.refresh_at && !self.rejoining(&cached) {
                return Ok(cached.bearer.clone());
            }
        }
        self.refresh_locked(guard).await
    }

    /// A token due for refresh but still valid (`seen`): one caller refreshes, the rest go
    /// on with `seen`. The one that takes the lock first checks whether another caller
    /// has refreshed since `seen` was read, and if so uses that token.
    async fn refresh_due(&self, seen: &Cached) -> Bearer {
        let Ok(guard) = self.refresh.try_lock() else {
            return seen.bearer.clone();
        };
        if let Some(current) = self.cached() {
            if current.bearer.generation != seen.bearer.generation
                && Instant::now() < current.refresh_at
                && !self.rejoining(&current)
            {
                return current.bearer.clone();
            }
        }
        self.refresh_locked(guard)
            .await
            .unwrap_or_else(|_| seen.bearer.clone())
    }

    /// Forgets the token of `generation` (after Genesys answered 401 to it), so the next
    /// [`bearer`](Self::bearer) asks for a new one. A newer token is kept.
    /// In shared mode, the token is dropped from Redis too, for every replica.
    pub fn invalidate(&self, generation: u64) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|c| c.bearer.generation == generation)
        {
            if let Some(sealed) = current.take().and_then(|c| c.sealed.clone()) {
                drop(current);
                self.drop_shared(sealed);
            }
        }
    }

    /// Equal jitter over an exponential backoff from `base`, capped by
    /// `token_backoff_max_secs` (at least half a second).
    fn backoff(&self, base: Duration, consecutive: u32) -> Duration {
        let cap = Duration::from_secs(self.settings.token_backoff_max_secs).max(BACKOFF_MIN);
        let base = base.min(cap);
        let exponential = base
            .saturating_mul(1 << consecutive.saturating_sub(1).min(16))
            .min(cap);
        // Between half and all of the exponential backoff.
        exponential / 2 + exponential.mul_f64(fastrand::f64() / 2.0)
    }

    /// Counters for metrics and readiness.
    pub fn stats(&self) -> TokenStats {
        TokenStats {
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            has_token: self.cached().is_some_and(|c| Instant::now() < c.expires_at),
            refused: self.refusing(),
        }
    }

    async fn refresh_locked(
        &self,
        mut guard: tokio::sync::MutexGuard<'_, Option<Failure>>,
    ) -> Result<Bearer, TokenError> {
        let now = Instant::now();
        if let Some(failure) = guard.as_ref() {
            if now < failure.until {
                return Err(failure.error.clone().with_retry_after(failure.until - now));
            }
        }
        let rejoins = self.shared_rejoins();
        match self.obtain().await {
            Ok(obtained) => {
                let now = Instant::now();
                let expires_in = obtained.expires_in;
                let margin = self.margin(obtained.issued_for).min(expires_in);
                let bearer = Bearer::new(
                    obtained.token,
                    self.generation.fetch_add(1, Ordering::Relaxed) + 1,
                );
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(Arc::new(Cached {
                        bearer: bearer.clone(),
                        refresh_at: now + expires_in - margin,
                        expires_at: now + expires_in,
                        sealed: obtained.sealed,
                        issued_for: obtained.issued_for,
                        rejoins,
                    }));
                *guard = None;
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                tracing::info!(
                    expires_in_secs = expires_in.as_secs(),
                    shared = self.shared().is_some_and(|s| s.available()),
                    "obtained a Genesys token"
                );
                Ok(bearer)
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let consecutive = guard.as_ref().map_or(0, |f| f.consecutive) + 1;
                let base = match error {
                    TokenError::BadCredentials { .. } => BAD_CREDENTIALS_BACKOFF,
                    TokenError::LoginUnavailable { .. } => BACKOFF_MIN,
                };
                let wait = self.backoff(base, consecutive);
                tracing::warn!(%error, consecutive, backoff_ms = wait.as_millis(), "Genesys token request failed");
                let error = error.with_retry_after(wait);
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some((error.clone(), Instant::now() + wait));
                *guard = Some(Failure {
                    error: error.clone(),
                    until: Instant::now() + wait,
                    consecutive,
                });
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genesys_sim::{SimConfig, Simulator};
    use secrecy::SecretString;

    fn manager(login: &str, settings: UpstreamSettings) -> TokenManager {
        let login = Url::parse(login).expect("login URL");
        let credentials = ClientCredentials {
            client_id: genesys_sim::config::DEFAULT_CLIENT_ID.to_owned(),
            client_secret: SecretString::from(genesys_sim::config::DEFAULT_CLIENT_SECRET),
        };
        TokenManager::new(
            reqwest::Client::new(),
            Egress::default(),
            &login,
            credentials,
            settings,
        )
        .expect("manager")
    }

    /// Makes the cached token due for refresh (still valid).
    fn make_due(tokens: &TokenManager) {
        let mut current = tokens
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let cached = current.as_ref().expect("a token");
        *current = Some(Arc::new(Cached {
            bearer: cached.bearer.clone(),
            refresh_at: Instant::now(),
            expires_at: cached.expires_at,
            sealed: None,
            issued_for: cached.issued_for,
            rejoins: cached.rejoins,
        }));
    }

    #[tokio::test]
    async fn a_due_refresh_rechecks_after_taking_the_lock() {
        let sim = Simulator::start(SimConfig {
            conversations: 10,
            days: 1,
            ..SimConfig::default()
        })
        .await
        .expect("sim");
        let tokens = manager(&sim.base_url(), UpstreamSettings::default());
        let first = tokens.bearer().await.expect("token");
        make_due(&tokens);
        // A caller reads the due token; before it takes the lock, another one refreshes.
        let seen = tokens.cached().expect("cached");
        let refreshed = tokens.bearer().await.expect("refreshed");
        assert_ne!(refreshed.generation, first.generation);
        let got = tokens.refresh_due(&seen).await;
        assert_eq!(
            got.generation, refreshed.generation,
            "the just-refreshed token"
        );
        assert_eq!(tokens.stats().requests, 2, "no second refresh");
        assert_eq!(sim.counters().tokens_issued, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_fresh_token_is_remembered_for_a_bounded_jittered_pause() {
        let tokens = manager(
            "http://127.0.0.1:9/",
            UpstreamSettings {
                token_backoff_max_secs: 60,
                ..UpstreamSettings::default()
            },
        );
        assert!(matches!(tokens.refusal(), Ok(None)));
        let pause = tokens.fresh_token_refused("ip.not.authorized");
        assert!(
            pause >= Duration::from_secs(5) && pause <= Duration::from_secs(10),
            "{pause:?}"
        );
        assert!(tokens.refusing() && tokens.stats().refused);
        let left = tokens.refusal().expect_err("answered at once");
        assert_eq!(left, pause);
        // Calls that were under way when it was first seen do not lengthen the pause.
        assert_eq!(tokens.fresh_token_refused("ip.not.authorized"), pause);
        tokio::time::sleep(pause).await;
        // After the pause, one caller at a time finds out.
        let probe = tokens
            .refusal()
            .expect("the pause is over")
            .expect("a probe");
        assert!(tokens.refusal().is_err(), "one probe at a time");
        drop(probe);
        let probe = tokens
            .refusal()
            .expect("the pause is over")
            .expect("a probe");
        // Refused again: a longer pause, within twice the first step.
        let second = tokens.fresh_token_refused("ip.not.authorized");
        drop(probe);
        assert!(
            second >= Duration::from_secs(10) && second <= Duration::from_secs(20),
            "{second:?}"
        );
        assert!(tokens.refusal().is_err());
        tokio::time::sleep(second).await;
        let probe = tokens.refusal().expect("over").expect("a probe");
        tokens.token_accepted();
        drop(probe);
        assert!(matches!(tokens.refusal(), Ok(None)));
        assert!(!tokens.stats().refused);
    }
}
