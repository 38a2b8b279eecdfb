//! The registry of notification channels: each channel's id, expiry, last use, topics and
//! the one socket attached to it.
//!
//! Genesys' rules (API-FACTS section 8): a channel lives for the channel lifetime (24 h);
//! one OAuth client holds at most 20 (the simulator has one client), and a 21st removes
//! the channel used least recently, channels without a socket first; a channel holds at
//! most 1,000 topics; a second socket on a channel drops the first. Expiry is measured
//! on tokio's clock, so tests can pause and advance it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::events;

/// What a socket's task is told to do.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Write this text frame.
    Text(String),
    /// Send a close frame with this code and reason, then end.
    Close(u16, &'static str),
    /// End at once, without a close frame (a cut connection).
    Cut,
}

/// The socket attached to a channel.
#[derive(Debug)]
struct Attached {
    generation: u64,
    sender: mpsc::UnboundedSender<Outbound>,
}

/// One notification channel.
#[derive(Debug)]
pub struct Channel {
    pub id: String,
    /// The `expires` the client was told (simulated clock).
    pub expires: DateTime<Utc>,
    /// When it expires on tokio's clock.
    pub expires_at: Instant,
    last_used: Instant,
    /// Subscribed topics in the order they were added.
    topics: Vec<String>,
    topic_set: HashSet<String>,
    socket: Option<Attached>,
}

impl Channel {
    /// The subscribed topics, in the order they were added.
    #[must_use]
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// True when a socket is attached.
    #[must_use]
    pub fn connected(&self) -> bool {
        self.socket.is_some()
    }

    /// True when subscribed to `topic`.
    #[must_use]
    pub fn has_topic(&self, topic: &str) -> bool {
        self.topic_set.contains(topic)
    }

    /// Replaces the topics (keeping the first of repeated ones).
    pub(crate) fn set_topics(&mut self, topics: Vec<String>) {
        self.topics.clear();
        self.topic_set.clear();
        self.add_topics(topics);
    }

    /// Adds topics not yet subscribed, in order.
    pub(crate) fn add_topics(&mut self, topics: Vec<String>) {
        for topic in topics {
            if self.topic_set.insert(topic.clone()) {
                self.topics.push(topic);
            }
        }
    }

    /// Sends a text frame to the attached socket; false when there is none.
    pub(crate) fn send(&self, text: String) -> bool {
        self.socket
            .as_ref()
            .is_some_and(|s| s.sender.send(Outbound::Text(text)).is_ok())
    }
}

/// Why a socket could not attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttachError {
    UnknownChannel,
}

/// A socket attached to its channel: what its task needs.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub generation: u64,
    pub receiver: mpsc::UnboundedReceiver<Outbound>,
    pub expires_at: Instant,
    /// A socket was attached before and has been told to close.
    pub replaced: bool,
}

/// Every live channel.
#[derive(Debug, Default)]
pub struct Channels {
    by_id: HashMap<String, Channel>,
    next_generation: u64,
}

impl Channels {
    /// Forgets expired channels (closing their sockets); returns how many.
    pub(crate) fn purge_expired(&mut self, now: Instant) -> usize {
        let before = self.by_id.len();
        self.by_id.retain(|_, channel| {
            let alive = channel.expires_at > now;
            if !alive {
                if let Some(socket) = &channel.socket {
                    let _ = socket.sender.send(Outbound::Close(1000, "channel expired"));
                }
            }
            alive
        });
        before - self.by_id.len()
    }

    /// Adds a channel, first removing the least recently used one (those without a
    /// socket first) when `max` are held already; returns the id of the removed one.
    pub(crate) fn create(
        &mut self,
        id: String,
        expires: DateTime<Utc>,
        expires_at: Instant,
        max: usize,
    ) -> Option<String> {
        let now = Instant::now();
        let mut evicted = None;
        if self.by_id.len() >= max.max(1) {
            let victim = self
                .by_id
                .values()
                .min_by_key(|c| (c.socket.is_some(), c.last_used))
                .map(|c| c.id.clone());
            if let Some(victim) = victim {
                if let Some(channel) = self.by_id.remove(&victim) {
                    if let Some(socket) = channel.socket {
                        let _ = socket.sender.send(Outbound::Close(1000, "channel removed"));
                    }
                }
                evicted = Some(victim);
            }
        }
        self.by_id.insert(
            id.clone(),
            Channel {
                id,
                expires,
                expires_at,
                last_used: now,
                topics: Vec::new(),
                topic_set: HashSet::new(),
                socket: None,
            },
        );
        evicted
    }

    /// The channel, marked as used now.
    pub(crate) fn use_channel(&mut self, id: &str) -> Option<&mut Channel> {
        let channel = self.by_id.get_mut(id)?;
        channel.last_used = Instant::now();
        Some(channel)
    }

    /// The channel, if it exists.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Channel> {
        self.by_id.get(id)
    }

    /// Every channel, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.by_id.values()
    }

    /// Attaches a new socket to channel `id`, telling the previous one (if any) to close.
    pub(crate) fn attach(&mut self, id: &str) -> Result<Attachment, AttachError> {
        let generation = self.next_generation;
        let channel = self.use_channel(id).ok_or(AttachError::UnknownChannel)?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let previous = channel.socket.replace(Attached { generation, sender });
        let replaced = previous.is_some_and(|old| {
            let _ = old
                .sender
                .send(Outbound::Close(1000, "another socket connected"));
            true
        });
        let expires_at = channel.expires_at;
        self.next_generation += 1;
        Ok(Attachment {
            generation,
            receiver,
            expires_at,
            replaced,
        })
    }

    /// Detaches the socket of `generation` from channel `id` (if it is still the one).
    pub(crate) fn detach(&mut self, id: &str, generation: u64) {
        if let Some(channel) = self.by_id.get_mut(id) {
            if channel
                .socket
                .as_ref()
                .is_some_and(|s| s.generation == generation)
            {
                channel.socket = None;
            }
        }
    }

    /// Removes channel `id` (at its expiry).
    pub(crate) fn remove(&mut self, id: &str) -> bool {
        self.by_id.remove(id).is_some()
    }

    /// Cuts every socket; returns how many.
    pub(crate) fn drop_sockets(&mut self) -> usize {
        self.by_id
            .values_mut()
            .filter_map(|c| c.socket.take())
            .filter(|s| s.sender.send(Outbound::Cut).is_ok())
            .count()
    }

    /// Sends `v2.system.socket_closing` and then a close on every socket; returns how
    /// many.
    pub(crate) fn close_for_maintenance(&mut self) -> usize {
        let mut closed = 0;
        for channel in self.by_id.values_mut() {
            if let Some(socket) = channel.socket.take() {
                let notice = events::socket_closing(&channel.id);
                if socket.sender.send(Outbound::Text(notice)).is_ok() {
                    let _ = socket
                        .sender
                        .send(Outbound::Close(1001, "closing for maintenance"));
                    closed += 1;
                }
            }
        }
        closed
    }
}
