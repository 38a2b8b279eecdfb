//! Logging and tracing: the tracing subscriber (pretty or JSON lines) and OpenTelemetry.
//!
//! Spans always carry W3C trace context: an inbound `traceparent` becomes the parent of the
//! request's span, and every upstream call sends `traceparent` to Genesys. Spans are
//! exported over OTLP/HTTP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) variable is set; `OTEL_SERVICE_NAME` names the
//! service (default `genesys-proxy`). Secrets never reach logs or spans: the token and the
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

/// Keeps the tracer provider alive; dropping it flushes pending spans.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// The tracer provider: always present (so trace context propagates), exporting over
/// OTLP/HTTP only when an endpoint is configured.
fn provider() -> SdkTracerProvider {
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("genesys-proxy");
    }
    let mut builder = SdkTracerProvider::builder().with_resource(resource.build());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if !disabled
        && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(error) => eprintln!("genesys-proxy: OTLP export disabled: {error}"),
        }
    }
    builder.build()
}

/// Installs the global subscriber writing to `writer` (once per process; later calls
/// install nothing but still return a guard).
pub fn init_with_writer<W>(settings: &TelemetrySettings, writer: W) -> TelemetryGuard
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let provider = provider();
    let tracer = provider.tracer("genesys-proxy");
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
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
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init();
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

/// Writes the current span's W3C trace context into `headers` (an upstream request).
pub fn inject_current(headers: &mut http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
    });
}
