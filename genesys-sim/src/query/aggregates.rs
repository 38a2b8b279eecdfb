//! `POST /api/v2/analytics/conversations/aggregates/query`: metric observations from the
//! same analytics records the details query returns, filtered, grouped and bucketed.
//!
//! An observation is one session metric (`name`, `value`, `emitDate`) with the dimensions
//! of its session: `mediaType`, `direction`, `purpose`, `queueId` (the session's queue),
//! `userId`, `wrapUpCode`, `divisionId` (the queue's division, else the conversation's
//! first), `conversationId` and `originatingDirection`. It falls in the bucket containing
//! its `emitDate`. `tWait` is observed wherever `tAcd` is (time waiting in queue).
//! Stats are shaped as Genesys shapes them: `n` metrics carry only `count` (the sum of the
//! values); `t` metrics carry `max`, `min`, `count` and `sum` in milliseconds.
//!
//! Observations are read from each conversation's flat analytics record
//! ([`Observation`]) as it stands at the simulator's "now":
//! a conversation that has not started yet observes nothing, a running one only what has
//! happened so far.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use super::filter::{self, DimensionValue, Filter, Vocabulary, bad, invalid_value};
use super::subjects::Observation;
use super::time::{Interval, period};
use super::vocabulary;
use crate::config::AnalyticsLimits;
use crate::data::Dataset;
use crate::error_body::ApiError;
use crate::render::flat::FlatConversation;
use crate::render::json;

const FILTER_VOCABULARY: Vocabulary = Vocabulary {
    model: "ConversationAggregateQueryPredicate",
    dimensions: vocabulary::AGGREGATE_FILTER_DIMENSIONS,
    metrics: &[],
};

const KNOWN_FIELDS: [&str; 7] = [
    "interval",
    "granularity",
    "timeZone",
    "groupBy",
    "filter",
    "metrics",
    "flattenMultivaluedDimensions",
];
const UNSIMULATED_FIELDS: [&str; 5] = [
    "views",
    "alternateTimeDimension",
    "sortMetric",
    "limit",
    "queryType",
];

/// How far before the interval a conversation may start and still emit metrics inside it:
/// longer than any simulated conversation lasts.
const LOOKBACK: Duration = Duration::days(1);

/// A validated aggregates query.
#[derive(Debug, Clone)]
pub struct AggregatesQuery {
    pub interval: Interval,
    pub granularity: Option<Duration>,
    pub group_by: Vec<String>,
    pub metrics: Vec<String>,
    pub filter: Option<Filter>,
}

fn strings(
    object: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
    required: bool,
) -> Result<Vec<String>, ApiError> {
    let Some(list) = object.get(key) else {
        return if required {
            Err(bad(key, format!("{key} is required")))
        } else {
            Ok(Vec::new())
        };
    };
    let list = filter::array(list, key)?;
    if required && list.is_empty() {
        return Err(bad(key, format!("{key} must name at least one value")));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let field = format!("{key}[{i}]");
            let name = v
                .as_str()
                .ok_or_else(|| bad(&field, format!("{field} must be a string")))?;
            if allowed.contains(&name) {
                Ok(name.to_owned())
            } else {
                Err(invalid_value(
                    &field,
                    name,
                    &format!("the {key} values of ConversationAggregationQuery"),
                ))
            }
        })
        .collect()
}

