//! Which `GENESYS_PROXY_*` variables are settings.
//!
//! A variable is read as a setting only when its name is a real setting path:
//! `GENESYS_PROXY_<SECTION>__<KEY>` for a key of the settings (`GENESYS_PROXY_BUDGET__RATE`),
//! or `GENESYS_PROXY_CLIENTS`. A name with `__` that is no setting is a misspelt one and
//! stops the start, naming it. Any other name is not meant for the proxy at all: Kubernetes
//! injects `GENESYS_PROXY_PORT=tcp://...` and friends for a Service named `genesys-proxy`
//! (service links), compose users export `GENESYS_PROXY_IMAGE`. Those are ignored, and
//! `main` names them in one warning. Only names are read here, never values (a value may
//! be a secret).

use std::collections::BTreeSet;
use std::sync::Arc;

use figment::providers::Env;

use super::Settings;

/// The prefix of every settings variable.
pub(super) const PREFIX: &str = "GENESYS_PROXY_";

/// Between section and key in a variable's name (`.` in a setting path).
const SEPARATOR: &str = "__";

/// What a `GENESYS_PROXY_*` name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A setting (`BUDGET__RATE`, `CLIENTS`).
    Setting,
    /// Written as a setting (with `__`) but naming none: an error.
    Misspelt,
    /// Not meant for the proxy (`PORT`, `SERVICE_HOST`, `IMAGE`): ignored, with a warning.
    Stray,
}

/// The dotted path of every setting (`server.listen`, `budget.rate`, nested sections as
/// `a.b.key`) and `clients`, from the default settings themselves, so a setting added to
/// the code is accepted without a list to maintain.
fn setting_paths() -> BTreeSet<String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, value, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned());
            }
        }
    }
    let mut paths = BTreeSet::new();
    let defaults = serde_json::to_value(Settings::default()).unwrap_or_default();
    walk("", &defaults, &mut paths);
    paths
}

/// The `GENESYS_PROXY_*` variables of the environment, by kind.
#[derive(Debug)]
pub(super) struct ProxyVariables {
    paths: Arc<BTreeSet<String>>,
    misspelt: Vec<String>,
    stray: Vec<String>,
}

impl ProxyVariables {
    /// Sorts the names of the process's `GENESYS_PROXY_*` variables.
    pub(super) fn read() -> Self {
        let paths = setting_paths();
        let mut misspelt = Vec::new();
        let mut stray = Vec::new();
        let mut names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| name.starts_with(PREFIX))
            .collect();
        names.sort();
        for name in names {
            match kind(&paths, &name[PREFIX.len()..]) {
                Kind::Setting => {}
                Kind::Misspelt => misspelt.push(name),
                Kind::Stray => stray.push(name),
            }
        }
        Self {
            paths: Arc::new(paths),
            misspelt,
            stray,
        }
    }

    /// An error naming the variables written as settings that are none.
    pub(super) fn check(&self) -> Result<(), String> {
        let Some(first) = self.misspelt.first() else {
            return Ok(());
        };
        let path = path_of(&first[PREFIX.len()..]);
        let section = path.split('.').next().unwrap_or_default();
        let keys: Vec<&str> = self
            .paths
            .iter()
            .filter_map(|p| p.strip_prefix(section)?.strip_prefix('.'))
            .collect();
        let hint = if keys.is_empty() {
            format!("there is no [{section}] section")
        } else {
            format!("[{section}] has {}", keys.join(", "))
        };
        Err(format!(
            "{} names no setting ({path}: {hint}); settings are {PREFIX}<SECTION>__<KEY>, as in config.example.toml",
            self.misspelt.join(", ")
        ))
    }

    /// The names that are no setting and were ignored.
    pub(super) fn stray(&self) -> &[String] {
        &self.stray
    }

    /// The figment provider of the setting variables only.
    pub(super) fn provider(&self) -> Env {
        let paths = self.paths.clone();
        Env::prefixed(PREFIX)
            .split(SEPARATOR)
            .filter(move |key| paths.contains(&key.as_str().to_ascii_lowercase()))
    }
}

/// The setting path a name (without the prefix) stands for: `BUDGET__RATE` is `budget.rate`.
fn path_of(name: &str) -> String {
    name.to_ascii_lowercase().replace(SEPARATOR, ".")
}

fn kind(paths: &BTreeSet<String>, name: &str) -> Kind {
    if paths.contains(&path_of(name)) {
        Kind::Setting
    } else if name.contains(SEPARATOR) {
        Kind::Misspelt
    } else {
        Kind::Stray
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_settings_only_when_they_name_a_setting() {
        let paths = setting_paths();
        assert_eq!(kind(&paths, "BUDGET__RATE"), Kind::Setting);
        assert_eq!(kind(&paths, "SERVER__LISTEN"), Kind::Setting);
        assert_eq!(kind(&paths, "CLIENTS"), Kind::Setting);
        assert_eq!(kind(&paths, "GENESYS__REGION"), Kind::Setting);
        assert_eq!(kind(&paths, "REDIS__URL"), Kind::Setting);
        assert_eq!(kind(&paths, "BUDGET__RAT"), Kind::Misspelt);
        assert_eq!(kind(&paths, "NOSUCH__KEY"), Kind::Misspelt);
        for stray in [
            "PORT",
            "PORT_80_TCP_ADDR",
            "SERVICE_HOST",
            "SERVICE_PORT_HTTP",
            "IMAGE",
            "BUDGET",
        ] {
            assert_eq!(kind(&paths, stray), Kind::Stray, "{stray}");
        }
    }
}
