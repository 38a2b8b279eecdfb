//! Strict contract checks of JSON payloads against the official Genesys Cloud Platform API v2 model
//! definitions.
//!
//! This module owns loading `tests/contract/definitions.json` (embedded with `include_str!`, so it
//! works from any test binary and any working directory) and validating a `serde_json::Value`
//! against one named definition. `definitions.json` is generated from
//! `models-reconstructed.json` (see its top-level `x-source` key); `OAuthTokenResponse` and
//! `OAuthErrorResponse` are hand-written there because the token endpoint is not in the swagger.
//!
//! Include it from an integration test (every `tests/*.rs` file is its own crate) with
//!
//! ```text
//! #[path = "support/contract.rs"]
//! mod contract;
//!
//! let contract = contract::Contract::load();
//! contract.assert_valid("Conversation", &body);
//! ```
//!
//! Rules (stricter than the real API's clients, on purpose: the simulator must not invent data):
//!
//! * every `required` property is present;
//! * JSON types match: `string`, `integer` (an integer JSON number; `1.0` is rejected; `int32` /
//!   `int64` ranges are checked), `number` (integers accepted), `boolean`, `array`, `object`;
//! * `format: date-time` strings are RFC 3339 (`yyyy-MM-ddTHH:mm:ss[.fraction](Z|±HH:MM)`, 1–9
//!   fraction digits, calendar-checked); `format: date` strings are `yyyy-MM-dd`;
//! * `enum` values, including the enums of array items;
//! * `$ref` and single-element `allOf: [{$ref}]` (the definitions' way of attaching a description to
//!   a reference) are followed;
//! * an object declaring `properties` rejects every property it does not declare;
//! * an object declaring only `additionalProperties` is a map whose values are checked against that
//!   schema; `{"type": "object"}` with neither is free-form and its content is not inspected;
//! * `null` is a violation everywhere, even for optional fields: Genesys omits absent fields rather
//!   than sending `null`.
//!
//! Every violation is reported (not only the first) as `<JSON pointer>: <problem>`, e.g.
//! `/participants/2/calls/0/state: "talking" not in enum ["alerting", …]`; the document root is
//! shown as `(root)`. An unknown definition name, or a schema construct this module does not
//! understand, is a panic: that is a bug in the test, not in the payload.

// Compiled into four test binaries (two here, two of the proxy's), each using a part of it:
// without this, every binary warns about the parts it does not use.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::OnceLock;

use serde_json::{Map, Value};

const DEFINITIONS_JSON: &str = include_str!("../contract/definitions.json");
const REF_PREFIX: &str = "#/definitions/";
/// How many allowed values an enum violation lists before eliding the rest.
const ENUM_VALUES_SHOWN: usize = 12;
/// Length (in characters) of a value quoted inside one violation.
const VALUE_EXCERPT_CHARS: usize = 80;
/// Length (in characters) of the payload quoted by [`Contract::assert_valid`].
const PAYLOAD_EXCERPT_CHARS: usize = 600;

/// The Genesys model definitions used by the contract tests.
#[derive(Debug)]
pub struct Contract {
    definitions: Map<String, Value>,
}

