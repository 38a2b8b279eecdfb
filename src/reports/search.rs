//! The search walk: one report page from upstream details pages, across interval chunks,
//! at a cost that follows the hits in the window, not the size of the days it touches.
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

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};

use super::cursor::{MAX_TIE_IDS, Position};
use super::interval::{Interval, day_start};
use super::request::Order;
use super::summary::ConversationSummary;
use crate::error::ApiError;
use crate::upstream::models::{AnalyticsConversation, DetailsResponse};

/// Upstream pages one report page may read once it has a result (the rest waits for the
/// next page's request, so one request stays well inside its deadline).
pub const MAX_UPSTREAM_READS: usize = 40;
/// Upstream pages one report page may read in all, even with nothing found yet.
pub const HARD_UPSTREAM_READS: usize = 120;
/// Probes one locate may spend before it settles for the lowest candidate page.
const MAX_PROBES: u32 = 24;
/// Interpolated probes before the search falls back to bisection.
const INTERPOLATED_PROBES: u32 = 3;

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

/// Lists tracked at most; past it the oldest half is forgotten.
const MAX_HINT_LISTS: usize = 512;
/// Pages remembered per list (the most recent).
const MAX_HINT_PAGES: usize = 16;

/// Where earlier walks found the pages of an upstream list: for each list (see
/// [`UpstreamPages::list_key`]), the first and last start of pages read. A dashboard that
/// polls `last=P1D` every minute asks for a window whose edge moved by a minute: the page
/// that held it a minute ago (or the next one) holds it now, so the poll reads that page
/// instead of searching again. A hint is only a guess: the page read is checked, and a
/// stale hint falls back to the search.
#[derive(Debug, Default)]
pub struct PageHints {
    lists: Mutex<HashMap<String, ListHints>>,
}

/// What is known of one list: when it was last used (a tick), its count as last seen,
/// and where its pages were.
#[derive(Debug, Default)]
struct ListHints {
    used: u64,
    total: u64,
    spans: Vec<Span>,
}

/// One page of a list as last seen: its number and its first and last walk keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    page: u32,
    first: i64,
    last: i64,
}

impl PageHints {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ListHints>> {
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, list: String, span: Span, total: u64) {
        let mut lists = self.lock();
        if lists.len() >= MAX_HINT_LISTS && !lists.contains_key(&list) {
            // Forget the oldest half (by when they were last used).
            let mut ages: Vec<u64> = lists.values().map(|l| l.used).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            lists.retain(|_, l| l.used > cut);
        }
        let tick = lists.values().map(|l| l.used).max().unwrap_or(0) + 1;
        let entry = lists.entry(list).or_default();
        entry.used = tick;
        entry.total = total;
        entry.spans.retain(|known| known.page != span.page);
        entry.spans.push(span);
        if entry.spans.len() > MAX_HINT_PAGES {
            entry.spans.remove(0);
        }
    }

    /// The list's count (`totalHits`) when a page of it was last read.
    fn total(&self, list: &str) -> Option<u64> {
        self.lock().get(list).map(|l| l.total)
    }

    /// The page that should hold `edge` (the first key at or after it) in `list`: one
    /// that held it last time, or else the one after the last page seen wholly before it.
    /// With it, whether the page before it was seen to end before the edge.
    fn holding(&self, list: &str, edge: i64) -> Option<(u32, bool)> {
        let lists = self.lock();
        let spans = &lists.get(list)?.spans;
        if let Some(span) = spans
            .iter()
            .find(|s| (s.first < edge || s.page == 1) && edge <= s.last)
        {
            return Some((span.page, false));
        }
        let before = spans
            .iter()
            .filter(|s| s.last < edge)
            .max_by_key(|s| s.page)?;
        Some((before.page + 1, true))
    }
}

/// Whether `c` comes after the cursor's last returned conversation in `order`.
#[must_use]
pub fn after_cursor(c: &AnalyticsConversation, position: &Position, order: Order) -> bool {
    match position.last_start {
        None => true,
        Some(last) if c.conversation_start == last => {
            !position.last_ids.contains(&c.conversation_id)
        }
        Some(last) => match order {
            Order::Asc => c.conversation_start > last,
            Order::Desc => c.conversation_start < last,
        },
    }
}

