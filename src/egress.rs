//! Outbound HTTP: which calls may take an egress proxy, and what a failed connection
//! says about it. The proxy's own HTTP clients are built here.
//!
//! - Calls to Genesys follow the standard proxy variables, as curl reads them:
//!   `HTTPS_PROXY` (a `CONNECT` tunnel for `https://` URLs), `HTTP_PROXY` (ignored when
//!   `REQUEST_METHOD` is set, as curl does against httpoxy), `ALL_PROXY`, each also in
//!   lower case, and `NO_PROXY` (hosts, domains with their subdomains, IPs, CIDR ranges,
//!   `*`). Loopback hosts (`localhost`, `127.0.0.0/8`, `::1`) never take a proxy, whatever
//!   `NO_PROXY` says: the demo's simulator, a sidecar or a test double on the same host
//!   is never behind a corporate proxy.
//! - [`local_client`] (the `healthcheck` subcommand) never takes a proxy: it probes the
//!   proxy's own port.
//! - A failed connection is described without URLs' queries or headers, and names the
//!   egress proxy (without its credentials) when the proxy is what failed: a refused
//!   `CONNECT`, one that asks for authentication (407), or a tunnel closed unanswered.
//!
//! Trusted CAs are the platform's (`rustls-platform-verifier`: on Linux, the system
//! bundle, which `SSL_CERT_FILE` / `SSL_CERT_DIR` *replace*); see `docs/egress.md`.

use std::fmt;
use std::time::Duration;

use url::Url;

/// Hosts that never take a proxy (curl's `NO_PROXY` syntax).
const LOOPBACK: &str = "localhost,127.0.0.0/8,::1";

/// An egress proxy's address as shown in messages: scheme, host and port, never the
/// credentials a proxy URL may carry.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyAddress {
    /// The URL as configured (credentials included): given to the HTTP client only.
    url: String,
    shown: String,
}

impl ProxyAddress {
    /// Parses a proxy variable's value; a value without a scheme is an `http://` proxy
    /// (as curl reads it). `None` for an empty value.
    fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        let url = if value.contains("://") {
            value.to_owned()
        } else {
            format!("http://{value}")
        };
        let shown = Url::parse(&url).map_or_else(
            |_| "(an unparseable proxy URL)".to_owned(),
            |parsed| {
                let host = parsed.host_str().unwrap_or("?");
                match parsed.port_or_known_default() {
                    Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
                    None => format!("{}://{host}", parsed.scheme()),
                }
            },
        );
        Some(Self { url, shown })
    }
}

impl fmt::Display for ProxyAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for ProxyAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyAddress({})", self.shown)
    }
}

/// The egress proxies of the Genesys calls, read once from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Egress {
    http: Option<ProxyAddress>,
    https: Option<ProxyAddress>,
    all: Option<ProxyAddress>,
    no_proxy: String,
}

impl Egress {
    /// From the process environment (the variables listed in the module doc).
    #[must_use]
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From the variables `lookup` gives (tests, or another source than the process
    /// environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&str]| names.iter().find_map(|name| lookup(name));
        let is_cgi = lookup("REQUEST_METHOD").is_some();
        let http = if is_cgi {
            first(&["http_proxy"])
        } else {
            first(&["HTTP_PROXY", "http_proxy"])
        };
        Self {
            http: http.as_deref().and_then(ProxyAddress::parse),
            https: first(&["HTTPS_PROXY", "https_proxy"])
                .as_deref()
                .and_then(ProxyAddress::parse),
            all: first(&["ALL_PROXY", "all_proxy"])
                .as_deref()
                .and_then(ProxyAddress::parse),
            no_proxy: first(&["NO_PROXY", "no_proxy"]).unwrap_or_default(),
        }
    }

    /// The proxy `https://` calls tunnel through, if any (before `NO_PROXY`).
    #[must_use]
    pub fn https_proxy(&self) -> Option<&ProxyAddress> {
        self.https.as_ref().or(self.all.as_ref())
    }

