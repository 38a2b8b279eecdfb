//! A `redis-server` of a test's own, on a free port, that the test can stop and restart
//! (Debian's `redis-server` package; `.ci/run` installs it). Without it, [`RedisServer::start`]
//! returns `None` and the test says it was skipped, except under CI (`CI` set), where
//! a missing `redis-server` fails the test. Also: proxy [`Replica`]s in shared mode in
//! front of one simulator (one starter, [`replicas_with`]), and [`SpreadLoad`], requests
//! spread round robin over them.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use genesys_proxy::Settings;
use genesys_sim::Simulator;

use super::{ADMIN_KEY, Reply, proxy_settings, serve_proxy};

/// A running (or stopped) `redis-server` on a fixed port.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
}

fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

impl RedisServer {
    /// Starts a `redis-server` on a free port; `None` (skipped) when it is not installed,
    /// outside CI.
    pub fn start(test: &str) -> Option<Self> {
        let Some(binary) = binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not installed (apt-get install redis-server): {test} cannot run in CI"
            );
            eprintln!("skipped: redis-server not installed ({test})");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            binary,
            port,
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (as a crash would: no goodbye to clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: no persistence) and waits until
    /// it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        for _ in 0..200 {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// Whether the server answers `PING`.
    pub fn ping(&self) -> bool {
        self.command(&["PING"]).is_some_and(|reply| reply == "PONG")
    }

    /// Runs one command (with `redis-cli`'s plain output): its reply, or `None` when the
    /// server does not answer.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--no-raw"])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        (output.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// The raw bytes of `key`'s value (empty when absent).
    pub fn raw(&self, key: &str) -> Vec<u8> {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw", "GET", key])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A proxy replica in front of a shared simulator.
pub struct Replica {
    pub base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Replica {
    pub async fn start(sim: &Simulator, settings: Settings) -> Self {
        let (base, _state, stop) = serve_proxy(
            settings,
            &sim.base_url(),
            genesys_sim::config::DEFAULT_CLIENT_SECRET,
        )
        .await;
        Self {
            base,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("request sent");
        Reply::read(response).await
    }

    pub async fn admin(&self) -> serde_json::Value {
        self.get("/admin/cache").await.json()
    }
}

pub fn shared_settings(redis: &RedisServer) -> Settings {
    let mut settings = proxy_settings();
    settings.redis.url = Some(redis.url());
    settings.redis.heartbeat_secs = 1;
    settings
}

/// `n` replicas in shared mode on `redis` in front of `sim`, each with
/// [`shared_settings`] as `adjust` changes them (a budget, a request timeout, ...).
pub async fn replicas_with(
    sim: &Simulator,
    redis: &RedisServer,
    n: usize,
    adjust: impl Fn(&mut Settings),
) -> Vec<Arc<Replica>> {
    let mut replicas = Vec::new();
    for _ in 0..n {
        let mut settings = shared_settings(redis);
        adjust(&mut settings);
        replicas.push(Arc::new(Replica::start(sim, settings).await));
    }
    replicas
}

/// `n` replicas in shared mode with [`shared_settings`] as they are.
pub async fn replicas(sim: &Simulator, redis: &RedisServer, n: usize) -> Vec<Arc<Replica>> {
    replicas_with(sim, redis, n, |_| {}).await
}

/// Requests sent round robin over replicas, each on its own task, still being answered.
pub struct SpreadLoad {
    tasks: Vec<tokio::task::JoinHandle<Reply>>,
}

impl SpreadLoad {
    /// Sends GET `paths[i]` to `replicas[i % n]`, one every `every` (a machine too busy
    /// to keep up sends later, never in a burst to catch up); returns once the last one is
    /// sent.
    pub async fn send(replicas: &[Arc<Replica>], paths: Vec<String>, every: Duration) -> Self {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tasks = Vec::with_capacity(paths.len());
        for (i, path) in paths.into_iter().enumerate() {
            ticks.tick().await;
            let replica = replicas[i % replicas.len()].clone();
            tasks.push(tokio::spawn(async move { replica.get(&path).await }));
        }
        Self { tasks }
    }

    /// Waits for every answer: their statuses counted. A 503 must carry `Retry-After`.
    pub async fn statuses(self) -> BTreeMap<u16, u64> {
        let mut statuses = BTreeMap::new();
        for task in self.tasks {
            let reply = task.await.expect("task");
            if reply.status == 503 {
                assert!(
                    reply.header("retry-after").is_some(),
                    "503 with Retry-After: {}",
                    reply.text()
                );
            }
            *statuses.entry(reply.status).or_insert(0) += 1;
        }
        statuses
    }
}
