//! Reports over the Genesys analytics API: `/reports/search` (which conversations) and
//! `/reports/aggregates` (how many, how long). Requests are validated ([`request`]),
//! translated into Genesys queries ([`translate`]) over interval chunks no longer than
//! Genesys allows ([`interval`]), answered from a cache of upstream pages keyed by the
//! digest of the query's canonical JSON (single flight per query, as for conversations),
//! and paged with signed cursors ([`cursor`]). Like conversations, the pages and the
//! aggregates responses live in each replica's moka tier and, in shared mode, in Redis
//! (`crate::shared::cache::report`): a page one replica fetched is another's hit, and a
//! fetch is coalesced across replicas.

pub mod aggregates;
pub mod caches;
pub mod cursor;
pub mod interval;
pub mod request;
pub mod search;
mod settings;
pub mod summary;
pub mod translate;
pub mod vocabulary;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::cache::{CacheSettings, CacheStats, Freshness, SwrCache};
use crate::conversations::{ConversationEntry, ConversationService};
use crate::error::ApiError;
use crate::shared::SharedTier;
use crate::upstream::models::{AggregatesResponse, DetailsResponse};
use crate::upstream::{CallContext, Class, GenesysClient, UpstreamError};
use aggregates::{SeriesPoint, TimeRange};
pub use caches::{
    CachedPage, CachedResponse, ReportTier, SHARED_AGGREGATES_NAMESPACE, SHARED_PAGES_NAMESPACE,
    cache_key,
};
use caches::{ReportCache, report_tier};
use cursor::CursorSigner;
use interval::Interval;
use request::{AggregatesQuery, SearchQuery};
pub use settings::{IntervalMatching, ReportSettings};
use summary::ConversationSummary;
use vocabulary::Order;

/// A page of search results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResponse {
    /// The interval searched (a relative `last` resolved, and pinned for later pages).
    pub interval: TimeRange,
    /// How many conversations of the interval match, when the proxy knows it: on the last
    /// page (counted as returned), and on every page when the interval is made of whole
    /// UTC days (Genesys' count for those days, which shifts while they still receive
    /// data). Absent otherwise: Genesys counts whole days, not the window, so its figure
    /// would overstate a window that cuts a day. For counts without walking, use
    /// `/reports/aggregates`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_hits: Option<u64>,
    /// The conversations of this page (empty when none match).
    pub results: Vec<ConversationSummary>,
    /// Pass it as `cursor`, with the same query, for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Aggregated metrics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AggregatesResponseBody {
    /// The interval aggregated (a relative `last` resolved).
    pub interval: TimeRange,
    /// The bucket length, when one was asked for.
    pub granularity: Option<String>,
    /// One point per group and bucket that has data.
    pub series: Vec<SeriesPoint>,
}

/// Report figures (metrics).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReportStats {
    pub pages: CacheStats,
    pub aggregates: CacheStats,
}

/// The report service.
#[derive(Debug)]
pub struct ReportService {
    client: Arc<GenesysClient>,
    conversations: Arc<ConversationService>,
    pages: ReportCache<DetailsResponse>,
    aggregates: ReportCache<AggregatesResponse>,
    settings: ReportSettings,
    cache: Arc<CacheSettings>,
    signer: CursorSigner,
    fetch_timeout: Duration,
    /// Whether Genesys widens a details query to the UTC days it touches: assumed under
    /// `upstream_interval_matching = "touched-day"`, else learned from the pages (see
    /// `search::Walk::widens`).
    upstream_widens: AtomicBool,
    /// Where earlier walks found the pages of the lists Genesys answers.
    page_hints: search::PageHints,
    /// Searches being answered, by what makes two of them the same page (see
    /// [`ReportService::search`]): identical concurrent polls share one walk.
    searches_in_flight: std::sync::Mutex<HashMap<String, SharedSearch>>,
}

/// One search page being walked, awaited by every identical request that arrives meanwhile.
type SharedSearch = futures_util::future::Shared<
    futures_util::future::BoxFuture<'static, Result<SearchResponse, ApiError>>,
>;

impl ReportService {
    /// A service whose cursors are signed with a key derived from `cursor_secret`, caching
    /// in moka only.
    #[must_use]
    pub fn new(
        client: Arc<GenesysClient>,
        conversations: Arc<ConversationService>,
        settings: ReportSettings,
        cache: CacheSettings,
        cursor_secret: &[u8],
        fetch_timeout: Duration,
    ) -> Self {
        Self::shared(
            client,
            conversations,
            settings,
            cache,
            cursor_secret,
            fetch_timeout,
            None,
        )
    }

