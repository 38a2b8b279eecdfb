//! The walk over a search's chunks: from where each chunk's walk starts (see
//! [`locate`](super::locate)), upstream pages are read in order until a hit lies past the
//! chunk's far edge or the list ends, and a chunk's tail may be served from the first page
//! in the opposite order.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};

use super::UpstreamPages;
use super::collector::{Collector, Taken};
use super::hints::{PageHints, Span};
use crate::error::ApiError;
use crate::reports::cursor::{MAX_TIE_IDS, Position};
use crate::reports::interval::{Interval, day_start};
use crate::reports::summary::ConversationSummary;
use crate::reports::vocabulary::Order;
use crate::upstream::models::{AnalyticsConversation, DetailsResponse};

/// Upstream pages one report page may read once it has a result (the rest waits for the
/// next page's request, so one request stays well inside its deadline).
pub const MAX_UPSTREAM_READS: usize = 40;
/// Upstream pages one report page may read in all, even with nothing found yet.
pub const HARD_UPSTREAM_READS: usize = 120;

/// A conversation start as a key that grows in walk order (microseconds; negated for
/// `desc`), so that one search serves both orders.
pub(super) fn walk_key(at: DateTime<Utc>, order: Order) -> i64 {
    let micros = at.timestamp_micros();
    match order {
        Order::Asc => micros,
        Order::Desc => -micros,
    }
}

/// The key from which a hit is inside `chunk` on its near side: `from` for `asc`; for
/// `desc`, just below `to` (which is exclusive).
pub(super) fn near_edge_key(chunk: &Interval, order: Order) -> i64 {
    match order {
        Order::Asc => walk_key(chunk.from, order),
        Order::Desc => walk_key(chunk.to, order) + 1,
    }
}

/// Whether `c` lies beyond the chunk's far side in walk order (the chunk's hits are over).
pub(super) fn past_far_edge(c: &AnalyticsConversation, chunk: &Interval, order: Order) -> bool {
    match order {
        Order::Asc => c.conversation_start >= chunk.to,
        Order::Desc => c.conversation_start < chunk.from,
    }
}

/// What one report page ended with.
#[derive(Debug)]
pub struct WalkOutcome {
    /// The results, in the client's order.
    pub results: Vec<ConversationSummary>,
    /// Whether the last matching conversation has been returned.
    pub finished: bool,
    /// Upstream pages read (from the cache or not).
    pub reads: usize,
}

/// How far from now the end of an interval may lie and still count as "the present"
/// (a relative interval ends at now floored to its bucket): nothing much started since.
pub(super) const PRESENT: Duration = Duration::minutes(5);

/// Where the walk of a chunk starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// At this upstream page, in the client's order.
    Page(u32),
    /// The first upstream page in the opposite order holds every hit of the chunk.
    Reversed,
}

/// One walk over a search's chunks.
#[derive(Debug)]
pub struct Walk<'a, P> {
    pub pages: &'a P,
    /// The chunks, in walk order (latest first for `desc`).
    pub chunks: &'a [Interval],
    pub order: Order,
    /// Conversations per upstream page.
    pub upstream_page_size: u32,
    /// The present (nothing starts after it).
    pub now: DateTime<Utc>,
    /// Whether the upstream has been seen to widen queries to whole UTC days: set by any
    /// page that holds a hit outside its chunk. Until then a search first reads page 1
    /// (right at once for an upstream that matches intervals exactly); once seen, it
    /// reasons from the day's edges instead.
    pub widens: &'a AtomicBool,
    /// Where earlier walks found pages (used once the upstream is known to widen).
    pub hints: &'a PageHints,
}

