//! Retry schedule tests.

use std::time::Duration;

use super::*;

#[test]
fn follows_the_schedule_then_repeats_the_last_delay() {
    let schedule = RetrySchedule::new(vec![Duration::from_secs(1), Duration::from_secs(10)], 0);
    assert_eq!(schedule.base_delay(1), Duration::from_secs(1));
    assert_eq!(schedule.base_delay(2), Duration::from_secs(10));
    assert_eq!(schedule.base_delay(9), Duration::from_secs(10));
    assert_eq!(schedule.delay(1, 0.99), Duration::from_secs(1));
}

#[test]
fn standard_schedule_spans_about_28_hours() {
    let total: Duration = RetrySchedule::standard().delays().iter().sum();
    assert_eq!(
        total.as_secs(),
        5 + 5 * 60 + 30 * 60 + 2 * 3600 + 5 * 3600 + 10 * 3600 * 2
    );
}

#[test]
fn jitter_stays_within_bounds() {
    let schedule = RetrySchedule::new(vec![Duration::from_secs(100)], 20);
    assert_eq!(schedule.delay(1, 0.0), Duration::from_secs(80));
    assert_eq!(schedule.delay(1, 0.5), Duration::from_secs(100));
    let high = schedule.delay(1, 0.999_999).as_secs_f64();
    assert!((119.9..=120.0).contains(&high), "{high}");
}
