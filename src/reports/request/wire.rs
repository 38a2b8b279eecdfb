//! Report requests as clients write them: the fields of `/reports/search` and
//! `/reports/aggregates`, one struct each, which is at once the POST body's schema
//! (`ToSchema`), the GET form's query parameters (`IntoParams`) and, through
//! [`read_fields!`](super::reader), the list of fields a request may name and how each is
//! read. Each field is written here once. What the fields must mean together (an
//! interval, bounds that depend on the settings) is checked by the parent module.

use utoipa::{IntoParams, ToSchema};

use super::reader::read_fields;
use crate::reports::ReportSettings;
use crate::reports::vocabulary::{Direction, GroupBy, Include, MediaType, Metric, Order};

/// Longest handle time a search may filter on, in seconds (30 days: longer handle times
/// do not occur, and the bound keeps the milliseconds well inside `i64`).
pub const MAX_HANDLE_SECONDS: u64 = 30 * 86_400;

/// Fields of a search request (POST body; the GET form takes the same names as query
/// parameters, lists comma-separated or repeated).
#[derive(Debug, Clone, Default, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchRequest {
    /// Start of the interval (RFC 3339); with `to`. Conversations that started in
    /// `[from, to)` are returned.
    #[schema(format = DateTime, example = "2025-03-04T00:00:00Z")]
    #[param(format = DateTime, example = "2025-03-04T00:00:00Z")]
    pub from: Option<String>,
    /// End of the interval (RFC 3339, exclusive).
    #[schema(format = DateTime, example = "2025-03-11T00:00:00Z")]
    #[param(format = DateTime, example = "2025-03-11T00:00:00Z")]
    pub to: Option<String>,
    /// Instead of `from`/`to`: the interval ending now (floored to a minute), as an
    /// ISO-8601 duration.
    #[schema(example = "PT15M")]
    #[param(example = "PT15M")]
    pub last: Option<String>,
    /// Conversations that passed through any of these queues.
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    #[param(value_type = Option<Vec<uuid::Uuid>>)]
    pub queue_ids: Option<Vec<String>>,
    /// Conversations any of these agents (user ids) took part in.
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    #[param(value_type = Option<Vec<uuid::Uuid>>)]
    pub user_ids: Option<Vec<String>>,
    /// Conversations of any of these media types.
    #[schema(example = json!(["voice"]))]
    pub media_types: Option<Vec<MediaType>>,
    /// Conversations of either originating direction.
    pub directions: Option<Vec<Direction>>,
    /// Conversations an agent wrapped up with any of these codes.
    pub wrapup_codes: Option<Vec<String>>,
    /// Conversations in any of these divisions.
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    #[param(value_type = Option<Vec<uuid::Uuid>>)]
    pub division_ids: Option<Vec<String>>,
    /// Some agent's handle time (talk + hold + after-call work) is at least this.
    #[schema(example = 300, maximum = 2_592_000)]
    #[param(maximum = 2_592_000)]
    pub min_handle_seconds: Option<u64>,
    /// Some agent's handle time is at most this.
    #[schema(maximum = 2_592_000)]
    #[param(maximum = 2_592_000)]
    pub max_handle_seconds: Option<u64>,
    /// By conversation start: `asc` (default, oldest first) or `desc`.
    pub order: Option<Order>,
    /// Results per page (default 50, at most 500).
    #[schema(minimum = 1, maximum = 500)]
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u32>,
    /// `next_cursor` of the previous page (send the same query with it).
    pub cursor: Option<String>,
    /// `conversation`: attach each hit's live conversation view (at most 25 per page).
    pub include: Option<Include>,
}

read_fields! {
    SearchRequest,
    /// Reads a search request's fields, naming every field that is unknown or of the wrong
    /// kind.
    fn read(settings: &ReportSettings) {
        from: text(),
        to: text(),
        last: text(),
        queue_ids: ids(),
        user_ids: ids(),
        media_types: names(),
        directions: names(),
        wrapup_codes: list(),
        division_ids: ids(),
        min_handle_seconds: number(MAX_HANDLE_SECONDS),
        max_handle_seconds: number(MAX_HANDLE_SECONDS),
        order: one(),
        page_size: count(settings.max_page_size),
        cursor: text(),
        include: one_unless_empty(),
    }
}

/// Fields of an aggregates request (POST body, or GET query parameters).
#[derive(Debug, Clone, Default, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AggregatesRequest {
    /// Start of the interval (RFC 3339); with `to`.
    #[schema(format = DateTime, example = "2025-03-10T00:00:00Z")]
    #[param(format = DateTime, example = "2025-03-10T00:00:00Z")]
    pub from: Option<String>,
    /// End of the interval (RFC 3339, exclusive).
    #[schema(format = DateTime, example = "2025-03-11T00:00:00Z")]
    #[param(format = DateTime, example = "2025-03-11T00:00:00Z")]
    pub to: Option<String>,
    /// Instead of `from`/`to`: the interval ending now (floored to a minute), as an
    /// ISO-8601 duration.
    #[schema(example = "PT1H")]
    #[param(example = "PT1H")]
    pub last: Option<String>,
    /// Bucket length (ISO-8601 duration such as `PT30M`, `PT1H`, `P1D`); absent: one bucket.
    #[schema(example = "PT1H")]
    #[param(example = "PT1H")]
    pub granularity: Option<String>,
    /// Group the figures by these.
    #[schema(example = json!(["queue_id"]))]
    pub group_by: Option<Vec<GroupBy>>,
    /// The metrics wanted: counts (`offered`, `connected`, `transferred`) and durations in
    /// seconds (the others).
    #[schema(min_items = 1, example = json!(["offered", "wait", "handle"]))]
    #[param(min_items = 1)]
    pub metrics: Vec<Metric>,
    /// Conversations that passed through any of these queues.
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    #[param(value_type = Option<Vec<uuid::Uuid>>)]
    pub queue_ids: Option<Vec<String>>,
    /// Conversations any of these agents (user ids) took part in.
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    #[param(value_type = Option<Vec<uuid::Uuid>>)]
    pub user_ids: Option<Vec<String>>,
    /// Conversations of any of these media types.
    pub media_types: Option<Vec<MediaType>>,
    /// Conversations of either originating direction.
    pub directions: Option<Vec<Direction>>,
    /// Conversations an agent wrapped up with any of these codes.
    pub wrapup_codes: Option<Vec<String>>,
    /// Conversations in any of these divisions.
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    #[param(value_type = Option<Vec<uuid::Uuid>>)]
    pub division_ids: Option<Vec<String>>,
}

read_fields! {
    AggregatesRequest,
    /// Reads an aggregates request's fields, naming every field that is unknown or of the
    /// wrong kind.
    fn read() {
        from: text(),
        to: text(),
        last: text(),
        granularity: text(),
        group_by: names(),
        metrics: required_names("metric"),
        queue_ids: ids(),
        user_ids: ids(),
        media_types: names(),
        directions: names(),
        wrapup_codes: list(),
        division_ids: ids(),
    }
}
