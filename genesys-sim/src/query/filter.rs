//! Analytics filters (`{type: and|or, predicates[], clauses[]}`) parsed from JSON and
//! evaluated against anything that can answer "what are your values of dimension X / metric
//! Y". Details queries evaluate segment filters per segment and conversation filters per
//! conversation; aggregates evaluate their filter per metric observation.
//!
//! Subjects hand out typed values ([`DimensionValue`]) instead of wire strings, so that a
//! filter over tens of thousands of conversations formats nothing: a value matches a
//! predicate exactly when its wire form (what the API prints) equals the predicate's value.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::error_body::ApiError;

/// `and` / `or`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logic {
    And,
    Or,
}

/// A predicate's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Matches,
    Exists,
    NotExists,
}

/// `NumericRange`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Range {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

impl Range {
    fn contains(&self, value: i64) -> bool {
        let v = value as f64;
        self.gt.is_none_or(|b| v > b)
            && self.gte.is_none_or(|b| v >= b)
            && self.lt.is_none_or(|b| v < b)
            && self.lte.is_none_or(|b| v <= b)
    }
}

/// What a predicate looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Dimension(String),
    Metric(String),
}

/// One predicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub target: Target,
    pub operator: Operator,
    pub value: Option<String>,
    /// `value` read as an id, when it is one in its wire form (lower-case, hyphenated):
    /// only then can it equal an id dimension.
    pub value_id: Option<Uuid>,
    pub range: Option<Range>,
}

/// A filter or a clause: predicates and (for filters) nested clauses under one logic.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub logic: Logic,
    pub predicates: Vec<Predicate>,
    pub clauses: Vec<Filter>,
}

/// One value of a dimension, typed; its wire form is [`DimensionValue::wire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DimensionValue<'v> {
    Text(&'v str),
    Id(Uuid),
    Time(DateTime<Utc>),
    Flag(bool),
}

impl DimensionValue<'_> {
    /// The value as the API prints it.
    #[must_use]
    pub fn wire(&self) -> String {
        match *self {
            Self::Text(text) => text.to_owned(),
            Self::Id(id) => id.to_string(),
            Self::Time(at) => crate::render::format_time(at),
            Self::Flag(flag) => flag.to_string(),
        }
    }

    /// Whether the wire form equals `text` (`id` is `text` read as a wire-form id).
    fn equals(&self, text: &str, id: Option<Uuid>) -> bool {
        match *self {
            Self::Text(value) => value == text,
            Self::Id(value) => id == Some(value),
            Self::Time(at) => crate::render::format_time(at) == text,
            Self::Flag(flag) => text == if flag { "true" } else { "false" },
        }
    }
}

/// `text` as an id, when `text` is exactly an id's wire form.
#[must_use]
pub fn wire_id(text: &str) -> Option<Uuid> {
    Uuid::parse_str(text)
        .ok()
        .filter(|id| id.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == text)
}

/// Something a predicate can be evaluated against.
pub trait Subject {
    /// Calls `found` with each value of dimension `name` (none when the subject has no such
    /// value) until it returns true; whether it did.
    fn any_dimension(&self, name: &str, found: &mut dyn FnMut(DimensionValue<'_>) -> bool) -> bool;
    /// Calls `found` with each value of metric `name` until it returns true; whether it did.
    fn any_metric(&self, name: &str, found: &mut dyn FnMut(i64) -> bool) -> bool;

    /// The wire forms of a dimension's values (for tests and diagnostics).
    fn dimension(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.any_dimension(name, &mut |v| {
            out.push(v.wire());
            false
        });
        out
    }

    /// A metric's values (for tests and diagnostics).
    fn metric(&self, name: &str) -> Vec<i64> {
        let mut out = Vec::new();
        self.any_metric(name, &mut |v| {
            out.push(v);
            false
        });
        out
    }
}

/// Which names a filter may use, and whether metric predicates are allowed.
#[derive(Debug, Clone, Copy)]
pub struct Vocabulary {
    /// The model's name for error messages (e.g. `SegmentDetailQueryPredicate`).
    pub model: &'static str,
    pub dimensions: &'static [&'static str],
    pub metrics: &'static [&'static str],
}

