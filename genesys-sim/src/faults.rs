//! Faults the simulator injects, settable at start and at run time (`PUT /sim/faults`):
//! added latency, error rates per 5xx status, full or login-only outages, forced 429
//! storms with a chosen `Retry-After`, malformed response bodies, and the Notifications
//! API's refused subscriptions and silent sockets (dropped sockets and maintenance closes
//! are actions: `POST /sim/notifications/drop` and `.../maintenance`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Statuses an error rate may be set for.
pub const INJECTABLE_STATUSES: [u16; 4] = [500, 502, 503, 504];

/// A forced run of 429 responses, whatever each token's real usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storm {
    /// `Retry-After` seconds sent with each forced 429.
    pub retry_after_secs: u64,
    /// How many API calls still get a forced 429; `None` = until the storm is cleared.
    #[serde(default)]
    pub remaining: Option<u64>,
}

/// The set of active faults. The default is none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every API and token call before it is answered, in milliseconds.
    pub latency_ms: u64,
    /// Probability (0..=1) that an authorised API call is answered with that status
    /// instead (keys: 500, 502, 503, 504).
    pub error_rates: BTreeMap<u16, f64>,
    /// Every API and token call answers 503.
    pub outage: bool,
    /// Only the token endpoint answers 503 (the API keeps working for issued tokens).
    pub login_outage: bool,
    /// Forced 429 storm.
    pub storm: Option<Storm>,
    /// The next N successful API responses carry a truncated, unparseable JSON body.
    pub malformed_responses: u32,
    /// Every authorised API call answers 403 `missing.permissions`, as when the OAuth
    /// client's role lacks a permission.
    pub forbidden: bool,
    /// Subscription changes (`POST`/`PUT .../subscriptions`) answer 403
    /// `missing.permissions`, the whole request failing as Genesys documents.
    pub subscriptions_forbidden: bool,
    /// How far notification sockets go quiet; `None`: they heartbeat and answer pings.
    pub socket_silence: Option<SocketSilence>,
}

/// How far the notification sockets go quiet (the `socket_silence` fault). Either way they
/// stay open and still carry events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketSilence {
    /// No `WebSocket Heartbeat` messages, but pings are answered, as a half-dead connection
    /// would behave.
    Heartbeats,
    /// No heartbeats and no answer to `{"message":"ping"}` either: a half-open connection
    /// that only a client's silence timeout detects.
    HalfOpen,
}

impl Faults {
    /// Whether sockets send their periodic `WebSocket Heartbeat`.
    #[must_use]
    pub fn sends_heartbeats(&self) -> bool {
        self.socket_silence.is_none()
    }

    /// Whether sockets answer `{"message":"ping"}` with a pong.
    #[must_use]
    pub fn answers_pings(&self) -> bool {
        self.socket_silence != Some(SocketSilence::HalfOpen)
    }

    /// Checks that the settings make sense; the message names the bad field.
    ///
    /// # Errors
    /// Returns a description of the first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        for (&status, &rate) in &self.error_rates {
            if !INJECTABLE_STATUSES.contains(&status) {
                return Err(format!(
                    "error_rates: status {status} cannot be injected (use one of {INJECTABLE_STATUSES:?})"
                ));
            }
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "error_rates.{status}: rate {rate} is not a probability between 0 and 1"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Faults, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn socket_silence_stops_heartbeats_and_when_half_open_the_pongs_too() {
        let quiet = parse("{}").expect("no fault");
        assert!(quiet.sends_heartbeats() && quiet.answers_pings());
        let heartbeats = parse(r#"{"socket_silence": "heartbeats"}"#).expect("heartbeats");
        assert!(!heartbeats.sends_heartbeats() && heartbeats.answers_pings());
        let half_open = parse(r#"{"socket_silence": "half_open"}"#).expect("half_open");
        assert!(!half_open.sends_heartbeats() && !half_open.answers_pings());
        assert!(parse(r#"{"socket_silence": "sometimes"}"#).is_err());
    }
}
