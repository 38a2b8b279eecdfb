//! The search walk: one report page from upstream details pages, across interval chunks,
//! at a cost that follows the hits in the window, not the size of the days it touches.
//! This module owns a search page from its cursor to the next one
//! (`ReportService::search_once`: the cursor resumed and checked, or the interval resolved;
//! the chunks laid out; whole-day counts; the walk; hydration; the next cursor signed).
//! [`ReportService::search`](super::ReportService::search) only lets identical concurrent
//! requests share one such page. The walk itself is in `walk` (reading pages in order),
//! `locate` (where each chunk's walk starts), `collector` (what a page takes from upstream
//! pages) and `hints` (where earlier walks found pages).
//!
//! Genesys documents that a details query returns every conversation that started on a UTC
//! day the interval touches. A window of 15 minutes at 14:00 then comes back as the whole
//! day, sorted, with the window somewhere inside it. Reading from page 1 until the window
//! appears costs the whole morning. Instead, each chunk's walk starts at the upstream page
//! that holds the window's first hit in the client's order ([`Walk::locate`]):
//! - page 1 is read first. When its first hit is already inside the window (an upstream that
//!   matches the interval exactly, a window that starts at midnight for `asc`, or one that
//!   ends at the present for `desc`), the walk starts there and nothing is wasted;
//! - otherwise page 1 gives `totalHits` and the times of the list's head, the list's far end
//!   is bounded by the touched days and by now, and the page holding the window's edge is
//!   found by interpolation on those times (then by bisection if the data is lumpy). On
//!   evenly spread data the first probe lands on that page, which the walk needs anyway.
//!
//! From there pages are read in order until a hit lies past the window's far edge (or the
//! list ends), so a full walk reads the window's pages, the page before it once, and at most
//! one page on each chunk boundary. Chunks start at UTC midnights, and the partial day at
//! the walk's near edge is a chunk of its own (see [`Interval::walk_chunks`]): under
//! whole-day matching that chunk is the tail of its day's list, so it is read from the
//! list's other end, and when the walk reaches the list's last page, the first page in the
//! opposite order (read to locate the window, so cached) serves what is left of it.
//!
//! Whether Genesys widens intervals is a setting (`reports.upstream_interval_matching`):
//! assumed (the documented behaviour, the default) or learned from the first page that
//! holds a conversation outside its interval. Results are right under both; only the
//! number of probes differs (see `search/tests.rs` for the measured bounds).
//!
//! Every upstream page goes through the page cache (see `ReportService::page`), so probes,
//! repeat polls and the next page of a walk cost nothing while fresh. The cursor remembers
//! the chunk, the upstream page and the last conversation returned, so a page that shifted
//! upstream (Genesys' pages move while an interval still receives data) neither repeats nor
//! skips a hit.

mod collector;
mod hints;
mod locate;
mod walk;

use std::future::Future;
use std::ops::Deref;

use chrono::{DateTime, Duration, Utc};
use tokio::time::Instant;

pub use collector::{Collector, after_cursor};
pub use hints::PageHints;
pub use walk::{HARD_UPSTREAM_READS, MAX_UPSTREAM_READS, Walk, WalkOutcome};

use super::aggregates::TimeRange;
use super::cursor::{self, Position};
use super::interval::{Interval, day_start};
use super::request::SearchQuery;
use super::vocabulary::Order;
use super::{CachedPage, ReportService, SearchResponse, translate};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::upstream::models::DetailsResponse;

/// Where the walk reads upstream details pages: page `number` (1-based, the configured
/// upstream page size each) of the details query for `chunk` in `order`.
pub trait UpstreamPages {
    /// A fetched page.
    type Page: Deref<Target = DetailsResponse> + Send;

    /// Fetches (or reads from the cache) one upstream page.
    fn page(
        &self,
        chunk: &Interval,
        order: Order,
        number: u32,
    ) -> impl Future<Output = Result<Self::Page, ApiError>> + Send;

    /// The identity of the list Genesys answers for `chunk` in `order` when it widens
    /// intervals to whole UTC days: the same for every chunk that touches the same days.
    fn list_key(&self, chunk: &Interval, order: Order) -> String;
}

/// The UTC days `chunk` touches, as one interval (what Genesys answers for when it widens).
#[must_use]
pub fn touched_days(chunk: &Interval) -> Interval {
    Interval {
        from: day_start(chunk.from),
        to: day_start(chunk.to - Duration::microseconds(1)) + Duration::days(1),
    }
}

