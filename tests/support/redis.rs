//! A `redis-server` of a test's own, on a free port, that the test can stop and restart
//! (Debian's `redis-server` package; `.ci/run` installs it): plain, as a replica of
//! another ([`RedisServer::start_replica_of`]), over TLS ([`RedisServer::start_tls`],
//! with a CA and certificates [`TlsFiles`] generates by `openssl`), or as a Sentinel
//! ([`RedisServer::start_sentinel`]). Without the tools, the starters return `None` and the
//! test says it was skipped, except under CI (`CI` set), where a missing tool fails the
//! test. Also: proxy [`Replica`]s in shared mode in front of one simulator (one starter,
//! [`replicas_with`]), and [`SpreadLoad`], requests spread round robin over them.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use genesys_proxy::Settings;
use genesys_sim::Simulator;

use super::{ADMIN_KEY, Reply, installed, proxy_settings, serve_proxy};

/// A running (or stopped) `redis-server` on a fixed port.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    role: Role,
    /// Its `requirepass`, if any.
    password: Option<String>,
    /// Its working directory (a replica writes the RDB it receives there).
    dir: TestDir,
}

/// How a server is started, besides its port.
enum Role {
    /// Plain Redis, with these extra arguments (`--replicaof ...`).
    Plain(Vec<String>),
    /// Redis over TLS only, with these files; `verify_clients`: clients must present a
    /// certificate of the CA.
    Tls {
        files: Arc<TlsFiles>,
        verify_clients: bool,
    },
    /// A Sentinel, with its configuration file (which it rewrites) in its directory.
    Sentinel,
}

