//! Genesys notifications keep cached conversations fresh without polling.
//!
//! The subscriber ([`Notifications`]) finds the queues to watch (every queue of the org,
//! a configured list, or none: [`settings`]), plans their conversation topics over as few
//! channels as the limits allow ([`plan`]), and runs one [`session::Session`] per channel
//! (keep-alive, reconnection, renewal). Each conversation event updates the cached
//! conversation it names ([`apply`]; the merge and what it may change are
//! [`crate::conversations::pushed`]'s). When Genesys refuses (a missing permission, no
//! Notifications API), the proxy logs it once, says so in `/readyz` and keeps polling,
//! trying again every `retry_refused_secs`. In `all` mode it lists the queues again every
//! `rediscover_queues_secs` and subscribes anew when they changed. Figures: [`stats`].

pub mod api;
pub mod apply;
pub mod events;
pub mod plan;
pub mod session;
pub mod settings;
pub mod stats;
pub mod transport;

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use self::api::ChannelApi;
use self::apply::EventSink;
use self::session::{Ended, Session, is_refusal};
use self::settings::Mode;
pub use self::settings::NotificationSettings;
pub use self::stats::NotificationStats;
use self::stats::State;
use self::transport::Connector;
use crate::upstream::UpstreamError;

/// What the subscriber needs: the REST API, the socket transport, and where events go.
pub struct Parts {
    pub api: Arc<dyn ChannelApi>,
    pub connector: Arc<dyn Connector>,
    pub sink: Arc<dyn EventSink>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts").finish_non_exhaustive()
    }
}

/// The notification subscriber: built with the app, started when it serves, stopped at
/// shutdown.
#[derive(Debug)]
pub struct Notifications {
    settings: Arc<NotificationSettings>,
    stats: Arc<NotificationStats>,
    parts: Mutex<Option<Parts>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Notifications {
    /// A subscriber that will use `parts` once started.
    #[must_use]
    pub fn new(settings: NotificationSettings, parts: Parts) -> Self {
        let stats = Arc::new(NotificationStats::default());
        if !settings.enabled() {
            stats.set_state(State::Off);
        }
        Self {
            settings: Arc::new(settings),
            stats,
            parts: Mutex::new(Some(parts)),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
        }
    }

    /// The figures and state.
    #[must_use]
    pub fn stats(&self) -> &Arc<NotificationStats> {
        &self.stats
    }

    /// Starts subscribing (in the background) unless `mode = "off"`; once only.
    pub fn start(&self) {
        if !self.settings.enabled() {
            return;
        }
        let Some(parts) = self
            .parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let supervisor = Supervisor {
            settings: self.settings.clone(),
            stats: self.stats.clone(),
            parts,
        };
        let task = tokio::spawn(supervisor.run(self.stop.subscribe()));
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// Stops every session and waits for them.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        if self.settings.enabled() {
            self.stats.set_state(State::Stopped);
        }
    }
}

struct Supervisor {
    settings: Arc<NotificationSettings>,
    stats: Arc<NotificationStats>,
    parts: Parts,
}

/// How a subscription ended.
enum Outcome {
    Ended(Ended),
    /// The org's queues changed: subscribe to these.
    QueuesChanged(Vec<Uuid>),
}

