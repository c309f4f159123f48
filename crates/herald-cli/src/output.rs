//! Rendering of answers as text: aligned tables and key/value lines for people, JSON for scripts.
//!
//! Rendering is pure (values in, `String` out) so it is tested without a server; [`print`] is the
//! one place that writes to standard output. JSON uses the proto field names (`create_time`),
//! proto3's JSON forms for timestamps (RFC 3339) and `uint64` (a string), and the CloudEvents
//! Subscriptions API encoding for filters, the same one `--filter` accepts.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use herald_core::filter::Explanation;
use herald_core::{Event, Filter};
use herald_proto::v1 as pb;

use crate::args::OutputFormat;

mod consent;
#[cfg(test)]
mod tests;

/// Writes rendered output, followed by a newline, to standard output.
#[allow(clippy::print_stdout, reason = "the CLI's output is its purpose")]
pub(crate) fn print(text: &str) {
    println!("{text}");
}

/// Returns one subscription as aligned key/value lines.
pub(crate) fn subscription_lines(subscription: &pb::Subscription) -> String {
    let mut pairs = vec![("id", subscription.id.clone())];
    if !subscription.secret.is_empty() {
        pairs.push(("secret", subscription.secret.clone()));
    }
    pairs.extend([
        ("sink", subscription.sink.clone()),
        ("filters", filters_summary(&subscription.filters)),
        ("description", subscription.description.clone()),
        ("revision", subscription.revision.to_string()),
        ("created", time_summary(subscription.create_time.as_ref())),
        ("updated", time_summary(subscription.update_time.as_ref())),
    ]);
    if subscription.state() != pb::SubscriptionState::Unspecified {
        pairs.push(("state", state_summary(subscription)));
    }
    if let Some(consent) = consent::consent_summary(subscription) {
        pairs.push(("consent", consent));
    }
    if let Some(policy) = &subscription.retry_policy {
        pairs.push(("retry", policy_summary(policy)));
    }
    if let Some(delivery) = &subscription.delivery {
        pairs.push(("delivery", delivery_summary(delivery)));
    }
    if let Some(health) = &subscription.health {
        pairs.push(("health", health_summary(health)));
    }
    if subscription.signature_scheme() != pb::SignatureScheme::Unspecified {
        pairs.push(("signing", signing_summary(subscription)));
    }
    if !subscription.header_names.is_empty() {
        // Names only: Herald never returns the values.
        pairs.push(("headers", subscription.header_names.join(", ")));
    }
    if let Some(certificate) = &subscription.client_certificate {
        // What Herald returns of it: never the key.
        pairs.push((
            "client cert",
            format!(
                "{}, sha256 {}, expires {}",
                certificate.subject,
                certificate.fingerprint_sha256,
                time_summary(certificate.not_after.as_ref())
            ),
        ));
    }
    for warning in &subscription.warnings {
        pairs.push(("warning", warning.clone()));
    }
    let width = pairs.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {value}").trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Returns the signing line: the scheme, the public key of a v1a secret, and the retired
/// secrets still signing, with the end of their overlap.
fn signing_summary(subscription: &pb::Subscription) -> String {
    let mut text = scheme_name(subscription.signature_scheme()).to_owned();
    if !subscription.public_key.is_empty() {
        text.push_str(&format!(", public key {}", subscription.public_key));
    }
    for retired in &subscription.retired_secrets {
        text.push_str(&format!(
            "; also {} until {}",
            scheme_name(retired.signature_scheme()),
            time_summary(retired.expire_time.as_ref())
        ));
    }
    text
}

fn scheme_name(scheme: pb::SignatureScheme) -> &'static str {
    match scheme {
        pb::SignatureScheme::V1a => "v1a",
        pb::SignatureScheme::V1 | pb::SignatureScheme::Unspecified => "v1",
    }
}

/// Returns subscriptions as a table with columns ID, SINK, FILTERS, DELIVERY and CREATED.
pub(crate) fn subscriptions_table(subscriptions: &[pb::Subscription]) -> String {
    let rows: Vec<Vec<String>> = subscriptions
        .iter()
        .map(|subscription| {
            vec![
                subscription.id.clone(),
                subscription.sink.clone(),
                filters_summary(&subscription.filters),
                delivery_brief(subscription.delivery.as_ref()),
                time_summary(subscription.create_time.as_ref()),
            ]
        })
        .collect();
    table(&["ID", "SINK", "FILTERS", "DELIVERY", "CREATED"], &rows)
}

