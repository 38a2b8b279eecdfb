//! The event pump: one task per simulator, started with the first channel, that every
//! event tick finds the conversations whose document changed since the last tick
//! ([`ChangeTracker`]) and publishes each on its topics
//! ([`topics::of_conversation`](super::topics::of_conversation)) to every channel
//! subscribed: written to the channel's socket, or counted as dropped when it has none
//! (Genesys keeps nothing for a disconnected channel). The body is rendered at the tick's
//! instant, from the same state `GET /api/v2/conversations/{id}` reads, so the event
//! and the REST document agree. The task ends when the simulator is dropped.

use std::sync::{Arc, Weak};

use chrono::{DateTime, Utc};

use super::{events, topics};
use crate::changes::ChangeTracker;
use crate::data::ConversationRecord;
use crate::render::realtime;
use crate::state::SimState;

/// Starts the pump unless it runs already (must be called inside a tokio runtime).
pub(crate) fn ensure_started(sim: &Arc<SimState>) {
    if !sim.notifications.claim_pump() {
        return;
    }
    let weak: Weak<SimState> = Arc::downgrade(sim);
    let mut tracker = ChangeTracker::new(&sim.data, sim.now());
    tokio::spawn(async move {
        loop {
            let tick = match weak.upgrade() {
                Some(sim) => sim.notifications.settings().event_tick,
                None => return,
            };
            tokio::time::sleep(tick).await;
            let Some(sim) = weak.upgrade() else { return };
            let now = sim.now();
            for index in tracker.advance(&sim.data, now) {
                publish(&sim, &sim.data.conversations[index], now);
            }
        }
    });
}

/// Publishes the conversation as it reads at `now` on each of its topics.
fn publish(sim: &SimState, record: &ConversationRecord, now: DateTime<Utc>) {
    let notifications = &sim.notifications;
    let doc = realtime::at(record, &sim.data.org, now);
    let topics = topics::of_conversation(&doc);
    let mut sent = Vec::new();
    let mut dropped = Vec::new();
    {
        let channels = notifications.channels();
        if !channels
            .iter()
            .any(|c| topics.iter().any(|t| c.has_topic(t)))
        {
            return;
        }
        let body = events::conversation_event(&doc);
        for topic in &topics {
            let mut message = None;
            for channel in channels.iter().filter(|c| c.has_topic(topic)) {
                let text = message
                    .get_or_insert_with(|| events::envelope(topic, &body))
                    .clone();
                if channel.send(text) {
                    sent.push(topic.clone());
                } else {
                    dropped.push(topic.clone());
                }
            }
        }
    }
    notifications.count(|c| {
        for topic in sent {
            *c.events_sent.entry(topic).or_default() += 1;
        }
        for topic in dropped {
            *c.events_dropped.entry(topic).or_default() += 1;
        }
    });
}
