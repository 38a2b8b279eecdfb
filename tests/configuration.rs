//! Settings as the environment and the operator give them, through the built binary: stray
//! `GENESYS_PROXY_*` variables (Kubernetes service links, compose's `GENESYS_PROXY_IMAGE`)
//! are ignored with one warning, a misspelt setting variable stops the start, `RUST_LOG` is
//! checked like `telemetry.log_filter`, the start-up log says where the listen address came
//! from; and CORS origins that are no origins are refused by name.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest wait for the demo to print its banner (a debug build on a loaded machine).
const START_PATIENCE: Duration = Duration::from_secs(90);

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genesys-proxy"));
    command.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Starts `genesys-proxy --demo` on port 0 (plus `args`), waits for its banner, stops it,
/// and returns what it wrote to stderr. Panics if it exits or stays silent instead.
fn demo_stderr(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut argv = vec!["--demo"];
    argv.extend_from_slice(args);
    let mut child: Child = command(&argv, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, banner) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut started = false;
    let deadline = std::time::Instant::now() + START_PATIENCE;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match banner.recv_timeout(left) {
            Ok(line) if line.contains("demo API key") => {
                started = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr read");
    assert!(started, "the demo did not start:\n{err}");
    err
}

/// A settings file with one client and `extra` TOML, removed on drop.
struct ConfigFile(std::path::PathBuf);

impl ConfigFile {
    fn new(extra: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "genesys-proxy-configuration-{}-{}.toml",
            std::process::id(),
            fastrand::u64(..)
        ));
        let client = "[[clients]]\nname = \"ops\"\nkey_sha256 = \"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8\"\nscopes = [\"admin\"]\n";
        std::fs::write(&path, format!("{extra}\n{client}")).expect("written");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn stray_genesys_proxy_variables_are_ignored_with_one_warning_naming_them() {
    // What Kubernetes injects for a Service named genesys-proxy, and compose's image name.
    let stray = [
        ("GENESYS_PROXY_PORT", "tcp://10.0.0.1:8080"),
        ("GENESYS_PROXY_PORT_8080_TCP_ADDR", "10.0.0.1"),
        ("GENESYS_PROXY_SERVICE_HOST", "10.0.0.1"),
        ("GENESYS_PROXY_IMAGE", "x"),
    ];
    let mut env = stray.to_vec();
    // A real setting beside them is still read.
    env.push(("GENESYS_PROXY_SERVER__LISTEN", "127.0.0.1:0"));
    let err = demo_stderr(&[], &env);
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("GENESYS_PROXY_IMAGE"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning:\n{err}");
    for (name, _) in stray {
        assert!(warnings[0].contains(name), "{name} is named:\n{err}");
    }
    assert!(
        !warnings[0].contains("SERVER__LISTEN"),
        "settings are not strays: {}",
        warnings[0]
    );
    assert!(
        !err.contains("tcp://10.0.0.1"),
        "values are never shown:\n{err}"
    );
}

#[test]
fn a_misspelt_setting_variable_stops_the_start_naming_it() {
    let config = ConfigFile::new("");
    let output = run(
        &["--config", config.path()],
        &[("GENESYS_PROXY_BUDGET__RAT", "600")],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("GENESYS_PROXY_BUDGET__RAT") && message.contains("rate"),
        "names the variable and the section's settings: {message}"
    );
}

#[test]
fn an_invalid_rust_log_stops_the_start_as_an_invalid_log_filter_does() {
    let config = ConfigFile::new("");
    for args in [vec!["--config", config.path()], vec!["--demo"]] {
        let output = run(&args, &[("RUST_LOG", "genesys_proxy=loud")]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        let message = stderr(&output);
        assert!(
            message.contains("RUST_LOG") && message.contains("genesys_proxy=loud"),
            "{args:?}: {message}"
        );
    }
    let output = run(
        &["--config", config.path()],
        &[("GENESYS_PROXY_TELEMETRY__LOG_FILTER", "genesys_proxy=loud")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("telemetry.log_filter"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_start_up_log_says_where_the_listen_address_came_from() {
    let config = ConfigFile::new("[server]\nlisten = \"127.0.0.1:0\"\n");
    let from_file = demo_stderr(&["--config", config.path()], &[]);
    let from_env = demo_stderr(
        &["--config", config.path()],
        &[("GENESYS_PROXY_SERVER__LISTEN", "127.0.0.1:0")],
    );
    let from_flag = demo_stderr(
        &["--config", config.path(), "--listen", "127.0.0.1:0"],
        &[("GENESYS_PROXY_SERVER__LISTEN", "127.0.0.1:0")],
    );
    let listening = |log: &str| {
        log.lines()
            .find(|l| l.contains("genesys-proxy listening"))
            .unwrap_or_else(|| panic!("no start-up line:\n{log}"))
            .to_owned()
    };
    assert!(
        listening(&from_file).contains(&format!("the settings file {}", config.path())),
        "{from_file}"
    );
    assert!(
        listening(&from_env).contains("GENESYS_PROXY_SERVER__LISTEN"),
        "{from_env}"
    );
    assert!(listening(&from_flag).contains("--listen"), "{from_flag}");
}

#[test]
fn cors_origins_that_are_no_origins_are_refused_by_name() {
    let with_origins = |origins: &[&str]| {
        let mut settings = genesys_proxy::Settings {
            clients: vec![genesys_proxy::auth::ClientSettings {
                name: "dashboards".into(),
                key_sha256: "0".repeat(64),
                scopes: vec![genesys_proxy::auth::Scope::ReportsRead],
                weight: 1,
            }],
            ..genesys_proxy::Settings::default()
        };
        settings.server.cors_allowed_origins = origins.iter().map(|o| (*o).to_owned()).collect();
        settings.validate()
    };
    with_origins(&[
        "https://dash.example.com",
        "http://localhost:3000",
        "https://[::1]:8443",
    ])
    .expect("origins as browsers send them");
    with_origins(&["*"]).expect("any origin");
    for (origin, hint) in [
        ("not a url", "relative URL"),
        ("ftp://dash.example.com", "http or https"),
        ("https://dash.example.com/", "\"https://dash.example.com\""),
        (
            "https://dash.example.com/app",
            "\"https://dash.example.com\"",
        ),
        (
            "https://Dash.Example.com:443",
            "\"https://dash.example.com\"",
        ),
    ] {
        let error = with_origins(&["https://ok.example.com", origin])
            .expect_err(&format!("{origin} is refused"));
        assert!(
            error.contains("server.cors_allowed_origins")
                && error.contains(&format!("{origin:?}"))
                && error.contains(hint),
            "{origin}: {error}"
        );
    }
}
