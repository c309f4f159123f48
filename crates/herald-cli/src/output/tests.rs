//! Snapshots of rendered subscriptions: key/value lines, the list table, JSON, filter and
//! delivery-settings summaries.

use herald_proto::v1 as pb;
use herald_proto::v1::delivery_settings::{ContentMode, OnDeadLetter, Ordering};

use super::*;

fn filter(json: &str) -> pb::Filter {
    let filter: Filter = serde_json::from_str(json).unwrap();
    pb::Filter::from(filter)
}

fn subscription(id: &str, sink: &str, filters: Vec<pb::Filter>) -> pb::Subscription {
    pb::Subscription {
        id: id.to_owned(),
        sink: sink.to_owned(),
        filters,
        secret: String::new(),
        description: "orders".to_owned(),
        create_time: Some(prost_types::Timestamp {
            seconds: 1_735_787_045,
            nanos: 123_000_000,
        }),
        update_time: Some(prost_types::Timestamp {
            seconds: 1_735_787_046,
            nanos: 0,
        }),
        revision: 3,
        protocol: "HTTP".to_owned(),
        ..Default::default()
    }
}

fn delivery(
    rate_limit: Option<(u32, u32)>,
    max_in_flight: Option<u32>,
    ordering: Ordering,
    on_dead_letter: OnDeadLetter,
) -> pb::DeliverySettings {
    pb::DeliverySettings {
        rate_limit: rate_limit.map(|(per_second, burst)| pb::RateLimit { per_second, burst }),
        max_in_flight,
        ordering: ordering as i32,
        on_dead_letter: on_dead_letter as i32,
        content_mode: ContentMode::Structured as i32,
        parts: 1,
    }
}

fn check_summary(filters: &[&str], expected: &str) {
    let filters: Vec<pb::Filter> = filters.iter().map(|json| filter(json)).collect();
    assert_eq!(filters_summary(&filters), expected);
}

#[test]
fn single_subscription_renders_as_aligned_key_value_lines() {
    let mut created = subscription(
        "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "https://example.com/hooks",
        vec![filter(
            r#"{"exact": {"type": "com.example.order.created"}}"#,
        )],
    );
    created.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
    let expected = "\
id           sub_01ARZ3NDEKTSV4RRFFQ69G5FAV
secret       whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
sink         https://example.com/hooks
filters      type=com.example.order.created
description  orders
revision     3
created      2025-01-02T03:04:05Z
updated      2025-01-02T03:04:06Z";
    assert_eq!(subscription_lines(&created), expected);
}

