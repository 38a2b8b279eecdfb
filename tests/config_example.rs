//! `config.example.toml` tells the truth: it parses into [`Settings`] and validates once a
//! client is configured (its own commented `[[clients]]` entries, uncommented), every value
//! it writes is the built-in default, and every setting of [`Settings`] appears in it under
//! its section, with a comment above it: live when it has a default, commented out when
//! its default is none. A setting added to the code without a line here fails this test.

use std::collections::BTreeMap;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Format, Toml};
use genesys_proxy::Settings;
use genesys_proxy::auth::{ClientSettings, Scope};
use serde_json::Value;

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.example.toml")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path()).expect("config.example.toml is readable")
}

/// The example as an operator would load it (`--config config.example.toml`), without the
/// environment.
fn example_settings() -> Settings {
    let figment = Figment::new().merge(Toml::file(example_path()));
    Settings::from_figment(&figment).expect("config.example.toml parses into Settings")
}

/// The example with its commented `[[clients]]` entries uncommented: from the first
/// `# [[clients]]` line on, one leading `#` (and the space after it) is removed, so the
/// entries become live and the comments inside them stay comments.
fn example_with_clients() -> String {
    let text = example_text();
    let mut out = String::new();
    let mut in_clients = false;
    for line in text.lines() {
        in_clients |= line.trim() == "# [[clients]]";
        let line = if in_clients {
            line.strip_prefix("# ")
                .or_else(|| line.strip_prefix('#'))
                .unwrap_or(line)
        } else {
            line
        };
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        in_clients,
        "the example has a commented `# [[clients]]` entry"
    );
    out
}

/// One `key = value` line of the example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Live,
    Commented,
}

/// What the example holds: for each section, its keys, whether each is live or commented
/// out, and whether a comment line stands right above it.
#[derive(Debug, Default)]
struct Example {
    sections: Vec<String>,
    keys: BTreeMap<(String, String), (Line, bool)>,
}

fn is_key(text: &str) -> Option<&str> {
    let (key, _) = text.split_once(" = ")?;
    (!key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
    .then_some(key)
}

fn parse_example(text: &str) -> Example {
    let mut example = Example::default();
    let mut section = String::new();
    let mut prose_above = false;
    for line in text.lines() {
        let line = line.trim();
        let (body, commented) = match line.strip_prefix('#') {
            Some(rest) => (rest.trim(), true),
            None => (line, false),
        };
        if body.starts_with('[') && body.ends_with(']') {
            section = body.trim_matches(|c| c == '[' || c == ']').to_owned();
            if !commented {
                example.sections.push(section.clone());
            }
            prose_above = false;
        } else if let Some(key) = is_key(body) {
            let kind = if commented {
                Line::Commented
            } else {
                Line::Live
            };
            // The first occurrence counts (the second `[[clients]]` example repeats keys).
            example
                .keys
                .entry((section.clone(), key.to_owned()))
                .or_insert((kind, prose_above));
            prose_above = false;
        } else {
            // A comment (`# text`, or `# # text` inside the commented clients) documents
            // the key below it; a blank line or a bare `#` ends it.
            prose_above = commented && !body.trim_start_matches('#').trim().is_empty();
        }
    }
    example
}

/// Every `section.key` of a serialised settings value, with its default (recursing into
/// nested tables, so `[a.b]` sections are covered too).
fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, String, Value)>) {
    let Value::Object(map) = value else {
        panic!("{prefix} is not a table");
    };
    for (key, value) in map {
        if let Value::Object(_) = value {
            let section = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            leaves(&section, value, out);
        } else {
            out.push((prefix.to_owned(), key.clone(), value.clone()));
        }
    }
}

fn default_leaves() -> Vec<(String, String, Value)> {
    let mut value = serde_json::to_value(Settings::default()).expect("Settings serialise");
    value
        .as_object_mut()
        .expect("a table")
        .remove("clients")
        .expect("Settings has clients");
    let mut out = Vec::new();
    leaves("", &value, &mut out);
    assert!(out.len() > 30, "{out:?}");
    out
}

#[test]
fn the_example_parses_and_is_refused_only_for_want_of_a_client() {
    let settings = example_settings();
    assert!(
        settings.clients.is_empty(),
        "the example's [[clients]] entries stay commented out, so a copy of it never holds a working key"
    );
    let error = settings
        .validate()
        .expect_err("a proxy without clients must not start");
    assert!(error.contains("[[clients]]"), "{error}");
}

