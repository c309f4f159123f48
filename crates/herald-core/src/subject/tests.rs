//! Subject scheme tests: reversible type encoding and complete, non-overlapping pre-filters.

use proptest::prelude::*;

use super::*;
use crate::filter::Filter;

#[test]
fn stores_events_under_partition_and_type_tokens() {
    assert_eq!(
        event_subject(3, "com.shop.order.created").unwrap(),
        "herald.events.3.com.shop.order.created"
    );
    assert_eq!(
        event_subject(0, "a b.*.>.").unwrap(),
        "herald.events.0.a_20b._2A._3E._"
    );
    assert_eq!(event_subject(0, &"x".repeat(2000)), None);
}

#[test]
fn partitions_are_stable_and_in_range() {
    // FNV-1a of "customer-7" is documented for producers publishing to NATS directly.
    assert_eq!(partition_of("customer-7"), partition_of("customer-7"));
    assert!((0..1000).all(|n| partition_of(&n.to_string()) < PARTITIONS));
    assert_eq!(partition_of(""), 0x811c_9dc5 % PARTITIONS);
}

#[test]
fn key_tokens_are_fixed_length_hex_and_stable() {
    // SHA-256("customer-7"), first 16 bytes: the token is part of the stored hold subjects.
    let token = key_token("customer-7");
    assert_eq!(token.len(), 32);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(token, key_token("customer-7"));
    assert_ne!(token, key_token("customer-8"));
    assert_eq!(key_token(""), "e3b0c44298fc1c149afbf4c8996fb924");
    assert_eq!(key_token(&"k".repeat(10_000)).len(), 32);
}

proptest! {
    #[test]
    fn type_encoding_round_trips(event_type in "\\PC{0,40}") {
        let subject = event_subject(1, &event_type).unwrap();
        prop_assert!(!subject.contains(['*', '>', ' ', '\t']));
        prop_assert!(subject.split('.').all(|token| !token.is_empty()));
        prop_assert_eq!(event_type_of(&subject), Some(event_type));
    }
}

#[test]
fn derives_narrow_filter_subjects() {
    let cases: Vec<(Vec<Filter>, Vec<&str>)> = vec![
        (vec![], vec!["herald.events.>"]),
        (
            vec![Filter::exact("type", "com.shop.order")],
            vec!["herald.events.*.com.shop.order"],
        ),
        (
            vec![Filter::prefix("type", "com.shop.")],
            vec!["herald.events.*.com.shop.>"],
        ),
        // A prefix that ends inside a token narrows to the complete tokens before it.
        (
            vec![Filter::prefix("type", "com.sh")],
            vec!["herald.events.*.com.>"],
        ),
        (vec![Filter::prefix("type", "com")], vec!["herald.events.>"]),
        (vec![Filter::exact("source", "/x")], vec!["herald.events.>"]),
        (
            vec![Filter::exact("source", "/x"), Filter::exact("type", "a.b")],
            vec!["herald.events.*.a.b"],
        ),
        (
            vec![Filter::Any(vec![
                Filter::exact("type", "a.b"),
                Filter::exact("type", "c"),
            ])],
            vec!["herald.events.*.a.b", "herald.events.*.c"],
        ),
        // Overlapping branches collapse to the wider subject.
        (
            vec![Filter::Any(vec![
                Filter::prefix("type", "a."),
                Filter::exact("type", "a.b"),
            ])],
            vec!["herald.events.*.a.>"],
        ),
        (
            vec![Filter::Any(vec![
                Filter::exact("type", "a"),
                Filter::exact("source", "/s"),
            ])],
            vec!["herald.events.>"],
        ),
        (
            vec![Filter::Not(Box::new(Filter::exact("type", "a")))],
            vec!["herald.events.>"],
        ),
        (
            vec![Filter::All(vec![
                Filter::prefix("type", "a."),
                Filter::exact("type", "a.b"),
            ])],
            vec!["herald.events.*.a.b"],
        ),
    ];
    for (filters, expected) in cases {
        assert_eq!(filter_subjects(&filters), expected, "{filters:?}");
    }
}

#[test]
fn subject_coverage_follows_nats_wildcards() {
    assert!(subject_covers("a.>", "a.b.c"));
    assert!(subject_covers("a.*.c", "a.b.c"));
    assert!(!subject_covers("a.>", "a"));
    assert!(!subject_covers("a.*", "a.b.c"));
    assert!(subject_covers("a.>", "a.*.>"));
    assert!(!subject_covers("a.*", "a.>"));
}
