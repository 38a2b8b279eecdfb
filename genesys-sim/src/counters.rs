//! Counters tests read to prove what reached the simulator: calls per endpoint counted on
//! arrival (before any latency, fault or handler, so a call its client abandons mid-flight
//! still counts, as Genesys would charge it) and again on completion by status, tokens
//! issued, 429s sent. Read them in-process with [`Counters::snapshot`] or over HTTP at
//! `GET /sim/counters`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Endpoint labels used as counter keys.
pub mod endpoint {
    pub const OAUTH_TOKEN: &str = "oauth_token";
    pub const GET_CONVERSATION: &str = "get_conversation";
    pub const DETAILS_QUERY: &str = "details_query";
    pub const DETAILS_MULTI_GET: &str = "details_multi_get";
    pub const DETAILS_GET: &str = "details_get";
    pub const AGGREGATES_QUERY: &str = "aggregates_query";
    /// `POST` and `GET /api/v2/notifications/channels`, `HEAD .../channels/{id}`.
    pub const CHANNELS: &str = "notifications_channels";
    pub const SUBSCRIPTIONS: &str = "notifications_subscriptions";
    pub const ROUTING_QUEUES: &str = "routing_queues";
    pub const UNKNOWN: &str = "unknown";
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CountersSnapshot {
    /// endpoint label -> HTTP status -> number of responses (completed calls).
    pub calls: BTreeMap<String, BTreeMap<u16, u64>>,
    /// endpoint label -> number of calls that arrived, answered or not.
    pub arrivals: BTreeMap<String, u64>,
    /// Successful token grants.
    pub tokens_issued: u64,
    /// 429 responses sent (real rate limiting and forced storms).
    pub rate_limited: u64,
}

impl CountersSnapshot {
    /// Calls that arrived for `endpoint`, including those still in flight and those whose
    /// client went away before the answer.
    #[must_use]
    pub fn arrivals_to(&self, endpoint: &str) -> u64 {
        self.arrivals.get(endpoint).copied().unwrap_or(0)
    }

    /// Responses sent for `endpoint`, any status (completed calls; [`Self::arrivals_to`]
    /// also counts those still in flight or abandoned).
    #[must_use]
    pub fn calls_to(&self, endpoint: &str) -> u64 {
        self.calls.get(endpoint).map_or(0, |by| by.values().sum())
    }

    /// Responses sent for `endpoint` with `status`.
    #[must_use]
    pub fn calls_with(&self, endpoint: &str, status: u16) -> u64 {
        self.calls
            .get(endpoint)
            .and_then(|by| by.get(&status))
            .copied()
            .unwrap_or(0)
    }

    /// API responses (every endpoint but the token endpoint) with `status`.
    #[must_use]
    pub fn api_calls_with(&self, status: u16) -> u64 {
        self.calls
            .iter()
            .filter(|(name, _)| name.as_str() != endpoint::OAUTH_TOKEN)
            .filter_map(|(_, by)| by.get(&status))
            .sum()
    }
}

/// Thread-safe counters.
#[derive(Debug, Default)]
pub struct Counters {
    inner: Mutex<CountersSnapshot>,
}

impl Counters {
    fn with<T>(&self, f: impl FnOnce(&mut CountersSnapshot) -> T) -> T {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Counts one call on arrival, before it is answered.
    pub fn arrived(&self, endpoint: &str) {
        self.with(|c| *c.arrivals.entry(endpoint.to_owned()).or_default() += 1);
    }

    /// Counts one response.
    pub fn record(&self, endpoint: &str, status: u16) {
        self.with(|c| {
            *c.calls
                .entry(endpoint.to_owned())
                .or_default()
                .entry(status)
                .or_default() += 1;
            if status == 429 {
                c.rate_limited += 1;
            }
        });
    }

    /// Counts one token grant.
    pub fn token_issued(&self) {
        self.with(|c| c.tokens_issued += 1);
    }

    /// A copy of the current values.
    #[must_use]
    pub fn snapshot(&self) -> CountersSnapshot {
        self.with(|c| c.clone())
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        self.with(|c| *c = CountersSnapshot::default());
    }
}
