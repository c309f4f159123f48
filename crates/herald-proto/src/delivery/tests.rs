//! Tests of the reliable-delivery conversions: policy and delivery-settings defaults and round
//! trips, the fields named by errors, states, attempts and dead letters.

use std::time::Duration;

use bytes::Bytes;
use time::macros::datetime;

use super::*;

fn seconds(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

fn check_refused(policy: pb::RetryPolicy, field: &str, reason: &str) {
    let error = retry_policy_from_pb(&policy).unwrap_err();
    assert_eq!(
        (error.field.as_str(), error.reason.as_str()),
        (field, reason)
    );
}

#[test]
fn empty_policy_is_the_standard_policy() {
    let policy = retry_policy_from_pb(&pb::RetryPolicy::default()).unwrap();
    assert_eq!(policy, RetryPolicy::standard());
}

#[test]
fn unset_fields_take_standard_values_next_to_set_ones() {
    let policy = retry_policy_from_pb(&pb::RetryPolicy {
        backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
            delays: vec![seconds(1), seconds(5)],
        })),
        max_attempts: 3,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        policy.backoff,
        Backoff::Fixed {
            delays: vec![Duration::from_secs(1), Duration::from_secs(5)]
        }
    );
    assert_eq!(policy.max_attempts, 3);
    assert_eq!(policy.jitter_percent, 20);
    assert_eq!(policy.max_age, Duration::from_secs(3 * 24 * 3600));
}

#[test]
fn explicit_zero_jitter_is_kept() {
    let policy = retry_policy_from_pb(&pb::RetryPolicy {
        jitter_percent: Some(0),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(policy.jitter_percent, 0);
}

#[test]
fn policies_round_trip_through_the_wire_form() {
    let exponential = RetryPolicy {
        backoff: Backoff::Exponential {
            initial: Duration::from_millis(1500),
            multiplier: 2.5,
            max_delay: Duration::from_secs(3600),
        },
        jitter_percent: 0,
        max_attempts: 12,
        max_age: Duration::from_secs(7200),
        terminal_status_codes: vec![400, 404],
    };
    for policy in [RetryPolicy::standard(), exponential] {
        let wire = retry_policy_to_pb(&policy);
        assert_eq!(retry_policy_from_pb(&wire).unwrap(), policy);
    }
}

#[test]
fn negative_delays_are_refused_naming_their_index() {
    check_refused(
        pb::RetryPolicy {
            backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
                delays: vec![seconds(1), seconds(2), seconds(-3)],
            })),
            ..Default::default()
        },
        "retry_policy.fixed.delays[2]",
        "negative duration",
    );
    check_refused(
        pb::RetryPolicy {
            max_age: Some(seconds(-1)),
            ..Default::default()
        },
        "retry_policy.max_age",
        "negative duration",
    );
    check_refused(
        pb::RetryPolicy {
            backoff: Some(pb::retry_policy::Backoff::Exponential(
                pb::ExponentialBackoff {
                    initial: Some(seconds(1)),
                    multiplier: 2.0,
                    max_delay: Some(seconds(-60)),
                },
            )),
            ..Default::default()
        },
        "retry_policy.exponential.max_delay",
        "negative duration",
    );
}

#[test]
fn status_codes_beyond_u16_are_refused_naming_their_index() {
    check_refused(
        pb::RetryPolicy {
            terminal_status_codes: vec![404, 70_000],
            ..Default::default()
        },
        "retry_policy.terminal_status_codes[1]",
        "must be in 300..=599",
    );
}

#[test]
fn states_carry_their_reason_and_change_time() {
    let since = datetime!(2025-01-02 03:04:05 UTC);
    assert_eq!(
        state_to_pb(&State::Active),
        (pb::SubscriptionState::Active, String::new(), None)
    );
    assert_eq!(
        state_to_pb(&State::Paused { since }),
        (
            pb::SubscriptionState::Paused,
            "paused by an operator".to_owned(),
            Some(timestamp_to_pb(since))
        )
    );
    let disabled = State::Disabled {
        reason: "endpoint answered 410 gone".to_owned(),
        since,
    };
    assert_eq!(
        state_to_pb(&disabled),
        (
            pb::SubscriptionState::Disabled,
            "endpoint answered 410 gone".to_owned(),
            Some(timestamp_to_pb(since))
        )
    );
}

