//! [`Session`]: one channel's life, as a loop over an abstract transport
//! ([`super::transport`]) and REST API ([`super::api`]), so that its timing is tested with
//! paused time and in-memory sockets.
//!
//! - **Set-up**: create the channel, connect its socket, then subscribe (so no event
//!   between the subscription and the connection is lost).
//! - **Watchdog**: any message is proof of life; after `ping_after_secs` of silence the
//!   session sends a ping, after `silence_timeout_secs` it drops the socket and reconnects.
//! - **Reconnect with backoff**: a lost socket is reconnected to the same channel (its
//!   subscriptions live as long as the channel), after a pause that doubles per failed
//!   attempt (from `reconnect_min_ms` to `reconnect_max_secs`, jittered down by up to a
//!   fifth); a channel that cannot be reconnected twice in a row is created anew.
//! - **`socket_closing`**: reconnect to the same `connectUri` at once.
//! - **Re-create before expiry**: `renew_before_secs` before the channel expires, a new
//!   channel is created, connected and subscribed, and only then is the old socket
//!   dropped (make before break: no gap).
//! - **Gaps**: whenever a socket was lost, the sink is told, so pushed conversations fall
//!   back to TTL freshness (events while no socket is connected are lost).
//! - **Refusals** (403, 400 on the topics, 404 for the API, a 401 Genesys keeps
//!   answering): the session ends with the error; the supervisor degrades to polling.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::api::ChannelApi;
use super::apply::EventSink;
use super::events::{self, Message, PING};
use super::settings::NotificationSettings;
use super::stats::{EventOutcome, NotificationStats, Reconnect, State};
use super::transport::{Connector, Socket};
use crate::upstream::UpstreamError;
use crate::upstream::client::Channel;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown was asked for.
    Shutdown,
    /// Genesys refused (a permission, the API, the topics): poll instead.
    Refused(UpstreamError),
}

/// Whether Genesys refused for good (as opposed to a passing failure worth a retry).
#[must_use]
pub fn is_refusal(error: &UpstreamError) -> bool {
    matches!(
        error,
        UpstreamError::Forbidden { .. }
            | UpstreamError::NotFound
            | UpstreamError::BadRequest { .. }
            | UpstreamError::Unauthorized
    )
}

/// A channel and when to re-create it.
#[derive(Debug, Clone)]
struct Open {
    channel: Channel,
    renew_at: Instant,
}

/// What ended a connected socket.
enum Lost {
    Shutdown,
    Reconnect(Reconnect),
    /// The channel was replaced by a renewed one: go on with its socket.
    Renewed(Open, Box<dyn Socket>),
    /// The channel lost its subscriptions: subscribe again.
    Unsubscribed,
}

/// One channel's subscriber.
pub struct Session {
    pub api: Arc<dyn ChannelApi>,
    pub connector: Arc<dyn Connector>,
    pub sink: Arc<dyn EventSink>,
    pub stats: Arc<NotificationStats>,
    pub settings: Arc<NotificationSettings>,
    pub topics: Vec<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("topics", &self.topics.len())
            .finish_non_exhaustive()
    }
}

/// The pause before reconnection attempt `failures` (1 for the first retry).
fn backoff(settings: &NotificationSettings, failures: u32) -> Duration {
    let doubled = settings
        .reconnect_min()
        .saturating_mul(1 << failures.saturating_sub(1).min(20));
    let capped = doubled.min(settings.reconnect_max());
    capped.mul_f64(1.0 - fastrand::f64() * 0.2)
}

