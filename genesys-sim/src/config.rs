//! Everything that shapes a simulated org: its data, its credentials, its limits and the
//! faults it starts with. Built by the `genesys-sim` binary from flags and by tests directly.
//!
//! Values that Genesys does not publish (analytics limits, error codes for expired tokens,
//! the token endpoint's status for bad credentials, how a details query matches its
//! interval) are settings here, with the documented or most likely behaviour as default.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::faults::Faults;

/// Default OAuth client id accepted by the simulator (documented in the README).
pub const DEFAULT_CLIENT_ID: &str = "sim-client";
/// Default OAuth client secret accepted by the simulator (documented in the README; a
/// simulator credential, not a secret of anybody's).
pub const DEFAULT_CLIENT_SECRET: &str = "sim-secret";

/// How the details query decides that a conversation falls in the query's interval.
///
/// Genesys documents: "Results will only include conversations that started on a day
/// touched by the interval". Whether the service really widens to whole UTC days is not
/// confirmed, so both readings are available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalMatching {
    /// The documented wording: the conversation started on a UTC day that the interval
    /// touches (so results can fall outside the interval itself).
    StartedOnTouchedDay,
    /// The conversation started inside `[start, end)`.
    StartedInInterval,
}

/// The ErrorBody code of a 401 for an expired token: Genesys documents both for 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiredTokenCode {
    /// `bad.credentials` ("Invalid login credentials.").
    BadCredentials,
    /// `credentials.expired`.
    CredentialsExpired,
}

impl ExpiredTokenCode {
    /// The wire code.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadCredentials => "bad.credentials",
            Self::CredentialsExpired => "credentials.expired",
        }
    }
}

/// The analytics limits the simulator enforces (not published by Genesys: all settable).
#[derive(Debug, Clone)]
pub struct AnalyticsLimits {
    /// Largest `paging.pageSize` a details query may ask for.
    pub max_page_size: u32,
    /// `paging.pageSize` when the query gives no paging (documented: 25).
    pub default_page_size: u32,
    /// Longest interval a details or aggregates query may span.
    pub max_interval: Duration,
    /// Most ids one multi-get (`GET /analytics/conversations/details?id=`) may ask for.
    pub max_multi_get_ids: usize,
    /// Most buckets (interval / granularity) one aggregates query may produce.
    pub max_aggregate_buckets: usize,
}

impl Default for AnalyticsLimits {
    fn default() -> Self {
        Self {
            max_page_size: 100,
            default_page_size: 25,
            max_interval: Duration::from_secs(31 * 24 * 3600),
            max_multi_get_ids: 100,
            max_aggregate_buckets: 10_000,
        }
    }
}

/// The Notifications API's settings (API-FACTS section 8; the UNCONFIRMED ones are
/// settings for that reason). Lifetime and heartbeat can also be changed at run time
/// (`PUT /sim/notifications/settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationSettings {
    /// How long a channel lives after its creation (documented: 24 hours).
    pub channel_lifetime: Duration,
    /// Time between two `WebSocket Heartbeat` messages on a socket (community observation:
    /// 30 s, UNCONFIRMED).
    pub heartbeat_interval: Duration,
    /// Channels one OAuth client may hold; creating one more removes the least recently
    /// used (documented: 20).
    pub max_channels: usize,
    /// Topics one channel may hold (documented: 1,000).
    pub max_topics: usize,
    /// How often the simulator looks for conversations that changed and sends their
    /// events: an event leaves at most this long after its change (a simulator setting,
    /// not a Genesys one).
    pub event_tick: Duration,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            channel_lifetime: Duration::from_secs(24 * 3600),
            heartbeat_interval: Duration::from_secs(30),
            max_channels: 20,
            max_topics: 1_000,
            event_tick: Duration::from_millis(50),
        }
    }
}

/// Everything needed to start one simulated org.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every generated value: the same seed gives the same org and conversations.
    pub seed: u64,
    /// Number of historical conversations: they start over the `days` before `anchor`.
    /// Without `continuous` they are all over two hours before `anchor`.
    pub conversations: usize,
    /// Number of days, ending at `anchor`, over which historical conversations start.
    pub days: u32,
    /// Number of live conversations: they start shortly before `anchor` and advance as the
    /// simulator's clock runs. Not used with `continuous`, where the conversations running
    /// at any instant are simply those that arrived shortly before it.
    pub live_conversations: usize,
    /// Continuous arrivals (default off): conversations arrive at the historical rate
    /// (`conversations / days` a day) right up to `anchor` and keep arriving for
    /// [`ARRIVALS_AHEAD_DAYS`](crate::data::ARRIVALS_AHEAD_DAYS) days after it. The API
    /// shows each one only from its start on (by the simulator's clock), running and then
    /// ended as the clock moves, as in a real contact centre; `last=PT15M` at any hour
    /// holds about a 96th of a day's conversations (more in busy hours with `diurnal`).
    pub continuous: bool,
    /// Diurnal arrivals (default off): arrival density follows a contact-centre day, busy
    /// 08:00-18:00 UTC and quiet (never empty) at night
    /// ([`DIURNAL_WEIGHTS`](crate::data::DIURNAL_WEIGHTS)), for historical conversations and
    /// continuous arrivals alike; the number of conversations a day is unchanged. Live
    /// conversations (without `continuous`) still start just before `anchor`.
    pub diurnal: bool,
    /// The instant the data is generated around. Defaults to the start time, to the minute.
    pub anchor: Option<DateTime<Utc>>,
    /// Accepted OAuth client id.
    pub client_id: String,
    /// Accepted OAuth client secret.
    pub client_secret: String,
    /// `expires_in` of issued tokens.
    pub token_ttl: Duration,
    /// Requests a token may make per rate window before it gets 429.
    pub rate_limit: u32,
    /// Length of the per-token rate window (Genesys: one minute).
    pub rate_window: Duration,
    /// Analytics limits.
    pub limits: AnalyticsLimits,
    /// How the details query matches its interval.
    pub interval_matching: IntervalMatching,
    /// ErrorBody `code` for an expired token (UNCONFIRMED which one Genesys sends).
    pub expired_token_code: ExpiredTokenCode,
    /// HTTP status of the token endpoint for wrong client credentials (UNCONFIRMED).
    pub bad_client_status: u16,
    /// Faults active from the start.
    pub faults: Faults,
    /// The Notifications API's limits and timings.
    pub notifications: NotificationSettings,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            conversations: 2_000,
            days: 30,
            live_conversations: 20,
            continuous: false,
            diurnal: false,
            anchor: None,
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            token_ttl: Duration::from_secs(86_400),
            rate_limit: 300,
            rate_window: Duration::from_secs(60),
            limits: AnalyticsLimits::default(),
            interval_matching: IntervalMatching::StartedOnTouchedDay,
            expired_token_code: ExpiredTokenCode::BadCredentials,
            bad_client_status: 401,
            faults: Faults::default(),
            notifications: NotificationSettings::default(),
        }
    }
}
