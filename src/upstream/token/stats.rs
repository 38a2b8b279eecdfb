//! [`TokenStats`]: the token manager's counters, for `/admin` as JSON and for `/metrics`
//! in the Prometheus text format (requests, failures, whether a valid token is held;
//! never the token).

use crate::metrics::{header, sample};

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

impl TokenStats {
    /// Appends the token's metric families (never the token itself).
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "genesys_proxy_token_requests_total",
            "counter",
            "Token requests sent to the Genesys login host (refreshes included).",
        );
        sample(out, "genesys_proxy_token_requests_total", "", self.requests);
        header(
            out,
            "genesys_proxy_token_failures_total",
            "counter",
            "Token requests that failed.",
        );
        sample(out, "genesys_proxy_token_failures_total", "", self.failures);
        header(
            out,
            "genesys_proxy_token_valid",
            "gauge",
            "1 while a valid Genesys token is held.",
        );
        sample(
            out,
            "genesys_proxy_token_valid",
            "",
            u8::from(self.has_token),
        );
    }
}
