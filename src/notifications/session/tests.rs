//! The session's timing with paused time, a fake REST API and in-memory sockets.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::*;

/// The REST side: counts calls, answers with channels living `lifetime`.
#[derive(Debug)]
pub(crate) struct FakeApi {
    pub(crate) created: AtomicU32,
    pub(crate) subscriptions: Mutex<Vec<(String, usize)>>,
    pub(crate) lifetime: chrono::Duration,
    pub(crate) refuse_subscribe: bool,
    pub(crate) queues: Mutex<Vec<Uuid>>,
}

impl FakeApi {
    pub(crate) fn new() -> Self {
        Self {
            created: AtomicU32::new(0),
            subscriptions: Mutex::default(),
            lifetime: chrono::Duration::hours(24),
            refuse_subscribe: false,
            queues: Mutex::default(),
        }
    }

    pub(crate) fn created(&self) -> u32 {
        self.created.load(Ordering::SeqCst)
    }

    pub(crate) fn subscriptions(&self) -> Vec<(String, usize)> {
        self.subscriptions.lock().expect("lock").clone()
    }
}

#[async_trait]
impl ChannelApi for FakeApi {
    async fn create_channel(&self) -> Result<Channel, UpstreamError> {
        let n = self.created.fetch_add(1, Ordering::SeqCst) + 1;
        let expires = (chrono::Utc::now() + self.lifetime)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Ok(Channel {
            connect_uri: format!("mem://channel-{n}"),
            id: format!("channel-{n}"),
            expires: Some(expires),
        })
    }

    async fn subscribe(&self, channel_id: &str, topics: &[String]) -> Result<(), UpstreamError> {
        if self.refuse_subscribe {
            return Err(UpstreamError::Forbidden {
                message: "missing permission".into(),
            });
        }
        self.subscriptions
            .lock()
            .expect("lock")
            .push((channel_id.to_owned(), topics.len()));
        Ok(())
    }

    async fn queues(&self) -> Result<Vec<Uuid>, UpstreamError> {
        Ok(self.queues.lock().expect("lock").clone())
    }
}

/// The server's end of an in-memory socket.
#[derive(Debug)]
pub(crate) struct ServerEnd {
    pub(crate) uri: String,
    pub(crate) at: Instant,
    pub(crate) to_client: mpsc::UnboundedSender<String>,
    pub(crate) from_client: mpsc::UnboundedReceiver<String>,
}

struct MemorySocket {
    from_server: mpsc::UnboundedReceiver<String>,
    to_server: mpsc::UnboundedSender<String>,
}

#[async_trait]
impl Socket for MemorySocket {
    async fn next_text(&mut self) -> Option<String> {
        self.from_server.recv().await
    }

    async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.to_server
            .send(text.to_owned())
            .map_err(|_| "closed".to_owned())
    }
}

/// Hands each connection's server end to the test; refuses the first `refuse` ones.
#[derive(Debug)]
pub(crate) struct MemoryConnector {
    pub(crate) accepted: mpsc::UnboundedSender<ServerEnd>,
    pub(crate) refuse: AtomicU32,
}

#[async_trait]
impl Connector for MemoryConnector {
    async fn connect(&self, uri: &str) -> Result<Box<dyn Socket>, String> {
        if self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("refused".into());
        }
        let (to_client, from_server) = mpsc::unbounded_channel();
        let (to_server, from_client) = mpsc::unbounded_channel();
        let _ = self.accepted.send(ServerEnd {
            uri: uri.to_owned(),
            at: Instant::now(),
            to_client,
            from_client,
        });
        Ok(Box::new(MemorySocket {
            from_server,
            to_server,
        }))
    }
}

/// Records what the session hands over.
#[derive(Debug, Default)]
pub(crate) struct RecordingSink {
    pub(crate) events: Mutex<Vec<Value>>,
    pub(crate) gaps: AtomicU64,
    /// Live sockets: each `live(true)` adds one, each `live(false)` takes one.
    pub(crate) live: std::sync::atomic::AtomicI64,
}

#[async_trait]
impl EventSink for RecordingSink {
    async fn event(&self, body: &Value) -> EventOutcome {
        self.events.lock().expect("lock").push(body.clone());
        EventOutcome::Applied
    }

    async fn gap(&self) -> u64 {
        self.gaps.fetch_add(1, Ordering::SeqCst);
        0
    }

    fn live(&self, _topics: &[String], live: bool) {
        self.live
            .fetch_add(if live { 1 } else { -1 }, Ordering::SeqCst);
    }
}

