//! Logging and tracing: the tracing subscriber (pretty or JSON lines), set up once at
//! start. Secrets never reach it: the token and the client secret are secret types that
//! print as `[REDACTED]`, and upstream spans carry paths, never headers or query strings.

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line (for log shippers).
    Json,
}

fn default_log_filter() -> String {
    "info".to_owned()
}

/// Telemetry settings (`[telemetry]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    #[serde(default)]
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter (`RUST_LOG` overrides it).
    #[serde(default = "default_log_filter")]
    pub log_filter: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::default(),
            log_filter: default_log_filter(),
        }
    }
}

impl TelemetrySettings {
    /// Checks the settings; the message names the bad one.
    ///
    /// # Errors
    /// When the log filter does not parse.
    pub fn validate(&self) -> Result<(), String> {
        EnvFilter::try_new(&self.log_filter)
            .map(|_| ())
            .map_err(|e| format!("telemetry.log_filter {:?} is invalid: {e}", self.log_filter))
    }
}

/// Installs the global subscriber (once; later calls do nothing).
pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}
