//! [`EventSink`]: where a session hands conversation events, gaps and its liveness;
//! [`CacheSink`] applies them to the conversation cache through its
//! [`Coverage`](crate::conversations::Coverage): a live queue makes the conversations
//! fetched with a participant in it fresh without polling, each event updates and
//! re-extends its conversation, and after a gap (events may have been missed) exactly the
//! extended conversations fall back to TTL freshness
//! ([`ConversationService::demote_pushed`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::stats::EventOutcome;
use crate::conversations::{ConversationService, Coverage, PushOutcome};

/// Receives what the sessions read.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// A conversation event (the event body of a queue conversation topic).
    async fn event(&self, body: &Value) -> EventOutcome;
    /// Events may have been missed; returns how many conversations lost their pushed
    /// freshness.
    async fn gap(&self) -> u64;
    /// The socket carrying `topics` is connected and subscribed (`true`), or no longer.
    fn live(&self, _topics: &[String], _live: bool) {}
}

/// Applies events to the conversation cache.
#[derive(Debug)]
pub struct CacheSink {
    conversations: Arc<ConversationService>,
}

impl CacheSink {
    /// A sink updating `conversations`, whose events and covered fetches keep a
    /// conversation fresh for `pushed_fresh`.
    #[must_use]
    pub fn new(conversations: Arc<ConversationService>, pushed_fresh: Duration) -> Self {
        conversations.coverage().set_pushed_fresh(pushed_fresh);
        Self { conversations }
    }

    fn coverage(&self) -> &Coverage {
        self.conversations.coverage()
    }
}

