//! The `redis-server` of the replicas scenario (Debian's package; `bench/run` installs it
//! when missing): started on a free port with no persistence, stopped when dropped, and
//! the version line the scenario prints.

use std::time::Duration;

use anyhow::{Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::options::Options;
use super::process::{Proc, free_port, spawn};

/// A running `redis-server`, stopped when dropped.
pub(crate) struct Redis {
    /// Held for its `Drop`: it stops the server.
    _proc: Proc,
    /// `redis://127.0.0.1:PORT`, as `[redis] url` takes it.
    pub(crate) url: String,
    port: u16,
}

impl Redis {
    /// Starts `o.redis_server` on a free port (pinned to `cpu` unless `--no-pin`) and
    /// waits until it answers `PING`.
    pub(crate) async fn start(o: &Options, cpu: Option<&str>) -> Result<Self> {
        let port = free_port()?;
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut proc = spawn(o, "redis", cpu, &o.redis_server, &args, &[])?;
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if ping(port).await {
                break;
            }
            if let Ok(Some(status)) = proc.child.try_wait() {
                bail!(
                    "redis-server exited ({status}) before it answered:\n{}",
                    proc.log_tail()
                );
            }
            if Instant::now() > until {
                bail!(
                    "redis-server did not answer on port {port} within 20 s:\n{}",
                    proc.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            _proc: proc,
            url: format!("redis://127.0.0.1:{port}"),
            port,
        })
    }

    /// How many keys Redis holds (`DBSIZE`), or None when it does not answer.
    pub(crate) async fn keys(&self) -> Option<u64> {
        let reply = command(self.port, b"DBSIZE\r\n").await?;
        reply.strip_prefix(':')?.trim().parse().ok()
    }
}

/// Whether the server on `port` answers `PING` with `PONG`.
async fn ping(port: u16) -> bool {
    command(port, b"PING\r\n")
        .await
        .is_some_and(|reply| reply.starts_with("+PONG"))
}

/// Sends one inline command and reads its (short) reply.
async fn command(port: u16, inline: &[u8]) -> Option<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(inline).await.ok()?;
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).await.ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// `redis-server --version`'s line ("Redis server v=7.0.15 ..."), or why there is none.
pub(crate) fn version(o: &Options) -> String {
    std::process::Command::new(&o.redis_server)
        .arg("--version")
        .output()
        .map_or_else(
            |e| format!("{}: {e}", o.redis_server.display()),
            |out| String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
}
