//! Typed settings: defaults < optional TOML file (`--config`) < environment.
//!
//! Every setting of the file can also come from a `GENESYS_PROXY_`-prefixed variable, with
//! `__` between section and key (`GENESYS_PROXY_BUDGET__RATE=600`), and the internal clients
//! from `GENESYS_PROXY_CLIENTS` (a TOML array). Only those names are read: a variable with
//! `__` that names no setting stops the start (a misspelt setting), and any other
//! `GENESYS_PROXY_*` variable (Kubernetes' service links for a Service named
//! `genesys-proxy`, `GENESYS_PROXY_IMAGE` from compose's `.env`) is ignored, named in one
//! warning ([`Settings::stray_environment`]). The Genesys connection also reads the operator
//! names `GENESYS_CLIENT_ID`, `GENESYS_CLIENT_SECRET`, `GENESYS_REGION`, `GENESYS_API_URL`
//! and `GENESYS_LOGIN_URL`. The client secret is read from the environment only
//! (`GENESYS_CLIENT_SECRET`, or `GENESYS_CLIENT_SECRET_FILE` naming a file that holds it, for
//! container secrets), never from the settings file. Invalid settings stop the start with a
//! message naming them. `config.example.toml` documents every setting. The `[server]`
//! section is [`ServerSettings`] (its own module); which variables are settings is decided in
//! `environment`.

use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

use crate::auth::ClientSettings;
use crate::cache::CacheSettings;
use crate::notifications::NotificationSettings;
use crate::reports::ReportSettings;
use crate::shared::RedisSettings;
use crate::telemetry::TelemetrySettings;
use crate::upstream::budget::BudgetSettings;
use crate::upstream::{ClientCredentials, Endpoints, UpstreamSettings};

mod environment;
mod server;

pub use server::ServerSettings;

/// Where the Genesys org is (`[genesys]`; the operator variables override it).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesysSettings {
    /// Region domain (`mypurecloud.ie`), API host or AWS name (`eu_west_1`).
    pub region: Option<String>,
    /// Explicit API base URL (with `login_url`, instead of `region`).
    pub api_url: Option<String>,
    /// Explicit login base URL.
    pub login_url: Option<String>,
    /// OAuth client id (client-credentials grant).
    pub client_id: Option<String>,
}

/// Every setting.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub genesys: GenesysSettings,
    #[serde(default)]
    pub upstream: UpstreamSettings,
    #[serde(default)]
    pub budget: BudgetSettings,
    #[serde(default)]
    pub cache: CacheSettings,
    #[serde(default)]
    pub reports: ReportSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// Genesys notifications keeping cached conversations fresh (`[notifications]`).
    #[serde(default)]
    pub notifications: NotificationSettings,
    /// Shared mode (`[redis]`): absent `url` means single-process mode.
    #[serde(default)]
    pub redis: RedisSettings,
    /// Internal clients and their API keys (`[[clients]]`).
    #[serde(default)]
    pub clients: Vec<ClientSettings>,
}

/// A Genesys connection ready to use.
#[derive(Debug, Clone)]
pub struct GenesysConnection {
    pub endpoints: Endpoints,
    pub credentials: ClientCredentials,
}

