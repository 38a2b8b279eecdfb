//! Real responses match the OpenAPI document the proxy serves: a simulator and a proxy on
//! port 0, requests covering every documented operation and its responses (summary and
//! full views, 304, 400, 401, 403, 404, 413, 415, 502, 503, search pages walked by cursor,
//! aggregates), and each answer checked against `GET /openapi.json` itself: its status is
//! documented for that operation, its content type is a documented one, its JSON body
//! validates (JSON Schema 2020-12, `$ref`s resolved, formats checked) against the schema
//! of that operation and status, its documented headers are present and valid, and it
//! carries no property the document does not declare (objects are read as closed).
//!
//! `?view=full` is Genesys' own `Conversation` document, which the served document does
//! not describe as a schema: it is checked against the official Genesys definition.

mod support;

#[path = "../genesys-sim/tests/support/contract.rs"]
mod contract;

use std::collections::BTreeSet;
use std::sync::Mutex;

use genesys_proxy::auth::{ClientSettings, Scope, hash_key};
use genesys_sim::Faults;
use serde_json::{Value, json};
use support::openapi::{SchemaValidator, operations};
use support::{ADMIN_KEY, REPORTS_KEY, Reply, TestApp, proxy_settings, sim_config};

/// A client with only `conversations:read`.
const VIEWER_KEY: &str = "gp_test_viewer_key_0123456789abcdefghijklmnopqrstuv";
/// An API key no client has.
const UNKNOWN_KEY: &str = "gp_test_unknown_key_0123456789abcdefghijklmnopqrstu";
/// The smallest body limit the proxy accepts (bytes): a larger body gets a 413.
const BODY_LIMIT: usize = 1024;

/// Documented responses this test cannot provoke on purpose: (method, path, status).
const NOT_EXERCISED: [(&str, &str, &str); 1] = [
    // The proxy's own inbound timeout: every upstream wait is bounded below it.
    ("get", "/conversations/{id}", "504"),
];

/// The document as served, with what the test has checked against it.
struct Served {
    document: Value,
    schemas: SchemaValidator,
    checked: Mutex<BTreeSet<(String, String, String)>>,
}

/// The media type of a `Content-Type` value, without parameters.
fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

impl Served {
    async fn fetch(app: &TestApp) -> Self {
        let reply = app.get_with("/openapi.json", "", &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let document = reply.json();
        Self {
            schemas: SchemaValidator::for_document(&document),
            document,
            checked: Mutex::new(BTreeSet::new()),
        }
    }

    /// Asserts `reply` has `status` and is what the served document says `method path`
    /// answers with that status.
    #[track_caller]
    fn expect(&self, method: &str, path: &str, reply: &Reply, status: u16) {
        assert_eq!(
            reply.status,
            status,
            "{} {path}: {}",
            method.to_uppercase(),
            reply.text()
        );
        let operation = &self.document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let status = status.to_string();
        let response = &operation["responses"][&status];
        assert!(
            response.is_object(),
            "{} {path} answered {status}, which its documentation does not list",
            method.to_uppercase()
        );
        let what = format!("{} {path} {status}", method.to_uppercase());
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let value = reply
                .header(name)
                .unwrap_or_else(|| panic!("{what}: the documented header {name} is missing"));
            let schema = &header["schema"];
            let instance = match value.parse::<i64>() {
                Ok(number) if schema["type"] == "integer" => json!(number),
                _ => json!(value),
            };
            let found = self.schemas.violations(schema, &instance);
            assert!(found.is_empty(), "{what}: header {name}: {found:?}");
        }
        match response["content"].as_object() {
            None if matches!(status.as_str(), "204" | "304") => {
                assert!(reply.body.is_empty(), "{what} has no body");
            }
            None => {} // documented without a body schema: the status is all there is to check
            Some(content) => {
                let content_type = reply.header("content-type").unwrap_or_default();
                let declared = content.get(essence(&content_type)).unwrap_or_else(|| {
                    panic!(
                        "{what}: content type {content_type:?} is not one of the documented {:?}",
                        content.keys().collect::<Vec<_>>()
                    )
                });
                if let Some(schema) = declared.get("schema") {
                    let found = self.schemas.violations(schema, &reply.json());
                    assert!(
                        found.is_empty(),
                        "{what}: the body does not match the served schema {schema}:\n  {}\nbody: {}",
                        found.join("\n  "),
                        reply.text()
                    );
                }
            }
        }
        self.checked
            .lock()
            .expect("checked")
            .insert((method.to_owned(), path.to_owned(), status));
    }

