//! The OpenAPI document, generated from the handlers' annotations, served at
//! `/openapi.json` and as Swagger UI at `/docs` (assets vendored into the binary: no
//! network at build or run time). `openapi/openapi.json` is the committed copy; a test
//! fails when it drifts from what the code generates.

use axum::Router;
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;
use crate::reports::request::refine_document;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key")
                    .build(),
            ),
        );
    }
}

/// What the derive cannot say, said on the document as JSON: the report requests'
/// choice of interval ([`refine_document`]) and an example for every JSON response
/// ([`add_examples`]).
struct Refinements;

impl Modify for Refinements {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut document = serde_json::to_value(&*openapi).expect("the document serialises");
        refine_document(&mut document);
        add_examples(&mut document);
        *openapi = serde_json::from_value(document).expect("the refined document is OpenAPI");
    }
}

/// A problem document as the proxy answers with `status` (the `type`, `title` and a
/// `detail` the handlers give for it).
fn problem_example(status: u16) -> Value {
    let (slug, title, detail) = match status {
        400 => (
            "invalid-request",
            "The request is invalid",
            "last: must be an ISO-8601 duration such as PT15M, PT1H or P7D (months and years are not fixed lengths), not \"15m\"",
        ),
        401 => ("unauthorized", "Unauthorized", "no or unknown API key"),
        403 => (
            "forbidden",
            "Forbidden",
            "this API key lacks the reports:read scope",
        ),
        404 => (
            "not-found",
            "Not found",
            "Genesys Cloud has no conversation 5f1c2b7e-8a4d-4c31-9e0f-2d6b7a9c1e44",
        ),
        413 => (
            "body-too-large",
            "Body too large",
            "the body exceeds 65536 bytes",
        ),
        415 => (
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as application/json",
        ),
        502 => (
            "upstream-bad-response",
            "Genesys Cloud sent an unusable answer",
            "Genesys Cloud answered 500",
        ),
        503 => (
            "upstream-unavailable",
            "Genesys Cloud cannot answer right now",
            "Genesys Cloud cannot answer in time; retry after the given seconds",
        ),
        _ => (
            "timeout",
            "Request timeout",
            "the request took longer than 10 s",
        ),
    };
    let mut problem = json!({
        "type": format!("urn:genesys-proxy:problem:{slug}"),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "5b0e7c3e-3f0a-4a8e-9a49-4f1f2e3d4c5b",
    });
    if status == 400 {
        problem["errors"] = json!([{
            "name": "last",
            "reason": "must be an ISO-8601 duration such as PT15M, PT1H or P7D (months and years are not fixed lengths), not \"15m\"",
        }]);
    }
    if status == 503 {
        problem["retry_after"] = json!(2);
    }
    problem
}

/// A conversation's summary view.
fn conversation_example() -> Value {
    json!({
        "id": "5f1c2b7e-8a4d-4c31-9e0f-2d6b7a9c1e44",
        "state": "ended",
        "start": "2025-03-11T14:02:05Z",
        "end": "2025-03-11T14:09:47Z",
        "duration_seconds": 462,
        "media_types": ["voice"],
        "direction": "inbound",
        "queues": [{"id": "8f2a4c6e-1b3d-4f5a-9c7e-0d2b4f6a8c1e", "name": "Support"}],
        "agents": [{
            "user_id": "0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f",
            "name": "Ada Agent",
            "wrapup": {"code": "3c1d5e7f-9a0b-4c2d-8e6f-1a3b5c7d9e0f", "name": "Resolved"},
        }],
        "participants": [
            {"id": "p-1", "purpose": "customer", "start": "2025-03-11T14:02:05Z", "end": "2025-03-11T14:09:47Z"},
            {"id": "p-2", "purpose": "agent", "name": "Ada Agent",
             "user_id": "0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f",
             "queue_id": "8f2a4c6e-1b3d-4f5a-9c7e-0d2b4f6a8c1e",
             "start": "2025-03-11T14:02:31Z", "connected": "2025-03-11T14:02:38Z",
             "end": "2025-03-11T14:09:47Z"},
        ],
    })
}

