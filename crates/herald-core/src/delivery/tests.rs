//! Outcome table.

use std::time::Duration;

use super::*;

fn response(status: u16, retry_after: Option<&str>) -> AttemptResult {
    AttemptResult::Response {
        status,
        retry_after: retry_after.map(str::to_owned),
    }
}

#[test]
fn classifies_attempt_results() {
    let schedule = RetrySchedule::new(vec![Duration::from_secs(2), Duration::from_secs(60)], 0);
    let retry = |secs| Outcome::Retry {
        after: Duration::from_secs(secs),
    };
    let cases = [
        (response(200, None), 1, Outcome::Delivered),
        (response(204, None), 3, Outcome::Delivered),
        (response(299, None), 1, Outcome::Delivered),
        (response(301, None), 1, retry(2)),
        (response(400, None), 1, retry(2)),
        (response(500, None), 2, retry(60)),
        (response(500, None), 9, retry(60)),
        (response(429, Some("30")), 1, retry(30)),
        // Retry-After never shortens the schedule, and is capped at its longest delay.
        (response(503, Some("1")), 2, retry(60)),
        (response(503, Some("86400")), 1, retry(60)),
        (response(503, Some("soon")), 1, retry(2)),
        (response(500, Some("30")), 1, retry(2)),
        (
            AttemptResult::Failed {
                class: FailureClass::Timeout,
            },
            1,
            retry(2),
        ),
        (
            AttemptResult::Failed {
                class: FailureClass::DeniedAddress,
            },
            2,
            retry(60),
        ),
    ];
    for (result, attempt, expected) in cases {
        assert_eq!(
            classify(&result, attempt, &schedule, 0.5),
            expected,
            "{result:?} attempt {attempt}"
        );
    }
}
