//! Everything the running simulator sends validates against the official Genesys models
//! (`tests/contract/definitions.json`): conversations of every media type, live and ended,
//! details pages, multi-get, single details, aggregates, ErrorBodies and token responses.

#[path = "support/contract.rs"]
mod contract;
#[path = "support/harness.rs"]
mod harness;

use contract::Contract;
use genesys_sim::data::MediaType;
use genesys_sim::{Faults, SimConfig, Storm};
use harness::{Harness, interval_hours};
use serde_json::json;

#[tokio::test]
async fn conversations_of_every_media_type_live_and_ended_validate() {
    let h = Harness::default_org().await;
    let contract = Contract::load();
    let anchor = harness::anchor();
    let mut checked = 0;
    for media in MediaType::ALL {
        let ended: Vec<_> = h
            .data()
            .conversations
            .iter()
            .filter(|c| c.media == media && c.is_over_at(anchor))
            .take(15)
            .collect();
        assert!(!ended.is_empty());
        for record in ended {
            let reply = h.get(&format!("/api/v2/conversations/{}", record.id)).await;
            assert_eq!(reply.status, 200);
            contract.assert_valid("Conversation", &reply.json());
            checked += 1;
        }
    }
    // Live conversations at several moments of their lives.
    for _ in 0..4 {
        for record in h
            .data()
            .conversations
            .iter()
            .filter(|c| !c.is_over_at(anchor))
        {
            let reply = h.get(&format!("/api/v2/conversations/{}", record.id)).await;
            contract.assert_valid("Conversation", &reply.json());
            checked += 1;
        }
        h.sim.state().advance_clock(chrono::Duration::minutes(3));
    }
    assert!(checked > 60);
}

#[tokio::test]
async fn details_pages_multi_get_and_single_details_validate() {
    let h = Harness::default_org().await;
    let contract = Contract::load();
    for page in 1..=3 {
        let reply = h
            .details(&json!({"interval": interval_hours(-100, 1), "paging": {"pageSize": 100, "pageNumber": page}}))
            .await;
        contract.assert_valid("AnalyticsConversationQueryResponse", &reply.json());
    }
    let empty = h
        .details(&json!({"interval": interval_hours(-1000, -990)}))
        .await;
    contract.assert_valid("AnalyticsConversationQueryResponse", &empty.json());

    // Live conversations in the analytics view (no end yet).
    let live: Vec<String> = h
        .data()
        .conversations
        .iter()
        .filter(|c| !c.is_over_at(harness::anchor()))
        .map(|c| c.id.to_string())
        .collect();
    let multi = h
        .get(&format!(
            "/api/v2/analytics/conversations/details?id={}",
            live.join(",")
        ))
        .await;
    let body = multi.json();
    contract.assert_valid(
        "AnalyticsConversationWithoutAttributesMultiGetResponse",
        &body,
    );
    assert_eq!(
        body["conversations"].as_array().expect("list").len(),
        live.len()
    );
    assert!(body["conversations"][0].get("conversationEnd").is_none());

    let single = h
        .get(&format!(
            "/api/v2/analytics/conversations/{}/details",
            h.data().conversations[0].id
        ))
        .await;
    contract.assert_valid("AnalyticsConversationWithoutAttributes", &single.json());
}

#[tokio::test]
async fn aggregates_validate() {
    let h = Harness::default_org().await;
    let contract = Contract::load();
    let reply = h
        .aggregates(&json!({
            "interval": interval_hours(-48, 1),
            "granularity": "PT6H",
            "groupBy": ["queueId", "userId"],
            "metrics": ["nOffered", "nConnected", "tHandle", "tTalk", "tAcw", "tWait", "tAcd", "tAbandon", "nTransferred", "tHeld"],
        }))
        .await;
    assert_eq!(reply.status, 200);
    contract.assert_valid("ConversationAggregateQueryResponse", &reply.json());
}

#[tokio::test]
async fn error_bodies_and_token_responses_validate() {
    let config = SimConfig {
        rate_limit: 1,
        ..harness::config()
    };
    let h = Harness::start(config).await;
    let contract = Contract::load();
    let path = format!("/api/v2/conversations/{}", h.data().conversations[0].id);
    contract.assert_valid("ErrorBody", &h.get_anonymous(&path).await.json());
    contract.assert_valid(
        "ErrorBody",
        &h.get("/api/v2/conversations/not-an-id").await.json(),
    );
    contract.assert_valid("ErrorBody", &h.get(&path).await.json()); // 429: the one call went to the 404
    contract.assert_valid(
        "ErrorBody",
        &h.details(&json!({"interval": "nope"})).await.json(),
    );
    h.sim.set_faults(Faults {
        storm: Some(Storm {
            retry_after_secs: 3,
            remaining: None,
        }),
        ..Faults::default()
    });
    contract.assert_valid("ErrorBody", &h.get(&path).await.json());
    contract.assert_valid(
        "OAuthTokenResponse",
        &h.token_request("sim-client", "sim-secret").await.json(),
    );
    contract.assert_valid(
        "OAuthErrorResponse",
        &h.token_request("sim-client", "bad").await.json(),
    );
}