impl AggregatesQuery {
    /// Validates a request body against the model and the configured limits.
    ///
    /// # Errors
    /// A 400 ErrorBody naming the offending field.
    pub fn parse(body: &Value, limits: &AnalyticsLimits) -> Result<Self, ApiError> {
        let object = filter::query_object(
            body,
            "ConversationAggregationQuery",
            &KNOWN_FIELDS,
            &UNSIMULATED_FIELDS,
        )?;
        let interval =
            filter::bounded_interval(object, limits.max_interval, "an aggregates query")?;
        match object.get("timeZone").map(|v| v.as_str().unwrap_or("?")) {
            None | Some("UTC" | "Etc/UTC") => {}
            Some(other) => {
                return Err(bad(
                    "timeZone",
                    format!("timeZone [{other}]: only UTC is simulated"),
                ));
            }
        }
        let granularity = match object.get("granularity") {
            None => None,
            Some(v) => {
                let text = v
                    .as_str()
                    .ok_or_else(|| bad("granularity", "granularity must be a string".to_owned()))?;
                let step = period("granularity", text)?;
                let buckets = (interval.span().num_milliseconds() + step.num_milliseconds() - 1)
                    / step.num_milliseconds();
                if usize::try_from(buckets).unwrap_or(usize::MAX) > limits.max_aggregate_buckets {
                    return Err(bad(
                        "granularity",
                        format!(
                            "granularity [{text}] gives {buckets} buckets; at most {} are allowed",
                            limits.max_aggregate_buckets
                        ),
                    ));
                }
                Some(step)
            }
        };
        let filter = match object.get("filter") {
            None => None,
            Some(f) => Some(Filter::parse(f, "filter", FILTER_VOCABULARY, true)?),
        };
        Ok(Self {
            interval,
            granularity,
            group_by: strings(object, "groupBy", vocabulary::AGGREGATE_GROUP_BY, false)?,
            metrics: strings(object, "metrics", vocabulary::AGGREGATE_METRICS, true)?,
            filter,
        })
    }

    /// The index of the bucket holding `at` (0 without a granularity).
    fn bucket_index(&self, at: DateTime<Utc>) -> i64 {
        match self.granularity {
            None => 0,
            Some(step) => (at - self.interval.start).num_milliseconds() / step.num_milliseconds(),
        }
    }

    /// The bucket of index `index`.
    fn bucket(&self, index: i64) -> Interval {
        match self.granularity {
            None => self.interval,
            Some(step) => {
                let start =
                    self.interval.start + Duration::milliseconds(index * step.num_milliseconds());
                Interval {
                    start,
                    end: (start + step).min(self.interval.end),
                }
            }
        }
    }