impl Session {
    /// Runs until shutdown or a refusal.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Ended {
        let mut open: Option<Open> = None;
        let mut subscribed = false;
        let mut failures: u32 = 0;
        let mut connect_failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return Ended::Shutdown;
            }
            if failures > 0 {
                let pause = backoff(&self.settings, failures);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return Ended::Shutdown,
                }
            }
            let current = match open.take().filter(|o| Instant::now() < o.renew_at) {
                Some(current) => current,
                None => match self.create().await {
                    Ok(created) => {
                        subscribed = false;
                        created
                    }
                    Err(error) if is_refusal(&error) => return Ended::Refused(error),
                    Err(error) => {
                        tracing::warn!(%error, "notifications: cannot create a channel; retrying");
                        failures += 1;
                        continue;
                    }
                },
            };
            let socket = match self.connector.connect(&current.channel.connect_uri).await {
                Ok(socket) => socket,
                Err(error) => {
                    tracing::warn!(%error, channel = %current.channel.id, "notifications: cannot connect the socket; retrying");
                    failures += 1;
                    connect_failures += 1;
                    // Twice refused: the channel may be gone (expired, removed as the
                    // 21st of the client); the next attempt creates one.
                    if connect_failures < 2 {
                        open = Some(current);
                    }
                    continue;
                }
            };
            connect_failures = 0;
            if !subscribed {
                match self.api.subscribe(&current.channel.id, &self.topics).await {
                    Ok(()) => subscribed = true,
                    Err(UpstreamError::NotFound) => {
                        // The channel is gone: a new one.
                        failures += 1;
                        continue;
                    }
                    Err(error) if is_refusal(&error) => return Ended::Refused(error),
                    Err(error) => {
                        tracing::warn!(%error, "notifications: cannot subscribe; retrying");
                        failures += 1;
                        open = Some(current);
                        continue;
                    }
                }
            }
            let (mut current, mut socket) = (current, socket);
            loop {
                self.stats.socket_opened();
                // Live from here: the socket is connected and its topics subscribed, so
                // the conversations of its queues are kept fresh by their events.
                self.sink.live(&self.topics, true);
                let lost = self
                    .pump(&current, socket.as_mut(), &mut shutdown, &mut failures)
                    .await;
                self.stats.socket_closed();
                // (A renewed channel is live again at once, with its own socket.)
                self.sink.live(&self.topics, false);
                match lost {
                    Lost::Shutdown => return Ended::Shutdown,
                    Lost::Renewed(renewed, new_socket) => {
                        self.stats.reconnect(Reconnect::Renewal);
                        current = renewed;
                        socket = new_socket;
                    }
                    Lost::Unsubscribed => {
                        self.gap().await;
                        subscribed = false;
                        open = Some(current);
                        break;
                    }
                    Lost::Reconnect(why) => {
                        self.stats.reconnect(why);
                        self.gap().await;
                        if why != Reconnect::SocketClosing {
                            failures += 1;
                        }
                        open = Some(current);
                        break;
                    }
                }
            }
        }
    }

    /// A new channel (one upstream call), with its renewal instant.
    async fn create(&self) -> Result<Open, UpstreamError> {
        let channel = self.api.create_channel().await?;
        self.stats.channel_created();
        let lifetime = channel
            .expires
            .as_deref()
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
            .and_then(|e| {
                (e.with_timezone(&chrono::Utc) - chrono::Utc::now())
                    .to_std()
                    .ok()
            })
            .unwrap_or(Duration::from_secs(24 * 3_600));
        // Renew `renew_before` ahead, and never sooner than half the lifetime (a short
        // lifetime would otherwise renew in a loop).
        let renew_in = lifetime
            .saturating_sub(self.settings.renew_before())
            .max(lifetime / 2);
        Ok(Open {
            channel,
            renew_at: Instant::now() + renew_in,
        })
    }

    /// A renewed channel, connected and subscribed.
    async fn renew(&self) -> Result<(Open, Box<dyn Socket>), String> {
        let open = self.create().await.map_err(|e| e.to_string())?;
        let socket = self.connector.connect(&open.channel.connect_uri).await?;
        self.api
            .subscribe(&open.channel.id, &self.topics)
            .await
            .map_err(|e| e.to_string())?;
        Ok((open, socket))
    }

    async fn gap(&self) {
        let demoted = self.sink.gap().await;
        self.stats.gap(demoted);
        if self.stats.state() == State::Subscribed {
            self.stats.set_state(State::Reconnecting);
        }
    }

    /// Reads the socket until it is lost, the channel is renewed, or shutdown.
    async fn pump(
        &self,
        open: &Open,
        socket: &mut dyn Socket,
        shutdown: &mut watch::Receiver<bool>,
        failures: &mut u32,
    ) -> Lost {
        let mut last_seen = Instant::now();
        let mut pinged = false;
        let mut renew_at = open.renew_at;
        if self.stats.planned_channels() <= self.stats.connected() {
            self.stats.set_state(State::Subscribed);
        }
        loop {
            let ping_at = last_seen + self.settings.ping_after();
            let dead_at = last_seen + self.settings.silence_timeout();
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Lost::Shutdown,
                frame = socket.next_text() => {
                    let Some(text) = frame else {
                        return Lost::Reconnect(Reconnect::Dropped);
                    };
                    let received = Instant::now();
                    last_seen = received;
                    pinged = false;
                    *failures = 0;
                    match events::read(&text) {
                        Ok(Message::Alive) => self.stats.heartbeat(),
                        Ok(Message::SocketClosing) => {
                            return Lost::Reconnect(Reconnect::SocketClosing);
                        }
                        Ok(Message::NoLongerSubscribed) => return Lost::Unsubscribed,
                        Ok(Message::Conversation { body, .. }) => {
                            let outcome = self.sink.event(&body).await;
                            self.stats.event(outcome, received.elapsed());
                        }
                        Ok(Message::Other { .. }) => {
                            self.stats.event(EventOutcome::Ignored, Duration::ZERO);
                        }
                        Err(error) => {
                            tracing::debug!(%error, "notifications: unreadable frame");
                            self.stats.event(EventOutcome::Rejected, Duration::ZERO);
                        }
                    }
                }
                () = sleep_until(ping_at), if !pinged => {
                    pinged = true;
                    if socket.send_text(PING).await.is_err() {
                        return Lost::Reconnect(Reconnect::Dropped);
                    }
                }
                () = sleep_until(dead_at) => {
                    tracing::warn!(silent_secs = self.settings.silence_timeout_secs, "notifications: no heartbeat; reconnecting");
                    return Lost::Reconnect(Reconnect::Silence);
                }
                () = sleep_until(renew_at) => {
                    match self.renew().await {
                        Ok((renewed, socket)) => return Lost::Renewed(renewed, socket),
                        Err(error) => {
                            tracing::warn!(%error, "notifications: cannot re-create the channel before its expiry; retrying");
                            renew_at = Instant::now() + self.settings.reconnect_max();
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
