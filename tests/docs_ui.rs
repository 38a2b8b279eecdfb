//! `/docs` works in a real browser, offline: the demo proxy runs in-process (as in
//! `tests/demo.rs`), headless Chromium opens the docs link the demo banner prints, and the
//! rendered page shows Swagger UI with the proxy's own OpenAPI document loaded: its title,
//! and one operation block per documented operation, each with its method and path.
//! Chromium may resolve no host name, so every asset must come from the proxy itself.
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium`). Without it the tests print
//! "skipped: chromium not installed" and pass, except under CI (`CI` set), where they fail.
//!
//! Only with the `demo` feature (the default): a build without it has no demo to start.
//! (A file-level `cfg` rather than `[[test]] required-features`: a `[[test]]` entry in
//! Cargo.toml makes cargo look for this file, which the container build does not copy.)
#![cfg(feature = "demo")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Longest a Chromium run may take before it is killed: a guard against a hung browser,
/// not a timing claim. A page load takes about 2 s on an idle 2-core machine; 15 s was
/// exceeded on a loaded one (load average 24), so the guard is generous.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// Chromium: `/usr/bin/chromium`, or `chromium` on `PATH`. `None` means the caller must
/// return (skipped); under CI its absence fails the test.
fn chromium() -> Option<PathBuf> {
    let candidates = std::iter::once(PathBuf::from("/usr/bin/chromium")).chain(
        std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("chromium"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    for candidate in candidates {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "chromium is not installed: install chromium (apt-get install -y chromium)"
    );
    println!("skipped: chromium not installed (apt-get install -y chromium)");
    None
}

/// A fresh Chromium profile directory, removed when dropped.
#[derive(Debug)]
struct Profile(PathBuf);

impl Profile {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "genesys-proxy-docs-ui-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("the profile directory is created");
        Self(dir)
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads `url` in headless Chromium and returns the DOM once the page has settled.
/// `resolver_rules` is Chromium's `--host-resolver-rules`: the tests let it resolve no
/// name but the proxy's, so the page works offline or not at all. Chromium runs in its
/// own process group, killed whole if it outlives [`CHROMIUM_TIMEOUT`].
async fn render(chromium: &Path, url: &str, resolver_rules: &str) -> String {
    let profile = Profile::new();
    let mut command = tokio::process::Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--no-proxy-server",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--host-resolver-rules={resolver_rules}"))
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn().expect("chromium starts");
    let group = child.id().expect("chromium has a pid");
    let Ok(output) = tokio::time::timeout(CHROMIUM_TIMEOUT, child.wait_with_output()).await else {
        // Dropping the wait killed chromium itself; its renderers are in its group.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .status();
        panic!("chromium did not finish loading {url} within {CHROMIUM_TIMEOUT:?}");
    };
    let output = output.expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && !dom.trim().is_empty(),
        "chromium failed on {url} ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

/// The demo proxy on port 0, and the docs link its banner prints.
struct DemoProxy {
    /// Keeps the demo running while the browser loads the page.
    _run: support::DemoRun,
    docs_url: String,
    port: u16,
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
    DemoProxy {
        _run: run,
        docs_url,
        port,
    }
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
