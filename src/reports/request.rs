//! Report requests as clients send them (JSON body for POST, query parameters for GET),
//! validated field by field into [`SearchQuery`] and [`AggregatesQuery`]. Every problem is
//! reported with the field's name, all at once.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ReportSettings;
use super::interval::{self, Interval, clip};
use crate::error::{ApiError, FieldError};

/// Media types Genesys knows (`AnalyticsSession.mediaType`).
pub const MEDIA_TYPES: [&str; 11] = [
    "callback",
    "chat",
    "cobrowse",
    "email",
    "internalmessage",
    "message",
    "screenmonitoring",
    "screenshare",
    "unknown",
    "video",
    "voice",
];

/// Filters shared by search and aggregates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters {
    pub queue_ids: Vec<String>,
    pub user_ids: Vec<String>,
    pub media_types: Vec<String>,
    pub directions: Vec<String>,
    pub wrapup_codes: Vec<String>,
    pub division_ids: Vec<String>,
    /// Milliseconds.
    pub min_handle_ms: Option<i64>,
    pub max_handle_ms: Option<i64>,
}

/// How the interval was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum IntervalSpec {
    /// `from`/`to`.
    Absolute {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// `last` (its text, normalised) and its length.
    Relative {
        last: String,
        #[serde(skip)]
        length: Duration,
    },
}

impl IntervalSpec {
    /// The interval as of `now`.
    #[must_use]
    pub fn resolve(&self, now: DateTime<Utc>, bucket: Duration) -> Interval {
        match self {
            Self::Absolute { from, to } => Interval {
                from: *from,
                to: *to,
            },
            Self::Relative { length, .. } => interval::relative(*length, now, bucket),
        }
    }

    /// How long the interval is (a relative one's fixed length).
    #[must_use]
    pub fn length(&self) -> Duration {
        match self {
            Self::Absolute { from, to } => *to - *from,
            Self::Relative { length, .. } => *length,
        }
    }

    /// Whether it is relative to now.
    #[must_use]
    pub fn is_relative(&self) -> bool {
        matches!(self, Self::Relative { .. })
    }
}

/// Most buckets (per group) one aggregates request may ask for.
pub const MAX_AGGREGATE_BUCKETS: i64 = 10_000;

/// Sort order of search results (by conversation start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Order {
    Asc,
    Desc,
}

/// A validated search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchQuery {
    pub interval: IntervalSpec,
    pub filters: Filters,
    pub order: Order,
    pub page_size: u32,
    pub hydrate: bool,
    /// Not part of the query's identity.
    #[serde(skip)]
    pub cursor: Option<String>,
}

/// A metric a client may ask aggregates for: (name, Genesys metric, unit).
pub const METRICS: [(&str, &str, Unit); 11] = [
    ("offered", "nOffered", Unit::Count),
    ("connected", "nConnected", Unit::Count),
    ("transferred", "nTransferred", Unit::Count),
    ("handle", "tHandle", Unit::Seconds),
    ("talk", "tTalk", Unit::Seconds),
    ("hold", "tHeld", Unit::Seconds),
    ("acw", "tAcw", Unit::Seconds),
    ("wait", "tWait", Unit::Seconds),
    ("abandon", "tAbandon", Unit::Seconds),
    ("answered", "tAnswered", Unit::Seconds),
    ("alert", "tAlert", Unit::Seconds),
];

/// A grouping a client may ask aggregates for: (name, Genesys dimension).
pub const GROUPS: [(&str, &str); 6] = [
    ("queue_id", "queueId"),
    ("user_id", "userId"),
    ("media_type", "mediaType"),
    ("direction", "originatingDirection"),
    ("wrapup_code", "wrapUpCode"),
    ("division_id", "divisionId"),
];

/// The unit of a metric's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Events counted.
    Count,
    /// Durations, in seconds.
    Seconds,
}

