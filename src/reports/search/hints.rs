//! Page hints: where earlier walks found the pages of each upstream list, so that a
//! dashboard's next poll reads the page that holds its window's edge instead of searching
//! for it again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

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
pub(super) struct Span {
    pub(super) page: u32,
    pub(super) first: i64,
    pub(super) last: i64,
}

impl PageHints {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ListHints>> {
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn record(&self, list: String, span: Span, total: u64) {
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
    pub(super) fn total(&self, list: &str) -> Option<u64> {
        self.lock().get(list).map(|l| l.total)
    }

    /// The page that should hold `edge` (the first key at or after it) in `list`: one
    /// that held it last time, or else the one after the last page seen wholly before it.
    /// With it, whether the page before it was seen to end before the edge.
    pub(super) fn holding(&self, list: &str, edge: i64) -> Option<(u32, bool)> {
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
