//! The demo, as a new user runs it: the simulator in-process, the proxy in front of it,
//! and every curl command of the start-up banner working as printed.
//!
//! Only with the `demo` feature (the default): a build without it has no demo to start.
//! (A file-level `cfg` rather than `[[test]] required-features`: a `[[test]]` entry in
//! Cargo.toml makes cargo look for this file, which the container build does not copy.)
#![cfg(feature = "demo")]

use std::process::Command;

mod support;

#[tokio::test]
async fn the_demo_banner_curl_commands_work_as_printed() {
    let run = support::start_demo().await;
    let (demo, banner) = (&run.demo, &run.banner);

    assert!(
        banner.contains(&demo.api_key),
        "the banner prints the demo key"
    );
    let commands: Vec<&str> = banner
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert!(commands.len() >= 4, "{banner}");
    assert!(
        Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "curl is needed to run the banner's commands (.ci/run installs it)"
    );
    for command in commands {
        let line = command.to_owned();
        let output =
            tokio::task::spawn_blocking(move || Command::new("sh").arg("-c").arg(&line).output())
                .await
                .expect("join")
                .expect("sh runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{command} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!stdout.trim().is_empty(), "{command} printed nothing");
        assert!(
            !stdout.contains("urn:genesys-proxy:problem"),
            "{command} got a problem: {stdout}"
        );
        if command.contains("/conversations/") && !command.contains("grep") {
            let body: serde_json::Value =
                serde_json::from_str(&stdout).expect("a JSON conversation");
            assert!(body["id"].is_string(), "{stdout}");
        }
        if command.contains("/reports/") {
            let body: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
            assert!(body["interval"]["from"].is_string(), "{stdout}");
            assert!(
                body["results"].as_array().is_some_and(|r| !r.is_empty())
                    || body["series"].as_array().is_some_and(|s| !s.is_empty()),
                "the demo org has data for {command}: {stdout}"
            );
        }
        if command.contains("grep") {
            assert!(stdout.to_lowercase().contains("cache-status"), "{stdout}");
        }
    }
}
