//! Decoding Genesys' answers is as tolerant as the official models are loose: documents
//! built from the official definitions (`genesys-sim/tests/contract/definitions.json`),
//! with optional fields left out and set to `null` at random, all decode; a details hit
//! without what the proxy needs (`conversationId`, `conversationStart`) is left out of its
//! page and never fails it.
//!
//! The generator is small and seeded (`fastrand`): a failure names its seed, and
//! `MODEL_CASES=<n>` runs more cases.

use std::collections::BTreeSet;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use genesys_proxy::cache::CacheSettings;
use genesys_proxy::conversations::{ConversationEntry, entry_from_document};
use genesys_proxy::reports::summary::ConversationSummary;
use genesys_proxy::upstream::models::{AggregatesResponse, Conversation, DetailsResponse};
use serde_json::{Map, Value, json};

/// Cases per document kind (`MODEL_CASES` overrides).
fn cases() -> u64 {
    std::env::var("MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150)
}

fn definitions() -> Map<String, Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/genesys-sim/tests/contract/definitions.json"
    );
    let text = std::fs::read_to_string(path).expect("the official definitions");
    let mut document: Value = serde_json::from_str(&text).expect("JSON");
    match document["definitions"].take() {
        Value::Object(definitions) => definitions,
        _ => panic!("no definitions"),
    }
}

/// The definition `schema` names: `{"$ref": ...}`, or `{"allOf": [{"$ref": ...}]}` (the
/// official models' way of describing a referenced field).
fn reference(schema: &Value) -> Option<&str> {
    let schema = match schema.get("allOf").and_then(Value::as_array) {
        Some(all) if all.len() == 1 => &all[0],
        _ => schema,
    };
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/definitions/"))
}

fn required(definition: &Value) -> BTreeSet<&str> {
    definition
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Builds documents of a definition: every optional field is left out with
/// probability `drop`, else set to `null` with probability `null`, else generated;
/// required fields are always generated. Nesting and size are bounded.
struct Generator<'a> {
    definitions: &'a Map<String, Value>,
    rng: fastrand::Rng,
    drop: f64,
    null: f64,
    /// Values still to generate before only required fields are.
    budget: usize,
}

/// Free-text fields whose words the proxy acts on: the generator mostly picks those words
/// (any string is valid there), so the documents reach the code that reads them.
fn words_the_proxy_reads(definition: &str, field: &str) -> Option<&'static [&'static str]> {
    match (definition, field) {
        ("Participant", "purpose") => Some(&["agent", "customer", "acd", "ivr", "other"]),
        ("AnalyticsSessionMetric", "name") => Some(&["tHandle", "tTalk", "tHeld", "tAcw", "nX"]),
        ("AggregateMetricData", "metric") => Some(&["tHandle", "nOffered", "tWait", "oX"]),
        _ => None,
    }
}

/// Objects nested deeper than this hold their required fields only.
const MAX_DEPTH: usize = 6;

impl<'a> Generator<'a> {
    fn new(definitions: &'a Map<String, Value>, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        // Some documents are complete, some nearly empty, most in between.
        let drop = [0.0, 0.1, 0.3, 0.6, 0.95][rng.usize(..5)];
        let null = [0.0, 0.1, 0.3, 0.6][rng.usize(..4)];
        Self {
            definitions,
            rng,
            drop,
            null,
            budget: 4_000,
        }
    }

    fn object(&mut self, name: &str, depth: usize) -> Value {
        let definition = &self.definitions[name];
        let needed = required(definition);
        let mut out = Map::new();
        let Some(properties) = definition.get("properties").and_then(Value::as_object) else {
            return Value::Object(out);
        };
        for (field, schema) in properties {
            if needed.contains(field.as_str()) {
                out.insert(field.clone(), self.value(schema, depth + 1));
                continue;
            }
            if self.budget == 0 || depth >= MAX_DEPTH || self.rng.f64() < self.drop {
                continue;
            }
            let value = if self.rng.f64() < self.null {
                Value::Null
            } else if let Some(choices) = words_the_proxy_reads(name, field) {
                json!(choices[self.rng.usize(..choices.len())])
            } else {
                self.value(schema, depth + 1)
            };
            out.insert(field.clone(), value);
        }
        Value::Object(out)
    }