#[test]
fn list_renders_as_a_table_with_aligned_columns() {
    let mut limited = subscription(
        "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "https://example.com/hooks",
        vec![filter(r#"{"prefix": {"type": "com.example."}}"#)],
    );
    limited.delivery = Some(delivery(
        Some((50, 50)),
        Some(8),
        Ordering::Key,
        OnDeadLetter::Block,
    ));
    let mut unlimited = subscription("sub_01ARZ3NDEKTSV4RRFFQ69G5FAW", "http://a.io/", Vec::new());
    unlimited.delivery = Some(delivery(None, None, Ordering::None, OnDeadLetter::Block));
    let subscriptions = [limited, unlimited];
    let expected = "\
ID                              SINK                       FILTERS             DELIVERY                   CREATED
sub_01ARZ3NDEKTSV4RRFFQ69G5FAV  https://example.com/hooks  type^=com.example.  50/s, 8 in flight, by key  2025-01-02T03:04:05Z
sub_01ARZ3NDEKTSV4RRFFQ69G5FAW  http://a.io/               *                   -                          2025-01-02T03:04:05Z";
    assert_eq!(subscriptions_table(&subscriptions), expected);
}

#[test]
fn empty_list_renders_the_header_only() {
    assert_eq!(
        subscriptions_table(&[]),
        "ID  SINK  FILTERS  DELIVERY  CREATED"
    );
}

#[test]
fn subscription_json_uses_proto_field_names_and_spec_filters() {
    let subscription = subscription(
        "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "https://example.com/hooks",
        vec![filter(
            r#"{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]}"#,
        )],
    );
    let expected = json!({
        "id": "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "sink": "https://example.com/hooks",
        "filters": [{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]}],
        "description": "orders",
        "create_time": "2025-01-02T03:04:05.123Z",
        "update_time": "2025-01-02T03:04:06Z",
        "revision": "3",
        "protocol": "HTTP",
    });
    assert_eq!(subscription_json(&subscription), expected);
}

#[test]
fn subscription_json_includes_the_secret_only_when_present() {
    let mut subscription = subscription("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV", "http://a.io/", vec![]);
    assert!(subscription_json(&subscription).get("secret").is_none());
    subscription.secret = "whsec_x".to_owned();
    assert_eq!(subscription_json(&subscription)["secret"], "whsec_x");
}

#[test]
fn filter_summaries_show_structure() {
    check_summary(&[], "*");
    check_summary(&[r#"{"exact": {"type": "a"}}"#], "type=a");
    check_summary(
        &[r#"{"exact": {"type": "a", "source": "/s"}}"#],
        "source=/s & type=a",
    );
    check_summary(
        &[
            r#"{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]}"#,
            r#"{"prefix": {"type": "com."}}"#,
        ],
        "(type=a | type=b) & type^=com.",
    );
    check_summary(
        &[
            r#"{"any": [{"exact": {"type": "a", "source": "/s"}}, {"suffix": {"subject": ".pdf"}}]}"#,
        ],
        "(source=/s & type=a) | subject$=.pdf",
    );
    check_summary(&[r#"{"not": {"exact": {"type": "a"}}}"#], "!type=a");
    check_summary(
        &[r#"{"not": {"all": [{"exact": {"type": "a"}}, {"exact": {"source": "/s"}}]}}"#],
        "!(type=a & source=/s)",
    );
    check_summary(
        &[
            r#"{"sql": "source LIKE '/shop/%'"}"#,
            r#"{"not": {"cel": "data.total > 100"}}"#,
        ],
        "sql(source LIKE '/shop/%') & !cel(data.total > 100)",
    );
}

#[test]
fn table_pads_every_column_but_the_last() {
    let rows = vec![
        vec!["a".to_owned(), "bbb".to_owned()],
        vec!["cccc".to_owned(), "d".to_owned()],
    ];
    assert_eq!(table(&["X", "Y"], &rows), "X     Y\na     bbb\ncccc  d");
}

fn seconds(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

fn timestamp(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

#[test]
fn subscription_lines_show_state_policy_and_health_when_present() {
    let mut paused = subscription("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV", "http://a.io/", vec![]);
    paused.state = pb::SubscriptionState::Paused as i32;
    paused.state_reason = "paused by an operator".to_owned();
    paused.state_change_time = timestamp(1_735_787_100);
    paused.retry_policy = Some(pb::RetryPolicy {
        backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
            delays: vec![seconds(5), seconds(300)],
        })),
        jitter_percent: Some(20),
        max_attempts: 3,
        max_age: Some(seconds(3 * 24 * 3600)),
        terminal_status_codes: vec![400, 404],
    });
    paused.health = Some(pb::EndpointHealth {
        consecutive_failures: 2,
        failing_since: timestamp(1_735_787_000),
        last_success_time: None,
        last_failure_time: timestamp(1_735_787_050),
    });
    let lines = subscription_lines(&paused);
    let tail: Vec<&str> = lines.lines().skip(7).collect();
    assert_eq!(
        tail,
        [
            "state        paused since 2025-01-02T03:05:00Z",
            "retry        3 attempts, delays 5s 5m, jitter 20%, max age 3days, terminal 400 404",
            "health       2 consecutive failures since 2025-01-02T03:03:20Z, last success -",
        ]
    );
    let json = subscription_json(&paused);
    assert_eq!(json["state"], "SUBSCRIPTION_STATE_PAUSED");
    assert_eq!(
        json["retry_policy"],
        json!({
            "fixed": {"delays": ["5s", "300s"]},
            "jitter_percent": 20,
            "max_attempts": 3,
            "max_age": "259200s",
            "terminal_status_codes": [400, 404],
        })
    );
    assert_eq!(json["health"]["consecutive_failures"], "2");
}

#[test]
fn disabled_state_and_exponential_policy_read_naturally() {
    let mut disabled = subscription("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV", "http://a.io/", vec![]);
    disabled.state = pb::SubscriptionState::Disabled as i32;
    disabled.state_reason = "endpoint answered 410 gone".to_owned();
    disabled.state_change_time = timestamp(1_735_787_100);
    assert_eq!(
        state_summary(&disabled),
        "disabled since 2025-01-02T03:05:00Z: endpoint answered 410 gone"
    );
    let policy = pb::RetryPolicy {
        backoff: Some(pb::retry_policy::Backoff::Exponential(
            pb::ExponentialBackoff {
                initial: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 500_000_000,
                }),
                multiplier: 2.0,
                max_delay: Some(seconds(3600)),
            },
        )),
        jitter_percent: Some(0),
        max_attempts: 10,
        max_age: Some(seconds(3600)),
        terminal_status_codes: vec![],
    };
    assert_eq!(
        policy_summary(&policy),
        "10 attempts, exponential 1s 500ms x2 up to 1h, jitter 0%, max age 1h"
    );
    assert_eq!(policy_json(&policy)["exponential"]["initial"], "1.500s");
}

fn attempt(outcome: pb::AttemptOutcome, status_code: u32, class: &str) -> pb::Attempt {
    pb::Attempt {
        subscription_id: "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
        event_id: "e-1".to_owned(),
        attempt: 2,
        start_time: timestamp(1_735_787_045),
        duration: Some(prost_types::Duration {
            seconds: 0,
            nanos: 250_000_000,
        }),
        status_code,
        result_class: class.to_owned(),
        outcome: outcome as i32,
        next_attempt_time: (outcome == pb::AttemptOutcome::Retry).then_some(
            prost_types::Timestamp {
                seconds: 1_735_787_345,
                nanos: 0,
            },
        ),
        ..Default::default()
    }
}

#[test]
fn attempts_render_as_a_table() {
    let attempts = [
        attempt(pb::AttemptOutcome::Retry, 0, "timeout"),
        attempt(pb::AttemptOutcome::Delivered, 200, "2xx"),
    ];
    let expected = "\
TIME                  SUBSCRIPTION                    EVENT  #  STATUS/CLASS  DURATION  OUTCOME    NEXT
2025-01-02T03:04:05Z  sub_01ARZ3NDEKTSV4RRFFQ69G5FAV  e-1    2  timeout       250ms     retry      2025-01-02T03:09:05Z
2025-01-02T03:04:05Z  sub_01ARZ3NDEKTSV4RRFFQ69G5FAV  e-1    2  200           250ms     delivered  -";
    assert_eq!(attempts_table(&attempts), expected);
    let json = attempt_json(&attempts[0]);
    assert_eq!(json["outcome"], "ATTEMPT_OUTCOME_RETRY");
    assert_eq!(json["duration"], "0.250s");
}

#[test]
fn delivery_statuses_render_as_a_table() {
    let statuses = [
        pb::SubscriptionDeliveryStatus {
            subscription_id: "sub_A".to_owned(),
            state: pb::DeliveryState::Retrying as i32,
            last_attempt: Some(attempt(pb::AttemptOutcome::Retry, 503, "5xx")),
        },
        pb::SubscriptionDeliveryStatus {
            subscription_id: "sub_B".to_owned(),
            state: pb::DeliveryState::NotAttempted as i32,
            last_attempt: None,
        },
    ];
    let expected = "\
SUBSCRIPTION  STATE          ATTEMPTS  LAST STATUS  LAST ATTEMPT
sub_A         retrying       2         503          2025-01-02T03:04:05Z
sub_B         not attempted  0         -            -";
    assert_eq!(statuses_table(&statuses), expected);
    assert_eq!(
        statuses_json(&statuses)["statuses"][1]["state"],
        "DELIVERY_STATE_NOT_ATTEMPTED"
    );
}

#[test]
fn dead_letters_render_as_a_table() {
    let dead = pb::DeadLetter {
        sequence: 4,
        subscription_id: "sub_A".to_owned(),
        event_id: "e-1".to_owned(),
        event_type: "com.example.a".to_owned(),
        attempts: 8,
        reason: "exhausted".to_owned(),
        last_error: "503".to_owned(),
        dead_time: timestamp(1_735_787_045),
        ..Default::default()
    };
    let expected = "\
SEQ  EVENT  TYPE           ATTEMPTS  REASON     DEAD                  LAST ERROR
4    e-1    com.example.a  8         exhausted  2025-01-02T03:04:05Z  503";
    assert_eq!(dead_letters_table(&[dead]), expected);
}

#[test]
fn replay_progress_renders_as_lines() {
    let mut progress = pb::ReplayProgress {
        scanned: 100,
        replayed: 40,
        last_sequence: 120,
        done: false,
    };
    assert_eq!(
        progress_line(&progress, OutputFormat::Table),
        "scanned 100, replayed 40, at sequence 120"
    );
    progress.done = true;
    assert_eq!(
        progress_line(&progress, OutputFormat::Table),
        "done: scanned 100, replayed 40, at sequence 120"
    );
    assert_eq!(
        progress_line(&progress, OutputFormat::Json),
        r#"{"done":true,"last_sequence":"120","replayed":"40","scanned":"100"}"#
    );
}

#[test]
fn subscription_lines_and_json_show_delivery_settings() {
    let mut ordered = subscription("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV", "http://a.io/", vec![]);
    ordered.delivery = Some(delivery(
        Some((50, 10)),
        Some(8),
        Ordering::Key,
        OnDeadLetter::Skip,
    ));
    let lines = subscription_lines(&ordered);
    assert_eq!(
        lines.lines().last(),
        Some("delivery     rate 50/s burst 10, max in flight 8, ordered by key, dead letters skip")
    );
    assert_eq!(
        subscription_json(&ordered)["delivery"],
        json!({
            "rate_limit": {"per_second": 50, "burst": 10},
            "max_in_flight": 8,
            "ordering": "ORDERING_KEY",
            "on_dead_letter": "ON_DEAD_LETTER_SKIP",
            "content_mode": "CONTENT_MODE_STRUCTURED",
            "parts": 1,
        })
    );

    let mut split = ordered.clone();
    if let Some(delivery) = split.delivery.as_mut() {
        delivery.parts = 4;
    }
    assert_eq!(
        subscription_lines(&split).lines().last(),
        Some(
            "delivery     rate 50/s burst 10, max in flight 8, ordered by key, dead letters skip, in 4 parts"
        )
    );
    assert_eq!(subscription_json(&split)["delivery"]["parts"], 4);
    assert_eq!(
        delivery_brief(split.delivery.as_ref()),
        "50/s burst 10, 8 in flight, by key (skip), 4 parts"
    );

    let mut unordered = subscription("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV", "http://a.io/", vec![]);
    unordered.delivery = Some(delivery(None, None, Ordering::None, OnDeadLetter::Block));
    assert_eq!(
        subscription_lines(&unordered).lines().last(),
        Some("delivery     no rate limit, default max in flight, unordered")
    );
    assert_eq!(
        subscription_json(&unordered)["delivery"],
        json!({
            "rate_limit": null,
            "max_in_flight": null,
            "ordering": "ORDERING_NONE",
            "on_dead_letter": "ON_DEAD_LETTER_BLOCK",
            "content_mode": "CONTENT_MODE_STRUCTURED",
            "parts": 1,
        })
    );

    let mut binary = subscription("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV", "http://a.io/", vec![]);
    binary.delivery = Some(pb::DeliverySettings {
        content_mode: ContentMode::Binary as i32,
        ..delivery(None, None, Ordering::None, OnDeadLetter::Block)
    });
    assert_eq!(
        subscription_lines(&binary).lines().last(),
        Some("delivery     no rate limit, default max in flight, unordered, binary mode")
    );
    assert_eq!(
        subscription_json(&binary)["delivery"]["content_mode"],
        "CONTENT_MODE_BINARY"
    );
}

#[test]
fn delivery_briefs_name_only_what_differs_from_the_defaults() {
    let cases = [
        (None, "-"),
        (
            Some(delivery(None, None, Ordering::None, OnDeadLetter::Block)),
            "-",
        ),
        (
            Some(delivery(
                Some((50, 10)),
                None,
                Ordering::None,
                OnDeadLetter::Block,
            )),
            "50/s burst 10",
        ),
        (
            Some(delivery(None, Some(4), Ordering::Key, OnDeadLetter::Skip)),
            "4 in flight, by key (skip)",
        ),
        (
            Some(delivery(
                None,
                None,
                Ordering::Key,
                OnDeadLetter::Unspecified,
            )),
            "by key",
        ),
        (
            Some(pb::DeliverySettings {
                content_mode: ContentMode::Binary as i32,
                ..delivery(Some((5, 5)), None, Ordering::None, OnDeadLetter::Block)
            }),
            "5/s, binary",
        ),
    ];
    for (settings, expected) in cases {
        assert_eq!(delivery_brief(settings.as_ref()), expected, "{settings:?}");
    }
}

fn test_sent(status_code: u32, class: &str, body: &str) -> pb::SendTestEventResponse {
    let mut attempt = attempt(pb::AttemptOutcome::Test, status_code, class);
    attempt.event_id = "test_01J0".to_owned();
    attempt.event_type = "dev.herald.test".to_owned();
    attempt.attempt = 1;
    attempt.response_body = body.to_owned();
    attempt.response_headers = [
        ("content-type".to_owned(), "text/plain".to_owned()),
        ("x-request-id".to_owned(), "req-7".to_owned()),
    ]
    .into();
    pb::SendTestEventResponse {
        attempt: Some(attempt),
        event: br#"{"id":"test_01J0","heraldtest":true}"#.to_vec(),
        recorded: true,
    }
}

#[test]
fn a_test_send_renders_the_endpoints_status_headers_and_body() {
    let expected = "\
sent test event test_01J0 (dev.herald.test) to sub_01ARZ3NDEKTSV4RRFFQ69G5FAV
status 500 (5xx) in 250ms
content-type: text/plain
x-request-id: req-7

database unavailable";
    let sent = test_sent(500, "5xx", "database unavailable");
    assert_eq!(test_send_lines(&sent), expected);
    let json = test_send_json(&sent);
    assert_eq!(json["attempt"]["outcome"], "ATTEMPT_OUTCOME_TEST");
    assert_eq!(json["attempt"]["status_code"], 500);
    assert_eq!(json["event"]["heraldtest"], true);
    assert_eq!(json["recorded"], true);
}

#[test]
fn a_test_send_without_an_answer_says_why_and_a_long_body_is_cut() {
    let mut sent = test_sent(0, "connect", "");
    sent.attempt.as_mut().unwrap().error = "connection refused".to_owned();
    sent.attempt.as_mut().unwrap().response_headers.clear();
    sent.recorded = false;
    assert_eq!(
        test_send_lines(&sent),
        "\
sent test event test_01J0 (dev.herald.test) to sub_01ARZ3NDEKTSV4RRFFQ69G5FAV
no answer: connect after 250ms: connection refused
warning: the attempt could not be stored in the attempt log"
    );
    let long = "x".repeat(TEST_BODY_SHOWN + 1);
    let lines = test_send_lines(&test_sent(200, "2xx", &long));
    assert!(lines.ends_with(&format!("{} [...]", "x".repeat(TEST_BODY_SHOWN))));
}