/// Returns one subscription as JSON.
pub(crate) fn subscription_json(subscription: &pb::Subscription) -> Value {
    let mut object = json!({
        "id": subscription.id,
        "sink": subscription.sink,
        "filters": subscription.filters.iter().map(filter_json).collect::<Vec<_>>(),
        "description": subscription.description,
        "create_time": time_json(subscription.create_time.as_ref()),
        "update_time": time_json(subscription.update_time.as_ref()),
        "revision": subscription.revision.to_string(),
        "protocol": subscription.protocol,
    });
    if !subscription.secret.is_empty() {
        object["secret"] = Value::String(subscription.secret.clone());
    }
    if subscription.state() != pb::SubscriptionState::Unspecified {
        object["state"] = json!(subscription.state().as_str_name());
        object["state_reason"] = json!(subscription.state_reason);
        object["state_change_time"] = time_json(subscription.state_change_time.as_ref());
    }
    if let Some(consent) = consent::consent_json(subscription) {
        object["consent"] = consent;
    }
    if let Some(policy) = &subscription.retry_policy {
        object["retry_policy"] = policy_json(policy);
    }
    if let Some(delivery) = &subscription.delivery {
        object["delivery"] = delivery_json(delivery);
    }
    if subscription.signature_scheme() != pb::SignatureScheme::Unspecified {
        object["signature_scheme"] = json!(scheme_name(subscription.signature_scheme()));
        if !subscription.public_key.is_empty() {
            object["public_key"] = json!(subscription.public_key);
        }
        object["retired_secrets"] = subscription
            .retired_secrets
            .iter()
            .map(|retired| {
                json!({
                    "signature_scheme": scheme_name(retired.signature_scheme()),
                    "public_key": retired.public_key,
                    "expire_time": time_json(retired.expire_time.as_ref()),
                })
            })
            .collect();
    }
    if !subscription.warnings.is_empty() {
        object["warnings"] = json!(subscription.warnings);
    }
    if !subscription.header_names.is_empty() {
        object["header_names"] = json!(subscription.header_names);
    }
    if let Some(certificate) = &subscription.client_certificate {
        object["client_certificate"] = json!({
            "fingerprint_sha256": certificate.fingerprint_sha256,
            "subject": certificate.subject,
            "not_after": time_json(certificate.not_after.as_ref()),
        });
    }
    if let Some(health) = &subscription.health {
        object["health"] = json!({
            "consecutive_failures": health.consecutive_failures.to_string(),
            "failing_since": time_json(health.failing_since.as_ref()),
            "last_success_time": time_json(health.last_success_time.as_ref()),
            "last_failure_time": time_json(health.last_failure_time.as_ref()),
        });
    }
    object
}

/// Returns a subscription's state in a few words: `active`, `paused since <time>`,
/// `disabled since <time>: <reason>` or `pending since <time>: <reason>`.
pub(crate) fn state_summary(subscription: &pb::Subscription) -> String {
    let since = time_summary(subscription.state_change_time.as_ref());
    match subscription.state() {
        pb::SubscriptionState::Active | pb::SubscriptionState::Unspecified => "active".to_owned(),
        pb::SubscriptionState::Paused => format!("paused since {since}"),
        pb::SubscriptionState::Disabled => {
            format!("disabled since {since}: {}", subscription.state_reason)
        }
        pb::SubscriptionState::Pending => {
            format!("pending since {since}: {}", subscription.state_reason)
        }
    }
}

/// Returns a retry policy on one line, e.g. `8 attempts, delays 5s 5m 30m, jitter 20%, max age
/// 3days, terminal 400 404`.
pub(crate) fn policy_summary(policy: &pb::RetryPolicy) -> String {
    let mut parts = vec![format!("{} attempts", policy.max_attempts)];
    match &policy.backoff {
        Some(pb::retry_policy::Backoff::Fixed(fixed)) => {
            let delays: Vec<String> = fixed.delays.iter().map(duration_summary).collect();
            parts.push(format!("delays {}", delays.join(" ")));
        }
        Some(pb::retry_policy::Backoff::Exponential(exponential)) => parts.push(format!(
            "exponential {} x{} up to {}",
            optional_duration_summary(exponential.initial.as_ref()),
            exponential.multiplier,
            optional_duration_summary(exponential.max_delay.as_ref()),
        )),
        None => parts.push("default delays".to_owned()),
    }
    if let Some(jitter) = policy.jitter_percent {
        parts.push(format!("jitter {jitter}%"));
    }
    parts.push(format!(
        "max age {}",
        optional_duration_summary(policy.max_age.as_ref())
    ));
    if !policy.terminal_status_codes.is_empty() {
        let codes: Vec<String> = policy
            .terminal_status_codes
            .iter()
            .map(ToString::to_string)
            .collect();
        parts.push(format!("terminal {}", codes.join(" ")));
    }
    parts.join(", ")
}

