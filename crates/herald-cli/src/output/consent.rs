//! How a subscription's endpoint consent is shown: its mode and the endpoint's last answer.

use serde_json::{Value, json};

use herald_proto::v1 as pb;

use super::time_summary;

/// Returns the consent line, e.g. `required, granted by handshake (300/min allowed)` or
/// `optional, not granted: <why>`; `None` when the answer carries no mode.
pub(crate) fn consent_summary(subscription: &pb::Subscription) -> Option<String> {
    let mode = mode_name(subscription.consent())?;
    let Some(consent) = &subscription.endpoint_consent else {
        return Some(if mode == "off" {
            mode.to_owned()
        } else {
            format!("{mode}, not asked yet")
        });
    };
    let mut text = if consent.granted {
        let rate = match consent.allowed_rate_per_minute {
            Some(rate) => format!("{rate}/min allowed"),
            None => "no rate limit from the endpoint".to_owned(),
        };
        format!("{mode}, granted by {} ({rate})", consent.detail)
    } else {
        format!("{mode}, not granted: {}", consent.detail)
    };
    text.push_str(&format!(
        ", origin {}, checked {}",
        consent.origin,
        time_summary(consent.check_time.as_ref())
    ));
    if consent.callback_expire_time.is_some() && !consent.granted {
        text.push_str(&format!(
            ", callback valid until {}",
            time_summary(consent.callback_expire_time.as_ref())
        ));
    }
    Some(text)
}

/// Returns the consent fields of a subscription's JSON form; `None` without a mode.
pub(crate) fn consent_json(subscription: &pb::Subscription) -> Option<Value> {
    let mode = mode_name(subscription.consent())?;
    let answer = subscription.endpoint_consent.as_ref().map(|consent| {
        json!({
            "sink": consent.sink,
            "origin": consent.origin,
            "granted": consent.granted,
            "allowed_rate_per_minute": consent.allowed_rate_per_minute,
            "detail": consent.detail,
            "check_time": super::time_json(consent.check_time.as_ref()),
            "callback_expire_time": super::time_json(consent.callback_expire_time.as_ref()),
        })
    });
    Some(json!({ "mode": mode, "endpoint": answer }))
}

fn mode_name(mode: pb::ConsentMode) -> Option<&'static str> {
    match mode {
        pb::ConsentMode::Unspecified => None,
        pb::ConsentMode::Required => Some("required"),
        pb::ConsentMode::Optional => Some("optional"),
        pb::ConsentMode::Off => Some("off"),
    }
}