#[test]
fn outcome_labels_and_enums_correspond() {
    for label in ["delivered", "retry", "dead", "gone"] {
        assert_eq!(
            attempt_outcome_label(attempt_outcome_to_pb(label)),
            Some(label)
        );
    }
    assert_eq!(
        attempt_outcome_to_pb("exploded"),
        pb::AttemptOutcome::Unspecified
    );
}

#[test]
fn attempts_convert_with_outcome_status_and_times() {
    let started = datetime!(2025-01-02 03:04:05 UTC);
    let record = AttemptRecord {
        subscription_id: "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
        event_id: "e-1".to_owned(),
        event_source: "/shop".to_owned(),
        event_type: "com.example.order.created".to_owned(),
        message_id: "msg_1".to_owned(),
        attempt: 2,
        started_at: started,
        duration_ms: 1250,
        status: Some(503),
        result_class: "5xx".to_owned(),
        error: None,
        response_headers: [("retry-after".to_owned(), "5".to_owned())].into(),
        response_body: "busy".to_owned(),
        outcome: "retry".to_owned(),
        next_attempt_at: Some(datetime!(2025-01-02 03:09:05 UTC)),
    };
    let wire = attempt_to_pb(&record);
    assert_eq!(wire.outcome, pb::AttemptOutcome::Retry as i32);
    assert_eq!(wire.status_code, 503);
    assert_eq!(
        wire.duration,
        Some(prost_types::Duration {
            seconds: 1,
            nanos: 250_000_000
        })
    );
    assert_eq!(wire.start_time, Some(timestamp_to_pb(started)));
    assert_eq!(wire.response_headers["retry-after"], "5");
    assert!(wire.next_attempt_time.is_some());
    assert_eq!(wire.error, "");
}

fn dead_letter(event: &'static [u8]) -> DeadLetter {
    DeadLetter {
        trace: None,
        sequence: 7,
        subscription_id: "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
        event: Bytes::from_static(event),
        attempts: 8,
        reason: "exhausted".to_owned(),
        last_error: "503".to_owned(),
        dead_at: datetime!(2025-01-02 03:04:05 UTC),
        event_sequence: 42,
    }
}

#[test]
fn dead_letters_name_their_event_from_its_json() {
    let wire = dead_letter_to_pb(&dead_letter(
        br#"{"specversion":"1.0","id":"e-1","source":"/shop","type":"com.example.a"}"#,
    ));
    assert_eq!(
        (
            wire.event_id.as_str(),
            wire.event_source.as_str(),
            wire.event_type.as_str()
        ),
        ("e-1", "/shop", "com.example.a")
    );
    assert_eq!((wire.sequence, wire.attempts), (7, 8));
    assert_eq!(wire.reason, "exhausted");
}

#[test]
fn dead_letters_with_unreadable_events_still_convert() {
    let wire = dead_letter_to_pb(&dead_letter(b"not json"));
    assert_eq!(wire.event_id, "");
    assert_eq!(wire.event, b"not json");
}

fn wire_settings(
    rate_limit: Option<(u32, u32)>,
    max_in_flight: Option<u32>,
    ordering: i32,
    on_dead_letter: i32,
) -> pb::DeliverySettings {
    pb::DeliverySettings {
        rate_limit: rate_limit.map(|(per_second, burst)| pb::RateLimit { per_second, burst }),
        max_in_flight,
        ordering,
        on_dead_letter,
        content_mode: 0,
        parts: 0,
    }
}