/// Returns delivery settings on one line, e.g. `rate 50/s burst 10, max in flight 8, ordered by
/// key, dead letters skip, binary mode`, or `no rate limit, default max in flight, unordered`
/// (structured mode, the default, is not named).
pub(crate) fn delivery_summary(settings: &pb::DeliverySettings) -> String {
    let rate = match &settings.rate_limit {
        Some(limit) => format!("rate {}/s burst {}", limit.per_second, limit.burst),
        None => "no rate limit".to_owned(),
    };
    let max_in_flight = match settings.max_in_flight {
        Some(max_in_flight) => format!("max in flight {max_in_flight}"),
        None => "default max in flight".to_owned(),
    };
    let ordering = match ordering_of(settings) {
        None => "unordered".to_owned(),
        Some(on_dead_letter) => format!("ordered by key, dead letters {on_dead_letter}"),
    };
    let mut parts = vec![rate, max_in_flight, ordering];
    if is_binary(settings) {
        parts.push("binary mode".to_owned());
    }
    if settings.parts > 1 {
        parts.push(format!("in {} parts", settings.parts));
    }
    parts.join(", ")
}

/// Returns the settings that differ from the defaults, briefly, for the list table: `50/s
/// burst 10, 8 in flight, by key (skip)`; `-` when every setting is the default.
pub(crate) fn delivery_brief(settings: Option<&pb::DeliverySettings>) -> String {
    let Some(settings) = settings else {
        return "-".to_owned();
    };
    let mut parts = Vec::new();
    if let Some(limit) = &settings.rate_limit {
        if limit.burst == limit.per_second {
            parts.push(format!("{}/s", limit.per_second));
        } else {
            parts.push(format!("{}/s burst {}", limit.per_second, limit.burst));
        }
    }
    if let Some(max_in_flight) = settings.max_in_flight {
        parts.push(format!("{max_in_flight} in flight"));
    }
    match ordering_of(settings) {
        None => {}
        Some("skip") => parts.push("by key (skip)".to_owned()),
        Some(_) => parts.push("by key".to_owned()),
    }
    if is_binary(settings) {
        parts.push("binary".to_owned());
    }
    if settings.parts > 1 {
        parts.push(format!("{} parts", settings.parts));
    }
    if parts.is_empty() {
        return "-".to_owned();
    }
    parts.join(", ")
}

/// Returns true when deliveries are in CloudEvents binary mode.
fn is_binary(settings: &pb::DeliverySettings) -> bool {
    settings.content_mode() == pb::delivery_settings::ContentMode::Binary
}

/// Returns `None` for an unordered subscription, otherwise what a dead letter does to its key
/// (`block` or `skip`).
fn ordering_of(settings: &pb::DeliverySettings) -> Option<&'static str> {
    use pb::delivery_settings::{OnDeadLetter, Ordering};
    match settings.ordering() {
        Ordering::Unspecified | Ordering::None => None,
        Ordering::Key => match settings.on_dead_letter() {
            OnDeadLetter::Unspecified | OnDeadLetter::Block => Some("block"),
            OnDeadLetter::Skip => Some("skip"),
        },
    }
}

/// Returns an endpoint's health on one line.
pub(crate) fn health_summary(health: &pb::EndpointHealth) -> String {
    let last_success = time_summary(health.last_success_time.as_ref());
    if health.consecutive_failures == 0 {
        return format!("healthy, last success {last_success}");
    }
    format!(
        "{} consecutive failures since {}, last success {last_success}",
        health.consecutive_failures,
        time_summary(health.failing_since.as_ref()),
    )
}

