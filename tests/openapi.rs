//! The OpenAPI document: the committed `openapi/openapi.json` is exactly what the code
//! generates (regenerate it with `UPDATE_OPENAPI=1 cargo test --test openapi`; under CI,
//! where `CI` is set, that update mode fails instead of rewriting), the proxy
//! serves that same document at `/openapi.json`, and the document is complete: OpenAPI 3.1,
//! every route present, every API operation answering its errors as
//! `application/problem+json`, every authenticated operation naming the `api_key` and
//! `bearer` schemes, and every `$ref` resolving. Real responses are checked against the
//! served document in `openapi_responses.rs`.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::TestApp;
use support::openapi::{SchemaValidator, operations};

/// The environment variable that makes the drift test rewrite the committed copy (outside
/// CI only).
const UPDATE: &str = "UPDATE_OPENAPI";

/// The operations every client relies on: (method, path).
const API_OPERATIONS: [(&str, &str); 5] = [
    ("get", "/conversations/{id}"),
    ("get", "/reports/search"),
    ("post", "/reports/search"),
    ("get", "/reports/aggregates"),
    ("post", "/reports/aggregates"),
];

/// Operations that need an API key besides the API ones.
const ADMIN_OPERATIONS: [(&str, &str); 2] = [("get", "/admin/cache"), ("delete", "/admin/cache")];

/// Probes, open to anyone.
const PROBES: [(&str, &str); 2] = [("get", "/healthz"), ("get", "/readyz")];

const PROBLEM_JSON: &str = "application/problem+json";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")
}

fn document() -> Value {
    serde_json::from_str(&genesys_proxy::routes::docs::openapi_json())
        .expect("the generated document is JSON")
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &doc["paths"][path][method];
    assert!(
        operation.is_object(),
        "{} {path} is not in the document",
        method.to_uppercase()
    );
    operation
}

/// What the drift check did.
#[derive(Debug, PartialEq, Eq)]
enum Drift {
    UpToDate,
    Rewritten,
}

/// Compares `generated` with the committed copy at `path`; in update mode, rewrites the
/// copy instead, except under CI, where update mode is refused: CI must check the
/// committed document, never regenerate it and pass.
fn check_drift(generated: &str, path: &Path, update: bool, ci: bool) -> Result<Drift, String> {
    let regenerate = format!(
        "regenerate it with `{UPDATE}=1 cargo test --test openapi`, review the diff and commit openapi/openapi.json"
    );
    if update && ci {
        return Err(format!(
            "{UPDATE} is set under CI (the CI variable is set): CI checks the committed openapi/openapi.json and never rewrites it. Unset {UPDATE} here; to refresh the copy, run `{UPDATE}=1 cargo test --test openapi` on your machine, review the diff and commit openapi/openapi.json"
        ));
    }
    if update {
        std::fs::create_dir_all(path.parent().expect("a parent directory"))
            .map_err(|e| format!("{} cannot be created: {e}", path.display()))?;
        std::fs::write(path, format!("{generated}\n"))
            .map_err(|e| format!("{} cannot be written: {e}", path.display()))?;
        return Ok(Drift::Rewritten);
    }
    let committed = std::fs::read_to_string(path)
        .map_err(|e| format!("{} cannot be read ({e}): {regenerate}", path.display()))?;
    let committed = committed.replace("\r\n", "\n");
    let committed = committed.strip_suffix('\n').unwrap_or(&committed);
    if committed == generated {
        return Ok(Drift::UpToDate);
    }
    let first = committed
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    Err(format!(
        "openapi/openapi.json is out of date with the code (first difference at line {}: committed {:?}, generated {:?}): {regenerate}",
        first + 1,
        committed.lines().nth(first).unwrap_or("<end of file>"),
        generated.lines().nth(first).unwrap_or("<end of file>"),
    ))
}

#[test]
fn the_committed_document_is_what_the_code_generates() {
    let update = std::env::var_os(UPDATE).is_some_and(|v| !v.is_empty() && v != "0");
    let ci = std::env::var_os("CI").is_some();
    let path = committed_path();
    match check_drift(
        &genesys_proxy::routes::docs::openapi_json(),
        &path,
        update,
        ci,
    ) {
        Ok(Drift::Rewritten) => println!("wrote {}", path.display()),
        Ok(Drift::UpToDate) => {}
        Err(message) => panic!("{message}"),
    }
}

