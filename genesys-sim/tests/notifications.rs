//! The Notifications API end to end over HTTP and WebSocket: channels, subscriptions and
//! their documented errors, the socket's heartbeats, ping/pong, one socket per channel,
//! expiry, the 20-channel cap, the faults, events lost while disconnected, and
//! conversation events that agree with `GET /api/v2/conversations/{id}`, all checked
//! against the official models (tests/contract/definitions.json).

#[path = "support/contract.rs"]
mod contract;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/websocket.rs"]
mod websocket;

use std::time::Duration;

use genesys_sim::changes::{change_instants, version_at};
use genesys_sim::notifications::events::conversation_event;
use genesys_sim::render::realtime;
use genesys_sim::{NotificationSettings, SimConfig};
use harness::{Harness, Reply};
use serde_json::{Value, json};
use websocket::Frame;

const CHANNELS: &str = "/api/v2/notifications/channels";

fn config(settings: NotificationSettings) -> SimConfig {
    SimConfig {
        notifications: settings,
        ..harness::config()
    }
}

/// Heartbeats every 100 ms, so tests see several quickly.
fn quick() -> NotificationSettings {
    NotificationSettings {
        heartbeat_interval: Duration::from_millis(100),
        event_tick: Duration::from_millis(10),
        ..NotificationSettings::default()
    }
}

async fn send(h: &Harness, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
    let mut request = h.http.request(method, h.url(path)).bearer_auth(&h.token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request sent");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.expect("body"),
    }
}

/// Calls the `/sim` control `path`, which must answer 200; its JSON answer (`null` when it
/// has no body).
async fn control(h: &Harness, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
    let reply = send(h, method, path, body).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    if reply.text.is_empty() {
        Value::Null
    } else {
        reply.json()
    }
}

/// Creates a channel; returns its `Channel` document.
async fn channel(h: &Harness) -> Value {
    let reply = h.post(CHANNELS, &json!(null)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let channel = reply.json();
    contract::Contract::load().assert_valid("Channel", &channel);
    channel
}

fn subscriptions(channel: &Value) -> String {
    format!(
        "{CHANNELS}/{}/subscriptions",
        channel["id"].as_str().expect("id")
    )
}

fn topics<S: AsRef<str>>(list: &[S]) -> Value {
    Value::Array(list.iter().map(|t| json!({ "id": t.as_ref() })).collect())
}

fn listed(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    contract::Contract::load().assert_valid("ChannelTopicEntityListing", &body);
    body["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .map(|e| {
            assert_eq!(e["state"], "Permitted");
            e["id"].as_str().expect("id").to_owned()
        })
        .collect()
}

fn error_code(reply: &Reply, status: u16) -> String {
    assert_eq!(reply.status, status, "{}", reply.text);
    let body = reply.json();
    contract::Contract::load().assert_valid("ErrorBody", &body);
    body["code"].as_str().expect("code").to_owned()
}

fn queue_topic(h: &Harness, index: usize) -> String {
    format!(
        "v2.routing.queues.{}.conversations",
        h.data().org.queues[index].id
    )
}

async fn notification_counters(h: &Harness) -> Value {
    h.get_anonymous("/sim/notifications").await.json()["counters"].clone()
}

