//! Analytics filters (`{type: and|or, predicates[], clauses[]}`) parsed from JSON and
//! evaluated against anything that can answer "what are your values of dimension X / metric
//! Y". Details queries evaluate segment filters per segment and conversation filters per
//! conversation; aggregates evaluate their filter per metric observation.

use serde_json::Value;

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
    #[allow(clippy::cast_precision_loss)]
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
    pub range: Option<Range>,
}

/// A filter or a clause: predicates and (for filters) nested clauses under one logic.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub logic: Logic,
    pub predicates: Vec<Predicate>,
    pub clauses: Vec<Filter>,
}

/// Something a predicate can be evaluated against.
pub trait Subject {
    /// Values of a dimension (empty when absent).
    fn dimension(&self, name: &str) -> Vec<String>;
    /// Values of a metric (empty when absent).
    fn metric(&self, name: &str) -> Vec<i64>;
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
            Target::Dimension(name) => {
                let values = subject.dimension(name);
                match self.operator {
                    Operator::Exists => !values.is_empty(),
                    Operator::NotExists => values.is_empty(),
                    Operator::Matches => values
                        .iter()
                        .any(|v| Some(v.as_str()) == self.value.as_deref()),
                }
            }
            Target::Metric(name) => {
                let values = subject.metric(name);
                match self.operator {
                    Operator::Exists => !values.is_empty(),
                    Operator::NotExists => values.is_empty(),
                    Operator::Matches => values.iter().any(|&v| {
                        self.range.is_none_or(|r| r.contains(v))
                            && self
                                .value
                                .as_deref()
                                .is_none_or(|want| want.parse::<i64>() == Ok(v))
                    }),
                }
            }
        }
    }
}

impl Filter {
    /// Whether the subject satisfies the filter.
    pub fn holds(&self, subject: &dyn Subject) -> bool {
        let predicates = self.predicates.iter().map(|p| p.holds(subject));
        let clauses = self.clauses.iter().map(|c| c.holds(subject));
        let mut all = predicates.chain(clauses).peekable();
        if all.peek().is_none() {
            return true;
        }
        match self.logic {
            Logic::And => all.all(|b| b),
            Logic::Or => all.any(|b| b),
        }
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