struct Harness {
    api: Arc<FakeApi>,
    sink: Arc<RecordingSink>,
    stats: Arc<NotificationStats>,
    accepted: mpsc::UnboundedReceiver<ServerEnd>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Ended>,
}

impl Harness {
    fn start(api: FakeApi, refuse: u32, settings: NotificationSettings) -> Self {
        let api = Arc::new(api);
        let sink = Arc::new(RecordingSink::default());
        let stats = Arc::new(NotificationStats::default());
        let (tx, accepted) = mpsc::unbounded_channel();
        let connector = Arc::new(MemoryConnector {
            accepted: tx,
            refuse: AtomicU32::new(refuse),
        });
        let (stop, stopped) = watch::channel(false);
        let session = Session {
            api: api.clone(),
            connector,
            sink: sink.clone(),
            stats: stats.clone(),
            settings: Arc::new(settings),
            topics: vec!["v2.routing.queues.q.conversations".into()],
        };
        let task = tokio::spawn(session.run(stopped));
        Self {
            api,
            sink,
            stats,
            accepted,
            stop,
            task,
        }
    }

    async fn next_socket(&mut self) -> ServerEnd {
        self.accepted.recv().await.expect("a connection")
    }

    async fn finish(self) -> Ended {
        let _ = self.stop.send(true);
        self.task.await.expect("the session ends")
    }
}

const HEARTBEAT: &str =
    r#"{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}"#;

fn settings() -> NotificationSettings {
    NotificationSettings::default()
}

