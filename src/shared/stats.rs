//! [`SharedStats`]: the shared tier as `/metrics`, `/admin/cache` and `/readyz` show it:
//! whether Redis is in use or the replica runs on local state, the live replicas, the
//! failed Redis calls and the rejoins. Never the URL's password, never the token.

use crate::metrics::{counter_by, header, sample};

use super::SharedTier;

/// A point-in-time view of the shared tier.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SharedStats {
    /// `shared` (Redis in use) or `local` (Redis unavailable: local fallback).
    pub mode: &'static str,
    /// `redis.url` without its password.
    pub redis: String,
    /// This replica's id in the registry.
    pub replica: String,
    /// Live replicas at the last heartbeat (the last count while Redis is down).
    pub live_replicas: u32,
    /// Redis calls that failed or timed out.
    pub failures: u64,
    /// Times this replica rejoined shared mode after an outage.
    pub rejoins: u64,
    /// The shared budget's gate.
    pub budget_gate: super::budget::GateStats,
    /// The shared cache tier and its flights.
    pub cache: super::cache::SharedCacheStats,
    /// Why Redis counts as unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl SharedTier {
    /// The tier's figures.
    pub fn stats(&self) -> SharedStats {
        let available = self.available();
        SharedStats {
            mode: if available { "shared" } else { "local" },
            redis: self.store.shown_url().to_owned(),
            replica: self.replica.clone(),
            live_replicas: self.live_replicas(),
            failures: self.store.failures(),
            rejoins: self.store.rejoins(),
            budget_gate: self.gate.stats(),
            cache: self.cache.stats(),
            detail: if available {
                None
            } else {
                self.store.last_error()
            },
        }
    }
}

impl SharedStats {
    /// The `shared` component of `/readyz`: `ok` in shared mode, `degraded` on local
    /// fallback. A degraded tier does not make the replica unready: it still serves.
    #[must_use]
    pub fn report(&self) -> serde_json::Value {
        let mut report = serde_json::json!({
            "status": if self.mode == "shared" { "ok" } else { "degraded" },
            "mode": self.mode,
            "live_replicas": self.live_replicas,
        });
        if let Some(detail) = &self.detail {
            report["detail"] = detail.clone().into();
        }
        report
    }

