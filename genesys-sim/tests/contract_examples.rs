//! The documented Genesys example payloads satisfy the contract definitions, and the contract
//! validator rejects each kind of deviation with a path naming the offending field.

#[path = "support/contract.rs"]
mod contract;

use contract::Contract;
use serde_json::{Value, json};

const CONVERSATION: &str = include_str!("contract/examples/conversation.json");
const DETAILS_QUERY_REQUEST: &str =
    include_str!("contract/examples/analytics-details-query-request.json");
const DETAILS_QUERY_RESPONSE: &str =
    include_str!("contract/examples/analytics-details-query-response.json");
const AGGREGATES_QUERY_RESPONSE: &str =
    include_str!("contract/examples/analytics-aggregates-query-response.json");
const ERROR_429: &str = include_str!("contract/examples/error-429.json");

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("example file is valid JSON")
}

fn set(value: &mut Value, pointer: &str, replacement: Value) {
    *value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("example has no {pointer}")) = replacement;
}

fn violations(definition: &str, value: &Value) -> Vec<String> {
    match Contract::load().validate(definition, value) {
        Ok(()) => panic!("expected `{definition}` violations, the payload validated"),
        Err(violations) => violations,
    }
}

/// Asserts exactly one violation, located at `pointer`, whose text mentions `problem`.
fn assert_single_violation(violations: &[String], pointer: &str, problem: &str) {
    assert_eq!(violations.len(), 1, "violations: {violations:#?}");
    let violation = &violations[0];
    assert!(
        violation.starts_with(&format!("{pointer}: ")),
        "expected a violation at {pointer}, got {violation}"
    );
    assert!(
        violation.contains(problem),
        "expected {problem:?} in {violation}"
    );
}

#[test]
fn the_conversation_example_is_a_valid_conversation() {
    Contract::load().assert_valid("Conversation", &parse(CONVERSATION));
}

#[test]
fn the_details_query_request_example_is_a_valid_conversation_query() {
    Contract::load().assert_valid("ConversationQuery", &parse(DETAILS_QUERY_REQUEST));
}

#[test]
fn the_details_query_response_example_is_a_valid_analytics_conversation_query_response() {
    Contract::load().assert_valid(
        "AnalyticsConversationQueryResponse",
        &parse(DETAILS_QUERY_RESPONSE),
    );
}

#[test]
fn the_aggregates_query_response_example_is_a_valid_conversation_aggregate_query_response() {
    Contract::load().assert_valid(
        "ConversationAggregateQueryResponse",
        &parse(AGGREGATES_QUERY_RESPONSE),
    );
}

#[test]
fn the_429_example_is_a_valid_error_body() {
    Contract::load().assert_valid("ErrorBody", &parse(ERROR_429));
}

#[test]
fn every_root_definition_and_the_oauth_definitions_are_loaded() {
    let contract = Contract::load();
    for name in [
        "Conversation",
        "AnalyticsConversationQueryResponse",
        "AnalyticsConversationWithoutAttributesMultiGetResponse",
        "AnalyticsConversationWithoutAttributes",
        "ConversationAggregateQueryResponse",
        "ErrorBody",
        "ConversationQuery",
        "ConversationAggregationQuery",
        "OAuthTokenResponse",
        "OAuthErrorResponse",
    ] {
        assert!(contract.has_definition(name), "{name} missing");
    }
}

#[test]
fn a_conversation_without_its_required_start_time_is_rejected_at_start_time() {
    let mut conversation = parse(CONVERSATION);
    conversation
        .as_object_mut()
        .expect("conversation is an object")
        .remove("startTime");
    let found = violations("Conversation", &conversation);
    assert_single_violation(&found, "/startTime", "required property missing");
}

#[test]
fn a_call_state_outside_the_enum_is_rejected_with_the_allowed_values() {
    let mut conversation = parse(CONVERSATION);
    set(
        &mut conversation,
        "/participants/2/calls/0/state",
        json!("talking"),
    );
    let found = violations("Conversation", &conversation);
    assert_single_violation(
        &found,
        "/participants/2/calls/0/state",
        r#""talking" not in enum ["alerting""#,
    );
}

#[test]
fn a_property_the_definition_does_not_declare_is_rejected_as_unknown() {
    let mut conversation = parse(CONVERSATION);
    conversation
        .pointer_mut("/participants/1")
        .and_then(Value::as_object_mut)
        .expect("example has participant 1")
        .insert("favouriteColour".to_owned(), json!("teal"));
    let found = violations("Conversation", &conversation);
    assert_single_violation(
        &found,
        "/participants/1/favouriteColour",
        "unknown property",
    );
}