impl Contract {
    /// The definitions, parsed and sanity-checked once per test binary.
    ///
    /// # Panics
    /// If `definitions.json` is malformed or uses a schema construct this module does not support.
    pub fn load() -> &'static Self {
        static CONTRACT: OnceLock<Contract> = OnceLock::new();
        CONTRACT.get_or_init(|| Self::parse(DEFINITIONS_JSON))
    }

    fn parse(text: &str) -> Self {
        let mut document: Value =
            serde_json::from_str(text).expect("tests/contract/definitions.json is valid JSON");
        let Some(Value::Object(definitions)) = document.get_mut("definitions").map(Value::take)
        else {
            panic!("tests/contract/definitions.json has no `definitions` object");
        };
        let contract = Self { definitions };
        for (name, schema) in &contract.definitions {
            contract.check_schema_shape(schema, name);
        }
        contract
    }

    /// Whether `name` is one of the loaded definitions.
    pub fn has_definition(&self, name: &str) -> bool {
        self.definitions.contains_key(name)
    }

    /// Checks `value` against the definition `definition`, returning every violation found.
    ///
    /// # Panics
    /// If `definition` is not a loaded definition name (a bug in the test).
    #[track_caller]
    pub fn validate(&self, definition: &str, value: &Value) -> Result<(), Vec<String>> {
        let schema = self.definitions.get(definition).unwrap_or_else(|| {
            panic!(
                "unknown definition `{definition}`: not in tests/contract/definitions.json (test bug)"
            )
        });
        let mut violations = Vec::new();
        self.check(schema, value, "", &mut violations);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    /// Panics, listing every violation and an excerpt of `value`, unless `value` matches
    /// `definition`.
    ///
    /// # Panics
    /// If `value` does not match, or `definition` is unknown.
    #[track_caller]
    pub fn assert_valid(&self, definition: &str, value: &Value) {
        if let Err(violations) = self.validate(definition, value) {
            let mut message = format!(
                "payload does not match Genesys definition `{definition}` ({} violation(s)):\n",
                violations.len()
            );
            for violation in &violations {
                let _ = writeln!(message, "  {violation}");
            }
            let _ = write!(
                message,
                "payload: {}",
                excerpt(value, PAYLOAD_EXCERPT_CHARS)
            );
            panic!("{message}");
        }
    }

    fn resolve(&self, reference: &Value) -> &Value {
        let name = reference
            .as_str()
            .and_then(|r| r.strip_prefix(REF_PREFIX))
            .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        self.definitions
            .get(name)
            .unwrap_or_else(|| panic!("$ref to missing definition `{name}`"))
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(reference) = schema.get("$ref") {
            self.check(self.resolve(reference), value, path, out);
            return;
        }
        if let Some(all_of) = schema.get("allOf").and_then(Value::as_array) {
            // The shape check guarantees exactly one element.
            for sub_schema in all_of {
                self.check(sub_schema, value, path, out);
            }
            return;
        }
        if value.is_null() {
            out.push(format!(
                "{}: null is not allowed (Genesys omits absent fields)",
                display(path)
            ));
            return;
        }
        let Some(kind) = schema.get("type").and_then(Value::as_str) else {
            return; // untyped schema: anything goes (the shape check rejects these in practice)
        };
        let format = schema.get("format").and_then(Value::as_str);
        let type_ok = match kind {
            "string" => value
                .as_str()
                .map(|text| check_string_format(format, text, path, out))
                .is_some(),
            "integer" => check_integer(format, value, path, out),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => match value.as_array() {
                Some(items) => {
                    let item_schema = schema.get("items").expect("shape check: array has items");
                    for (index, item) in items.iter().enumerate() {
                        self.check(item_schema, item, &format!("{path}/{index}"), out);
                    }
                    true
                }
                None => false,
            },
            "object" => match value.as_object() {
                Some(map) => {
                    self.check_object(schema, map, path, out);
                    true
                }
                None => false,
            },
            other => panic!("unsupported type `{other}`"),
        };
        if !type_ok {
            let expected = format.map_or_else(|| kind.to_owned(), |f| format!("{kind} ({f})"));
            out.push(format!(
                "{}: expected {expected}, got {}",
                display(path),
                describe(value)
            ));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                out.push(format!(
                    "{}: {} not in enum {}",
                    display(path),
                    excerpt(value, VALUE_EXCERPT_CHARS),
                    list_enum(allowed)
                ));
            }
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        map: &Map<String, Value>,
        path: &str,
        out: &mut Vec<String>,
    ) {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    out.push(format!(
                        "{}: required property missing",
                        child_path(path, name)
                    ));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        if properties.is_none() && additional.is_none() {
            return; // free-form object
        }
        for (key, item) in map {
            let item_path = child_path(path, key);
            match (
                properties.and_then(|declared| declared.get(key)),
                additional,
            ) {
                (Some(property_schema), _) => self.check(property_schema, item, &item_path, out),
                (None, Some(Value::Bool(true))) => {}
                (None, None | Some(Value::Bool(false))) => out.push(format!(
                    "{item_path}: unknown property (not declared by the definition)"
                )),
                (None, Some(value_schema)) => self.check(value_schema, item, &item_path, out),
            }
        }
    }

    /// Panics on any schema construct `check` would silently ignore or misread.
    fn check_schema_shape(&self, schema: &Value, at: &str) {
        let Some(object) = schema.as_object() else {
            panic!("{at}: schema is not an object");
        };
        for key in object.keys() {
            let known = matches!(
                key.as_str(),
                "type"
                    | "format"
                    | "enum"
                    | "items"
                    | "$ref"
                    | "allOf"
                    | "properties"
                    | "additionalProperties"
                    | "required"
                    | "description"
                    | "example"
                    | "readOnly"
                    | "title"
            ) || key.starts_with("x-");
            assert!(known, "{at}: unsupported schema keyword `{key}`");
        }
        if let Some(reference) = object.get("$ref") {
            self.resolve(reference);
            assert!(
                !object.contains_key("type") && !object.contains_key("allOf"),
                "{at}: $ref combined with type/allOf"
            );
        }
        if let Some(all_of) = object.get("allOf") {
            let parts = all_of.as_array().map_or(&[][..], Vec::as_slice);
            assert!(
                parts.len() == 1 && !object.contains_key("type"),
                "{at}: only `allOf: [one schema]` without `type` is supported"
            );
            self.check_schema_shape(&parts[0], &format!("{at}.allOf[0]"));
        }
        let kind = object.get("type").map(|kind| {
            kind.as_str()
                .unwrap_or_else(|| panic!("{at}: `type` is not a string"))
        });
        if let Some(format) = object.get("format") {
            let supported = matches!(
                (kind, format.as_str()),
                (Some("string"), Some("date-time" | "date"))
                    | (Some("integer"), Some("int32" | "int64"))
                    | (Some("number"), Some("float" | "double"))
            );
            assert!(
                supported,
                "{at}: unsupported format {format} for type {kind:?}"
            );
        }
        if let Some(allowed) = object.get("enum") {
            assert!(allowed.is_array(), "{at}: enum is not an array");
        }
        match kind {
            Some("string" | "integer" | "number" | "boolean") => {}
            Some("array") => {
                let items = object
                    .get("items")
                    .unwrap_or_else(|| panic!("{at}: array without items"));
                self.check_schema_shape(items, &format!("{at}[]"));
            }
            Some("object") => self.check_object_shape(object, at),
            Some(other) => panic!("{at}: unsupported type `{other}`"),
            None => assert!(
                object.contains_key("$ref") || object.contains_key("allOf"),
                "{at}: schema has neither type nor $ref"
            ),
        }
    }

    fn check_object_shape(&self, object: &Map<String, Value>, at: &str) {
        let properties = object.get("properties").map(|properties| {
            properties
                .as_object()
                .unwrap_or_else(|| panic!("{at}: properties is not an object"))
        });
        for (name, property) in properties.into_iter().flatten() {
            self.check_schema_shape(property, &format!("{at}.{name}"));
        }
        match object.get("additionalProperties") {
            None | Some(Value::Bool(_)) => {}
            Some(value_schema) => self.check_schema_shape(value_schema, &format!("{at}{{}}")),
        }
        let required = object.get("required").map(|required| {
            required
                .as_array()
                .unwrap_or_else(|| panic!("{at}: required is not an array"))
        });
        for name in required.into_iter().flatten() {
            let declared = name
                .as_str()
                .is_some_and(|name| properties.is_some_and(|p| p.contains_key(name)));
            assert!(declared, "{at}: required {name} is not a declared property");
        }
    }
}

