//! The command line as an operator meets it: what to pass on a first run, clear messages
//! when settings are missing or wrong, `--help` with the environment, `keygen`,
//! `healthcheck`, and `--demo` in a build without the demo feature.

use std::process::{Command, Output};

fn proxy(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genesys-proxy"));
    command.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn config_with_client() -> tempfile_path::TempFile {
    tempfile_path::TempFile::new(
        "[[clients]]\nname = \"ops\"\nkey_sha256 = \"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8\"\nscopes = [\"admin\"]\n",
    )
}

#[test]
fn run_bare_the_proxy_says_to_pass_a_config_file_or_demo() {
    let output = proxy(&[], &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    // A build without the demo feature does not offer what it cannot do.
    assert!(
        message.contains("--config FILE") && message.contains("--demo") == cfg!(feature = "demo"),
        "{message}"
    );
}

/// A production build (`cargo build --no-default-features`) carries no simulator: `--demo`
/// says so and how to get it, instead of starting or being an unknown flag.
#[cfg(not(feature = "demo"))]
#[test]
fn without_the_demo_feature_demo_says_how_to_get_it() {
    let output = proxy(&["--demo"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("without its `demo` feature")
            && message.contains("cargo run --release -- --demo"),
        "{message}"
    );
    let help = proxy(&["--help"], &[]);
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("not in this build"),
        "--help says the demo is not in this build"
    );
}

#[test]
fn without_clients_the_proxy_refuses_to_start_and_says_why() {
    let config = tempfile_path::TempFile::new("[budget]\nrate = 300\n");
    let output = proxy(&["--config", config.path()], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("[[clients]]"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_lists_the_environment_variables() {
    let output = proxy(&["--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for name in [
        "GENESYS_CLIENT_ID",
        "GENESYS_CLIENT_SECRET",
        "GENESYS_CLIENT_SECRET_FILE",
        "GENESYS_REGION",
        "GENESYS_API_URL",
        "GENESYS_LOGIN_URL",
        "GENESYS_PROXY_<SECTION>__<KEY>",
        "GENESYS_PROXY_CLIENTS",
        "RUST_LOG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        assert!(help.contains(name), "--help names {name}:\n{help}");
    }
}

#[test]
fn without_a_genesys_org_the_proxy_names_the_variables_to_set() {
    let config = config_with_client();
    let output = proxy(&["--config", config.path()], &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("GENESYS_REGION") && message.contains("--demo"),
        "{message}"
    );

    let output = proxy(
        &["--config", config.path()],
        &[("GENESYS_REGION", "mypurecloud.ie")],
    );
    assert!(
        stderr(&output).contains("GENESYS_CLIENT_ID"),
        "{}",
        stderr(&output)
    );

    let output = proxy(
        &["--config", config.path()],
        &[
            ("GENESYS_REGION", "mypurecloud.ie"),
            ("GENESYS_CLIENT_ID", "x"),
        ],
    );
    assert!(
        stderr(&output).contains("GENESYS_CLIENT_SECRET"),
        "{}",
        stderr(&output)
    );

    let output = proxy(
        &["--config", config.path()],
        &[
            ("GENESYS_REGION", "mypurecloud.mars"),
            ("GENESYS_CLIENT_ID", "x"),
            ("GENESYS_CLIENT_SECRET", "zz-secret-zz"),
        ],
    );
    assert!(
        stderr(&output).contains("not a known Genesys Cloud region"),
        "{}",
        stderr(&output)
    );
    assert!(
        !stderr(&output).contains("zz-secret-zz"),
        "the secret is not echoed"
    );
}

#[test]
fn invalid_settings_stop_the_start_naming_them() {
    let config = config_with_client();
    let output = proxy(
        &["--config", config.path()],
        &[("GENESYS_PROXY_BUDGET__RATE", "0")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("budget.rate"),
        "{}",
        stderr(&output)
    );
    let output = proxy(&["--config", "/no/such/file.toml"], &[]);
    assert!(
        stderr(&output).contains("/no/such/file.toml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn keygen_prints_a_key_and_the_matching_client_entry() {
    let output = proxy(&["keygen", "--name", "dashboards"], &[]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let key = text
        .split_whitespace()
        .find(|w| w.starts_with("gp_"))
        .expect("a key");
    assert!(text.contains("name = \"dashboards\""));
    assert!(
        text.contains(&genesys_proxy::auth::hash_key(key)),
        "the entry holds the key's hash"
    );
}

#[test]
fn healthcheck_fails_when_nothing_answers() {
    let output = proxy(&["healthcheck", "--url", "http://127.0.0.1:9/healthz"], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("did not answer"));
}

/// A temporary file removed on drop (no extra crate needed).
mod tempfile_path {
    pub struct TempFile(std::path::PathBuf);

    impl TempFile {
        pub fn new(contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "genesys-proxy-cli-{}-{}.toml",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::write(&path, contents).expect("temp file written");
            Self(path)
        }

        pub fn path(&self) -> &str {
            self.0.to_str().expect("utf-8 path")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