    /// As [`Self::new`], caching in moka and, when `shared` is given (and shares the
    /// cache), in Redis too, each fetch coalesced across replicas.
    #[must_use]
    pub fn shared(
        client: Arc<GenesysClient>,
        conversations: Arc<ConversationService>,
        settings: ReportSettings,
        cache: CacheSettings,
        cursor_secret: &[u8],
        fetch_timeout: Duration,
        shared: Option<&Arc<SharedTier>>,
    ) -> Self {
        // Upstream pages take most of the report budget; aggregates answers are small.
        let bytes = cache.report_max_bytes;
        let shared = shared.filter(|shared| shared.shares_cache());
        let assume_whole_days = settings.upstream_interval_matching == IntervalMatching::TouchedDay;
        Self {
            pages: SwrCache::with_tier(
                report_tier(bytes / 5 * 4, shared, SHARED_PAGES_NAMESPACE, fetch_timeout),
                cache.stale_while_revalidate(),
                cache.stale_wait(),
            ),
            aggregates: SwrCache::with_tier(
                report_tier(
                    bytes / 5,
                    shared,
                    SHARED_AGGREGATES_NAMESPACE,
                    fetch_timeout,
                ),
                cache.stale_while_revalidate(),
                cache.stale_wait(),
            ),
            client,
            conversations,
            settings,
            cache: Arc::new(cache),
            signer: CursorSigner::new(cursor_secret),
            fetch_timeout,
            upstream_widens: AtomicBool::new(assume_whole_days),
            page_hints: search::PageHints::default(),
            searches_in_flight: std::sync::Mutex::default(),
        }
    }

    /// Cache figures.
    #[must_use]
    pub fn stats(&self) -> ReportStats {
        ReportStats {
            pages: self.pages.stats(),
            aggregates: self.aggregates.stats(),
        }
    }

    /// Applies pending evictions (exact figures).
    pub async fn settle(&self) {
        self.pages.settle().await;
        self.aggregates.settle().await;
    }

    /// Drops every cached page.
    pub async fn purge(&self) {
        self.pages.purge().await;
        self.aggregates.purge().await;
    }