/// Reads one environment variable, treating empty as absent.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// Defaults, then `file` if given, then `GENESYS_PROXY_*` variables, then the
    /// operator's `GENESYS_*` variables; validated.
    ///
    /// # Errors
    /// A message naming the unreadable file or the invalid setting.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let settings = Self::gather(file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// As [`load`](Self::load), without validating (demo mode adds its client first).
    ///
    /// # Errors
    /// A message naming the unreadable file, the malformed setting, or a `GENESYS_PROXY_*`
    /// variable written as a setting (`SECTION__KEY`) that names none.
    pub fn gather(file: Option<&Path>) -> Result<Self, String> {
        let figment = Self::figment(file)?;
        let mut settings = Self::from_figment(&figment)?;
        for (name, slot) in [
            ("GENESYS_REGION", &mut settings.genesys.region),
            ("GENESYS_API_URL", &mut settings.genesys.api_url),
            ("GENESYS_LOGIN_URL", &mut settings.genesys.login_url),
            ("GENESYS_CLIENT_ID", &mut settings.genesys.client_id),
        ] {
            if let Some(value) = var(name) {
                *slot = Some(value);
            }
        }
        Ok(settings)
    }

    /// The file (when given) and the setting variables of the environment.
    fn figment(file: Option<&Path>) -> Result<Figment, String> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            figment = figment.merge(Toml::file(path));
        }
        let variables = environment::ProxyVariables::read();
        variables.check()?;
        Ok(figment.merge(variables.provider()))
    }

    /// The `GENESYS_PROXY_*` variables that name no setting (service links, compose's
    /// `GENESYS_PROXY_IMAGE`): [`gather`](Self::gather) ignores them; `main` names them in a
    /// warning. Names only, never values.
    #[must_use]
    pub fn stray_environment() -> Vec<String> {
        environment::ProxyVariables::read().stray().to_vec()
    }

    /// Where the value of the setting at `path` (such as `server.listen`) comes from, for the
    /// start-up log: the settings variable, the file, or the built-in default. (A command-line
    /// override is the caller's to name.)
    #[must_use]
    pub fn origin(file: Option<&Path>, path: &str) -> String {
        let Ok(figment) = Self::figment(file) else {
            return "the built-in default".to_owned();
        };
        let Some(metadata) = figment.find_metadata(path) else {
            return "the built-in default".to_owned();
        };
        match &metadata.source {
            Some(figment::Source::File(file)) => format!("the settings file {}", file.display()),
            _ => format!(
                "{}{}",
                environment::PREFIX,
                path.to_ascii_uppercase().replace('.', "__")
            ),
        }
    }

    /// Settings from a figment (tests build one from TOML strings).
    ///
    /// # Errors
    /// A message naming the invalid setting.
    pub fn from_figment(figment: &Figment) -> Result<Self, String> {
        figment.extract().map_err(|error| {
            let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
            format!("invalid settings: {}", messages.join("; "))
        })
    }

    /// Checks every section; the message names the bad setting.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        self.server.validate()?;
        self.upstream.validate()?;
        self.budget.validate()?;
        self.cache.validate()?;
        self.reports.validate()?;
        self.telemetry.validate()?;
        self.notifications.validate()?;
        self.redis.validate()?;
        crate::auth::ApiKeys::new(&self.clients)?;
        Ok(())
    }

    /// The Genesys connection from the settings and `GENESYS_CLIENT_SECRET`.
    ///
    /// # Errors
    /// A message naming what is missing or wrong.
    pub fn genesys_connection(&self) -> Result<GenesysConnection, String> {
        let g = &self.genesys;
        let endpoints = match (&g.region, &g.api_url, &g.login_url) {
            (_, Some(api), Some(login)) => Endpoints::explicit(api, login)?,
            (Some(region), None, None) => Endpoints::from_region(region)?,
            (_, Some(_), None) | (_, None, Some(_)) => {
                return Err(
                    "set both GENESYS_API_URL and GENESYS_LOGIN_URL, or GENESYS_REGION alone"
                        .into(),
                );
            }
            (None, None, None) => {
                return Err("no Genesys org configured: set GENESYS_REGION (e.g. mypurecloud.ie), or GENESYS_API_URL and GENESYS_LOGIN_URL; or run with --demo to use the built-in simulator".into());
            }
        };
        let client_id = g.client_id.clone().ok_or(
            "GENESYS_CLIENT_ID is not set (the OAuth client-credentials client of the proxy)",
        )?;
        let secret = match (
            var("GENESYS_CLIENT_SECRET"),
            var("GENESYS_CLIENT_SECRET_FILE"),
        ) {
            (Some(secret), _) => secret,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    format!("GENESYS_CLIENT_SECRET_FILE {path}: cannot read a secret from it")
                })?,
            (None, None) => {
                return Err("GENESYS_CLIENT_SECRET (or GENESYS_CLIENT_SECRET_FILE, a file holding it) is not set".into());
            }
        };
        Ok(GenesysConnection {
            endpoints,
            credentials: ClientCredentials {
                client_id,
                client_secret: SecretString::from(secret),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Settings, String> {
        let settings = Settings::from_figment(&Figment::new().merge(Toml::string(text)))?;
        settings.validate()?;
        Ok(settings)
    }

    const CLIENT: &str = r#"
        [[clients]]
        name = "dashboards"
        key_sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
        scopes = ["conversations:read"]
    "#;

    #[test]
    fn a_file_overrides_defaults() {
        let settings = from_toml(&format!("[budget]\nrate = 600\n{CLIENT}")).expect("valid");
        assert_eq!(settings.budget.rate, 600);
        assert_eq!(settings.cache, CacheSettings::default());
    }

    #[test]
    fn the_notifications_section_reads_its_mode_and_queues() {
        let queue = "8f2a4c6e-1b3d-4f5a-9c7e-0d2b4f6a8c1e";
        let settings = from_toml(&format!(
            "[notifications]\nmode = \"list\"\nqueue_ids = [\"{queue}\"]\n{CLIENT}"
        ))
        .expect("valid");
        assert_eq!(
            settings.notifications.mode,
            crate::notifications::settings::Mode::List
        );
        assert_eq!(settings.notifications.queue_ids, [queue]);
        let error = from_toml(&format!("[notifications]\nmode = \"list\"\n{CLIENT}"))
            .expect_err("a list needs ids");
        assert!(error.contains("notifications.queue_ids"), "{error}");
        let error = from_toml(&format!("[notifications]\nmode = \"some\"\n{CLIENT}"))
            .expect_err("unknown mode");
        assert!(error.contains("some"), "{error}");
    }

    #[test]
    fn unknown_and_invalid_settings_are_named() {
        let error = from_toml(&format!("[budget]\nrat = 600\n{CLIENT}")).expect_err("unknown key");
        assert!(error.contains("rat"), "{error}");
        let error = from_toml(&format!("[budget]\nrate = 0\n{CLIENT}")).expect_err("zero rate");
        assert!(error.contains("budget.rate"), "{error}");
        let error = from_toml("").expect_err("no clients");
        assert!(error.contains("[[clients]]"), "{error}");
    }
}