#[test]
fn update_mode_rewrites_the_copy_outside_ci_and_is_refused_under_ci() {
    let dir = std::env::temp_dir().join(format!("openapi-drift-{}", std::process::id()));
    let path = dir.join("openapi.json");
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    std::fs::write(&path, "{\"stale\": true}\n").expect("a stale copy");
    let read = || std::fs::read_to_string(&path).expect("the copy");

    let refused = check_drift("{}", &path, true, true).expect_err("refused under CI");
    assert!(
        refused.contains(UPDATE) && refused.contains("CI"),
        "{refused}"
    );
    assert_eq!(
        read(),
        "{\"stale\": true}\n",
        "nothing was rewritten under CI"
    );
    let stale = check_drift("{}", &path, false, true).expect_err("a stale copy fails");
    assert!(stale.contains("out of date"), "{stale}");

    assert_eq!(check_drift("{}", &path, true, false), Ok(Drift::Rewritten));
    assert_eq!(read(), "{}\n");
    assert_eq!(check_drift("{}", &path, false, true), Ok(Drift::UpToDate));
    std::fs::remove_dir_all(&dir).expect("the scratch directory is removed");
}

#[tokio::test]
async fn the_proxy_serves_the_generated_document() {
    let app = TestApp::default_app().await;
    let reply = app.get_with("/openapi.json", "", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), document());
}

#[test]
fn the_document_is_openapi_3_1_and_titled() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["title"], "genesys-proxy");
    assert!(doc["info"]["description"].is_string());
}

#[test]
fn every_route_is_in_the_document() {
    let doc = document();
    for (method, path) in API_OPERATIONS
        .iter()
        .chain(&ADMIN_OPERATIONS)
        .chain(&PROBES)
    {
        let operation = operation(&doc, method, path);
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has a summary"
        );
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| r.keys().any(|status| status.starts_with('2'))),
            "{method} {path} documents its success"
        );
    }
    let mut ids: Vec<&str> = operations(&doc)
        .filter_map(|op| op.value["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique");
}

#[test]
fn every_api_operation_answers_its_errors_as_problem_json() {
    let doc = document();
    for (method, path) in API_OPERATIONS {
        let responses = operation(&doc, method, path)["responses"]
            .as_object()
            .expect("responses");
        for required in ["400", "401", "403"] {
            assert!(
                responses.contains_key(required),
                "{method} {path} documents {required}"
            );
        }
        for (status, response) in responses {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            let content = response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} {status} has no content"));
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                vec![PROBLEM_JSON],
                "{method} {path} {status} is problem+json"
            );
            assert_eq!(
                content[PROBLEM_JSON]["schema"]["$ref"], "#/components/schemas/Problem",
                "{method} {path} {status} is a Problem"
            );
        }
    }
}

#[test]
fn every_authenticated_operation_accepts_an_api_key_or_a_bearer_token() {
    let doc = document();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    for (method, path) in API_OPERATIONS.iter().chain(&ADMIN_OPERATIONS) {
        let security = operation(&doc, method, path)["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} declares its security"));
        let names: Vec<&str> = security
            .iter()
            .flat_map(|requirement| requirement.as_object().expect("a requirement").keys())
            .map(String::as_str)
            .collect();
        assert_eq!(names, ["api_key", "bearer"], "{method} {path}");
    }
    for (method, path) in PROBES {
        assert!(
            operation(&doc, method, path)["security"].is_null(),
            "{method} {path} is open (probes carry no key)"
        );
    }
}

fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(value, out),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                refs(item, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_schema_reference_resolves() {
    let doc = document();
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{target} points into components/schemas"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{target} resolves"
        );
    }
}