    /// Runs the query over `data` as it stands at `now`: the response body, as JSON text.
    #[must_use]
    pub fn run(&self, data: &Dataset, now: DateTime<Utc>) -> String {
        // Groups are keyed by typed values (the query's groupBy dimensions, then the media
        // type) and printed at the end. An aggregates filter names dimensions only, and an
        // observation's dimensions are its session's, so the filter and the group are
        // settled once per session.
        type GroupKey = Vec<Option<DimensionValue<'static>>>;
        // bucket index -> metric -> summary
        type Buckets = BTreeMap<i64, BTreeMap<&'static str, Summary>>;
        let mut index: BTreeMap<GroupKey, usize> = BTreeMap::new();
        let mut groups: Vec<Buckets> = Vec::new();
        let from = self.interval.start - LOOKBACK;
        let candidates = data.visible_between(from, self.interval.end, now);
        let mut flat: Option<FlatConversation<'_>> = None;
        let mut sessions: Vec<Option<Option<usize>>> = Vec::new();
        for record in &data.conversations[candidates] {
            let conversation: &FlatConversation<'_> = match flat.as_mut() {
                Some(flat) => {
                    flat.refill_at(record, now);
                    flat
                }
                None => flat.insert(FlatConversation::at(record, &data.org, now)),
            };
            // Per session: not looked at yet (None), filtered out (Some(None)), or its group.
            sessions.clear();
            sessions.resize(conversation.parties.len(), None);
            for (party, metric) in &conversation.metrics {
                if !self.interval.contains(metric.emit_date) {
                    continue;
                }
                let names: &[&'static str] = if metric.name == "tAcd" {
                    &["tAcd", "tWait"]
                } else {
                    &[metric.name]
                };
                for &name in names {
                    if !self.metrics.iter().any(|m| m == name) {
                        continue;
                    }
                    let group = *sessions[*party].get_or_insert_with(|| {
                        let observation = Observation {
                            conversation,
                            party: *party,
                            name,
                            metric,
                        };
                        if self.filter.as_ref().is_some_and(|f| !f.holds(&observation)) {
                            return None;
                        }
                        let mut key: GroupKey = self
                            .group_by
                            .iter()
                            .map(|dimension| observation.value(dimension))
                            .collect();
                        if !self.group_by.is_empty() {
                            key.push(observation.value("mediaType"));
                        }
                        Some(*index.entry(key).or_insert_with(|| {
                            groups.push(Buckets::new());
                            groups.len() - 1
                        }))
                    });
                    let Some(group) = group else {
                        continue;
                    };
                    groups[group]
                        .entry(self.bucket_index(metric.emit_date))
                        .or_default()
                        .entry(name)
                        .or_default()
                        .add(metric.value);
                }
            }
        }
        if groups.is_empty() {
            return "{}".to_owned();
        }
        // As in Genesys' own sample, the media type is always part of a group; groups are
        // listed in the order of their printed values.
        let printed: BTreeMap<BTreeMap<String, String>, &Buckets> = index
            .into_iter()
            .map(|(key, group)| {
                let mut printed = BTreeMap::new();
                let names = self
                    .group_by
                    .iter()
                    .map(String::as_str)
                    .chain(["mediaType"]);
                for (dimension, value) in names.zip(key) {
                    if let Some(value) = value {
                        printed.insert(dimension.to_owned(), value.wire());
                    }
                }
                (printed, &groups[group])
            })
            .collect();
        let mut out = String::from("{\"results\":");
        let printed: Vec<_> = printed.into_iter().collect();
        json::put_list(&mut out, &printed, |out, (group, buckets)| {
            out.push('{');
            json::put_key(out, "group");
            out.push('{');
            for (dimension, value) in group {
                json::put_key(out, dimension);
                json::put_str(out, value);
            }
            out.push('}');
            json::put_key(out, "data");
            let buckets: Vec<_> = buckets.iter().collect();
            json::put_list(out, &buckets, |out, (bucket, metrics)| {
                out.push('{');
                json::put_key(out, "interval");
                json::put_str(out, &self.bucket(**bucket).wire());
                json::put_key(out, "metrics");
                let metrics: Vec<_> = metrics.iter().collect();
                json::put_list(out, &metrics, |out, (name, summary)| {
                    out.push('{');
                    json::put_key(out, "metric");
                    json::put_literal(out, name);
                    json::put_key(out, "stats");
                    summary.write_json(out, name);
                    out.push('}');
                });
                out.push('}');
            });
            out.push('}');
        });
        out.push('}');
        out
    }
}

/// What the stats of a metric need of its values: how many, their sum, the extremes.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    count: usize,
    sum: i64,
    min: Option<i64>,
    max: Option<i64>,
}

impl Summary {
    fn add(&mut self, value: i64) {
        self.count += 1;
        self.sum += value;
        self.min = Some(self.min.map_or(value, |m| m.min(value)));
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
    }

    /// Writes the `StatisticalSummary` as [`stats`] shapes it.
    fn write_json(&self, out: &mut String, name: &str) {
        out.push('{');
        if name.starts_with('n') {
            json::put_key(out, "count");
            json::put_int(out, self.sum);
        } else {
            for (key, value) in [("max", self.max), ("min", self.min)] {
                json::put_key(out, key);
                match value {
                    Some(value) => json::put_int(out, value),
                    None => out.push_str("null"),
                }
            }
            json::put_key(out, "count");
            json::put_int(out, i64::try_from(self.count).unwrap_or(i64::MAX));
            json::put_key(out, "sum");
            json::put_int(out, self.sum);
        }
        out.push('}');
    }
}

/// `StatisticalSummary` for a metric's values.
#[must_use]
pub fn stats(name: &str, values: &[i64]) -> Value {
    if name.starts_with('n') {
        json!({ "count": values.iter().sum::<i64>() })
    } else {
        json!({
            "max": values.iter().max(),
            "min": values.iter().min(),
            "count": values.len(),
            "sum": values.iter().sum::<i64>(),
        })
    }
}
