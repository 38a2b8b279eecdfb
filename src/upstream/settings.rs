//! Where Genesys is and how to talk to it: region or explicit base URLs, client
//! credentials, timeouts and retry bounds.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// Genesys Cloud regions: (AWS region name, API host). The login host is the API host
/// with `login.` instead of `api.` (as the official SDKs derive it).
pub const REGIONS: [(&str, &str); 17] = [
    ("us_east_1", "api.mypurecloud.com"),
    ("eu_west_1", "api.mypurecloud.ie"),
    ("ap_southeast_2", "api.mypurecloud.com.au"),
    ("ap_northeast_1", "api.mypurecloud.jp"),
    ("eu_central_1", "api.mypurecloud.de"),
    ("us_west_2", "api.usw2.pure.cloud"),
    ("ca_central_1", "api.cac1.pure.cloud"),
    ("ap_northeast_2", "api.apne2.pure.cloud"),
    ("eu_west_2", "api.euw2.pure.cloud"),
    ("ap_south_1", "api.aps1.pure.cloud"),
    ("us_east_2", "api.use2.us-gov-pure.cloud"),
    ("sa_east_1", "api.sae1.pure.cloud"),
    ("me_central_1", "api.mec1.pure.cloud"),
    ("ap_northeast_3", "api.apne3.pure.cloud"),
    ("eu_central_2", "api.euc2.pure.cloud"),
    ("mx_central_1", "api.mxc1.pure.cloud"),
    ("ap_southeast_1", "api.apse1.pure.cloud"),
];

/// The API and login base URLs of one Genesys org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub api: Url,
    pub login: Url,
}

impl Endpoints {
    /// From a region: its domain (`mypurecloud.ie`), its API host (`api.mypurecloud.ie`)
    /// or its AWS name (`eu_west_1`).
    ///
    /// # Errors
    /// When the region is none of the known ones.
    pub fn from_region(region: &str) -> Result<Self, String> {
        let wanted = region.trim().trim_end_matches('/').to_ascii_lowercase();
        let host = REGIONS
            .iter()
            .find(|(name, host)| {
                *name == wanted || *host == wanted || host.strip_prefix("api.") == Some(wanted.as_str())
            })
            .map(|(_, host)| *host)
            .ok_or_else(|| {
                let known: Vec<&str> = REGIONS
                    .iter()
                    .map(|(_, h)| h.strip_prefix("api.").unwrap_or(h))
                    .collect();
                format!(
                    "GENESYS_REGION {region:?} is not a known Genesys Cloud region; use one of {} (or set GENESYS_API_URL and GENESYS_LOGIN_URL)",
                    known.join(", ")
                )
            })?;
        let login = host.replacen("api.", "login.", 1);
        Ok(Self {
            api: Url::parse(&format!("https://{host}/")).map_err(|e| e.to_string())?,
            login: Url::parse(&format!("https://{login}/")).map_err(|e| e.to_string())?,
        })
    }

    /// From explicit base URLs (the simulator, a test double, an egress proxy).
    ///
    /// # Errors
    /// When either is not an http(s) URL; the message names the variable.
    pub fn explicit(api: &str, login: &str) -> Result<Self, String> {
        let parse = |name: &str, text: &str| -> Result<Url, String> {
            let url = Url::parse(text).map_err(|e| format!("{name} {text:?} is not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!(
                    "{name} {text:?} must be an http(s) URL with a host"
                ));
            }
            Ok(url)
        };
        Ok(Self {
            api: parse("GENESYS_API_URL", api)?,
            login: parse("GENESYS_LOGIN_URL", login)?,
        })
    }
}

/// An OAuth client's id and secret. The secret never prints.
#[derive(Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish()
    }
}

fn default_request_timeout_ms() -> u64 {
    4_000
}
fn default_max_retries() -> u32 {
    3
}
fn default_retry_base_ms() -> u64 {
    100
}
fn default_retry_max_ms() -> u64 {
    2_000
}
fn default_token_refresh_margin_secs() -> u64 {
    300
}
fn default_token_backoff_max_secs() -> u64 {
    60
}

/// Timeouts and retry bounds of upstream calls (`[upstream]` in the config file).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// Longest single upstream HTTP exchange, in milliseconds. Keep it well under
    /// `server.request_timeout_ms`, so a hung exchange leaves time for a retry.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Retries of connect errors, timeouts and 502/503/504 (each inside the deadline).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First retry backoff in milliseconds (doubled each time, with full jitter).
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Largest retry backoff in milliseconds.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Refresh the token this long before it expires (at most a fifth of its lifetime).
    #[serde(default = "default_token_refresh_margin_secs")]
    pub token_refresh_margin_secs: u64,
    /// Longest wait between token requests after failures (so a broken secret cannot
    /// hammer the login host), and longest pause after Genesys refused a freshly obtained
    /// token (a 401 that persists, such as `ip.not.authorized`), during which calls are
    /// answered at once instead of each costing two API calls and a token request. Both
    /// backoffs start at 10 s for refusals (0.5 s for an unreachable login host; at most
    /// this maximum), double with each repeat and are jittered (between half and all of
    /// the step).
    #[serde(default = "default_token_backoff_max_secs")]
    pub token_backoff_max_secs: u64,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            request_timeout_ms: default_request_timeout_ms(),
            max_retries: default_max_retries(),
            retry_base_ms: default_retry_base_ms(),
            retry_max_ms: default_retry_max_ms(),
            token_refresh_margin_secs: default_token_refresh_margin_secs(),
            token_backoff_max_secs: default_token_backoff_max_secs(),
        }
    }
}

impl UpstreamSettings {
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Checks the settings; the message names the bad one.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.request_timeout_ms == 0 {
            return Err("upstream.request_timeout_ms must be at least 1".into());
        }
        if self.retry_base_ms > self.retry_max_ms {
            return Err("upstream.retry_base_ms must not exceed upstream.retry_max_ms".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_resolve_by_domain_host_or_aws_name() {
        for name in [
            "mypurecloud.ie",
            "api.mypurecloud.ie",
            "eu_west_1",
            "MYPURECLOUD.IE",
        ] {
            let endpoints = Endpoints::from_region(name).expect("known region");
            assert_eq!(endpoints.api.as_str(), "https://api.mypurecloud.ie/");
            assert_eq!(endpoints.login.as_str(), "https://login.mypurecloud.ie/");
        }
        let error = Endpoints::from_region("mypurecloud.mars").expect_err("unknown");
        assert!(error.contains("GENESYS_REGION"));
    }

    #[test]
    fn explicit_urls_must_be_http() {
        assert!(Endpoints::explicit("http://127.0.0.1:9", "http://127.0.0.1:9").is_ok());
        let error = Endpoints::explicit("ftp://x", "http://y").expect_err("not http");
        assert!(error.contains("GENESYS_API_URL"));
    }

    #[test]
    fn credentials_never_print_the_secret() {
        let credentials = ClientCredentials {
            client_id: "id".into(),
            client_secret: SecretString::from("hunter2"),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
