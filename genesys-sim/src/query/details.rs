//! `POST /api/v2/analytics/conversations/details/query`: parses and validates a
//! `ConversationQuery`, selects conversations by interval and filters, orders and pages
//! them. `totalHits` is exact here (Genesys' is approximate); `conversations` is left out
//! when the page is empty, as Genesys does.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::filter::{self, Filter, Vocabulary, bad, invalid_value, reject_unknown};
use super::time::Interval;
use super::vocabulary;
use crate::config::{AnalyticsLimits, IntervalMatching};
use crate::data::Dataset;
use crate::error_body::ApiError;
use crate::render::analytics::{self, AnalyticsConversation};

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

    /// Whether a rendered conversation passes every filter.
    #[must_use]
    pub fn selects(&self, conversation: &AnalyticsConversation) -> bool {
        self.conversation_filters
            .iter()
            .all(|f| f.holds(conversation))
            && self
                .segment_filters
                .iter()
                .all(|f| conversation.segment_contexts().any(|s| f.holds(&s)))
    }

    fn sort_key(&self, c: &AnalyticsConversation) -> Option<DateTime<Utc>> {
        let segments = || c.segment_contexts().map(|s| s.segment);
        match self.order_by {
            OrderBy::ConversationStart => Some(c.conversation_start),
            OrderBy::ConversationEnd => c.conversation_end,
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

    /// Runs the query over `data` as it stands at `now`: the response body.
    #[must_use]
    pub fn run(&self, data: &Dataset, now: DateTime<Utc>, matching: IntervalMatching) -> Value {
        let window = match matching {
            IntervalMatching::StartedOnTouchedDay => self.interval.whole_days(),
            IntervalMatching::StartedInInterval => self.interval,
        };
        let mut hits: Vec<AnalyticsConversation> = data
            .started_between(
                window.start,
                window.end.min(now + chrono::Duration::milliseconds(1)),
            )
            .iter()
            .map(|record| analytics::at(record, &data.org, now))
            .filter(|c| self.selects(c))
            .collect();
        // Stable order: the key (absent keys last), then the id.
        hits.sort_by(|a, b| {
            let by_key = match (self.sort_key(a), self.sort_key(b)) {
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
            by_key.then(a.conversation_id.cmp(&b.conversation_id))
        });
        let total = hits.len();
        let skip = (self.page_number as usize - 1).saturating_mul(self.page_size as usize);
        let page: Vec<&AnalyticsConversation> = hits
            .iter()
            .skip(skip)
            .take(self.page_size as usize)
            .collect();
        if page.is_empty() {
            json!({ "totalHits": total })
        } else {
            json!({ "conversations": page, "totalHits": total })
        }
    }
}
