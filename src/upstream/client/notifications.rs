//! The Notifications API's REST calls (and the queue listing its topics come from): each
//! one passes through the budget and costs quota like any call.

use bytes::Bytes;
use serde::Deserialize;

use super::{GenesysClient, decode, json_body};
use crate::upstream::context::CallContext;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::error::UpstreamError;

/// `Channel`: a notification channel (`connectUri` is the WebSocket to open).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub connect_uri: String,
    pub id: String,
    /// RFC 3339 (Genesys writes milliseconds and `Z`).
    #[serde(default)]
    pub expires: Option<String>,
}

/// One page of `QueueEntityListing`, only what discovery reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueuePage {
    pub entities: Vec<QueueRef>,
    pub page_count: Option<u32>,
    pub page_number: Option<u32>,
}

/// A queue of a listing (its id).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QueueRef {
    pub id: String,
}

/// `ChannelTopicEntityListing`, only the topics' states.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct TopicListing {
    entities: Vec<TopicState>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TopicState {
    id: String,
    state: Option<String>,
    rejection_reason: Option<String>,
}

impl GenesysClient {
    /// `POST /api/v2/notifications/channels`: a new channel.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn create_channel(&self, ctx: &CallContext) -> Result<Channel, UpstreamError> {
        let path = "api/v2/notifications/channels";
        let fetched = self.call(Endpoint::CreateChannel, path, None, ctx).await?;
        Ok(decode::<Channel>(fetched)?.body)
    }

    /// `PUT /api/v2/notifications/channels/{id}/subscriptions`: the channel's topics become
    /// `topics`. A topic Genesys answers as not `Permitted` is a failure naming it.
    ///
    /// # Errors
    /// The classified failure; `Forbidden` naming a rejected topic.
    pub async fn replace_subscriptions(
        &self,
        channel_id: &str,
        topics: &[String],
        ctx: &CallContext,
    ) -> Result<(), UpstreamError> {
        if channel_id.is_empty()
            || !channel_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(UpstreamError::Decode {
                detail: "Genesys sent a channel id that cannot be a path segment".into(),
            });
        }
        let path = format!("api/v2/notifications/channels/{channel_id}/subscriptions");
        let body: Vec<serde_json::Value> = topics
            .iter()
            .map(|topic| serde_json::json!({ "id": topic }))
            .collect();
        let body: Bytes = json_body(&body)?;
        let fetched = self
            .call(Endpoint::ReplaceSubscriptions, &path, Some(body), ctx)
            .await?;
        let listing = decode::<TopicListing>(fetched)?.body;
        if let Some(rejected) = listing
            .entities
            .iter()
            .find(|t| t.state.as_deref().is_some_and(|s| s != "Permitted"))
        {
            return Err(UpstreamError::Forbidden {
                message: format!(
                    "topic {} was {}{}",
                    rejected.id,
                    rejected.state.as_deref().unwrap_or_default(),
                    rejected
                        .rejection_reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    /// `GET /api/v2/routing/queues?pageSize=&pageNumber=`: one page of the org's queues.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn list_queues(
        &self,
        page_size: u32,
        page_number: u32,
        ctx: &CallContext,
    ) -> Result<QueuePage, UpstreamError> {
        let path = format!("api/v2/routing/queues?pageSize={page_size}&pageNumber={page_number}");
        let fetched = self.call(Endpoint::ListQueues, &path, None, ctx).await?;
        Ok(decode::<QueuePage>(fetched)?.body)
    }
}
