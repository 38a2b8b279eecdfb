//! The inbound HTTP server's settings (`[server]`): the API and operations addresses, request
//! and connection limits (enforced by [`crate::app`]), CORS origins, the shutdown grace;
//! and their validation, which refuses by name an origin that could never match a browser's
//! `Origin`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

const fn default_true() -> bool {
    true
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_body_limit_bytes() -> usize {
    64 * 1024
}
fn default_shutdown_grace_secs() -> u64 {
    20
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_idle_timeout_ms() -> u64 {
    75_000
}
fn default_max_connections() -> usize {
    1024
}

/// The inbound HTTP server (`[server]`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on (`--listen` overrides it).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A second address, for operations only: `/healthz`, `/readyz` and `/metrics` (probes
    /// and scrapes). When set, `/readyz` and `/metrics` are served there and no longer on
    /// `listen`; `/healthz` answers on both. Unset: all of them on `listen`.
    #[serde(default)]
    pub ops_listen: Option<SocketAddr>,
    /// Longest time a request may take, in milliseconds; past it the client gets 504.
    /// Upstream waits are bounded by it (a little less, to leave time to answer).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Largest request body, in bytes (413 above it).
    #[serde(default = "default_body_limit_bytes")]
    pub body_limit_bytes: usize,
    /// Origins allowed to call from browsers (CORS); empty: no CORS headers.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// On SIGTERM / Ctrl-C, how long in-flight requests may take to finish.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Longest time from the first byte of a request to the end of its headers, in
    /// milliseconds; past it the connection is closed (a slow or half-sent request).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Longest time a connection may stay open with no request on it (fresh, or between
    /// keep-alive requests) and no byte moving, in milliseconds; then it is closed.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Most connections open at once on `listen`; past it, new connections wait in the
    /// listen backlog until one closes (they are not refused).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Answer fresh cache hits of `GET /conversations/{id}` before the generic middleware
    /// stack (the same answer, at a fraction of the cost). Off: every request takes the
    /// full stack. It stands aside anyway while traces are exported; with CORS origins set,
    /// its answers carry the CORS layer's headers.
    #[serde(default = "default_true")]
    pub hit_fast_path: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            ops_listen: None,
            request_timeout_ms: default_request_timeout_ms(),
            body_limit_bytes: default_body_limit_bytes(),
            cors_allowed_origins: Vec::new(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            max_connections: default_max_connections(),
            hit_fast_path: true,
        }
    }
}

impl ServerSettings {
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    #[must_use]
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// Checks the section; the message names the bad setting.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.request_timeout_ms < 100 {
            return Err("server.request_timeout_ms must be at least 100".into());
        }
        if self.body_limit_bytes < 1024 {
            return Err("server.body_limit_bytes must be at least 1024".into());
        }
        if self.header_read_timeout_ms < 100 {
            return Err("server.header_read_timeout_ms must be at least 100".into());
        }
        if self.idle_timeout_ms < 100 {
            return Err("server.idle_timeout_ms must be at least 100".into());
        }
        if self.max_connections == 0 {
            return Err("server.max_connections must be at least 1".into());
        }
        if self.ops_listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(format!(
                "server.ops_listen must differ from server.listen ({})",
                self.listen
            ));
        }
        for origin in &self.cors_allowed_origins {
            check_origin(origin)?;
        }
        Ok(())
    }
}

/// Whether `origin` is `*` or an origin exactly as browsers send it in `Origin`
/// (`scheme://host[:port]`: no path, not even `/`, no default port, lower case); one that is
/// not could never match, so it is refused by name, with its corrected form when there is one.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let refuse = |why: String| {
        Err(format!(
            "server.cors_allowed_origins: {origin:?} is not an origin ({why}); write \
             scheme://host[:port] as browsers send it, e.g. \"https://dash.example.com\", or \"*\""
        ))
    };
    let url = match url::Url::parse(origin) {
        Ok(url) => url,
        Err(error) => return refuse(error.to_string()),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return refuse(format!("scheme {:?}, not http or https", url.scheme()));
    }
    if url.host().is_none() {
        return refuse("no host".into());
    }
    let canonical = url.origin().ascii_serialization();
    if canonical != origin {
        return refuse(format!("browsers send it as {canonical:?}"));
    }
    Ok(())
}
