//! Real-time conversation lookups: the cached, coalesced, stale-tolerant path behind
//! `GET /conversations/{id}`. A fetch turns Genesys' document into a cache entry holding
//! both representations pre-serialised (the simplified view and the full document) with
//! their ETags in one exact-size buffer ([`Representations`]), so a hit costs a lookup and
//! a clone, no JSON work, and a cached conversation costs little more than the bytes it
//! serves. The entries live in a [`CacheTier`] (moka, then Redis in shared mode). Genesys
//! notifications update the summary view of cached conversations ([`pushed`]).

pub mod coverage;
pub mod pushed;
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
    CacheSettings, CacheStats, CacheTier, Cached, Freshness, HitHeaders, MokaTier, Served,
    SwrCache, TwoTier, Weighted,
};
use crate::shared::SharedTier;
use crate::shared::cache::RedisTier;
use crate::upstream::budget::Demand;
use crate::upstream::models::Conversation;
use crate::upstream::{CallContext, Class, GenesysClient, UpstreamError};
pub use coverage::Coverage;
pub use pushed::{PushOutcome, PushedView};
pub use view::{ConversationState, ConversationView};

/// Per-entry memory counted against the byte budget beyond the entry's one buffer (bodies
/// and ETags): the cache entry (`Arc`, timestamps, the representations' handles), the
/// buffer's shared header, moka's bookkeeping (key, deque and timer nodes, hash table
/// slot), allocator slack, and the cache headers an entry keeps once it has been hit
/// ([`HitHeaders`], about 300 bytes). Measured with `bench/run --only memory` (RSS
/// growth per entry less the weighed buffers; BENCHMARKS.md, memory).
pub const ENTRY_OVERHEAD: u32 = 1_100;

/// Both representations of a found conversation, pre-serialised so that a hit does no
/// JSON work. The four byte strings are slices of **one** exact-size buffer: a copy of
/// Genesys' document (never the HTTP client's read buffer, which a slice would pin whole:
/// 8 KB or more for a 5 KB document), the serialised view, and the two ETags. Cloning
/// any of them for an answer only counts a reference.
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
    /// Set when the view was rebuilt from a Genesys event: `full` is then the document of
    /// the last fetch, with that fetch's own freshness ([`pushed`]).
    pub pushed: Option<Box<PushedView>>,
}

impl Representations {
    /// The representations of a conversation whose document is `full` and whose view
    /// serialises to `view`, in one buffer.
    #[must_use]
    pub fn new(full: &[u8], view: &[u8], state: ConversationState) -> Self {
        let view_etag = etag_text('v', view);
        let full_etag = etag_text('f', full);
        let parts: [&[u8]; 4] = [full, view, &full_etag, &view_etag];
        let mut buffer = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        let ranges = parts.map(|part| {
            let start = buffer.len();
            buffer.extend_from_slice(part);
            start..buffer.len()
        });
        let buffer = Bytes::from(buffer);
        let slice = |i: usize| buffer.slice(ranges[i].clone());
        let (full, view) = (slice(0), slice(1));
        let (full_etag, view_etag) = (header_value(slice(2)), header_value(slice(3)));
        Self {
            view,
            view_etag,
            full,
            full_etag,
            state,
            hit_headers: HitHeaders::default(),
            pushed: None,
        }
    }

    /// Whether the view was pushed (updated from an event after the document's fetch).
    #[must_use]
    pub fn is_pushed(&self) -> bool {
        self.pushed.is_some()
    }

    /// The bytes the representations hold: both bodies and both ETags.
    #[must_use]
    pub fn held_bytes(&self) -> usize {
        self.view.len() + self.full.len() + self.view_etag.len() + self.full_etag.len()
    }
}

/// A cached lookup result: found, or known not to exist.
#[derive(Debug, Clone)]
pub enum ConversationEntry {
    Found(Representations),
    NotFound,
}

impl ConversationEntry {
    /// A found conversation, not a remembered 404: what a fresh hit may answer.
    fn is_found(&self) -> bool {
        matches!(self, Self::Found(_))
    }
}

impl Weighted for ConversationEntry {
    fn weight(&self) -> u32 {
        let held = match self {
            Self::Found(r) => r.held_bytes(),
            Self::NotFound => 0,
        };
        u32::try_from(held)
            .unwrap_or(u32::MAX)
            .saturating_add(ENTRY_OVERHEAD)
    }
}

