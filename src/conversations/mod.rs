//! Real-time conversation lookups: the cached, coalesced, stale-tolerant path behind
//! `GET /conversations/{id}`. A fetch turns Genesys' document into a cache entry holding
//! both representations pre-serialised (the simplified view and the full document) with
//! their ETags, so a hit costs a lookup and a clone, no JSON work.

pub mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::Caller;
use crate::cache::{
    CacheSettings, CacheStats, Cached, Freshness, HitHeaders, Served, SwrCache, Weighted,
};
use crate::upstream::budget::Demand;
use crate::upstream::models::Conversation;
use crate::upstream::{CallContext, Class, GenesysClient, UpstreamError};
pub use view::{ConversationState, ConversationView};

/// Per-entry memory counted against the byte budget beyond the bodies (key, timestamps,
/// `Arc`s, moka's bookkeeping, allocator slack), in bytes. Measured: at 100k entries RSS grew
/// about 3.4 KB per entry more than the bodies' size (BENCHMARKS.md, memory); plus about
/// 200 bytes of cache headers an entry keeps once it has been hit.
const ENTRY_OVERHEAD: u32 = 3_600;

/// Both representations of a found conversation.
#[derive(Debug, Clone)]
pub struct Representations {
    /// The simplified [`ConversationView`], serialised.
    pub view: Bytes,
    pub view_etag: HeaderValue,
    /// Genesys' document, byte for byte.
    pub full: Bytes,
    pub full_etag: HeaderValue,
    pub state: ConversationState,
    /// The cache headers of the latest hit, reused within its second.
    pub hit_headers: HitHeaders,
}

/// A cached lookup result: found, or known not to exist.
#[derive(Debug, Clone)]
pub enum ConversationEntry {
    Found(Representations),
    NotFound,
}

impl Weighted for ConversationEntry {
    fn weight(&self) -> u32 {
        let bodies = match self {
            Self::Found(r) => r.view.len() + r.full.len() + r.view_etag.len() + r.full_etag.len(),
            Self::NotFound => 0,
        };
        u32::try_from(bodies)
            .unwrap_or(u32::MAX)
            .saturating_add(ENTRY_OVERHEAD)
    }
}

/// A strong ETag of `body`, ready to send.
fn etag(prefix: &str, body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    HeaderValue::from_str(&format!("\"{prefix}-{}\"", hex::encode(&digest[..12])))
        .expect("hex in quotes is a valid header value")
}

/// Builds the cache entry from Genesys' document for conversation `requested`.
///
/// # Errors
/// `Decode` when the document is not a conversation.
pub fn entry_from_document(
    requested: Uuid,
    full: Bytes,
    settings: &CacheSettings,
) -> Result<(ConversationEntry, Freshness), UpstreamError> {
    let conversation: Conversation =
        serde_json::from_slice(&full).map_err(|e| UpstreamError::Decode {
            detail: format!("conversation document: {e}"),
        })?;
    let mut view = ConversationView::from_conversation(&conversation);
    if view.id.is_empty() {
        // The official model leaves `id` optional: the id asked for is the document's.
        view.id = requested.to_string();
    }
    let freshness = settings.conversation(
        view.end,
        ConversationView::wrapped_up(&conversation),
        chrono::Utc::now(),
    );
    let view_bytes = Bytes::from(
        serde_json::to_vec(&view).map_err(|e| UpstreamError::Decode {
            detail: e.to_string(),
        })?,
    );
    Ok((
        ConversationEntry::Found(Representations {
            view_etag: etag("v", &view_bytes),
            view: view_bytes,
            full_etag: etag("f", &full),
            full,
            state: view.state,
            hit_headers: HitHeaders::default(),
        }),
        freshness,
    ))
}

/// The conversation lookup service.
#[derive(Debug)]
pub struct ConversationService {
    cache: Arc<SwrCache<Uuid, ConversationEntry>>,
    client: Arc<GenesysClient>,
    settings: Arc<CacheSettings>,
    /// How long one upstream fetch may take (it outlives the request that started it).
    fetch_timeout: Duration,
}

impl ConversationService {
    #[must_use]
    pub fn new(
        client: Arc<GenesysClient>,
        settings: CacheSettings,
        fetch_timeout: Duration,
    ) -> Self {
        Self {
            cache: SwrCache::new(
                settings.max_bytes,
                settings.stale_while_revalidate(),
                settings.stale_wait(),
            ),
            client,
            settings: Arc::new(settings),
            fetch_timeout,
        }
    }

    /// The conversation `id` for `caller`, from the cache or Genesys, waiting at most until
    /// `deadline`.
    ///
    /// A request that joins a fetch of `id` in flight raises that fetch to its `class` and
    /// deadline when they are higher or later (a real-time lookup joining a hydration
    /// fetch queued behind report work), and still waits only until its own deadline.
    ///
    /// # Errors
    /// The classified upstream failure when nothing cached may be served.
    pub async fn get(
        &self,
        id: Uuid,
        class: Class,
        caller: &Caller,
        deadline: Instant,
    ) -> Result<Served<ConversationEntry>, UpstreamError> {
        // The budget serves the call only if it can start before the request that asked
        // for it gives up (a call nobody waits for would spend quota for nothing), and the
        // call lasts no longer than the fetch timeout.
        let demand = Demand {
            class,
            client: caller.name.clone(),
            weight: caller.weight,
            deadline: deadline.min(Instant::now() + self.fetch_timeout),
        };
        let client = self.client.clone();
        let settings = self.settings.clone();
        self.cache
            .get_raising(id, deadline, demand, move |urgency| {
                let (client, settings) = (client.clone(), settings.clone());
                async move {
                    let ctx = CallContext::raisable(urgency);
                    match client.get_conversation(id, &ctx).await {
                        Ok(fetched) => entry_from_document(id, fetched.body, &settings),
                        Err(UpstreamError::NotFound) => {
                            Ok((ConversationEntry::NotFound, settings.not_found()))
                        }
                        Err(error) => {
                            tracing::warn!(conversation_id = %id, error = %error, kind = error.kind(), "conversation fetch failed");
                            Err(error)
                        }
                    }
                }
            })
            .await
    }

    /// The conversation `id` if a fresh copy of it is cached (a found conversation, not a
    /// remembered 404); `None` sends the request the long way, through [`Self::get`].
    pub async fn fresh_hit(&self, id: Uuid) -> Option<Arc<Cached<ConversationEntry>>> {
        self.cache
            .fresh(&id, |value| matches!(value, ConversationEntry::Found(_)))
            .await
    }

    /// Cache figures.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Applies pending evictions (exact figures).
    pub async fn settle(&self) {
        self.cache.settle().await;
    }

    /// Drops every cached conversation.
    pub async fn purge(&self) {
        self.cache.purge().await;
    }

    /// Drops one cached conversation.
    pub async fn forget(&self, id: Uuid) {
        self.cache.remove(&id).await;
    }
}
