//! Report requests as clients write them: the fields of `/reports/search` and
//! `/reports/aggregates`, one struct each, which is at once the POST body's schema
//! (`ToSchema`), the GET form's query parameters (`IntoParams`) and, through
//! [`read_fields!`](super::reader), the list of fields a request may name and how each is
//! read. Each field is written here once: the interval and filter fields both requests
//! take by [`report_request!`] and [`read_report_request!`], the others in their struct.
//! What the fields must mean together (an interval, bounds that depend on the settings)
//! is checked by the parent module.

use utoipa::{IntoParams, ToSchema};

use super::Filters;
use super::reader::{MAX_LIST_VALUES, read_fields};
use super::schema::{IsoDuration, IsoMinutes, WrapupCode};
use crate::reports::ReportSettings;
use crate::reports::vocabulary::{Direction, GroupBy, Include, MediaType, Metric, Order};

/// Longest handle time a search may filter on, in seconds (30 days: longer handle times
/// do not occur, and the bound keeps the milliseconds well inside `i64`).
pub const MAX_HANDLE_SECONDS: u64 = 30 * 86_400;

/// Declares a report request: the struct with the interval fields, then the filter
/// fields, then its own fields; and how its filters become [`Filters`].
macro_rules! report_request {
    ($(#[$meta:meta])* pub struct $request:ident { $($own:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, ToSchema, IntoParams)]
        #[into_params(parameter_in = Query)]
        pub struct $request {
            /// Start of the interval (RFC 3339); with `to`. Conversations that started in
            /// `[from, to)` count. Not with `last`.
            #[schema(format = DateTime, nullable = false, example = "2025-03-10T00:00:00Z")]
            #[param(format = DateTime, example = "2025-03-10T00:00:00Z")]
            pub from: Option<String>,
            /// End of the interval (RFC 3339, exclusive): later than `from`, at most 366
            /// days after it (`reports.max_span_days`).
            #[schema(format = DateTime, nullable = false, example = "2025-03-11T00:00:00Z")]
            #[param(format = DateTime, example = "2025-03-11T00:00:00Z")]
            pub to: Option<String>,
            /// Instead of `from`/`to`: the interval ending now (floored to a minute), as an
            /// ISO-8601 duration of at most 366 days (`reports.max_span_days`).
            #[schema(value_type = Option<IsoDuration>, nullable = false, example = "PT1H")]
            #[param(value_type = Option<IsoDuration>, example = "PT1H")]
            pub last: Option<String>,
            /// Conversations that passed through any of these queues.
            #[schema(value_type = Option<Vec<uuid::Uuid>>, nullable = false, max_items = 100)]
            #[param(value_type = Option<Vec<uuid::Uuid>>, max_items = 100)]
            pub queue_ids: Option<Vec<String>>,
            /// Conversations any of these agents (user ids) took part in.
            #[schema(value_type = Option<Vec<uuid::Uuid>>, nullable = false, max_items = 100)]
            #[param(value_type = Option<Vec<uuid::Uuid>>, max_items = 100)]
            pub user_ids: Option<Vec<String>>,
            /// Conversations of any of these media types.
            #[schema(nullable = false, max_items = 100, example = json!(["voice"]))]
            #[param(max_items = 100)]
            pub media_types: Option<Vec<MediaType>>,
            /// Conversations of either originating direction.
            #[schema(nullable = false, max_items = 100)]
            #[param(max_items = 100)]
            pub directions: Option<Vec<Direction>>,
            /// Conversations an agent wrapped up with any of these codes.
            #[schema(value_type = Option<Vec<WrapupCode>>, nullable = false, max_items = 100)]
            #[param(value_type = Option<Vec<WrapupCode>>, max_items = 100)]
            pub wrapup_codes: Option<Vec<String>>,
            /// Conversations in any of these divisions.
            #[schema(value_type = Option<Vec<uuid::Uuid>>, nullable = false, max_items = 100)]
            #[param(value_type = Option<Vec<uuid::Uuid>>, max_items = 100)]
            pub division_ids: Option<Vec<String>>,
            $($own)*
        }

        impl $request {
            /// The filters, taken out of the request (no handle-time bounds).
            pub(super) fn take_filters(&mut self) -> Filters {
                Filters {
                    queue_ids: self.queue_ids.take().unwrap_or_default(),
                    user_ids: self.user_ids.take().unwrap_or_default(),
                    media_types: self.media_types.take().unwrap_or_default(),
                    directions: self.directions.take().unwrap_or_default(),
                    wrapup_codes: self.wrapup_codes.take().unwrap_or_default(),
                    division_ids: self.division_ids.take().unwrap_or_default(),
                    min_handle_ms: None,
                    max_handle_ms: None,
                }
            }
        }
    };
}

/// Declares how a report request is read: the interval and filter fields of
/// [`report_request!`], then its own (as [`read_fields!`] takes them).
macro_rules! read_report_request {
    (
        $request:ident, $(#[$meta:meta])* fn read($($param:ident: $param_type:ty),*) {
            $($own:tt)*
        }
    ) => {
        read_fields! {
            $request,
            $(#[$meta])*
            fn read($($param: $param_type),*) {
                from: text(),
                to: text(),
                last: text(),
                queue_ids: ids(),
                user_ids: ids(),
                media_types: names(),
                directions: names(),
                wrapup_codes: list(),
                division_ids: ids(),
                $($own)*
            }
        }
    };
}

report_request! {
    /// Fields of a search request (POST body; the GET form takes the same names as query
    /// parameters, lists comma-separated or repeated). The interval is `from` and `to`, or
    /// `last`: the document gives the body as the choice of the two (`SearchFromTo`,
    /// `SearchLast`). No field may be `null`: leave it out.
    pub struct SearchRequest {
        /// Some agent's handle time (talk + hold + after-call work) is at least this.
        #[schema(nullable = false, example = 300, maximum = 2_592_000)]
        #[param(maximum = 2_592_000)]
        pub min_handle_seconds: Option<u64>,
        /// Some agent's handle time is at most this (not below `min_handle_seconds`).
        #[schema(nullable = false, maximum = 2_592_000)]
        #[param(maximum = 2_592_000)]
        pub max_handle_seconds: Option<u64>,
        /// By conversation start: `asc` (default, oldest first) or `desc`.
        #[schema(nullable = false)]
        pub order: Option<Order>,
        /// Results per page (default 50, at most 500: the settings
        /// `reports.default_page_size` and `reports.max_page_size`).
        #[schema(nullable = false, minimum = 1, maximum = 500)]
        #[param(minimum = 1, maximum = 500)]
        pub page_size: Option<u32>,
        /// `next_cursor` of the previous page (send the same query with it): opaque, issued
        /// by the proxy for that query only.
        #[schema(nullable = false, min_length = 1)]
        #[param(min_length = 1)]
        pub cursor: Option<String>,
        /// `conversation`: attach each hit's live conversation view (at most 25 per page).
        #[schema(nullable = false)]
        pub include: Option<Include>,
    }
}

read_report_request! {
    SearchRequest,
    /// Reads a search request's fields, naming every field that is unknown or of the wrong
    /// kind.
    fn read(settings: &ReportSettings) {
        min_handle_seconds: number(MAX_HANDLE_SECONDS),
        max_handle_seconds: number(MAX_HANDLE_SECONDS),
        order: one(),
        page_size: count(settings.max_page_size),
        cursor: text(),
        include: one(),
    }
}

report_request! {
    /// Fields of an aggregates request (POST body, or GET query parameters). The interval
    /// is `from` and `to`, or `last` (`AggregatesFromTo`, `AggregatesLast` in the
    /// document). No field may be `null`: leave it out.
    pub struct AggregatesRequest {
        /// Bucket length (ISO-8601 duration such as `PT30M`, `PT1H`, `P1D`), whole minutes,
        /// at most 31 days (`reports.max_interval_days`) and at most 10,000 buckets in the
        /// interval; absent: one bucket.
        #[schema(value_type = Option<IsoMinutes>, nullable = false, example = "PT1H")]
        #[param(value_type = Option<IsoMinutes>, example = "PT1H")]
        pub granularity: Option<String>,
        /// Group the figures by these.
        #[schema(nullable = false, max_items = 100, example = json!(["queue_id"]))]
        #[param(max_items = 100)]
        pub group_by: Option<Vec<GroupBy>>,
        /// The metrics wanted: counts (`offered`, `connected`, `transferred`) and durations
        /// in seconds (the others).
        #[schema(min_items = 1, max_items = 100, example = json!(["offered", "wait", "handle"]))]
        #[param(min_items = 1, max_items = 100)]
        pub metrics: Vec<Metric>,
    }
}

read_report_request! {
    AggregatesRequest,
    /// Reads an aggregates request's fields, naming every field that is unknown or of the
    /// wrong kind.
    fn read() {
        granularity: text(),
        group_by: names(),
        metrics: required_names("metric"),
    }
}

/// The document's list bounds are the reader's.
const _: () = assert!(MAX_LIST_VALUES == 100);
