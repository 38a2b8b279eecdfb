//! The OpenAPI schemas of report requests beyond what the wire structs derive: the
//! shared value schemas (an ISO-8601 duration with the pattern the parser itself uses, a
//! wrap-up code) and the choice of interval, `from` and `to` or `last`, which no single
//! object schema or list of query parameters can say. [`refine_document`] rewrites the
//! derived document so it does: each POST body becomes `oneOf` two closed objects (one
//! per way of giving the interval), and each GET form's `from`, `to` and `last`
//! parameters become one exploded `interval` object parameter, `oneOf` the same two ways.
//! Everything else in those schemas (names, types, bounds, descriptions) stays as derived
//! from the wire structs.

use std::borrow::Cow;

use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::wire::{AggregatesRequest, SearchRequest};
use crate::reports::interval::{DURATION_PATTERN, MINUTES_PATTERN};

/// The schema of an ISO-8601 duration field (`last`, `granularity`).
#[derive(Debug)]
pub struct IsoDuration;

impl PartialSchema for IsoDuration {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An ISO-8601 duration of fixed length: weeks, days, then after `T` hours, minutes and seconds, each at most once and in that order, each a whole number from 1 to 999999 (`PT15M`, `PT1H`, `P1DT12H`, `P2W`). Months and years are not fixed lengths and are refused.",
            ))
            .pattern(Some(DURATION_PATTERN))
            .examples(["PT15M"])
            .into()
    }
}

impl ToSchema for IsoDuration {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("IsoDuration")
    }
}

/// The schema of a duration of whole minutes (`granularity`).
#[derive(Debug)]
pub struct IsoMinutes;

impl PartialSchema for IsoMinutes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An ISO-8601 duration of whole minutes: an `IsoDuration` without seconds (`PT30M`, `PT1H`, `P1D`).",
            ))
            .pattern(Some(MINUTES_PATTERN))
            .examples(["PT1H"])
            .into()
    }
}

impl ToSchema for IsoMinutes {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("IsoMinutes")
    }
}

/// The schema of a wrap-up code in a filter.
#[derive(Debug)]
pub struct WrapupCode;

impl PartialSchema for WrapupCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A wrap-up code, as Genesys names it (non-empty; in the GET form a comma separates codes).",
            ))
            .min_length(Some(1))
            .into()
    }
}

impl ToSchema for WrapupCode {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WrapupCode")
    }
}

/// The interval fields: one way (`from` and `to`) and the other (`last`).
const FROM_TO: [&str; 2] = ["from", "to"];
const LAST: [&str; 1] = ["last"];

/// Rewrites the derived document (as JSON) so it states the choice of interval; see the
/// module documentation.
pub fn refine_document(document: &mut Value) {
    for (request, path) in [
        (<SearchRequest as ToSchema>::name(), "/reports/search"),
        (
            <AggregatesRequest as ToSchema>::name(),
            "/reports/aggregates",
        ),
    ] {
        split_body(document, &request);
        split_parameters(document, path);
    }
}

/// `request`'s object schema closed, without the `absent` interval fields and with the
/// `present` ones required.
fn variant(request: &Map<String, Value>, absent: &[&str], present: &[&str], how: &str) -> Value {
    let mut variant = request.clone();
    if let Some(Value::Object(properties)) = variant.get_mut("properties") {
        properties.retain(|name, _| !absent.contains(&name.as_str()));
    }
    let mut required: Vec<Value> = present.iter().map(|name| json!(name)).collect();
    if let Some(Value::Array(others)) = variant.get("required") {
        required.extend(others.iter().cloned());
    }
    variant.insert("required".into(), Value::Array(required));
    variant.insert("additionalProperties".into(), Value::Bool(false));
    let description = variant
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    variant.insert(
        "description".into(),
        json!(format!(
            "{description}\n\nThis form gives the interval {how}."
        )),
    );
    Value::Object(variant)
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Makes the body schema `request` the choice of its two interval forms.
fn split_body(document: &mut Value, request: &str) {
    let schemas = &mut document["components"]["schemas"];
    let Some(Value::Object(body)) = schemas.get(request).cloned() else {
        return;
    };
    let from_to = format!("{request}FromTo").replace("Request", "");
    let last = format!("{request}Last").replace("Request", "");
    schemas[&from_to] = variant(&body, &LAST, &FROM_TO, "as `from` and `to`");
    schemas[&last] = variant(&body, &FROM_TO, &LAST, "as `last`, ending now");
    schemas[request] = json!({
        "description": body.get("description").cloned().unwrap_or_default(),
        "oneOf": [schema_ref(&from_to), schema_ref(&last)],
    });
}

/// Replaces the GET operation's `from`, `to` and `last` query parameters by one exploded
/// `interval` object parameter, the choice of the two forms.
fn split_parameters(document: &mut Value, path: &str) {
    let Some(Value::Array(parameters)) = document["paths"][path]["get"].get_mut("parameters")
    else {
        return;
    };
    let mut interval = Map::new();
    parameters.retain(|parameter| {
        let name = parameter["name"].as_str().unwrap_or_default();
        if FROM_TO.contains(&name) || LAST.contains(&name) {
            let mut schema = parameter["schema"].clone();
            schema["description"] = parameter["description"].clone();
            if let Some(example) = parameter.get("example") {
                schema["examples"] = json!([example]);
            }
            interval.insert(name.to_owned(), schema);
            false
        } else {
            true
        }
    });
    if interval.is_empty() {
        return;
    }
    let form = |names: &[&str], description: &str| {
        let properties: Map<String, Value> = names
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), interval.get(*name)?.clone())))
            .collect();
        json!({
            "type": "object",
            "description": description,
            "required": names,
            "properties": properties,
            "additionalProperties": false,
        })
    };
    parameters.insert(
        0,
        json!({
            "name": "interval",
            "in": "query",
            "description": "The interval, given one of two ways: `from` and `to`, or `last` (each a query parameter of its own: the object is exploded).",
            "required": true,
            "style": "form",
            "explode": true,
            "schema": {
                "oneOf": [
                    schema_ref("IntervalFromTo"),
                    schema_ref("IntervalLast"),
                ],
            },
        }),
    );
    let schemas = &mut document["components"]["schemas"];
    schemas["IntervalFromTo"] = form(
        &FROM_TO,
        "An absolute interval: conversations that started in `[from, to)`.",
    );
    schemas["IntervalLast"] = form(
        &LAST,
        "A relative interval: the `last` duration ending now.",
    );
}