    /// The proxy `http://` calls go through, if any (before `NO_PROXY`).
    #[must_use]
    pub fn http_proxy(&self) -> Option<&ProxyAddress> {
        self.http.as_ref().or(self.all.as_ref())
    }

    /// `builder` with these proxies and loopback hosts exempt (the client then reads no
    /// proxy variable of its own).
    ///
    /// # Errors
    /// A message naming the variable whose proxy URL cannot be used.
    pub fn configure(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        let exempt = if self.no_proxy.trim().is_empty() {
            LOOPBACK.to_owned()
        } else {
            format!("{LOOPBACK},{}", self.no_proxy)
        };
        let no_proxy = || reqwest::NoProxy::from_string(&exempt);
        let mut builder = builder.no_proxy();
        type Make = fn(String) -> reqwest::Result<reqwest::Proxy>;
        let proxies: [(&str, Option<&ProxyAddress>, Make); 3] = [
            ("HTTPS_PROXY", self.https.as_ref(), reqwest::Proxy::https),
            ("HTTP_PROXY", self.http.as_ref(), reqwest::Proxy::http),
            ("ALL_PROXY", self.all.as_ref(), reqwest::Proxy::all),
        ];
        for (variable, address, make) in proxies {
            let Some(address) = address else { continue };
            let proxy = make(address.url.clone())
                .map_err(|_| format!("{variable} ({address}) is not a usable proxy URL"))?;
            builder = builder.proxy(proxy.no_proxy(no_proxy()));
        }
        Ok(builder)
    }

    /// A transport error of a call to `target`, described without its query or any
    /// header; when an egress proxy failed, the message names it.
    #[must_use]
    pub fn describe(&self, error: &reqwest::Error, target: &Url) -> String {
        let host = target.host_str().unwrap_or("?");
        let Some(tunnel) = find_in_chain(error, tunnel_failure) else {
            return match find_in_chain(error, tls_failure) {
                Some(TlsFailure::Untrusted(reason)) => format!(
                    "the TLS certificate of {host} is not trusted ({reason}); behind a TLS-inspecting egress proxy, its CA must be in the trusted bundle (SSL_CERT_FILE, see docs/egress.md)"
                ),
                Some(TlsFailure::CutOff) => {
                    format!("the TLS handshake with {host} was cut off")
                }
                None => describe_transport_error(error),
            };
        };
        let proxy = self
            .https_proxy()
            .map_or_else(|| "(unknown)".to_owned(), ToString::to_string);
        let destination = format!("{host}:{}", target.port_or_known_default().unwrap_or(443));
        match tunnel {
            TunnelFailure::Refused => {
                format!("the egress proxy {proxy} refused the CONNECT to {destination}")
            }
            TunnelFailure::AuthenticationRequired => format!(
                "the egress proxy {proxy} requires authentication (407) for the CONNECT to {destination}; give it as HTTPS_PROXY=http://user:password@host:port"
            ),
            TunnelFailure::Closed => format!(
                "the egress proxy {proxy} closed the CONNECT to {destination} without answering"
            ),
            TunnelFailure::Unreachable => {
                format!("could not connect to the egress proxy {proxy}")
            }
            TunnelFailure::Other => {
                format!("the CONNECT to {destination} through the egress proxy {proxy} failed")
            }
        }
    }
}

/// How a `CONNECT` tunnel failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TunnelFailure {
    /// The proxy answered something else than 200 (or 407).
    Refused,
    /// The proxy answered 407.
    AuthenticationRequired,
    /// The proxy closed the connection before answering.
    Closed,
    /// The proxy could not be reached.
    Unreachable,
    Other,
}

/// How a TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TlsFailure {
    /// The certificate chain is not trusted (the verifier's reason, such as
    /// `UnknownIssuer`).
    Untrusted(String),
    /// The connection closed during the handshake.
    CutOff,
}

