//! Shared set-up of the proxy's integration tests: a simulator on port 0 and the pieces of
//! the proxy pointed at it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use genesys_proxy::upstream::budget::{BudgetSettings, LocalBudget};
use genesys_proxy::upstream::{
    CallContext, Class, ClientCredentials, Endpoints, GenesysClient, UpstreamSettings,
};
use genesys_sim::{IntervalMatching, SimConfig, Simulator};
use secrecy::SecretString;

/// The instant test orgs are generated around.
pub fn anchor() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-12T00:00:00Z")
        .expect("valid anchor")
        .with_timezone(&Utc)
}

/// A small org with a fixed anchor.
pub fn sim_config() -> SimConfig {
    SimConfig {
        seed: 7,
        conversations: 400,
        days: 10,
        live_conversations: 6,
        anchor: Some(anchor()),
        interval_matching: IntervalMatching::StartedInInterval,
        ..SimConfig::default()
    }
}

/// A budget that never gets in the way (for tests about something else).
pub fn generous_budget() -> BudgetSettings {
    BudgetSettings {
        rate: 1_000_000,
        period_secs: 60.0,
        burst: 10_000,
        max_concurrency: 64,
        reset_guard_ms: 0,
        ..BudgetSettings::default()
    }
}

/// Fast retries for tests.
pub fn upstream_settings() -> UpstreamSettings {
    UpstreamSettings {
        request_timeout_ms: 2_000,
        retry_base_ms: 10,
        retry_max_ms: 50,
        ..UpstreamSettings::default()
    }
}

pub fn credentials(secret: &str) -> ClientCredentials {
    ClientCredentials {
        client_id: genesys_sim::config::DEFAULT_CLIENT_ID.to_owned(),
        client_secret: SecretString::from(secret.to_owned()),
    }
}

/// A Genesys client against `sim`.
pub fn client(
    sim: &Simulator,
    budget: BudgetSettings,
    settings: UpstreamSettings,
    secret: &str,
) -> Arc<GenesysClient> {
    let endpoints = Endpoints::explicit(&sim.base_url(), &sim.base_url()).expect("sim URLs");
    Arc::new(
        GenesysClient::new(
            &endpoints,
            credentials(secret),
            settings,
            Arc::new(LocalBudget::new(budget)),
        )
        .expect("client builds"),
    )
}

/// A call context of `class` for `client` with `timeout`.
pub fn ctx(class: Class, client: &str, timeout: Duration) -> CallContext {
    CallContext::new(class, client.to_owned(), 1, timeout)
}
