//! What an attempt's result means for the event: delivered, or to be tried again later.
//!
//! Pure and table-tested: the dispatcher feeds in what the endpoint answered (or how the request
//! failed) and acts on the [`Outcome`]. The reliable-delivery work extends this table (410 Gone,
//! terminal codes, dead letters) without touching the dispatcher's control flow.

use std::time::Duration;

use crate::retry::RetrySchedule;

#[cfg(test)]
mod tests;

/// How an attempt ended, as seen by the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The endpoint answered with this status code and optional `Retry-After` value.
    Response {
        status: u16,
        retry_after: Option<String>,
    },
    /// No usable answer: connect failure, timeout, TLS, refused address, ...
    Failed { class: FailureClass },
}

/// Why an attempt got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    Timeout,
    Connect,
    Dns,
    /// The sink resolved only to addresses the network policy forbids.
    DeniedAddress,
    Other,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Timeout => "timeout",
            FailureClass::Connect => "connect",
            FailureClass::Dns => "dns",
            FailureClass::DeniedAddress => "denied_address",
            FailureClass::Other => "other",
        }
    }
}

/// What to do with the event after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done: acknowledge.
    Delivered,
    /// Try again after this delay.
    Retry { after: Duration },
}

/// Decides the outcome of attempt number `attempt` (1-based).
///
/// 2xx is delivered. Anything else is retried on the schedule; 429 and 503 may ask for a later
/// time with `Retry-After` (seconds), which is honoured up to the schedule's longest delay.
/// Redirects are failures: the dispatcher never follows them.
pub fn classify(
    result: &AttemptResult,
    attempt: u32,
    schedule: &RetrySchedule,
    jitter_unit: f64,
) -> Outcome {
    let scheduled = schedule.delay(attempt, jitter_unit);
    match result {
        AttemptResult::Response { status, .. } if (200..300).contains(status) => Outcome::Delivered,
        AttemptResult::Response {
            status: 429 | 503,
            retry_after: Some(value),
        } => {
            let longest = schedule.delays().iter().max().copied().unwrap_or(scheduled);
            let asked = value.trim().parse::<u64>().ok().map(Duration::from_secs);
            let after = asked.map_or(scheduled, |asked| {
                asked.clamp(scheduled, longest.max(scheduled))
            });
            Outcome::Retry { after }
        }
        AttemptResult::Response { .. } | AttemptResult::Failed { .. } => {
            Outcome::Retry { after: scheduled }
        }
    }
}
