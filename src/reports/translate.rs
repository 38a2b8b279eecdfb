//! Report requests in Genesys' query language: a [`SearchQuery`] over one chunk becomes a
//! `ConversationQuery` (segment filters for queue, agent, media type and wrap-up;
//! conversation filters for direction, division and handle time), and an
//! [`AggregatesQuery`] becomes a `ConversationAggregationQuery`. Values are sorted so equal
//! requests build equal queries (the cache key is the query's JSON).

use super::interval::Interval;
use super::request::{AggregatesQuery, Filters, SearchQuery};
use super::vocabulary::{Order, Vocabulary};
use crate::upstream::models::{
    AggregationFilter, AggregationQuery, ConversationQuery, NumericRange, PagingSpec, QueryFilter,
    QueryPredicate,
};

/// Any of `values` (sorted: equal requests build equal queries) in `dimension`.
fn any_of(dimension: &'static str, values: &[String]) -> Option<QueryFilter> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    Some(QueryFilter {
        kind: "or",
        predicates: sorted
            .into_iter()
            .map(|value| QueryPredicate {
                kind: "dimension",
                dimension: Some(dimension),
                metric: None,
                operator: "matches",
                value: Some(value),
                range: None,
            })
            .collect(),
    })
}

/// Any of the named values of a vocabulary in `dimension` (Genesys uses the same names).
fn any_named<V: Vocabulary>(dimension: &'static str, values: &[V]) -> Option<QueryFilter> {
    let names: Vec<String> = values.iter().map(|v| v.name().to_owned()).collect();
    any_of(dimension, &names)
}

fn handle_range(filters: &Filters) -> Option<QueryFilter> {
    if filters.min_handle_ms.is_none() && filters.max_handle_ms.is_none() {
        return None;
    }
    Some(QueryFilter {
        kind: "and",
        predicates: vec![QueryPredicate {
            kind: "metric",
            dimension: None,
            metric: Some("tHandle"),
            operator: "matches",
            value: None,
            range: Some(NumericRange {
                gte: filters.min_handle_ms,
                lte: filters.max_handle_ms,
            }),
        }],
    })
}

/// The details query for page `page` of `chunk` in `order` (the walk may read a chunk in
/// the order opposite to the client's).
#[must_use]
pub fn details_query(
    query: &SearchQuery,
    chunk: &Interval,
    order: Order,
    page: u32,
    page_size: u32,
) -> ConversationQuery {
    let f = &query.filters;
    let segment_filters = [
        any_of("queueId", &f.queue_ids),
        any_of("userId", &f.user_ids),
        any_named("mediaType", &f.media_types),
        any_of("wrapUpCode", &f.wrapup_codes),
    ];
    let conversation_filters = [
        any_named("originatingDirection", &f.directions),
        any_of("divisionId", &f.division_ids),
        handle_range(f),
    ];
    ConversationQuery {
        interval: chunk.wire(),
        order: order.name(),
        order_by: "conversationStart",
        conversation_filters: conversation_filters.into_iter().flatten().collect(),
        segment_filters: segment_filters.into_iter().flatten().collect(),
        paging: PagingSpec {
            page_size,
            page_number: page,
        },
    }
}

/// The aggregates query over `chunk`.
#[must_use]
pub fn aggregation_query(query: &AggregatesQuery, chunk: &Interval) -> AggregationQuery {
    let f = &query.filters;
    let clauses: Vec<QueryFilter> = [
        any_of("queueId", &f.queue_ids),
        any_of("userId", &f.user_ids),
        any_named("mediaType", &f.media_types),
        any_named("originatingDirection", &f.directions),
        any_of("wrapUpCode", &f.wrapup_codes),
        any_of("divisionId", &f.division_ids),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut group_by: Vec<&'static str> = query.group_by.iter().map(|g| g.genesys()).collect();
    group_by.sort_unstable();
    let mut metrics: Vec<&'static str> = query.metrics.iter().map(|m| m.genesys()).collect();
    metrics.sort_unstable();
    AggregationQuery {
        interval: chunk.wire(),
        granularity: query.granularity_text.clone(),
        group_by,
        metrics,
        filter: (!clauses.is_empty()).then_some(AggregationFilter {
            kind: "and",
            clauses,
        }),
    }
}