/// A validated aggregates request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AggregatesQuery {
    pub interval: IntervalSpec,
    pub filters: Filters,
    #[serde(skip)]
    pub granularity: Option<Duration>,
    pub granularity_text: Option<String>,
    /// Indexes into [`GROUPS`].
    pub group_by: Vec<usize>,
    /// Indexes into [`METRICS`].
    pub metrics: Vec<usize>,
}

/// Fields of a search request (POST body; the GET form takes the same names as query
/// parameters, lists comma-separated or repeated).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SearchRequest {
    /// Start of the interval (RFC 3339); with `to`. Conversations that started in
    /// `[from, to)` are returned.
    #[schema(example = "2025-03-04T00:00:00Z")]
    from: Option<String>,
    /// End of the interval (RFC 3339, exclusive).
    #[schema(example = "2025-03-11T00:00:00Z")]
    to: Option<String>,
    /// Instead of `from`/`to`: the interval ending now (floored to a minute), as an
    /// ISO-8601 duration.
    #[schema(example = "PT15M")]
    last: Option<String>,
    /// Conversations that passed through any of these queues.
    queue_ids: Option<Vec<String>>,
    /// Conversations any of these agents (user ids) took part in.
    user_ids: Option<Vec<String>>,
    /// `voice`, `chat`, `email`, `message`, `callback`, ...
    #[schema(example = json!(["voice"]))]
    media_types: Option<Vec<String>>,
    /// `inbound` and/or `outbound` (the conversation's originating direction).
    directions: Option<Vec<String>>,
    /// Conversations an agent wrapped up with any of these codes.
    wrapup_codes: Option<Vec<String>>,
    /// Conversations in any of these divisions.
    division_ids: Option<Vec<String>>,
    /// Some agent's handle time (talk + hold + after-call work) is at least this.
    #[schema(example = 300)]
    min_handle_seconds: Option<u64>,
    /// Some agent's handle time is at most this.
    max_handle_seconds: Option<u64>,
    /// `asc` (default, oldest first) or `desc`, by conversation start.
    order: Option<String>,
    /// Results per page (default 50, at most 500).
    page_size: Option<u32>,
    /// `next_cursor` of the previous page (send the same query with it).
    cursor: Option<String>,
    /// `conversation`: attach each hit's live conversation view (at most 25 per page).
    include: Option<String>,
}

/// Fields of an aggregates request (POST body, or GET query parameters).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct AggregatesRequest {
    /// Start of the interval (RFC 3339); with `to`.
    #[schema(example = "2025-03-10T00:00:00Z")]
    from: Option<String>,
    /// End of the interval (RFC 3339, exclusive).
    #[schema(example = "2025-03-11T00:00:00Z")]
    to: Option<String>,
    /// Instead of `from`/`to`: the interval ending now (floored to a minute).
    last: Option<String>,
    /// Bucket length (ISO-8601 duration such as `PT30M`, `PT1H`, `P1D`); absent: one bucket.
    #[schema(example = "PT1H")]
    granularity: Option<String>,
    /// Any of `queue_id`, `user_id`, `media_type`, `direction`, `wrapup_code`, `division_id`.
    #[schema(example = json!(["queue_id"]))]
    group_by: Option<Vec<String>>,
    /// Any of `offered`, `connected`, `transferred` (counts) and `handle`, `talk`, `hold`,
    /// `acw`, `wait`, `abandon`, `answered`, `alert` (seconds).
    #[schema(example = json!(["offered", "wait", "handle"]))]
    metrics: Option<Vec<String>>,
    queue_ids: Option<Vec<String>>,
    user_ids: Option<Vec<String>>,
    media_types: Option<Vec<String>>,
    directions: Option<Vec<String>>,
    wrapup_codes: Option<Vec<String>>,
    division_ids: Option<Vec<String>>,
}

const LIST_FIELDS: [&str; 8] = [
    "queue_ids",
    "user_ids",
    "media_types",
    "directions",
    "wrapup_codes",
    "division_ids",
    "group_by",
    "metrics",
];

