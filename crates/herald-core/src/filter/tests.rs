//! Filter tests: each dialect on a table of events, validation messages, and boolean laws over
//! attribute, `sql` and `cel` leaves, including leaves that fail to evaluate.

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

fn check_match(filter: &Filter, event: &Event) -> Match {
    compile(std::slice::from_ref(filter))
        .unwrap_or_else(|err| panic!("{filter:?} should compile: {err}"))
        .matches(event)
}

fn matches(filter: &Filter, event: &Event) -> bool {
    check_match(filter, event).matched
}

/// Three-valued truth of a filter on an event: `None` when it neither matches nor fails to
/// match (an expression failed to evaluate).
fn truth(filter: &Filter, event: &Event) -> Option<bool> {
    if matches(filter, event) {
        Some(true)
    } else if matches(&Filter::Not(Box::new(filter.clone())), event) {
        Some(false)
    } else {
        None
    }
}

fn kleene_all(values: &[Option<bool>]) -> Option<bool> {
    if values.contains(&Some(false)) {
        Some(false)
    } else if values.contains(&None) {
        None
    } else {
        Some(true)
    }
}

fn kleene_any(values: &[Option<bool>]) -> Option<bool> {
    if values.contains(&Some(true)) {
        Some(true)
    } else if values.contains(&None) {
        None
    } else {
        Some(false)
    }
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
        assert_eq!(matches(&filter, &plain), expect_plain, "{json} on plain");
        assert_eq!(
            matches(&filter, &with_ext),
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
        Just(Filter::Sql("type LIKE 'com.shop.%'".to_owned())),
        Just(Filter::Sql("source = '/bank'".to_owned())),
        // Fails on the test event: it has no `subject`.
        Just(Filter::Sql("subject = 'x'".to_owned())),
        Just(Filter::Cel("data.total > 100".to_owned())),
        Just(Filter::Cel(r#"type.endsWith(".deleted")"#.to_owned())),
        // Fails on the test event: `data` has no `missing` key.
        Just(Filter::Cel("data.missing == 1".to_owned())),
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

fn proptest_event() -> Event {
    event(r#","data":{"total":250}"#)
}

proptest! {
    #[test]
    fn composition_follows_three_valued_boolean_logic(filters in prop::collection::vec(tree(), 1..4)) {
        let event = proptest_event();
        let results: Vec<Option<bool>> = filters.iter().map(|f| truth(f, &event)).collect();
        prop_assert_eq!(truth(&Filter::All(filters.clone()), &event), kleene_all(&results));
        prop_assert_eq!(truth(&Filter::Any(filters.clone()), &event), kleene_any(&results));
        let list_matches = compile(&filters).unwrap().matches(&event).matched;
        prop_assert_eq!(list_matches, kleene_all(&results) == Some(true));
        for (filter, result) in filters.iter().zip(&results) {
            prop_assert_eq!(truth(&Filter::Not(Box::new(filter.clone())), &event), result.map(|r| !r));
        }
    }

    #[test]
    fn pre_filter_subjects_never_exclude_a_matching_event(filters in prop::collection::vec(tree(), 1..3)) {
        let event = proptest_event();
        if compile(&filters).unwrap().matches(&event).matched {
            let stored = crate::subject::event_subject(5, event.ty()).unwrap();
            let subjects = crate::subject::filter_subjects(&filters);
            prop_assert!(subjects.iter().any(|s| crate::subject::subject_covers(s, &stored)), "{:?}", subjects);
        }
    }
}

#[test]
fn sql_filters_match_as_cesql_says() {
    let plain = event("");
    let with_ext = event(r#","subject":"order-7","region":"eu","priority":5,"vip":true"#);
    let cases = [
        ("type LIKE 'com.shop.%'", true, true),
        (
            "type = 'com.shop.order.created' AND source LIKE '%/eu'",
            true,
            true,
        ),
        ("region = 'eu'", false, true),
        ("priority > 3 AND vip", false, true),
        ("EXISTS region", false, true),
        ("NOT EXISTS region", true, false),
        ("UPPER(subject) = 'ORDER-7'", false, true),
        ("specversion = '1.0'", true, true),
    ];
    for (expression, expect_plain, expect_ext) in cases {
        let filter = Filter::Sql(expression.to_owned());
        assert_eq!(
            matches(&filter, &plain),
            expect_plain,
            "{expression} on plain"
        );
        assert_eq!(
            matches(&filter, &with_ext),
            expect_ext,
            "{expression} with extensions"
        );
    }
}

#[test]
fn cel_filters_read_attributes_and_json_data() {
    let json = event(
        r#","region":"eu","priority":5,"datacontenttype":"application/json","data":{"total":150,"items":[{"sku":"a"},{"sku":"b"}]}"#,
    );
    let cases = [
        (r#"type.startsWith("com.shop.") && data.total > 100"#, true),
        ("data.total > 200", false),
        ("data.total > 100.5", true),
        (r#"data.items.exists(item, item.sku == "b")"#, true),
        ("size(data.items) == 2", true),
        (r#"region == "eu" && priority >= 5"#, true),
        (r#"source.matches("^/shop/")"#, true),
        ("has(data.discount)", false),
        (r#"specversion == "1.0" && id == "1""#, true),
    ];
    for (expression, expected) in cases {
        let filter = Filter::Cel(expression.to_owned());
        let result = check_match(&filter, &json);
        assert_eq!(
            result.matched, expected,
            "{expression}: {:?}",
            result.errors
        );
        assert!(
            result.errors.is_empty(),
            "{expression}: {:?}",
            result.errors
        );
    }
}

#[test]
fn cel_without_json_data_does_not_match_and_reports_an_error() {
    let text = event(r#","datacontenttype":"text/plain","data":"total=150""#);
    let binary = event(r#","datacontenttype":"application/octet-stream","data_base64":"AAE=""#);
    let without_data = event("");
    for event in [&text, &binary, &without_data] {
        let result = check_match(&Filter::Cel("data.total > 100".to_owned()), event);
        assert!(!result.matched, "{event:?}");
        assert_eq!(result.errors.len(), 1, "{event:?}");
        assert_eq!(result.errors[0].dialect, Dialect::Cel);
        // Attributes stay available.
        assert!(matches(
            &Filter::Cel(r#"type == "com.shop.order.created""#.to_owned()),
            event
        ));
    }
}

#[test]
fn evaluation_errors_never_match_even_under_not() {
    let plain = event("");
    let cases = [
        Filter::Sql("subject = 'x'".to_owned()),
        Filter::Sql("1 / 0 = 1".to_owned()),
        Filter::Cel("missing == 1".to_owned()),
        Filter::Cel(r#"type + 1 == 2"#.to_owned()),
        Filter::Cel("type".to_owned()),
    ];
    for filter in cases {
        let result = check_match(&filter, &plain);
        assert!(
            !result.matched && result.errors.len() == 1,
            "{filter:?}: {result:?}"
        );
        let negated = check_match(&Filter::Not(Box::new(filter.clone())), &plain);
        assert!(
            !negated.matched && negated.errors.len() == 1,
            "not {filter:?}: {negated:?}"
        );
    }
}

#[test]
fn a_deciding_earlier_filter_spares_later_expressions() {
    let text = event(r#","datacontenttype":"text/plain","data":"hello""#);
    let filters = vec![
        Filter::exact("datacontenttype", "application/json"),
        Filter::Cel("data.total > 100".to_owned()),
    ];
    let result = compile(&filters).unwrap().matches(&text);
    assert_eq!(
        result,
        Match {
            matched: false,
            errors: Vec::new()
        }
    );
}

#[test]
fn invalid_expressions_are_refused_with_dialect_position_and_problem() {
    let cases = [
        (
            r#"[{"sql":"type = 'a' AND (source = 'b'"}]"#,
            "filters[0].sql: at position ",
        ),
        (
            r#"[{"exact":{"type":"a"}},{"any":[{"sql":"type LIKE"}]}]"#,
            "filters[1].any[0].sql: at position ",
        ),
        (
            r#"[{"cel":"type.startsWith(\"a\" &&"}]"#,
            "filters[0].cel: at position ",
        ),
        (
            r#"[{"not":{"cel":"data.total >"}}]"#,
            "filters[0].not.cel: at position ",
        ),
    ];
    for (json, expected) in cases {
        let filters: Vec<Filter> = serde_json::from_str(json).unwrap();
        let error = validate(&filters).unwrap_err().to_string();
        assert!(error.starts_with(expected), "{json}: got `{error}`");
    }
    let positions = [
        (Filter::Sql("type = 'a' AND (source = 'b'".to_owned()), 28),
        (Filter::Cel("data.total >".to_owned()), 12),
        (Filter::Cel("type == 'a' )".to_owned()), 12),
        (
            Filter::Cel("type == 'a' &&\n  source == 'b' )".to_owned()),
            31,
        ),
    ];
    for (filter, position) in positions {
        let reason = validate(std::slice::from_ref(&filter)).unwrap_err().reason;
        let expected = format!("at position {position}: ");
        assert!(reason.starts_with(&expected), "{filter:?}: got `{reason}`");
    }
    let long = Filter::Sql(format!("type = '{}'", "a".repeat(MAX_EXPRESSION_LEN)));
    assert!(
        validate(&[long])
            .unwrap_err()
            .reason
            .contains("longer than")
    );
}

#[test]
fn expression_dialects_use_the_specification_json_encoding() {
    let filters = vec![
        Filter::Sql("type = 'a'".to_owned()),
        Filter::Cel("data.x == 1".to_owned()),
    ];
    let json = serde_json::to_string(&filters).unwrap();
    assert_eq!(json, r#"[{"sql":"type = 'a'"},{"cel":"data.x == 1"}]"#);
    assert_eq!(serde_json::from_str::<Vec<Filter>>(&json).unwrap(), filters);
}

#[test]
fn expression_filters_leave_the_pre_filter_unconstrained() {
    let filters = [Filter::Sql("type = 'a'".to_owned())];
    assert_eq!(
        crate::subject::filter_subjects(&filters),
        vec![crate::subject::EVENTS_WILDCARD.to_owned()]
    );
    let narrowed = [
        Filter::exact("type", "a.b"),
        Filter::Cel("data.x == 1".to_owned()),
    ];
    assert_eq!(
        crate::subject::filter_subjects(&narrowed),
        vec!["herald.events.*.a.b".to_owned()]
    );
}

#[test]
fn calls_of_unknown_functions_are_refused_before_they_are_stored() {
    // Issue 14: `sql:FOO(type)` was stored and then silently never matched.
    let cases = [
        (
            Filter::Sql("FOO(type)".to_owned()),
            "filters[0].sql: at position 0: unknown function FOO",
        ),
        (
            Filter::Sql("type = 'a' AND abs(1, 2) = 1".to_owned()),
            "filters[0].sql: at position 15: function ABS takes 1 argument, not 2 arguments",
        ),
        (
            Filter::Sql("'é' = subject OR LEFT(type) = 'a'".to_owned()),
            "filters[0].sql: at position 17: function LEFT takes 2 arguments, not 1 argument",
        ),
        (
            Filter::Cel("FOO(type)".to_owned()),
            "filters[0].cel: at position 0: unknown function `FOO`",
        ),
        (
            Filter::Cel("type == 'a' && type.bar()".to_owned()),
            "filters[0].cel: at position 20: unknown function `bar`",
        ),
        (
            Filter::Cel("data.items.exists(i, lenght(i) > 1)".to_owned()),
            "filters[0].cel: at position 21: unknown function `lenght`",
        ),
    ];
    for (filter, expected) in cases {
        let error = validate(std::slice::from_ref(&filter))
            .unwrap_err()
            .to_string();
        assert_eq!(error, expected, "{filter:?}");
    }
    let nested = Filter::Any(vec![
        Filter::exact("type", "a"),
        Filter::Not(Box::new(Filter::Sql("NOPE() = 1".to_owned()))),
    ]);
    let error = validate(&[Filter::exact("type", "a"), nested]).unwrap_err();
    assert_eq!(error.path, "filters[1].any[1].not.sql");
}

#[test]
fn cel_variables_that_no_event_binds_are_refused() {
    let never_bound = [
        ("Type == 'a'", 0, "Type"),
        ("type == 'a' && data_base64 != ''", 15, "data_base64"),
        ("'é' == partition_key", 7, "partition_key"),
    ];
    for (expression, position, name) in never_bound {
        let reason = validate(&[Filter::Cel(expression.to_owned())])
            .unwrap_err()
            .reason;
        let expected = format!("at position {position}: `{name}` is never bound");
        assert!(
            reason.starts_with(&expected),
            "{expression}: got `{reason}`"
        );
    }
    // Attributes, extensions (any lower-case name may be one), `data`, comprehension variables,
    // type names and namespaced functions all bind; reading them may still fail on an event.
    let bindable = [
        "specversion == '1.0' && id != '' && source != '' && type != ''",
        "datacontenttype == 'x' || dataschema == 'x' || subject == 'x' || time == 'x'",
        "region == 'eu' && priority > 3 && missing == 1",
        "data.items.exists(Item, Item.sku_id == 'b') && data.items.all(i, has(i.sku))",
        "data.items.map(x, x.sku).filter(y, y != '') == ['a']",
        "type(priority) == int && null_type == type(null) && google.protobuf.Timestamp != int",
        "optional.of(1).hasValue() && optional.none() == optional.none()",
        "size(type) > 1 && type.size() > 1 && {'a': 1}.size() == 1 && dyn(1) == 1",
        "source.matches('^/') && type.startsWith('a') && type.endsWith('a') && type.contains('a')",
        "int('1') == 1 && uint(1) == 1u && double(1) == 1.0 && string(1) == '1' && bool('true')",
    ];
    for expression in bindable {
        let filter = Filter::Cel(expression.to_owned());
        assert_eq!(
            validate(std::slice::from_ref(&filter)),
            Ok(()),
            "{expression}"
        );
    }
}

#[test]
fn stored_filters_that_fail_the_static_checks_still_compile() {
    // Stored before the checks existed: they compile, and fail on every event as before.
    let filters = [
        Filter::Sql("FOO(type)".to_owned()),
        Filter::Cel("Nope == 1".to_owned()),
    ];
    assert!(validate(&filters).is_err());
    let result = compile(&filters).unwrap().matches(&event(""));
    assert!(!result.matched);
    assert_eq!(result.errors.len(), 2, "{result:?}");
}

/// A step's path, dialect, depth, outcome, value and error.
type StepRow<'s> = (
    &'s str,
    &'s str,
    usize,
    Outcome,
    Option<&'s str>,
    Option<&'s str>,
);

#[test]
fn explanations_say_which_filter_decided_and_why() {
    let event = event(r#","region":"eu","data":{"total":50}"#);
    let filters = [
        parse(r#"{"exact":{"type":"com.shop.order.created","region":"eu"}}"#),
        parse(
            r#"{"any":[{"sql":"subject = 'x'"},{"prefix":{"source":"/shop/"}},{"sql":"1 = 1"}]}"#,
        ),
        Filter::Cel("data.total > 100".to_owned()),
        Filter::Sql("type LIKE 'com.%'".to_owned()),
    ];
    let compiled = compile(&filters).unwrap();
    let explanation = compiled.explain(&event);
    assert!(!explanation.matched);
    assert_eq!(explanation.decided_by.as_deref(), Some("filters[2]"));
    let steps: Vec<StepRow<'_>> = explanation
        .steps
        .iter()
        .map(|step| {
            (
                step.path.as_str(),
                step.dialect,
                step.depth,
                step.outcome,
                step.value.as_deref(),
                step.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (
                "filters[0]",
                "exact",
                0,
                Outcome::Matched,
                Some(r#"{"region":"eu","type":"com.shop.order.created"}"#),
                None
            ),
            ("filters[1]", "any", 0, Outcome::Matched, None, None),
            (
                "filters[1].any[0]",
                "sql",
                1,
                Outcome::Unknown,
                Some("false"),
                Some("missing_attribute: missing attribute 'subject'")
            ),
            (
                "filters[1].any[1]",
                "prefix",
                1,
                Outcome::Matched,
                Some(r#"{"source":"/shop/eu"}"#),
                None
            ),
            ("filters[1].any[2]", "sql", 1, Outcome::Skipped, None, None),
            (
                "filters[2]",
                "cel",
                0,
                Outcome::NotMatched,
                Some("false"),
                None
            ),
            ("filters[3]", "sql", 0, Outcome::Skipped, None, None),
        ]
    );
    // The explanation agrees with matching, errors included.
    assert_eq!(compiled.matches(&event).matched, explanation.matched);
}

#[test]
fn an_explanation_names_a_failed_expression_when_nothing_else_decided() {
    let plain = event("");
    let filters = [
        Filter::Cel("data.total > 1".to_owned()),
        Filter::exact("type", "com.shop.order.created"),
    ];
    let explanation = compile(&filters).unwrap().explain(&plain);
    assert!(!explanation.matched);
    assert_eq!(explanation.decided_by.as_deref(), Some("filters[0]"));
    assert_eq!(explanation.steps[0].outcome, Outcome::Unknown);
    assert!(explanation.steps[0].error.is_some());
    assert_eq!(explanation.steps[1].outcome, Outcome::Matched);

    let matching = compile(&filters[1..]).unwrap().explain(&plain);
    assert!(matching.matched);
    assert_eq!(matching.decided_by, None);
}

proptest! {
    #[test]
    fn explanations_agree_with_matching(filters in prop::collection::vec(tree(), 0..4)) {
        let event = proptest_event();
        let compiled = compile(&filters).unwrap();
        let explanation = compiled.explain(&event);
        prop_assert_eq!(explanation.matched, compiled.matches(&event).matched);
        let top_level = explanation.steps.iter().filter(|step| step.depth == 0).count();
        prop_assert_eq!(top_level, filters.len());
    }
}
