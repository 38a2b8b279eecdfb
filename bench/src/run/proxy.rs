//! The proxy under test (`genesys-proxy`): API keys, starting one in front of a simulator
//! with a config of the scenario's sections, and reading its `/metrics`.

use std::net::SocketAddr;

use anyhow::Result;
use sha2::{Digest as _, Sha256};

use super::options::Options;
use super::process::{Proc, free_port, spawn, wait_ready};
use super::sim::Sim;
use crate::Control;

/// A running proxy, stopped when dropped.
pub(crate) struct Proxy {
    pub(crate) proc: Proc,
    pub(crate) base: String,
    pub(crate) addr: SocketAddr,
}

/// An API key of the proxy's config: the key, its `Authorization` value and its SHA-256.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) key: String,
    pub(crate) bearer: String,
    pub(crate) hash: String,
}

/// A new random key.
pub(crate) fn new_key() -> Key {
    let key = format!(
        "gp_bench_{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    Key {
        bearer: format!("Bearer {key}"),
        key,
        hash,
    }
}

/// Starts a proxy named `name` whose config is `sections` and a client `bench` with
/// `key` and the admin scope.
pub(crate) async fn start_proxy(
    o: &Options,
    http: &Control,
    name: &str,
    cpu: Option<&str>,
    sim: &Sim,
    key: &Key,
    sections: &str,
) -> Result<Proxy> {
    let port = free_port()?;
    let config = format!(
        "{sections}\n[telemetry]\nlog_filter = \"warn\"\n\n[[clients]]\nname = \"bench\"\nkey_sha256 = \"{}\"\nscopes = [\"admin\"]\nweight = 1\n",
        key.hash
    );
    let path = o.work.join(format!("{name}.toml"));
    std::fs::write(&path, config)?;
    let args = vec![
        "--config".to_owned(),
        path.display().to_string(),
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
    ];
    let env = [
        ("GENESYS_API_URL", sim.base.clone()),
        ("GENESYS_LOGIN_URL", sim.base.clone()),
        ("GENESYS_CLIENT_ID", "sim-client".to_owned()),
        ("GENESYS_CLIENT_SECRET", "sim-secret".to_owned()),
    ];
    let mut proc = spawn(o, name, cpu, &o.bin_dir.join("genesys-proxy"), &args, &env)?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(http, &mut proc, &format!("{base}/readyz"), 60).await?;
    Ok(Proxy {
        proc,
        addr: format!("127.0.0.1:{port}").parse()?,
        base,
    })
}

pub(crate) async fn metrics(http: &Control, proxy: &Proxy) -> Result<String> {
    Ok(http
        .get(&format!("{}/metrics", proxy.base), &[])
        .await?
        .text())
}
