//! The search walk: one report page from upstream pages across interval chunks.
//!
//! Chunks are walked in order (earliest first for `asc`, latest first for `desc`); each
//! upstream page is fetched through the page cache. Hits outside their chunk are dropped
//! (Genesys documents that a details query returns conversations that started on any day
//! the interval touches), and the cursor remembers the last conversation returned, so a
//! page that shifted upstream (Genesys' pages move while an interval still receives data)
//! neither repeats nor skips a hit. One report page reads at most
//! [`MAX_UPSTREAM_PAGES`] upstream pages; a sparse filter may then return a short page with
//! a cursor to go on.

use std::collections::HashSet;

use super::cursor::Position;
use super::interval::Interval;
use super::request::Order;
use super::summary::ConversationSummary;
use crate::upstream::models::AnalyticsConversation;

/// Most upstream pages one report page reads.
pub const MAX_UPSTREAM_PAGES: usize = 20;

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

/// Collects a report page from one upstream page; returns `true` when the page is full.
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

    /// Takes the hits of one upstream page that belong to `chunk` and come after the
    /// cursor, advancing the cursor. Returns whether the report page is full, and if so
    /// whether anything may follow in this upstream page.
    pub fn take(
        &mut self,
        hits: &[AnalyticsConversation],
        chunk: &Interval,
        position: &mut Position,
        order: Order,
    ) -> Option<bool> {
        for (i, hit) in hits.iter().enumerate() {
            if !chunk.contains(hit.conversation_start)
                || !after_cursor(hit, position, order)
                || !self.seen.insert(hit.conversation_id.clone())
            {
                continue;
            }
            if position.last_start == Some(hit.conversation_start) {
                position.last_ids.push(hit.conversation_id.clone());
            } else {
                position.last_start = Some(hit.conversation_start);
                position.last_ids = vec![hit.conversation_id.clone()];
            }
            self.results.push(ConversationSummary::from_analytics(hit));
            if self.results.len() >= self.page_size {
                let more_here = hits[i + 1..]
                    .iter()
                    .any(|h| chunk.contains(h.conversation_start));
                return Some(more_here);
            }
        }
        None
    }
}
