//! Tests of how filter flags become filters.

use herald_proto::v1 as pb;

use super::*;

fn filters_json(args: &FilterArgs) -> serde_json::Value {
    let filters: Vec<Filter> = filters_of(args)
        .unwrap()
        .iter()
        .map(|filter: &pb::Filter| Filter::try_from(filter).unwrap())
        .collect();
    serde_json::to_value(filters).unwrap()
}

#[test]
fn no_flags_mean_no_filters() {
    assert_eq!(filters_json(&FilterArgs::default()), serde_json::json!([]));
}

#[test]
fn one_type_is_an_exact_filter() {
    let args = FilterArgs {
        types: vec!["com.example.a".to_owned()],
        ..FilterArgs::default()
    };
    assert_eq!(
        filters_json(&args),
        serde_json::json!([{"exact": {"type": "com.example.a"}}])
    );
}

#[test]
fn several_types_and_prefixes_are_any_filters_combined_with_custom_ones() {
    let args = FilterArgs {
        types: vec!["a".to_owned(), "b".to_owned()],
        type_prefixes: vec!["com.".to_owned(), "org.".to_owned()],
        filters: vec![r#"{"exact":{"source":"/shop"}}"#.to_owned()],
    };
    assert_eq!(
        filters_json(&args),
        serde_json::json!([
            {"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]},
            {"any": [{"prefix": {"type": "com."}}, {"prefix": {"type": "org."}}]},
            {"exact": {"source": "/shop"}},
        ])
    );
}

#[test]
fn sql_and_cel_prefixes_give_expression_filters() {
    let args = FilterArgs {
        filters: vec![
            "sql: type LIKE 'com.%'".to_owned(),
            r#"cel:data.total > 100 && type.startsWith("com.")"#.to_owned(),
            r#"{"sql":"EXISTS subject"}"#.to_owned(),
        ],
        ..FilterArgs::default()
    };
    assert_eq!(
        filters_json(&args),
        serde_json::json!([
            {"sql": "type LIKE 'com.%'"},
            {"cel": r#"data.total > 100 && type.startsWith("com.")"#},
            {"sql": "EXISTS subject"},
        ])
    );
}

#[test]
fn malformed_filter_json_is_refused_naming_the_flag() {
    let args = FilterArgs {
        filters: vec![r#"{"exactly":{}}"#.to_owned()],
        ..FilterArgs::default()
    };
    let error = filters_of(&args).unwrap_err();
    assert!(
        error.to_string().starts_with("--filter `{\"exactly\":{}}`"),
        "{error}"
    );
}

#[test]
fn update_replaces_filters_only_when_asked() {
    let update = |types: Vec<String>, clear_filters: bool| {
        update_request(
            UpdateArgs {
                id: "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
                sink: None,
                description: None,
                filters: FilterArgs {
                    types,
                    ..FilterArgs::default()
                },
                clear_filters,
                expected_revision: None,
                retry: RetryArgs::default(),
            },
            None,
        )
        .unwrap()
    };
    assert!(!update(Vec::new(), false).replace_filters);
    let cleared = update(Vec::new(), true);
    assert!(cleared.replace_filters);
    assert!(cleared.filters.is_empty());
    let typed = update(vec!["a".to_owned()], false);
    assert!(typed.replace_filters);
    assert_eq!(typed.filters.len(), 1);
}

fn seconds(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

#[test]
fn no_retry_flags_mean_no_policy_change() {
    assert_eq!(retry_policy_of(&RetryArgs::default(), None), None);
}

#[test]
fn retry_flags_become_a_policy_leaving_the_rest_to_defaults() {
    let args = RetryArgs {
        max_attempts: Some(4),
        retry_delays: vec![
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(60),
        ],
        terminal_status: vec![400, 404],
        max_age: Some(std::time::Duration::from_secs(3600)),
        ..RetryArgs::default()
    };
    let policy = retry_policy_of(&args, None).unwrap();
    assert_eq!(
        policy,
        pb::RetryPolicy {
            backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
                delays: vec![seconds(1), seconds(60)],
            })),
            jitter_percent: None,
            max_attempts: 4,
            max_age: Some(seconds(3600)),
            terminal_status_codes: vec![400, 404],
        }
    );
}

#[test]
fn retry_flags_on_update_keep_the_current_values_they_do_not_name() {
    let current = pb::RetryPolicy {
        backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
            delays: vec![seconds(5)],
        })),
        jitter_percent: Some(0),
        max_attempts: 8,
        max_age: Some(seconds(60)),
        terminal_status_codes: vec![410],
    };
    let args = RetryArgs {
        retry_exponential: Some(crate::args::Exponential {
            initial: std::time::Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: std::time::Duration::from_secs(600),
        }),
        ..RetryArgs::default()
    };
    let policy = retry_policy_of(&args, Some(current.clone())).unwrap();
    assert_eq!(
        policy,
        pb::RetryPolicy {
            backoff: Some(pb::retry_policy::Backoff::Exponential(
                pb::ExponentialBackoff {
                    initial: Some(seconds(1)),
                    multiplier: 2.0,
                    max_delay: Some(seconds(600)),
                }
            )),
            ..current
        }
    );
}
