//! Word that a flight ended: the leader of a shared flight publishes the entry's name on
//! one channel of the client's (`…:cache-filled`) when it releases the marker, stored or
//! not. Each replica keeps one subscriber connection ([`listen`]) and hands the names to
//! its followers through a broadcast channel; a follower also looks again at a short
//! interval, so a lost message (the subscriber reconnecting, Redis restarting) costs a
//! poll, never a hang.

use std::sync::{Arc, Weak};

use futures_util::StreamExt as _;
use tokio::sync::broadcast;

use crate::shared::SharedTier;

/// Names of entries whose flight ended, as published.
pub type Filled = broadcast::Sender<Arc<str>>;

/// A channel for the names (followers subscribe to it).
#[must_use]
pub fn channel() -> Filled {
    broadcast::channel(256).0
}

/// Subscribes to the channel of `tier` and forwards what is published, reconnecting
/// after every lost connection (at the heartbeat's pace, and only while Redis answers),
/// until the tier is dropped.
pub async fn listen(tier: Weak<SharedTier>) {
    loop {
        let (client, channel, filled, timeout, pause) = {
            let Some(tier) = tier.upgrade() else {
                return;
            };
            (
                tier.store.client().clone(),
                tier.keys.cache_filled.clone(),
                tier.filled.clone(),
                tier.store.timeout(),
                tier.settings.heartbeat(),
            )
        };
        let subscribed = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            redis::RedisResult::Ok(pubsub)
        })
        .await;
        if let Ok(Ok(pubsub)) = subscribed {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                if let Ok(name) = std::str::from_utf8(message.get_payload_bytes()) {
                    let _ = filled.send(Arc::from(name));
                }
                if tier.strong_count() == 0 {
                    return;
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
}