impl Predicate {
    fn holds(&self, subject: &dyn Subject) -> bool {
        match &self.target {
            Target::Dimension(name) => match self.operator {
                Operator::Exists => subject.any_dimension(name, &mut |_| true),
                Operator::NotExists => !subject.any_dimension(name, &mut |_| true),
                Operator::Matches => match self.value.as_deref() {
                    Some(want) => {
                        subject.any_dimension(name, &mut |v| v.equals(want, self.value_id))
                    }
                    None => false,
                },
            },
            Target::Metric(name) => match self.operator {
                Operator::Exists => subject.any_metric(name, &mut |_| true),
                Operator::NotExists => !subject.any_metric(name, &mut |_| true),
                Operator::Matches => subject.any_metric(name, &mut |v| self.matches_metric(v)),
            },
        }
    }

    /// Whether a metric value satisfies this (`matches`) predicate's range and value.
    #[must_use]
    pub fn matches_metric(&self, value: i64) -> bool {
        self.range.is_none_or(|r| r.contains(value))
            && self
                .value
                .as_deref()
                .is_none_or(|want| want.parse::<i64>() == Ok(value))
    }
}

impl Filter {
    /// Whether the subject satisfies the filter.
    pub fn holds(&self, subject: &dyn Subject) -> bool {
        let predicates = self.predicates.iter().map(|p| p.holds(subject));
        let clauses = self.clauses.iter().map(|c| c.holds(subject));
        self.combine(predicates.chain(clauses))
    }

    /// The filter's logic over its predicates' and clauses' answers (an empty filter holds).
    fn combine(&self, answers: impl Iterator<Item = bool>) -> bool {
        let mut all = answers.peekable();
        if all.peek().is_none() {
            return true;
        }
        match self.logic {
            Logic::And => all.all(|b| b),
            Logic::Or => all.any(|b| b),
        }
    }

    /// Whether the filter may hold, given `may`, which says for each predicate whether it
    /// may hold (false only when it certainly does not). A quick necessary condition: when
    /// this is false, [`Filter::holds`] is false for every subject `may` speaks for.
    pub fn may_hold(&self, may: &dyn Fn(&Predicate) -> bool) -> bool {
        let predicates = self.predicates.iter().map(may);
        let clauses = self.clauses.iter().map(|c| c.may_hold(may));
        self.combine(predicates.chain(clauses))
    }

    /// Parses a filter at `path` (e.g. `segmentFilters[0]`); `allow_clauses` is false for
    /// a clause, which holds predicates only.
    ///
    /// # Errors
    /// A 400 ErrorBody naming the offending field.
    pub fn parse(
        value: &Value,
        path: &str,
        vocabulary: Vocabulary,
        allow_clauses: bool,
    ) -> Result<Self, ApiError> {
        let object = value
            .as_object()
            .ok_or_else(|| bad(path, format!("{path} must be an object")))?;
        let allowed: &[&str] = if allow_clauses {
            &["type", "predicates", "clauses"]
        } else {
            &["type", "predicates"]
        };
        reject_unknown(object, path, allowed)?;
        let logic = match object.get("type").and_then(Value::as_str) {
            Some("and") => Logic::And,
            Some("or") => Logic::Or,
            Some(other) => return Err(invalid_value(&format!("{path}.type"), other, "[and, or]")),
            None => {
                return Err(bad(
                    &format!("{path}.type"),
                    format!("{path}.type is required"),
                ));
            }
        };
        let predicates = match object.get("predicates") {
            None => Vec::new(),
            Some(list) => array(list, &format!("{path}.predicates"))?
                .iter()
                .enumerate()
                .map(|(i, p)| parse_predicate(p, &format!("{path}.predicates[{i}]"), vocabulary))
                .collect::<Result<_, _>>()?,
        };
        let clauses = match object.get("clauses") {
            None => Vec::new(),
            Some(list) => array(list, &format!("{path}.clauses"))?
                .iter()
                .enumerate()
                .map(|(i, c)| Self::parse(c, &format!("{path}.clauses[{i}]"), vocabulary, false))
                .collect::<Result<_, _>>()?,
        };
        if !allow_clauses && predicates.is_empty() {
            return Err(bad(
                &format!("{path}.predicates"),
                format!("{path}.predicates is required and must not be empty"),
            ));
        }
        Ok(Self {
            logic,
            predicates,
            clauses,
        })
    }
}

