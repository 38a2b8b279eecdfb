//! The listeners as a slow or greedy client meets them, over raw TCP: a half-sent request is
//! closed at `server.header_read_timeout_ms`, a fresh or keep-alive connection that sends
//! nothing at `server.idle_timeout_ms`; a shutdown waits for neither; connections past
//! `server.max_connections` wait until one closes, while the operations listener
//! (`server.ops_listen`) keeps answering probes and scrapes, which it alone serves.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use support::{ADMIN_KEY, proxy_settings, sim_config};

/// Longest wait for something that must happen (a close, an answer): generous for a loaded
/// two-core machine; the assertions that matter are the lower bounds and the orders.
const PATIENCE: Duration = Duration::from_secs(20);

/// Timers are set in milliseconds and a connection's times are kept to the millisecond:
/// a close may come this much before the exact limit as the client measures it.
const ROUNDING: Duration = Duration::from_millis(50);

/// A proxy serving in a task, with its simulator.
struct Proxy {
    _sim: genesys_sim::Simulator,
    api: SocketAddr,
    ops: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: JoinHandle<std::io::Result<()>>,
}

impl Proxy {
    async fn start(settings: genesys_proxy::Settings) -> Self {
        let sim = genesys_sim::Simulator::start(sim_config())
            .await
            .expect("sim starts");
        let connection = genesys_proxy::config::GenesysConnection {
            endpoints: genesys_proxy::upstream::Endpoints::explicit(
                &sim.base_url(),
                &sim.base_url(),
            )
            .expect("urls"),
            credentials: support::credentials(genesys_sim::config::DEFAULT_CLIENT_SECRET),
        };
        let app = genesys_proxy::App::build(settings, connection)
            .await
            .expect("proxy builds");
        let (api, ops) = (app.local_addr(), app.ops_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(app.serve(async {
            let _ = stopped.await;
        }));
        Self {
            _sim: sim,
            api,
            ops,
            stop: Some(stop),
            served,
        }
    }
}

/// Settings with the two time limits given, in milliseconds.
fn settings_with_limits(header_read_ms: u64, idle_ms: u64) -> genesys_proxy::Settings {
    let mut settings = proxy_settings();
    settings.server.header_read_timeout_ms = header_read_ms;
    settings.server.idle_timeout_ms = idle_ms;
    settings
}

/// One whole response read off `stream`: its status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().expect("a length"));
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().expect("a status");
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                return (status, body);
            }
        }
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the connection closed before a whole response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A request for `path` (kept alive), written whole.
async fn send_request(stream: &mut TcpStream, path: &str) {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request written");
}

/// `GET path` on `stream`, answered.
async fn get(stream: &mut TcpStream, path: &str) -> (u16, String) {
    send_request(stream, path).await;
    read_response(stream).await
}

