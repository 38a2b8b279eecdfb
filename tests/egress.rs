//! Egress as an operator meets it: the real binary, configured by the standard proxy
//! variables. Calls to Genesys tunnel through `HTTPS_PROXY` (the `CONNECT`s are counted
//! by a tiny proxy here), a refused `CONNECT` is reported naming the proxy (never its
//! credentials or a secret), and loopback calls (the demo's simulator, the healthcheck)
//! never take a proxy, whatever `HTTP_PROXY` says.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use genesys_sim::Simulator;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

const KEY: &str = "gp_egress_test_key_0123456789abcdefghijklmnopqrstuv";
const CLIENT_SECRET: &str = "egress-client-secret-never-shown";
const PROXY_PASSWORD: &str = "proxy-password-never-shown";

/// A tiny egress proxy: records the head of every request it gets; answers a `CONNECT`
/// with 200 and then closes the tunnel (no TLS behind it), or with 403 while refusing;
/// answers anything else with 502.
struct EgressProxy {
    address: String,
    heads: Arc<Mutex<Vec<String>>>,
    refuse: Arc<AtomicBool>,
}

impl EgressProxy {
    async fn start(refuse: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let refuse = Arc::new(AtomicBool::new(refuse));
        let (seen, refusing) = (heads.clone(), refuse.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (seen, refusing) = (seen.clone(), refusing.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let answer: &[u8] = if !head.starts_with("CONNECT ") {
                        b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    } else if refusing.load(Ordering::SeqCst) {
                        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 Connection established\r\n\r\n"
                    };
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(head);
                    let _ = socket.write_all(answer).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            address,
            heads,
            refuse,
        }
    }

    fn heads(&self) -> Vec<String> {
        self.heads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn connects_to(&self, destination: &str) -> usize {
        let line = format!("CONNECT {destination} HTTP/1.1\r\n");
        self.heads().iter().filter(|h| h.starts_with(&line)).count()
    }
}

/// The binary, running, its output collected line by line.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
    });
    lines
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_genesys-proxy"));
        command.args(args).env_clear();
        if let Ok(path) = std::env::var("PATH") {
            command.env("PATH", path);
        }
        command
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the binary starts");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn all(lines: &Mutex<Vec<String>>) -> String {
        lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    fn stderr(&self) -> String {
        Self::all(&self.stderr)
    }

    /// The first line of `stream` that `matches`, waiting for it.
    async fn line(&self, stream: &Mutex<Vec<String>>, matches: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let found = stream
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|l| matches(l))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no such line; stdout:\n{}\nstderr:\n{}",
                Self::all(&self.stdout),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The base URL the proxy listens on (from its JSON start-up log line).
    async fn base(&self) -> String {
        let line = self
            .line(&self.stderr, |l| {
                l.contains("genesys-proxy listening") && l.starts_with('{')
            })
            .await;
        let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
        format!("http://{}", event["address"].as_str().expect("address"))
    }
}

/// A settings file with the test client.
struct ConfigFile(std::path::PathBuf);

impl ConfigFile {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "genesys-proxy-egress-{}-{}.toml",
            std::process::id(),
            fastrand::u64(..)
        ));
        let contents = format!(
            "[[clients]]\nname = \"egress-test\"\nkey_sha256 = \"{}\"\nscopes = [\"admin\"]\n",
            genesys_proxy::auth::hash_key(KEY)
        );
        std::fs::write(&path, contents).expect("config written");
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

/// A client of the test itself: never through a proxy.
fn direct() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn get(base: &str, path: &str) -> (u16, serde_json::Value) {
    let reply = direct()
        .get(format!("{base}{path}"))
        .header("x-api-key", KEY)
        .send()
        .await
        .expect("the proxy answers");
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or_default())
}

