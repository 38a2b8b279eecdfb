//! Demo mode (`genesys-proxy --demo`): starts the simulated Genesys org in-process, points
//! the proxy at it, makes a demo API key, and prints the address, the key, a few real
//! conversation ids and ready-to-paste curl commands. Nothing to install, no credentials.
//! Compiled with the `demo` cargo feature (on by default); a production build
//! (`--no-default-features`) has neither this module nor the simulator.

use std::fmt::Write as _;

use genesys_sim::{SimConfig, Simulator};
use secrecy::SecretString;

use crate::auth::{ClientSettings, Scope, generate_key, hash_key};
use crate::config::{GenesysConnection, Settings};
use crate::upstream::{ClientCredentials, Endpoints};

/// A running simulator and the settings that point the proxy at it.
#[derive(Debug)]
pub struct Demo {
    pub simulator: Simulator,
    /// The demo client's API key (printed once at start).
    pub api_key: String,
}

impl Demo {
    /// Starts the simulator and adds the demo client to `settings`.
    ///
    /// # Errors
    /// When the simulator cannot bind a port.
    pub async fn start(settings: &mut Settings) -> Result<(Self, GenesysConnection), String> {
        let simulator = Simulator::start(SimConfig::default())
            .await
            .map_err(|e| format!("cannot start the simulator: {e}"))?;
        let api_key = generate_key();
        settings.clients.push(ClientSettings {
            name: "demo".into(),
            key_sha256: hash_key(&api_key),
            scopes: vec![Scope::ConversationsRead, Scope::ReportsRead, Scope::Admin],
            weight: 1,
        });
        let endpoints = Endpoints::explicit(&simulator.base_url(), &simulator.base_url())?;
        let connection = GenesysConnection {
            endpoints,
            credentials: ClientCredentials {
                client_id: genesys_sim::config::DEFAULT_CLIENT_ID.to_owned(),
                client_secret: SecretString::from(genesys_sim::config::DEFAULT_CLIENT_SECRET),
            },
        };
        Ok((Self { simulator, api_key }, connection))
    }

    /// The start-up banner: address, key, sample ids, curl commands.
    #[must_use]
    pub fn banner(&self, proxy: std::net::SocketAddr) -> String {
        let base = format!("http://{proxy}");
        let data = self.simulator.data();
        let now = self.simulator.state().now();
        let live: Vec<String> = data
            .conversations
            .iter()
            .filter(|c| c.start <= now && !c.is_over_at(now))
            .take(2)
            .map(|c| c.id.to_string())
            .collect();
        let ended: Vec<String> = data
            .conversations
            .iter()
            .rev()
            .filter(|c| c.is_over_at(now))
            .take(3)
            .map(|c| c.id.to_string())
            .collect();
        let key = &self.api_key;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "genesys-proxy demo: proxy on {base}, simulated Genesys org on {}",
            self.simulator.base_url()
        );
        let _ = writeln!(out, "  demo API key (all scopes): {key}");
        let _ = writeln!(out, "  live conversations:  {}", live.join(" "));
        let _ = writeln!(out, "  ended conversations: {}", ended.join(" "));
        let _ = writeln!(out, "  API docs: {base}/docs");
        let _ = writeln!(out);
        let _ = writeln!(out, "Try:");
        if let Some(id) = live.first().or(ended.first()) {
            let _ = writeln!(
                out,
                "  curl -s -H 'Authorization: Bearer {key}' {base}/conversations/{id}"
            );
            let _ = writeln!(
                out,
                "  curl -s -H 'X-API-Key: {key}' '{base}/conversations/{id}?view=full'"
            );
            let _ = writeln!(
                out,
                "  curl -si -H 'X-API-Key: {key}' {base}/conversations/{id} | grep -i -E '^(cache-status|etag|age)'"
            );
        }
        let _ = writeln!(
            out,
            "  curl -s -H 'X-API-Key: {key}' '{base}/reports/search?last=PT1H&page_size=5'"
        );
        let _ = writeln!(
            out,
            "  curl -s -H 'X-API-Key: {key}' '{base}/reports/search?last=P7D&media_types=voice&min_handle_seconds=300&page_size=5'"
        );
        let _ = writeln!(
            out,
            "  curl -s -H 'X-API-Key: {key}' '{base}/reports/aggregates?last=P1D&granularity=PT6H&group_by=queue_id&metrics=offered,wait,handle'"
        );
        let _ = writeln!(out, "  curl -s {base}/readyz");
        let _ = writeln!(out, "  curl -s -H 'X-API-Key: {key}' {base}/admin/cache");
        out
    }
}