/// A conversation start as a key that grows in walk order (microseconds; negated for
/// `desc`), so that one search serves both orders.
fn walk_key(at: DateTime<Utc>, order: Order) -> i64 {
    let micros = at.timestamp_micros();
    match order {
        Order::Asc => micros,
        Order::Desc => -micros,
    }
}

/// The key from which a hit is inside `chunk` on its near side: `from` for `asc`; for
/// `desc`, just below `to` (which is exclusive).
fn near_edge_key(chunk: &Interval, order: Order) -> i64 {
    match order {
        Order::Asc => walk_key(chunk.from, order),
        Order::Desc => walk_key(chunk.to, order) + 1,
    }
}

/// Whether `c` lies beyond the chunk's far side in walk order (the chunk's hits are over).
fn past_far_edge(c: &AnalyticsConversation, chunk: &Interval, order: Order) -> bool {
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
const PRESENT: Duration = Duration::minutes(5);

/// Where the walk of a chunk starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// At this upstream page, in the client's order.
    Page(u32),
    /// The first upstream page in the opposite order holds every hit of the chunk.
    Reversed,
}

fn opposite(order: Order) -> Order {
    match order {
        Order::Asc => Order::Desc,
        Order::Desc => Order::Asc,
    }
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
                    .read(&chunk, opposite(self.order), 1, &mut reads)
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
    async fn read(
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
    fn holds_the_whole_chunk(&self, page: &DetailsResponse, chunk: &Interval) -> bool {
        page.records < self.upstream_page_size as usize
            || page
                .conversations
                .iter()
                .any(|h| past_far_edge(h, chunk, opposite(self.order)))
    }

    /// Whether nothing of the chunk's upstream list lies before its near edge (in the
    /// client's order), however the upstream matches intervals.
    fn near_edge_is_the_lists(&self, chunk: &Interval) -> bool {
        match self.order {
            Order::Asc => chunk.from == day_start(chunk.from),
            Order::Desc => chunk.to == day_start(chunk.to) || chunk.to + PRESENT >= self.now,
        }
    }

    /// Whether nothing (much) of the chunk's upstream list lies beyond its far edge.
    fn far_edge_is_the_lists(&self, chunk: &Interval) -> bool {
        match self.order {
            Order::Asc => chunk.to == day_start(chunk.to) || chunk.to + PRESENT >= self.now,
            Order::Desc => chunk.from == day_start(chunk.from),
        }
    }

    /// Where the chunk's walk starts: the upstream page (in the client's order) that holds
    /// the chunk's first hit, or the page where the list ends before reaching it. See the
    /// module documentation.
    async fn locate(&self, chunk: &Interval, reads: &mut usize) -> Result<Start, ApiError> {
        let order = self.order;
        let size = u64::from(self.upstream_page_size);
        let edge = near_edge_key(chunk, order);
        if self.near_edge_is_the_lists(chunk) {
            return Ok(Start::Page(1));
        }
        if self.widens.load(Ordering::Relaxed)
            && let Some((hinted, after_a_page_before)) =
                self.hints.holding(&self.pages.list_key(chunk, order), edge)
        {
            let page = self.read(chunk, order, hinted, reads).await?;
            if let (Some(first), Some(last)) =
                (page.conversations.first(), page.conversations.last())
                && walk_key(last.conversation_start, order) >= edge
                && (hinted == 1
                    || after_a_page_before
                    || walk_key(first.conversation_start, order) < edge)
            {
                return Ok(Start::Page(hinted));
            }
            // The list moved since: search as if nothing were known.
        }
        // The edge nearer the list's end than its start (by time) is read from the end.
        let nearer_the_end = edge - self.list_start_key(chunk) > self.list_end_key(chunk) - edge;
        if self.far_edge_is_the_lists(chunk)
            && nearer_the_end
            && self.widens.load(Ordering::Relaxed)
        {
            // The window is the tail of the list: the first page in the other order reads
            // it from its far end.
            let back = self.read(chunk, opposite(order), 1, reads).await?;
            let Some(earliest) = back.conversations.last() else {
                return Ok(Start::Page(1));
            };
            if self.holds_the_whole_chunk(&back, chunk) {
                return Ok(Start::Reversed);
            }
            // Longer than a page: search the client's order between the list's start
            // (estimated from the day) and the position that page reached.
            let total = back.total_hits.max(size + 1);
            let position = total - size;
            let lo = Bound {
                page: 1,
                position: 0,
                key: self.list_start_key(chunk),
            };
            let hi = Bound {
                page: u32::try_from(position / size + 1).unwrap_or(u32::MAX),
                position,
                key: walk_key(earliest.conversation_start, order),
            };
            return Ok(Start::Page(self.search(chunk, lo, hi, edge, reads).await?));
        }
        let first = self.read(chunk, order, 1, reads).await?;
        let Some(head_last) = first.conversations.last() else {
            return Ok(Start::Page(1));
        };
        if (first.records as u64) < size || walk_key(head_last.conversation_start, order) >= edge {
            return Ok(Start::Page(1));
        }
        // Page 1 lies wholly before the window: search pages 2..=last.
        let total = first.total_hits.max(size + 1);
        let lo = Bound {
            page: 2,
            position: size - 1,
            key: walk_key(head_last.conversation_start, order),
        };
        let hi = Bound {
            page: u32::try_from(total.div_ceil(size))
                .unwrap_or(u32::MAX)
                .max(2),
            position: total - 1,
            key: self.list_end_key(chunk),
        };
        Ok(Start::Page(self.search(chunk, lo, hi, edge, reads).await?))
    }

    /// The first page in `lo.page..=hi.page` whose last hit reaches `edge`: interpolation
    /// on the known keys, then bisection.
    async fn search(
        &self,
        chunk: &Interval,
        mut lo: Bound,
        mut hi: Bound,
        edge: i64,
        reads: &mut usize,
    ) -> Result<u32, ApiError> {
        let size = u64::from(self.upstream_page_size);
        let far_key = match self.order {
            Order::Asc => walk_key(chunk.to, self.order),
            Order::Desc => walk_key(chunk.from, self.order),
        };
        let mut probes = 0;
        let mut last_probe_inside = false;
        while lo.page < hi.page && probes < MAX_PROBES {
            let at_edge = interpolate(&lo, &hi, edge, size);
            let guess = if last_probe_inside && hi.page - at_edge.clamp(lo.page, hi.page) <= 2 {
                // The last probe landed inside the window, just past the edge: the page
                // before it is either the edge's or one the walk reads anyway.
                hi.page - 1
            } else if probes < INTERPOLATED_PROBES || probes % 2 == 0 {
                // A probe that lands inside the window is a page the walk reads anyway; one
                // that lands before it is lost. So aim a little past the estimate, by at
                // most half the window's estimated length.
                let window_end = interpolate(&lo, &hi, far_key, size);
                let lean = ((hi.page - lo.page) / 16)
                    .max(1)
                    .min(window_end.saturating_sub(at_edge) / 2);
                at_edge.saturating_add(lean)
            } else {
                lo.page + (hi.page - lo.page) / 2
            }
            .clamp(lo.page, hi.page);
            let probe = self.read(chunk, self.order, guess, reads).await?;
            probes += 1;
            let (Some(p_first), Some(p_last)) =
                (probe.conversations.first(), probe.conversations.last())
            else {
                // The list is shorter than its count said: its end is before `guess`.
                hi.page = guess.saturating_sub(1).max(lo.page);
                continue;
            };
            let first_key = walk_key(p_first.conversation_start, self.order);
            let last_key = walk_key(p_last.conversation_start, self.order);
            if last_key < edge {
                if (probe.records as u64) < size {
                    // The list ends before the window: the walk reads this page, finds
                    // nothing and closes the chunk.
                    return Ok(guess);
                }
                lo = Bound {
                    page: guess + 1,
                    position: u64::from(guess) * size,
                    key: last_key,
                };
                last_probe_inside = false;
            } else if first_key < edge || guess == lo.page {
                return Ok(guess);
            } else {
                hi = Bound {
                    page: guess,
                    position: u64::from(guess - 1) * size,
                    key: first_key,
                };
                last_probe_inside = first_key < far_key;
            }
        }
        Ok(lo.page)
    }

    /// The earliest key the chunk's upstream list can hold: the start of its first day
    /// for `asc`; for `desc`, the end of its last day or now, whichever is earlier.
    fn list_start_key(&self, chunk: &Interval) -> i64 {
        match self.order {
            Order::Asc => walk_key(day_start(chunk.from), self.order),
            Order::Desc => walk_key(self.list_last_instant(chunk), self.order),
        }
    }

    /// The latest key the chunk's upstream list can reach (see [`Self::list_start_key`]).
    fn list_end_key(&self, chunk: &Interval) -> i64 {
        match self.order {
            Order::Asc => walk_key(self.list_last_instant(chunk), self.order),
            Order::Desc => walk_key(day_start(chunk.from), self.order),
        }
    }

    /// The end of the last UTC day the chunk touches, or now if earlier.
    fn list_last_instant(&self, chunk: &Interval) -> DateTime<Utc> {
        touched_days(chunk).to.min(self.now)
    }
}

/// One side of the locate search: a page number and what is known at a list position.
#[derive(Debug)]
struct Bound {
    page: u32,
    position: u64,
    key: i64,
}

/// The page whose range should hold `edge`, assuming keys spread evenly between the two
/// known positions.
fn interpolate(lo: &Bound, hi: &Bound, edge: i64, size: u64) -> u32 {
    if hi.key <= lo.key || hi.position <= lo.position {
        return lo.page + (hi.page - lo.page) / 2;
    }
    #[allow(clippy::cast_precision_loss)]
    let share = ((edge - lo.key) as f64 / (hi.key - lo.key) as f64).clamp(0.0, 1.0);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let position = lo.position + ((hi.position - lo.position) as f64 * share) as u64;
    u32::try_from(position / size + 1).unwrap_or(u32::MAX)
}

/// What [`Collector::take`] made of one upstream page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// The report page still has room.
    Room,
    /// The report page is full; `more_here` when hits of the chunk follow in this
    /// upstream page.
    Full { more_here: bool },
}