/// Returns dead letters as a table with columns SEQ, EVENT, TYPE, ATTEMPTS, REASON, DEAD and
/// LAST ERROR.
pub(crate) fn dead_letters_table(dead_letters: &[pb::DeadLetter]) -> String {
    let rows: Vec<Vec<String>> = dead_letters
        .iter()
        .map(|dead| {
            vec![
                dead.sequence.to_string(),
                dead.event_id.clone(),
                dead.event_type.clone(),
                dead.attempts.to_string(),
                dead.reason.clone(),
                time_summary(dead.dead_time.as_ref()),
                dead.last_error.clone(),
            ]
        })
        .collect();
    table(
        &[
            "SEQ",
            "EVENT",
            "TYPE",
            "ATTEMPTS",
            "REASON",
            "DEAD",
            "LAST ERROR",
        ],
        &rows,
    )
}

/// Returns a page of dead letters as JSON, shaped like `ListDeadLettersResponse` (the events
/// themselves are left out).
pub(crate) fn dead_letters_json(page: &pb::ListDeadLettersResponse) -> Value {
    let dead_letters: Vec<Value> = page
        .dead_letters
        .iter()
        .map(|dead| {
            json!({
                "sequence": dead.sequence.to_string(),
                "subscription_id": dead.subscription_id,
                "event_id": dead.event_id,
                "event_source": dead.event_source,
                "event_type": dead.event_type,
                "attempts": dead.attempts,
                "reason": dead.reason,
                "last_error": dead.last_error,
                "dead_time": time_json(dead.dead_time.as_ref()),
            })
        })
        .collect();
    json!({ "dead_letters": dead_letters, "next_page_token": page.next_page_token })
}

/// Returns attempts as a table with columns TIME, SUBSCRIPTION, EVENT, #, STATUS/CLASS,
/// DURATION, OUTCOME and NEXT.
pub(crate) fn attempts_table(attempts: &[pb::Attempt]) -> String {
    let rows: Vec<Vec<String>> = attempts
        .iter()
        .map(|attempt| {
            vec![
                time_summary(attempt.start_time.as_ref()),
                attempt.subscription_id.clone(),
                attempt.event_id.clone(),
                attempt.attempt.to_string(),
                status_summary(attempt),
                optional_duration_summary(attempt.duration.as_ref()),
                outcome_label(attempt.outcome()).to_owned(),
                time_summary(attempt.next_attempt_time.as_ref()),
            ]
        })
        .collect();
    table(
        &[
            "TIME",
            "SUBSCRIPTION",
            "EVENT",
            "#",
            "STATUS/CLASS",
            "DURATION",
            "OUTCOME",
            "NEXT",
        ],
        &rows,
    )
}

/// Returns one attempt as JSON with proto field names.
pub(crate) fn attempt_json(attempt: &pb::Attempt) -> Value {
    json!({
        "subscription_id": attempt.subscription_id,
        "event_id": attempt.event_id,
        "event_source": attempt.event_source,
        "event_type": attempt.event_type,
        "message_id": attempt.message_id,
        "attempt": attempt.attempt,
        "start_time": time_json(attempt.start_time.as_ref()),
        "duration": attempt.duration.as_ref().map_or(Value::Null, |d| json!(duration_json(d))),
        "status_code": attempt.status_code,
        "result_class": attempt.result_class,
        "error": attempt.error,
        "response_headers": attempt.response_headers,
        "response_body": attempt.response_body,
        "outcome": attempt.outcome().as_str_name(),
        "next_attempt_time": time_json(attempt.next_attempt_time.as_ref()),
    })
}

/// Returns a page of attempts as JSON, shaped like `ListAttemptsResponse`.
pub(crate) fn attempts_json(page: &pb::ListAttemptsResponse) -> Value {
    json!({
        "attempts": page.attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        "next_page_token": page.next_page_token,
    })
}

/// Longest part of a response body `sub test` prints (the attempt log keeps 4 KiB).
const TEST_BODY_SHOWN: usize = 2048;