#[test]
fn the_example_validates_once_its_client_entries_are_uncommented() {
    let text = example_with_clients();
    let settings = Settings::from_figment(&Figment::new().merge(Toml::string(&text)))
        .unwrap_or_else(|e| panic!("the uncommented example parses: {e}\n{text}"));
    settings
        .validate()
        .unwrap_or_else(|e| panic!("the uncommented example is valid: {e}"));
    assert_eq!(
        settings.clients,
        vec![
            ClientSettings {
                name: "dashboards".into(),
                key_sha256: "0".repeat(64),
                scopes: vec![Scope::ConversationsRead, Scope::ReportsRead],
                weight: 1,
            },
            ClientSettings {
                name: "operations".into(),
                key_sha256: "0".repeat(64),
                scopes: vec![Scope::Admin],
                weight: 1,
            },
        ]
    );
    let mut without_clients = settings;
    without_clients.clients.clear();
    assert_eq!(
        without_clients,
        example_settings(),
        "uncommenting the clients changes nothing else"
    );
}

#[test]
fn every_value_in_the_example_is_the_default() {
    let example = serde_json::to_value(example_settings()).expect("serialise");
    let mut differences = Vec::new();
    for (section, key, default) in default_leaves() {
        let written = section
            .split('.')
            .fold(&example, |value, part| &value[part])
            .get(&key)
            .cloned()
            .unwrap_or(Value::Null);
        if written != default {
            differences.push(format!(
                "{section}.{key}: example {written}, default {default}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "config.example.toml must show the defaults:\n{}",
        differences.join("\n")
    );
    assert_eq!(example_settings(), Settings::default());
}

#[test]
fn every_setting_appears_in_the_example_with_a_comment_above_it() {
    let example = parse_example(&example_text());
    let mut problems = Vec::new();
    let mut expected = Vec::new();
    for (section, key, default) in default_leaves() {
        if !example.sections.contains(&section) {
            problems.push(format!("no [{section}] section"));
        }
        let wanted = if default.is_null() {
            Line::Commented
        } else {
            Line::Live
        };
        expected.push(((section, key), wanted));
    }
    // The clients' fields: each shown in the commented `[[clients]]` example.
    let client = serde_json::to_value(ClientSettings {
        name: String::new(),
        key_sha256: String::new(),
        scopes: Vec::new(),
        weight: 1,
    })
    .expect("serialise");
    for key in client.as_object().expect("a table").keys() {
        expected.push((("clients".to_owned(), key.clone()), Line::Commented));
    }
    for ((section, key), wanted) in &expected {
        match example.keys.get(&(section.clone(), key.clone())) {
            None => problems.push(format!("{section}.{key} is missing")),
            Some((kind, _)) if kind != wanted => problems.push(format!(
                "{section}.{key} should be {} (its default is {})",
                if *wanted == Line::Live {
                    "a live `key = default` line"
                } else {
                    "commented out (`# key = example`)"
                },
                if *wanted == Line::Live {
                    "a value"
                } else {
                    "none"
                },
            )),
            Some((_, false)) => problems.push(format!(
                "{section}.{key} has no comment line right above it saying what it does"
            )),
            Some(_) => {}
        }
    }
    for (section, key) in example.keys.keys() {
        if !expected.iter().any(|((s, k), _)| s == section && k == key) {
            problems.push(format!(
                "{section}.{key} is in the example but is no setting"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "config.example.toml is out of date with Settings:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_header_explains_precedence_and_the_environment_variables() {
    let text = example_text();
    for needle in [
        "GENESYS_PROXY_<SECTION>__<KEY>",
        "GENESYS_CLIENT_SECRET",
        "GENESYS_REGION",
        "GENESYS_API_URL",
        "GENESYS_LOGIN_URL",
        "GENESYS_CLIENT_ID",
        "--listen",
        "RUST_LOG",
        "keygen",
    ] {
        assert!(text.contains(needle), "the example mentions {needle}");
    }
}

#[test]
fn a_client_secret_in_the_file_is_refused() {
    let figment = Figment::new().merge(Toml::string("[genesys]\nclient_secret = \"hunter2\"\n"));
    let error =
        Settings::from_figment(&figment).expect_err("the secret comes from the environment only");
    assert!(error.contains("client_secret"), "{error}");
}

/// The example and the deployment guide give one answer about replicas and the rate: the
/// limit is per token, so it is not divided (an earlier example said "divide the limit").
#[test]
fn the_example_and_the_deployment_guide_agree_on_replicas_and_the_rate() {
    let example = example_text().to_lowercase();
    let guide = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/deployment.md"),
    )
    .expect("docs/deployment.md")
    .to_lowercase();
    assert!(
        !example.contains("or divide the limit"),
        "config.example.toml tells operators to divide the rate"
    );
    assert!(
        example.contains("do not divide it"),
        "the example says it plainly"
    );
    assert!(
        guide.contains("do not divide it"),
        "the guide says it plainly"
    );
}