    /// Appends the shared tier's metric families.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "genesys_proxy_shared_available",
            "gauge",
            "1 while Redis is in use (shared token and budget); 0 on local fallback.",
        );
        sample(
            out,
            "genesys_proxy_shared_available",
            "",
            u8::from(self.mode == "shared"),
        );
        header(
            out,
            "genesys_proxy_shared_live_replicas",
            "gauge",
            "Replicas seen alive at the last heartbeat.",
        );
        sample(
            out,
            "genesys_proxy_shared_live_replicas",
            "",
            self.live_replicas,
        );
        header(
            out,
            "genesys_proxy_shared_failures_total",
            "counter",
            "Redis calls that failed or timed out.",
        );
        sample(
            out,
            "genesys_proxy_shared_failures_total",
            "",
            self.failures,
        );
        header(
            out,
            "genesys_proxy_shared_rejoins_total",
            "counter",
            "Times this replica rejoined shared mode after Redis was unavailable.",
        );
        sample(out, "genesys_proxy_shared_rejoins_total", "", self.rejoins);
        counter_by(
            out,
            "genesys_proxy_shared_budget_grants_total",
            "Upstream calls let through by the budget's gate: by the shared (Redis) gate, or by the local fallback at rate / live replicas.",
            "gate",
            &[
                ("shared", self.budget_gate.shared_grants),
                ("local", self.budget_gate.local_grants),
            ],
        );
        self.render_gate(out);
        self.render_cache(out);
    }

    /// How calls passed the shared gate: their waits and the slots reserved for them.
    fn render_gate(&self, out: &mut String) {
        let gate = &self.budget_gate;
        counter_by(
            out,
            "genesys_proxy_shared_budget_reservations_total",
            "Slots of the shared gate reserved for this replica's calls, by result: used (a call waited for its slot and went), lapsed (its caller went away and no other caller of the replica took the slot in time).",
            "result",
            &[
                ("used", gate.reserved_grants),
                ("lapsed", gate.lapsed_reservations),
            ],
        );
        header(
            out,
            "genesys_proxy_shared_budget_gate_wait_seconds_total",
            "counter",
            "Time calls granted by the replica's budget spent at the shared gate (their turn, their reserved slot, a freeze, a spent window), whether they went or were refused.",
        );
        sample(
            out,
            "genesys_proxy_shared_budget_gate_wait_seconds_total",
            "",
            gate.wait_ms as f64 / 1_000.0,
        );
    }

    /// The shared cache's families.
    fn render_cache(&self, out: &mut String) {
        let cache = &self.cache;
        counter_by(
            out,
            "genesys_proxy_shared_cache_requests_total",
            "Calls of the shared (Redis) cache tier: lookups after a miss in the replica's own tier by result (hit, miss), and error for any cache call (lookup, write, flight marker) that failed, timed out, was skipped while Redis is unavailable, or read an unreadable record.",
            "result",
            &[
                ("hit", cache.hits),
                ("miss", cache.misses),
                ("error", cache.errors),
            ],
        );
        counter_by(
            out,
            "genesys_proxy_shared_cache_flights_total",
            "Fetches coalesced across replicas, by role: led (this replica fetched for all), followed (it waited for another's), followed_in_vain (that wait ended without an entry: it claimed the fetch again).",
            "role",
            &[
                ("led", cache.flights_led),
                ("followed", cache.flights_followed),
                ("followed_in_vain", cache.flights_followed_in_vain),
            ],
        );
    }
}

/// What Redis holds for the shared token and budget, read for `/admin/cache`.
type Held = (
    Option<Vec<u8>>,
    i64,
    Vec<(String, String)>,
    Option<String>,
    (u64, u64),
);

impl SharedTier {
    /// The tier's figures with what Redis holds now (`/admin/cache`): whether a shared
    /// token is there, for how long, and whether this replica uses it (`uses` compares the
    /// sealed values; never the token itself); the shared budget's window mirror and
    /// freeze. Without Redis, the figures alone.
    pub async fn view(&self, uses: impl Fn(&[u8]) -> bool) -> serde_json::Value {
        let mut view = serde_json::to_value(self.stats()).unwrap_or_default();
        let keys = self.keys.clone();
        let held: Result<Held, _> = self
            .store
            .run(|mut connection| async move {
                redis::pipe()
                    .get(&keys.token)
                    .pttl(&keys.token)
                    .hgetall(&keys.budget_window)
                    .get(&keys.budget_frozen)
                    .cmd("TIME")
                    .query_async(&mut connection)
                    .await
            })
            .await;
        let Ok((sealed, ttl_ms, window, frozen, (secs, micros))) = held else {
            return view;
        };
        let now_ms = secs as f64 * 1_000.0 + micros as f64 / 1_000.0;
        view["token"] = serde_json::json!({
            "held_in_redis": sealed.is_some(),
            "expires_in_secs": (ttl_ms > 0).then_some(ttl_ms / 1_000),
            "this_replica_uses_it": sealed.as_deref().is_some_and(&uses),
        });
        let window: std::collections::BTreeMap<String, String> = window.into_iter().collect();
        let number = |name: &str| window.get(name).and_then(|v| v.parse::<f64>().ok());
        let frozen_ms = frozen
            .and_then(|f| f.parse::<f64>().ok())
            .map_or(0.0, |f| (f - now_ms).max(0.0));
        view["budget"] = serde_json::json!({
            "window_used": number("used"),
            "window_allowed": number("allowed"),
            "window_reset_in_ms": number("reset_at").map(|r| (r - now_ms).max(0.0).round()),
            "frozen_for_ms": frozen_ms.round(),
        });
        view
    }
}
