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

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use super::filter::{self, Filter, Subject, Vocabulary, bad, invalid_value};
use super::time::{Interval, period};
use super::vocabulary;
use crate::config::AnalyticsLimits;
use crate::data::Dataset;
use crate::error_body::ApiError;
use crate::render::analytics::{self, AnalyticsConversation};

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

/// One metric observation with its dimensions.
#[derive(Debug, Clone)]
pub struct Observation {
    pub name: &'static str,
    pub value: i64,
    pub emitted: DateTime<Utc>,
    pub dimensions: BTreeMap<&'static str, String>,
}

impl Subject for Observation {
    fn dimension(&self, name: &str) -> Vec<String> {
        self.dimensions.get(name).cloned().into_iter().collect()
    }

    fn metric(&self, name: &str) -> Vec<i64> {
        if self.name == name {
            vec![self.value]
        } else {
            Vec::new()
        }
    }
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

    fn bucket(&self, at: DateTime<Utc>) -> Interval {
        match self.granularity {
            None => self.interval,
            Some(step) => {
                let index = (at - self.interval.start).num_milliseconds() / step.num_milliseconds();
                let start =
                    self.interval.start + Duration::milliseconds(index * step.num_milliseconds());
                Interval {
                    start,
                    end: (start + step).min(self.interval.end),
                }
            }
        }
    }

    /// Runs the query over `data` as it stands at `now`: the response body.
    #[must_use]
    pub fn run(&self, data: &Dataset, now: DateTime<Utc>) -> Value {
        // group -> bucket start -> (bucket, metric -> values)
        type Buckets = BTreeMap<DateTime<Utc>, (Interval, BTreeMap<String, Vec<i64>>)>;
        let mut groups: BTreeMap<BTreeMap<String, String>, Buckets> = BTreeMap::new();
        let until = self.interval.end.min(now + Duration::milliseconds(1));
        for record in data.started_between(self.interval.start - LOOKBACK, until) {
            let conversation = analytics::at(record, &data.org, now);
            for observation in observations(&conversation, &data.org) {
                if !self.interval.contains(observation.emitted) {
                    continue;
                }
                if !self.metrics.iter().any(|m| m == observation.name) {
                    continue;
                }
                if self.filter.as_ref().is_some_and(|f| !f.holds(&observation)) {
                    continue;
                }
                let mut group = BTreeMap::new();
                for dimension in &self.group_by {
                    if let Some(value) = observation.dimensions.get(dimension.as_str()) {
                        group.insert(dimension.clone(), value.clone());
                    }
                }
                if !self.group_by.is_empty() {
                    // As in Genesys' own sample, the media type is always part of the group.
                    if let Some(media) = observation.dimensions.get("mediaType") {
                        group.insert("mediaType".to_owned(), media.clone());
                    }
                }
                let bucket = self.bucket(observation.emitted);
                groups
                    .entry(group)
                    .or_default()
                    .entry(bucket.start)
                    .or_insert_with(|| (bucket, BTreeMap::new()))
                    .1
                    .entry(observation.name.to_owned())
                    .or_default()
                    .push(observation.value);
            }
        }
        if groups.is_empty() {
            return json!({});
        }
        let results: Vec<Value> = groups
            .into_iter()
            .map(|(group, buckets)| {
                let data: Vec<Value> = buckets
                    .into_values()
                    .map(|(bucket, metrics)| {
                        let metrics: Vec<Value> = metrics
                            .into_iter()
                            .map(|(name, values)| json!({"metric": name, "stats": stats(&name, &values)}))
                            .collect();
                        json!({"interval": bucket.wire(), "metrics": metrics})
                    })
                    .collect();
                json!({"group": group, "data": data})
            })
            .collect();
        json!({ "results": results })
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

/// Every metric observation of a rendered conversation.
#[must_use]
pub fn observations(
    conversation: &AnalyticsConversation,
    org: &crate::data::Org,
) -> Vec<Observation> {
    let mut out = Vec::new();
    for participant in &conversation.participants {
        for session in &participant.sessions {
            let queue_id = session.segments.iter().find_map(|s| s.queue_id);
            let wrap_up = session.segments.iter().find_map(|s| s.wrap_up_code);
            let division = queue_id
                .and_then(|q| org.queues.iter().find(|queue| queue.id == q))
                .map(|queue| org.divisions[queue.division].id)
                .or_else(|| conversation.division_ids.first().copied());
            let mut dimensions: BTreeMap<&'static str, String> = BTreeMap::new();
            dimensions.insert("conversationId", conversation.conversation_id.to_string());
            dimensions.insert(
                "originatingDirection",
                conversation.originating_direction.to_owned(),
            );
            dimensions.insert("mediaType", session.media_type.to_owned());
            dimensions.insert("direction", session.direction.to_owned());
            dimensions.insert("purpose", participant.purpose.to_owned());
            if let Some(q) = queue_id {
                dimensions.insert("queueId", q.to_string());
            }
            if let Some(user) = participant.user_id {
                dimensions.insert("userId", user.to_string());
            }
            if let Some(code) = wrap_up {
                dimensions.insert("wrapUpCode", code.to_string());
            }
            if let Some(d) = division {
                dimensions.insert("divisionId", d.to_string());
            }
            for metric in &session.metrics {
                out.push(Observation {
                    name: metric.name,
                    value: metric.value,
                    emitted: metric.emit_date,
                    dimensions: dimensions.clone(),
                });
                if metric.name == "tAcd" {
                    out.push(Observation {
                        name: "tWait",
                        value: metric.value,
                        emitted: metric.emit_date,
                        dimensions: dimensions.clone(),
                    });
                }
            }
        }
    }
    out
}
