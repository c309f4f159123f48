//! The outcome table.

use std::time::Duration;

use time::macros::datetime;

use super::*;
use crate::retry::RetryPolicy;

fn response(status: u16, retry_after: Option<&str>) -> AttemptResult {
    AttemptResult::Response {
        status,
        retry_after: retry_after.map(str::to_owned),
    }
}

fn failed(class: FailureClass) -> AttemptResult {
    AttemptResult::Failed { class }
}

#[test]
fn classifies_attempt_results() {
    let mut policy = RetryPolicy::fixed(vec![Duration::from_secs(2), Duration::from_secs(60)]);
    policy.max_attempts = 4;
    policy.max_age = Duration::from_secs(3600);
    policy.terminal_status_codes = vec![400, 404];
    let now = datetime!(2026-11-22 10:00:00 UTC);
    let young = Duration::from_secs(1);
    let retry = |secs| Outcome::Retry {
        after: Duration::from_secs(secs),
    };
    let dead = |reason| Outcome::Dead { reason };
    let cases = [
        (response(200, None), 1, young, Outcome::Delivered),
        (response(204, None), 3, young, Outcome::Delivered),
        (response(299, None), 4, young, Outcome::Delivered),
        (response(301, None), 1, young, retry(2)),
        (response(302, Some("1")), 1, young, retry(2)),
        (response(401, None), 1, young, retry(2)),
        (response(500, None), 2, young, retry(60)),
        (response(502, None), 3, young, retry(60)),
        (failed(FailureClass::Timeout), 1, young, retry(2)),
        (failed(FailureClass::Connect), 2, young, retry(60)),
        (failed(FailureClass::Dns), 1, young, retry(2)),
        (failed(FailureClass::DeniedAddress), 1, young, retry(2)),
        // 410 disables the subscription, whatever the attempt.
        (response(410, None), 1, young, Outcome::Gone),
        // Terminal codes dead-letter at once.
        (
            response(400, None),
            1,
            young,
            dead(DeadReason::TerminalStatus(400)),
        ),
        (
            response(404, None),
            2,
            young,
            dead(DeadReason::TerminalStatus(404)),
        ),
        // Retry-After on 429/503, seconds or HTTP date, clamped to the longest delay.
        (response(429, Some("30")), 1, young, retry(30)),
        (response(503, Some("1")), 2, young, retry(1)),
        (response(503, Some("86400")), 1, young, retry(60)),
        (
            response(429, Some("Sun, 22 Nov 2026 10:00:45 GMT")),
            1,
            young,
            retry(45),
        ),
        (
            response(429, Some("Sun, 22 Nov 2026 09:00:00 GMT")),
            1,
            young,
            retry(0),
        ),
        (response(503, Some("soon")), 1, young, retry(2)),
        (response(500, Some("30")), 1, young, retry(2)),
        // Exhaustion and age.
        (response(500, None), 4, young, dead(DeadReason::Exhausted)),
        (
            failed(FailureClass::Timeout),
            5,
            young,
            dead(DeadReason::Exhausted),
        ),
        (
            response(500, None),
            2,
            Duration::from_secs(3590),
            dead(DeadReason::Expired),
        ),
        (response(500, None), 1, Duration::from_secs(3590), retry(2)),
    ];
    for (result, attempt, age, expected) in cases {
        let outcome = classify(&result, attempt, age, &policy, now, 0.5);
        assert_eq!(
            outcome, expected,
            "{result:?} attempt {attempt} age {age:?}"
        );
    }
}

#[test]
fn parses_retry_after_forms() {
    let now = datetime!(2026-11-22 10:00:00 UTC);
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after("Sun, 22 Nov 2026 10:01:00 GMT", now),
        Some(Duration::from_secs(60))
    );
    assert_eq!(parse_retry_after("-1", now), None);
    assert_eq!(parse_retry_after("tomorrow", now), None);
}

#[test]
fn only_429_and_503_with_a_valid_retry_after_pause_the_subscription() {
    let now = datetime!(2026-11-22 10:00:00 UTC);
    let policy = RetryPolicy::fixed(vec![Duration::from_secs(2), Duration::from_secs(60)]);
    let cases = [
        (response(429, Some("7")), Some(Duration::from_secs(7))),
        (response(503, Some("7")), Some(Duration::from_secs(7))),
        (response(429, Some("86400")), Some(Duration::from_secs(60))),
        (response(429, None), None),
        (response(429, Some("soon")), None),
        (response(500, Some("7")), None),
        (failed(FailureClass::Timeout), None),
    ];
    for (result, pause) in cases {
        assert_eq!(
            subscription_pause(&result, &policy, now),
            pause,
            "{result:?}"
        );
    }
}
