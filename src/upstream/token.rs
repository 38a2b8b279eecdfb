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

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::settings::{ClientCredentials, UpstreamSettings};
use crate::egress::Egress;

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

    fn with_retry_after(self, wait: Duration) -> Self {
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
    /// The `Authorization` header value, marked sensitive (hidden from HTTP debug output).
    #[must_use]
    pub fn header_value(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.token.expose_secret()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        value.set_sensitive(true);
        value
    }
}

#[derive(Debug)]
struct Cached {
    bearer: Bearer,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Debug)]
struct Failure {
    error: TokenError,
    until: Instant,
    consecutive: u32,
}

/// Genesys refused a fresh token: callers are answered at once until `until`.
#[derive(Debug)]
struct Refused {
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

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct OAuthError {
    error: Option<String>,
}

/// Counters of the token manager, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenStats {
    pub requests: u64,
    pub failures: u64,
    pub has_token: bool,
    /// Genesys refused a fresh token (a persisting 401): calls are answered at once
    /// until the backoff ends.
    pub refused: bool,
}

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

/// The shared Genesys token.
#[derive(Debug)]
pub struct TokenManager {
    http: reqwest::Client,
    egress: Egress,
    token_url: Url,
    credentials: ClientCredentials,
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
            http,
            egress,
            token_url,
            credentials,
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
            if now < cached.refresh_at {
                return Ok(cached.bearer.clone());
            }
            if now < cached.expires_at {
                return Ok(self.refresh_due(&cached).await);
            }
        }
        let guard = self.refresh.lock().await;
        if let Some(cached) = self.cached() {
            if Instant::now() < cached.refresh_at {
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
    pub fn invalidate(&self, generation: u64) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|c| c.bearer.generation == generation)
        {
            *current = None;
        }
    }

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
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.requesting.store(true, Ordering::Relaxed);
        let outcome = self.request().await;
        self.requesting.store(false, Ordering::Relaxed);
        match outcome {
            Ok((token, expires_in)) => {
                let now = Instant::now();
                let margin = Duration::from_secs(self.settings.token_refresh_margin_secs)
                    .min(expires_in / 5);
                let bearer = Bearer {
                    token: Arc::new(token),
                    generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
                };
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(Arc::new(Cached {
                        bearer: bearer.clone(),
                        refresh_at: now + expires_in - margin,
                        expires_at: now + expires_in,
                    }));
                *guard = None;
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                tracing::info!(
                    expires_in_secs = expires_in.as_secs(),
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

    async fn request(&self) -> Result<(SecretString, Duration), TokenError> {
        let unavailable = |reason: String| TokenError::LoginUnavailable {
            reason,
            retry_after: Duration::ZERO,
        };
        let response = self
            .http
            .post(self.token_url.clone())
            .basic_auth(
                &self.credentials.client_id,
                Some(self.credentials.client_secret.expose_secret()),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body("grant_type=client_credentials")
            .timeout(self.settings.request_timeout())
            .send()
            .await
            .map_err(|e| unavailable(self.egress.describe(&e, &self.token_url)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(self.egress.describe(&e, &self.token_url)))?;
        if matches!(status.as_u16(), 400 | 401 | 403) {
            let code = serde_json::from_slice::<OAuthError>(&body)
                .ok()
                .and_then(|e| e.error)
                .unwrap_or_else(|| "no error code".to_owned());
            return Err(TokenError::BadCredentials {
                reason: format!("login host answered {status}, {code}"),
                retry_after: Duration::ZERO,
            });
        }
        if !status.is_success() {
            return Err(unavailable(format!("login host answered {status}")));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| unavailable("login host sent an unreadable token response".to_owned()))?;
        if !parsed.token_type.eq_ignore_ascii_case("bearer") || parsed.access_token.is_empty() {
            return Err(unavailable(format!(
                "login host sent an unusable token (type {:?})",
                parsed.token_type
            )));
        }
        Ok((
            SecretString::from(parsed.access_token),
            Duration::from_secs(parsed.expires_in.max(1)),
        ))
    }
}

pub use crate::egress::describe_transport_error;

/// [`describe_transport_error`] for a middleware error.
#[must_use]
pub fn describe_transport_error_mw(error: &reqwest_middleware::Error) -> String {
    match error {
        reqwest_middleware::Error::Reqwest(e) => describe_transport_error(e),
        reqwest_middleware::Error::Middleware(_) => "a middleware failed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genesys_sim::{SimConfig, Simulator};

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
