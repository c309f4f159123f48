//! Tests of building and recognising test events.

use time::macros::datetime;

use super::*;

fn subscription_id() -> SubscriptionId {
    SubscriptionId::parse("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap()
}

fn test_event<'a>(
    id: &'a SubscriptionId,
    event_type: Option<&'a str>,
    data: Option<&'a str>,
) -> TestEvent<'a> {
    TestEvent {
        subscription_id: id,
        unique: "01HZY0000000000000000000AB",
        event_type,
        data,
        now: datetime!(2026-12-02 04:30:00 UTC),
    }
}

#[test]
fn a_test_event_without_type_or_data_is_a_marked_default_event_about_the_subscription() {
    let id = subscription_id();
    let event = test_event(&id, None, None).build().unwrap();
    assert!(is_test(&event));
    assert_eq!(event.id(), "test_01HZY0000000000000000000AB");
    assert_eq!(event.source(), SOURCE);
    assert_eq!(event.ty(), DEFAULT_TYPE);
    let json: serde_json::Value = serde_json::from_slice(event.structured()).unwrap();
    assert_eq!(json["heraldtest"], true);
    assert_eq!(json["subject"], id.as_str());
    assert_eq!(json["time"], "2026-12-02T04:30:00Z");
    assert_eq!(json["datacontenttype"], "application/json");
    assert_eq!(json["data"]["subscription_id"], id.as_str());
}

#[test]
fn a_test_event_carries_the_given_type_and_data() {
    let id = subscription_id();
    let event = test_event(
        &id,
        Some("com.shop.order.created"),
        Some(r#"{"total": 12.5}"#),
    )
    .build()
    .unwrap();
    assert_eq!(event.ty(), "com.shop.order.created");
    let json: serde_json::Value = serde_json::from_slice(event.structured()).unwrap();
    assert_eq!(json["data"], serde_json::json!({"total": 12.5}));
    assert!(is_test(&event));
}

#[test]
fn empty_type_and_data_mean_the_defaults() {
    let id = subscription_id();
    let event = test_event(&id, Some(""), Some("")).build().unwrap();
    assert_eq!(event.ty(), DEFAULT_TYPE);
}

#[test]
fn data_that_is_not_json_is_refused_naming_data() {
    let id = subscription_id();
    let error = test_event(&id, None, Some("{not json"))
        .build()
        .unwrap_err();
    assert_eq!(error.field, "data");
    assert!(error.reason.starts_with("not valid JSON"), "{error}");
}

#[test]
fn data_over_the_limit_is_refused_naming_data() {
    let id = subscription_id();
    let large = format!("\"{}\"", "x".repeat(MAX_DATA_BYTES));
    let error = test_event(&id, None, Some(&large)).build().unwrap_err();
    assert_eq!(error.field, "data");
}

#[test]
fn a_type_with_control_characters_or_too_long_is_refused_naming_type() {
    let id = subscription_id();
    let error = test_event(&id, Some("bad\u{1}type"), None)
        .build()
        .unwrap_err();
    assert_eq!(error.field, "type");
    let long = "a".repeat(MAX_TYPE_BYTES + 1);
    let error = test_event(&id, Some(&long), None).build().unwrap_err();
    assert_eq!(error.field, "type");
}

#[test]
fn an_ordinary_event_is_not_a_test_event() {
    let ordinary = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","heraldtest":"true"}"#;
    let event = Event::from_structured(Bytes::from(ordinary)).unwrap();
    assert!(!is_test(&event), "only the boolean true marks a test event");
}