/// The path of `name` on `PATH`; `None` (the test is skipped) when it is missing, outside
/// CI ([`installed`]).
fn tool(name: &str, package: &str, test: &str) -> Option<PathBuf> {
    installed(
        name,
        &format!("apt-get install {package}; needed by {test}"),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl RedisServer {
    fn launch(test: &str, role: Role, password: Option<&str>) -> Option<Self> {
        let binary = tool("redis-server", "redis-server", test)?;
        let mut server = Self {
            binary,
            port: free_port(),
            child: None,
            role,
            password: password.map(str::to_owned),
            dir: TestDir::new("redis"),
        };
        server.restart();
        Some(server)
    }

    /// Starts a `redis-server` on a free port; `None` (skipped) when it is not installed,
    /// outside CI.
    pub fn start(test: &str) -> Option<Self> {
        Self::launch(test, Role::Plain(Vec::new()), None)
    }

    /// As [`start`](Self::start), with `requirepass password`.
    pub fn start_with_password(test: &str, password: &str) -> Option<Self> {
        Self::launch(test, Role::Plain(Vec::new()), Some(password))
    }

    /// Starts a `redis-server` replicating `master`, and waits until it has synced.
    pub fn start_replica_of(test: &str, master: &RedisServer) -> Option<Self> {
        let args = vec![
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master.port.to_string(),
        ];
        let mut args = args;
        if let Some(password) = &master.password {
            args.extend(["--masterauth".to_owned(), password.clone()]);
        }
        let replica = Self::launch(test, Role::Plain(args), master.password.as_deref())?;
        for _ in 0..400 {
            let info = replica
                .command(&["INFO", "replication"])
                .unwrap_or_default();
            if info.contains("master_link_status:up") {
                return Some(replica);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the replica on port {} never synced", replica.port);
    }

    /// Starts a `redis-server` that speaks TLS only (no plain port), with `files`' server
    /// certificate; `verify_clients`: it asks for a client certificate of `files`' CA.
    pub fn start_tls(test: &str, files: &Arc<TlsFiles>, verify_clients: bool) -> Option<Self> {
        Self::launch(
            test,
            Role::Tls {
                files: files.clone(),
                verify_clients,
            },
            None,
        )
    }

    /// Starts a Sentinel that monitors `master` under the name `name` (quorum 1), with
    /// the master's password, over TLS when the master speaks TLS.
    pub fn start_sentinel(test: &str, master: &RedisServer, name: &str) -> Option<Self> {
        Self::start_sentinel_with_password(test, master, name, None)
    }

    /// As [`start_sentinel`](Self::start_sentinel), the Sentinel itself requiring
    /// `password` when given.
    pub fn start_sentinel_with_password(
        test: &str,
        master: &RedisServer,
        name: &str,
        password: Option<&str>,
    ) -> Option<Self> {
        let dir = TestDir::new("sentinel");
        let port = free_port();
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {name} 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 5000\n",
            dir.path().display(),
            master.port
        );
        if let Some(master_password) = &master.password {
            conf.push_str(&format!("sentinel auth-pass {name} {master_password}\n"));
        }
        if let Some(password) = password {
            conf.push_str(&format!("requirepass {password}\n"));
        }
        if let Role::Tls { files, .. } = &master.role {
            // It reaches a TLS master over TLS (its own port stays plain).
            conf.push_str(&format!(
                "tls-replication yes\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n",
                files.client_cert.display(),
                files.client_key.display(),
                files.ca.display()
            ));
        }
        std::fs::write(dir.path().join("sentinel.conf"), conf).expect("sentinel.conf written");
        let binary = tool("redis-server", "redis-server", test)?;
        let mut sentinel = Self {
            binary,
            port,
            child: None,
            role: Role::Sentinel,
            password: password.map(str::to_owned),
            dir,
        };
        sentinel.restart();
        Some(sentinel)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` over TLS).
    pub fn url(&self) -> String {
        let scheme = match self.role {
            Role::Tls { .. } => "rediss",
            _ => "redis",
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
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
        let port = self.port.to_string();
        let mut command = Command::new(&self.binary);
        match &self.role {
            Role::Plain(extra) => {
                command.args(["--port", &port]).args(extra);
            }
            Role::Tls {
                files,
                verify_clients,
            } => {
                command
                    .args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(&files.server_cert)
                    .arg("--tls-key-file")
                    .arg(&files.server_key)
                    .arg("--tls-ca-cert-file")
                    .arg(&files.ca)
                    .args([
                        "--tls-auth-clients",
                        if *verify_clients { "yes" } else { "no" },
                    ]);
            }
            Role::Sentinel => {
                command
                    .arg(self.dir.path().join("sentinel.conf"))
                    .arg("--sentinel");
            }
        }
        if !matches!(self.role, Role::Sentinel) {
            command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
            command.arg("--dir").arg(self.dir.path());
            if let Some(password) = &self.password {
                command.args(["--requirepass", password]);
            }
        }
        let child = command
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

    /// `redis-cli` for this server (over TLS, trusting its CA, with a client certificate).
    fn cli(&self) -> Command {
        let mut cli = Command::new("redis-cli");
        cli.args(["-p", &self.port.to_string()]);
        if let Some(password) = &self.password {
            cli.args(["--no-auth-warning", "-a", password]);
        }
        if let Role::Tls { files, .. } = &self.role {
            cli.arg("--tls")
                .arg("--cacert")
                .arg(&files.ca)
                .arg("--cert")
                .arg(&files.client_cert)
                .arg("--key")
                .arg(&files.client_key);
        }
        cli
    }

    /// Runs one command (with `redis-cli`'s plain output): its reply, or `None` when the
    /// server does not answer.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let output = self
            .cli()
            .arg("--no-raw")
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        (output.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// The first key whose name ends with `suffix` (the proxy's keys carry a prefix), if
    /// the server holds one.
    pub fn key_ending(&self, suffix: &str) -> Option<String> {
        self.command(&["--raw", "KEYS", &format!("*{suffix}")])?
            .lines()
            .find(|key| key.ends_with(suffix))
            .map(str::to_owned)
    }

    /// The raw bytes of `key`'s value (empty when absent).
    pub fn raw(&self, key: &str) -> Vec<u8> {
        self.cli()
            .args(["--raw", "GET", key])
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

/// A directory of a test's own under the system's temporary directory, removed on drop.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(what: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "genesys-proxy-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private CA, a server certificate it signs for `127.0.0.1` (IP SAN), a client
/// certificate it signs (mutual TLS), and an unrelated CA: PEM files made by `openssl` at
/// test time.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed none of these.
    pub other_ca: PathBuf,
    _dir: TestDir,
}

impl TlsFiles {
    /// Generates the files; `None` (skipped) when `openssl` is not installed, outside CI.
    pub fn generate(test: &str) -> Option<Arc<Self>> {
        let openssl = tool("openssl", "openssl", test)?;
        let dir = TestDir::new("tls");
        let path = |name: &str| dir.path().join(name);
        let run = |args: &[&str]| {
            let output = Command::new(&openssl)
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl runs");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let self_signed_ca = |name: &str, subject: &str| {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ]);
        };
        let signed = |name: &str, subject: &str, extensions: &str| {
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]);
            std::fs::write(path(&format!("{name}.ext")), extensions).expect("extensions");
            run(&[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ]);
        };
        self_signed_ca("ca", "/CN=genesys-proxy test CA");
        self_signed_ca("other-ca", "/CN=another CA");
        signed(
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        signed(
            "client",
            "/CN=genesys-proxy replica",
            "extendedKeyUsage=clientAuth\n",
        );
        Some(Arc::new(Self {
            ca: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
            other_ca: path("other-ca.pem"),
            _dir: dir,
        }))
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
