//! Collecting one report page from upstream pages: the hits of the chunk that come after
//! the cursor, each once, advancing the cursor, and never ending a page inside a group of
//! ties longer than a cursor can name.

use std::collections::HashSet;

use chrono::Duration;

use crate::reports::cursor::{MAX_TIE_IDS, Position};
use crate::reports::interval::Interval;
use crate::reports::summary::ConversationSummary;
use crate::reports::vocabulary::Order;
use crate::upstream::models::AnalyticsConversation;

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

/// What [`Collector::take`] made of one upstream page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
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

    pub(super) fn full(&self, position: &Position) -> bool {
        self.results.len() >= self.page_size && position.last_ids.len() <= MAX_TIE_IDS
    }

    /// Takes the hits of one upstream page that belong to `chunk` and come after the
    /// cursor, advancing the cursor.
    ///
    /// A page never ends inside a group of more than [`MAX_TIE_IDS`] conversations that
    /// started at the same instant (the cursor would have to name them all): it then
    /// grows past `page_size` until the group is complete.
    pub(super) fn take(
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
    pub(super) fn close_tie_group(&self, position: &mut Position, order: Order) {
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