    fn value(&mut self, schema: &Value, depth: usize) -> Value {
        self.budget = self.budget.saturating_sub(1);
        if let Some(name) = reference(schema) {
            return self.object(name, depth);
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("array") => {
                let len = if self.budget == 0 || depth > MAX_DEPTH {
                    0
                } else {
                    self.rng.usize(..=4)
                };
                Value::Array(
                    (0..len)
                        .map(|_| self.value(&schema["items"], depth))
                        .collect(),
                )
            }
            Some("object") => {
                let mut out = Map::new();
                if let Some(values) = schema.get("additionalProperties") {
                    for _ in 0..self.rng.usize(..=3) {
                        let key = self.text();
                        let value = if self.rng.f64() < self.null {
                            Value::Null
                        } else {
                            self.value(values, depth)
                        };
                        out.insert(key, value);
                    }
                }
                Value::Object(out)
            }
            Some("string") => {
                if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
                    choices[self.rng.usize(..choices.len())].clone()
                } else if schema.get("format").and_then(Value::as_str) == Some("date-time") {
                    Value::String(self.timestamp())
                } else {
                    Value::String(self.text())
                }
            }
            // Counts, durations and sizes: Genesys never sends them negative.
            Some("integer") => json!(self.rng.i64(0..10_000_000)),
            Some("number") => json!(f64::from(self.rng.u32(..1_000_000)) / 100.0),
            Some("boolean") => json!(self.rng.bool()),
            _ => Value::Object(Map::new()),
        }
    }

    fn timestamp(&mut self) -> String {
        let millis = self.rng.i64(1_700_000_000_000..1_800_000_000_000);
        let at: DateTime<Utc> = Utc.timestamp_millis_opt(millis).single().expect("valid");
        at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    fn text(&mut self) -> String {
        let len = self.rng.usize(1..12);
        std::iter::repeat_with(|| self.rng.alphanumeric())
            .take(len)
            .collect()
    }
}

/// Checks `value` against `schema`, where `null` stands for an absent optional field:
/// required fields are present and not `null`, and every value has its declared type.
fn validate(definitions: &Map<String, Value>, schema: &Value, value: &Value, at: &str) {
    if let Some(name) = reference(schema) {
        let definition = &definitions[name];
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("{at}: not an object"));
        for field in required(definition) {
            assert!(
                object.get(field).is_some_and(|v| !v.is_null()),
                "{at}: {name}.{field} is required"
            );
        }
        let properties = definition["properties"].as_object().expect("properties");
        for (field, value) in object {
            let schema = properties
                .get(field)
                .unwrap_or_else(|| panic!("{at}: {name} has no {field}"));
            if !value.is_null() {
                validate(definitions, schema, value, &format!("{at}.{field}"));
            }
        }
        return;
    }
    let kind = schema.get("type").and_then(Value::as_str);
    match (kind, value) {
        (Some("array"), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                validate(definitions, &schema["items"], item, &format!("{at}[{i}]"));
            }
        }
        (Some("object"), Value::Object(entries)) => {
            if let Some(values) = schema.get("additionalProperties") {
                for (key, value) in entries.iter().filter(|(_, v)| !v.is_null()) {
                    validate(definitions, values, value, &format!("{at}.{key}"));
                }
            }
        }
        (Some("string"), Value::String(text)) => {
            if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
                assert!(choices.contains(value), "{at}: {text:?} is not in the enum");
            }
            if schema.get("format").and_then(Value::as_str) == Some("date-time") {
                assert!(
                    DateTime::parse_from_rfc3339(text).is_ok(),
                    "{at}: {text:?} is not a date-time"
                );
            }
        }
        (Some("integer"), Value::Number(n)) => assert!(n.is_i64() || n.is_u64(), "{at}"),
        (Some("number"), Value::Number(_)) | (Some("boolean"), Value::Bool(_)) => {}
        (kind, value) => panic!("{at}: {value} is not a {kind:?}"),
    }
}

/// Generates a valid document of `definition` for each case and hands it to `check`.
fn for_each_document(definition: &str, mut check: impl FnMut(u64, &Value)) {
    let definitions = definitions();
    let schema = json!({ "$ref": format!("#/definitions/{definition}") });
    for seed in 0..cases() {
        let document = Generator::new(&definitions, seed).object(definition, 0);
        validate(&definitions, &schema, &document, definition);
        check(seed, &document);
    }
}

/// The items of a list field that may be absent or `null`, without `null` items.
fn items<'a>(document: &'a Value, field: &str) -> Vec<&'a Value> {
    document
        .get(field)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter(|i| !i.is_null()).collect())
        .unwrap_or_default()
}

/// The `(conversationId, conversationStart)` of the hits that have both, in order.
fn placeable_hits(document: &Value) -> Vec<(String, DateTime<Utc>)> {
    items(document, "conversations")
        .into_iter()
        .filter_map(|hit| {
            let id = hit.get("conversationId")?.as_str()?;
            let start = hit.get("conversationStart")?.as_str()?;
            Some((id.to_owned(), start.parse().expect("a date-time")))
        })
        .collect()
}

fn decode<T: serde::de::DeserializeOwned>(seed: u64, document: &Value) -> T {
    let bytes = serde_json::to_vec(document).expect("serialises");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", String::from_utf8_lossy(&bytes)))
}

#[test]
fn sparse_and_null_laden_details_pages_decode_keeping_every_placeable_hit() {
    let (mut kept, mut dropped) = (0, 0);
    for_each_document("AnalyticsConversationQueryResponse", |seed, document| {
        let page: DetailsResponse = decode(seed, document);
        let expected = placeable_hits(document);
        let decoded: Vec<_> = page
            .conversations
            .iter()
            .map(|c| (c.conversation_id.clone(), c.conversation_start))
            .collect();
        assert_eq!(decoded, expected, "seed {seed}");
        assert_eq!(
            page.total_hits,
            document["totalHits"].as_u64().unwrap_or(0),
            "seed {seed}"
        );
        for hit in &page.conversations {
            let summary = ConversationSummary::from_analytics(hit);
            assert_eq!(summary.id, hit.conversation_id);
        }
        kept += expected.len();
        dropped += items(document, "conversations").len() - expected.len();
    });
    assert!(kept > 50 && dropped > 20, "kept {kept}, dropped {dropped}");
}