    /// Every documented response was checked, but the few listed in [`NOT_EXERCISED`].
    fn assert_every_documented_response_was_checked(&self) {
        let checked = self.checked.lock().expect("checked");
        let mut missing = Vec::new();
        for operation in operations(&self.document) {
            for (status, _) in operation.responses() {
                let key = (operation.method, operation.path, status);
                let was_checked = checked.contains(&(key.0.into(), key.1.into(), key.2.into()));
                if !was_checked && !NOT_EXERCISED.contains(&key) {
                    missing.push(format!("{} {status}", operation.what()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "documented responses no request checked (add a case, or list it in NOT_EXERCISED): {missing:?}"
        );
    }
}

fn settings() -> genesys_proxy::Settings {
    let mut settings = proxy_settings();
    settings.server.body_limit_bytes = BODY_LIMIT;
    settings.clients.push(ClientSettings {
        name: "viewer".into(),
        key_sha256: hash_key(VIEWER_KEY),
        scopes: vec![Scope::ConversationsRead],
        weight: 1,
    });
    settings
}

/// Sends `method path` with `key` (none when empty), an optional body and its content type.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<(&str, Vec<u8>)>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = app.http.request(method, format!("{}{path}", app.base));
    if !key.is_empty() {
        request = request.bearer_auth(key);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    Reply::read(response).await
}

fn json_body(value: &Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", value.to_string().into_bytes()))
}

/// The four report operations: (method, path).
const REPORT_OPERATIONS: [(&str, &str); 4] = [
    ("get", "/reports/search"),
    ("post", "/reports/search"),
    ("get", "/reports/aggregates"),
    ("post", "/reports/aggregates"),
];

/// A report request by `method` with `fields` (query parameters for GET, a JSON body for
/// POST) as `key`.
async fn report(app: &TestApp, method: &str, path: &str, fields: &Value, key: &str) -> Reply {
    if method == "get" {
        let query: Vec<String> = fields
            .as_object()
            .expect("fields")
            .iter()
            .map(|(name, value)| match value {
                Value::Array(items) => format!(
                    "{name}={}",
                    items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Value::String(text) => format!("{name}={text}"),
                other => format!("{name}={other}"),
            })
            .collect();
        send(
            app,
            reqwest::Method::GET,
            &format!("{path}?{}", query.join("&")),
            key,
            None,
            &[],
        )
        .await
    } else {
        send(
            app,
            reqwest::Method::POST,
            path,
            key,
            json_body(fields),
            &[],
        )
        .await
    }
}

/// Valid fields of a request to `path` (a search over 8 days, or aggregates per queue and
/// day).
fn valid_fields(path: &str) -> Value {
    let (from, to) = ("2025-03-03T00:00:00Z", "2025-03-11T00:00:00Z");
    if path == "/reports/search" {
        json!({"from": from, "to": to, "page_size": 7})
    } else {
        json!({"from": from, "to": to, "granularity": "P1D", "group_by": ["queue_id", "media_type"], "metrics": ["offered", "handle", "wait"]})
    }
}

#[tokio::test]
async fn every_documented_response_matches_the_served_schema() {
    let app = TestApp::start(sim_config(), settings()).await;
    let served = Served::fetch(&app).await;
    let (ended, live) = (app.ended_id(), app.live_id());
    let conversation = "/conversations/{id}";

    // Conversations: both views, 304, every refusal.
    let summary = app.get(&format!("/conversations/{ended}")).await;
    served.expect("get", conversation, &summary, 200);
    let live_summary = app
        .get(&format!("/conversations/{live}?view=summary"))
        .await;
    served.expect("get", conversation, &live_summary, 200);
    assert_eq!(live_summary.json()["state"], "active");
    let full = app.get(&format!("/conversations/{ended}?view=full")).await;
    assert_eq!(full.status, 200, "{}", full.text());
    contract::Contract::load().assert_valid("Conversation", &full.json());
    let etag = summary.header("etag").expect("an ETag");
    let unchanged = app
        .get_with(
            &format!("/conversations/{ended}"),
            ADMIN_KEY,
            &[("if-none-match", &etag)],
        )
        .await;
    served.expect("get", conversation, &unchanged, 304);
    let not_uuid = app.get("/conversations/not-a-uuid").await;
    served.expect("get", conversation, &not_uuid, 400);
    let bad_view = app
        .get(&format!("/conversations/{ended}?view=everything"))
        .await;
    served.expect("get", conversation, &bad_view, 400);
    let anonymous = app
        .get_with(&format!("/conversations/{ended}"), "", &[])
        .await;
    served.expect("get", conversation, &anonymous, 401);
    let unknown_key = app
        .get_with(&format!("/conversations/{ended}"), UNKNOWN_KEY, &[])
        .await;
    served.expect("get", conversation, &unknown_key, 401);
    let no_scope = app
        .get_with(&format!("/conversations/{ended}"), REPORTS_KEY, &[])
        .await;
    served.expect("get", conversation, &no_scope, 403);
    let missing = app
        .get(&format!("/conversations/{}", uuid::Uuid::new_v4()))
        .await;
    served.expect("get", conversation, &missing, 404);

    // Reports: pages walked by cursor (with hydration), aggregates, every refusal.
    // Two days in pages of 10, each hit hydrated: well inside the simulator's rate limit.
    let mut fields = json!({"from": "2025-03-09T00:00:00Z", "to": "2025-03-11T00:00:00Z",
        "page_size": 10, "include": "conversation"});
    let mut pages = 0;
    loop {
        let page = app.post("/reports/search", &fields).await;
        served.expect("post", "/reports/search", &page, 200);
        pages += 1;
        let body = page.json();
        assert!(!body["results"].as_array().expect("results").is_empty());
        match body["next_cursor"].as_str() {
            Some(cursor) => fields["cursor"] = json!(cursor),
            None => {
                assert!(body["total_hits"].is_u64(), "the last page counts");
                break;
            }
        }
        assert!(pages < 50, "the walk ends");
    }
    assert!(pages > 2, "a walk of several pages ({pages})");
    let last = report(
        &app,
        "get",
        "/reports/search",
        &json!({"last": "PT15M"}),
        ADMIN_KEY,
    )
    .await;
    served.expect("get", "/reports/search", &last, 200);
    for (method, path) in REPORT_OPERATIONS {
        let fields = valid_fields(path);
        let ok = report(&app, method, path, &fields, REPORTS_KEY).await;
        served.expect(method, path, &ok, 200);
        let mut invalid = fields.clone();
        invalid["page_size"] = json!(0);
        invalid["to"] = json!("not a time");
        let refused = report(&app, method, path, &invalid, REPORTS_KEY).await;
        served.expect(method, path, &refused, 400);
        assert!(
            refused.json()["errors"]
                .as_array()
                .is_some_and(|e| e.len() >= 2)
        );
        let anonymous = report(&app, method, path, &fields, "").await;
        served.expect(method, path, &anonymous, 401);
        let no_scope = report(&app, method, path, &fields, VIEWER_KEY).await;
        served.expect(method, path, &no_scope, 403);
        if method == "post" {
            let too_big =
                json!({"from": "2025-03-03T00:00:00Z", "padding": "x".repeat(BODY_LIMIT)});
            let too_big = send(
                &app,
                reqwest::Method::POST,
                path,
                REPORTS_KEY,
                json_body(&too_big),
                &[],
            )
            .await;
            served.expect(method, path, &too_big, 413);
            let form = Some(("text/plain", b"from=2025-03-03".to_vec()));
            let not_json = send(&app, reqwest::Method::POST, path, REPORTS_KEY, form, &[]).await;
            served.expect(method, path, &not_json, 415);
        }
    }

    // Operations.
    served.expect(
        "get",
        "/healthz",
        &app.get_with("/healthz", "", &[]).await,
        200,
    );
    served.expect(
        "get",
        "/readyz",
        &app.get_with("/readyz", "", &[]).await,
        200,
    );
    served.expect(
        "get",
        "/metrics",
        &app.get_with("/metrics", "", &[]).await,
        200,
    );
    served.expect("get", "/admin/cache", &app.get("/admin/cache").await, 200);
    for (method, verb) in [
        ("get", reqwest::Method::GET),
        ("delete", reqwest::Method::DELETE),
    ] {
        let anonymous = send(&app, verb.clone(), "/admin/cache", "", None, &[]).await;
        served.expect(method, "/admin/cache", &anonymous, 401);
        let no_scope = send(&app, verb, "/admin/cache", REPORTS_KEY, None, &[]).await;
        served.expect(method, "/admin/cache", &no_scope, 403);
    }
    let purged = send(
        &app,
        reqwest::Method::DELETE,
        "/admin/cache",
        ADMIN_KEY,
        None,
        &[],
    )
    .await;
    served.expect("delete", "/admin/cache", &purged, 204);

    // Genesys refuses the proxy (502), then is down (503): nothing is cached any more.
    for (faults, status) in [
        (
            Faults {
                forbidden: true,
                ..Faults::default()
            },
            502,
        ),
        (
            Faults {
                outage: true,
                ..Faults::default()
            },
            503,
        ),
    ] {
        app.sim.set_faults(faults);
        let uncached = app
            .get(&format!(
                "/conversations/{}",
                app.sim.data().conversations[3].id
            ))
            .await;
        served.expect("get", conversation, &uncached, status);
        for (method, path) in REPORT_OPERATIONS {
            let mut fields = valid_fields(path);
            fields["from"] = json!(format!("2025-03-0{}T00:00:00Z", status - 500));
            let failed = report(&app, method, path, &fields, ADMIN_KEY).await;
            served.expect(method, path, &failed, status);
        }
    }
    app.sim.set_faults(Faults::default());

    // A proxy that cannot get a Genesys token is not ready.
    let unready = TestApp::start(sim_config(), settings()).await;
    unready.sim.set_faults(Faults {
        login_outage: true,
        ..Faults::default()
    });
    let not_ready = unready.get_with("/readyz", "", &[]).await;
    served.expect("get", "/readyz", &not_ready, 503);

    served.assert_every_documented_response_was_checked();
}

#[test]
fn closing_objects_turns_an_undeclared_property_into_a_violation() {
    let schemas = SchemaValidator::for_document(&json!({"components": {"schemas": {"Thing": {
        "type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}
    }}}}));
    let schema = json!({"$ref": "#/components/schemas/Thing"});
    assert!(schemas.violations(&schema, &json!({"id": "a"})).is_empty());
    assert_eq!(
        schemas
            .violations(&schema, &json!({"id": "a", "extra": 1}))
            .len(),
        1
    );
    assert_eq!(schemas.violations(&schema, &json!({})).len(), 1);
}