/// Every JSON response of the API operations, and every problem answer of any operation,
/// has an example, and every response example is valid against its schema: a generated
/// client's fixtures and the docs page show what the proxy really sends.
#[test]
fn every_response_example_is_valid_against_its_schema() {
    let doc = document();
    let schemas = SchemaValidator::for_document(&doc);
    let mut checked = 0;
    for operation in operations(&doc) {
        let api = API_OPERATIONS.contains(&(operation.method, operation.path));
        for (status, media_type, content) in operation.response_bodies() {
            let what = format!("{} {status} {media_type}", operation.what());
            let json = media_type.ends_with("json");
            let Some(example) = content.get("example") else {
                assert!(
                    !(json && (api || media_type == PROBLEM_JSON)),
                    "{what} has no example"
                );
                continue;
            };
            let found = schemas.violations(&content["schema"], example);
            assert!(
                found.is_empty(),
                "{what}: its example {example} is invalid: {found:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked} examples checked");
}

fn is_text(value: &Value) -> bool {
    value.as_str().is_some_and(|text| !text.trim().is_empty())
}

/// Whether a property's schema says what it means: a description of its own, or, for a
/// choice (`oneOf`, `anyOf`, `allOf`, such as utoipa's `[{$ref, description}, null]` for
/// an optional field), a description on every branch but `null`. A bare `$ref` is NOT
/// enough: utoipa writes a field's doc comment beside the `$ref` (OpenAPI 3.1 allows it),
/// and what a field means in its object (the interval searched, a bucket) is not what its
/// type means (a time range), so the field must say it.
fn property_is_described(schema: &Value) -> bool {
    if is_text(&schema["description"]) {
        return true;
    }
    let branches: Vec<&Value> = ["oneOf", "anyOf", "allOf"]
        .iter()
        .filter_map(|key| schema[key].as_array())
        .flatten()
        .filter(|branch| branch["type"] != "null")
        .collect();
    !branches.is_empty() && branches.into_iter().all(property_is_described)
}

/// Appends to `out` every property of `schema`, at any depth (inside properties, `items`,
/// `prefixItems`, `additionalProperties`, `oneOf`/`anyOf`/`allOf`, `not`), that is not
/// described, named from `at`.
fn undescribed_properties(schema: &Value, at: &str, out: &mut Vec<String>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    for (name, property) in map
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let at = format!("{at}.{name}");
        if !property_is_described(property) {
            out.push(format!("property {at}"));
        }
        undescribed_properties(property, &at, out);
    }
    for key in ["oneOf", "anyOf", "allOf", "prefixItems"] {
        for (i, branch) in map
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            undescribed_properties(branch, &format!("{at}.{key}[{i}]"), out);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(inner) = map.get(key) {
            undescribed_properties(inner, &format!("{at}.{key}"), out);
        }
    }
}

/// Everything of `doc` that a reader would find unexplained: an operation without a
/// one-line summary or a description, a parameter without a description, a component
/// schema without a description, and any property (of a component, a parameter, a request
/// or a response body, at any depth) without one.
fn undescribed(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for op in operations(doc) {
        let (what, operation) = (op.what(), op.value);
        let summary = &operation["summary"];
        if !is_text(summary) || summary.as_str().is_some_and(|s| s.contains('\n')) {
            out.push(format!("{what}: a one-line summary"));
        }
        if !is_text(&operation["description"]) {
            out.push(format!("{what}: a description"));
        }
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().unwrap_or("?");
            if !is_text(&parameter["description"]) {
                out.push(format!("{what}: parameter {name}"));
            }
            undescribed_properties(&parameter["schema"], &format!("{what} {name}"), &mut out);
        }
        let bodies = operation["requestBody"]["content"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(media_type, body)| (format!("{what} body {media_type}"), body));
        let responses = op
            .response_bodies()
            .map(|(status, media_type, body)| (format!("{what} {status} {media_type}"), body));
        for (at, body) in bodies.chain(responses) {
            undescribed_properties(&body["schema"], &at, &mut out);
        }
    }
    for (name, schema) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !is_text(&schema["description"]) {
            out.push(format!("schema {name}"));
        }
        undescribed_properties(schema, name, &mut out);
    }
    out
}