/// How long after `since` the server closed `stream` (end of stream or reset), reading and
/// dropping whatever comes first; `None` if it is still open after [`PATIENCE`].
async fn closed_after(mut stream: TcpStream, since: Instant) -> Option<Duration> {
    let mut chunk = [0_u8; 1024];
    let deadline = since + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn half_sent_and_idle_connections_are_closed_at_their_limits() {
    let header_read = Duration::from_millis(1_000);
    let idle = Duration::from_millis(4_000);
    let proxy = Proxy::start(settings_with_limits(1_000, 4_000)).await;

    // A connection that sends nothing at all.
    let fresh = TcpStream::connect(proxy.api).await.expect("connects");
    let fresh_since = Instant::now();
    // A keep-alive connection, idle after one answered request.
    let mut kept = TcpStream::connect(proxy.api).await.expect("connects");
    assert_eq!(get(&mut kept, "/healthz").await.0, 200);
    let kept_since = Instant::now();
    // A request whose headers never end.
    let mut half = TcpStream::connect(proxy.api).await.expect("connects");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n")
        .await
        .expect("written");
    let half_since = Instant::now();

    let (fresh, kept, half) = tokio::join!(
        closed_after(fresh, fresh_since),
        closed_after(kept, kept_since),
        closed_after(half, half_since),
    );

    let half = half.expect("the half-sent request's connection is closed");
    assert!(
        half + ROUNDING >= header_read && half < idle,
        "closed by the header-read limit ({header_read:?}), before the idle one: after {half:?}"
    );
    for (what, closed) in [("fresh", fresh), ("keep-alive", kept)] {
        let closed = closed.unwrap_or_else(|| panic!("the idle {what} connection is closed"));
        assert!(
            closed + ROUNDING >= idle,
            "the idle {what} connection was closed by the idle limit ({idle:?}), not before: after {closed:?}"
        );
    }
}

#[tokio::test]
async fn a_connection_that_keeps_asking_is_not_idle() {
    // Requests every 200 ms for 4 s on a connection with a 2 s idle limit: each answer
    // starts its idle time again.
    let idle = Duration::from_secs(2);
    let proxy = Proxy::start(settings_with_limits(2_000, 2_000)).await;
    let mut stream = TcpStream::connect(proxy.api).await.expect("connects");
    let started = Instant::now();
    while started.elapsed() < 2 * idle {
        assert_eq!(get(&mut stream, "/healthz").await.0, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let since = Instant::now();
    let closed = closed_after(stream, since)
        .await
        .expect("closed once it stops asking");
    assert!(
        closed + ROUNDING >= idle - Duration::from_millis(200),
        "{closed:?}"
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_half_sent_request_beyond_its_header_limit() {
    let mut settings = settings_with_limits(1_000, 60_000);
    settings.server.shutdown_grace_secs = 60;
    let mut proxy = Proxy::start(settings).await;
    // A request begun on a fresh connection and never finished (hyper itself would wait
    // for it to end: it is a request in progress).
    let mut half = TcpStream::connect(proxy.api).await.expect("connects");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: pro")
        .await
        .expect("written");
    let half_since = Instant::now();
    // An idle keep-alive connection, connected after it: that this one was answered shows
    // the half-sent one was accepted too (the listen backlog is first in, first out).
    let mut idle = TcpStream::connect(proxy.api).await.expect("connects");
    assert_eq!(get(&mut idle, "/healthz").await.0, 200);

    let stopping = Instant::now();
    let _ = proxy.stop.take().expect("running").send(());
    let idle_closed = closed_after(idle, stopping)
        .await
        .expect("the idle connection is closed on shutdown");
    tokio::time::timeout(PATIENCE, &mut proxy.served)
        .await
        .expect("the server stopped well within its 60 s grace")
        .expect("task")
        .expect("clean stop");
    let drained = half_since.elapsed();
    assert!(
        idle_closed < Duration::from_secs(1),
        "an idle connection is closed at once on shutdown: after {idle_closed:?}"
    );
    assert!(
        drained + ROUNDING >= Duration::from_secs(1),
        "the shutdown let the half-sent request have its header-read time: {drained:?}"
    );
    assert!(
        closed_after(half, Instant::now()).await.is_some(),
        "the half-sent request's connection is closed"
    );
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes_while_the_ops_listener_answers() {
    let mut settings = settings_with_limits(10_000, 60_000);
    settings.server.max_connections = 2;
    settings.server.ops_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let proxy = Proxy::start(settings).await;
    let ops = proxy.ops.expect("an ops listener");
    // Two connections take the two places (each answered, so each was accepted).
    let mut first = TcpStream::connect(proxy.api).await.expect("connects");
    assert_eq!(get(&mut first, "/healthz").await.0, 200);
    let mut second = TcpStream::connect(proxy.api).await.expect("connects");
    assert_eq!(get(&mut second, "/healthz").await.0, 200);

    // A third: the kernel completes its handshake, but the proxy does not take it.
    let mut third = TcpStream::connect(proxy.api).await.expect("connects");
    send_request(&mut third, "/healthz").await;
    let mut byte = [0_u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_secs(1), third.peek(&mut byte))
            .await
            .is_err(),
        "a connection past the cap is not answered while the cap is full"
    );
    // Probes and scrapes have their own listener and cap.
    let mut probe = TcpStream::connect(ops).await.expect("connects");
    assert_eq!(get(&mut probe, "/healthz").await.0, 200);
    assert_eq!(get(&mut probe, "/readyz").await.0, 200);

    // One place frees up: the waiting connection is taken and answered.
    drop(first);
    let (status, body) = tokio::time::timeout(PATIENCE, read_response(&mut third))
        .await
        .expect("answered once a place is free");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    assert_eq!(
        get(&mut second, "/healthz").await.0,
        200,
        "the others go on"
    );
}

#[tokio::test]
async fn the_ops_listener_serves_probes_and_metrics_and_nothing_else() {
    let mut settings = proxy_settings();
    settings.server.ops_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let proxy = Proxy::start(settings).await;
    let mut ops = TcpStream::connect(proxy.ops.expect("an ops listener"))
        .await
        .expect("connects");
    assert_eq!(
        get(&mut ops, "/healthz").await,
        (200, r#"{"status":"ok"}"#.to_owned())
    );
    let (status, body) = get(&mut ops, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&mut ops, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("genesys_proxy_http_requests_total"),
        "Prometheus text: {body}"
    );
    for path in [
        "/admin/cache",
        "/reports/search?last=PT15M",
        "/openapi.json",
        "/conversations/00000000-0000-4000-8000-000000000000",
    ] {
        let (status, _) = get(&mut ops, path).await;
        assert_eq!(status, 404, "{path} is not an operations endpoint");
    }
}

#[tokio::test]
async fn with_an_ops_listener_readiness_and_metrics_leave_the_api_port() {
    let mut settings = proxy_settings();
    settings.server.ops_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let proxy = Proxy::start(settings).await;
    let mut api = TcpStream::connect(proxy.api).await.expect("connects");
    assert_eq!(get(&mut api, "/healthz").await.0, 200, "liveness stays");
    for path in ["/readyz", "/metrics"] {
        let (status, body) = get(&mut api, path).await;
        assert_eq!(status, 404, "{path} is on the ops listener only: {body}");
    }
}

#[tokio::test]
async fn the_ops_listener_refuses_a_body_past_the_limit_as_the_api_port_does() {
    let mut settings = proxy_settings();
    settings.server.ops_listen = Some("127.0.0.1:0".parse().expect("addr"));
    settings.server.body_limit_bytes = 1024;
    let proxy = Proxy::start(settings).await;
    for (listener, path) in [
        (proxy.ops.expect("an ops listener"), "/metrics"),
        (proxy.ops.expect("an ops listener"), "/healthz"),
        (proxy.api, "/healthz"),
    ] {
        let mut stream = TcpStream::connect(listener).await.expect("connects");
        let body = "x".repeat(4096);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: proxy\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request written");
        let (status, answer) = read_response(&mut stream).await;
        assert_eq!(status, 413, "{path} on {listener}: {answer}");
        // Within the limit, the same request is answered.
        let mut stream = TcpStream::connect(listener).await.expect("connects");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: proxy\r\nContent-Length: 10\r\n\r\n0123456789");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request written");
        assert_eq!(
            read_response(&mut stream).await.0,
            200,
            "{path} on {listener}"
        );
    }
}
