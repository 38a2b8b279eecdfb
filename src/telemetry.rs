//! Logging and tracing: the tracing subscriber (pretty or JSON lines) and OpenTelemetry.
//!
//! The log filter is `RUST_LOG` when it is set, else `telemetry.log_filter`; an invalid one
//! of either stops the start with a message naming it ([`TelemetrySettings::validate`]).
//!
//! Tracing is on when spans have somewhere to go: `telemetry.otlp_endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) variable. Then
//! spans are exported over OTLP/HTTP and carry W3C trace context: an inbound `traceparent`
//! becomes the parent of the request's span, and every upstream call sends `traceparent` to
//! Genesys. `OTEL_SERVICE_NAME` names the service (default `genesys-proxy`). Without an
//! endpoint no OpenTelemetry work is done per request (it costs about a sixth of a cache
//! hit). Secrets never reach logs or spans: the token and the
//! client secret are secret types that print as `[REDACTED]`, and upstream spans carry
//! paths, never headers or query strings.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Log line format.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `pretty` (human-readable lines) or `json` (one object per line, with the request's
    /// span fields such as `request_id`).
    #[serde(default)]
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter (`RUST_LOG` overrides it; both must parse).
    #[serde(default = "default_log_filter")]
    pub log_filter: String,
    /// OTLP/HTTP endpoint to export traces to (e.g. `http://otel-collector:4318`); the
    /// standard `OTEL_EXPORTER_OTLP_ENDPOINT` variable does the same. Unset: no tracing.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Write one `request answered` line per request at info (route template, status,
    /// client name, conversation id, cache status, upstream calls, latency, request id;
    /// never bodies, query strings, keys or tokens): an audit trail of who read what.
    /// Off by default.
    #[serde(default)]
    pub access_log: bool,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::default(),
            log_filter: default_log_filter(),
            otlp_endpoint: None,
            access_log: false,
        }
    }
}

impl TelemetrySettings {
    /// Checks the settings, and `RUST_LOG` (which overrides `log_filter`) alike; the
    /// message names the bad one.
    ///
    /// # Errors
    /// When the log filter or `RUST_LOG` does not parse.
    pub fn validate(&self) -> Result<(), String> {
        EnvFilter::try_new(&self.log_filter)
            .map_err(|e| format!("telemetry.log_filter {:?} is invalid: {e}", self.log_filter))?;
        rust_log().transpose().map(|_| ())
    }

    /// The filter in effect: `RUST_LOG` when set, else `log_filter` (`info` if neither
    /// parses, which [`validate`](Self::validate) has refused already).
    fn filter(&self) -> EnvFilter {
        rust_log()
            .and_then(Result::ok)
            .or_else(|| EnvFilter::try_new(&self.log_filter).ok())
            .unwrap_or_else(|| EnvFilter::new("info"))
    }
}

/// The filter `RUST_LOG` asks for, when it is set and not blank.
fn rust_log() -> Option<Result<EnvFilter, String>> {
    let value = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())?;
    Some(EnvFilter::try_new(&value).map_err(|e| {
        format!("RUST_LOG {value:?} is invalid: {e} (it overrides telemetry.log_filter)")
    }))
}

/// Keeps the tracer provider alive; dropping it flushes pending spans.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = &self.provider {
            let _ = provider.shutdown();
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

static TRACING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans are exported (and trace context propagated).
#[must_use]
pub fn tracing_enabled() -> bool {
    TRACING.load(std::sync::atomic::Ordering::Relaxed)
}

/// The tracer provider exporting over OTLP/HTTP to `endpoint` (or to the endpoint the
/// standard variables name, when `endpoint` is `None`).
fn provider(endpoint: Option<&str>) -> Option<SdkTracerProvider> {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let from_env =
        env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if disabled || (endpoint.is_none() && !from_env) {
        return None;
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(endpoint) = endpoint {
        use opentelemetry_otlp::WithExportConfig as _;
        exporter = exporter.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    }
    let exporter = match exporter.build() {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("genesys-proxy: OTLP export disabled: {error}");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("genesys-proxy");
    }
    Some(
        SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build(),
    )
}

/// Installs the global subscriber writing to `writer` (once per process; later calls
/// install nothing but still return a guard).
pub fn init_with_writer<W>(settings: &TelemetrySettings, writer: W) -> TelemetryGuard
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let provider = provider(settings.otlp_endpoint.as_deref());
    let fmt = match settings.log_format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    };
    // Spans at info and above go to OpenTelemetry (the request, the upstream calls).
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("genesys-proxy"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(settings.filter()))
        .with(otel)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        TRACING.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    TelemetryGuard { provider }
}

/// Installs the global subscriber writing to stderr.
pub fn init(settings: &TelemetrySettings) -> TelemetryGuard {
    init_with_writer(settings, std::io::stderr)
}

/// The W3C trace context of `headers` (an inbound request).
#[must_use]
pub fn extract_context(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(headers))
    })
}

/// Writes the current span's W3C trace context into `headers` (an upstream request), when
/// tracing is on.
pub fn inject_current(headers: &mut http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !tracing_enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
    });
}