/// The bytes of a strong ETag of `body`: `"<kind>-<24 hex digits of its SHA-256>"`.
fn etag_text(kind: char, body: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(body);
    format!("\"{kind}-{}\"", hex::encode(&digest[..12])).into_bytes()
}

/// A header value sharing `bytes` (an ETag made by [`etag_text`]: quotes, a letter, a
/// hyphen and hex digits, always valid).
fn header_value(bytes: Bytes) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes)
        .expect("an ETag made of hex in quotes is a valid header value")
}

/// Builds the cache entry from Genesys' document for conversation `requested` (the entry
/// keeps a copy of it: see [`Representations`]).
///
/// # Errors
/// `Decode` when the document is not a conversation.
pub fn entry_from_document(
    requested: Uuid,
    full: impl AsRef<[u8]>,
    settings: &CacheSettings,
) -> Result<(ConversationEntry, Freshness), UpstreamError> {
    decode_document(requested, full.as_ref(), settings).map(|d| (d.entry, d.freshness))
}

/// A decoded document: its entry, its TTL freshness and the queues it has participants in.
struct Decoded {
    entry: ConversationEntry,
    freshness: Freshness,
    queues: Vec<String>,
}

fn decode_document(
    requested: Uuid,
    full: &[u8],
    settings: &CacheSettings,
) -> Result<Decoded, UpstreamError> {
    let conversation: Conversation =
        serde_json::from_slice(full).map_err(|e| UpstreamError::Decode {
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
    let view_bytes = serde_json::to_vec(&view).map_err(|e| UpstreamError::Decode {
        detail: e.to_string(),
    })?;
    let queues = conversation
        .participants
        .iter()
        .filter_map(|p| p.queue_id.clone())
        .collect();
    Ok(Decoded {
        entry: ConversationEntry::Found(Representations::new(full, &view_bytes, view.state)),
        freshness,
        queues,
    })
}

/// The tiers of the conversation cache: the replica's moka store, then Redis in shared
/// mode (see [`crate::cache::TwoTier`]).
pub type ConversationTier = TwoTier<Uuid, ConversationEntry, RedisTier<Uuid, ConversationEntry>>;

/// The namespace of conversations in the shared cache (bumped if the record changes).
pub const SHARED_NAMESPACE: &str = "conversations:v1";

/// The conversation lookup service, keeping its entries in the tier `T` (moka, then Redis
/// when shared, unless told otherwise: see [`crate::cache::tier`]).
#[derive(Debug)]
pub struct ConversationService<T = ConversationTier> {
    cache: Arc<SwrCache<Uuid, ConversationEntry, T>>,
    client: Arc<GenesysClient>,
    settings: Arc<CacheSettings>,
    /// How long one upstream fetch may take (it outlives the request that started it).
    fetch_timeout: Duration,
    /// Which conversations the notifications keep fresh.
    coverage: Arc<Coverage>,
}

impl ConversationService {
    /// The service with its entries in moka, within `settings.max_bytes`.
    #[must_use]
    pub fn new(
        client: Arc<GenesysClient>,
        settings: CacheSettings,
        fetch_timeout: Duration,
    ) -> Self {
        Self::shared(client, settings, fetch_timeout, None)
    }

    /// The service with its entries in moka and, when `shared` is given (and shares the
    /// cache), in Redis too, each fetch coalesced across replicas.
    #[must_use]
    pub fn shared(
        client: Arc<GenesysClient>,
        settings: CacheSettings,
        fetch_timeout: Duration,
        shared: Option<&Arc<SharedTier>>,
    ) -> Self {
        let second = shared
            .filter(|shared| shared.shares_cache())
            .map(|shared| RedisTier::new(shared.clone(), SHARED_NAMESPACE, fetch_timeout));
        let tier = TwoTier::new(MokaTier::new(settings.max_bytes), second);
        Self::with_tier(client, settings, fetch_timeout, tier)
    }
}

impl<T: CacheTier<Uuid, ConversationEntry>> ConversationService<T> {
    /// The service with its entries in `tier`.
    #[must_use]
    pub fn with_tier(
        client: Arc<GenesysClient>,
        settings: CacheSettings,
        fetch_timeout: Duration,
        tier: T,
    ) -> Self {
        Self {
            cache: SwrCache::with_tier(
                tier,
                settings.stale_while_revalidate(),
                settings.stale_wait(),
            ),
            client,
            settings: Arc::new(settings),
            fetch_timeout,
            coverage: Arc::default(),
        }
    }

    /// Which conversations the notifications keep fresh (fed by
    /// [`crate::notifications`]).
    #[must_use]
    pub fn coverage(&self) -> &Arc<Coverage> {
        &self.coverage
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
        let coverage = self.coverage.clone();
        self.cache
            .get_raising(id, deadline, demand, move |urgency| {
                let (client, settings, coverage) =
                    (client.clone(), settings.clone(), coverage.clone());
                async move {
                    let ctx = CallContext::raisable(urgency);
                    let ticket = coverage.ticket();
                    match client.get_conversation(id, &ctx).await {
                        Ok(fetched) => {
                            let decoded = decode_document(id, &fetched.body, &settings)?;
                            let pushed_fresh = coverage.pushed_fresh();
                            if pushed_fresh > decoded.freshness.fresh_for
                                && coverage.admit(
                                    id,
                                    decoded.queues.iter().map(String::as_str),
                                    ticket,
                                )
                            {
                                Ok(pushed::covered(decoded.entry, decoded.freshness, pushed_fresh))
                            } else {
                                Ok((decoded.entry, decoded.freshness))
                            }
                        }
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
        self.fresh_hit_at(id, Instant::now()).await
    }

    /// As [`Self::fresh_hit`], fresh at `now` (the hit path's time of arrival).
    pub async fn fresh_hit_at(
        &self,
        id: Uuid,
        now: Instant,
    ) -> Option<Arc<Cached<ConversationEntry>>> {
        self.cache
            .fresh_at(&id, now, ConversationEntry::is_found)
            .await
    }

    /// As [`Self::fresh_hit_at`], but only a copy the cache holds ready to answer at once
    /// ([`SwrCache::fresh_ready`]); `None` says nothing, [`Self::fresh_hit_at`] does.
    pub fn fresh_hit_ready(
        &self,
        id: Uuid,
        now: Instant,
    ) -> Option<Arc<Cached<ConversationEntry>>> {
        self.cache
            .fresh_ready(&id, now, ConversationEntry::is_found)
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
        self.cache.invalidate(&id).await;
    }

    /// Stores `document` as conversation `id`'s, fetched now (an update Genesys pushed),
    /// with the freshness its state gives it.
    ///
    /// # Errors
    /// `Decode` when the document is not a conversation (nothing is stored).
    pub async fn store_document(
        &self,
        id: Uuid,
        document: Bytes,
    ) -> Result<Arc<Cached<ConversationEntry>>, UpstreamError> {
        let (entry, freshness) = entry_from_document(id, document, &self.settings)?;
        Ok(self.cache.insert(id, entry, freshness).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_representations_share_one_exact_buffer_apart_from_the_document_given() {
        let document = Bytes::from(br#"{"id":"x","participants":[]}"#.repeat(3));
        let view = br#"{"id":"x"}"#;
        let r = Representations::new(&document, view, ConversationState::Ended);
        assert_eq!((&r.full[..], &r.view[..]), (&document[..], &view[..]));
        assert_ne!(
            r.full.as_ptr(),
            document.as_ptr(),
            "a copy, not the read buffer"
        );
        let (full, view) = (r.full.as_ptr() as usize, r.view.as_ptr() as usize);
        let (full_etag, view_etag) = (
            r.full_etag.as_bytes().as_ptr() as usize,
            r.view_etag.as_bytes().as_ptr() as usize,
        );
        assert_eq!(view, full + r.full.len(), "the view follows the document");
        assert_eq!(full_etag, view + r.view.len(), "then the ETags");
        assert_eq!(view_etag, full_etag + r.full_etag.len());
        assert!(r.full_etag.to_str().expect("ascii").starts_with("\"f-"));
        assert!(r.view_etag.to_str().expect("ascii").starts_with("\"v-"));
        assert_eq!(r.held_bytes(), document.len() + 10 + 2 * 28);
    }
}
