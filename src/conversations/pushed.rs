//! Conversations updated by Genesys notifications rather than fetched.
//!
//! A queue conversation event (`QueueConversationEventTopicConversation`) is not Genesys'
//! `GET /conversations/{id}` document: it lacks the conversation's `startTime`, the
//! participants' `startTime` and `queueName`, the wrap-up code's `name`. So an event never
//! *replaces* a cached document. It is merged into the cached one ([`merge_event`]: the
//! event's values win, what it lacks is kept, participants and media sessions matched by
//! `id`), and only the **summary view** is rebuilt from the merge and served fresh. The
//! **full document** stays Genesys' own bytes from the last fetch, with that fetch's own
//! freshness ([`PushedView`]): `?view=full` of a pushed entry is served under the normal
//! TTL rules, and fetched again (replacing the whole entry) once that has run out
//! ([`ConversationService::get_document`]). So `view=full` is always Genesys' document
//! byte for byte, and a pushed update costs no upstream call.
//!
//! A conversation *fetched* while one of its queues is subscribed is kept the same way
//! ([`covered`], decided by [`super::Coverage`]): fresh for `pushed_fresh` with its document's
//! own TTL freshness remembered, as if an event had just confirmed it.
//!
//! Only conversations already cached are updated: an event for one nobody asked for costs
//! nothing (no fetch, no memory), and a remembered 404 is dropped (the event proves the
//! conversation exists; the next request fetches it).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;
use uuid::Uuid;

use super::{ConversationEntry, ConversationService, ConversationView, Representations};
use crate::auth::Caller;
use crate::cache::{CacheStatus, CacheTier, Cached, Freshness, Served};
use crate::upstream::models::Conversation;
use crate::upstream::{Class, UpstreamError};

/// What a pushed entry remembers of the fetched document it still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushedView {
    /// When the full document was fetched, and its own freshness and stale bounds.
    pub document_fetched_at: Instant,
    pub document_fresh_until: Instant,
    pub document_stale_until: Instant,
    /// The TTL freshness (`[cache]`) of the pushed state: what the entry falls back to
    /// after a gap in the subscription.
    pub ttl: Duration,
}

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The cached conversation's summary view was updated (`extended`: fresh for longer
    /// than its TTL, so a gap must bring it back to the TTL).
    Updated { extended: bool },
    /// Nothing is cached for the conversation: nothing to do, nothing fetched.
    NotCached,
    /// A remembered "not found" was dropped.
    Forgotten,
    /// The event could not be applied (named), and changed nothing.
    Unusable(String),
}

/// `event` merged into `document`: objects key by key (the event's values win), arrays of
/// objects with an `id` element by element (matched by `id`, the event's order first,
/// then elements only the document has), other values replaced. An object whose `id` or
/// `code` differs from the document's (another wrap-up code) replaces it whole, so no
/// stale `name` is kept for a new code.
#[must_use]
pub fn merge_event(document: &Value, event: &Value) -> Value {
    match (document, event) {
        (Value::Object(base), Value::Object(update)) => {
            let other = |key: &str| matches!((base.get(key), update.get(key)), (Some(a), Some(b)) if a != b);
            if other("id") || other("code") {
                return event.clone();
            }
            let mut merged: Map<String, Value> = base.clone();
            for (key, value) in update {
                let value = match base.get(key) {
                    Some(old) => merge_event(old, value),
                    None => value.clone(),
                };
                merged.insert(key.clone(), value);
            }
            Value::Object(merged)
        }
        (Value::Array(base), Value::Array(update)) if update.iter().all(has_id) => {
            let id = |v: &Value| v.get("id").cloned();
            let mut merged: Vec<Value> = update
                .iter()
                .map(|u| match base.iter().find(|b| id(b) == id(u)) {
                    Some(b) => merge_event(b, u),
                    None => u.clone(),
                })
                .collect();
            merged.extend(
                base.iter()
                    .filter(|b| !has_id(b) || !update.iter().any(|u| id(u) == id(b)))
                    .cloned(),
            );
            Value::Array(merged)
        }
        _ => event.clone(),
    }
}

