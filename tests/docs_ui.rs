//! `/docs` works in a real browser, offline: the demo proxy runs in-process (as in
//! `tests/demo.rs`), headless Chromium opens the docs link the demo banner prints, and the
//! rendered page shows Swagger UI with the proxy's own OpenAPI document loaded: its title,
//! and one operation block per documented operation, each with its method and path.
//! Chromium may resolve no host name, so every asset must come from the proxy itself.
//! And Swagger UI's "Try it out" works: driven through playwright-core (scripts/docs-ui,
//! pinned by its package-lock.json, installed with `npm ci` into target/docs-ui on first
//! use), the page authorizes with the demo's API key and executes
//! `GET /conversations/{id}`, showing the 200 and the conversation, the request carrying
//! the key, and nothing requested from anywhere but the proxy.
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium`), and for "Try it out" Node.js
//! with npm. Without them the tests print "skipped: ... not installed" and pass, except
//! under CI (`CI` set), where they fail.
//!
//! Only with the `demo` feature (the default): a build without it has no demo to start.
//! (A file-level `cfg` rather than `[[test]] required-features`: a `[[test]]` entry in
//! Cargo.toml makes cargo look for this file, which the container build does not copy.)
#![cfg(feature = "demo")]

mod support;

use support::browser::{self, Load, chromium};

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

/// Loads `url` in headless Chromium (tests/support/browser.rs) and returns the DOM once
/// the page has settled. `resolver_rules` is Chromium's `--host-resolver-rules`: the tests
/// let it resolve no name but the proxy's, so the page works offline or not at all.
async fn render(chromium: &Path, url: &str, resolver_rules: &str) -> String {
    browser::render(
        chromium,
        &Load {
            url,
            resolver_rules,
            virtual_time_ms: 10_000,
        },
    )
    .await
}

/// The demo proxy on port 0, and the docs link, API key and a live conversation its
/// banner prints.
struct DemoProxy {
    /// Keeps the demo running while the browser loads the page.
    _run: support::DemoRun,
    docs_url: String,
    port: u16,
    key: String,
    conversation: String,
}

async fn demo_proxy() -> DemoProxy {
    let run = support::start_demo().await;
    let docs_url = run
        .banner
        .lines()
        .find_map(|line| line.trim().strip_prefix("API docs: "))
        .unwrap_or_else(|| panic!("the banner links the docs: {}", run.banner))
        .to_owned();
    assert_eq!(docs_url, format!("http://{}/docs", run.address));
    let port = run.address.port();
    let line_after = |prefix: &str| {
        run.banner
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("the banner has {prefix}: {}", run.banner))
            .to_owned()
    };
    let key = line_after("demo API key (all scopes):");
    let conversation = line_after("live conversations:");
    DemoProxy {
        _run: run,
        docs_url,
        port,
        key,
        conversation,
    }
}

/// Node.js and the "Try it out" driver, `try-it-out.mjs`, in target/docs-ui with its pinned
/// playwright-core (`npm ci` from scripts/docs-ui's lock file, again whenever that file
/// changes). `None`: skipped (no Node.js or npm outside CI).
fn try_it_out_driver() -> Option<(PathBuf, PathBuf)> {
    let node = support::installed("node", "apt-get install -y nodejs npm")?;
    let npm = support::installed("npm", "apt-get install -y nodejs npm")?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let source = root.join("scripts/docs-ui");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let dir = target.join("docs-ui");
    std::fs::create_dir_all(&dir).expect("target/docs-ui is created");
    for file in ["package.json", "package-lock.json", "try-it-out.mjs"] {
        std::fs::copy(source.join(file), dir.join(file))
            .unwrap_or_else(|e| panic!("scripts/docs-ui/{file} is copied: {e}"));
    }
    let lock = std::fs::read(dir.join("package-lock.json")).expect("the lock file");
    let stamp = dir.join("node_modules/.installed-lock");
    if std::fs::read(&stamp).ok().as_ref() != Some(&lock) {
        let status = std::process::Command::new(npm)
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--loglevel=error",
            ])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(
            status.success(),
            "npm ci in {} failed: {status}",
            dir.display()
        );
        std::fs::write(&stamp, &lock).expect("the install is stamped");
    }
    Some((node, dir.join("try-it-out.mjs")))
}

/// Every operation of the generated document: (method, path, tag, operation id).
fn operations() -> Vec<(String, String, String, String)> {
    let doc: Value = serde_json::from_str(&genesys_proxy::routes::docs::openapi_json())
        .expect("the document is JSON");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            out.push((
                method.clone(),
                path.clone(),
                operation["tags"][0]
                    .as_str()
                    .unwrap_or("default")
                    .to_owned(),
                operation["operationId"]
                    .as_str()
                    .expect("an operation id")
                    .to_owned(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn the_docs_link_of_the_demo_banner_renders_swagger_ui_with_the_api_loaded_offline() {
    let Some(chromium) = chromium() else {
        return;
    };
    let proxy = demo_proxy().await;
    // No host name resolves: only the proxy, by its IP address, can serve the page.
    let dom = render(
        &chromium,
        &proxy.docs_url,
        "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    )
    .await;

    assert!(
        dom.contains(r#"<div class="swagger-ui">"#) || dom.contains(r#"class="swagger-ui""#),
        "Swagger UI mounted: {dom}"
    );
    assert!(
        !dom.contains("Failed to load API definition"),
        "the document loaded: {dom}"
    );
    assert!(
        dom.contains(r#"class="title">genesys-proxy"#),
        "the API's title is shown (so /openapi.json was fetched and rendered): {dom}"
    );
    assert!(dom.contains("OAS 3.1"), "the version stamp is shown: {dom}");
    let operations = operations();
    assert!(operations.len() >= 9, "{operations:?}");
    for (method, path, tag, id) in &operations {
        let block = format!(r#"<div class="opblock opblock-{method}" id="operations-{tag}-{id}">"#);
        let at = dom
            .find(&block)
            .unwrap_or_else(|| panic!("no operation block for {method} {path} ({block}): {dom}"));
        let summary = &dom[at..];
        let shown_path = summary
            .split_once(r#"class="opblock-summary-path" data-path=""#)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(shown, _)| shown);
        assert_eq!(
            shown_path,
            Some(path.as_str()),
            "the block of {method} {path} shows its path"
        );
    }
    assert!(dom.contains(r#"data-path="/conversations/{id}""#));
}

#[tokio::test]
async fn the_docs_page_served_under_a_host_name_calls_no_third_party() {
    let Some(chromium) = chromium() else {
        return;
    };
    let proxy = demo_proxy().await;
    // As in production: a real host name (which Swagger UI treats differently from
    // localhost), mapped to the proxy; every other name fails to resolve.
    let host = "genesys-proxy.test";
    let rules = format!("MAP {host}:80 127.0.0.1:{}, MAP * ~NOTFOUND", proxy.port);
    let dom = render(&chromium, &format!("http://{host}/docs"), &rules).await;
    assert!(
        dom.contains(r#"class="title">genesys-proxy"#),
        "the document loaded: {dom}"
    );
    assert!(
        !dom.contains("validator.swagger.io"),
        "the page sends the document's URL to swagger.io's online validator (and shows a broken badge offline); set validator_url(\"none\") in src/routes/docs.rs"
    );
}

#[tokio::test]
async fn try_it_out_authorizes_with_the_api_key_and_executes_a_request_from_the_page() {
    let Some(chromium) = chromium() else {
        return;
    };
    let Some((node, driver)) = try_it_out_driver() else {
        return;
    };
    let proxy = demo_proxy().await;
    let mut command = tokio::process::Command::new(node);
    command
        .arg(&driver)
        .args([&proxy.docs_url, &proxy.key, &proxy.conversation])
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let output = browser::output_within_timeout(command, "Try it out (node)").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Try it out failed ({}): {}{}",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the driver prints one JSON line ({e}): {stdout}"));
    assert_eq!(shown["status"], "200", "the page shows a 200: {shown}");
    assert_eq!(
        shown["sentKey"], true,
        "the request carried the key given to Authorize: {shown}"
    );
    assert_eq!(
        shown["elsewhere"],
        serde_json::json!([]),
        "nothing was requested from anywhere but the proxy: {shown}"
    );
    let body: Value = serde_json::from_str(shown["body"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the page shows the JSON body ({e}): {shown}"));
    assert_eq!(body["id"], proxy.conversation.as_str(), "{body}");
    assert_eq!(body["state"], "active", "{body}");
}
