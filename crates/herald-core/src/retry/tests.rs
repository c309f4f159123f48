//! Retry policy tests.

use std::time::Duration;

use super::*;

#[test]
fn fixed_backoff_follows_the_list_then_repeats_the_last_delay() {
    let policy = RetryPolicy::fixed(vec![Duration::from_secs(1), Duration::from_secs(10)]);
    assert_eq!(policy.base_delay(1), Duration::from_secs(1));
    assert_eq!(policy.base_delay(2), Duration::from_secs(10));
    assert_eq!(policy.base_delay(9), Duration::from_secs(10));
    assert_eq!(policy.delay(1, 0.99), Duration::from_secs(1));
    assert_eq!(policy.max_attempts, 3);
}

#[test]
fn exponential_backoff_grows_and_caps() {
    let policy = RetryPolicy {
        backoff: Backoff::Exponential {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(10),
        },
        ..RetryPolicy::fixed(vec![])
    };
    let delays: Vec<u64> = (1..=6).map(|n| policy.base_delay(n).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    assert_eq!(policy.base_delay(u32::MAX), Duration::from_secs(10));
}

#[test]
fn standard_policy_makes_eight_attempts_over_about_28_hours() {
    let policy = RetryPolicy::standard();
    let total: Duration = (1..policy.max_attempts).map(|n| policy.base_delay(n)).sum();
    assert_eq!(
        total.as_secs(),
        5 + 5 * 60 + 30 * 60 + 2 * 3600 + 5 * 3600 + 10 * 3600 * 2
    );
    assert_eq!(policy.max_attempts, 8);
    assert_eq!(policy.validate(), Ok(()));
}

#[test]
fn jitter_stays_within_bounds() {
    let mut policy = RetryPolicy::fixed(vec![Duration::from_secs(100)]);
    policy.jitter_percent = 20;
    assert_eq!(policy.delay(1, 0.0), Duration::from_secs(80));
    assert_eq!(policy.delay(1, 0.5), Duration::from_secs(100));
    let high = policy.delay(1, 0.999_999).as_secs_f64();
    assert!((119.9..=120.0).contains(&high), "{high}");
    assert_eq!(policy.max_delay(), Duration::from_secs(120));
}

#[test]
fn delays_of_a_policy_that_was_never_validated_saturate_instead_of_panicking() {
    // A policy read from storage is not revalidated: huge delays and NaN jitter must not panic.
    let mut policy = RetryPolicy::fixed(vec![Duration::MAX]);
    policy.jitter_percent = 100;
    assert_eq!(policy.delay(1, 0.999), Duration::MAX);
    assert_eq!(policy.max_delay(), Duration::MAX);
    assert!(policy.delay(1, f64::NAN) <= Duration::MAX);
    let exponential = RetryPolicy {
        backoff: Backoff::Exponential {
            initial: Duration::MAX,
            multiplier: f64::INFINITY,
            max_delay: Duration::MAX,
        },
        ..RetryPolicy::fixed(vec![])
    };
    assert_eq!(exponential.base_delay(40), Duration::MAX);
}

#[test]
fn validation_names_the_field() {
    let cases: Vec<(RetryPolicy, &str)> = vec![
        (
            RetryPolicy {
                max_attempts: 0,
                ..RetryPolicy::standard()
            },
            "retry_policy.max_attempts",
        ),
        (
            RetryPolicy {
                jitter_percent: 101,
                ..RetryPolicy::standard()
            },
            "retry_policy.jitter_percent",
        ),
        (
            RetryPolicy {
                max_age: Duration::ZERO,
                ..RetryPolicy::standard()
            },
            "retry_policy.max_age",
        ),
        (
            RetryPolicy {
                terminal_status_codes: vec![200],
                ..RetryPolicy::standard()
            },
            "retry_policy.terminal_status_codes",
        ),
        (RetryPolicy::fixed(vec![]), "retry_policy.fixed.delays"),
        (
            RetryPolicy {
                backoff: Backoff::Exponential {
                    initial: Duration::from_secs(1),
                    multiplier: 0.5,
                    max_delay: Duration::from_secs(2),
                },
                ..RetryPolicy::standard()
            },
            "retry_policy.exponential.multiplier",
        ),
    ];
    for (policy, field) in cases {
        assert_eq!(policy.validate().unwrap_err().field, field, "{policy:?}");
    }
}

#[test]
fn storage_form_uses_milliseconds() {
    let policy = RetryPolicy::fixed(vec![Duration::from_millis(1500)]);
    let json = serde_json::to_string(&policy).unwrap();
    assert_eq!(
        json,
        r#"{"backoff":{"fixed":{"delays":[1500]}},"jitter_percent":0,"max_attempts":2,"max_age":2592000000,"terminal_status_codes":[]}"#
    );
    assert_eq!(serde_json::from_str::<RetryPolicy>(&json).unwrap(), policy);
}

#[test]
fn jitter_units_are_in_the_unit_interval_and_spread_events_that_failed_together() {
    let units: Vec<f64> = (0..1000)
        .map(|sequence| jitter_unit(sequence, 1_764_000_000, 42))
        .collect();
    assert!(units.iter().all(|unit| (0.0..1.0).contains(unit)));
    let low = units.iter().filter(|unit| **unit < 0.5).count();
    assert!((400..=600).contains(&low), "{low} of 1000 below one half");
    assert_ne!(
        jitter_unit(1, 1, 1),
        jitter_unit(1, 1, 2),
        "the salt matters"
    );
}
