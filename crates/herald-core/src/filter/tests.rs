//! Filter tests: each dialect on a table of events, validation messages, and boolean laws.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::Event;

fn event(extra: &str) -> Event {
    let json = format!(
        r#"{{"specversion":"1.0","id":"1","source":"/shop/eu","type":"com.shop.order.created"{extra}}}"#
    );
    Event::from_structured(Bytes::from(json)).unwrap()
}

fn parse(json: &str) -> Filter {
    serde_json::from_str(json).unwrap()
}

#[test]
fn dialects_match_as_the_subscriptions_api_says() {
    let plain = event("");
    let with_ext = event(r#","region":"eu","priority":5"#);
    let cases = [
        (r#"{"exact":{"type":"com.shop.order.created"}}"#, true, true),
        (r#"{"exact":{"type":"com.shop.order"}}"#, false, false),
        (
            r#"{"exact":{"type":"com.shop.order.created","source":"/shop/us"}}"#,
            false,
            false,
        ),
        (r#"{"prefix":{"type":"com.shop."}}"#, true, true),
        (r#"{"prefix":{"type":"COM."}}"#, false, false),
        (
            r#"{"suffix":{"type":".created","source":"/eu"}}"#,
            true,
            true,
        ),
        (r#"{"exact":{"region":"eu"}}"#, false, true),
        (r#"{"exact":{"priority":"5"}}"#, false, true),
        (r#"{"not":{"exact":{"region":"eu"}}}"#, true, false),
        (
            r#"{"all":[{"prefix":{"type":"com."}},{"exact":{"region":"eu"}}]}"#,
            false,
            true,
        ),
        (
            r#"{"any":[{"exact":{"type":"x"}},{"suffix":{"source":"eu"}}]}"#,
            true,
            true,
        ),
        (r#"{"exact":{"specversion":"1.0"}}"#, true, true),
    ];
    for (json, expect_plain, expect_ext) in cases {
        let filter = parse(json);
        assert_eq!(
            filter.matches(plain.attributes()),
            expect_plain,
            "{json} on plain"
        );
        assert_eq!(
            filter.matches(with_ext.attributes()),
            expect_ext,
            "{json} with extensions"
        );
    }
}

#[test]
fn serde_form_is_the_specification_encoding() {
    let filter = Filter::Any(vec![
        Filter::exact("type", "a"),
        Filter::Not(Box::new(Filter::prefix("source", "/x"))),
    ]);
    let json = serde_json::to_string(&filter).unwrap();
    assert_eq!(
        json,
        r#"{"any":[{"exact":{"type":"a"}},{"not":{"prefix":{"source":"/x"}}}]}"#
    );
    assert_eq!(parse(&json), filter);
}

#[test]
fn validation_names_the_offending_expression() {
    let cases = [
        (
            r#"[{"exact":{}}]"#,
            "filters[0]: exact needs at least one attribute",
        ),
        (
            r#"[{"exact":{"type":""}}]"#,
            "filters[0].exact.type: value must not be empty",
        ),
        (
            r#"[{"prefix":{"Type":"a"}}]"#,
            "filters[0].prefix: attribute name `Type` must be",
        ),
        (
            r#"[{"exact":{"type":"a"}},{"any":[]}]"#,
            "filters[1]: any needs at least one filter",
        ),
        (
            r#"[{"all":[{"not":{"suffix":{"x":""}}}]}]"#,
            "filters[0].all[0].not.suffix.x: value must not be empty",
        ),
    ];
    for (json, expected) in cases {
        let filters: Vec<Filter> = serde_json::from_str(json).unwrap();
        let error = validate(&filters).unwrap_err().to_string();
        assert!(error.starts_with(expected), "{json}: got `{error}`");
    }
    let mut deep = Filter::exact("type", "a");
    for _ in 0..MAX_DEPTH + 1 {
        deep = Filter::Not(Box::new(deep));
    }
    assert!(
        validate(&[deep])
            .unwrap_err()
            .reason
            .contains("nested too deeply")
    );
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        Just(Filter::exact("type", "com.shop.order.created")),
        Just(Filter::exact("type", "other")),
        Just(Filter::prefix("source", "/shop")),
        Just(Filter::prefix("source", "/bank")),
        Just(Filter::Suffix(
            [("type".to_owned(), "created".to_owned())].into()
        )),
    ]
}

fn tree() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Filter::All),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Filter::Any),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

proptest! {
    #[test]
    fn composition_follows_boolean_logic(filters in prop::collection::vec(tree(), 1..4)) {
        let event = event("");
        let attributes = event.attributes();
        let results: Vec<bool> = filters.iter().map(|f| f.matches(attributes)).collect();
        prop_assert_eq!(Filter::All(filters.clone()).matches(attributes), results.iter().all(|r| *r));
        prop_assert_eq!(Filter::Any(filters.clone()).matches(attributes), results.iter().any(|r| *r));
        prop_assert_eq!(matches_all(&filters, attributes), results.iter().all(|r| *r));
        for (filter, result) in filters.iter().zip(&results) {
            prop_assert_eq!(Filter::Not(Box::new(filter.clone())).matches(attributes), !result);
        }
    }

    #[test]
    fn pre_filter_subjects_never_exclude_a_matching_event(filters in prop::collection::vec(tree(), 1..3)) {
        let event = event("");
        if matches_all(&filters, event.attributes()) {
            let stored = crate::subject::event_subject(5, event.ty()).unwrap();
            let subjects = crate::subject::filter_subjects(&filters);
            prop_assert!(subjects.iter().any(|s| crate::subject::subject_covers(s, &stored)), "{:?}", subjects);
        }
    }
}