/// Renders `sub test`: which event went where, then the endpoint's status and duration, the
/// recorded response headers and the start of the body, or why there was no answer.
pub(crate) fn test_send_lines(sent: &pb::SendTestEventResponse) -> String {
    let attempt = sent.attempt.clone().unwrap_or_default();
    let mut lines = vec![format!(
        "sent test event {} ({}) to {}",
        attempt.event_id, attempt.event_type, attempt.subscription_id
    )];
    let duration = optional_duration_summary(attempt.duration.as_ref());
    if attempt.status_code == 0 {
        lines.push(format!(
            "no answer: {} after {duration}: {}",
            attempt.result_class, attempt.error
        ));
    } else {
        lines.push(format!(
            "status {} ({}) in {duration}",
            attempt.status_code, attempt.result_class
        ));
    }
    for (name, value) in &attempt.response_headers {
        lines.push(format!("{name}: {value}"));
    }
    if !attempt.response_body.is_empty() {
        let shown: String = attempt
            .response_body
            .chars()
            .take(TEST_BODY_SHOWN)
            .collect();
        let cut = if shown.len() < attempt.response_body.len() {
            " [...]"
        } else {
            ""
        };
        lines.push(String::new());
        lines.push(format!("{shown}{cut}"));
    }
    if !sent.recorded {
        lines.push("warning: the attempt could not be stored in the attempt log".to_owned());
    }
    lines.join("\n")
}

/// Returns `sub test` as JSON: the attempt with proto field names, the event as sent, and
/// whether the attempt was recorded.
pub(crate) fn test_send_json(sent: &pb::SendTestEventResponse) -> Value {
    let event: Value = serde_json::from_slice(&sent.event).unwrap_or(Value::Null);
    json!({
        "attempt": sent.attempt.as_ref().map_or(Value::Null, attempt_json),
        "event": event,
        "recorded": sent.recorded,
    })
}

/// Returns an event's delivery status per subscription as a table with columns SUBSCRIPTION,
/// STATE, ATTEMPTS, LAST STATUS and LAST ATTEMPT.
pub(crate) fn statuses_table(statuses: &[pb::SubscriptionDeliveryStatus]) -> String {
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|status| {
            let last = status.last_attempt.as_ref();
            vec![
                status.subscription_id.clone(),
                delivery_state_label(status.state()).to_owned(),
                last.map_or("0".to_owned(), |attempt| attempt.attempt.to_string()),
                last.map_or("-".to_owned(), status_summary),
                time_summary(last.and_then(|attempt| attempt.start_time.as_ref())),
            ]
        })
        .collect();
    table(
        &[
            "SUBSCRIPTION",
            "STATE",
            "ATTEMPTS",
            "LAST STATUS",
            "LAST ATTEMPT",
        ],
        &rows,
    )
}

/// Returns an event's delivery status as JSON, shaped like `GetEventDeliveryStatusResponse`.
pub(crate) fn statuses_json(statuses: &[pb::SubscriptionDeliveryStatus]) -> Value {
    let statuses: Vec<Value> = statuses
        .iter()
        .map(|status| {
            json!({
                "subscription_id": status.subscription_id,
                "state": status.state().as_str_name(),
                "last_attempt": status.last_attempt.as_ref().map_or(Value::Null, attempt_json),
            })
        })
        .collect();
    json!({ "statuses": statuses })
}

/// Returns one replay progress report as a line of text or of JSON.
pub(crate) fn progress_line(progress: &pb::ReplayProgress, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json!({
            "scanned": progress.scanned.to_string(),
            "replayed": progress.replayed.to_string(),
            "last_sequence": progress.last_sequence.to_string(),
            "done": progress.done,
        })
        .to_string(),
        OutputFormat::Table => {
            let prefix = if progress.done { "done: " } else { "" };
            format!(
                "{prefix}scanned {}, replayed {}, at sequence {}",
                progress.scanned, progress.replayed, progress.last_sequence
            )
        }
    }
}

fn outcome_label(outcome: pb::AttemptOutcome) -> &'static str {
    herald_proto::attempt_outcome_label(outcome).unwrap_or("-")
}

fn delivery_state_label(state: pb::DeliveryState) -> &'static str {
    match state {
        pb::DeliveryState::Unspecified => "-",
        pb::DeliveryState::NotAttempted => "not attempted",
        pb::DeliveryState::Delivered => "delivered",
        pb::DeliveryState::Retrying => "retrying",
        pb::DeliveryState::Dead => "dead",
    }
}

/// The response status when there was one, otherwise why there was none (`timeout`).
fn status_summary(attempt: &pb::Attempt) -> String {
    if attempt.status_code == 0 {
        attempt.result_class.clone()
    } else {
        attempt.status_code.to_string()
    }
}

/// Returns a duration as people write it: `5s`, `1m 30s`, `3days`, `250ms`.
fn duration_summary(duration: &prost_types::Duration) -> String {
    match herald_proto::delivery::duration_from_pb(duration, "") {
        Ok(duration) => humantime::format_duration(duration).to_string(),
        Err(_) => "-".to_owned(),
    }
}