#[test]
fn delivery_settings_read_from_requests_take_defaults_for_unset_fields() {
    use pb::delivery_settings::{OnDeadLetter as PbOnDeadLetter, Ordering as PbOrdering};
    let limit = |per_second, burst| Some(RateLimit { per_second, burst });
    let cases = [
        (wire_settings(None, None, 0, 0), DeliverySettings::default()),
        (
            wire_settings(Some((50, 10)), None, 0, 0),
            DeliverySettings {
                rate_limit: limit(50, 10),
                ..DeliverySettings::default()
            },
        ),
        // A burst of 0 is the rate itself.
        (
            wire_settings(Some((50, 0)), None, 0, 0),
            DeliverySettings {
                rate_limit: limit(50, 50),
                ..DeliverySettings::default()
            },
        ),
        (
            wire_settings(None, Some(8), PbOrdering::None as i32, 0),
            DeliverySettings {
                max_in_flight: Some(8),
                ..DeliverySettings::default()
            },
        ),
        // Unspecified dead-letter handling on an ordered subscription blocks the key.
        (
            wire_settings(None, None, PbOrdering::Key as i32, 0),
            DeliverySettings {
                ordering: Ordering::Key,
                on_dead_letter: OnDeadLetter::Block,
                ..DeliverySettings::default()
            },
        ),
        (
            wire_settings(
                None,
                None,
                PbOrdering::Key as i32,
                PbOnDeadLetter::Skip as i32,
            ),
            DeliverySettings {
                ordering: Ordering::Key,
                on_dead_letter: OnDeadLetter::Skip,
                ..DeliverySettings::default()
            },
        ),
    ];
    for (wire, expected) in cases {
        assert_eq!(
            delivery_settings_from_pb(&wire).as_ref(),
            Ok(&expected),
            "{wire:?}"
        );
    }
}

#[test]
fn delivery_settings_with_unknown_enum_values_are_refused_naming_the_field() {
    let cases = [
        (
            wire_settings(None, None, 7, 0),
            "delivery.ordering",
            "unknown value 7",
        ),
        (
            wire_settings(None, None, 2, -1),
            "delivery.on_dead_letter",
            "unknown value -1",
        ),
        (
            pb::DeliverySettings {
                content_mode: 3,
                ..wire_settings(None, None, 0, 0)
            },
            "delivery.content_mode",
            "unknown value 3",
        ),
    ];
    for (wire, field, reason) in cases {
        let error = delivery_settings_from_pb(&wire).unwrap_err();
        assert_eq!(
            (error.field.as_str(), error.reason.as_str()),
            (field, reason)
        );
    }
}

#[test]
fn delivery_settings_conversion_leaves_bounds_to_core() {
    // Representable on the wire, refused by `DeliverySettings::validate`.
    let cases = [
        (
            wire_settings(Some((0, 0)), None, 0, 0),
            "delivery.rate_limit.per_second",
        ),
        (wire_settings(None, Some(0), 0, 0), "delivery.max_in_flight"),
        (wire_settings(None, None, 1, 2), "delivery.on_dead_letter"),
    ];
    for (wire, field) in cases {
        let settings = delivery_settings_from_pb(&wire).unwrap();
        assert_eq!(settings.validate().unwrap_err().field, field, "{wire:?}");
    }
}

#[test]
fn delivery_settings_round_trip_through_the_wire_form_with_every_enum_named() {
    let ordered = DeliverySettings {
        rate_limit: Some(RateLimit {
            per_second: 5,
            burst: 2,
        }),
        max_in_flight: Some(3),
        ordering: Ordering::Key,
        on_dead_letter: OnDeadLetter::Skip,
        content_mode: ContentMode::Binary,
        parts: 4,
    };
    for settings in [DeliverySettings::default(), ordered] {
        let wire = delivery_settings_to_pb(&settings);
        assert_ne!(wire.ordering, 0, "{wire:?}");
        assert_ne!(wire.on_dead_letter, 0, "{wire:?}");
        assert_ne!(wire.content_mode, 0, "{wire:?}");
        assert_eq!(delivery_settings_from_pb(&wire), Ok(settings));
    }
}

#[test]
fn content_mode_is_structured_unless_binary_is_asked_for() {
    use pb::delivery_settings::ContentMode as PbContentMode;
    for (wire, expected) in [
        (PbContentMode::Unspecified, ContentMode::Structured),
        (PbContentMode::Structured, ContentMode::Structured),
        (PbContentMode::Binary, ContentMode::Binary),
    ] {
        let settings = pb::DeliverySettings {
            content_mode: wire as i32,
            ..wire_settings(None, None, 0, 0)
        };
        let read = delivery_settings_from_pb(&settings).unwrap();
        assert_eq!(read.content_mode, expected, "{wire:?}");
        assert_eq!(
            delivery_settings_to_pb(&read).content_mode(),
            match expected {
                ContentMode::Structured => PbContentMode::Structured,
                ContentMode::Binary => PbContentMode::Binary,
            }
        );
    }
}