/// The example of a successful JSON body, by its schema's name.
fn success_example(schema: &str) -> Option<Value> {
    let interval = json!({"from": "2025-03-10T00:00:00Z", "to": "2025-03-11T00:00:00Z"});
    Some(match schema {
        "ConversationBody" | "ConversationView" => conversation_example(),
        "SearchResponse" => json!({
            "interval": interval,
            "results": [{
                "id": "5f1c2b7e-8a4d-4c31-9e0f-2d6b7a9c1e44",
                "start": "2025-03-10T14:02:05Z",
                "end": "2025-03-10T14:09:47Z",
                "duration_seconds": 462.0,
                "media_type": "voice",
                "direction": "inbound",
                "queue_ids": ["8f2a4c6e-1b3d-4f5a-9c7e-0d2b4f6a8c1e"],
                "user_ids": ["0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f"],
                "wrapup_code": "3c1d5e7f-9a0b-4c2d-8e6f-1a3b5c7d9e0f",
                "division_ids": ["1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6"],
                "handle_seconds": 431.0,
                "talk_seconds": 380.5,
                "hold_seconds": 20.5,
                "acw_seconds": 30.0,
            }],
            "next_cursor": "eyJ2IjoxfQ.c2lnbmF0dXJl",
        }),
        "AggregatesResponseBody" => json!({
            "interval": interval,
            "granularity": "PT1H",
            "series": [{
                "group": {"queue_id": "8f2a4c6e-1b3d-4f5a-9c7e-0d2b4f6a8c1e"},
                "interval": {"from": "2025-03-10T09:00:00Z", "to": "2025-03-10T10:00:00Z"},
                "metrics": {
                    "offered": {"unit": "count", "count": 42},
                    "wait": {"unit": "seconds", "count": 40, "sum": 1260.0, "avg": 31.5, "min": 2.0, "max": 190.0},
                },
            }],
        }),
        _ => return None,
    })
}

/// The body of `GET /admin/cache` as a proxy that has just started answers it (every
/// figure at its start, built from the same types the handler serialises; `shared` is
/// `null` when the proxy runs alone).
fn cache_figures_example() -> Value {
    let cache = crate::cache::CacheStats::default();
    let mut budget = json!(crate::upstream::budget::BudgetStats::default());
    budget["refused"] = crate::upstream::Class::ALL
        .iter()
        .map(|class| (class.as_str().to_owned(), json!(0)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    json!({
        "conversations": cache,
        "reports": crate::reports::ReportStats { pages: cache, aggregates: cache },
        "budget": budget,
        "token": crate::upstream::token::TokenStats::default(),
        "shared": null,
    })
}

/// An `example` for every JSON response that has none: a problem document for every
/// `application/problem+json` answer, for the API's successes a body of their schema, and
/// the admin view of the cache. `tests/openapi.rs` checks each against its schema.
fn add_examples(document: &mut Value) {
    let Some(Value::Object(paths)) = document.get_mut("paths") else {
        return;
    };
    if let Some(Value::Object(body)) = paths
        .get_mut("/admin/cache")
        .and_then(|item| item.pointer_mut("/get/responses/200/content/application~1json"))
    {
        body.insert("example".into(), cache_figures_example());
    }
    for operation in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
    {
        let Some(Value::Object(responses)) = operation.get_mut("responses") else {
            continue;
        };
        for (status, response) in responses.iter_mut() {
            let Some(Value::Object(content)) = response.get_mut("content") else {
                continue;
            };
            for (media_type, body) in content.iter_mut() {
                if body.get("example").is_some() {
                    continue;
                }
                let example = if media_type == "application/problem+json" {
                    status.parse().ok().map(problem_example)
                } else {
                    body["schema"]["$ref"]
                        .as_str()
                        .and_then(|target| target.rsplit('/').next())
                        .and_then(success_example)
                };
                if let Some(example) = example {
                    body["example"] = example;
                }
            }
        }
    }
}

/// The API description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "genesys-proxy",
        description = "One fast, safe door to Genesys Cloud conversation data: real-time conversation lookups and historical reports, with one shared Genesys token, caching, request coalescing and pacing inside Genesys' rate limit. Clients never see a Genesys 429.",
        license(name = "Apache-2.0"),
    ),
    paths(
        super::conversations::get_conversation,
        super::reports::search_post,
        super::reports::search_get,
        super::reports::aggregates_post,
        super::reports::aggregates_get,
        super::ops::healthz,
        super::readiness::readyz,
        super::ops::metrics,
        super::ops::cache_stats,
        super::ops::purge_cache,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&Security, &Refinements),
    tags(
        (name = "conversations", description = "Real-time: the live state of one conversation, by id"),
        (name = "reports", description = "Historical: find conversations by interval and filters, and aggregate metrics"),
        (name = "operations", description = "Health, readiness and administration"),
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `/openapi.json` serves and the committed copy holds).
#[must_use]
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}

/// `/openapi.json` and `/docs`.
pub fn routes() -> Router<AppState> {
    // No online validator: Swagger UI would otherwise send the spec's (internal) URL to
    // validator.swagger.io whenever the page is served under a host name.
    let config = utoipa_swagger_ui::Config::default().validator_url("none");
    Router::new().merge(
        SwaggerUi::new("/docs")
            .url("/openapi.json", ApiDoc::openapi())
            .config(config),
    )
}
