//! [`ChannelApi`]: the REST side of notifications (create a channel, set its topics, list
//! the org's queues), abstract so that the session's tests fake it; [`GenesysChannels`]
//! makes the calls through the upstream client, at the lowest budget class. Costs: one
//! call per channel created (at start, after a channel was lost, and before each expiry,
//! every 24 h), one per subscription of a channel, one per page of queues at start and
//! every `rediscover_queues_secs`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::upstream::client::Channel;
use crate::upstream::{CallContext, Class, GenesysClient, UpstreamError};

/// The Notifications API's REST calls the proxy makes.
#[async_trait]
pub trait ChannelApi: Send + Sync + 'static {
    /// A new channel.
    async fn create_channel(&self) -> Result<Channel, UpstreamError>;
    /// The channel's topics become `topics`.
    async fn subscribe(&self, channel_id: &str, topics: &[String]) -> Result<(), UpstreamError>;
    /// Every queue of the org.
    async fn queues(&self) -> Result<Vec<Uuid>, UpstreamError>;
}

/// The name the notification calls go under in the budget and the upstream metrics.
const CLIENT: &str = "notifications";

/// How long one notification call may take (none has a waiting client).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Most pages of queues read (100,000 queues at 100 a page).
const MAX_QUEUE_PAGES: u32 = 1_000;

/// [`ChannelApi`] over the Genesys client.
#[derive(Debug)]
pub struct GenesysChannels {
    client: Arc<GenesysClient>,
    page_size: u32,
}

impl GenesysChannels {
    #[must_use]
    pub fn new(client: Arc<GenesysClient>, page_size: u32) -> Self {
        Self { client, page_size }
    }

    fn context() -> CallContext {
        CallContext::new(Class::Hydrate, CLIENT, 1, CALL_TIMEOUT)
    }
}

#[async_trait]
impl ChannelApi for GenesysChannels {
    async fn create_channel(&self) -> Result<Channel, UpstreamError> {
        self.client.create_channel(&Self::context()).await
    }

    async fn subscribe(&self, channel_id: &str, topics: &[String]) -> Result<(), UpstreamError> {
        self.client
            .replace_subscriptions(channel_id, topics, &Self::context())
            .await
    }

    async fn queues(&self) -> Result<Vec<Uuid>, UpstreamError> {
        let mut queues = Vec::new();
        for page_number in 1..=MAX_QUEUE_PAGES {
            let page = self
                .client
                .list_queues(self.page_size, page_number, &Self::context())
                .await?;
            let last = page.entities.is_empty()
                || page.page_count.is_some_and(|count| page_number >= count);
            queues.extend(
                page.entities
                    .iter()
                    .filter_map(|queue| Uuid::try_parse(&queue.id).ok()),
            );
            if last {
                break;
            }
        }
        Ok(queues)
    }
}
