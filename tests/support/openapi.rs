//! Reading the proxy's OpenAPI document in tests: a walk over its operations and their
//! response bodies, and a validator of instances against its schemas (JSON Schema 2020-12,
//! formats checked, objects closed). It owns no assertion about the document: `openapi.rs`
//! checks the document itself, `openapi_responses.rs` real answers against it.

use serde_json::{Value, json};

/// One operation of the document, as the walk finds it.
#[derive(Clone, Copy)]
pub struct Operation<'a> {
    /// The path template, as a key of `paths`.
    pub path: &'a str,
    /// The method, lower case, as a key of the path item.
    pub method: &'a str,
    /// The operation object.
    pub value: &'a Value,
}

impl<'a> Operation<'a> {
    /// `GET /path`, for messages.
    pub fn what(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }

    /// Its documented responses: (status, response object).
    pub fn responses(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        entries(&self.value["responses"])
    }

    /// Every body its responses document: (status, media type, media type object).
    pub fn response_bodies(&self) -> impl Iterator<Item = (&'a str, &'a str, &'a Value)> + 'a {
        self.responses().flat_map(|(status, response)| {
            entries(&response["content"]).map(move |(media_type, body)| (status, media_type, body))
        })
    }
}

/// The entries of `value` when it is an object; nothing otherwise.
fn entries(value: &Value) -> impl Iterator<Item = (&str, &Value)> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| (key.as_str(), value))
}

/// Every operation of `doc`, path by path.
pub fn operations(doc: &Value) -> impl Iterator<Item = Operation<'_>> {
    entries(&doc["paths"]).flat_map(|(path, item)| {
        entries(item).map(move |(method, value)| Operation {
            path,
            method,
            value,
        })
    })
}

/// `additionalProperties: false` on every object schema that lists its properties and says
/// nothing of others: a property the document does not declare is a violation.
pub fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Validates instances against schemas of one document, whose `$ref`s point into its
/// `components` (read with every object closed, see [`close_objects`]).
pub struct SchemaValidator {
    closed_components: Value,
}

impl SchemaValidator {
    /// A validator for the schemas of `doc`.
    pub fn for_document(doc: &Value) -> Self {
        let mut closed_components = doc["components"].clone();
        close_objects(&mut closed_components);
        Self { closed_components }
    }

    /// The violations of `instance` against `schema` (a schema of the document), each as
    /// `where: what`.
    pub fn violations(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.closed_components,
            "allOf": [schema],
        });
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("the schema {schema} compiles: {e}"));
        validator
            .iter_errors(instance)
            .map(|error| {
                let at = error.instance_path().to_string();
                let at = if at.is_empty() { "(root)".into() } else { at };
                format!("{at}: {error}")
            })
            .collect()
    }
}
