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

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id, "tenant").unwrap()
}

#[test]
fn a_tenant_has_a_root_of_its_own_and_the_default_tenant_keeps_herald_events() {
    assert_eq!(events_root(&TenantId::default_tenant()), "herald.events");
    assert_eq!(events_root(&tenant("acme")), "herald.t.acme");
    assert_eq!(events_wildcard(&tenant("acme")), "herald.t.acme.>");
    assert_eq!(
        events_wildcard(&TenantId::default_tenant()),
        EVENTS_WILDCARD
    );
    assert_eq!(
        tenant_event_subject(&tenant("acme"), 7, "com.shop.order.created").unwrap(),
        "herald.t.acme.7.com.shop.order.created"
    );
    // The default tenant's events stay where they always were.
    assert_eq!(
        tenant_event_subject(&TenantId::default_tenant(), 7, "com.shop.order.created"),
        event_subject(7, "com.shop.order.created")
    );
    // The stream's two event subjects cover every tenant's events and nothing else of Herald's.
    assert!(subject_covers(
        TENANTS_WILDCARD,
        &tenant_event_subject(&tenant("acme"), 0, "a").unwrap()
    ));
    assert!(!subject_covers(TENANTS_WILDCARD, "herald.events.0.a"));
    assert!(!subject_covers(EVENTS_WILDCARD, "herald.t.acme.0.a"));
    // A longest tenant id still leaves room: the subject limit counts the whole subject.
    let longest = tenant(&"a".repeat(crate::credential::MAX_TENANT_LEN));
    let fits = "x".repeat(300);
    assert!(tenant_event_subject(&longest, 15, &fits).unwrap().len() <= MAX_SUBJECT_LEN);
    assert_eq!(tenant_event_subject(&longest, 15, &"x".repeat(1000)), None);
}

#[test]
fn event_types_are_read_back_from_either_root() {
    for subject in [
        "herald.events.3.com.shop.order.created",
        "herald.t.acme.3.com.shop.order.created",
        "herald.t.a-1.15.com.shop.order.created",
    ] {
        assert_eq!(
            event_type_of(subject).as_deref(),
            Some("com.shop.order.created"),
            "{subject}"
        );
    }
    assert_eq!(
        event_type_of("herald.t.acme.0.a_20b._2A").as_deref(),
        Some("a b.*")
    );
    for not_an_event in [
        "herald.t.acme",
        "herald.t.acme.3",
        "herald.t..3.a",
        "herald.redeliver.sub_01JA0000000000000000000000",
        "herald.tx.acme.3.a",
        "herald.events.3",
    ] {
        assert_eq!(event_type_of(not_an_event), None, "{not_an_event}");
    }
    assert_eq!(
        split_root("herald.t.acme.3.a.b"),
        Some(("herald.t.acme", "3.a.b"))
    );
    assert_eq!(
        split_root("herald.events.3.a"),
        Some(("herald.events", "3.a"))
    );
}

proptest! {
    #[test]
    fn tenant_type_encoding_round_trips(event_type in "\\PC{0,40}", id in "[a-z0-9][a-z0-9-]{0,62}") {
        let subject = tenant_event_subject(&tenant(&id), 9, &event_type).unwrap();
        prop_assert!(!subject.contains(['*', '>', ' ', '\t']));
        prop_assert!(subject.split('.').all(|token| !token.is_empty()));
        prop_assert_eq!(event_type_of(&subject), Some(event_type));
        prop_assert_eq!(tenant_of(&subject, None), Some(id.as_str()));
    }
}

#[test]
fn an_events_tenant_is_its_subjects_and_a_disagreeing_header_makes_it_nobodys() {
    let cases = [
        // A tenant's root: the subject is the proof; the header may only agree.
        ("herald.t.acme.0.a", None, Some("acme")),
        ("herald.t.acme.0.a", Some("acme"), Some("acme")),
        ("herald.t.acme.0.a", Some("globex"), None),
        ("herald.t.acme.0.a", Some("default"), None),
        // The default root: the header (ingest's, or one stored before tenants had subjects),
        // none meaning the default tenant.
        ("herald.events.0.a", None, Some("default")),
        ("herald.events.0.a", Some("acme"), Some("acme")),
        // No events subject: no tenant.
        (
            "herald.redeliver.sub_01JA0000000000000000000000",
            None,
            None,
        ),
        ("herald.audit.acme", Some("acme"), None),
    ];
    for (subject, header, expected) in cases {
        assert_eq!(tenant_of(subject, header), expected, "{subject} {header:?}");
    }
}

#[test]
fn a_tenants_filter_subjects_lie_under_its_root_only() {
    let acme = tenant("acme");
    let cases: Vec<(Vec<Filter>, Vec<&str>)> = vec![
        (vec![], vec!["herald.t.acme.>"]),
        (
            vec![Filter::exact("type", "com.shop.order")],
            vec!["herald.t.acme.*.com.shop.order"],
        ),
        (
            vec![Filter::prefix("type", "com.shop.")],
            vec!["herald.t.acme.*.com.shop.>"],
        ),
        (vec![Filter::prefix("type", "com")], vec!["herald.t.acme.>"]),
        (
            vec![Filter::Any(vec![
                Filter::exact("type", "a.b"),
                Filter::prefix("type", "a."),
                Filter::exact("type", "c"),
            ])],
            vec!["herald.t.acme.*.a.>", "herald.t.acme.*.c"],
        ),
        (
            vec![Filter::Sql("type = 'a'".to_owned())],
            vec!["herald.t.acme.>"],
        ),
    ];
    for (filters, expected) in cases {
        let subjects = tenant_filter_subjects(&acme, &filters);
        assert_eq!(subjects, expected, "{filters:?}");
        for subject in &subjects {
            assert!(!subject_covers(subject, "herald.events.0.a"), "{subject}");
            assert!(!subject_covers(subject, "herald.t.globex.0.a"), "{subject}");
        }
    }
    // The default tenant's subjects are exactly what they were before tenants had subjects, so
    // its stored consumers do not change.
    let filters = vec![Filter::exact("type", "com.shop.order")];
    assert_eq!(
        tenant_filter_subjects(&TenantId::default_tenant(), &filters),
        filter_subjects(&filters)
    );
    assert_eq!(
        filter_subjects(&filters),
        ["herald.events.*.com.shop.order"]
    );
}

proptest! {
    #[test]
    fn a_tenants_filter_subjects_cover_its_matching_events(event_type in "[a-c]{1,2}(\\.[a-c]{1,2}){0,2}") {
        let acme = tenant("acme");
        let filters = vec![Filter::exact("type", &event_type)];
        let stored = tenant_event_subject(&acme, 11, &event_type).unwrap();
        let subjects = tenant_filter_subjects(&acme, &filters);
        prop_assert!(subjects.iter().any(|s| subject_covers(s, &stored)));
        let other = tenant_event_subject(&tenant("globex"), 11, &event_type).unwrap();
        prop_assert!(!subjects.iter().any(|s| subject_covers(s, &other)));
    }
}