/// Collects a report page from upstream pages.
#[derive(Debug)]
pub struct Collector {
    pub results: Vec<ConversationSummary>,
    pub page_size: usize,
    seen: HashSet<String>,
}

impl Collector {
    #[must_use]
    pub fn new(page_size: usize) -> Self {
        Self {
            results: Vec::with_capacity(page_size),
            page_size,
            seen: HashSet::new(),
        }
    }

    fn full(&self, position: &Position) -> bool {
        self.results.len() >= self.page_size && position.last_ids.len() <= MAX_TIE_IDS
    }

    /// Takes the hits of one upstream page that belong to `chunk` and come after the
    /// cursor, advancing the cursor.
    ///
    /// A page never ends inside a group of more than [`MAX_TIE_IDS`] conversations that
    /// started at the same instant (the cursor would have to name them all): it then
    /// grows past `page_size` until the group is complete.
    fn take(
        &mut self,
        hits: &[AnalyticsConversation],
        chunk: &Interval,
        position: &mut Position,
        order: Order,
    ) -> Taken {
        for (i, hit) in hits.iter().enumerate() {
            if !chunk.contains(hit.conversation_start)
                || !after_cursor(hit, position, order)
                || self.seen.contains(&hit.conversation_id)
            {
                continue;
            }
            if self.results.len() >= self.page_size
                && position.last_start != Some(hit.conversation_start)
            {
                // Over-full with a long tie group, which this hit closes.
                self.close_tie_group(position, order);
                return Taken::Full { more_here: true };
            }
            self.seen.insert(hit.conversation_id.clone());
            if position.last_start == Some(hit.conversation_start) {
                position.last_ids.push(hit.conversation_id.clone());
            } else {
                position.last_start = Some(hit.conversation_start);
                position.last_ids = vec![hit.conversation_id.clone()];
            }
            position.returned += 1;
            self.results.push(ConversationSummary::from_analytics(hit));
            if self.full(position) {
                let more_here = hits[i + 1..].iter().any(|h| {
                    chunk.contains(h.conversation_start) && after_cursor(h, position, order)
                });
                return Taken::Full { more_here };
            }
        }
        if self.full(position) {
            Taken::Full { more_here: false }
        } else {
            Taken::Room
        }
    }

    /// After a tie group longer than the cursor can name is complete, the cursor moves
    /// just past its instant instead of listing it.
    fn close_tie_group(&self, position: &mut Position, order: Order) {
        if position.last_ids.len() <= MAX_TIE_IDS {
            return;
        }
        if let Some(last) = position.last_start {
            let step = Duration::microseconds(1);
            position.last_start = Some(match order {
                Order::Asc => last + step,
                Order::Desc => last - step,
            });
            position.last_ids.clear();
        }
    }
}

#[cfg(test)]
mod tests;
