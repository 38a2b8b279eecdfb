//! The OpenAPI document, generated from the handlers' annotations, served at
//! `/openapi.json` and as Swagger UI at `/docs` (assets vendored into the binary: no
//! network at build or run time). `openapi/openapi.json` is the committed copy; a test
//! fails when it drifts from what the code generates.

use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;

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
    modifiers(&Security),
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
