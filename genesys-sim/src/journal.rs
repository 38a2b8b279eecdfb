//! The journal of analytics query bodies: every details and aggregates query body that
//! reached the query handlers (past auth, rate limit and faults), as received, before the
//! simulator parses it, so tests can check what a client really sends against the official
//! `ConversationQuery` / `ConversationAggregationQuery` models, including bodies the
//! simulator then refuses. Bounded: the oldest entries are dropped first. Read it
//! in-process with [`QueryJournal::entries`] or over HTTP at `GET /sim/journal`.
//!
//! It only records; it never validates or answers anything.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use serde_json::Value;

/// How many query bodies the journal keeps: enough for a test's whole walk of reports
/// (a few hundred upstream pages at most), small enough to bound a long demo's memory
/// (bodies are well under 10 KB each).
pub const JOURNAL_CAPACITY: usize = 2_048;

/// Which analytics query a body was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    /// `POST /api/v2/analytics/conversations/details/query` (a `ConversationQuery`).
    Details,
    /// `POST /api/v2/analytics/conversations/aggregates/query` (a
    /// `ConversationAggregationQuery`).
    Aggregates,
}

/// One received query body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournaledQuery {
    pub kind: QueryKind,
    /// The body as JSON; a body that is not JSON is kept as its (lossy UTF-8) text, a JSON
    /// string, so it still shows and fails any object schema.
    pub body: Value,
}

/// The bounded journal; one per simulator.
#[derive(Debug, Default)]
pub struct QueryJournal {
    entries: Mutex<VecDeque<JournaledQuery>>,
}

impl QueryJournal {
    /// Notes a body received for `kind` (dropping the oldest entry when full).
    pub fn record(&self, kind: QueryKind, body: &[u8]) {
        let body = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() == JOURNAL_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(JournaledQuery { kind, body });
    }

    /// Every kept entry, oldest first.
    #[must_use]
    pub fn entries(&self) -> Vec<JournaledQuery> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_kept_in_order_and_the_oldest_go_first_when_full() {
        let journal = QueryJournal::default();
        for n in 0..=JOURNAL_CAPACITY {
            journal.record(QueryKind::Details, format!("{{\"n\":{n}}}").as_bytes());
        }
        let entries = journal.entries();
        assert_eq!(entries.len(), JOURNAL_CAPACITY);
        assert_eq!(entries[0].body["n"], 1);
        assert_eq!(entries[JOURNAL_CAPACITY - 1].body["n"], JOURNAL_CAPACITY);
        journal.clear();
        assert!(journal.entries().is_empty());
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_as_text() {
        let journal = QueryJournal::default();
        journal.record(QueryKind::Aggregates, b"{\"interval\": ");
        assert_eq!(
            journal.entries(),
            [JournaledQuery {
                kind: QueryKind::Aggregates,
                body: Value::String("{\"interval\": ".to_owned()),
            }]
        );
    }
}
