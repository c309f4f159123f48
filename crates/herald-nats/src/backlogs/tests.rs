//! Unit tests of the backlog reader's subject parsing.

use super::{RetryKind, classify_retry_subject, dead_letter_subscription};

const ID: &str = "sub_01JBZ7M4Q3N5W8X9Y2Z6A0B1C2";

#[test]
fn classifies_each_kind_of_retry_subject_by_its_subscription() {
    let cases = [
        (
            format!("herald.retry.sched.{ID}.42"),
            Some((RetryKind::Scheduled, ID)),
        ),
        (format!("herald.retry.due.{ID}"), Some((RetryKind::Due, ID))),
        (
            format!("herald.retry.hold.{ID}.0123456789abcdef0123456789abcdef"),
            Some((RetryKind::Held, ID)),
        ),
        // A part of a split subscription counts towards its subscription.
        (
            format!("herald.retry.sched.{ID}.p1of4.42"),
            Some((RetryKind::Scheduled, ID)),
        ),
        (
            format!("herald.retry.due.{ID}.p3of4"),
            Some((RetryKind::Due, ID)),
        ),
        (
            format!("herald.retry.hold.{ID}.p0of16.0123456789abcdef0123456789abcdef"),
            Some((RetryKind::Held, ID)),
        ),
    ];
    for (subject, expected) in cases {
        assert_eq!(classify_retry_subject(&subject), expected, "{subject}");
    }
}

#[test]
fn ignores_retry_subjects_of_another_shape() {
    for subject in [
        "herald.retry".to_owned(),
        "herald.retry.sched".to_owned(),
        format!("herald.retry.sched.{ID}"),
        format!("herald.retry.sched.{ID}.1.2"),
        format!("herald.retry.due.{ID}.1"),
        format!("herald.retry.hold.{ID}"),
        format!("herald.retry.other.{ID}"),
        format!("other.retry.due.{ID}"),
        format!("heraldx.retry.due.{ID}"),
    ] {
        assert_eq!(classify_retry_subject(&subject), None, "{subject}");
    }
}

#[test]
fn reads_the_subscription_of_a_dead_letter_subject() {
    assert_eq!(
        dead_letter_subscription(&format!("herald.dead.{ID}")),
        Some(ID)
    );
    for subject in [
        "herald.dead.".to_owned(),
        format!("herald.dead.{ID}.x"),
        format!("herald.attempts.{ID}"),
    ] {
        assert_eq!(dead_letter_subscription(&subject), None, "{subject}");
    }
}