#[test]
fn sparse_and_null_laden_aggregates_answers_decode_with_every_group_and_metric() {
    for_each_document("ConversationAggregateQueryResponse", |seed, document| {
        let answer: AggregatesResponse = decode(seed, document);
        let groups = items(document, "results");
        assert_eq!(answer.results.len(), groups.len(), "seed {seed}");
        for (group, source) in answer.results.iter().zip(groups) {
            let buckets = items(source, "data");
            assert_eq!(group.data.len(), buckets.len(), "seed {seed}");
            for (bucket, source) in group.data.iter().zip(buckets) {
                let names: Vec<Option<&str>> = items(source, "metrics")
                    .iter()
                    .map(|m| m.get("metric").and_then(Value::as_str))
                    .collect();
                let decoded: Vec<Option<&str>> =
                    bucket.metrics.iter().map(|m| m.metric.as_deref()).collect();
                assert_eq!(decoded, names, "seed {seed}");
            }
        }
    });
}

#[test]
fn sparse_and_null_laden_conversation_documents_decode_and_make_cache_entries() {
    let settings = CacheSettings::default();
    let mut with_agents = 0;
    for_each_document("Conversation", |seed, document| {
        let conversation: Conversation = decode(seed, document);
        assert_eq!(
            conversation.id.as_deref(),
            document.get("id").and_then(Value::as_str),
            "seed {seed}"
        );
        assert_eq!(
            conversation.participants.len(),
            items(document, "participants").len(),
            "seed {seed}"
        );
        let body = Bytes::from(serde_json::to_vec(document).expect("serialises"));
        let (entry, _) = entry_from_document(uuid::Uuid::nil(), body.clone(), &settings)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let ConversationEntry::Found(representations) = entry else {
            panic!("seed {seed}: not found");
        };
        assert_eq!(
            representations.full, body,
            "the document is kept byte for byte"
        );
        let view: Value = serde_json::from_slice(&representations.view).expect("the view");
        let nil = uuid::Uuid::nil().to_string();
        assert_eq!(
            view["id"].as_str(),
            Some(document.get("id").and_then(Value::as_str).unwrap_or(&nil)),
            "seed {seed}: the view's id is the document's, or the one asked for"
        );
        with_agents += usize::from(view["agents"].as_array().is_some_and(|a| !a.is_empty()));
    });
    assert!(
        with_agents > 0,
        "the documents reach the agents of the view"
    );
}

#[test]
fn a_details_page_keeps_its_other_hits_when_one_lacks_an_id_or_a_start() {
    let page: DetailsResponse = serde_json::from_value(json!({
        "conversations": [
            {"conversationId": "a", "conversationStart": "2025-03-11T14:02:05.118Z",
             "divisionIds": null, "participants": [null, {"sessions": null}]},
            {"conversationStart": "2025-03-11T14:03:00Z"},
            {"conversationId": "c", "conversationStart": null},
            null,
            {"conversationId": "e", "conversationStart": "2025-03-11T14:05:00Z",
             "participants": [{"sessions": [{"metrics": [{"name": "tTalk"}, {"value": 5}]}]}]}
        ],
        "totalHits": null
    }))
    .expect("the page decodes");
    let ids: Vec<&str> = page
        .conversations
        .iter()
        .map(|c| c.conversation_id.as_str())
        .collect();
    assert_eq!(ids, ["a", "e"]);
    assert_eq!(page.conversations[0].participants.len(), 1);
    assert_eq!(page.total_hits, 0);
    let summary = ConversationSummary::from_analytics(&page.conversations[1]);
    assert_eq!(
        summary.talk_seconds, None,
        "a metric without a value counts for nothing"
    );
}

#[test]
fn explicit_nulls_read_as_absent_in_aggregates_and_conversations() {
    let answer: AggregatesResponse = serde_json::from_value(json!({
        "results": [{"group": {"queueId": "q", "mediaType": null}, "data": [
            {"interval": null, "metrics": [{"metric": null, "stats": null},
                                           {"metric": "tHandle", "stats": {"count": 2}}]}
        ]}, null]
    }))
    .expect("the answer decodes");
    assert_eq!(answer.results.len(), 1);
    let group = &answer.results[0];
    assert_eq!(group.group.len(), 1);
    assert_eq!(group.data[0].metrics[1].stats.count, Some(2));
    let conversation: Conversation = serde_json::from_value(json!({
        "id": null, "startTime": "2025-03-11T14:02:05Z", "participants": null
    }))
    .expect("the document decodes");
    assert!(conversation.id.is_none() && conversation.participants.is_empty());
}
