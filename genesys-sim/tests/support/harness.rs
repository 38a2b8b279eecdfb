//! Shared set-up of the simulator's integration tests: a simulator on port 0 with a fixed
//! anchor, an HTTP client, a token, and small request helpers.
//!
//! Include it with `#[path = "support/harness.rs"] mod harness;`.

// Compiled into seven test binaries, each using a part of it: without this, every binary
// warns about the parts it does not use.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use genesys_sim::data::{ConversationRecord, Dataset};
use genesys_sim::{IntervalMatching, SimConfig, Simulator};
use serde_json::Value;

/// The instant every test org is generated around (fixed, so data never depends on the
/// day a test runs).
pub fn anchor() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-12T00:00:00Z")
        .expect("valid anchor")
        .with_timezone(&Utc)
}

/// A small org (600 conversations over 10 days, 8 live) with exact interval matching.
pub fn config() -> SimConfig {
    SimConfig {
        seed: 11,
        conversations: 600,
        days: 10,
        live_conversations: 8,
        anchor: Some(anchor()),
        interval_matching: IntervalMatching::StartedInInterval,
        ..SimConfig::default()
    }
}

/// A running simulator, a client, and a token for it.
pub struct Harness {
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub token: String,
}

/// An HTTP response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics with the text when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_owned())
    }
}

async fn read(response: reqwest::Response) -> Reply {
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.expect("readable body"),
    }
}

impl Harness {
    /// Starts a simulator with `config` and obtains a token.
    pub async fn start(config: SimConfig) -> Self {
        let sim = Simulator::start(config).await.expect("simulator starts");
        let http = reqwest::Client::new();
        let mut harness = Self {
            sim,
            http,
            token: String::new(),
        };
        harness.token = harness.new_token().await;
        harness
    }

    /// Starts the default test org.
    pub async fn default_org() -> Self {
        Self::start(config()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub fn data(&self) -> &Dataset {
        self.sim.data()
    }

    /// Requests a token with the default credentials.
    pub async fn new_token(&self) -> String {
        let reply = self.token_request("sim-client", "sim-secret").await;
        assert_eq!(reply.status, 200, "token request failed: {}", reply.text);
        reply.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A client-credentials request with these credentials.
    pub async fn token_request(&self, id: &str, secret: &str) -> Reply {
        read(
            self.http
                .post(self.url("/oauth/token"))
                .basic_auth(id, Some(secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .send()
                .await
                .expect("token request sent"),
        )
        .await
    }

    /// An authorised GET.
    pub async fn get(&self, path: &str) -> Reply {
        read(
            self.http
                .get(self.url(path))
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    /// A GET with no Authorization header.
    pub async fn get_anonymous(&self, path: &str) -> Reply {
        read(
            self.http
                .get(self.url(path))
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    /// An authorised POST of a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        read(
            self.http
                .post(self.url(path))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    /// A details query.
    pub async fn details(&self, body: &Value) -> Reply {
        self.post("/api/v2/analytics/conversations/details/query", body)
            .await
    }

    /// An aggregates query.
    pub async fn aggregates(&self, body: &Value) -> Reply {
        self.post("/api/v2/analytics/conversations/aggregates/query", body)
            .await
    }

    /// Every conversation id a details query returns, walking all pages of `page_size`.
    pub async fn all_ids(&self, mut body: Value, page_size: u32) -> Vec<String> {
        let mut ids = Vec::new();
        for page in 1.. {
            body["paging"] = serde_json::json!({"pageSize": page_size, "pageNumber": page});
            let reply = self.details(&body).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let json = reply.json();
            let Some(conversations) = json["conversations"].as_array() else {
                break;
            };
            ids.extend(
                conversations
                    .iter()
                    .map(|c| c["conversationId"].as_str().expect("id").to_owned()),
            );
        }
        ids
    }
}

/// A wire interval from two offsets (in hours) relative to the anchor.
pub fn interval_hours(from: i64, to: i64) -> String {
    format!(
        "{}/{}",
        genesys_sim::render::format_time(anchor() + Duration::hours(from)),
        genesys_sim::render::format_time(anchor() + Duration::hours(to))
    )
}

/// Ids (sorted) of the generated conversations that start in `[anchor+from h, anchor+to h)`
/// and satisfy `keep`, computed from the generated records alone.
pub fn expected_ids(
    data: &Dataset,
    from: i64,
    to: i64,
    keep: impl Fn(&ConversationRecord) -> bool,
) -> Vec<String> {
    let start = anchor() + Duration::hours(from);
    let end = anchor() + Duration::hours(to);
    let mut ids: Vec<String> = data
        .conversations
        .iter()
        .filter(|c| c.start >= start && c.start < end)
        .filter(|c| keep(c))
        .map(|c| c.id.to_string())
        .collect();
    ids.sort();
    ids
}

/// `ids` sorted, for set comparison.
pub fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}
