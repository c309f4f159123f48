//! Tests of how filter, retry and delivery flags become a request.

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
                delivery: DeliveryArgs::default(),
                consent: None,
                headers: Vec::new(),
                remove_headers: Vec::new(),
                client_certificate: ClientCertificateArgs::default(),
                remove_client_cert: false,
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

fn settings(
    rate_limit: Option<(u32, u32)>,
    max_in_flight: Option<u32>,
    ordering: pb::delivery_settings::Ordering,
    on_dead_letter: pb::delivery_settings::OnDeadLetter,
) -> pb::DeliverySettings {
    pb::DeliverySettings {
        rate_limit: rate_limit.map(|(per_second, burst)| pb::RateLimit { per_second, burst }),
        max_in_flight,
        ordering: ordering as i32,
        on_dead_letter: on_dead_letter as i32,
        ..Default::default()
    }
}

#[test]
fn no_delivery_flags_mean_no_settings_change() {
    assert_eq!(
        delivery_settings_of(&DeliveryArgs::default(), None).unwrap(),
        None
    );
}

#[test]
fn delivery_flags_become_settings_laid_over_the_current_ones() {
    use pb::delivery_settings::{ContentMode, OnDeadLetter, Ordering};
    let ordered = settings(Some((20, 5)), Some(4), Ordering::Key, OnDeadLetter::Skip);
    let cases = [
        // A rate without a burst asks for a burst as large as the rate (0).
        (
            DeliveryArgs {
                rate_limit: Some(Limit::At(50)),
                ..DeliveryArgs::default()
            },
            None,
            settings(
                Some((50, 0)),
                None,
                Ordering::Unspecified,
                OnDeadLetter::Unspecified,
            ),
        ),
        (
            DeliveryArgs {
                rate_limit: Some(Limit::At(50)),
                burst: Some(10),
                max_in_flight: Some(Limit::At(8)),
                ordering: Some(OrderingArg::Key),
                on_dead_letter: Some(OnDeadLetterArg::Skip),
                content_mode: None,
                parts: None,
            },
            None,
            settings(Some((50, 10)), Some(8), Ordering::Key, OnDeadLetter::Skip),
        ),
        // Flags not given keep the current values.
        (
            DeliveryArgs {
                max_in_flight: Some(Limit::At(16)),
                ..DeliveryArgs::default()
            },
            Some(ordered),
            settings(Some((20, 5)), Some(16), Ordering::Key, OnDeadLetter::Skip),
        ),
        // --burst alone changes the current limit's burst.
        (
            DeliveryArgs {
                burst: Some(40),
                ..DeliveryArgs::default()
            },
            Some(ordered),
            settings(Some((20, 40)), Some(4), Ordering::Key, OnDeadLetter::Skip),
        ),
        (
            DeliveryArgs {
                rate_limit: Some(Limit::Removed),
                max_in_flight: Some(Limit::Removed),
                ..DeliveryArgs::default()
            },
            Some(ordered),
            settings(None, None, Ordering::Key, OnDeadLetter::Skip),
        ),
        // Leaving key order resets what dead letters do, which only ordered subscriptions set.
        (
            DeliveryArgs {
                ordering: Some(OrderingArg::None),
                ..DeliveryArgs::default()
            },
            Some(ordered),
            settings(
                Some((20, 5)),
                Some(4),
                Ordering::None,
                OnDeadLetter::Unspecified,
            ),
        ),
        // The content mode changes alone, and stays when other flags change.
        (
            DeliveryArgs {
                content_mode: Some(ContentModeArg::Binary),
                ..DeliveryArgs::default()
            },
            Some(ordered),
            pb::DeliverySettings {
                content_mode: ContentMode::Binary as i32,
                ..ordered
            },
        ),
        (
            DeliveryArgs {
                max_in_flight: Some(Limit::At(16)),
                ..DeliveryArgs::default()
            },
            Some(pb::DeliverySettings {
                content_mode: ContentMode::Binary as i32,
                ..ordered
            }),
            pb::DeliverySettings {
                content_mode: ContentMode::Binary as i32,
                ..settings(Some((20, 5)), Some(16), Ordering::Key, OnDeadLetter::Skip)
            },
        ),
        (
            DeliveryArgs {
                content_mode: Some(ContentModeArg::Structured),
                ..DeliveryArgs::default()
            },
            Some(pb::DeliverySettings {
                content_mode: ContentMode::Binary as i32,
                ..ordered
            }),
            pb::DeliverySettings {
                content_mode: ContentMode::Structured as i32,
                ..ordered
            },
        ),
        // The parts are asked for at creation.
        (
            DeliveryArgs {
                parts: Some(4),
                ..DeliveryArgs::default()
            },
            None,
            pb::DeliverySettings {
                parts: 4,
                ..pb::DeliverySettings::default()
            },
        ),
    ];
    for (args, current, expected) in cases {
        assert_eq!(
            delivery_settings_of(&args, current).unwrap(),
            Some(expected),
            "{args:?} over {current:?}"
        );
    }
}

