//! [`Login`]: the client-credentials grant against the login host, and the classification
//! of its answer (credentials refused vs login host unavailable). The only place the
//! client secret is exposed: as the basic-auth password of the token request.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::TokenError;
use crate::egress::Egress;
use crate::upstream::settings::ClientCredentials;

/// The token request of one OAuth client.
#[derive(Debug)]
pub(super) struct Login {
    pub(super) http: reqwest::Client,
    /// Names the egress proxy when a connection through it fails.
    pub(super) egress: Egress,
    /// `{login}/oauth/token`.
    pub(super) token_url: Url,
    pub(super) credentials: ClientCredentials,
    /// How long one token request may take.
    pub(super) timeout: Duration,
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

impl Login {
    /// Asks the login host for a token: the token and its lifetime, or why not.
    pub(super) async fn request(&self) -> Result<(SecretString, Duration), TokenError> {
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
            .timeout(self.timeout)
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
