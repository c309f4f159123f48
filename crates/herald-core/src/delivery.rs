//! What an attempt's result means for the event: delivered, retried later, dead-lettered, or the
//! endpoint is gone.
//!
//! Pure and table-tested: the dispatcher feeds in what the endpoint answered (or how the request
//! failed), the attempt number, the event's age and the subscription's policy, and acts on the
//! [`Outcome`]. Rules (CloudEvents HTTP Web Hooks and Standard Webhooks):
//! - 2xx: delivered.
//! - 410 Gone: the endpoint wants no more deliveries; the subscription is disabled.
//! - A status the policy names as terminal: dead-lettered at once.
//! - 429 and 503 with `Retry-After` (seconds or an HTTP date): wait that long, but never longer
//!   than the policy's longest delay.
//! - Everything else (3xx, which is never followed, other 4xx and 5xx, timeouts, connection and
//!   DNS failures): retried on the policy's schedule, until `max_attempts` or `max_age`.

use std::time::Duration;

use time::OffsetDateTime;

use crate::retry::RetryPolicy;

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

impl AttemptResult {
    /// Returns a bounded label: `2xx`..`5xx`, or the failure class.
    pub fn class_label(&self) -> &'static str {
        match self {
            AttemptResult::Response { status, .. } => match status / 100 {
                1 => "1xx",
                2 => "2xx",
                3 => "3xx",
                4 => "4xx",
                _ => "5xx",
            },
            AttemptResult::Failed { class } => class.as_str(),
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
    /// Give up on this event: dead-letter it.
    Dead { reason: DeadReason },
    /// The endpoint answered 410 Gone: dead-letter the event and disable the subscription.
    Gone,
}

/// Why an event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// `max_attempts` attempts failed.
    Exhausted,
    /// The next attempt would come after `max_age`.
    Expired,
    /// The endpoint answered a status the policy names as terminal.
    TerminalStatus(u16),
    /// The endpoint answered 410 Gone.
    Gone,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Exhausted => "exhausted",
            DeadReason::Expired => "expired",
            DeadReason::TerminalStatus(_) => "terminal_status",
            DeadReason::Gone => "gone",
        }
    }
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Dead { .. } => "dead",
            Outcome::Gone => "gone",
        }
    }
}

/// Decides the outcome of attempt number `attempt` (1-based) of an event stored `age` ago.
pub fn classify(
    result: &AttemptResult,
    attempt: u32,
    age: Duration,
    policy: &RetryPolicy,
    now: OffsetDateTime,
    jitter_unit: f64,
) -> Outcome {
    let mut delay = policy.delay(attempt, jitter_unit);
    if let AttemptResult::Response {
        status,
        retry_after,
    } = result
    {
        match status {
            200..=299 => return Outcome::Delivered,
            410 => return Outcome::Gone,
            status if policy.terminal_status_codes.contains(status) => {
                return Outcome::Dead {
                    reason: DeadReason::TerminalStatus(*status),
                };
            }
            429 | 503 => {
                let asked = retry_after
                    .as_deref()
                    .and_then(|value| parse_retry_after(value, now));
                if let Some(asked) = asked {
                    delay = asked.min(policy.max_delay());
                }
            }
            _ => {}
        }
    }
    if attempt >= policy.max_attempts {
        return Outcome::Dead {
            reason: DeadReason::Exhausted,
        };
    }
    if age.saturating_add(delay) > policy.max_age {
        return Outcome::Dead {
            reason: DeadReason::Expired,
        };
    }
    Outcome::Retry { after: delay }
}

/// How long a whole subscription should hold back after this answer: a `429` or `503` with a
/// valid `Retry-After` asks the endpoint's sender to slow down, not only for one event. Capped
/// by the policy's longest delay, like the event's own retry.
pub fn subscription_pause(
    result: &AttemptResult,
    policy: &RetryPolicy,
    now: OffsetDateTime,
) -> Option<Duration> {
    match result {
        AttemptResult::Response {
            status: 429 | 503,
            retry_after: Some(value),
        } => parse_retry_after(value, now).map(|asked| asked.min(policy.max_delay())),
        _ => None,
    }
}

/// Parses `Retry-After` (RFC 9110, section 10.2.3): delay-seconds or an HTTP date (IMF-fixdate),
/// as a delay from `now`. A date in the past is no delay.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    let delay = date - now;
    Some(if delay.is_negative() {
        Duration::ZERO
    } else {
        delay.unsigned_abs()
    })
}