/// Turns GET query parameters into the same field map a JSON body gives: list fields
/// split on commas (and repeated keys appended), other fields as strings.
///
/// # Errors
/// A 400 naming a scalar field given twice.
pub fn fields_from_query(query: &str) -> Result<Map<String, Value>, ApiError> {
    let mut map = Map::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let key = key.into_owned();
        if LIST_FIELDS.contains(&key.as_str()) {
            let entry = map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.extend(
                    value
                        .split(',')
                        .filter(|v| !v.trim().is_empty())
                        .map(|v| Value::String(v.trim().to_owned())),
                );
            }
        } else if map
            .insert(key.clone(), Value::String(value.into_owned()))
            .is_some()
        {
            return Err(ApiError::invalid_field(&key, "is given more than once"));
        }
    }
    Ok(map)
}

/// Collects field errors while reading a field map.
struct Reader<'a> {
    map: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Reader<'a> {
    /// A reader of `map` that has already named every field outside `known`.
    fn new(map: &'a Map<String, Value>, known: &[&str]) -> Self {
        let mut reader = Self {
            map,
            errors: Vec::new(),
        };
        reader.reject_unknown(known);
        reader
    }

    fn error(&mut self, name: &str, reason: impl Into<String>) {
        self.errors.push(FieldError {
            name: name.to_owned(),
            reason: reason.into(),
        });
    }

    fn text(&mut self, name: &str) -> Option<&'a str> {
        match self.map.get(name)? {
            Value::String(s) => Some(s.as_str()),
            Value::Null => None,
            _ => {
                self.error(name, "must be a string");
                None
            }
        }
    }

    fn number(&mut self, name: &str, max: u64) -> Option<u64> {
        let value = self.map.get(name)?;
        let parsed = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Null => return None,
            _ => None,
        };
        match parsed {
            Some(n) if n <= max => Some(n),
            _ => {
                self.error(name, format!("must be a whole number between 0 and {max}"));
                None
            }
        }
    }

    fn list(&mut self, name: &str) -> Vec<String> {
        let Some(value) = self.map.get(name) else {
            return Vec::new();
        };
        let items = match value {
            Value::Array(items) => items.clone(),
            Value::String(s) => s
                .split(',')
                .map(|v| Value::String(v.trim().to_owned()))
                .collect(),
            Value::Null => return Vec::new(),
            _ => {
                self.error(name, "must be a list of strings");
                return Vec::new();
            }
        };
        if items.len() > 100 {
            self.error(name, "may name at most 100 values");
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) if !s.trim().is_empty() => {
                    if !out.iter().any(|o: &String| o == s.trim()) {
                        out.push(s.trim().to_owned());
                    }
                }
                _ => self.error(&format!("{name}[{i}]"), "must be a non-empty string"),
            }
        }
        out
    }

    fn ids(&mut self, name: &str) -> Vec<String> {
        let values = self.list(name);
        for (i, value) in values.iter().enumerate() {
            if Uuid::try_parse(value).is_err() {
                self.error(
                    &format!("{name}[{i}]"),
                    format!("must be a UUID, not {:?}", clip(value)),
                );
            }
        }
        values.into_iter().map(|v| v.to_ascii_lowercase()).collect()
    }

    fn one_of(&mut self, name: &str, allowed: &[&str]) -> Vec<String> {
        let values = self.list(name);
        for (i, value) in values.iter().enumerate() {
            if !allowed.contains(&value.as_str()) {
                self.error(
                    &format!("{name}[{i}]"),
                    format!(
                        "must be one of {}, not {:?}",
                        allowed.join(", "),
                        clip(value)
                    ),
                );
            }
        }
        values
    }

    fn reject_unknown(&mut self, known: &[&str]) {
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            self.error(&clip(&key), "is not a field of this request");
        }
    }

    fn interval(&mut self, settings: &ReportSettings) -> Option<IntervalSpec> {
        let from = self.text("from");
        let to = self.text("to");
        let last = self.text("last");
        let max_span = Duration::days(i64::from(settings.max_span_days));
        let spec = match (from, to, last) {
            (None, None, None) => {
                self.error("from", "give `from` and `to`, or `last`");
                return None;
            }
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                self.error("last", "give either `last` or `from`/`to`, not both");
                return None;
            }
            (Some(_), None, None) => {
                self.error("to", "is required with `from`");
                return None;
            }
            (None, Some(_), None) => {
                self.error("from", "is required with `to`");
                return None;
            }
            (None, None, Some(last)) => match interval::duration(last) {
                Ok(length) => IntervalSpec::Relative {
                    last: interval::iso_duration(length),
                    length,
                },
                Err(reason) => {
                    self.error("last", reason);
                    return None;
                }
            },
            (Some(from), Some(to), None) => {
                let from = interval::instant(from)
                    .map_err(|r| self.error("from", r))
                    .ok();
                let to = interval::instant(to).map_err(|r| self.error("to", r)).ok();
                let (from, to) = (from?, to?);
                if to <= from {
                    self.error("to", "must be later than `from`");
                    return None;
                }
                IntervalSpec::Absolute { from, to }
            }
        };
        if spec.length() > max_span {
            let name = if spec.is_relative() { "last" } else { "to" };
            self.error(
                name,
                format!(
                    "the interval may span at most {} days",
                    settings.max_span_days
                ),
            );
        }
        Some(spec)
    }

    fn filters(&mut self, allow_handle: bool) -> Filters {
        let mut filters = Filters {
            queue_ids: self.ids("queue_ids"),
            user_ids: self.ids("user_ids"),
            media_types: self.one_of("media_types", &MEDIA_TYPES),
            directions: self.one_of("directions", &["inbound", "outbound"]),
            wrapup_codes: self.list("wrapup_codes"),
            division_ids: self.ids("division_ids"),
            min_handle_ms: None,
            max_handle_ms: None,
        };
        for name in ["min_handle_seconds", "max_handle_seconds"] {
            if !allow_handle && self.map.contains_key(name) {
                self.error(name, "is not supported for aggregates (Genesys aggregates filter on dimensions only)");
            }
        }
        if allow_handle {
            let max = 30 * 86_400;
            let ms = |s: u64| i64::try_from(s * 1000).unwrap_or(i64::MAX);
            filters.min_handle_ms = self.number("min_handle_seconds", max).map(ms);
            filters.max_handle_ms = self.number("max_handle_seconds", max).map(ms);
            if let (Some(min), Some(max)) = (filters.min_handle_ms, filters.max_handle_ms) {
                if min > max {
                    self.error(
                        "max_handle_seconds",
                        "must not be smaller than min_handle_seconds",
                    );
                }
            }
        }
        filters
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => Err(ApiError::invalid(self.errors)),
        }
    }
}

