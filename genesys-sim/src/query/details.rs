//! `POST /api/v2/analytics/conversations/details/query`: parses and validates a
//! `ConversationQuery`, selects conversations by interval and filters, orders and pages
//! them. `totalHits` is exact here (Genesys' is approximate); `conversations` is left out
//! when the page is empty, as Genesys does.
//!
//! A conversation is a candidate once it has started (by the simulator's clock); filters
//! and orderings read its analytics record at that instant (see `query::subjects`).
//! [`DetailsQuery::run`] computes a page from scratch; the HTTP route serves pages through
//! the memo of [`super::walks`], which gives the same pages without rescanning the interval
//! for each one.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::filter::{self, Filter, Vocabulary, bad, invalid_value, reject_unknown};
use super::subjects;
use super::time::Interval;
use super::vocabulary;
use crate::config::{AnalyticsLimits, IntervalMatching};
use crate::data::{ConversationRecord, Dataset, Org};
use crate::error_body::ApiError;
use crate::render::analytics::{self, AnalyticsConversation};
use crate::render::flat::FlatConversation;

/// `ConversationQuery.orderBy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    ConversationStart,
    ConversationEnd,
    SegmentStart,
    SegmentEnd,
}

/// A validated details query.
#[derive(Debug, Clone)]
pub struct DetailsQuery {
    pub interval: Interval,
    pub descending: bool,
    pub order_by: OrderBy,
    pub page_size: u32,
    pub page_number: u32,
    pub conversation_filters: Vec<Filter>,
    pub segment_filters: Vec<Filter>,
}

const CONVERSATION_VOCABULARY: Vocabulary = Vocabulary {
    model: "ConversationDetailQueryPredicate",
    dimensions: vocabulary::CONVERSATION_DIMENSIONS,
    metrics: vocabulary::CONVERSATION_METRICS,
};

const SEGMENT_VOCABULARY: Vocabulary = Vocabulary {
    model: "SegmentDetailQueryPredicate",
    dimensions: vocabulary::SEGMENT_DIMENSIONS,
    metrics: vocabulary::SEGMENT_METRICS,
};

/// Fields of `ConversationQuery` the simulator accepts. Evaluation, survey and resolution
/// filters and `aggregations` are real fields the simulated org has no data for: they are
/// refused with a message saying so rather than silently ignored.
const KNOWN_FIELDS: [&str; 7] = [
    "interval",
    "order",
    "orderBy",
    "paging",
    "conversationFilters",
    "segmentFilters",
    "startOfDayIntervalMatching",
];
const UNSIMULATED_FIELDS: [&str; 4] = [
    "evaluationFilters",
    "surveyFilters",
    "resolutionFilters",
    "aggregations",
];

fn positive(paging: &Map<String, Value>, key: &str) -> Result<u32, ApiError> {
    let field = format!("paging.{key}");
    let value = paging
        .get(key)
        .ok_or_else(|| bad(&field, format!("{field} is required when paging is given")))?;
    value
        .as_u64()
        .filter(|&n| n >= 1)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            bad(
                &field,
                format!("{field} must be a whole number of at least 1, was {value}"),
            )
        })
}

