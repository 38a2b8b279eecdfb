//! Aggregates responses as simple series: Genesys' groups projected onto the groupings
//! the client asked for (Genesys adds `mediaType` to every group on its own), chunks
//! merged, and each metric's stats as count, sum, avg (computed), min and max, in
//! seconds for durations.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::interval::{self, Interval};
use super::request::AggregatesQuery;
use super::vocabulary::{Metric, Unit, Vocabulary};
use crate::upstream::models::AggregatesResponse;

/// One metric's statistics in one bucket of one group.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MetricStats {
    /// What the values measure: `count` (events) or `seconds` (durations).
    pub unit: Unit,
    /// Number of events (for counts: the count itself).
    pub count: u64,
    /// Sum of the values (durations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// `sum / count` (durations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    /// The smallest value, seconds (durations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest value, seconds (durations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A time range in a response.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
pub struct TimeRange {
    /// The start, included: an RFC 3339 UTC instant with milliseconds.
    #[schema(example = "2025-03-10T00:00:00.000Z")]
    pub from: String,
    /// The end, excluded: an RFC 3339 UTC instant with milliseconds.
    #[schema(example = "2025-03-11T00:00:00.000Z")]
    pub to: String,
}

impl TimeRange {
    #[must_use]
    pub fn of(interval: &Interval) -> Self {
        Self {
            from: interval::timestamp(interval.from),
            to: interval::timestamp(interval.to),
        }
    }
}

/// One group's statistics over one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The grouping values, by the names given in `group_by`.
    #[schema(example = json!({"queue_id": "8f2a4c6e-1b3d-4f5a-9c7e-0d2b4f6a8c1e"}))]
    pub group: BTreeMap<String, String>,
    /// The bucket: one `granularity` long, or the whole interval when none was asked for.
    pub interval: TimeRange,
    /// By metric name (as asked).
    pub metrics: BTreeMap<String, MetricStats>,
}

#[derive(Debug, Clone, Default)]
struct Accumulator {
    count: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
}

type Key = (BTreeMap<String, String>, TimeRange);

/// Merges the responses of every chunk into series.
#[must_use]
pub fn series(
    query: &AggregatesQuery,
    whole: &Interval,
    responses: &[AggregatesResponse],
) -> Vec<SeriesPoint> {
    let mut merged: BTreeMap<Key, BTreeMap<Metric, Accumulator>> = BTreeMap::new();
    for response in responses {
        for result in &response.results {
            let group: BTreeMap<String, String> = query
                .group_by
                .iter()
                .filter_map(|grouping| {
                    result
                        .group
                        .get(grouping.genesys())
                        .map(|v| (grouping.name().to_owned(), v.clone()))
                })
                .collect();
            for bucket in &result.data {
                let range = match query.granularity {
                    None => TimeRange::of(whole),
                    Some(_) => match bucket.interval.split_once('/') {
                        Some((from, to)) => TimeRange {
                            from: normalise(from),
                            to: normalise(to),
                        },
                        None => TimeRange::of(whole),
                    },
                };
                let slot = merged.entry((group.clone(), range)).or_default();
                for metric in &bucket.metrics {
                    let Some(ours) = query
                        .metrics
                        .iter()
                        .copied()
                        .find(|ours| metric.metric.as_deref() == Some(ours.genesys()))
                    else {
                        continue;
                    };
                    let acc = slot.entry(ours).or_default();
                    let stats = &metric.stats;
                    acc.count += stats.count.unwrap_or(0);
                    if ours.unit() == Unit::Seconds {
                        acc.sum += stats.sum.unwrap_or(0.0) / 1000.0;
                        if let Some(min) = stats.min {
                            acc.min =
                                Some(acc.min.map_or(min / 1000.0, |m: f64| m.min(min / 1000.0)));
                        }
                        if let Some(max) = stats.max {
                            acc.max =
                                Some(acc.max.map_or(max / 1000.0, |m: f64| m.max(max / 1000.0)));
                        }
                    }
                }
            }
        }
    }
    merged
        .into_iter()
        .map(|((group, interval), accumulators)| SeriesPoint {
            group,
            interval,
            metrics: accumulators
                .into_iter()
                .map(|(metric, acc)| {
                    let unit = metric.unit();
                    let stats = match unit {
                        Unit::Count => MetricStats {
                            unit,
                            count: acc.count,
                            sum: None,
                            avg: None,
                            min: None,
                            max: None,
                        },
                        Unit::Seconds => MetricStats {
                            unit,
                            count: acc.count,
                            sum: Some(round(acc.sum)),
                            avg: (acc.count > 0).then(|| round(acc.sum / acc.count as f64)),
                            min: acc.min.map(round),
                            max: acc.max.map(round),
                        },
                    };
                    (metric.name().to_owned(), stats)
                })
                .collect(),
        })
        .collect()
}

/// Milliseconds precision, no float noise.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// A Genesys timestamp in this API's form (RFC 3339, milliseconds, `Z`).
fn normalise(text: &str) -> String {
    interval::instant(text).map_or_else(|_| text.to_owned(), interval::timestamp)
}