/// The upstream pages of one search request, through the page cache.
struct PageSource<'a> {
    service: &'a ReportService,
    query: &'a SearchQuery,
    caller: &'a Caller,
    deadline: Instant,
}

impl std::fmt::Debug for PageSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageSource").finish_non_exhaustive()
    }
}

impl UpstreamPages for PageSource<'_> {
    type Page = CachedPage;

    fn page(
        &self,
        chunk: &Interval,
        order: Order,
        number: u32,
    ) -> impl Future<Output = Result<CachedPage, ApiError>> + Send {
        self.service
            .page(self.query, chunk, order, number, self.caller, self.deadline)
    }

    fn list_key(&self, chunk: &Interval, order: Order) -> String {
        let days = touched_days(chunk);
        let list = translate::details_query(
            self.query,
            &days,
            order,
            1,
            self.service.settings.upstream_page_size,
        );
        serde_json::to_string(&list).unwrap_or_default()
    }
}

impl ReportService {
    /// One page of a search, walked for this request (and every identical one sharing
    /// it, see [`ReportService::search`]): the cursor resumed (or the interval resolved at
    /// `now`), its chunks walked from there, the first pages of whole-day chunks counted,
    /// the hits hydrated when asked for, and the next cursor signed.
    pub(super) async fn search_once(
        &self,
        query: &SearchQuery,
        fingerprint: &str,
        now: DateTime<Utc>,
        caller: &Caller,
        deadline: Instant,
    ) -> Result<SearchResponse, ApiError> {
        let mut position = self.resume(query, fingerprint, now)?;
        let interval = Interval {
            from: position.from,
            to: position.to,
        };
        let mut chunks =
            interval.walk_chunks(self.settings.max_interval_days, query.order == Order::Asc);
        if query.order == Order::Desc {
            chunks.reverse();
        }
        if position.chunk > chunks.len() {
            return Err(ApiError::invalid_field("cursor", "does not fit this query"));
        }
        let pages = PageSource {
            service: self,
            query,
            caller,
            deadline,
        };
        if query.cursor.is_none() && chunks.iter().all(Interval::is_whole_days) {
            // Whole UTC days: Genesys' count for each chunk is the window's (under either
            // interval matching), and each first page is one the walk reads anyway.
            let firsts = futures_util::future::join_all(
                chunks.iter().map(|c| pages.page(c, query.order, 1)),
            )
            .await;
            let mut total = 0;
            for first in firsts {
                total += first?.total_hits;
            }
            position.total = Some(total);
        }
        let walk = Walk {
            pages: &pages,
            chunks: &chunks,
            order: query.order,
            upstream_page_size: self.settings.upstream_page_size,
            now,
            widens: &self.upstream_widens,
            hints: &self.page_hints,
        };
        let returned_before = position.returned;
        let outcome = walk
            .next_page(&mut position, query.page_size as usize)
            .await?;
        let mut results = outcome.results;
        let total_hits = if outcome.finished {
            Some(returned_before + results.len() as u64)
        } else {
            position.total
        };
        if query.hydrate {
            self.hydrate(&mut results, caller, deadline).await;
        }
        Ok(SearchResponse {
            interval: TimeRange::of(&interval),
            total_hits,
            results,
            next_cursor: (!outcome.finished).then(|| self.signer.encode(&position)),
        })
    }

    /// Where a search continues: the position its cursor names, checked to belong to this
    /// query (`fingerprint`) and these walk settings; or, without a cursor, the start of
    /// the interval resolved at `now`.
    fn resume(
        &self,
        query: &SearchQuery,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Position, ApiError> {
        let stamp = cursor::walk_settings(
            self.settings.upstream_page_size,
            self.settings.max_interval_days,
        );
        match &query.cursor {
            Some(text) => {
                let position = self
                    .signer
                    .decode(text)
                    .map_err(|reason| ApiError::invalid_field("cursor", reason))?;
                if position.q != fingerprint {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "belongs to a different query: send the same query fields with the cursor",
                    ));
                }
                if position.s != stamp {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "was issued under other report settings (upstream page size or interval chunking): start the search again without a cursor",
                    ));
                }
                Ok(position)
            }
            None => {
                let interval = query.interval.resolve(now, self.bucket());
                Ok(Position {
                    v: cursor::VERSION,
                    q: fingerprint.to_owned(),
                    s: stamp,
                    from: interval.from,
                    to: interval.to,
                    chunk: 0,
                    page: 0,
                    last_start: None,
                    last_ids: Vec::new(),
                    reversed: false,
                    returned: 0,
                    total: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