/// Whether `value` is an integer JSON number; an out-of-range one is reported here.
fn check_integer(format: Option<&str>, value: &Value, path: &str, out: &mut Vec<String>) -> bool {
    if !(value.is_i64() || value.is_u64()) {
        return false;
    }
    let in_range = match format {
        Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        Some("int64") => value.is_i64(),
        _ => true,
    };
    if !in_range {
        out.push(format!(
            "{}: {value} is out of {} range",
            display(path),
            format.unwrap_or("integer")
        ));
    }
    true
}

fn check_string_format(format: Option<&str>, text: &str, path: &str, out: &mut Vec<String>) {
    let (ok, expected) = match format {
        Some("date-time") => (
            is_date_time(text.as_bytes()),
            "an RFC 3339 date-time with Z or offset",
        ),
        Some("date") => (is_full_date(text.as_bytes()), "a yyyy-MM-dd date"),
        _ => (true, ""),
    };
    if !ok {
        out.push(format!(
            "{}: {} is not {expected}",
            display(path),
            excerpt(&Value::from(text), VALUE_EXCERPT_CHARS)
        ));
    }
}

/// `yyyy-MM-ddTHH:mm:ss[.f{1,9}](Z|+HH:MM|-HH:MM)`, calendar- and clock-checked (no leap seconds).
fn is_date_time(bytes: &[u8]) -> bool {
    if bytes.len() < 20 || bytes[10] != b'T' || !is_full_date(&bytes[..10]) {
        return false;
    }
    let time = &bytes[11..];
    if time[2] != b':' || time[5] != b':' {
        return false;
    }
    let (Some(hour), Some(minute), Some(second)) = (
        number(&time[0..2]),
        number(&time[3..5]),
        number(&time[6..8]),
    ) else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    let mut zone = &time[8..];
    if let Some(fraction) = zone.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return false;
        }
        zone = &fraction[digits..];
    }
    match zone {
        b"Z" => true,
        [b'+' | b'-', hours @ .., b':', m1, m2] if hours.len() == 2 => {
            number(hours).is_some_and(|h| h <= 23) && number(&[*m1, *m2]).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// `yyyy-MM-dd` with a real calendar day.
fn is_full_date(bytes: &[u8]) -> bool {
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (
        number(&bytes[0..4]),
        number(&bytes[5..7]),
        number(&bytes[8..10]),
    ) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

/// The value of a non-empty run of ASCII digits.
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0, |acc, digit| acc * 10 + u32::from(digit - b'0')),
    )
}

fn child_path(path: &str, key: &str) -> String {
    format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn display(path: &str) -> &str {
    if path.is_empty() { "(root)" } else { path }
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("{kind} {}", excerpt(value, VALUE_EXCERPT_CHARS))
}

fn list_enum(allowed: &[Value]) -> String {
    let shown: Vec<String> = allowed
        .iter()
        .take(ENUM_VALUES_SHOWN)
        .map(Value::to_string)
        .collect();
    let more = allowed.len().saturating_sub(ENUM_VALUES_SHOWN);
    if more == 0 {
        format!("[{}]", shown.join(", "))
    } else {
        format!("[{}, … ({more} more)]", shown.join(", "))
    }
}

/// Compact JSON of `value`, cut to `max_chars` characters.
fn excerpt(value: &Value, max_chars: usize) -> String {
    let text = value.to_string();
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