/// A fetched entry that the notifications keep fresh ([`super::Coverage::admit`]): fresh
/// for `pushed_fresh`, with the document's own TTL freshness kept for `?view=full` and for
/// a gap to fall back to, as an entry an event updated.
pub(super) fn covered(
    entry: ConversationEntry,
    ttl: Freshness,
    pushed_fresh: Duration,
) -> (ConversationEntry, Freshness) {
    let ConversationEntry::Found(mut representations) = entry else {
        return (entry, ttl);
    };
    let now = Instant::now();
    let document_fresh_until = now + ttl.fresh_for;
    representations.pushed = Some(Box::new(PushedView {
        document_fetched_at: now,
        document_fresh_until,
        document_stale_until: document_fresh_until + ttl.stale_if_error,
        ttl: ttl.fresh_for,
    }));
    (
        ConversationEntry::Found(representations),
        Freshness {
            fresh_for: ttl.fresh_for.max(pushed_fresh),
            stale_if_error: ttl.stale_if_error,
        },
    )
}

fn has_id(value: &Value) -> bool {
    value.get("id").is_some_and(Value::is_string)
}

impl<T: CacheTier<Uuid, ConversationEntry>> ConversationService<T> {
    /// Applies a conversation event (the event body of a conversation topic) to the cached
    /// conversation it names, and to no other: the cache key is the event's own `id`.
    /// An updated entry is fresh for `pushed_fresh` (or its TTL, if longer).
    pub async fn apply_event(&self, event: &Value, pushed_fresh: Duration) -> PushOutcome {
        let Some(id) = event
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::try_parse(id).ok())
        else {
            return PushOutcome::Unusable("the event has no conversation id".into());
        };
        let Some(entry) = self.cache.tier().get(&id).await else {
            return PushOutcome::NotCached;
        };
        let representations = match &entry.value {
            ConversationEntry::NotFound => {
                self.cache.invalidate(&id).await;
                return PushOutcome::Forgotten;
            }
            ConversationEntry::Found(representations) => representations,
        };
        match self.pushed_entry(id, &entry, representations, event) {
            Ok((value, ttl_fresh, stale_if_error)) => {
                let now = Instant::now();
                let fresh_until = now + ttl_fresh.max(pushed_fresh);
                let stale_until = fresh_until + stale_if_error;
                let cached = Arc::new(Cached {
                    value,
                    fetched_at: now,
                    fresh_until,
                    stale_until,
                });
                self.cache.tier().insert(id, cached).await;
                PushOutcome::Updated {
                    extended: pushed_fresh > ttl_fresh,
                }
            }
            Err(reason) => PushOutcome::Unusable(reason),
        }
    }

    /// The entry of `event` merged into `entry`: the new view over the same document.
    fn pushed_entry(
        &self,
        id: Uuid,
        entry: &Cached<ConversationEntry>,
        representations: &Representations,
        event: &Value,
    ) -> Result<(ConversationEntry, Duration, Duration), String> {
        let document: Value = serde_json::from_slice(&representations.full)
            .map_err(|e| format!("the cached document: {e}"))?;
        if document
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|d| Uuid::try_parse(d).ok() != Some(id))
        {
            return Err("the cached document is another conversation's".into());
        }
        let merged = merge_event(&document, event);
        let conversation: Conversation =
            serde_json::from_value(merged).map_err(|e| format!("the merged conversation: {e}"))?;
        let mut view = ConversationView::from_conversation(&conversation);
        view.id = id.to_string();
        let ttl = self.settings.conversation(
            view.end,
            ConversationView::wrapped_up(&conversation),
            chrono::Utc::now(),
        );
        let view_bytes = serde_json::to_vec(&view).map_err(|e| e.to_string())?;
        let document_times = representations.pushed.as_deref().copied().map_or(
            (entry.fetched_at, entry.fresh_until, entry.stale_until),
            |p| {
                (
                    p.document_fetched_at,
                    p.document_fresh_until,
                    p.document_stale_until,
                )
            },
        );
        let mut pushed = Representations::new(&representations.full, &view_bytes, view.state);
        pushed.pushed = Some(Box::new(PushedView {
            document_fetched_at: document_times.0,
            document_fresh_until: document_times.1,
            document_stale_until: document_times.2,
            ttl: ttl.fresh_for,
        }));
        Ok((
            ConversationEntry::Found(pushed),
            ttl.fresh_for,
            ttl.stale_if_error,
        ))
    }

    /// After a gap in the subscription (events may have been missed): the pushed entry of
    /// `id`, if any, falls back to the TTL freshness counted from its last update.
    /// Whether an entry was changed.
    pub async fn demote_pushed(&self, id: Uuid) -> bool {
        let Some(entry) = self.cache.tier().get(&id).await else {
            return false;
        };
        let ConversationEntry::Found(representations) = &entry.value else {
            return false;
        };
        let Some(pushed) = representations.pushed.as_deref() else {
            return false;
        };
        let fresh_until = entry.fresh_until.min(entry.fetched_at + pushed.ttl);
        if fresh_until == entry.fresh_until {
            return false;
        }
        let demoted = Arc::new(Cached {
            value: entry.value.clone(),
            fetched_at: entry.fetched_at,
            fresh_until,
            stale_until: entry.stale_until,
        });
        self.cache.tier().insert(id, demoted).await;
        true
    }

    /// The conversation `id` for `?view=full`: as [`Self::get`], except that an entry
    /// whose view was pushed answers with the document's own timestamps, and is fetched
    /// again once the document's own freshness has run out. Genesys' document byte for
    /// byte, under the TTL rules, whatever events arrived.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub async fn get_document(
        &self,
        id: Uuid,
        class: Class,
        caller: &Caller,
        deadline: Instant,
    ) -> Result<Served<ConversationEntry>, UpstreamError> {
        // An event may replace the refetched entry before it is read: try a few times.
        let mut served = self.get(id, class, caller, deadline).await?;
        for _ in 0..3 {
            let pushed = match &served.entry.value {
                ConversationEntry::Found(r) => r.pushed.as_deref().copied(),
                ConversationEntry::NotFound => None,
            };
            let Some(pushed) = pushed else {
                return Ok(served);
            };
            if Instant::now() < pushed.document_fresh_until {
                return Ok(Served {
                    entry: Arc::new(Cached {
                        value: served.entry.value.clone(),
                        fetched_at: pushed.document_fetched_at,
                        fresh_until: pushed.document_fresh_until,
                        stale_until: pushed.document_stale_until,
                    }),
                    status: CacheStatus::Hit,
                });
            }
            self.cache.invalidate(&id).await;
            served = self.get(id, class, caller, deadline).await?;
        }
        Err(UpstreamError::Unavailable {
            detail: "the conversation kept changing while its document was fetched".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_event_updates_what_it_carries_and_keeps_what_it_lacks() {
        let document = json!({
            "id": "c1", "startTime": "2026-01-01T10:00:00.000Z",
            "participants": [
                {"id": "p1", "purpose": "customer", "startTime": "2026-01-01T10:00:00.000Z",
                 "calls": [{"id": "m1", "state": "connected", "direction": "inbound"}]},
                {"id": "p2", "purpose": "acd", "queueId": "q", "queueName": "Support",
                 "startTime": "2026-01-01T10:00:01.000Z"}
            ]
        });
        let event = json!({
            "id": "c1",
            "participants": [
                {"id": "p1", "purpose": "customer", "endTime": "2026-01-01T10:05:00.000Z",
                 "calls": [{"id": "m1", "state": "disconnected"}]},
                {"id": "p2", "purpose": "acd", "queueId": "q", "endTime": "2026-01-01T10:00:09.000Z"},
                {"id": "p3", "purpose": "agent", "userId": "u", "wrapup": {"code": "w1"}}
            ]
        });
        let merged = merge_event(&document, &event);
        assert_eq!(merged["startTime"], document["startTime"], "kept");
        let participants = merged["participants"].as_array().expect("array");
        assert_eq!(participants.len(), 3);
        assert_eq!(participants[0]["startTime"], "2026-01-01T10:00:00.000Z");
        assert_eq!(participants[0]["endTime"], "2026-01-01T10:05:00.000Z");
        assert_eq!(participants[0]["calls"][0]["state"], "disconnected");
        assert_eq!(participants[0]["calls"][0]["direction"], "inbound");
        assert_eq!(participants[1]["queueName"], "Support");
        assert_eq!(participants[2]["wrapup"]["code"], "w1");
    }

    #[test]
    fn another_wrapup_code_replaces_the_old_one_and_its_name() {
        let document = json!({"wrapup": {"code": "old", "name": "Old code"}});
        let event = json!({"wrapup": {"code": "new"}});
        assert_eq!(merge_event(&document, &event), event);
        let same = json!({"wrapup": {"code": "old", "notes": "n"}});
        assert_eq!(
            merge_event(&document, &same)["wrapup"],
            json!({"code": "old", "name": "Old code", "notes": "n"})
        );
    }

    #[test]
    fn an_event_of_another_conversation_replaces_rather_than_merges() {
        let document = json!({"id": "a", "startTime": "x"});
        let event = json!({"id": "b"});
        assert_eq!(merge_event(&document, &event), event);
    }
}
