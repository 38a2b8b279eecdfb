//! Validated report queries, [`SearchQuery`] and [`AggregatesQuery`]: what a request
//! means once its fields (read from the wire by [`wire`] and [`reader`]) have been checked
//! together: an interval given one way or the other and within the limits, bounds that
//! depend on the settings, handle times in order. Every problem is reported with the
//! field's name, all at once, beside those found reading the fields.

mod reader;
mod schema;
mod wire;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::ReportSettings;
use super::interval::{self, Interval};
use super::vocabulary::{Direction, GroupBy, Include, MediaType, Metric, Order};
use crate::error::ApiError;
pub use reader::{Field, fields_from_query};
use reader::{Reader, field_name};
pub use schema::refine_document;
pub use wire::{AggregatesRequest, MAX_HANDLE_SECONDS, SearchRequest};

/// Filters shared by search and aggregates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters {
    pub queue_ids: Vec<String>,
    pub user_ids: Vec<String>,
    pub media_types: Vec<MediaType>,
    pub directions: Vec<Direction>,
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

/// A validated search. Its JSON is the query's identity (see [`SearchQuery::fingerprint`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchQuery {
    pub interval: IntervalSpec,
    pub filters: Filters,
    #[serde(serialize_with = "order_in_fingerprints")]
    pub order: Order,
    pub page_size: u32,
    pub hydrate: bool,
    /// Not part of the query's identity.
    #[serde(skip)]
    pub cursor: Option<String>,
}

/// How issued cursors name the order in the query fingerprint they carry (the variant's
/// Rust name, as before the order had a wire name): changing it would refuse every cursor
/// in use.
fn order_in_fingerprints<S: serde::Serializer>(
    order: &Order,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(match order {
        Order::Asc => "Asc",
        Order::Desc => "Desc",
    })
}

/// A validated aggregates request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatesQuery {
    pub interval: IntervalSpec,
    pub filters: Filters,
    pub granularity: Option<Duration>,
    /// The granularity in Genesys' (ISO-8601) form.
    pub granularity_text: Option<String>,
    /// Distinct, in the order asked.
    pub group_by: Vec<GroupBy>,
    /// Distinct, in the order asked.
    pub metrics: Vec<Metric>,
}

/// The interval a request names: `from` and `to`, or `last`, within the longest span.
fn interval(
    reader: &mut Reader<'_>,
    from: Option<&str>,
    to: Option<&str>,
    last: Option<&str>,
    settings: &ReportSettings,
) -> Option<IntervalSpec> {
    let (from_name, to_name, last_name) = (
        field_name!(SearchRequest.from),
        field_name!(SearchRequest.to),
        field_name!(SearchRequest.last),
    );
    let max_span = Duration::days(i64::from(settings.max_span_days));
    let spec = match (from, to, last) {
        (None, None, None) => {
            reader.error(from_name, "give `from` and `to`, or `last`");
            return None;
        }
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            reader.error(last_name, "give either `last` or `from`/`to`, not both");
            return None;
        }
        (Some(_), None, None) => {
            reader.error(to_name, "is required with `from`");
            return None;
        }
        (None, Some(_), None) => {
            reader.error(from_name, "is required with `to`");
            return None;
        }
        (None, None, Some(last)) => match interval::duration(last) {
            Ok(length) => IntervalSpec::Relative {
                last: interval::iso_duration(length),
                length,
            },
            Err(reason) => {
                reader.error(last_name, reason);
                return None;
            }
        },
        (Some(from), Some(to), None) => {
            let from = interval::instant(from)
                .map_err(|reason| reader.error(from_name, reason))
                .ok();
            let to = interval::instant(to)
                .map_err(|reason| reader.error(to_name, reason))
                .ok();
            let (from, to) = (from?, to?);
            if to <= from {
                reader.error(to_name, "must be later than `from`");
                return None;
            }
            IntervalSpec::Absolute { from, to }
        }
    };
    if spec.length() > max_span {
        let name = if spec.is_relative() {
            last_name
        } else {
            to_name
        };
        reader.error(
            name,
            format!(
                "the interval may span at most {} days",
                settings.max_span_days
            ),
        );
    }
    Some(spec)
}

/// Milliseconds of a handle time in seconds.
fn handle_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

impl SearchQuery {
    /// Validates a search request's fields.
    ///
    /// # Errors
    /// A 400 listing every invalid field.
    pub fn parse(map: &Map<String, Value>, settings: &ReportSettings) -> Result<Self, ApiError> {
        let mut reader = Reader::new(map);
        let request = SearchRequest::read(&mut reader, settings);
        let query = Self::validate(request, &mut reader, settings);
        reader.finish(query)
    }

