//! What Herald records about deliveries: one [`AttemptRecord`] per attempt (the attempt log),
//! a [`DeadLetter`] per event given up on, and an [`EndpointHealth`] per subscription.
//!
//! The serde forms of `AttemptRecord` and `EndpointHealth` are storage formats (JSON in the
//! attempts stream and the health bucket); fields are only added, with defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Longest response body kept in an attempt record, in bytes.
pub const MAX_RECORDED_BODY: usize = 4096;

/// Response headers kept in an attempt record (the rest are dropped: they may carry cookies).
pub const RECORDED_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "retry-after",
    "server",
    "date",
    "x-request-id",
];

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub subscription_id: String,
    pub event_id: String,
    pub event_source: String,
    pub event_type: String,
    /// The `webhook-id` of the attempt.
    pub message_id: String,
    /// 1-based.
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub duration_ms: u64,
    /// The response status, when the endpoint answered.
    #[serde(default)]
    pub status: Option<u16>,
    /// `2xx`..`5xx`, or the failure class (`timeout`, `connect`, `dns`, ...).
    pub result_class: String,
    /// Why the attempt failed, when it did without an answer.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub response_headers: BTreeMap<String, String>,
    /// The first [`MAX_RECORDED_BODY`] bytes of the response, lossily decoded.
    #[serde(default)]
    pub response_body: String,
    /// `delivered`, `retry`, `dead` or `gone`.
    pub outcome: String,
    /// When the next attempt is due, for `retry`.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// An event given up on for one subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Position in the dead-letter stream: the dead letter's id.
    pub sequence: u64,
    pub subscription_id: String,
    /// The event, structured CloudEvents JSON.
    pub event: bytes::Bytes,
    pub attempts: u32,
    /// `exhausted`, `expired`, `terminal_status` or `gone`.
    pub reason: String,
    pub last_error: String,
    pub dead_at: OffsetDateTime,
    /// Stream sequence of the event in the events stream.
    pub event_sequence: u64,
    /// The event's trace context, kept so a redrive continues its trace.
    pub trace: Option<crate::trace::TraceContext>,
}

/// How a subscription's endpoint has been doing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointHealth {
    /// Failed attempts since the last success.
    pub consecutive_failures: u64,
    /// When the current run of failures began; `None` while healthy.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_failure_at: Option<OffsetDateTime>,
}

impl EndpointHealth {
    /// Records a success at `now`.
    pub fn succeeded(&mut self, now: OffsetDateTime) {
        self.consecutive_failures = 0;
        self.failing_since = None;
        self.last_success_at = Some(now);
    }

    /// Records a failure at `now`.
    pub fn failed(&mut self, now: OffsetDateTime) {
        self.consecutive_failures += 1;
        self.failing_since.get_or_insert(now);
        self.last_failure_at = Some(now);
    }

    /// Combines two views of one endpoint, written by two replicas around a hand-over: the
    /// latest success ends every run of failures that began before it; of the runs left, the
    /// earliest start and the longest count stand (the views overlap, so counts are not added).
    pub fn merge(&self, other: &EndpointHealth) -> EndpointHealth {
        let last_success_at = self.last_success_at.max(other.last_success_at);
        let ongoing = |view: &EndpointHealth| {
            view.failing_since
                .filter(|since| last_success_at.is_none_or(|success| *since > success))
                .map(|since| (since, view.consecutive_failures))
        };
        let runs: Vec<(OffsetDateTime, u64)> = [ongoing(self), ongoing(other)]
            .into_iter()
            .flatten()
            .collect();
        EndpointHealth {
            consecutive_failures: runs.iter().map(|(_, count)| *count).max().unwrap_or(0),
            failing_since: runs.iter().map(|(since, _)| *since).min(),
            last_success_at,
            last_failure_at: self.last_failure_at.max(other.last_failure_at),
        }
    }

    /// Returns true when the endpoint has failed continuously for at least `threshold`.
    pub fn failing_for_at_least(
        &self,
        threshold: std::time::Duration,
        now: OffsetDateTime,
    ) -> bool {
        self.failing_since
            .is_some_and(|since| now - since >= threshold)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn health(
        failures: u64,
        since: Option<OffsetDateTime>,
        success: Option<OffsetDateTime>,
    ) -> EndpointHealth {
        EndpointHealth {
            consecutive_failures: failures,
            failing_since: since,
            last_success_at: success,
            last_failure_at: since,
        }
    }

    #[test]
    fn merging_two_replicas_views_keeps_what_is_still_true() {
        let t = |minute: u8| datetime!(2026-12-01 10:00 UTC).replace_minute(minute).ok();
        let cases = [
            // A success after the other's failures ends them.
            (
                health(3, t(1), None),
                health(0, None, t(2)),
                health(0, None, t(2)),
            ),
            // Failures after the other's success still run.
            (
                health(2, t(5), t(1)),
                health(0, None, t(3)),
                health(2, t(5), t(3)),
            ),
            // Both failing: the earliest start, the longest count.
            (
                health(4, t(1), None),
                health(2, t(3), None),
                health(4, t(1), None),
            ),
            (
                EndpointHealth::default(),
                EndpointHealth::default(),
                EndpointHealth::default(),
            ),
        ];
        for (ours, theirs, merged) in cases {
            let mut expected = merged.clone();
            expected.last_failure_at = ours.last_failure_at.max(theirs.last_failure_at);
            assert_eq!(ours.merge(&theirs), expected, "{ours:?} + {theirs:?}");
            assert_eq!(theirs.merge(&ours), expected, "symmetric");
        }
    }
}
