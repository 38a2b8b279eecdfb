//! [`Endpoint`]: the Genesys endpoints the proxy calls, each with its HTTP method and the
//! label that names it in the upstream metrics and spans. Adding an endpoint is adding a
//! variant here; its metric series follow.

use reqwest::Method;

/// A Genesys endpoint the proxy calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /api/v2/conversations/{id}`.
    GetConversation,
    /// `POST /api/v2/analytics/conversations/details/query`.
    DetailsQuery,
    /// `POST /api/v2/analytics/conversations/aggregates/query`.
    AggregatesQuery,
    /// `POST /api/v2/notifications/channels` (notifications).
    CreateChannel,
    /// `PUT /api/v2/notifications/channels/{id}/subscriptions` (notifications).
    ReplaceSubscriptions,
    /// `GET /api/v2/routing/queues` (the queues whose topics notifications subscribe to).
    ListQueues,
}

impl Endpoint {
    /// Every endpoint, in the order their latency histograms are rendered.
    pub const ALL: [Self; 6] = [
        Self::GetConversation,
        Self::DetailsQuery,
        Self::AggregatesQuery,
        Self::CreateChannel,
        Self::ReplaceSubscriptions,
        Self::ListQueues,
    ];

    /// The `endpoint` label of metrics and spans.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetConversation => "get_conversation",
            Self::DetailsQuery => "details_query",
            Self::AggregatesQuery => "aggregates_query",
            Self::CreateChannel => "create_channel",
            Self::ReplaceSubscriptions => "replace_subscriptions",
            Self::ListQueues => "list_queues",
        }
    }

    /// The HTTP method the endpoint is called with.
    #[must_use]
    pub fn method(self) -> Method {
        match self {
            Self::GetConversation | Self::ListQueues => Method::GET,
            Self::DetailsQuery | Self::AggregatesQuery | Self::CreateChannel => Method::POST,
            Self::ReplaceSubscriptions => Method::PUT,
        }
    }
}
