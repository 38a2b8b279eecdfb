//! [`Target`]: where a replica's Redis is and how to reach it, built from `[redis]` by the
//! `redis` crate's own means: straight at `redis.url` (`redis://`, or `rediss://` over TLS
//! trusting `redis.ca_file` when set, else the platform's roots, and presenting
//! `redis.client_cert_file` for mutual TLS), or through Sentinel (`[redis.sentinel]`: the
//! master's address is asked of the sentinels, again at every heartbeat).
//!
//! Every error names the setting at fault and never holds a password: a bad file or URL
//! stops the start with it ([`super::RedisSettings::validate`]).

use std::path::Path;

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use redis::{TlsCertificates, TlsMode};

use super::settings::{RedisSettings, redacted};

/// Where Redis is.
pub(super) enum Target {
    /// At `redis.url`.
    Direct(Client),
    /// Wherever the sentinels say the master is.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

impl Target {
    /// The target `settings` describe (no connection is made).
    ///
    /// # Errors
    /// A setting that cannot be used, named.
    pub(super) fn new(settings: &RedisSettings) -> Result<Self, String> {
        let url = settings.url.as_deref().ok_or("redis.url is not set")?;
        let shown = redacted(url);
        let info = url
            .into_connection_info()
            .map_err(|e| format!("redis.url {shown} is not a Redis URL: {}", e.category()))?;
        let certificates = certificates(settings)?;
        if certificates.is_some() && !uses_tls(settings, &info) {
            return Err(
                "redis.ca_file and redis.client_cert_file apply to rediss:// only: redis.url (or the sentinels' URLs) must start with rediss://"
                    .into(),
            );
        }
        if settings.sentinel.master.is_some() {
            return sentinel(settings, &info, certificates)
                .map(|client| Self::Sentinel(tokio::sync::Mutex::new(client)));
        }
        if !settings.sentinel.nodes.is_empty() {
            return Err("redis.sentinel.nodes is set without redis.sentinel.master".into());
        }
        let client = match certificates {
            Some(certificates) if is_tls(info.addr()) => Client::build_with_tls(info, certificates),
            _ => Client::open(info),
        }
        .map_err(|e| format!("redis.url {shown}: {}", e.category()))?;
        Ok(Self::Direct(client))
    }

    /// Whether the master's address comes from the sentinels.
    pub(super) fn follows_sentinels(&self) -> bool {
        matches!(self, Self::Sentinel(_))
    }

    /// The client of the master to use now: the direct one, or the one the sentinels name
    /// (which the crate checks answers `ROLE` as a master).
    ///
    /// # Errors
    /// No sentinel answered, or none named a master that answers as one.
    pub(super) async fn master(&self) -> redis::RedisResult<Client> {
        match self {
            Self::Direct(client) => Ok(client.clone()),
            Self::Sentinel(sentinels) => sentinels.lock().await.async_get_client().await,
        }
    }
}

fn is_tls(addr: &ConnectionAddr) -> bool {
    matches!(addr, ConnectionAddr::TcpTls { .. })
}

/// Whether any connection of the settings is made over TLS (the master's, or the
/// sentinels').
fn uses_tls(settings: &RedisSettings, master: &ConnectionInfo) -> bool {
    is_tls(master.addr())
        || settings.sentinel.nodes.iter().any(|node| {
            node.as_str()
                .into_connection_info()
                .is_ok_and(|info| is_tls(info.addr()))
        })
}

/// `redis.ca_file`, `redis.client_cert_file` and `redis.client_key_file` as the crate
/// takes them (checked here: the crate parses them only at the first connection).
fn certificates(settings: &RedisSettings) -> Result<Option<TlsCertificates>, String> {
    let root_cert = settings
        .ca_file
        .as_deref()
        .map(|path| pem_file("redis.ca_file", path, "CERTIFICATE"))
        .transpose()?;
    let client_tls = match (&settings.client_cert_file, &settings.client_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: pem_file("redis.client_cert_file", cert, "CERTIFICATE")?,
            client_key: pem_file("redis.client_key_file", key, "PRIVATE KEY")?,
        }),
        _ => {
            return Err(
                "redis.client_cert_file and redis.client_key_file go together (mutual TLS)".into(),
            );
        }
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    // The crate's own parser, on a placeholder address: bad PEM is refused now.
    let parses = |certificates: TlsCertificates, settings: &str| {
        Client::build_with_tls("rediss://localhost", certificates)
            .map(drop)
            .map_err(|e| {
                let reason = e.detail().map_or_else(|| e.to_string(), str::to_owned);
                format!("{settings}: {reason}")
            })
    };
    if let Some(root_cert) = &root_cert {
        let alone = TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert.clone()),
        };
        let path = settings.ca_file.as_deref().unwrap_or(Path::new(""));
        parses(alone, &format!("redis.ca_file {}", path.display()))?;
    }
    if let Some(client_tls) = &client_tls {
        let alone = TlsCertificates {
            client_tls: Some(client_tls.clone()),
            root_cert: None,
        };
        parses(alone, "redis.client_cert_file / redis.client_key_file")?;
    }
    let certificates = TlsCertificates {
        client_tls,
        root_cert,
    };
    Ok(Some(certificates))
}