fn assert_no_secret(text: &str) {
    for secret in [PROXY_PASSWORD, CLIENT_SECRET, KEY] {
        assert!(!text.contains(secret), "a secret leaked:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_calls_tunnel_through_https_proxy_and_a_refused_connect_names_the_proxy() {
    let sim = Simulator::start(genesys_sim::SimConfig {
        client_secret: CLIENT_SECRET.into(),
        ..support::sim_config()
    })
    .await
    .expect("sim");
    let egress = EgressProxy::start(false).await;
    let plain_http_proxy = EgressProxy::start(true).await;
    let config = ConfigFile::new();
    let https_proxy = format!("http://egress-user:{PROXY_PASSWORD}@{}", egress.address);
    let http_proxy = format!("http://{}", plain_http_proxy.address);
    // The login host is the simulator on loopback (direct, whatever HTTP_PROXY says); the
    // API host is a name only the egress proxy resolves.
    let running = Running::start(
        &["--config", config.path(), "--listen", "127.0.0.1:0"],
        &[
            ("GENESYS_API_URL", "https://api.genesys.test/"),
            ("GENESYS_LOGIN_URL", &sim.base_url()),
            ("GENESYS_CLIENT_ID", genesys_sim::config::DEFAULT_CLIENT_ID),
            ("GENESYS_CLIENT_SECRET", CLIENT_SECRET),
            ("HTTPS_PROXY", &https_proxy),
            ("HTTP_PROXY", &http_proxy),
            ("GENESYS_PROXY_TELEMETRY__LOG_FORMAT", "json"),
        ],
    );
    let base = running.base().await;
    let ids: Vec<String> = sim.data().conversations[..2]
        .iter()
        .map(|c| c.id.to_string())
        .collect();

    // The proxy takes the call: CONNECT, with the credentials of HTTPS_PROXY.
    let (status, problem) = get(&base, &format!("/conversations/{}", ids[0])).await;
    assert_eq!(
        status,
        503,
        "no TLS behind the test proxy's tunnel: {problem}\n{}",
        running.stderr()
    );
    let tunnelled = egress.connects_to("api.genesys.test:443");
    assert!(tunnelled >= 1, "{:?}", egress.heads());
    assert!(
        egress.heads()[0]
            .to_ascii_lowercase()
            .contains("proxy-authorization: basic"),
        "{:?}",
        egress.heads()
    );
    assert!(
        plain_http_proxy.heads().is_empty(),
        "the loopback login host was called through HTTP_PROXY: {:?}",
        plain_http_proxy.heads()
    );
    assert_eq!(
        sim.counters().tokens_issued,
        1,
        "the token came from the simulator"
    );
    running
        .line(&running.stderr, |l| {
            l.contains("the TLS handshake with api.genesys.test was cut off") && l.contains(&ids[0])
        })
        .await;

    // The proxy refuses: the log names it (without its credentials).
    egress.refuse.store(true, Ordering::SeqCst);
    let (status, problem) = get(&base, &format!("/conversations/{}", ids[1])).await;
    assert_eq!(status, 503, "{problem}");
    assert!(egress.connects_to("api.genesys.test:443") > tunnelled);
    let expected = format!(
        "the egress proxy http://{} refused the CONNECT to api.genesys.test:443",
        egress.address
    );
    let line = running
        .line(&running.stderr, |l| {
            l.contains(&expected) && l.contains(&ids[1])
        })
        .await;
    let event: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(event["level"], "WARN", "{line}");
    assert_no_secret(&running.stderr());
    assert_no_secret(&problem.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_to_the_login_host_shows_in_readiness_naming_the_proxy() {
    let egress = EgressProxy::start(true).await;
    let config = ConfigFile::new();
    let https_proxy = format!("http://egress-user:{PROXY_PASSWORD}@{}", egress.address);
    let running = Running::start(
        &["--config", config.path(), "--listen", "127.0.0.1:0"],
        &[
            ("GENESYS_API_URL", "https://api.genesys.test/"),
            ("GENESYS_LOGIN_URL", "https://login.genesys.test/"),
            ("GENESYS_CLIENT_ID", genesys_sim::config::DEFAULT_CLIENT_ID),
            ("GENESYS_CLIENT_SECRET", CLIENT_SECRET),
            ("https_proxy", &https_proxy),
            ("GENESYS_PROXY_TELEMETRY__LOG_FORMAT", "json"),
        ],
    );
    let base = running.base().await;
    let expected = format!(
        "the egress proxy http://{} refused the CONNECT to login.genesys.test:443",
        egress.address
    );
    let started = Instant::now();
    let body = loop {
        let (status, body) = get(&base, "/readyz").await;
        let detail = body["components"]["genesys_token"]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if detail.contains(&expected) {
            assert_eq!(status, 503, "{body}");
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{body}\n{}",
            running.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(egress.connects_to("login.genesys.test:443") >= 1);
    running
        .line(&running.stderr, |l| {
            l.contains("Genesys token request failed") && l.contains(&expected)
        })
        .await;
    assert_no_secret(&body.to_string());
    assert_no_secret(&running.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_calls_its_simulator_directly_whatever_the_proxy_variables_say() {
    let hostile = EgressProxy::start(true).await;
    let proxy = format!("http://{}", hostile.address);
    let running = Running::start(
        &["--demo", "--listen", "127.0.0.1:0"],
        &[
            ("HTTP_PROXY", &proxy),
            ("HTTPS_PROXY", &proxy),
            ("ALL_PROXY", &proxy),
            ("http_proxy", &proxy),
        ],
    );
    let banner_line = running
        .line(&running.stdout, |l| {
            l.contains("genesys-proxy demo: proxy on ")
        })
        .await;
    let base = banner_line
        .split("proxy on ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the proxy's address")
        .to_owned();
    let key_line = running
        .line(&running.stdout, |l| l.contains("demo API key"))
        .await;
    let key = key_line.rsplit(' ').next().expect("the key").to_owned();
    let ids_line = running
        .line(&running.stdout, |l| l.contains("ended conversations:"))
        .await;
    let id = ids_line.rsplit(' ').next().expect("an id").to_owned();

    let reply = direct()
        .get(format!("{base}/conversations/{id}"))
        .header("x-api-key", key)
        .send()
        .await
        .expect("the demo answers");
    assert_eq!(reply.status(), 200, "{}", running.stderr());
    assert!(
        hostile.heads().is_empty(),
        "a loopback call went to the proxy: {:?}",
        hostile.heads()
    );
}

/// The healthcheck probe, run by the test below in a process of its own whose
/// environment names a proxy (a test cannot change its own environment safely).
#[tokio::test]
#[ignore = "run by the_healthcheck_client_never_takes_a_proxy, in a child process"]
async fn healthcheck_probe_in_child_process() {
    let Ok(url) = std::env::var("EGRESS_TEST_PROBE_URL") else {
        return;
    };
    let client = genesys_proxy::egress::local_client(Duration::from_secs(10)).expect("client");
    let reply = client.get(&url).send().await.expect("the probe answers");
    assert_eq!(reply.status(), 200, "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_client_never_takes_a_proxy() {
    let app = support::TestApp::default_app().await;
    let hostile = EgressProxy::start(true).await;
    let proxy = format!("http://{}", hostile.address);
    let url = format!("{}/healthz", app.base);
    let mut child = Command::new(std::env::current_exe().expect("this test binary"));
    child
        .args([
            "--exact",
            "healthcheck_probe_in_child_process",
            "--ignored",
            "--nocapture",
        ])
        .env("EGRESS_TEST_PROBE_URL", &url)
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env("ALL_PROXY", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let output = tokio::task::spawn_blocking(move || child.output())
        .await
        .expect("join")
        .expect("the child runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the probe ran: {text}");
    assert!(hostile.heads().is_empty(), "{:?}", hostile.heads());
}