/// The first error of `error`'s chain (itself included) that `classify` recognises.
fn find_in_chain<T>(error: &reqwest::Error, classify: impl Fn(&str) -> Option<T>) -> Option<T> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(found) = classify(&current.to_string()) {
            return Some(found);
        }
        source = current.source();
    }
    None
}

/// A tunnel failure, by its message: the tunnel's error type is private to `hyper-util`,
/// its messages (`tunnel error: ...`) are what identifies it.
fn tunnel_failure(message: &str) -> Option<TunnelFailure> {
    let kind = message.strip_prefix("tunnel error: ")?;
    Some(match kind {
        "unsuccessful" => TunnelFailure::Refused,
        "proxy authorization required" => TunnelFailure::AuthenticationRequired,
        "unexpected end of file" => TunnelFailure::Closed,
        "failed to create underlying connection" => TunnelFailure::Unreachable,
        _ => TunnelFailure::Other,
    })
}

/// A TLS handshake failure, by its message (rustls' `invalid peer certificate: ...`,
/// `tls handshake eof`).
fn tls_failure(message: &str) -> Option<TlsFailure> {
    if let Some((_, reason)) = message.split_once("invalid peer certificate: ") {
        // The verifier's reason is a short enum name; bound it all the same.
        return Some(TlsFailure::Untrusted(reason.chars().take(120).collect()));
    }
    (message == "tls handshake eof").then_some(TlsFailure::CutOff)
}

/// A transport error described without its URL's query or any header.
#[must_use]
pub fn describe_transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if find_in_chain(error, tunnel_failure).is_some() {
        "the egress proxy refused or failed the CONNECT".to_owned()
    } else if find_in_chain(error, tls_failure).is_some() {
        "the TLS handshake failed".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_body() || error.is_decode() {
        "the response body could not be read".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

/// A client for calls to this host's own ports (the `healthcheck` subcommand): never
/// through a proxy, whatever the environment says, with `timeout` for the whole call.
///
/// # Errors
/// When the HTTP client cannot be built.
pub fn local_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(pairs: &[(&str, &str)]) -> Egress {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Egress::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn proxies_are_read_as_curl_reads_them_and_shown_without_credentials() {
        let read = egress(&[
            ("https_proxy", "http://alice:s3cret@proxy.corp:3128"),
            ("HTTP_PROXY", "proxy.corp:8080"),
        ]);
        let https = read.https_proxy().expect("https proxy");
        assert_eq!(https.to_string(), "http://proxy.corp:3128");
        assert!(!format!("{https:?}").contains("s3cret"));
        assert_eq!(
            read.http_proxy().expect("http proxy").to_string(),
            "http://proxy.corp:8080"
        );
        let cgi = egress(&[("HTTP_PROXY", "http://evil:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(cgi.http_proxy(), None, "HTTP_PROXY is ignored under CGI");
        let all = egress(&[("ALL_PROXY", "http://all:1")]);
        assert_eq!(all.https_proxy().expect("all").to_string(), "http://all:1");
        assert_eq!(egress(&[("HTTPS_PROXY", " ")]).https_proxy(), None);
    }

    #[test]
    fn tunnel_and_tls_failures_are_recognised_by_their_messages() {
        assert_eq!(
            tunnel_failure("tunnel error: unsuccessful"),
            Some(TunnelFailure::Refused)
        );
        assert_eq!(
            tunnel_failure("tunnel error: proxy authorization required"),
            Some(TunnelFailure::AuthenticationRequired)
        );
        assert_eq!(tunnel_failure("client error (Connect)"), None);
        assert_eq!(
            tls_failure("invalid peer certificate: UnknownIssuer"),
            Some(TlsFailure::Untrusted("UnknownIssuer".into()))
        );
        assert_eq!(tls_failure("tls handshake eof"), Some(TlsFailure::CutOff));
        assert_eq!(tls_failure("connection refused"), None);
    }
}