fn optional_duration_summary(duration: Option<&prost_types::Duration>) -> String {
    duration.map_or("-".to_owned(), duration_summary)
}

/// Returns proto3's JSON form of a duration: seconds with an `s` suffix, `1.500s`.
fn duration_json(duration: &prost_types::Duration) -> String {
    if duration.nanos == 0 {
        format!("{}s", duration.seconds)
    } else {
        let fraction = format!("{:09}", duration.nanos);
        format!("{}.{}s", duration.seconds, fraction.trim_end_matches("000"))
    }
}

fn policy_json(policy: &pb::RetryPolicy) -> Value {
    let durations = |durations: &[prost_types::Duration]| -> Vec<String> {
        durations.iter().map(duration_json).collect()
    };
    let optional = |duration: Option<&prost_types::Duration>| {
        duration.map_or(Value::Null, |duration| json!(duration_json(duration)))
    };
    let mut object = json!({
        "jitter_percent": policy.jitter_percent,
        "max_attempts": policy.max_attempts,
        "max_age": optional(policy.max_age.as_ref()),
        "terminal_status_codes": policy.terminal_status_codes,
    });
    match &policy.backoff {
        Some(pb::retry_policy::Backoff::Fixed(fixed)) => {
            object["fixed"] = json!({ "delays": durations(&fixed.delays) });
        }
        Some(pb::retry_policy::Backoff::Exponential(exponential)) => {
            object["exponential"] = json!({
                "initial": optional(exponential.initial.as_ref()),
                "multiplier": exponential.multiplier,
                "max_delay": optional(exponential.max_delay.as_ref()),
            });
        }
        None => {}
    }
    object
}

fn delivery_json(settings: &pb::DeliverySettings) -> Value {
    json!({
        "rate_limit": settings.rate_limit.as_ref().map_or(Value::Null, |limit| json!({
            "per_second": limit.per_second,
            "burst": limit.burst,
        })),
        "max_in_flight": settings.max_in_flight,
        "ordering": settings.ordering().as_str_name(),
        "on_dead_letter": settings.on_dead_letter().as_str_name(),
        "content_mode": settings.content_mode().as_str_name(),
        "parts": settings.parts.max(1),
    })
}