impl<P: UpstreamPages + Sync> Walk<'_, P> {
    /// Collects up to `page_size` results after `position`, advancing it.
    ///
    /// # Errors
    /// The classified upstream failure of a page read.
    pub async fn next_page(
        &self,
        position: &mut Position,
        page_size: usize,
    ) -> Result<WalkOutcome, ApiError> {
        let mut collector = Collector::new(page_size);
        let mut reads = 0;
        // Set when the opposite page was tried for a chunk's tail and did not cover it.
        let mut tail_refused = None;
        while let Some(chunk) = self.chunks.get(position.chunk).copied() {
            let enough_reads = if collector.results.is_empty() {
                HARD_UPSTREAM_READS
            } else {
                MAX_UPSTREAM_READS
            };
            if reads >= enough_reads && position.last_ids.len() <= MAX_TIE_IDS {
                break;
            }
            if position.page == 0 && !position.reversed {
                match self.locate(&chunk, &mut reads).await? {
                    Start::Page(page) => position.page = page,
                    Start::Reversed => position.reversed = true,
                }
            }
            if !position.reversed
                && tail_refused != Some(position.chunk)
                && self.is_the_lists_last_page(&chunk, position.page)
            {
                // The rest of the chunk is the list's tail, which the first page in the
                // opposite order holds (read already when the walk was located there).
                position.reversed = true;
            }
            let (page, chunk_done) = if position.reversed {
                let page = self
                    .read(&chunk, self.order.opposite(), 1, &mut reads)
                    .await?;
                if !self.covers_the_rest(&page, &chunk, position) {
                    // Refetched since, it no longer reaches back to what the walk returned
                    // (more conversations arrived after the window): walk the client's
                    // order.
                    position.reversed = false;
                    tail_refused = Some(position.chunk);
                    if position.page == 0 {
                        position.page = 1;
                    }
                    continue;
                }
                (page, true)
            } else {
                let page = self
                    .read(&chunk, self.order, position.page, &mut reads)
                    .await?;
                let done = page.records < self.upstream_page_size as usize
                    || page
                        .conversations
                        .iter()
                        .any(|h| past_far_edge(h, &chunk, self.order));
                (page, done)
            };
            let taken = if position.reversed {
                let mut hits: Vec<AnalyticsConversation> = page
                    .conversations
                    .iter()
                    .filter(|h| chunk.contains(h.conversation_start))
                    .cloned()
                    .collect();
                hits.sort_by(|a, b| {
                    walk_key(a.conversation_start, self.order)
                        .cmp(&walk_key(b.conversation_start, self.order))
                        .then_with(|| a.conversation_id.cmp(&b.conversation_id))
                });
                collector.take(&hits, &chunk, position, self.order)
            } else {
                collector.take(&page.conversations, &chunk, position, self.order)
            };
            if taken == (Taken::Full { more_here: true }) {
                // The rest of this upstream page comes on the next report page.
                break;
            }
            if chunk_done {
                collector.close_tie_group(position, self.order);
                position.chunk += 1;
                position.page = 0;
                position.reversed = false;
            } else {
                position.page += 1;
            }
            if collector.full(position) {
                break;
            }
        }
        let finished = position.chunk >= self.chunks.len();
        Ok(WalkOutcome {
            results: collector.results,
            finished,
            reads,
        })
    }

    /// Reads one page, and learns from it whether the upstream widens intervals.
    pub(super) async fn read(
        &self,
        chunk: &Interval,
        order: Order,
        number: u32,
        reads: &mut usize,
    ) -> Result<P::Page, ApiError> {
        let page = self.pages.page(chunk, order, number).await?;
        *reads += 1;
        if let (Some(first), Some(last)) = (page.conversations.first(), page.conversations.last())
            && self.widens.load(Ordering::Relaxed)
        {
            self.hints.record(
                self.pages.list_key(chunk, order),
                Span {
                    page: number,
                    first: walk_key(first.conversation_start, order),
                    last: walk_key(last.conversation_start, order),
                },
                page.total_hits,
            );
        }
        if !self.widens.load(Ordering::Relaxed)
            && page
                .conversations
                .iter()
                .any(|h| !chunk.contains(h.conversation_start))
        {
            self.widens.store(true, Ordering::Relaxed);
        }
        Ok(page)
    }

    /// Whether `number` is the last page of the chunk's list in the client's order, and
    /// the chunk runs to the list's end: then the first page in the opposite order holds
    /// what is left of the chunk. Known from the list's count as last seen, once the
    /// upstream is known to widen (under exact matching nothing is recorded).
    fn is_the_lists_last_page(&self, chunk: &Interval, number: u32) -> bool {
        let size = u64::from(self.upstream_page_size);
        number > 1
            && self.widens.load(Ordering::Relaxed)
            && self.far_edge_is_the_lists(chunk)
            && self
                .hints
                .total(&self.pages.list_key(chunk, self.order))
                .is_some_and(|total| {
                    u64::from(number - 1) * size < total && total <= u64::from(number) * size
                })
    }

    /// Whether the first page in the opposite order holds every hit of the chunk not yet
    /// returned: it holds the whole chunk, or it reaches back past the last hit returned.
    fn covers_the_rest(
        &self,
        page: &DetailsResponse,
        chunk: &Interval,
        position: &Position,
    ) -> bool {
        if self.holds_the_whole_chunk(page, chunk) {
            return true;
        }
        let (Some(returned), Some(earliest)) = (position.last_start, page.conversations.last())
        else {
            return false;
        };
        chunk.contains(returned)
            && walk_key(earliest.conversation_start, self.order) < walk_key(returned, self.order)
    }

    /// Whether the first page in the opposite order holds every hit of the chunk: the
    /// list ends in it, or it reaches past the chunk's near edge.
    pub(super) fn holds_the_whole_chunk(&self, page: &DetailsResponse, chunk: &Interval) -> bool {
        page.records < self.upstream_page_size as usize
            || page
                .conversations
                .iter()
                .any(|h| past_far_edge(h, chunk, self.order.opposite()))
    }

    /// Whether nothing of the chunk's upstream list lies before its near edge (in the
    /// client's order), however the upstream matches intervals.
    pub(super) fn near_edge_is_the_lists(&self, chunk: &Interval) -> bool {
        match self.order {
            Order::Asc => chunk.from == day_start(chunk.from),
            Order::Desc => chunk.to == day_start(chunk.to) || chunk.to + PRESENT >= self.now,
        }
    }

    /// Whether nothing (much) of the chunk's upstream list lies beyond its far edge.
    pub(super) fn far_edge_is_the_lists(&self, chunk: &Interval) -> bool {
        match self.order {
            Order::Asc => chunk.to == day_start(chunk.to) || chunk.to + PRESENT >= self.now,
            Order::Desc => chunk.from == day_start(chunk.from),
        }
    }
}
