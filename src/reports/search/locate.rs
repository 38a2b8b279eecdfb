//! Locating where a chunk's walk starts: the upstream page (in the client's order) that
//! holds the chunk's first hit, found from the list's head, its far end (bounded by the
//! touched days and by now) and page hints, by interpolation and then bisection. See the
//! module documentation of [`search`](super).

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use super::walk::{Start, Walk, near_edge_key, walk_key};
use super::{UpstreamPages, touched_days};
use crate::error::ApiError;
use crate::reports::interval::{Interval, day_start};
use crate::reports::vocabulary::Order;

/// Probes one locate may spend before it settles for the lowest candidate page.
const MAX_PROBES: u32 = 24;
/// Interpolated probes before the search falls back to bisection.
const INTERPOLATED_PROBES: u32 = 3;

impl<P: UpstreamPages + Sync> Walk<'_, P> {
    /// Where the chunk's walk starts: the upstream page (in the client's order) that holds
    /// the chunk's first hit, or the page where the list ends before reaching it. See the
    /// module documentation.
    pub(super) async fn locate(
        &self,
        chunk: &Interval,
        reads: &mut usize,
    ) -> Result<Start, ApiError> {
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
            let back = self.read(chunk, order.opposite(), 1, reads).await?;
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
    let share = ((edge - lo.key) as f64 / (hi.key - lo.key) as f64).clamp(0.0, 1.0);
    let position = lo.position + ((hi.position - lo.position) as f64 * share) as u64;
    u32::try_from(position / size + 1).unwrap_or(u32::MAX)
}