#[test]
fn burst_without_a_rate_limit_is_refused_naming_the_flag() {
    let burst_only = DeliveryArgs {
        burst: Some(5),
        ..DeliveryArgs::default()
    };
    let error = delivery_settings_of(&burst_only, None).unwrap_err();
    assert!(
        error.to_string().starts_with("--burst needs --rate-limit"),
        "{error}"
    );
    let removed = DeliveryArgs {
        rate_limit: Some(Limit::Removed),
        burst: Some(5),
        ..DeliveryArgs::default()
    };
    let error = delivery_settings_of(&removed, None).unwrap_err();
    assert!(
        error.to_string().starts_with("--burst needs a rate limit"),
        "{error}"
    );
}

#[test]
fn update_sends_delivery_settings_only_when_a_delivery_flag_is_given() {
    let update = |delivery: DeliveryArgs, current: Option<pb::Subscription>| {
        update_request(
            UpdateArgs {
                id: "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
                sink: None,
                description: Some("renamed".to_owned()),
                filters: FilterArgs::default(),
                clear_filters: false,
                expected_revision: None,
                retry: RetryArgs::default(),
                delivery,
                consent: None,
                headers: Vec::new(),
                remove_headers: Vec::new(),
                client_certificate: ClientCertificateArgs::default(),
                remove_client_cert: false,
            },
            current,
        )
        .unwrap()
    };
    let current = pb::Subscription {
        retry_policy: Some(pb::RetryPolicy {
            max_attempts: 3,
            ..Default::default()
        }),
        delivery: Some(settings(
            Some((20, 5)),
            None,
            pb::delivery_settings::Ordering::None,
            pb::delivery_settings::OnDeadLetter::Block,
        )),
        ..Default::default()
    };
    let described = update(DeliveryArgs::default(), None);
    assert_eq!((described.delivery, described.retry_policy), (None, None));
    let limited = update(
        DeliveryArgs {
            max_in_flight: Some(Limit::At(2)),
            ..DeliveryArgs::default()
        },
        Some(current),
    );
    assert_eq!(
        limited.retry_policy, None,
        "no retry flag, no policy change"
    );
    let delivery = limited.delivery.unwrap();
    assert_eq!(delivery.max_in_flight, Some(2));
    assert_eq!(
        delivery.rate_limit,
        Some(pb::RateLimit {
            per_second: 20,
            burst: 5
        })
    );
}

#[test]
fn header_flags_are_name_colon_value_and_a_malformed_one_is_refused_without_quoting_it() {
    let headers = headers_of(&[
        "X-Api-Key: k3y: with colon".to_owned(),
        "Authorization:Bearer abc".to_owned(),
    ])
    .unwrap();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|header| (header.name.as_str(), header.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("X-Api-Key", "k3y: with colon"),
            ("Authorization", "Bearer abc")
        ]
    );
    let refused = headers_of(&["X-Api-Key=s3cr3t".to_owned()]).unwrap_err();
    assert!(!format!("{refused:#}").contains("s3cr3t"), "{refused:#}");
}
