//! Conversions of reliable-delivery types between `herald.v1` messages and `herald-core`: retry
//! policies, delivery settings, subscription states, endpoint health, attempt records and dead
//! letters.
//!
//! A request's retry policy is read leniently, the way the proto documents it: every unset field
//! takes `RetryPolicy::standard()`'s value, and only what the wire form can express but Herald
//! cannot (a negative duration, a status code beyond `u16`) is refused here, naming the field.
//! Bounds stay `RetryPolicy::validate`'s decision. Answers carry the effective policy, complete.
//! Delivery settings are read the same way: unset fields take the defaults, a burst of 0 means
//! the rate itself, an enum value this build does not know is refused naming the field
//! (`delivery.ordering`), and bounds stay `DeliverySettings::validate`'s decision.

use std::time::Duration;

use herald_core::State;
use herald_core::record::{AttemptRecord, DeadLetter, EndpointHealth};
use herald_core::retry::{Backoff, RetryPolicy};
use herald_core::subscription::{
    ContentMode, DeliverySettings, OnDeadLetter, Ordering, RateLimit, SubscriptionError,
};

use crate::convert::timestamp_to_pb;
use crate::v1 as pb;

#[cfg(test)]
mod tests;

/// Converts a request's retry policy; unset fields take the standard policy's values. Errors
/// name the field (`retry_policy.fixed.delays[2]`).
pub fn retry_policy_from_pb(policy: &pb::RetryPolicy) -> Result<RetryPolicy, SubscriptionError> {
    use pb::retry_policy::Backoff as PbBackoff;
    let standard = RetryPolicy::standard();
    let backoff = match &policy.backoff {
        None => standard.backoff,
        Some(PbBackoff::Fixed(fixed)) => {
            let delays = fixed
                .delays
                .iter()
                .enumerate()
                .map(|(index, delay)| {
                    duration_from_pb(delay, &format!("retry_policy.fixed.delays[{index}]"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Backoff::Fixed { delays }
        }
        Some(PbBackoff::Exponential(exponential)) => Backoff::Exponential {
            initial: optional_duration(
                exponential.initial.as_ref(),
                "retry_policy.exponential.initial",
            )?,
            multiplier: exponential.multiplier,
            max_delay: optional_duration(
                exponential.max_delay.as_ref(),
                "retry_policy.exponential.max_delay",
            )?,
        },
    };
    let max_age = match &policy.max_age {
        None => standard.max_age,
        Some(max_age) => duration_from_pb(max_age, "retry_policy.max_age")?,
    };
    let terminal_status_codes = policy
        .terminal_status_codes
        .iter()
        .enumerate()
        .map(|(index, code)| {
            u16::try_from(*code).map_err(|_| {
                SubscriptionError::new(
                    format!("retry_policy.terminal_status_codes[{index}]"),
                    "must be in 300..=599",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RetryPolicy {
        backoff,
        jitter_percent: policy.jitter_percent.unwrap_or(standard.jitter_percent),
        max_attempts: match policy.max_attempts {
            0 => standard.max_attempts,
            given => given,
        },
        max_age,
        terminal_status_codes,
    })
}

/// Returns the wire form of a policy, every field set.
pub fn retry_policy_to_pb(policy: &RetryPolicy) -> pb::RetryPolicy {
    use pb::retry_policy::Backoff as PbBackoff;
    let backoff = match &policy.backoff {
        Backoff::Fixed { delays } => PbBackoff::Fixed(pb::FixedBackoff {
            delays: delays.iter().map(|delay| duration_to_pb(*delay)).collect(),
        }),
        Backoff::Exponential {
            initial,
            multiplier,
            max_delay,
        } => PbBackoff::Exponential(pb::ExponentialBackoff {
            initial: Some(duration_to_pb(*initial)),
            multiplier: *multiplier,
            max_delay: Some(duration_to_pb(*max_delay)),
        }),
    };
    pb::RetryPolicy {
        backoff: Some(backoff),
        jitter_percent: Some(policy.jitter_percent),
        max_attempts: policy.max_attempts,
        max_age: Some(duration_to_pb(policy.max_age)),
        terminal_status_codes: policy
            .terminal_status_codes
            .iter()
            .map(|code| u32::from(*code))
            .collect(),
    }
}

/// Converts a request's delivery settings; unset fields take the defaults (no rate limit, the
/// dispatcher's concurrency, unordered, `block`, structured), and a burst of 0 is the rate
/// itself. Errors name the field (`delivery.ordering`).
pub fn delivery_settings_from_pb(
    settings: &pb::DeliverySettings,
) -> Result<DeliverySettings, SubscriptionError> {
    use pb::delivery_settings::{
        ContentMode as PbContentMode, OnDeadLetter as PbOnDeadLetter, Ordering as PbOrdering,
    };
    let rate_limit = settings.rate_limit.as_ref().map(|limit| RateLimit {
        per_second: limit.per_second,
        burst: match limit.burst {
            0 => limit.per_second,
            burst => burst,
        },
    });
    let ordering = match PbOrdering::try_from(settings.ordering) {
        Ok(PbOrdering::Unspecified | PbOrdering::None) => Ordering::None,
        Ok(PbOrdering::Key) => Ordering::Key,
        Err(_) => return Err(unknown_enum_value("delivery.ordering", settings.ordering)),
    };
    let on_dead_letter = match PbOnDeadLetter::try_from(settings.on_dead_letter) {
        Ok(PbOnDeadLetter::Unspecified | PbOnDeadLetter::Block) => OnDeadLetter::Block,
        Ok(PbOnDeadLetter::Skip) => OnDeadLetter::Skip,
        Err(_) => {
            return Err(unknown_enum_value(
                "delivery.on_dead_letter",
                settings.on_dead_letter,
            ));
        }
    };
    let content_mode = match PbContentMode::try_from(settings.content_mode) {
        Ok(PbContentMode::Unspecified | PbContentMode::Structured) => ContentMode::Structured,
        Ok(PbContentMode::Binary) => ContentMode::Binary,
        Err(_) => {
            return Err(unknown_enum_value(
                "delivery.content_mode",
                settings.content_mode,
            ));
        }
    };
    Ok(DeliverySettings {
        rate_limit,
        max_in_flight: settings.max_in_flight,
        ordering,
        on_dead_letter,
        content_mode,
        parts: settings.parts.max(1),
    })
}

/// Returns the wire form of delivery settings, the enums always named (never `UNSPECIFIED`).
pub fn delivery_settings_to_pb(settings: &DeliverySettings) -> pb::DeliverySettings {
    use pb::delivery_settings::{
        ContentMode as PbContentMode, OnDeadLetter as PbOnDeadLetter, Ordering as PbOrdering,
    };
    let ordering = match settings.ordering {
        Ordering::None => PbOrdering::None,
        Ordering::Key => PbOrdering::Key,
    };
    let on_dead_letter = match settings.on_dead_letter {
        OnDeadLetter::Block => PbOnDeadLetter::Block,
        OnDeadLetter::Skip => PbOnDeadLetter::Skip,
    };
    let content_mode = match settings.content_mode {
        ContentMode::Structured => PbContentMode::Structured,
        ContentMode::Binary => PbContentMode::Binary,
    };
    pb::DeliverySettings {
        rate_limit: settings.rate_limit.map(|limit| pb::RateLimit {
            per_second: limit.per_second,
            burst: limit.burst,
        }),
        max_in_flight: settings.max_in_flight,
        ordering: ordering as i32,
        on_dead_letter: on_dead_letter as i32,
        content_mode: content_mode as i32,
        parts: settings.parts,
    }
}

/// Returns the wire state of a subscription, why it is in it, and since when (unset while
/// active).
pub fn state_to_pb(
    state: &State,
) -> (
    pb::SubscriptionState,
    String,
    Option<prost_types::Timestamp>,
) {
    match state {
        State::Active => (pb::SubscriptionState::Active, String::new(), None),
        State::Paused { since } => (
            pb::SubscriptionState::Paused,
            "paused by an operator".to_owned(),
            Some(timestamp_to_pb(*since)),
        ),
        State::Disabled { reason, since } => (
            pb::SubscriptionState::Disabled,
            reason.clone(),
            Some(timestamp_to_pb(*since)),
        ),
        State::Pending { reason, since } => (
            pb::SubscriptionState::Pending,
            reason.clone(),
            Some(timestamp_to_pb(*since)),
        ),
    }
}

/// Returns the wire form of an endpoint's health.
pub fn health_to_pb(health: &EndpointHealth) -> pb::EndpointHealth {
    pb::EndpointHealth {
        consecutive_failures: health.consecutive_failures,
        failing_since: health.failing_since.map(timestamp_to_pb),
        last_success_time: health.last_success_at.map(timestamp_to_pb),
        last_failure_time: health.last_failure_at.map(timestamp_to_pb),
    }
}

/// Returns the wire outcome of an attempt record's outcome label (`delivered`, `retry`, `dead`,
/// `gone`, `test`); an unknown label is `UNSPECIFIED`.
pub fn attempt_outcome_to_pb(label: &str) -> pb::AttemptOutcome {
    match label {
        "delivered" => pb::AttemptOutcome::Delivered,
        "retry" => pb::AttemptOutcome::Retry,
        "dead" => pb::AttemptOutcome::Dead,
        "gone" => pb::AttemptOutcome::Gone,
        herald_core::test_event::OUTCOME => pb::AttemptOutcome::Test,
        _ => pb::AttemptOutcome::Unspecified,
    }
}

/// Returns the label attempt records use for a wire outcome; `None` for `UNSPECIFIED`.
pub fn attempt_outcome_label(outcome: pb::AttemptOutcome) -> Option<&'static str> {
    match outcome {
        pb::AttemptOutcome::Unspecified => None,
        pb::AttemptOutcome::Delivered => Some("delivered"),
        pb::AttemptOutcome::Retry => Some("retry"),
        pb::AttemptOutcome::Dead => Some("dead"),
        pb::AttemptOutcome::Gone => Some("gone"),
        pb::AttemptOutcome::Test => Some(herald_core::test_event::OUTCOME),
    }
}

/// Returns the wire form of one recorded attempt.
pub fn attempt_to_pb(record: &AttemptRecord) -> pb::Attempt {
    pb::Attempt {
        subscription_id: record.subscription_id.clone(),
        event_id: record.event_id.clone(),
        event_source: record.event_source.clone(),
        event_type: record.event_type.clone(),
        message_id: record.message_id.clone(),
        attempt: record.attempt,
        start_time: Some(timestamp_to_pb(record.started_at)),
        duration: Some(duration_to_pb(Duration::from_millis(record.duration_ms))),
        status_code: record.status.map_or(0, u32::from),
        result_class: record.result_class.clone(),
        error: record.error.clone().unwrap_or_default(),
        response_headers: record.response_headers.clone(),
        response_body: record.response_body.clone(),
        outcome: attempt_outcome_to_pb(&record.outcome) as i32,
        next_attempt_time: record.next_attempt_at.map(timestamp_to_pb),
    }
}

/// Returns the wire form of a dead letter; the event's id, source and type are read from its
/// JSON and left empty when it is unreadable.
pub fn dead_letter_to_pb(dead_letter: &DeadLetter) -> pb::DeadLetter {
    let event: serde_json::Value =
        serde_json::from_slice(&dead_letter.event).unwrap_or(serde_json::Value::Null);
    let attribute = |name: &str| {
        event
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    pb::DeadLetter {
        sequence: dead_letter.sequence,
        subscription_id: dead_letter.subscription_id.clone(),
        event_id: attribute("id"),
        event_source: attribute("source"),
        event_type: attribute("type"),
        attempts: dead_letter.attempts,
        reason: dead_letter.reason.clone(),
        last_error: dead_letter.last_error.clone(),
        dead_time: Some(timestamp_to_pb(dead_letter.dead_at)),
        event: dead_letter.event.to_vec(),
    }
}

/// Returns the wire form of a duration (saturating far beyond any Herald bound).
pub fn duration_to_pb(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(999_999_999),
    }
}

/// Returns the duration a wire duration denotes; negative ones are refused, naming `field`.
pub fn duration_from_pb(
    duration: &prost_types::Duration,
    field: &str,
) -> Result<Duration, SubscriptionError> {
    let (Ok(seconds), Ok(nanos)) = (
        u64::try_from(duration.seconds),
        u32::try_from(duration.nanos),
    ) else {
        return Err(SubscriptionError::new(field, "negative duration"));
    };
    if nanos >= 1_000_000_000 {
        return Err(SubscriptionError::new(
            field,
            "nanos must be below one second",
        ));
    }
    Ok(Duration::new(seconds, nanos))
}

fn unknown_enum_value(field: &str, value: i32) -> SubscriptionError {
    SubscriptionError::new(field, format!("unknown value {value}"))
}

fn optional_duration(
    duration: Option<&prost_types::Duration>,
    field: &str,
) -> Result<Duration, SubscriptionError> {
    duration.map_or(Ok(Duration::ZERO), |duration| {
        duration_from_pb(duration, field)
    })
}
