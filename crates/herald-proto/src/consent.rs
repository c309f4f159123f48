//! Conversions of endpoint consent: the per-subscription mode and the endpoint's last answer.

use herald_core::subscription::consent::{ConsentMode, ConsentStatus, EndpointConsent, GrantedBy};
use herald_core::subscription::{Sink, SubscriptionError};

use crate::convert::timestamp_to_pb;
use crate::v1 as pb;

/// Returns the wire form of a consent mode.
pub fn consent_mode_to_pb(mode: ConsentMode) -> pb::ConsentMode {
    match mode {
        ConsentMode::Required => pb::ConsentMode::Required,
        ConsentMode::Optional => pb::ConsentMode::Optional,
        ConsentMode::Off => pb::ConsentMode::Off,
    }
}

/// Converts a request's consent mode; `None` when unspecified, an error naming `consent` when
/// unknown.
pub fn consent_mode_from_pb(value: i32) -> Result<Option<ConsentMode>, SubscriptionError> {
    match pb::ConsentMode::try_from(value) {
        Ok(pb::ConsentMode::Unspecified) => Ok(None),
        Ok(pb::ConsentMode::Required) => Ok(Some(ConsentMode::Required)),
        Ok(pb::ConsentMode::Optional) => Ok(Some(ConsentMode::Optional)),
        Ok(pb::ConsentMode::Off) => Ok(Some(ConsentMode::Off)),
        Err(_) => Err(SubscriptionError::new(
            "consent",
            format!("unknown consent mode {value}: use required, optional or off"),
        )),
    }
}

/// Returns the wire form of an endpoint's last answer, given the subscription's `sink`: the
/// answer names its sink by digest only, so the sink is shown when the answer is about it, and
/// nothing when it is about an earlier one.
pub fn endpoint_consent_to_pb(consent: &EndpointConsent, sink: &Sink) -> pb::EndpointConsent {
    let (granted, allowed_rate_per_minute, detail) = match &consent.status {
        ConsentStatus::Granted {
            allowed_per_minute,
            by,
        } => {
            let by = match by {
                GrantedBy::Handshake => "handshake",
                GrantedBy::Callback => "callback",
            };
            (true, *allowed_per_minute, by.to_owned())
        }
        ConsentStatus::NotGranted { reason } => (false, None, reason.clone()),
    };
    pb::EndpointConsent {
        sink: if consent.is_for(sink) {
            sink.as_str().to_owned()
        } else {
            String::new()
        },
        origin: consent.origin.clone(),
        granted,
        allowed_rate_per_minute,
        detail,
        check_time: Some(timestamp_to_pb(consent.checked_at)),
        callback_expire_time: consent
            .callback
            .as_ref()
            .map(|callback| timestamp_to_pb(callback.expires_at)),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use herald_core::subscription::consent::ConsentCallback;

    use super::*;

    #[test]
    fn modes_round_trip_and_unknown_ones_name_the_field() {
        for mode in [
            ConsentMode::Required,
            ConsentMode::Optional,
            ConsentMode::Off,
        ] {
            let wire = consent_mode_to_pb(mode) as i32;
            assert_eq!(consent_mode_from_pb(wire), Ok(Some(mode)));
        }
        assert_eq!(consent_mode_from_pb(0), Ok(None));
        assert_eq!(consent_mode_from_pb(99).unwrap_err().field, "consent");
    }

    #[test]
    fn an_answer_shows_its_rate_reason_and_callback() {
        let sink = Sink::parse("https://example.com/hook?token=t0ken").unwrap();
        let consent = EndpointConsent {
            sink_digest: sink.digest(),
            origin: "events.example.com".to_owned(),
            status: ConsentStatus::Granted {
                allowed_per_minute: Some(300),
                by: GrantedBy::Callback,
            },
            checked_at: datetime!(2026-12-02 08:00 UTC),
            callback: Some(ConsentCallback {
                token_hash: "00".to_owned(),
                expires_at: datetime!(2026-12-02 09:00 UTC),
            }),
        };
        let wire = endpoint_consent_to_pb(&consent, &sink);
        assert_eq!(wire.sink, "https://example.com/hook?token=t0ken");
        assert!(wire.granted);
        assert_eq!(wire.allowed_rate_per_minute, Some(300));
        assert_eq!(wire.detail, "callback");
        assert_eq!(wire.callback_expire_time.unwrap().seconds, 1_796_202_000);
        let refused = EndpointConsent {
            status: ConsentStatus::NotGranted {
                reason: "405".to_owned(),
            },
            callback: None,
            ..consent
        };
        let wire = endpoint_consent_to_pb(&refused, &sink);
        assert!(!wire.granted);
        assert_eq!(wire.allowed_rate_per_minute, None);
        assert_eq!(wire.detail, "405");
        assert_eq!(wire.callback_expire_time, None);
    }

    #[test]
    fn an_answer_about_an_earlier_sink_shows_no_sink() {
        let earlier = Sink::parse("https://example.com/old?token=t0ken").unwrap();
        let consent = EndpointConsent {
            sink_digest: earlier.digest(),
            origin: "events.example.com".to_owned(),
            status: ConsentStatus::NotGranted {
                reason: "405".to_owned(),
            },
            checked_at: datetime!(2026-12-02 08:00 UTC),
            callback: None,
        };
        let current = Sink::parse("https://example.com/new").unwrap();
        assert_eq!(endpoint_consent_to_pb(&consent, &current).sink, "");
        assert_eq!(
            endpoint_consent_to_pb(&consent, &earlier).sink,
            earlier.as_str()
        );
    }
}