#[test]
fn a_string_where_an_integer_is_declared_is_rejected() {
    let mut conversation = parse(CONVERSATION);
    set(
        &mut conversation,
        "/participants/3/wrapupTimeoutMs",
        json!("60000"),
    );
    let found = violations("Conversation", &conversation);
    assert_single_violation(
        &found,
        "/participants/3/wrapupTimeoutMs",
        r#"expected integer (int32), got string "60000""#,
    );
}

#[test]
fn a_fractional_number_where_an_integer_is_declared_is_rejected() {
    let mut conversation = parse(CONVERSATION);
    set(
        &mut conversation,
        "/participants/3/wrapupTimeoutMs",
        json!(60000.0),
    );
    let found = violations("Conversation", &conversation);
    assert_single_violation(
        &found,
        "/participants/3/wrapupTimeoutMs",
        "expected integer (int32), got number",
    );
}

#[test]
fn an_integer_beyond_int32_is_rejected_for_an_int32_field() {
    let mut conversation = parse(CONVERSATION);
    set(
        &mut conversation,
        "/participants/3/wrapupTimeoutMs",
        json!(3_000_000_000_u64),
    );
    let found = violations("Conversation", &conversation);
    assert_single_violation(
        &found,
        "/participants/3/wrapupTimeoutMs",
        "out of int32 range",
    );
}

#[test]
fn an_integer_is_accepted_where_a_number_is_declared() {
    let mut response = parse(DETAILS_QUERY_RESPONSE);
    set(
        &mut response,
        "/conversations/0/mediaStatsMinConversationMos",
        json!(4),
    );
    Contract::load().assert_valid("AnalyticsConversationQueryResponse", &response);
}

#[test]
fn a_malformed_date_time_is_rejected_at_its_field() {
    let mut conversation = parse(CONVERSATION);
    set(
        &mut conversation,
        "/startTime",
        json!("2025-03-11 14:02:05"),
    );
    let found = violations("Conversation", &conversation);
    assert_single_violation(&found, "/startTime", "is not an RFC 3339 date-time");
}

#[test]
fn date_times_with_z_or_an_offset_and_any_fraction_are_accepted() {
    for good in [
        "2025-03-11T14:02:05Z",
        "2025-03-11T14:02:05.1Z",
        "2025-03-11T14:02:05.118Z",
        "2025-03-11T14:02:05.123456789Z",
        "2025-03-11T14:02:05+01:00",
        "2024-02-29T23:59:59.999-05:30",
    ] {
        let mut conversation = parse(CONVERSATION);
        set(&mut conversation, "/endTime", json!(good));
        assert!(
            Contract::load()
                .validate("Conversation", &conversation)
                .is_ok(),
            "{good} should be accepted"
        );
    }
}

#[test]
fn date_times_without_a_zone_or_with_impossible_fields_are_rejected() {
    for bad in [
        "2025-03-11",
        "2025-03-11T14:02:05",
        "2025-03-11T14:02:05.Z",
        "2025-03-11T14:02:05.1234567890Z",
        "2025-03-11T14:02:05+0100",
        "2025-03-11T14:02Z",
        "2025-03-11t14:02:05z",
        "2025-02-29T00:00:00Z",
        "2025-04-31T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-03-11T24:00:00Z",
        "2025-03-11T14:60:00Z",
        "2025-03-11T14:02:60Z",
        "2025-03-11T14:02:05+24:00",
        "1741701725118",
        "",
    ] {
        let mut conversation = parse(CONVERSATION);
        set(&mut conversation, "/endTime", json!(bad));
        let found = violations("Conversation", &conversation);
        assert_single_violation(&found, "/endTime", "is not an RFC 3339 date-time");
    }
}

#[test]
fn a_null_value_is_rejected_even_for_an_optional_field() {
    let mut conversation = parse(CONVERSATION);
    set(&mut conversation, "/endTime", Value::Null);
    let found = violations("Conversation", &conversation);
    assert_single_violation(&found, "/endTime", "null is not allowed");
}

#[test]
fn a_null_object_reference_is_rejected() {
    let mut conversation = parse(CONVERSATION);
    set(&mut conversation, "/participants/3/wrapup", Value::Null);
    let found = violations("Conversation", &conversation);
    assert_single_violation(&found, "/participants/3/wrapup", "null is not allowed");
}

#[test]
fn a_non_string_value_inside_the_participant_attributes_map_is_rejected() {
    let mut conversation = parse(CONVERSATION);
    set(
        &mut conversation,
        "/participants/1/attributes/Customer.Tier",
        json!(5),
    );
    let found = violations("Conversation", &conversation);
    assert_single_violation(
        &found,
        "/participants/1/attributes/Customer.Tier",
        "expected string, got integer 5",
    );
}