/// The bytes of a PEM file that holds at least one `-----BEGIN …{label}-----` block.
fn pem_file(setting: &str, path: &Path, label: &str) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("{setting} {} cannot be read: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let holds_block = text.lines().any(|line| {
        line.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|name| name.ends_with(label))
    });
    if !holds_block {
        return Err(format!(
            "{setting} {} holds no PEM {label} block",
            path.display()
        ));
    }
    Ok(bytes)
}

/// The crate's sentinel client for the master `redis.sentinel.master`, reached through
/// `redis.sentinel.nodes`, talked to with `redis.url`'s scheme, user, password and
/// database.
fn sentinel(
    settings: &RedisSettings,
    master: &ConnectionInfo,
    certificates: Option<TlsCertificates>,
) -> Result<SentinelClient, String> {
    let name = settings.sentinel.master.as_deref().unwrap_or_default();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(
            "redis.sentinel.master must be the master's name, as the sentinels monitor it".into(),
        );
    }
    let host = match master.addr() {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.as_str(),
        _ => "",
    };
    if host != name {
        return Err(format!(
            "with redis.sentinel, redis.url names the master by its name, not by an address (the sentinels give that): redis.url {} should read {}://…@{name}/…",
            redacted(settings.url.as_deref().unwrap_or_default()),
            if is_tls(master.addr()) {
                "rediss"
            } else {
                "redis"
            },
        ));
    }
    if settings.sentinel.nodes.is_empty() {
        return Err(
            "redis.sentinel.nodes must list at least one sentinel (redis://host:26379)".into(),
        );
    }
    let nodes = sentinel_nodes(&settings.sentinel.nodes)?;
    let mut builder = SentinelClientBuilder::new(
        nodes.iter().map(|node| node.addr().clone()),
        name,
        SentinelServerType::Master,
    )
    .map_err(|e| format!("redis.sentinel: {}", e.category()))?;
    // How to talk to the sentinels: their URLs' (one) user and password, TLS as they say.
    let first = nodes[0].redis_settings();
    if let Some(username) = first.username() {
        builder = builder.set_client_to_sentinel_username(username);
    }
    if let Some(password) = first.password() {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if let Some(certificates) = &certificates
        && is_tls(nodes[0].addr())
    {
        builder = builder.set_client_to_sentinel_certificates(certificates.clone());
    }
    // How to talk to the master they name: as redis.url says.
    let redis = master.redis_settings();
    builder = builder
        .set_client_to_redis_db(redis.db())
        .set_client_to_redis_protocol(redis.protocol());
    if let Some(username) = redis.username() {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = redis.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    if let ConnectionAddr::TcpTls { insecure, .. } = master.addr() {
        builder = builder.set_client_to_redis_tls_mode(if *insecure {
            TlsMode::Insecure
        } else {
            TlsMode::Secure
        });
        if let Some(certificates) = certificates {
            builder = builder.set_client_to_redis_certificates(certificates);
        }
    }
    builder
        .build()
        .map_err(|e| format!("redis.sentinel: {}", e.detail().unwrap_or(e.category())))
}

/// The sentinels' URLs: all `redis://` or all `rediss://`, with one user and password
/// (the crate authenticates to every sentinel alike).
fn sentinel_nodes(nodes: &[String]) -> Result<Vec<ConnectionInfo>, String> {
    let mut parsed = Vec::with_capacity(nodes.len());
    for node in nodes {
        let info = node.as_str().into_connection_info().map_err(|e| {
            format!(
                "redis.sentinel.nodes: {} is not a Redis URL: {}",
                redacted(node),
                e.category()
            )
        })?;
        if !matches!(
            info.addr(),
            ConnectionAddr::Tcp(..) | ConnectionAddr::TcpTls { .. }
        ) {
            return Err(format!(
                "redis.sentinel.nodes: {} is not a TCP address",
                redacted(node)
            ));
        }
        parsed.push(info);
    }
    let first = &parsed[0];
    let alike = |info: &ConnectionInfo| {
        is_tls(info.addr()) == is_tls(first.addr())
            && info.redis_settings().username() == first.redis_settings().username()
            && info.redis_settings().password() == first.redis_settings().password()
    };
    if !parsed.iter().all(alike) {
        return Err(
            "redis.sentinel.nodes must be alike: all redis:// or all rediss://, with one user and password"
                .into(),
        );
    }
    Ok(parsed)
}