#[async_trait]
impl EventSink for CacheSink {
    async fn event(&self, body: &Value) -> EventOutcome {
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::try_parse(id).ok());
        if let Some(id) = id {
            self.coverage().event_seen(id);
        }
        let outcome = self
            .conversations
            .apply_event(body, self.coverage().pushed_fresh())
            .await;
        if let Some(id) = id {
            match outcome {
                // A settled conversation's TTL is longer: nothing to demote.
                PushOutcome::Updated { extended } => self.coverage().set_extended(id, extended),
                PushOutcome::NotCached | PushOutcome::Forgotten => {
                    self.coverage().set_extended(id, false);
                }
                PushOutcome::Unusable(_) => {}
            }
        }
        match outcome {
            PushOutcome::Updated { .. } => EventOutcome::Applied,
            PushOutcome::NotCached => EventOutcome::NotCached,
            PushOutcome::Forgotten => EventOutcome::Forgotten,
            PushOutcome::Unusable(reason) => {
                tracing::debug!(%reason, "a notification event was not applied");
                EventOutcome::Rejected
            }
        }
    }

    async fn gap(&self) -> u64 {
        let mut demoted = 0;
        for id in self.coverage().gap() {
            if self.conversations.demote_pushed(id).await {
                demoted += 1;
            }
        }
        demoted
    }

    fn live(&self, topics: &[String], live: bool) {
        self.coverage().set_live(topics, live);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;
    use tokio::time::Instant;

    use super::*;
    use crate::cache::CacheSettings;
    use crate::conversations::ConversationEntry;
    use crate::upstream::budget::BudgetSettings;
    use crate::upstream::{ClientCredentials, Endpoints, GenesysClient, LocalBudget};

    const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const B: &str = "bbbbbbbb-0000-4000-8000-000000000002";

    /// A service whose client is never called (these tests make no fetch).
    fn service() -> Arc<ConversationService> {
        let endpoints =
            Endpoints::explicit("http://127.0.0.1:9", "http://127.0.0.1:9").expect("urls");
        let client = GenesysClient::new(
            &endpoints,
            ClientCredentials {
                client_id: "id".into(),
                client_secret: "secret".to_owned().into(),
            },
            crate::upstream::UpstreamSettings::default(),
            Arc::new(LocalBudget::new(BudgetSettings::default())),
        )
        .expect("client");
        Arc::new(ConversationService::new(
            Arc::new(client),
            CacheSettings::default(),
            Duration::from_secs(5),
        ))
    }

    fn document(id: &str) -> Bytes {
        Bytes::from(
            json!({
                "id": id, "startTime": "2026-01-01T10:00:00.000Z",
                "participants": [
                    {"id": format!("{id}-p1"), "purpose": "customer", "startTime": "2026-01-01T10:00:00.000Z",
                     "calls": [{"id": "m1", "state": "connected", "direction": "inbound"}]},
                    {"id": format!("{id}-p2"), "purpose": "acd", "queueId": "q", "queueName": "Support",
                     "startTime": "2026-01-01T10:00:01.000Z"}
                ]
            })
            .to_string(),
        )
    }

    fn agent_joined(id: &str) -> Value {
        json!({
            "id": id,
            "participants": [
                {"id": format!("{id}-p1"), "purpose": "customer", "calls": [{"id": "m1", "state": "connected"}]},
                {"id": format!("{id}-p2"), "purpose": "acd", "queueId": "q", "endTime": "2026-01-01T10:00:09.000Z"},
                {"id": format!("{id}-p3"), "purpose": "agent", "userId": "agent-1", "name": "Jane",
                 "connectedTime": "2026-01-01T10:00:09.000Z"}
            ]
        })
    }

    async fn view(service: &ConversationService, id: &str) -> (Value, Bytes, bool) {
        let entry = service
            .fresh_hit(Uuid::try_parse(id).expect("uuid"))
            .await
            .expect("fresh");
        let ConversationEntry::Found(r) = &entry.value else {
            panic!("found");
        };
        (
            serde_json::from_slice(&r.view).expect("json"),
            r.full.clone(),
            r.is_pushed(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_updates_its_own_conversation_and_no_other() {
        let service = service();
        let sink = CacheSink::new(service.clone(), Duration::from_secs(300));
        for id in [A, B] {
            service
                .store_document(Uuid::try_parse(id).expect("uuid"), document(id))
                .await
                .expect("stored");
        }
        let (a_before, _, _) = view(&service, A).await;
        assert_eq!(sink.event(&agent_joined(B)).await, EventOutcome::Applied);
        let (b, b_full, pushed) = view(&service, B).await;
        assert!(pushed);
        assert_eq!(b["agents"][0]["user_id"], "agent-1");
        assert_eq!(b["queues"][0]["name"], "Support", "kept from the document");
        assert_eq!(b["start"], "2026-01-01T10:00:00Z", "kept from the document");
        assert_eq!(
            b_full,
            document(B),
            "the full document is Genesys' own, unchanged"
        );
        let (a_after, _, a_pushed) = view(&service, A).await;
        assert_eq!(a_before, a_after, "A untouched");
        assert!(!a_pushed);
    }

    #[tokio::test(start_paused = true)]
    async fn events_without_a_usable_id_or_for_uncached_conversations_change_nothing() {
        let service = service();
        let sink = CacheSink::new(service.clone(), Duration::from_secs(300));
        let a = Uuid::try_parse(A).expect("uuid");
        service
            .store_document(a, document(A))
            .await
            .expect("stored");
        for bad in [
            json!({"participants": []}),
            json!({"id": "not-a-uuid"}),
            json!([1]),
        ] {
            assert_eq!(sink.event(&bad).await, EventOutcome::Rejected, "{bad}");
        }
        assert!(!view(&service, A).await.2);
        assert_eq!(sink.event(&agent_joined(B)).await, EventOutcome::NotCached);
        assert!(
            service
                .fresh_hit(Uuid::try_parse(B).expect("uuid"))
                .await
                .is_none(),
            "nothing cached, nothing fetched"
        );
        service.settle().await;
        assert_eq!(service.stats().fetches, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pushed_conversation_stays_fresh_until_a_gap_brings_back_its_ttl() {
        let service = service();
        let sink = CacheSink::new(service.clone(), Duration::from_secs(300));
        let b = Uuid::try_parse(B).expect("uuid");
        service
            .store_document(b, document(B))
            .await
            .expect("stored");
        sink.event(&agent_joined(B)).await;
        // The active TTL is 5 s; pushed, it is fresh far longer.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(
            service.fresh_hit(b).await.is_some(),
            "fresh without polling"
        );
        assert_eq!(sink.gap().await, 1);
        assert!(service.fresh_hit(b).await.is_none(), "back on its 5 s TTL");
        // A later event makes it fresh again.
        let pushed_at = Instant::now();
        sink.event(&agent_joined(B)).await;
        let entry = service.fresh_hit(b).await.expect("fresh");
        assert_eq!(entry.fresh_until - pushed_at, Duration::from_secs(300));
        assert_eq!(sink.gap().await, 1);
        assert_eq!(sink.gap().await, 0, "nothing left to demote");
    }
}