    /// The query a search request means, or `None` (with the reasons in `reader`).
    fn validate(
        mut request: SearchRequest,
        reader: &mut Reader<'_>,
        settings: &ReportSettings,
    ) -> Option<Self> {
        let interval = interval(
            reader,
            request.from.as_deref(),
            request.to.as_deref(),
            request.last.as_deref(),
            settings,
        );
        let filters = Filters {
            min_handle_ms: request.min_handle_seconds.map(handle_ms),
            max_handle_ms: request.max_handle_seconds.map(handle_ms),
            ..request.take_filters()
        };
        if let (Some(min), Some(max)) = (filters.min_handle_ms, filters.max_handle_ms)
            && min > max
        {
            reader.error(
                field_name!(SearchRequest.max_handle_seconds),
                "must not be smaller than min_handle_seconds",
            );
        }
        let page_size = match request.page_size {
            Some(0) => {
                reader.error(
                    field_name!(SearchRequest.page_size),
                    format!("must be between 1 and {}", settings.max_page_size),
                );
                settings.default_page_size
            }
            Some(n) => n,
            None => settings.default_page_size,
        };
        Some(Self {
            interval: interval?,
            filters,
            order: request.order.unwrap_or(Order::Asc),
            page_size,
            hydrate: request.include == Some(Include::Conversation),
            cursor: request.cursor,
        })
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
        let mut reader = Reader::new(map);
        for search_only in [
            field_name!(SearchRequest.min_handle_seconds),
            field_name!(SearchRequest.max_handle_seconds),
        ] {
            reader.set_aside(
                search_only,
                "is not supported for aggregates (Genesys aggregates filter on dimensions only)",
            );
        }
        let request = AggregatesRequest::read(&mut reader);
        let query = Self::validate(request, &mut reader, settings);
        reader.finish(query)
    }

