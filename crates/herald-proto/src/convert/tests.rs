//! Tests of the proto <-> core conversions: round trips and the paths named by errors.

use std::collections::BTreeMap;

use herald_core::subscription::WebhookSecret;
use herald_core::{Filter, Sink, Subscription, SubscriptionId};
use time::macros::datetime;

use super::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn subscription() -> Subscription {
    Subscription {
        id: SubscriptionId::parse("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap(),
        sink: Sink::parse("https://example.com/hooks?token=abc").unwrap(),
        filters: vec![Filter::exact("type", "com.example.order.created")],
        secret: WebhookSecret::parse(SECRET).unwrap(),
        description: "orders".to_owned(),
        created_at: datetime!(2025-01-02 03:04:05.123456789 UTC),
        updated_at: datetime!(2025-01-02 03:04:06 UTC),
        retry_policy: herald_core::retry::RetryPolicy::standard(),
        state: herald_core::State::Active,
        delivery: herald_core::DeliverySettings::default(),
        retired_secrets: Vec::new(),
        consent: herald_core::subscription::ConsentMode::Off,
        endpoint_consent: None,
        tenant: herald_core::credential::TenantId::default_tenant(),
        headers: Vec::new(),
        client_certificate: None,
    }
}

fn nested_filters() -> Vec<Filter> {
    serde_json::from_str(
        r#"[
            {"exact": {"type": "com.example.a", "source": "/shop"}},
            {"any": [
                {"prefix": {"type": "com.example."}},
                {"not": {"suffix": {"subject": ".tmp"}}},
                {"all": [{"exact": {"datacontenttype": "application/json"}}]}
            ]},
            {"sql": "source LIKE '/shop/%' AND EXISTS subject"},
            {"not": {"cel": "data.total > 100"}}
        ]"#,
    )
    .unwrap()
}

fn empty() -> pb::Filter {
    pb::Filter { dialect: None }
}

fn any(filters: Vec<pb::Filter>) -> pb::Filter {
    pb::Filter {
        dialect: Some(pb::filter::Dialect::Any(pb::FilterList { filters })),
    }
}

fn not(filter: pb::Filter) -> pb::Filter {
    pb::Filter {
        dialect: Some(pb::filter::Dialect::Not(Box::new(filter))),
    }
}

#[test]
fn filters_survive_a_round_trip_through_the_wire_form() {
    let filters = nested_filters();
    let wire = filters_to_pb(&filters);
    assert_eq!(filters_from_pb(&wire).unwrap(), filters);
}

#[test]
fn exact_filter_keeps_every_attribute() {
    let wire = pb::Filter::from(Filter::exact("type", "com.example"));
    let expected = pb::Filter {
        dialect: Some(pb::filter::Dialect::Exact(pb::AttributeFilter {
            attributes: BTreeMap::from([("type".to_owned(), "com.example".to_owned())]),
        })),
    };
    assert_eq!(wire, expected);
}

#[test]
fn expression_filters_travel_as_strings() {
    let wire = pb::Filter::from(Filter::Sql("type = 'a'".to_owned()));
    assert_eq!(
        wire.dialect,
        Some(pb::filter::Dialect::Sql("type = 'a'".to_owned()))
    );
    let wire = pb::Filter::from(Filter::Cel("data.x == 1".to_owned()));
    assert_eq!(
        Filter::try_from(&wire).unwrap(),
        Filter::Cel("data.x == 1".to_owned())
    );
}

#[test]
fn filter_without_dialect_is_named_by_its_path() {
    let exact = pb::Filter::from(Filter::exact("type", "a"));
    let wire = vec![exact.clone(), any(vec![empty(), exact])];
    let error = filters_from_pb(&wire).unwrap_err();
    assert_eq!(
        error.to_string(),
        "filters[1].any[0]: empty dialect: set one of exact, prefix, suffix, all, any, not, sql, cel"
    );
}

#[test]
fn empty_dialect_under_not_is_named_by_its_path() {
    let wire = vec![not(not(empty()))];
    let error = filters_from_pb(&wire).unwrap_err();
    assert_eq!(error.path, "filters[0].not.not");
}

#[test]
fn single_filter_conversion_names_paths_from_filter() {
    let error = Filter::try_from(any(vec![empty()])).unwrap_err();
    assert_eq!(error.path, "filter.any[0]");
}

#[test]
fn conversion_leaves_semantic_validation_to_core() {
    // An empty `any` is representable; `herald_core::filter::validate` refuses it.
    let filters = filters_from_pb(&[any(Vec::new())]).unwrap();
    assert_eq!(filters, vec![Filter::Any(Vec::new())]);
    assert!(herald_core::filter::validate(&filters).is_err());
}

#[test]
fn subscription_omits_secret_unless_revealed() {
    let subscription = subscription();
    let omitted = subscription_to_pb(&subscription, 7, SecretVisibility::Omit);
    assert_eq!(omitted.secret, "");
    let revealed = subscription_to_pb(&subscription, 7, SecretVisibility::Reveal);
    assert_eq!(revealed.secret, SECRET);
    assert_eq!(
        omitted,
        pb::Subscription {
            secret: String::new(),
            ..revealed
        }
    );
}

#[test]
fn subscription_carries_every_field() {
    let wire = subscription_to_pb(&subscription(), 7, SecretVisibility::Omit);
    assert_eq!(wire.id, "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(wire.sink, "https://example.com/hooks?token=abc");
    assert_eq!(wire.filters, filters_to_pb(&subscription().filters));
    assert_eq!(wire.description, "orders");
    assert_eq!(wire.revision, 7);
    assert_eq!(wire.protocol, "HTTP");
    let create_time = wire.create_time.unwrap();
    assert_eq!(
        (create_time.seconds, create_time.nanos),
        (1_735_787_045, 123_456_789)
    );
    assert_eq!(
        wire.retry_policy,
        Some(crate::retry_policy_to_pb(
            &herald_core::retry::RetryPolicy::standard()
        ))
    );
    assert_eq!(wire.state, pb::SubscriptionState::Active as i32);
    assert_eq!(wire.state_reason, "");
    assert_eq!(wire.state_change_time, None);
    assert_eq!(wire.health, None);
    assert_eq!(
        wire.delivery,
        Some(pb::DeliverySettings {
            rate_limit: None,
            max_in_flight: None,
            ordering: pb::delivery_settings::Ordering::None as i32,
            on_dead_letter: pb::delivery_settings::OnDeadLetter::Block as i32,
            content_mode: pb::delivery_settings::ContentMode::Structured as i32,
            parts: 1,
        })
    );
}

#[test]
fn timestamps_survive_a_round_trip() {
    for instant in [
        datetime!(2025-01-02 03:04:05.123456789 UTC),
        datetime!(1970-01-01 00:00:00 UTC),
        datetime!(1969-12-31 23:59:59.5 UTC),
    ] {
        let wire = timestamp_to_pb(instant);
        assert!((0..1_000_000_000).contains(&wire.nanos), "{wire:?}");
        assert_eq!(timestamp_from_pb(&wire).unwrap(), instant);
    }
}

#[test]
fn timestamp_before_epoch_has_positive_nanos() {
    let wire = timestamp_to_pb(datetime!(1969-12-31 23:59:59.5 UTC));
    assert_eq!((wire.seconds, wire.nanos), (-1, 500_000_000));
}

#[test]
fn out_of_range_timestamp_is_refused() {
    let wire = prost_types::Timestamp {
        seconds: i64::MAX,
        nanos: 0,
    };
    assert!(timestamp_from_pb(&wire).is_err());
}