#[tokio::test(start_paused = true)]
async fn it_connects_then_subscribes_and_hands_over_conversation_events() {
    let mut h = Harness::start(FakeApi::new(), 0, settings());
    let server = h.next_socket().await;
    assert_eq!(server.uri, "mem://channel-1");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.api.subscriptions(), [("channel-1".to_owned(), 1)]);
    let event = r#"{"topicName":"v2.routing.queues.00000000-0000-0000-0000-000000000001.conversations","version":"2","eventBody":{"id":"c1"},"metadata":{"CorrelationId":"x"}}"#;
    server.to_client.send(event.into()).expect("open");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        *h.sink.events.lock().expect("lock"),
        [serde_json::json!({"id": "c1"})]
    );
    assert_eq!(h.stats.gaps(), 0);
    assert_eq!(
        h.sink.live.load(Ordering::SeqCst),
        1,
        "live while connected"
    );
    let sink = h.sink.clone();
    assert_eq!(h.finish().await, Ended::Shutdown);
    assert_eq!(
        sink.live.load(Ordering::SeqCst),
        0,
        "not live after shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_socket_reconnects_to_the_same_channel_with_growing_pauses() {
    let mut h = Harness::start(FakeApi::new(), 0, settings());
    let mut times = Vec::new();
    for _ in 0..4 {
        let server = h.next_socket().await;
        assert_eq!(server.uri, "mem://channel-1", "the same channel");
        times.push(server.at);
        drop(server);
    }
    let pauses: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // 500 ms, 1 s, 2 s, each jittered down by at most a fifth.
    for (pause, nominal) in pauses.iter().zip([500, 1_000, 2_000]) {
        let nominal = Duration::from_millis(nominal);
        assert!(
            *pause <= nominal && *pause >= nominal.mul_f64(0.8),
            "{pauses:?}"
        );
    }
    assert_eq!(h.api.created(), 1, "no new channel");
    assert_eq!(
        h.api.subscriptions().len(),
        1,
        "subscriptions live with the channel"
    );
    assert_eq!(h.stats.reconnects(Reconnect::Dropped), 3);
    assert_eq!(h.sink.gaps.load(Ordering::SeqCst), 3, "each drop is a gap");
    assert_eq!(
        h.sink.live.load(Ordering::SeqCst),
        1,
        "three drops seen, the fourth socket still live: live once"
    );
    // A frame received resets the backoff.
    let server = h.next_socket().await;
    server.to_client.send(HEARTBEAT.into()).expect("open");
    tokio::time::sleep(Duration::from_millis(1)).await;
    let dropped_at = Instant::now();
    drop(server);
    let next = h.next_socket().await;
    assert!(next.at - dropped_at <= Duration::from_millis(500));
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_the_socket_and_silence_pings_then_reconnects() {
    let mut h = Harness::start(FakeApi::new(), 0, settings());
    let mut server = h.next_socket().await;
    // Ten minutes of heartbeats every 30 s: no ping, no reconnection.
    let mut silent_from = Instant::now();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        server.to_client.send(HEARTBEAT.into()).expect("open");
        silent_from = Instant::now();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(server.from_client.try_recv().is_err(), "no ping needed");
    assert_eq!(h.stats.reconnects(Reconnect::Silence), 0);
    assert_eq!(h.stats.gaps(), 0);
    // Then silence: a ping after 45 s, the socket replaced after 75 s.
    let ping = server.from_client.recv().await.expect("a ping");
    assert_eq!(ping, r#"{"message":"ping"}"#);
    assert_eq!(Instant::now() - silent_from, Duration::from_secs(45));
    let next = h.next_socket().await;
    assert!(next.at - silent_from >= Duration::from_secs(75));
    assert_eq!(h.stats.reconnects(Reconnect::Silence), 1);
    assert_eq!(h.sink.gaps.load(Ordering::SeqCst), 1);
    assert_eq!(next.uri, "mem://channel-1");
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_pong_counts_as_proof_of_life() {
    let mut h = Harness::start(FakeApi::new(), 0, settings());
    let mut server = h.next_socket().await;
    for _ in 0..5 {
        let _ = server.from_client.recv().await.expect("a ping");
        server
            .to_client
            .send(r#"{"topicName":"channel.metadata","eventBody":{"message":"pong"}}"#.into())
            .expect("open");
    }
    assert_eq!(h.stats.reconnects(Reconnect::Silence), 0);
    assert_eq!(h.sink.gaps.load(Ordering::SeqCst), 0);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn socket_closing_reconnects_at_once_to_the_same_uri() {
    let mut h = Harness::start(FakeApi::new(), 0, settings());
    let server = h.next_socket().await;
    server
        .to_client
        .send(
            r#"{"topicName":"v2.system.socket_closing","eventBody":{"message":"maintenance"}}"#
                .into(),
        )
        .expect("open");
    let closing_at = Instant::now();
    let next = h.next_socket().await;
    assert_eq!(next.uri, "mem://channel-1");
    assert_eq!(next.at, closing_at, "no pause");
    assert_eq!(h.stats.reconnects(Reconnect::SocketClosing), 1);
    assert_eq!(h.api.created(), 1);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_channel_is_re_created_before_it_expires_without_a_gap() {
    let api = FakeApi {
        lifetime: chrono::Duration::hours(3),
        ..FakeApi::new()
    };
    let mut h = Harness::start(api, 0, settings());
    let mut first = h.next_socket().await;
    let started = Instant::now();
    // Heartbeats until the renewal (an hour before the 3 h expiry).
    let second = loop {
        tokio::select! {
            next = h.accepted.recv() => break next.expect("the renewed socket"),
            () = tokio::time::sleep(Duration::from_secs(30)) => {
                first.to_client.send(HEARTBEAT.into()).expect("open");
            }
        }
    };
    let renewed_after = second.at - started;
    assert!(
        renewed_after >= Duration::from_secs(2 * 3_600 - 60)
            && renewed_after <= Duration::from_secs(2 * 3_600 + 60),
        "{renewed_after:?}"
    );
    assert_eq!(second.uri, "mem://channel-2");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        h.api.subscriptions(),
        [("channel-1".to_owned(), 1), ("channel-2".to_owned(), 1)]
    );
    assert!(first.to_client.is_closed(), "the old socket is dropped");
    let _ = first.from_client.try_recv();
    assert_eq!(h.sink.gaps.load(Ordering::SeqCst), 0, "make before break");
    assert_eq!(
        h.sink.live.load(Ordering::SeqCst),
        1,
        "live once, on the renewed socket"
    );
    assert_eq!(h.stats.reconnects(Reconnect::Renewal), 1);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn refused_connections_twice_in_a_row_make_a_new_channel() {
    let mut h = Harness::start(FakeApi::new(), 2, settings());
    let server = h.next_socket().await;
    assert_eq!(server.uri, "mem://channel-2");
    assert_eq!(h.api.created(), 2);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.api.subscriptions(), [("channel-2".to_owned(), 1)]);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_subscription_ends_the_session_with_the_refusal() {
    let api = FakeApi {
        refuse_subscribe: true,
        ..FakeApi::new()
    };
    let h = Harness::start(api, 0, settings());
    let ended = tokio::time::timeout(Duration::from_secs(60), h.task)
        .await
        .expect("ends")
        .expect("no panic");
    assert!(matches!(
        ended,
        Ended::Refused(UpstreamError::Forbidden { .. })
    ));
}