const SEARCH_FIELDS: [&str; 15] = [
    "from",
    "to",
    "last",
    "queue_ids",
    "user_ids",
    "media_types",
    "directions",
    "wrapup_codes",
    "division_ids",
    "min_handle_seconds",
    "max_handle_seconds",
    "order",
    "page_size",
    "cursor",
    "include",
];

const AGGREGATE_FIELDS: [&str; 14] = [
    "from",
    "to",
    "last",
    "granularity",
    "group_by",
    "metrics",
    "queue_ids",
    "user_ids",
    "media_types",
    "directions",
    "wrapup_codes",
    "division_ids",
    "min_handle_seconds",
    "max_handle_seconds",
];

impl SearchQuery {
    /// Validates a search request's fields.
    ///
    /// # Errors
    /// A 400 listing every invalid field.
    pub fn parse(map: &Map<String, Value>, settings: &ReportSettings) -> Result<Self, ApiError> {
        let mut r = Reader::new(map, &SEARCH_FIELDS);
        let interval = r.interval(settings);
        let filters = r.filters(true);
        let order = match r.text("order") {
            None | Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            Some(other) => {
                r.error(
                    "order",
                    format!("must be `asc` or `desc`, not {:?}", clip(other)),
                );
                Order::Asc
            }
        };
        let page_size = match r.number("page_size", u64::from(settings.max_page_size)) {
            Some(0) => {
                r.error(
                    "page_size",
                    format!("must be between 1 and {}", settings.max_page_size),
                );
                settings.default_page_size
            }
            Some(n) => u32::try_from(n).unwrap_or(settings.default_page_size),
            None => settings.default_page_size,
        };
        let hydrate = match r.text("include") {
            None | Some("") => false,
            Some("conversation") => true,
            Some(other) => {
                r.error(
                    "include",
                    format!("must be `conversation`, not {:?}", clip(other)),
                );
                false
            }
        };
        let cursor = r.text("cursor").map(str::to_owned);
        let query = interval.map(|interval| Self {
            interval,
            filters,
            order,
            page_size,
            hydrate,
            cursor,
        });
        r.finish(query)
    }