impl DetailsQuery {
    /// Validates a request body against the model and the configured limits.
    ///
    /// # Errors
    /// A 400 ErrorBody naming the offending field.
    pub fn parse(body: &Value, limits: &AnalyticsLimits) -> Result<Self, ApiError> {
        let object = filter::query_object(
            body,
            "ConversationQuery",
            &KNOWN_FIELDS,
            &UNSIMULATED_FIELDS,
        )?;
        let interval = filter::bounded_interval(object, limits.max_interval, "a details query")?;
        let descending = match object.get("order").map(|v| v.as_str().unwrap_or("?")) {
            None | Some("asc" | "unordered") => false,
            Some("desc") => true,
            Some(other) => return Err(invalid_value("order", other, "[asc, desc, unordered]")),
        };
        let order_by = match object.get("orderBy").map(|v| v.as_str().unwrap_or("?")) {
            None | Some("conversationStart") => OrderBy::ConversationStart,
            Some("conversationEnd") => OrderBy::ConversationEnd,
            Some("segmentStart") => OrderBy::SegmentStart,
            Some("segmentEnd") => OrderBy::SegmentEnd,
            Some(other) => {
                return Err(invalid_value(
                    "orderBy",
                    other,
                    "[conversationStart, conversationEnd, segmentStart, segmentEnd]",
                ));
            }
        };
        let (page_size, page_number) = match object.get("paging") {
            None => (limits.default_page_size, 1),
            Some(paging) => {
                let paging = paging
                    .as_object()
                    .ok_or_else(|| bad("paging", "paging must be an object".to_owned()))?;
                reject_unknown(paging, "paging", &["pageSize", "pageNumber"])?;
                (
                    positive(paging, "pageSize")?,
                    positive(paging, "pageNumber")?,
                )
            }
        };
        if page_size > limits.max_page_size {
            return Err(bad(
                "paging.pageSize",
                format!(
                    "paging.pageSize [{page_size}] exceeds the maximum page size of [{}]",
                    limits.max_page_size
                ),
            ));
        }
        Ok(Self {
            interval,
            descending,
            order_by,
            page_size,
            page_number,
            conversation_filters: filter::parse_list(
                object,
                "conversationFilters",
                CONVERSATION_VOCABULARY,
            )?,
            segment_filters: filter::parse_list(object, "segmentFilters", SEGMENT_VOCABULARY)?,
        })
    }

    /// A quick necessary condition for [`Self::selects`], read from the record alone.
    #[must_use]
    pub fn may_select(&self, record: &ConversationRecord, org: &Org) -> bool {
        self.conversation_filters
            .iter()
            .all(|f| f.may_hold(&|p| subjects::may_hold(p, record, org, false)))
            && self
                .segment_filters
                .iter()
                .all(|f| f.may_hold(&|p| subjects::may_hold(p, record, org, true)))
    }

    /// Whether the conversation's analytics record passes every filter.
    #[must_use]
    pub fn selects(&self, conversation: &FlatConversation<'_>) -> bool {
        self.conversation_filters
            .iter()
            .all(|f| f.holds(conversation))
            && self
                .segment_filters
                .iter()
                .all(|f| conversation.segment_contexts().any(|s| f.holds(&s)))
    }

    fn sort_key(&self, c: &FlatConversation<'_>) -> Option<DateTime<Utc>> {
        let segments = || c.segments.iter().map(|(_, s)| s);
        match self.order_by {
            OrderBy::ConversationStart => Some(c.record.start),
            OrderBy::ConversationEnd => c.end,
            OrderBy::SegmentStart => segments().map(|s| s.segment_start).min(),
            OrderBy::SegmentEnd => {
                if segments().any(|s| s.segment_end.is_none()) {
                    None
                } else {
                    segments().filter_map(|s| s.segment_end).max()
                }
            }
        }
    }

    /// The conversations the query may select: those that started in `window` by `now`.
    #[must_use]
    pub fn window(&self, matching: IntervalMatching) -> Interval {
        match matching {
            IntervalMatching::StartedOnTouchedDay => self.interval.whole_days(),
            IntervalMatching::StartedInInterval => self.interval,
        }
    }

    /// Whether the answer needs each conversation's analytics record, or only its start
    /// and end (no filters, ordered by conversation start or end).
    fn needs_record(&self) -> bool {
        !self.conversation_filters.is_empty()
            || !self.segment_filters.is_empty()
            || matches!(self.order_by, OrderBy::SegmentStart | OrderBy::SegmentEnd)
    }