impl Supervisor {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        let mut next_queues: Option<Vec<Uuid>> = None;
        loop {
            // A degraded subscriber stays degraded while it tries again.
            if !matches!(self.stats.state(), State::Degraded { .. }) {
                self.stats.set_state(State::Starting);
            }
            let listed = match next_queues.take() {
                Some(queues) => Ok(queues),
                None => self.queues().await,
            };
            let ended = match listed {
                Ok(queues) => {
                    failures = 0;
                    match self.subscribe(&queues, stop.clone()).await {
                        Outcome::Ended(ended) => ended,
                        Outcome::QueuesChanged(queues) => {
                            tracing::info!(
                                queues = queues.len(),
                                "notifications: the org's queues changed; subscribing anew"
                            );
                            // The old sockets are closed: events may have been missed.
                            let demoted = self.parts.sink.gap().await;
                            self.stats.gap(demoted);
                            next_queues = Some(queues);
                            continue;
                        }
                    }
                }
                Err(error) if is_refusal(&error) => Ended::Refused(error),
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, "notifications: cannot list the queues; retrying");
                    let pause = self
                        .settings
                        .reconnect_min()
                        .saturating_mul(1 << failures.min(10))
                        .min(self.settings.reconnect_max());
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        _ = stop.changed() => Ended::Shutdown,
                    }
                }
            };
            match ended {
                Ended::Shutdown => return,
                Ended::Refused(error) => {
                    self.degrade(&error).await;
                    tokio::select! {
                        () = tokio::time::sleep(self.settings.retry_refused()) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }

    /// Resolves when the org's queues differ from `current` (listed every
    /// `rediscover_queues_secs`; a failed listing changes nothing); never when
    /// rediscovery is off.
    async fn queues_changed(&self, current: &[Uuid]) -> Vec<Uuid> {
        let Some(every) = self.settings.rediscover_queues() else {
            return std::future::pending().await;
        };
        let mut current = current.to_vec();
        current.sort_unstable();
        loop {
            tokio::time::sleep(every).await;
            match self.parts.api.queues().await {
                Ok(mut listed) => {
                    listed.sort_unstable();
                    if listed != current {
                        return listed;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "notifications: cannot list the queues again");
                }
            }
        }
    }

    async fn queues(&self) -> Result<Vec<Uuid>, UpstreamError> {
        match self.settings.mode {
            Mode::List => Ok(self.settings.listed_queues().unwrap_or_default()),
            Mode::All => self.parts.api.queues().await,
            Mode::Off => Ok(Vec::new()),
        }
    }

    /// Runs one session per planned channel until shutdown or the first refusal (which
    /// stops the others).
    async fn subscribe(&self, queues: &[Uuid], stop: watch::Receiver<bool>) -> Outcome {
        let plan = plan::plan(
            queues,
            self.settings.max_topics_per_channel,
            self.settings.max_channels,
        );
        self.stats
            .planned(plan.channels.len(), plan.topics(), plan.left_out.len());
        if !plan.left_out.is_empty() {
            tracing::warn!(
                left_out = plan.left_out.len(),
                max_channels = self.settings.max_channels,
                max_topics_per_channel = self.settings.max_topics_per_channel,
                "notifications: more queues than the channels can hold; the rest are polled"
            );
        }
        if plan.channels.is_empty() {
            tracing::info!("notifications: no queue to subscribe to; conversations are polled");
            self.stats.set_state(State::Subscribed);
            let mut stop = stop;
            return tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => Outcome::Ended(Ended::Shutdown),
                queues = self.queues_changed(queues) => Outcome::QueuesChanged(queues),
            };
        }
        tracing::info!(
            channels = plan.channels.len(),
            topics = plan.topics(),
            "notifications: subscribing to queue conversation topics"
        );
        let (halt, halted) = watch::channel(false);
        let mut sessions = JoinSet::new();
        for topics in plan.channels {
            let session = Session {
                api: self.parts.api.clone(),
                connector: self.parts.connector.clone(),
                sink: self.parts.sink.clone(),
                stats: self.stats.clone(),
                settings: self.settings.clone(),
                topics,
            };
            sessions.spawn(session.run(halted.clone()));
        }
        let mut stop = stop;
        let outcome = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => Outcome::Ended(Ended::Shutdown),
            Some(Ok(ended)) = sessions.join_next() => Outcome::Ended(ended),
            queues = self.queues_changed(queues) => Outcome::QueuesChanged(queues),
        };
        let _ = halt.send(true);
        while sessions.join_next().await.is_some() {}
        outcome
    }

    /// Polling from now on: one log line per refusal, the state for `/readyz`, and the
    /// pushed conversations back on their TTLs.
    async fn degrade(&self, error: &UpstreamError) {
        self.stats.refused();
        let reason = match error {
            UpstreamError::NotFound => "Genesys has no Notifications API here (404)".to_owned(),
            UpstreamError::Forbidden { message } => format!(
                "Genesys refused (403: {message}); the OAuth client needs the permissions to list queues (routing:queue:view, mode \"all\") and those of the queue conversation topics"
            ),
            other => format!("Genesys refused the subscription ({other})"),
        };
        let retry_secs = self.settings.retry_refused_secs;
        let demoted = self.parts.sink.gap().await;
        self.stats.gap(demoted);
        let previous = self.stats.set_state(State::Degraded {
            reason: reason.clone(),
        });
        // One line per refusal; the same refusal again after a retry is not news.
        if previous
            != (State::Degraded {
                reason: reason.clone(),
            })
        {
            tracing::warn!(
                retry_secs,
                "notifications: {reason}; conversations are polled (TTL freshness), trying again every {retry_secs} s"
            );
        } else {
            tracing::debug!(%reason, "notifications: still refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::session::tests::{FakeApi, MemoryConnector, RecordingSink};
    use super::*;

    fn start(
        api: FakeApi,
        settings: NotificationSettings,
    ) -> (
        Notifications,
        Arc<FakeApi>,
        Arc<RecordingSink>,
        mpsc::UnboundedReceiver<super::session::tests::ServerEnd>,
    ) {
        let api = Arc::new(api);
        let sink = Arc::new(RecordingSink::default());
        let (accepted, sockets) = mpsc::unbounded_channel();
        let notifications = Notifications::new(
            settings,
            Parts {
                api: api.clone(),
                connector: Arc::new(MemoryConnector {
                    accepted,
                    refuse: AtomicU32::new(0),
                }),
                sink: sink.clone(),
            },
        );
        notifications.start();
        (notifications, api, sink, sockets)
    }

    fn queues(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn more_than_a_thousand_queues_are_spread_over_channels() {
        let api = FakeApi {
            queues: Mutex::new(queues(2_345)),
            ..FakeApi::new()
        };
        let (notifications, api, _, mut sockets) = start(api, NotificationSettings::default());
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(sockets.recv().await.expect("a socket per channel"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(api.created(), 3);
        let mut sizes: Vec<usize> = api.subscriptions().iter().map(|(_, n)| *n).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [781, 782, 782]);
        let stats = notifications.stats();
        assert_eq!(stats.state(), State::Subscribed);
        assert_eq!((stats.planned_channels(), stats.connected()), (3, 3));
        notifications.stop().await;
        assert_eq!(stats.connected(), 0);
        assert!(
            open.iter().all(|s| s.to_client.is_closed()),
            "sockets closed"
        );
        assert_eq!(stats.state(), State::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_subscription_degrades_to_polling_and_is_tried_again_later() {
        let api = FakeApi {
            queues: Mutex::new(queues(3)),
            refuse_subscribe: true,
            ..FakeApi::new()
        };
        let (notifications, api, sink, _sockets) = start(api, NotificationSettings::default());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats = notifications.stats();
        assert!(
            matches!(stats.state(), State::Degraded { .. }),
            "{:?}",
            stats.state()
        );
        let report = stats.readiness();
        assert_eq!(report["status"], "degraded");
        assert!(report["detail"].as_str().expect("detail").contains("403"));
        assert_eq!(
            sink.gaps.load(Ordering::SeqCst),
            1,
            "pushed entries back on TTLs"
        );
        assert_eq!(api.created(), 1);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(api.created(), 2, "tried again after retry_refused_secs");
        notifications.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn new_queues_are_found_and_subscribed_to() {
        let api = FakeApi {
            queues: Mutex::new(queues(3)),
            ..FakeApi::new()
        };
        // Silence is never fatal here (the memory sockets send no heartbeats).
        let settings = NotificationSettings {
            ping_after_secs: 100_000,
            silence_timeout_secs: 100_000,
            ..NotificationSettings::default()
        };
        let (notifications, api, sink, mut sockets) = start(api, settings);
        let first = sockets.recv().await.expect("a socket");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(api.subscriptions(), [("channel-1".to_owned(), 3)]);
        // Unchanged at the first listing again: nothing happens.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(api.created(), 1);
        *api.queues.lock().expect("lock") = queues(4);
        let second = sockets.recv().await.expect("a new socket");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            api.subscriptions(),
            [("channel-1".to_owned(), 3), ("channel-2".to_owned(), 4)]
        );
        assert!(first.to_client.is_closed(), "the old socket is closed");
        assert_eq!(sink.gaps.load(Ordering::SeqCst), 1, "a gap between them");
        assert_eq!(notifications.stats().state(), State::Subscribed);
        drop(second);
        notifications.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn mode_off_subscribes_to_nothing() {
        let settings = NotificationSettings {
            mode: Mode::Off,
            ..NotificationSettings::default()
        };
        let (notifications, api, _, _) = start(FakeApi::new(), settings);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(api.created(), 0);
        assert_eq!(notifications.stats().readiness()["status"], "off");
        notifications.stop().await;
        assert_eq!(notifications.stats().readiness()["status"], "off");
    }
}