    /// The query's identity (everything but the cursor) as a hex digest: a cursor is only
    /// valid with the query that produced it.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(canonical)[..16])
    }
}

impl AggregatesQuery {
    /// Validates an aggregates request's fields.
    ///
    /// # Errors
    /// A 400 listing every invalid field.
    pub fn parse(map: &Map<String, Value>, settings: &ReportSettings) -> Result<Self, ApiError> {
        let mut r = Reader::new(map, &AGGREGATE_FIELDS);
        let interval = r.interval(settings);
        let filters = r.filters(false);
        let granularity_text = r.text("granularity");
        let granularity = granularity_text.and_then(|text| match interval::duration(text) {
            Ok(d) if d < Duration::minutes(1) || d.num_seconds() % 60 != 0 => {
                r.error("granularity", "must be whole minutes, at least PT1M");
                None
            }
            Ok(d) if d > Duration::days(i64::from(settings.max_interval_days)) => {
                r.error(
                    "granularity",
                    format!(
                        "may be at most {} days (Genesys' per-query interval)",
                        settings.max_interval_days
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(reason) => {
                r.error("granularity", reason);
                None
            }
        });
        let group_names = r.list("group_by");
        let mut group_by = Vec::new();
        for (i, name) in group_names.iter().enumerate() {
            match GROUPS.iter().position(|(n, _)| n == name) {
                Some(index) => group_by.push(index),
                None => r.error(
                    &format!("group_by[{i}]"),
                    format!(
                        "must be one of {}, not {:?}",
                        GROUPS.map(|(n, _)| n).join(", "),
                        clip(name)
                    ),
                ),
            }
        }
        let metric_names = r.list("metrics");
        if metric_names.is_empty() && !r.map.contains_key("metrics") {
            r.error("metrics", "is required: name at least one metric");
        } else if metric_names.is_empty() {
            r.error("metrics", "must name at least one metric");
        }
        let mut metrics = Vec::new();
        for (i, name) in metric_names.iter().enumerate() {
            match METRICS.iter().position(|(n, _, _)| n == name) {
                Some(index) => metrics.push(index),
                None => r.error(
                    &format!("metrics[{i}]"),
                    format!(
                        "must be one of {}, not {:?}",
                        METRICS.map(|(n, _, _)| n).join(", "),
                        clip(name)
                    ),
                ),
            }
        }
        if let (Some(g), Some(spec)) = (granularity, &interval) {
            // A relative interval has a fixed length too: `last=P366D&granularity=PT1M`
            // would be half a million buckets per group.
            let buckets = spec.length().num_seconds() / g.num_seconds().max(1);
            if buckets > MAX_AGGREGATE_BUCKETS {
                r.error(
                    "granularity",
                    format!("gives {buckets} buckets; at most {MAX_AGGREGATE_BUCKETS}"),
                );
            }
        }
        let query = interval.map(|interval| Self {
            interval,
            filters,
            granularity,
            granularity_text: granularity.map(interval::iso_duration),
            group_by,
            metrics,
        });
        r.finish(query)
    }
}