/// Returns a list of subscriptions as JSON, shaped like `ListSubscriptionsResponse`.
/// Renders `sub explain`: a verdict line naming the deciding filter, then one row per filter,
/// nested ones indented under their parent.
pub(crate) fn explanation_lines(
    subscription: &pb::Subscription,
    event: &Event,
    explanation: &Explanation,
) -> String {
    let verdict = match &explanation.decided_by {
        None if subscription.filters.is_empty() => {
            "matches: the subscription has no filters".to_owned()
        }
        None => "matches: every filter matched".to_owned(),
        Some(path) => format!("does not match: decided by {path}"),
    };
    let heading = format!(
        "event {} ({}) for {}: {verdict}",
        event.id(),
        event.ty(),
        subscription.id
    );
    if explanation.steps.is_empty() {
        return heading;
    }
    let rows: Vec<Vec<String>> = explanation
        .steps
        .iter()
        .map(|step| {
            vec![
                format!("{}{}", "  ".repeat(step.depth), step.path),
                step.dialect.to_owned(),
                step.outcome.as_str().to_owned(),
                step.value.clone().unwrap_or_default(),
                step.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let rows = table(&["FILTER", "DIALECT", "OUTCOME", "VALUE", "ERROR"], &rows);
    format!("{heading}\n{rows}")
}

/// Returns `sub explain` as JSON: the verdict and every filter's step.
pub(crate) fn explanation_json(
    subscription: &pb::Subscription,
    event: &Event,
    explanation: &Explanation,
) -> Value {
    let steps: Vec<Value> = explanation
        .steps
        .iter()
        .map(|step| {
            json!({
                "path": step.path,
                "dialect": step.dialect,
                "depth": step.depth,
                "outcome": step.outcome.as_str(),
                "value": step.value,
                "error": step.error,
            })
        })
        .collect();
    json!({
        "subscription": subscription.id,
        "event": { "id": event.id(), "source": event.source(), "type": event.ty() },
        "matched": explanation.matched,
        "decided_by": explanation.decided_by,
        "filters": steps,
    })
}

pub(crate) fn subscriptions_json(subscriptions: &[pb::Subscription]) -> Value {
    json!({
        "subscriptions": subscriptions.iter().map(subscription_json).collect::<Vec<_>>(),
    })
}

/// Returns a JSON value as indented text.
pub(crate) fn json_text(value: &Value) -> String {
    // A `Value` always serializes; `to_string` is the compact fallback all the same.
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Returns columns padded to their widest cell, separated by two spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header_cells: Vec<String> = headers.iter().map(|header| (*header).to_owned()).collect();
    std::iter::once(&header_cells)
        .chain(rows)
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Returns a one-line summary of filters: `name=value` for exact, `^=` for prefix, `$=` for
/// suffix, `&` for all, `|` for any, `!` for not, `sql(...)` and `cel(...)` for expressions;
/// `*` when every event matches.
pub(crate) fn filters_summary(filters: &[pb::Filter]) -> String {
    if filters.is_empty() {
        return "*".to_owned();
    }
    match herald_proto::filters_from_pb(filters) {
        Ok(filters) if filters.len() == 1 => render(&filters[0]).0,
        Ok(filters) => join(&filters, " & ", Precedence::And),
        Err(err) => format!("<unreadable filters: {err}>"),
    }
}

/// How tightly a rendered filter binds, to decide where parentheses are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precedence {
    Atom,
    And,
    Or,
}

fn render(filter: &Filter) -> (String, Precedence) {
    let attributes = |pairs: &std::collections::BTreeMap<String, String>, operator: &str| {
        let text = pairs
            .iter()
            .map(|(name, value)| format!("{name}{operator}{value}"))
            .collect::<Vec<_>>()
            .join(" & ");
        let precedence = if pairs.len() > 1 {
            Precedence::And
        } else {
            Precedence::Atom
        };
        (text, precedence)
    };
    match filter {
        Filter::Exact(pairs) => attributes(pairs, "="),
        Filter::Prefix(pairs) => attributes(pairs, "^="),
        Filter::Suffix(pairs) => attributes(pairs, "$="),
        Filter::All(filters) if filters.len() == 1 => render(&filters[0]),
        Filter::Any(filters) if filters.len() == 1 => render(&filters[0]),
        Filter::All(filters) => (join(filters, " & ", Precedence::And), Precedence::And),
        Filter::Any(filters) => (join(filters, " | ", Precedence::Or), Precedence::Or),
        Filter::Sql(expression) => (format!("sql({expression})"), Precedence::Atom),
        Filter::Cel(expression) => (format!("cel({expression})"), Precedence::Atom),
        Filter::Not(filter) => {
            let (text, precedence) = render(filter);
            match precedence {
                Precedence::Atom => (format!("!{text}"), Precedence::Atom),
                _ => (format!("!({text})"), Precedence::Atom),
            }
        }
    }
}

/// Joins filters with `separator`, parenthesizing those that bind more loosely than, or
/// differently from, the surrounding operator.
fn join(filters: &[Filter], separator: &str, context: Precedence) -> String {
    filters
        .iter()
        .map(|filter| {
            let (text, precedence) = render(filter);
            if precedence == Precedence::Atom || precedence == context {
                text
            } else {
                format!("({text})")
            }
        })
        .collect::<Vec<_>>()
        .join(separator)
}

fn filter_json(filter: &pb::Filter) -> Value {
    match Filter::try_from(filter) {
        Ok(filter) => serde_json::to_value(filter)
            .unwrap_or_else(|err| Value::String(format!("<unreadable filter: {err}>"))),
        Err(err) => Value::String(format!("<unreadable filter: {err}>")),
    }
}

fn instant(timestamp: Option<&prost_types::Timestamp>) -> Option<OffsetDateTime> {
    timestamp.and_then(|timestamp| herald_proto::timestamp_from_pb(timestamp).ok())
}

/// Returns a timestamp to the second, `2025-01-02T03:04:05Z`, or `-` when absent.
pub(crate) fn time_summary(timestamp: Option<&prost_types::Timestamp>) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    instant(timestamp)
        .and_then(|instant| instant.format(&format).ok())
        .unwrap_or_else(|| "-".to_owned())
}

pub(crate) fn time_json(timestamp: Option<&prost_types::Timestamp>) -> Value {
    instant(timestamp)
        .and_then(|instant| instant.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}