/// A 400 `bad.request` about `field`.
pub fn bad(field: &str, message: String) -> ApiError {
    ApiError::bad_field("bad.request", field, message)
}

/// A 400 `invalid.value` in Genesys' wording.
pub fn invalid_value(field: &str, value: &str, allowed: &str) -> ApiError {
    ApiError::bad_field(
        "invalid.value",
        field,
        format!(
            "Value [{value}] is not valid for field [{field}]. Allowable values are: {allowed}"
        ),
    )
}

/// Fails when `object` has a key outside `allowed` (Genesys rejects unrecognised fields).
///
/// # Errors
/// A 400 naming the unrecognised field.
pub fn reject_unknown(
    object: &serde_json::Map<String, Value>,
    path: &str,
    allowed: &[&str],
) -> Result<(), ApiError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => {
            let field = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            Err(bad(&field, format!("Unrecognized field [{field}]")))
        }
        None => Ok(()),
    }
}

/// `value` as an array, or a 400 naming `path`.
///
/// # Errors
/// A 400 when `value` is not an array.
pub fn array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, ApiError> {
    value
        .as_array()
        .ok_or_else(|| bad(path, format!("{path} must be an array")))
}

fn number(value: Option<&Value>, path: &str) -> Result<Option<f64>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(path, format!("{path} must be a number"))),
    }
}

fn parse_predicate(
    value: &Value,
    path: &str,
    vocabulary: Vocabulary,
) -> Result<Predicate, ApiError> {
    let object = value
        .as_object()
        .ok_or_else(|| bad(path, format!("{path} must be an object")))?;
    reject_unknown(
        object,
        path,
        &[
            "type",
            "dimension",
            "metric",
            "operator",
            "value",
            "range",
            "propertyType",
            "property",
        ],
    )?;
    let text = |key: &str| -> Result<Option<&str>, ApiError> {
        match object.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| {
                bad(
                    &format!("{path}.{key}"),
                    format!("{path}.{key} must be a string"),
                )
            }),
        }
    };
    let kind = text("type")?.unwrap_or("dimension");
    let target = match kind {
        "dimension" => {
            let name = text("dimension")?.ok_or_else(|| {
                bad(
                    &format!("{path}.dimension"),
                    format!("{path}.dimension is required for a dimension predicate"),
                )
            })?;
            if !vocabulary.dimensions.contains(&name) {
                return Err(invalid_value(
                    &format!("{path}.dimension"),
                    name,
                    &format!("the dimensions of {}", vocabulary.model),
                ));
            }
            Target::Dimension(name.to_owned())
        }
        "metric" => {
            let name = text("metric")?.ok_or_else(|| {
                bad(
                    &format!("{path}.metric"),
                    format!("{path}.metric is required for a metric predicate"),
                )
            })?;
            if !vocabulary.metrics.contains(&name) {
                return Err(invalid_value(
                    &format!("{path}.metric"),
                    name,
                    &format!("the metrics of {}", vocabulary.model),
                ));
            }
            Target::Metric(name.to_owned())
        }
        "property" => {
            return Err(bad(
                &format!("{path}.type"),
                format!("{path}.type [property]: property predicates are not simulated"),
            ));
        }
        other => {
            return Err(invalid_value(
                &format!("{path}.type"),
                other,
                "[dimension, property, metric]",
            ));
        }
    };
    let operator = match text("operator")?.unwrap_or("matches") {
        "matches" => Operator::Matches,
        "exists" => Operator::Exists,
        "notExists" => Operator::NotExists,
        other => {
            return Err(invalid_value(
                &format!("{path}.operator"),
                other,
                "[matches, exists, notExists]",
            ));
        }
    };
    let range = match object.get("range") {
        None => None,
        Some(r) => {
            let r_path = format!("{path}.range");
            let r_obj = r
                .as_object()
                .ok_or_else(|| bad(&r_path, format!("{r_path} must be an object")))?;
            reject_unknown(r_obj, &r_path, &["gt", "gte", "lt", "lte"])?;
            let range = Range {
                gt: number(r_obj.get("gt"), &format!("{r_path}.gt"))?,
                gte: number(r_obj.get("gte"), &format!("{r_path}.gte"))?,
                lt: number(r_obj.get("lt"), &format!("{r_path}.lt"))?,
                lte: number(r_obj.get("lte"), &format!("{r_path}.lte"))?,
            };
            if range == Range::default() {
                return Err(bad(
                    &r_path,
                    format!("{r_path} needs at least one of gt, gte, lt, lte"),
                ));
            }
            Some(range)
        }
    };
    let value = text("value")?.map(str::to_owned);
    if operator == Operator::Matches && value.is_none() && range.is_none() {
        return Err(bad(
            &format!("{path}.value"),
            format!("{path}: a matches predicate needs a value or a range"),
        ));
    }
    if matches!(target, Target::Dimension(_)) && range.is_some() {
        return Err(bad(
            &format!("{path}.range"),
            format!("{path}: a dimension predicate takes a value, not a range"),
        ));
    }
    Ok(Predicate {
        target,
        operator,
        value_id: value.as_deref().and_then(wire_id),
        value,
        range,
    })
}

