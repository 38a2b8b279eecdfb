//! Typed views of the Genesys payloads the proxy reads. Only the fields the proxy uses are
//! declared; unknown fields are ignored so that new Genesys fields never break decoding.
//! Names follow the official models (see `shared/genesys/models.md`).
//!
//! Decoding is as tolerant as the official models are loose: a field they leave optional
//! is optional here, and `null` is read as absent wherever a value may be absent (an
//! empty list, no map entry, the default). Genesys' own SDKs read its answers that way,
//! so a sparse record must never cost a whole page. A record that lacks what the proxy
//! truly needs (a details hit without `conversationId` or `conversationStart`) is dropped
//! from its page, with a debug log that names what was missing and nothing else.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// Reads a value that may be `null` as its default, like an absent one.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Reads a list that may be `null` (empty) or hold `null` items (left out).
fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_option(Items {
        keep: |_, item| Some(item),
        marker: PhantomData,
    })
}

/// Reads a string map that may be `null` (empty) or hold `null` values (left out).
fn map<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let entries = Option::<BTreeMap<String, Option<String>>>::deserialize(deserializer)?;
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
        .collect())
}

/// The hit of record `index` of a page, or `None` (logged) when it lacks an id or a start.
fn usable_hit(index: usize, record: AnalyticsRecord) -> Option<AnalyticsConversation> {
    AnalyticsConversation::try_from(record)
        .inspect_err(|missing| {
            tracing::debug!(
                index,
                missing,
                "dropped an analytics record the proxy cannot place"
            );
        })
        .ok()
}

/// A list visitor: `null` is an empty list, `null` items are left out, and `keep` turns
/// each other item (with its index in the list) into an element or drops it.
struct Items<T, F> {
    keep: F,
    marker: PhantomData<fn() -> T>,
}

impl<'de, T, U, F> Visitor<'de> for Items<T, F>
where
    T: Deserialize<'de>,
    F: FnMut(usize, T) -> Option<U>,
{
    type Value = Vec<U>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4_096));
        let mut index = 0;
        while let Some(item) = seq.next_element::<Option<T>>()? {
            if let Some(kept) = item.and_then(|item| (self.keep)(index, item)) {
                out.push(kept);
            }
            index += 1;
        }
        Ok(out)
    }
}

/// Genesys' `ErrorBody` (the fields the proxy reads).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(deserialize_with = "null_as_default")]
    pub message: String,
    #[serde(deserialize_with = "null_as_default")]
    pub code: String,
    #[serde(deserialize_with = "null_as_default")]
    pub status: u16,
}

/// `AnalyticsConversationQueryResponse`. `conversations` is absent when nothing matches.
/// It holds the hits the proxy can use (see [`AnalyticsConversation`]): a record without
/// `conversationId` or `conversationStart` is left out, so a full page from Genesys that
/// held such a record is shorter here than the page size asked for; `records` says how
/// many Genesys sent (whether a page is the last is judged on that).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(from = "DetailsPage")]
pub struct DetailsResponse {
    pub conversations: Vec<AnalyticsConversation>,
    /// Approximate, and may shift while the interval still receives data.
    pub total_hits: u64,
    /// Records in the page as Genesys sent it, usable or not.
    pub records: usize,
}

/// A details page as sent, before the unusable records are dropped.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct DetailsPage {
    #[serde(deserialize_with = "null_as_default")]
    conversations: Vec<Option<AnalyticsRecord>>,
    #[serde(deserialize_with = "null_as_default")]
    total_hits: u64,
}

impl From<DetailsPage> for DetailsResponse {
    fn from(page: DetailsPage) -> Self {
        let records = page.conversations.len();
        let conversations = page
            .conversations
            .into_iter()
            .enumerate()
            .filter_map(|(index, record)| usable_hit(index, record?))
            .collect();
        Self {
            conversations,
            total_hits: page.total_hits,
            records,
        }
    }
}