    /// The hit for the conversation at `index` as it stands at `now`, when selected.
    /// `scratch` holds tables reused from one conversation to the next.
    pub(crate) fn evaluate<'a>(
        &self,
        data: &'a Dataset,
        index: usize,
        now: DateTime<Utc>,
        scratch: &mut Scratch<'a>,
    ) -> Option<Hit> {
        let record = &data.conversations[index];
        let index = u32::try_from(index).expect("fewer than 2^32 conversations");
        if !self.needs_record() {
            let key = match self.order_by {
                OrderBy::ConversationEnd => record.is_over_at(now).then(|| record.last_event()),
                _ => Some(record.start),
            };
            return Some(Hit {
                key,
                id: record.id,
                index,
            });
        }
        if !self.may_select(record, &data.org) {
            return None;
        }
        let flat = scratch.at(record, &data.org, now);
        self.selects(flat).then(|| Hit {
            key: self.sort_key(flat),
            id: record.id,
            index,
        })
    }

    /// The response order: the key (absent keys last, or first when descending), then the
    /// id.
    pub(crate) fn order(&self, a: &Hit, b: &Hit) -> Ordering {
        let by_key = match (a.key, b.key) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let by_key = if self.descending {
            by_key.reverse()
        } else {
            by_key
        };
        by_key.then(a.id.cmp(&b.id))
    }

    /// Where the requested page starts in the ordered hits.
    pub(crate) fn skip(&self) -> usize {
        (self.page_number as usize - 1).saturating_mul(self.page_size as usize)
    }

    /// Runs the query over `data` as it stands at `now`, from scratch: the response body.
    #[must_use]
    pub fn run(
        &self,
        data: &Dataset,
        now: DateTime<Utc>,
        matching: IntervalMatching,
    ) -> DetailsPage {
        let window = self.window(matching);
        let mut scratch = Scratch::default();
        let mut hits: Vec<Hit> = data
            .visible_between(window.start, window.end, now)
            .filter_map(|index| self.evaluate(data, index, now, &mut scratch))
            .collect();
        hits.sort_by(|a, b| self.order(a, b));
        let page = hits
            .iter()
            .skip(self.skip())
            .take(self.page_size as usize)
            .copied();
        DetailsPage::render(data, now, page, hits.len())
    }
}

/// One selected conversation: its ordering key, its id and its index in the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub key: Option<DateTime<Utc>>,
    pub id: Uuid,
    pub index: u32,
}

/// Reusable tables for reading one conversation after another.
#[derive(Debug, Default)]
pub(crate) struct Scratch<'a> {
    flat: Option<FlatConversation<'a>>,
}

impl<'a> Scratch<'a> {
    /// `record`'s analytics record at `now`, in the reused tables.
    pub fn at(
        &mut self,
        record: &'a ConversationRecord,
        org: &'a Org,
        now: DateTime<Utc>,
    ) -> &FlatConversation<'a> {
        match self.flat.as_mut() {
            Some(flat) => flat.refill_at(record, now),
            None => self.flat = Some(FlatConversation::at(record, org, now)),
        }
        self.flat.as_ref().expect("just filled")
    }
}

/// One page of a details query: the body of `AnalyticsConversationQueryResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailsPage {
    /// Left out when empty, as Genesys does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conversations: Vec<AnalyticsConversation>,
    pub total_hits: usize,
}

impl DetailsPage {
    /// The body as JSON text: what `serde_json` writes for it, written faster.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256 + 4_096 * self.conversations.len());
        out.push('{');
        if !self.conversations.is_empty() {
            out.push_str("\"conversations\":[");
            for (i, conversation) in self.conversations.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                conversation.write_json(&mut out);
            }
            out.push_str("],");
        }
        out.push_str("\"totalHits\":");
        out.push_str(&self.total_hits.to_string());
        out.push('}');
        out
    }

    /// Renders the page's hits as they read at `now`.
    pub(crate) fn render(
        data: &Dataset,
        now: DateTime<Utc>,
        page: impl Iterator<Item = Hit>,
        total_hits: usize,
    ) -> Self {
        Self {
            conversations: page
                .map(|hit| analytics::at(&data.conversations[hit.index as usize], &data.org, now))
                .collect(),
            total_hits,
        }
    }
}