#[test]
fn map_keys_are_json_pointer_escaped_in_violation_paths() {
    let mut conversation = parse(CONVERSATION);
    set(
        &mut conversation,
        "/participants/0/attributes",
        json!({ "a/b~c": true }),
    );
    let found = violations("Conversation", &conversation);
    assert_single_violation(
        &found,
        "/participants/0/attributes/a~1b~0c",
        "expected string",
    );
}

#[test]
fn an_unknown_value_inside_an_array_of_enum_strings_is_rejected_at_its_index() {
    let mut response = parse(DETAILS_QUERY_RESPONSE);
    set(
        &mut response,
        "/conversations/0/participants/2/sessions/0/requestedRoutings",
        json!(["Standard", "Telepathic"]),
    );
    let found = violations("AnalyticsConversationQueryResponse", &response);
    assert_single_violation(
        &found,
        "/conversations/0/participants/2/sessions/0/requestedRoutings/1",
        r#""Telepathic" not in enum"#,
    );
}

#[test]
fn a_bad_enum_deep_inside_nested_arrays_is_rejected_at_its_full_path() {
    let mut response = parse(DETAILS_QUERY_RESPONSE);
    set(
        &mut response,
        "/conversations/0/participants/3/sessions/0/segments/2/segmentType",
        json!("Wrapup"),
    );
    let found = violations("AnalyticsConversationQueryResponse", &response);
    assert_single_violation(
        &found,
        "/conversations/0/participants/3/sessions/0/segments/2/segmentType",
        r#""Wrapup" not in enum"#,
    );
}

#[test]
fn an_object_where_an_array_is_declared_is_rejected() {
    let mut error = parse(ERROR_429);
    set(&mut error, "/details", json!({}));
    let found = violations("ErrorBody", &error);
    assert_single_violation(&found, "/details", "expected array, got object {}");
}

#[test]
fn a_payload_that_is_not_an_object_is_rejected_at_the_root() {
    let found = violations("ErrorBody", &json!([]));
    assert_single_violation(&found, "(root)", "expected object, got array");
}

#[test]
fn every_violation_is_reported_not_only_the_first() {
    let mut conversation = parse(CONVERSATION);
    let object = conversation
        .as_object_mut()
        .expect("conversation is an object");
    object.remove("participants");
    object.insert("recordingState".to_owned(), json!("none"));
    object.insert("securePause".to_owned(), json!("false"));
    let found = violations("Conversation", &conversation);
    assert_eq!(found.len(), 3, "violations: {found:#?}");
    for pointer in ["/participants", "/recordingState", "/securePause"] {
        assert!(
            found.iter().any(|v| v.starts_with(&format!("{pointer}: "))),
            "no violation at {pointer}: {found:#?}"
        );
    }
}

#[test]
fn an_aggregation_query_with_an_unknown_metric_is_rejected() {
    let query = json!({
        "interval": "2025-03-11T00:00:00.000Z/2025-03-12T00:00:00.000Z",
        "groupBy": ["queueId", "mediaType"],
        "metrics": ["nOffered", "tHandle", "nTelepathy"]
    });
    let found = violations("ConversationAggregationQuery", &query);
    assert_single_violation(&found, "/metrics/2", r#""nTelepathy" not in enum"#);
}

#[test]
fn a_client_credentials_token_response_is_a_valid_oauth_token_response() {
    let token = json!({
        "access_token": "e2kZtuV8d3iLv9Yq0pN1xR7wS4aB6cD8eF0gH2jK4mP6rT8vX0zA2",
        "token_type": "bearer",
        "expires_in": 86400
    });
    Contract::load().assert_valid("OAuthTokenResponse", &token);
}

#[test]
fn a_token_response_with_a_string_expiry_and_no_token_type_is_rejected() {
    let token = json!({ "access_token": "abc", "expires_in": "86400" });
    let found = violations("OAuthTokenResponse", &token);
    assert_eq!(found.len(), 2, "violations: {found:#?}");
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("/token_type: required property missing"))
    );
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("/expires_in: expected integer"))
    );
}

#[test]
fn a_token_endpoint_error_is_a_valid_oauth_error_response() {
    let error = json!({
        "error": "invalid_client",
        "description": "client not found",
        "error_description": "client not found"
    });
    Contract::load().assert_valid("OAuthErrorResponse", &error);
}

#[test]
#[should_panic(expected = "/startTime: required property missing")]
fn assert_valid_panics_listing_the_violations() {
    let mut conversation = parse(CONVERSATION);
    conversation
        .as_object_mut()
        .expect("conversation is an object")
        .remove("startTime");
    Contract::load().assert_valid("Conversation", &conversation);
}

#[test]
#[should_panic(expected = "unknown definition `Conversaton`")]
fn an_unknown_definition_name_is_a_test_bug_and_panics() {
    let _ = Contract::load().validate("Conversaton", &json!({}));
}
