//! Log capture for the tests that read what the proxy logs: a `tracing` writer that keeps
//! every line in memory, and the subscriber that captures every event at TRACE through it.
//! It owns no assertion: the tests search the captured text themselves (for secrets, for
//! access lines).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Every log line written through it (and its clones), in memory.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs (once per test process) the subscriber that captures every event at TRACE, for
/// every crate (and `log` records), and returns its capture. It writes every event twice:
/// as JSON lines with the whole span list, and as plain text lines that also show every
/// span as it opens and closes with all its fields, so span fields show whichever way the
/// proxy is configured to log. The level is fixed, not an `EnvFilter`: `RUST_LOG` has no
/// say in what is captured.
pub fn logs_at_trace() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let json = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(capture.clone());
            let text = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
                .with_writer(capture.clone());
            tracing_subscriber::registry()
                .with(json)
                .with(text)
                .with(LevelFilter::TRACE)
                .try_init()
                .expect("the capture is the test process's only subscriber");
            capture
        })
        .clone()
}