/// `AnalyticsConversationWithoutAttributes`, as the proxy uses it: a hit with an id and a
/// start (the official model leaves both optional; a record lacking either does not
/// decode as one, and pages leave it out).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "AnalyticsRecord")]
pub struct AnalyticsConversation {
    pub conversation_id: String,
    pub conversation_start: DateTime<Utc>,
    pub conversation_end: Option<DateTime<Utc>>,
    pub originating_direction: Option<String>,
    pub division_ids: Vec<String>,
    pub participants: Vec<AnalyticsParticipant>,
}

/// `AnalyticsConversationWithoutAttributes` as the official model has it: every field
/// optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AnalyticsRecord {
    conversation_id: Option<String>,
    conversation_start: Option<DateTime<Utc>>,
    conversation_end: Option<DateTime<Utc>>,
    originating_direction: Option<String>,
    #[serde(deserialize_with = "list")]
    division_ids: Vec<String>,
    #[serde(deserialize_with = "list")]
    participants: Vec<AnalyticsParticipant>,
}

impl TryFrom<AnalyticsRecord> for AnalyticsConversation {
    /// Which of the two needed fields is missing.
    type Error = &'static str;

    fn try_from(record: AnalyticsRecord) -> Result<Self, Self::Error> {
        let (conversation_id, conversation_start) =
            match (record.conversation_id, record.conversation_start) {
                (Some(id), Some(start)) => (id, start),
                (None, Some(_)) => return Err("conversationId"),
                (Some(_), None) => return Err("conversationStart"),
                (None, None) => return Err("conversationId and conversationStart"),
            };
        Ok(Self {
            conversation_id,
            conversation_start,
            conversation_end: record.conversation_end,
            originating_direction: record.originating_direction,
            division_ids: record.division_ids,
            participants: record.participants,
        })
    }
}

/// `AnalyticsParticipantWithoutAttributes`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalyticsParticipant {
    pub participant_id: Option<String>,
    pub participant_name: Option<String>,
    pub purpose: Option<String>,
    pub user_id: Option<String>,
    #[serde(deserialize_with = "list")]
    pub sessions: Vec<AnalyticsSession>,
}

/// `AnalyticsSession`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalyticsSession {
    pub media_type: Option<String>,
    pub direction: Option<String>,
    #[serde(deserialize_with = "list")]
    pub metrics: Vec<AnalyticsMetric>,
    #[serde(deserialize_with = "list")]
    pub segments: Vec<AnalyticsSegment>,
}

/// `AnalyticsSessionMetric`. A metric without a name or a value counts for nothing.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalyticsMetric {
    pub name: Option<String>,
    pub value: Option<i64>,
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
    #[serde(deserialize_with = "list")]
    pub results: Vec<AggregateGroup>,
}

/// `ConversationAggregateDataContainer`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct AggregateGroup {
    #[serde(deserialize_with = "map")]
    pub group: BTreeMap<String, String>,
    #[serde(deserialize_with = "list")]
    pub data: Vec<AggregateBucket>,
}

/// `StatisticalResponse`. `interval` is empty when Genesys leaves it out.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct AggregateBucket {
    #[serde(deserialize_with = "null_as_default")]
    pub interval: String,
    #[serde(deserialize_with = "list")]
    pub metrics: Vec<AggregateMetric>,
}

/// `AggregateMetricData`. A metric without a name matches none the client asked for.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct AggregateMetric {
    pub metric: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
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
/// summary view reads. `startTime` is required by the official model; the rest is not.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    #[serde(default)]
    pub id: Option<String>,
    pub start_time: DateTime<Utc>,
    #[serde(default)]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub external_tag: Option<String>,
    #[serde(default, deserialize_with = "list")]
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
    #[serde(deserialize_with = "list")]
    pub calls: Vec<Communication>,
    #[serde(deserialize_with = "list")]
    pub callbacks: Vec<Communication>,
    #[serde(deserialize_with = "list")]
    pub chats: Vec<Communication>,
    #[serde(deserialize_with = "list")]
    pub emails: Vec<Communication>,
    #[serde(deserialize_with = "list")]
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