    /// The query an aggregates request means, or `None` (with the reasons in `reader`).
    fn validate(
        mut request: AggregatesRequest,
        reader: &mut Reader<'_>,
        settings: &ReportSettings,
    ) -> Option<Self> {
        let granularity_name = field_name!(AggregatesRequest.granularity);
        let interval = interval(
            reader,
            request.from.as_deref(),
            request.to.as_deref(),
            request.last.as_deref(),
            settings,
        );
        let granularity = request.granularity.as_deref().and_then(|text| {
            match interval::minutes_duration(text) {
                Ok(d) if d > Duration::days(i64::from(settings.max_interval_days)) => {
                    reader.error(
                        granularity_name,
                        format!(
                            "may be at most {} days (Genesys' per-query interval)",
                            settings.max_interval_days
                        ),
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(reason) => {
                    reader.error(granularity_name, reason);
                    None
                }
            }
        });
        if let (Some(g), Some(spec)) = (granularity, &interval) {
            // A relative interval has a fixed length too: `last=P366D&granularity=PT1M`
            // would be half a million buckets per group.
            let buckets = spec.length().num_seconds() / g.num_seconds().max(1);
            if buckets > MAX_AGGREGATE_BUCKETS {
                reader.error(
                    granularity_name,
                    format!("gives {buckets} buckets; at most {MAX_AGGREGATE_BUCKETS}"),
                );
            }
        }
        let filters = request.take_filters();
        Some(Self {
            interval: interval?,
            filters,
            granularity,
            granularity_text: granularity.map(interval::iso_duration),
            group_by: request.group_by.unwrap_or_default(),
            metrics: request.metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(value: serde_json::Value) -> Map<String, Value> {
        serde_json::from_value(value).expect("an object")
    }

    /// Issued cursors carry the digest of the query's JSON: its form must not change.
    #[test]
    fn a_query_s_identity_keeps_the_form_issued_cursors_carry() {
        let settings = ReportSettings::default();
        let query = SearchQuery::parse(
            &fields(serde_json::json!({
                "from": "2025-03-04T00:00:00Z", "to": "2025-03-11T00:00:00+01:00",
                "queue_ids": ["8F2A4C6E-1B3D-4F5A-9C7E-0D2B4F6A8C1E"],
                "media_types": ["voice", "chat", "voice"], "directions": ["inbound"],
                "wrapup_codes": ["x"], "min_handle_seconds": 60, "order": "desc",
                "page_size": 7, "include": "conversation", "cursor": "ignored"
            })),
            &settings,
        )
        .expect("valid");
        assert_eq!(
            serde_json::to_string(&query).expect("json"),
            concat!(
                r#"{"interval":{"Absolute":{"from":"2025-03-04T00:00:00Z","to":"2025-03-10T23:00:00Z"}},"#,
                r#""filters":{"queue_ids":["8f2a4c6e-1b3d-4f5a-9c7e-0d2b4f6a8c1e"],"user_ids":[],"#,
                r#""media_types":["voice","chat"],"directions":["inbound"],"wrapup_codes":["x"],"#,
                r#""division_ids":[],"min_handle_ms":60000,"max_handle_ms":null},"#,
                r#""order":"Desc","page_size":7,"hydrate":true}"#
            )
        );
        let relative =
            SearchQuery::parse(&fields(serde_json::json!({"last": "P1DT2H"})), &settings)
                .expect("valid");
        assert_eq!(
            serde_json::to_string(&relative).expect("json"),
            concat!(
                r#"{"interval":{"Relative":{"last":"PT26H"}},"filters":{"queue_ids":[],"#,
                r#""user_ids":[],"media_types":[],"directions":[],"wrapup_codes":[],"#,
                r#""division_ids":[],"min_handle_ms":null,"max_handle_ms":null},"#,
                r#""order":"Asc","page_size":50,"hydrate":false}"#
            )
        );
    }

    #[test]
    fn the_get_form_lists_are_the_wire_requests_list_fields() {
        let lists: Vec<&str> = SearchRequest::FIELDS
            .iter()
            .chain(AggregatesRequest::FIELDS)
            .filter(|field| field.list)
            .map(|field| field.name)
            .collect();
        for name in [
            "queue_ids",
            "user_ids",
            "media_types",
            "directions",
            "wrapup_codes",
            "division_ids",
            "group_by",
            "metrics",
        ] {
            assert!(lists.contains(&name), "{name}");
        }
        assert!(!lists.contains(&"from"));
        assert!(!lists.contains(&"page_size"));
    }

    /// (name, reason) of each field error, in order.
    fn reasons(error: &ApiError) -> Vec<(&str, &str)> {
        error
            .errors
            .iter()
            .map(|e| (e.name.as_str(), e.reason.as_str()))
            .collect()
    }

    #[test]
    fn every_wrong_field_is_named_at_once_with_the_reason() {
        let settings = ReportSettings::default();
        let error = SearchQuery::parse(
            &fields(serde_json::json!({
                "last": "PT15M", "media_types": ["fax"], "order": "random",
                "page_size": 0, "include": "everything", "expand": 1
            })),
            &settings,
        )
        .expect_err("invalid");
        assert_eq!(
            reasons(&error),
            [
                ("expand", "is not a field of this request"),
                (
                    "media_types[0]",
                    "must be one of callback, chat, cobrowse, email, internalmessage, message, screenmonitoring, screenshare, unknown, video, voice, not \"fax\""
                ),
                ("order", "must be `asc` or `desc`, not \"random\""),
                ("include", "must be `conversation`, not \"everything\""),
                ("page_size", "must be between 1 and 500"),
            ]
        );
        let error = AggregatesQuery::parse(
            &fields(serde_json::json!({"last": "PT15M", "min_handle_seconds": 5})),
            &settings,
        )
        .expect_err("invalid");
        assert_eq!(
            reasons(&error),
            [
                (
                    "min_handle_seconds",
                    "is not supported for aggregates (Genesys aggregates filter on dimensions only)"
                ),
                ("metrics", "is required: name at least one metric"),
            ]
        );
    }

    /// Empty values, `null`s and texts where the document says numbers or lists are
    /// refused alike: what the document refuses, the service refuses.
    #[test]
    fn empty_values_nulls_and_wrong_kinds_are_refused_as_the_document_says() {
        let settings = ReportSettings::default();
        let error = SearchQuery::parse(
            &fields(serde_json::json!({
                "last": "PT15M", "include": "", "order": "", "cursor": null,
                "page_size": "5", "queue_ids": "", "wrapup_codes": [""],
                "user_ids": ["5F1C2B7E8A4D4C319E0F2D6B7A9C1E44"]
            })),
            &settings,
        )
        .expect_err("invalid");
        assert_eq!(
            reasons(&error),
            [
                ("queue_ids", "must be a list of strings"),
                (
                    "user_ids[0]",
                    "must be a UUID, not \"5F1C2B7E8A4D4C319E0F2D6B7A9C1E44\""
                ),
                ("wrapup_codes[0]", "must be a non-empty string"),
                ("order", "must be `asc` or `desc`, not \"\""),
                ("page_size", "must be a whole number between 0 and 500"),
                ("cursor", "must be a string"),
                ("include", "must be `conversation`, not \"\""),
            ]
        );
        let error = AggregatesQuery::parse(
            &fields(
                serde_json::json!({"last": " PT1H", "metrics": ["offered"], "granularity": null}),
            ),
            &settings,
        )
        .expect_err("invalid");
        assert_eq!(error.errors[0].name, "granularity");
        assert_eq!(error.errors[1].name, "last");
    }

    #[test]
    fn the_get_form_reads_lists_and_numbers_as_a_body_gives_them() {
        let map = fields_from_query(
            "last=PT15M&media_types=voice,chat&media_types=email&page_size=7&queue_ids=",
            SearchRequest::FIELDS,
        )
        .expect("a map");
        assert_eq!(
            Value::Object(map),
            serde_json::json!({
                "last": "PT15M", "media_types": ["voice", "chat", "email"],
                "page_size": 7, "queue_ids": [""]
            })
        );
        let map = fields_from_query("page_size=%2B7&min_handle_seconds=", SearchRequest::FIELDS)
            .expect("a map");
        assert_eq!(
            Value::Object(map),
            serde_json::json!({"page_size": "+7", "min_handle_seconds": ""})
        );
    }
}