/// Every operation has a one-line summary and a description, and every parameter, every
/// component schema and every property at any depth a description: a generated client's
/// docstrings and the docs page say what each operation does and what each value means.
#[test]
fn every_operation_parameter_and_schema_is_described() {
    let doc = document();
    assert!(
        doc["components"]["schemas"]
            .as_object()
            .is_some_and(|s| s.len() > 10)
    );
    let missing = undescribed(&doc);
    assert!(missing.is_empty(), "not described: {missing:#?}");
}

/// The check above finds what is missing wherever it hides: a property nested in a choice,
/// in an array's items, in an inline response object, a bare `$ref` property, and an
/// operation or parameter without a description.
#[test]
fn the_description_check_finds_what_is_missing() {
    let doc = serde_json::json!({
        "paths": {"/x": {"get": {
            "summary": "Two\nlines",
            "parameters": [{"name": "p", "schema": {"type": "string"}}],
            "responses": {"200": {"content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"inline": {"type": "string"}},
            }}}}},
        }}},
        "components": {"schemas": {
            "Described": {
                "description": "A described schema.",
                "properties": {
                    "ok": {"type": "string", "description": "Said."},
                    "optional": {"oneOf": [{"$ref": "#/components/schemas/Bare", "description": "Said."}, {"type": "null"}]},
                    "bare_ref": {"$ref": "#/components/schemas/Described"},
                    "list": {"type": "array", "description": "Said.", "items": {"type": "object", "properties": {"deep": {"type": "integer"}}}},
                    "choice": {"description": "Said.", "oneOf": [{"type": "object", "properties": {"in_choice": {"type": "integer"}}}]},
                },
            },
            "Bare": {"type": "object"},
        }},
    });
    assert_eq!(
        undescribed(&doc),
        [
            "GET /x: a one-line summary",
            "GET /x: a description",
            "GET /x: parameter p",
            "property GET /x 200 application/json.inline",
            "property Described.bare_ref",
            "property Described.list.items.deep",
            "property Described.choice.oneOf[0].in_choice",
            "schema Bare",
        ]
    );
}

/// The choice of interval is the document's: each report body is one of two closed
/// objects, `from` and `to` or `last`, and the GET forms take the same choice as one
/// exploded `interval` parameter; durations carry the parser's own pattern.
#[test]
fn the_report_interval_is_from_and_to_or_last_in_every_form() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    for (body, from_to, last) in [
        ("SearchRequest", "SearchFromTo", "SearchLast"),
        ("AggregatesRequest", "AggregatesFromTo", "AggregatesLast"),
    ] {
        let choices: Vec<&str> = schemas[body]["oneOf"]
            .as_array()
            .expect("a choice")
            .iter()
            .filter_map(|choice| choice["$ref"].as_str())
            .collect();
        assert_eq!(
            choices,
            [
                format!("#/components/schemas/{from_to}"),
                format!("#/components/schemas/{last}")
            ]
        );
        for (variant, present, absent) in [(from_to, "from", "last"), (last, "last", "from")] {
            let schema = &schemas[variant];
            assert_eq!(schema["additionalProperties"], false, "{variant} is closed");
            assert!(
                schema["properties"][present].is_object(),
                "{variant}.{present}"
            );
            assert!(
                schema["properties"][absent].is_null(),
                "{variant} has no {absent}"
            );
            assert!(
                schema["required"]
                    .as_array()
                    .expect("required")
                    .contains(&present.into()),
                "{variant} requires {present}"
            );
        }
    }
    for path in ["/reports/search", "/reports/aggregates"] {
        let names: Vec<&str> = operation(&doc, "get", path)["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|parameter| parameter["name"].as_str())
            .collect();
        assert_eq!(names.first(), Some(&"interval"), "GET {path}");
        assert!(
            !names
                .iter()
                .any(|name| ["from", "to", "last"].contains(name))
        );
    }
    assert_eq!(
        schemas["IsoDuration"]["pattern"],
        genesys_proxy::reports::interval::DURATION_PATTERN
    );
    assert_eq!(
        schemas["IsoMinutes"]["pattern"],
        genesys_proxy::reports::interval::MINUTES_PATTERN
    );
}
