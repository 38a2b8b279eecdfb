//! The real-time conversation view (`GET /api/v2/conversations/{id}`), the analytics
//! single and multi-get views, and live conversations that advance with the clock.

#[path = "support/harness.rs"]
mod harness;

use chrono::Duration;
use genesys_sim::data::MediaType;
use harness::Harness;
use serde_json::Value;

fn participant<'a>(doc: &'a Value, purpose: &str) -> Vec<&'a Value> {
    doc["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .filter(|p| p["purpose"] == purpose)
        .collect()
}

#[tokio::test]
async fn an_ended_conversation_shows_its_participants_media_and_wrap_up() {
    let h = Harness::default_org().await;
    let org = &h.data().org;
    for (media, key) in [
        (MediaType::Voice, "calls"),
        (MediaType::Chat, "chats"),
        (MediaType::Email, "emails"),
        (MediaType::Message, "messages"),
    ] {
        let record = h
            .data()
            .conversations
            .iter()
            .find(|c| {
                c.media == media && c.agents().count() == 1 && c.is_over_at(harness::anchor())
            })
            .expect("an answered conversation of each media type");
        let doc = h
            .get(&format!("/api/v2/conversations/{}", record.id))
            .await
            .json();
        assert_eq!(doc["id"], record.id.to_string());
        assert!(doc["endTime"].is_string());
        let agent = record.agents().next().expect("agent");
        let agents = participant(&doc, "agent");
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0]["userId"], org.agents[agent.agent].id.to_string());
        assert_eq!(
            agents[0]["wrapup"]["code"],
            org.wrapup_codes[agent.wrapup].id.to_string()
        );
        assert_eq!(
            agents[0][key].as_array().expect("media array").len(),
            1,
            "{media:?} uses {key}"
        );
        assert_eq!(
            agents[0]["calls"].as_array().expect("calls").is_empty(),
            media != MediaType::Voice
        );
        assert_eq!(participant(&doc, "customer").len(), 1);
        assert_eq!(
            participant(&doc, "ivr").len(),
            usize::from(record.ivr.is_some())
        );
    }
}

#[tokio::test]
async fn unknown_ids_get_a_404_error_body() {
    let h = Harness::default_org().await;
    for id in ["00000000-0000-4000-8000-000000000000", "not-a-uuid"] {
        let reply = h.get(&format!("/api/v2/conversations/{id}")).await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.json()["code"], "not.found");
        let details = h
            .get(&format!("/api/v2/analytics/conversations/{id}/details"))
            .await;
        assert_eq!(details.status, 404);
    }
}

#[tokio::test]
async fn a_live_conversation_advances_as_the_clock_runs() {
    let h = Harness::default_org().await;
    let record = h
        .data()
        .conversations
        .iter()
        .find(|c| !c.is_over_at(harness::anchor()))
        .expect("a live conversation");
    let path = format!("/api/v2/conversations/{}", record.id);
    let before = h.get(&path).await.json();
    assert!(before.get("endTime").is_none(), "live at the anchor");
    assert!(
        participant(&before, "agent")
            .iter()
            .all(|a| a.get("wrapup").is_none())
    );

    h.sim.state().advance_clock(Duration::hours(3));
    let after = h.get(&path).await.json();
    assert!(after["endTime"].is_string(), "ended three hours later");
    let agents = participant(&after, "agent");
    assert!(!agents.is_empty());
    assert!(
        agents
            .iter()
            .all(|a| a["wrapup"]["code"].is_string() && a["endTime"].is_string())
    );
    assert!(
        after["participants"].as_array().expect("list").len()
            >= before["participants"].as_array().expect("list").len()
    );

    let details = h
        .get(&format!(
            "/api/v2/analytics/conversations/{}/details",
            record.id
        ))
        .await
        .json();
    assert!(details["conversationEnd"].is_string());
}

#[tokio::test]
async fn multi_get_accepts_comma_separated_and_repeated_ids() {
    let h = Harness::default_org().await;
    let ids: Vec<String> = h
        .data()
        .conversations
        .iter()
        .take(3)
        .map(|c| c.id.to_string())
        .collect();
    let returned = |body: Value| -> Vec<String> {
        body["conversations"]
            .as_array()
            .expect("conversations")
            .iter()
            .map(|c| c["conversationId"].as_str().expect("id").to_owned())
            .collect()
    };
    let comma = h
        .get(&format!(
            "/api/v2/analytics/conversations/details?id={}",
            ids.join(",")
        ))
        .await
        .json();
    assert_eq!(returned(comma), ids);
    let repeated = h
        .get(&format!(
            "/api/v2/analytics/conversations/details?id={}&id={}&id={}",
            ids[0], ids[1], ids[2]
        ))
        .await
        .json();
    assert_eq!(returned(repeated), ids);
    let unknown = h
        .get("/api/v2/analytics/conversations/details?id=00000000-0000-4000-8000-000000000000")
        .await
        .json();
    assert!(returned(unknown).is_empty());

    let too_many = vec![ids[0].clone(); 101].join(",");
    let reply = h
        .get(&format!(
            "/api/v2/analytics/conversations/details?id={too_many}"
        ))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["details"][0]["fieldName"], "id");
}
