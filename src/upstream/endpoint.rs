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
}

impl Endpoint {
    /// Every endpoint, in the order their latency histograms are rendered.
    pub const ALL: [Self; 3] = [
        Self::GetConversation,
        Self::DetailsQuery,
        Self::AggregatesQuery,
    ];

    /// The `endpoint` label of metrics and spans.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetConversation => "get_conversation",
            Self::DetailsQuery => "details_query",
            Self::AggregatesQuery => "aggregates_query",
        }
    }

    /// The HTTP method the endpoint is called with.
    #[must_use]
    pub fn method(self) -> Method {
        match self {
            Self::GetConversation => Method::GET,
            Self::DetailsQuery | Self::AggregatesQuery => Method::POST,
        }
    }
}