    fn bucket(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.settings.relative_bucket_secs).unwrap_or(60))
    }

    fn max_chunk(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.settings.max_interval_days))
    }

    /// The context of an upstream report call for `caller`: it must start before the
    /// request gives up (`deadline`), and last no longer than the fetch timeout.
    fn report_call(&self, caller: &Caller, deadline: Instant) -> CallContext {
        CallContext::until(
            Class::Report,
            caller.name.clone(),
            caller.weight,
            deadline.min(Instant::now() + self.fetch_timeout),
        )
    }

    fn freshness(&self, chunk: &Interval, relative: bool) -> Freshness {
        if relative {
            Freshness {
                fresh_for: Duration::from_secs(self.settings.relative_bucket_secs),
                stale_if_error: Duration::from_secs(self.cache.stale_if_error_secs),
            }
        } else {
            self.cache.report(chunk.to, self.now())
        }
    }

    async fn page(
        &self,
        query: &SearchQuery,
        chunk: &Interval,
        order: Order,
        number: u32,
        caller: &Caller,
        deadline: Instant,
    ) -> Result<CachedPage, ApiError> {
        let upstream = translate::details_query(
            query,
            chunk,
            order,
            number,
            self.settings.upstream_page_size,
        );
        let key = cache_key(&upstream);
        let freshness = self.freshness(chunk, query.interval.is_relative());
        let client = self.client.clone();
        let ctx = self.report_call(caller, deadline);
        let served = self
            .pages
            .get(key, deadline, move || async move {
                let fetched = client
                    .details_query(&upstream, &ctx)
                    .await
                    .inspect_err(log_failure)?;
                Ok((fetched.into(), freshness))
            })
            .await
            .map_err(ApiError::from)?;
        Ok(CachedPage::new(served.entry))
    }

    /// The proxy's present for report intervals.
    fn now(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.settings.clock_offset_ms)
    }

    /// One page of a search: see [`search`] for how the walk keeps its cost to the pages
    /// that hold the window's hits.
    ///
    /// Identical requests (the same query and cursor, or the same query and resolved
    /// interval) that arrive while one is being walked share that walk and its answer: 50
    /// dashboards polling one report at the same instant make one walk, reading the same
    /// upstream pages (a walk that ran beside another could otherwise take other pages,
    /// guided by page hints the first recorded meanwhile). They share the first one's
    /// deadline and budget class.
    ///
    /// # Errors
    /// A 400 for a bad cursor; the classified upstream failure otherwise.
    pub async fn search(
        self: &Arc<Self>,
        query: &SearchQuery,
        caller: &Caller,
        deadline: Instant,
    ) -> Result<SearchResponse, ApiError> {
        use futures_util::FutureExt as _;
        use tracing::Instrument as _;
        // One fingerprint and one "now" for the key and the walk, so the walk answers for
        // the interval its key names.
        let fingerprint = query.fingerprint();
        let now = self.now();
        let key = match &query.cursor {
            Some(cursor) => format!("{fingerprint} {cursor}"),
            None => format!(
                "{fingerprint} {}",
                query.interval.resolve(now, self.bucket()).wire()
            ),
        };
        let shared = {
            let mut in_flight = self
                .searches_in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(walking) = in_flight.get(&key) {
                walking.clone()
            } else {
                let service = self.clone();
                let (query, caller) = (query.clone(), caller.clone());
                let done_key = key.clone();
                let walk = async move {
                    let page = service
                        .search_once(&query, &fingerprint, now, &caller, deadline)
                        .await;
                    service
                        .searches_in_flight
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&done_key);
                    page
                }
                // In the first request's span: its trace and access-log line own the calls.
                .instrument(tracing::Span::current())
                .boxed()
                .shared();
                in_flight.insert(key, walk.clone());
                // Driven to its end (and out of the map) even if every client leaves.
                tokio::spawn(walk.clone());
                walk
            }
        };
        shared.await
    }

    /// Attaches each hit's conversation view (up to the configured bound), through the
    /// conversation cache at hydration class. A hit that cannot be fetched in time is left
    /// without one.
    async fn hydrate(
        &self,
        results: &mut [ConversationSummary],
        caller: &Caller,
        deadline: Instant,
    ) {
        let bound = (self.settings.hydrate_max as usize).min(results.len());
        let lookups = results[..bound].iter().map(|summary| {
            let id = uuid::Uuid::try_parse(&summary.id).ok();
            async move {
                let id = id?;
                let served = self
                    .conversations
                    .get(id, Class::Hydrate, caller, deadline)
                    .await
                    .ok()?;
                match &served.entry.value {
                    ConversationEntry::Found(r) => serde_json::from_slice(&r.view).ok(),
                    ConversationEntry::NotFound => None,
                }
            }
        });
        let views = futures_util::future::join_all(lookups).await;
        for (summary, view) in results.iter_mut().zip(views) {
            summary.conversation = view;
        }
    }

    /// Aggregated metrics.
    ///
    /// # Errors
    /// The classified upstream failure.
    pub async fn aggregate(
        &self,
        query: &AggregatesQuery,
        caller: &Caller,
        deadline: Instant,
    ) -> Result<AggregatesResponseBody, ApiError> {
        let interval = query.interval.resolve(self.now(), self.bucket());
        // Chunks are whole multiples of the granularity, so buckets line up across them.
        let max = self.max_chunk();
        let chunk_len = match query.granularity {
            Some(g) => {
                g * i32::try_from(max.num_seconds() / g.num_seconds().max(1))
                    .unwrap_or(1)
                    .max(1)
            }
            None => max,
        };
        let chunks = interval.chunks(chunk_len);
        let relative = query.interval.is_relative();
        let fetches = chunks.iter().map(|chunk| {
            let upstream = translate::aggregation_query(query, chunk);
            let key = cache_key(&upstream);
            let freshness = self.freshness(chunk, relative);
            let client = self.client.clone();
            let ctx = self.report_call(caller, deadline);
            self.aggregates.get(key, deadline, move || async move {
                let fetched = client
                    .aggregates_query(&upstream, &ctx)
                    .await
                    .inspect_err(log_failure)?;
                Ok((fetched.into(), freshness))
            })
        });
        let mut responses = Vec::new();
        for served in futures_util::future::join_all(fetches).await {
            responses.push(served.map_err(ApiError::from)?.entry.value.body.clone());
        }
        Ok(AggregatesResponseBody {
            interval: TimeRange::of(&interval),
            granularity: query.granularity_text.clone(),
            series: aggregates::series(query, &interval, &responses),
        })
    }
}

fn log_failure(error: &UpstreamError) {
    tracing::warn!(%error, kind = error.kind(), "report query failed upstream");
}