/// Parses an optional list of filters at `key` of `body`.
///
/// # Errors
/// A 400 naming the offending field.
pub fn parse_list(
    body: &serde_json::Map<String, Value>,
    key: &str,
    vocabulary: Vocabulary,
) -> Result<Vec<Filter>, ApiError> {
    match body.get(key) {
        None => Ok(Vec::new()),
        Some(list) => array(list, key)?
            .iter()
            .enumerate()
            .map(|(i, f)| Filter::parse(f, &format!("{key}[{i}]"), vocabulary, true))
            .collect(),
    }
}

/// The body of an analytics query as an object, after refusing the fields the simulator
/// does not model (`unsimulated`) and any field the model does not have (`known`).
///
/// # Errors
/// A 400 naming the body or the field.
pub fn query_object<'a>(
    body: &'a Value,
    model: &str,
    known: &[&str],
    unsimulated: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, ApiError> {
    let object = body
        .as_object()
        .ok_or_else(|| bad("body", format!("The request body must be a {model} object")))?;
    if let Some(field) = unsimulated.iter().find(|f| object.contains_key(**f)) {
        return Err(bad(
            field,
            format!("{field} is not simulated: the simulated org has no such data"),
        ));
    }
    reject_unknown(object, "", known)?;
    Ok(object)
}

/// The required `interval` of a query, no longer than `max` (`kind` names the query in
/// the message).
///
/// # Errors
/// A 400 naming `interval`.
pub fn bounded_interval(
    object: &serde_json::Map<String, Value>,
    max: std::time::Duration,
    kind: &str,
) -> Result<super::time::Interval, ApiError> {
    let text = object
        .get("interval")
        .ok_or_else(|| bad("interval", "interval is required".to_owned()))?
        .as_str()
        .ok_or_else(|| bad("interval", "interval must be a string".to_owned()))?;
    let interval = super::time::Interval::parse("interval", text)?;
    let max = chrono::Duration::from_std(max).unwrap_or(chrono::TimeDelta::MAX);
    if interval.span() > max {
        return Err(bad(
            "interval",
            format!(
                "interval [{text}] spans {} hours; the maximum interval for {kind} is {} hours",
                interval.span().num_hours(),
                max.num_hours()
            ),
        ));
    }
    Ok(interval)
}