#[tokio::test]
async fn channels_and_subscriptions_answer_as_documented() {
    let h = Harness::start(config(NotificationSettings::default())).await;
    let first = channel(&h).await;
    let id = first["id"].as_str().expect("id");
    assert!(id.starts_with("streaming-"), "{id}");
    assert_eq!(
        first["connectUri"],
        format!("ws://{}/channels/{id}", h.sim.addr())
    );
    let expires = chrono::DateTime::parse_from_rfc3339(first["expires"].as_str().expect("expires"))
        .expect("RFC 3339");
    let lifetime = expires.with_timezone(&chrono::Utc) - h.sim.state().now();
    assert!(
        (chrono::Duration::hours(23)..=chrono::Duration::hours(24)).contains(&lifetime),
        "{lifetime}"
    );

    let path = subscriptions(&first);
    let (a, b, c) = (queue_topic(&h, 0), queue_topic(&h, 1), queue_topic(&h, 2));
    let user = format!("v2.users.{}.conversations", h.data().org.agents[0].id);
    assert!(listed(&h.get(&path).await).is_empty());
    let added = send(
        &h,
        reqwest::Method::POST,
        &path,
        Some(&topics(&[a.as_str(), b.as_str()])),
    )
    .await;
    assert_eq!(listed(&added), [a.as_str(), b.as_str()]);
    let added = send(
        &h,
        reqwest::Method::POST,
        &path,
        Some(&topics(&[b.as_str(), user.as_str()])),
    )
    .await;
    assert_eq!(
        listed(&added),
        [a.as_str(), b.as_str(), user.as_str()],
        "POST adds"
    );
    let replaced = send(
        &h,
        reqwest::Method::PUT,
        &path,
        Some(&topics(&[c.as_str()])),
    )
    .await;
    assert_eq!(listed(&replaced), [c.as_str()], "PUT replaces");
    assert_eq!(listed(&h.get(&path).await), [c.as_str()]);
    let deleted = send(&h, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(listed(&h.get(&path).await).is_empty());

    // Errors, each as an ErrorBody.
    let unknown = format!("{CHANNELS}/streaming-0-nosuchchannel/subscriptions");
    assert_eq!(error_code(&h.get(&unknown).await, 404), "not.found");
    let put_unknown = send(
        &h,
        reqwest::Method::PUT,
        &unknown,
        Some(&topics(&[a.as_str()])),
    )
    .await;
    assert_eq!(error_code(&put_unknown, 404), "not.found");
    for bad in [
        "v2.conversations.1f7e4bb8-3f4e-4ad4-9a3e-1a0b5bd0c4f6",
        "v2.routing.queues.support.conversations",
        "nonsense",
    ] {
        let reply = send(
            &h,
            reqwest::Method::POST,
            &path,
            Some(&topics(&[a.as_str(), bad])),
        )
        .await;
        assert_eq!(
            error_code(&reply, 400),
            "notification.invalid.topic",
            "{bad}"
        );
    }
    let not_a_list = send(&h, reqwest::Method::POST, &path, Some(&json!({ "id": a }))).await;
    assert_eq!(error_code(&not_a_list, 400), "bad.request");
    assert!(
        listed(&h.get(&path).await).is_empty(),
        "a refused request changes nothing"
    );

    let thousand: Vec<String> = (0..1_000)
        .map(|n| format!("v2.users.00000000-0000-4000-8000-{n:012}.conversations"))
        .collect();
    let full = send(&h, reqwest::Method::PUT, &path, Some(&topics(&thousand))).await;
    assert_eq!(listed(&full).len(), 1_000, "1,000 topics fit");
    let over = send(
        &h,
        reqwest::Method::POST,
        &path,
        Some(&topics(&[a.as_str()])),
    )
    .await;
    assert_eq!(
        error_code(&over, 400),
        "notification.subscription.too.many.subscriptions"
    );
    assert_eq!(listed(&h.get(&path).await).len(), 1_000);

    // The permission fault fails the whole request.
    control(
        &h,
        reqwest::Method::PUT,
        "/sim/faults",
        Some(&json!({"subscriptions_forbidden": true})),
    )
    .await;
    let forbidden = send(
        &h,
        reqwest::Method::PUT,
        &path,
        Some(&topics(&[a.as_str(), user.as_str()])),
    )
    .await;
    assert_eq!(error_code(&forbidden, 403), "missing.permissions");
    let message = forbidden.json()["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(message.contains("routing:queue:view"), "{message}");
    assert_eq!(listed(&h.get(&path).await).len(), 1_000, "nothing changed");

    let snapshot = h.sim.counters();
    assert_eq!(snapshot.calls_with("notifications_channels", 200), 1);
    assert_eq!(snapshot.calls_with("notifications_subscriptions", 403), 1);
    let counters = notification_counters(&h).await;
    assert_eq!(counters["channels_created"], 1);
    assert_eq!(counters["subscription_changes"], 5);
}

#[tokio::test]
async fn queues_are_listed_page_by_page() {
    let h = Harness::default_org().await;
    let contract = contract::Contract::load();
    let mut seen = Vec::new();
    for page in 1..=3 {
        let reply = h
            .get(&format!(
                "/api/v2/routing/queues?pageSize=3&pageNumber={page}"
            ))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        contract.assert_valid("QueueEntityListing", &body);
        assert_eq!(body["total"], 8);
        assert_eq!(body["pageCount"], 3);
        assert_eq!(body["pageNumber"], page);
        assert_eq!(body["nextUri"].is_string(), page < 3);
        for queue in body["entities"].as_array().expect("entities") {
            seen.push(queue["id"].as_str().expect("id").to_owned());
        }
    }
    let org: Vec<String> = h
        .data()
        .org
        .queues
        .iter()
        .map(|q| q.id.to_string())
        .collect();
    assert_eq!(seen, org, "every queue once, the ids conversations use");
    let all = h.get("/api/v2/routing/queues").await.json();
    assert_eq!(all["pageSize"], 25);
    assert_eq!(all["entities"].as_array().map(Vec::len), Some(8));
    for bad in ["pageSize=0", "pageSize=501", "pageNumber=0", "pageSize=ten"] {
        let reply = h.get(&format!("/api/v2/routing/queues?{bad}")).await;
        assert_eq!(error_code(&reply, 400), "bad.request", "{bad}");
    }
    let anonymous = h.get_anonymous("/api/v2/routing/queues").await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn a_socket_beats_answers_pings_and_yields_to_a_second_socket() {
    let h = Harness::start(config(quick())).await;
    let channel = channel(&h).await;
    let uri = channel["connectUri"].as_str().expect("connectUri");
    let mut first = websocket::connect(uri).await;
    let beat = websocket::next_json(&mut first).await;
    assert_eq!(
        beat,
        json!({
            "topicName": "channel.metadata",
            "version": "2",
            "eventBody": {"message": "WebSocket Heartbeat"},
            "metadata": {"CorrelationId": beat["metadata"]["CorrelationId"]},
        })
    );
    websocket::ping(&mut first).await;
    until_pong(&mut first).await;

    let mut second = websocket::connect(uri).await;
    let end = until_end(&mut first).await;
    assert!(
        matches!(end, Frame::Closed(Some(1000))),
        "the first socket is closed with 1000, not cut: {end:?}"
    );
    let beat = websocket::next_json(&mut second).await;
    assert_eq!(beat["eventBody"]["message"], "WebSocket Heartbeat");
    let counters = notification_counters(&h).await;
    assert_eq!(counters["sockets_accepted"], 2);
    assert_eq!(counters["sockets_replaced"], 1);
    assert_eq!(counters["pongs_sent"], 1);

    let unknown = format!("ws://{}/channels/streaming-0-nosuchchannel", h.sim.addr());
    assert_eq!(websocket::refused_status(&unknown).await, 404);
}

/// Reads past every message to the end of the socket: its close frame, or its cut.
async fn until_end(socket: &mut websocket::Socket) -> Frame {
    loop {
        match websocket::next(socket).await {
            Frame::Json(_) => {}
            end => return end,
        }
    }
}

/// Reads up to the next pong; returns how many heartbeats came before it.
async fn until_pong(socket: &mut websocket::Socket) -> usize {
    let mut beats = 0;
    loop {
        let message = websocket::next_json(socket).await;
        match message["eventBody"]["message"].as_str() {
            Some("pong") => {
                assert_eq!(message["topicName"], "channel.metadata");
                return beats;
            }
            Some("WebSocket Heartbeat") => beats += 1,
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_socket_faults_cut_silence_and_close_for_maintenance() {
    let h = Harness::start(config(quick())).await;
    let channel = channel(&h).await;
    let uri = channel["connectUri"].as_str().expect("connectUri");

    let mut socket = websocket::connect(uri).await;
    websocket::next_json(&mut socket).await;
    let dropped = control(&h, reqwest::Method::POST, "/sim/notifications/drop", None).await;
    assert_eq!(dropped, json!({"dropped": 1}));
    let end = until_end(&mut socket).await;
    assert!(
        matches!(end, Frame::Cut),
        "a dropped socket gets no close frame: {end:?}"
    );

    // The channel survives: reconnect, then stop the heartbeats.
    let mut socket = websocket::connect(uri).await;
    websocket::next_json(&mut socket).await;
    let silence = json!({"socket_silence": "heartbeats"});
    control(&h, reqwest::Method::PUT, "/sim/faults", Some(&silence)).await;
    // A heartbeat the socket decided on before the fault may still come, before the answer
    // to this first ping; after it, five heartbeat intervals bring nothing but the pong.
    websocket::ping(&mut socket).await;
    until_pong(&mut socket).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    websocket::ping(&mut socket).await;
    assert_eq!(
        until_pong(&mut socket).await,
        0,
        "no heartbeat while stopped"
    );

    let maintenance = "/sim/notifications/maintenance";
    let closed = control(&h, reqwest::Method::POST, maintenance, None).await;
    assert_eq!(closed, json!({"closed": 1}));
    let notice = websocket::next_on(&mut socket, |t| t == "v2.system.socket_closing").await;
    assert_eq!(notice["version"], "2");
    contract::Contract::load().assert_valid("SystemMessageSystemMessage", &notice["eventBody"]);
    assert!(matches!(
        websocket::next(&mut socket).await,
        Frame::Closed(Some(1001))
    ));
    // Clients reconnect to the same connectUri.
    let mut again = websocket::connect(uri).await;
    websocket::ping(&mut again).await;
    let pong = websocket::next_json(&mut again).await;
    assert_eq!(pong["topicName"], "channel.metadata");
    let counters = notification_counters(&h).await;
    assert_eq!(counters["sockets_dropped"], 1);
    assert_eq!(counters["socket_closing_sent"], 1);
}

#[tokio::test]
async fn channels_expire_and_the_twenty_first_removes_the_least_recently_used() {
    let settings = NotificationSettings {
        channel_lifetime: Duration::from_millis(800),
        ..quick()
    };
    let h = Harness::start(config(settings)).await;
    let short = channel(&h).await;
    let uri = short["connectUri"].as_str().expect("connectUri");
    let mut socket = websocket::connect(uri).await;
    let end = until_end(&mut socket).await;
    assert!(
        matches!(end, Frame::Closed(Some(1000))),
        "expiry closes with a close frame 1000: {end:?}"
    );
    assert_eq!(
        error_code(&h.get(&subscriptions(&short)).await, 404),
        "not.found"
    );
    assert_eq!(websocket::refused_status(uri).await, 404);
    assert_eq!(notification_counters(&h).await["channels_expired"], 1);

    // Twenty channels at most: the least recently used without a socket goes first.
    let lifetime = json!({"channel_lifetime_secs": 3600});
    control(
        &h,
        reqwest::Method::PUT,
        "/sim/notifications/settings",
        Some(&lifetime),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(channel(&h).await);
    }
    let connected = websocket::connect(held[0]["connectUri"].as_str().expect("uri")).await;
    let used = h.get(&subscriptions(&held[2])).await;
    assert_eq!(used.status, 200);
    channel(&h).await;
    assert_eq!(
        h.get(&subscriptions(&held[0])).await.status,
        200,
        "it has a socket"
    );
    assert_eq!(
        h.get(&subscriptions(&held[1])).await.status,
        404,
        "the least recently used"
    );
    assert_eq!(h.get(&subscriptions(&held[2])).await.status, 200);
    let counters = notification_counters(&h).await;
    assert_eq!(counters["channels_evicted"], 1);
    drop(connected);
}

/// Every queue and agent topic of the org.
fn every_topic(h: &Harness) -> Vec<String> {
    let org = &h.data().org;
    (0..org.queues.len())
        .map(|i| queue_topic(h, i))
        .chain(
            org.agents
                .iter()
                .map(|a| format!("v2.users.{}.conversations", a.id)),
        )
        .collect()
}

/// A new channel subscribed to every topic of the org ([`every_topic`]).
async fn channel_on_every_topic(h: &Harness) -> Value {
    let channel = channel(h).await;
    let subscribed = send(
        h,
        reqwest::Method::PUT,
        &subscriptions(&channel),
        Some(&topics(&every_topic(h))),
    )
    .await;
    assert_eq!(subscribed.status, 200, "{}", subscribed.text);
    channel
}

async fn advance(h: &Harness, seconds: i64) {
    let by = json!({ "seconds": seconds });
    control(h, reqwest::Method::POST, "/sim/clock/advance", Some(&by)).await;
}

/// The latest version (by now) whose event body `body` is, rendered in-process from the
/// org's data; panics when it is none of them. (Event bodies have no segments, so a
/// version whose only change is a segment reads as the one before it.)
fn version_of(
    h: &Harness,
    body: &Value,
) -> (uuid::Uuid, usize, Vec<chrono::DateTime<chrono::Utc>>) {
    let id: uuid::Uuid = body["id"].as_str().expect("id").parse().expect("uuid");
    let record = h.data().get(&id).expect("a conversation of the org");
    let instants = change_instants(record, &h.data().org);
    let now = version_at(&instants, h.sim.state().now());
    let version = instants[..now]
        .iter()
        .rposition(|&at| &conversation_event(&realtime::at(record, &h.data().org, at)) == body)
        .unwrap_or_else(|| panic!("{id}: the event is no version of the conversation: {body}"));
    (id, version + 1, instants)
}

fn total(counters: &Value, key: &str) -> u64 {
    counters[key]
        .as_object()
        .expect("per topic")
        .values()
        .filter_map(Value::as_u64)
        .sum()
}

#[tokio::test]
async fn conversation_events_match_the_rest_document_and_the_official_models() {
    let h = Harness::start(config(quick())).await;
    let channel = channel_on_every_topic(&h).await;
    let mut socket = websocket::connect(channel["connectUri"].as_str().expect("uri")).await;
    // Twenty minutes of the live conversations in steps: each one ends in them.
    for _ in 0..40 {
        advance(&h, 30).await;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let contract = contract::Contract::load();
    let (mut received, mut queue_events, mut user_events) = (0, 0, 0);
    let mut last: std::collections::HashMap<uuid::Uuid, (usize, Value)> = Default::default();
    loop {
        // Every event the simulator counts as sent arrives, and every live conversation
        // has changed.
        if last.len() == 8 && received == total(&notification_counters(&h).await, "events_sent") {
            break;
        }
        let message = websocket::next_on(&mut socket, |t| t != "channel.metadata").await;
        received += 1;
        let topic = message["topicName"].as_str().expect("topic").to_owned();
        assert_eq!(message["version"], "2");
        assert!(message["metadata"]["CorrelationId"].is_string());
        let body = &message["eventBody"];
        let definition = if topic.starts_with("v2.routing.queues.") {
            queue_events += 1;
            "QueueConversationEventTopicConversation"
        } else {
            assert!(topic.starts_with("v2.users."), "{topic}");
            user_events += 1;
            "ConversationEventTopicConversation"
        };
        contract.assert_valid(definition, body);
        // The topic's queue or user takes part.
        let id = topic.split('.').nth_back(1).expect("id");
        let key = if definition.starts_with("Queue") {
            "queueId"
        } else {
            "userId"
        };
        assert!(
            body["participants"]
                .as_array()
                .expect("participants")
                .iter()
                .any(|p| p[key] == id),
            "{topic}: {body}"
        );
        let (conversation, version, _) = version_of(&h, body);
        last.insert(conversation, (version, body.clone()));
    }
    assert!(
        queue_events >= 8 && user_events >= 8,
        "{queue_events} {user_events}"
    );
    assert_eq!(last.len(), 8, "every live conversation changed");
    // The latest event of each conversation reads as its REST document (when nothing
    // changed meanwhile).
    let mut compared = 0;
    for (conversation, (version, body)) in &last {
        let record = h.data().get(conversation).expect("known");
        let instants = change_instants(record, &h.data().org);
        let before = version_at(&instants, h.sim.state().now());
        let rest = h
            .get(&format!("/api/v2/conversations/{conversation}"))
            .await;
        assert_eq!(rest.status, 200);
        if version_at(&instants, h.sim.state().now()) == before && before == *version {
            assert_eq!(&conversation_event(&rest.json()), body, "{conversation}");
            compared += 1;
        }
    }
    assert!(
        compared > 0,
        "no event could be compared with its REST document"
    );
}

#[tokio::test]
async fn events_produced_while_no_socket_is_connected_are_lost() {
    let h = Harness::start(config(quick())).await;
    let channel = channel_on_every_topic(&h).await;
    advance(&h, 600).await;
    loop {
        let counters = notification_counters(&h).await;
        if total(&counters, "events_dropped") > 0 {
            assert_eq!(counters["events_sent"], json!({}), "nothing was sent");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A socket connected now hears no replay: only changes made after it connected.
    let connected = h.sim.state().now();
    let mut socket = websocket::connect(channel["connectUri"].as_str().expect("uri")).await;
    let mut beats = 0;
    while beats < 2 {
        let message = websocket::next_json(&mut socket).await;
        if message["topicName"] == "channel.metadata" {
            beats += 1;
            continue;
        }
        let (id, version, instants) = version_of(&h, &message["eventBody"]);
        assert!(
            instants[version - 1] > connected,
            "{id}: a change from before the socket"
        );
    }
}

#[tokio::test]
async fn the_benchmark_can_learn_when_each_conversation_changed() {
    let h = Harness::default_org().await;
    let now = h.sim.state().now();
    let before = h.get_anonymous("/sim/changes").await.json();
    let live: Vec<&Value> = before["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .collect();
    assert_eq!(live.len(), 8, "the live conversations: {before}");
    for entry in &live {
        let record = h
            .data()
            .get(&entry["id"].as_str().expect("id").parse().expect("uuid"))
            .expect("known");
        let instants = change_instants(record, &h.data().org);
        let version = entry["version"].as_u64().expect("version") as usize;
        assert!(version >= version_at(&instants, now));
        assert_eq!(
            entry["last_change"],
            genesys_sim::render::format_time(instants[version - 1])
        );
        assert!(entry["last_change_unix_ms"].is_i64());
        assert_eq!(entry["changes_since"], json!([]));
    }
    let since = before["now"].as_str().expect("now").to_owned();
    advance(&h, 1_000).await;
    let after = h
        .get_anonymous(&format!("/sim/changes?since={since}"))
        .await
        .json();
    let changed = after["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|c| !c["changes_since"].as_array().expect("list").is_empty())
        .count();
    assert!(changed > 0, "they all end within 1,000 s: {after}");
    let bad = h.get_anonymous("/sim/changes?since=yesterday").await;
    assert_eq!(bad.status, 400);
}
