//! The processes a run starts: [`Proc`] (a child with its log, stopped when dropped),
//! [`spawn`] (pinned to a CPU unless `--no-pin`), free ports and waiting until a server
//! answers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::Control;
use anyhow::{Context as _, Result, bail};
use tokio::time::Instant;

use super::options::Options;

/// A child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Proc {
    name: String,
    pub(crate) child: Child,
    log: PathBuf,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn status_kib(&self, field: &str) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        text.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("bench: {} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn spawn(
    o: &Options,
    name: &str,
    cpu: Option<&str>,
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
) -> Result<Proc> {
    let log = o.work.join(format!("{name}.log"));
    let file = std::fs::File::create(&log)?;
    let mut command = match cpu.filter(|_| o.pin) {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu]).arg(program);
            c
        }
        None => Command::new(program),
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    Ok(Proc {
        name: name.to_owned(),
        child,
        log,
    })
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) async fn wait_ready(
    http: &Control,
    proc: &mut Proc,
    url: &str,
    secs: u64,
) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(answer) = http.get(url, &[]).await
            && answer.status.is_success()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            bail!(
                "{} exited ({status}) before it was ready:\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        if Instant::now() > until {
            bail!(
                "{} not ready at {url} after {secs} s:\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
