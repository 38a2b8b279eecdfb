//! Typed views of the Genesys payloads the proxy reads. Only the fields the proxy uses are
//! declared; unknown fields are ignored so that new Genesys fields never break decoding.
//! Names follow the official models (see `shared/genesys/models.md`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Genesys' `ErrorBody` (the fields the proxy reads).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct ErrorBody {
    pub message: String,
    pub code: String,
    pub status: u16,
}

/// `AnalyticsConversationQueryResponse`. `conversations` is absent when nothing matches.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct DetailsResponse {
    pub conversations: Vec<AnalyticsConversation>,
    /// Approximate, and may shift while the interval still receives data.
    pub total_hits: u64,
}

/// `AnalyticsConversationWithoutAttributesMultiGetResponse`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct MultiGetResponse {
    pub conversations: Vec<AnalyticsConversation>,
}

/// `AnalyticsConversationWithoutAttributes`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsConversation {
    pub conversation_id: String,
    pub conversation_start: DateTime<Utc>,
    #[serde(default)]
    pub conversation_end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub originating_direction: Option<String>,
    #[serde(default)]
    pub division_ids: Vec<String>,
    #[serde(default)]
    pub participants: Vec<AnalyticsParticipant>,
}

/// `AnalyticsParticipantWithoutAttributes`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalyticsParticipant {
    pub participant_id: Option<String>,
    pub participant_name: Option<String>,
    pub purpose: Option<String>,
    pub user_id: Option<String>,
    pub sessions: Vec<AnalyticsSession>,
}

/// `AnalyticsSession`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalyticsSession {
    pub media_type: Option<String>,
    pub direction: Option<String>,
    pub metrics: Vec<AnalyticsMetric>,
    pub segments: Vec<AnalyticsSegment>,
}

/// `AnalyticsSessionMetric`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsMetric {
    pub name: String,
    pub value: i64,
    #[serde(default)]
    pub emit_date: Option<DateTime<Utc>>,
}

/// `AnalyticsConversationSegment`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalyticsSegment {
    pub segment_start: Option<DateTime<Utc>>,
    pub segment_end: Option<DateTime<Utc>>,
    pub segment_type: Option<String>,
    pub queue_id: Option<String>,
    pub wrap_up_code: Option<String>,
}

/// `ConversationAggregateQueryResponse`. `results` is absent when nothing matches.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct AggregatesResponse {
    pub results: Vec<AggregateGroup>,
}

/// `ConversationAggregateDataContainer`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct AggregateGroup {
    pub group: BTreeMap<String, String>,
    pub data: Vec<AggregateBucket>,
}

/// `StatisticalResponse`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct AggregateBucket {
    pub interval: String,
    pub metrics: Vec<AggregateMetric>,
}

/// `AggregateMetricData`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AggregateMetric {
    pub metric: String,
    #[serde(default)]
    pub stats: Stats,
}

/// `StatisticalSummary` (the fields the proxy reads).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Stats {
    pub max: Option<f64>,
    pub min: Option<f64>,
    pub count: Option<u64>,
    pub sum: Option<f64>,
}

/// `Conversation` (real-time, `GET /api/v2/conversations/{id}`): the fields the proxy's
/// summary view reads.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub id: String,
    pub start_time: DateTime<Utc>,
    #[serde(default)]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub external_tag: Option<String>,
    #[serde(default)]
    pub participants: Vec<Participant>,
}

/// `Participant` of a real-time conversation.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Participant {
    pub id: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub connected_time: Option<DateTime<Utc>>,
    pub name: Option<String>,
    pub user_id: Option<String>,
    pub queue_id: Option<String>,
    pub queue_name: Option<String>,
    pub purpose: Option<String>,
    pub wrapup_required: Option<bool>,
    pub wrapup: Option<Wrapup>,
    pub calls: Vec<Communication>,
    pub callbacks: Vec<Communication>,
    pub chats: Vec<Communication>,
    pub emails: Vec<Communication>,
    pub messages: Vec<Communication>,
}

/// A participant's communication (call, chat, email, message, callback): the fields read.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct Communication {
    pub direction: Option<String>,
    pub state: Option<String>,
}

/// `Wrapup`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct Wrapup {
    pub code: Option<String>,
    pub name: Option<String>,
}

/// `ConversationQuery` (details query body), as the proxy builds it. Field order is fixed
/// and empty lists are left out, so its JSON is a canonical cache key.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationQuery {
    /// `start/end`, ISO-8601.
    pub interval: String,
    /// `asc` or `desc`.
    pub order: &'static str,
    pub order_by: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conversation_filters: Vec<QueryFilter>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segment_filters: Vec<QueryFilter>,
    pub paging: PagingSpec,
}

/// `PagingSpec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PagingSpec {
    pub page_size: u32,
    pub page_number: u32,
}

/// A filter of any analytics query (`{type, predicates}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueryFilter {
    /// `and` or `or`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub predicates: Vec<QueryPredicate>,
}

/// A predicate of an analytics filter.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueryPredicate {
    /// `dimension` or `metric`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<&'static str>,
    pub operator: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<NumericRange>,
}

/// `NumericRange`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct NumericRange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gte: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lte: Option<i64>,
}

/// `ConversationAggregationQuery`, as the proxy builds it (canonical like
/// [`ConversationQuery`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregationQuery {
    pub interval: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granularity: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<&'static str>,
    pub metrics: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<AggregationFilter>,
}

/// `ConversationAggregateQueryFilter`: clauses of or-ed predicates, and-ed together.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AggregationFilter {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub clauses: Vec<QueryFilter>,
}
