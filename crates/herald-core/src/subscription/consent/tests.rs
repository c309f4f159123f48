//! Consent tests: judging answers, callbacks, pending and active, the effective rate.

use time::macros::datetime;

use super::*;
use crate::subscription::DeliverySettings;

const NOW: OffsetDateTime = datetime!(2026-12-02 08:00 UTC);
const ORIGIN: &str = "events.example.com";

fn sink(text: &str) -> Sink {
    Sink::parse(text).unwrap()
}

fn answered(status: u16, origin: Option<&str>, rate: Option<&str>) -> HandshakeOutcome {
    HandshakeOutcome::Answered {
        status,
        allowed_origin: origin.map(str::to_owned),
        allowed_rate: rate.map(str::to_owned),
    }
}

fn reason(status: &ConsentStatus) -> &str {
    match status {
        ConsentStatus::NotGranted { reason } => reason,
        ConsentStatus::Granted { .. } => panic!("granted: {status:?}"),
    }
}

#[test]
fn an_answer_with_the_origin_or_a_star_grants_at_its_allowed_rate() {
    let granted = |allowed_per_minute| ConsentStatus::Granted {
        allowed_per_minute,
        by: GrantedBy::Handshake,
    };
    let cases = [
        (answered(200, Some(ORIGIN), Some("300")), granted(Some(300))),
        (answered(204, Some("*"), Some("*")), granted(None)),
        (
            answered(200, Some("EVENTS.example.com"), None),
            granted(None),
        ),
        (answered(200, Some(" * "), Some(" 5 ")), granted(Some(5))),
    ];
    for (outcome, expected) in cases {
        assert_eq!(judge(ORIGIN, &outcome, None), expected, "{outcome:?}");
    }
}

#[test]
fn refusals_say_why_and_mention_a_callback_still_open() {
    let cases = [
        (
            answered(200, Some("other.example"), Some("5")),
            "the endpoint allows the origin `other.example`, not `events.example.com`",
        ),
        (
            answered(405, None, None),
            "the endpoint answered the validation request (OPTIONS) with status 405",
        ),
        (
            answered(403, Some(ORIGIN), None),
            "the endpoint answered the validation request (OPTIONS) with status 403",
        ),
        (
            answered(200, None, None),
            "the endpoint answered the validation request (OPTIONS) with status 200 but without \
             WebHook-Allowed-Origin",
        ),
        (
            answered(200, Some(ORIGIN), Some("0")),
            "WebHook-Allowed-Rate `0` is neither a positive integer (requests per minute) nor `*`",
        ),
        (
            answered(200, Some(ORIGIN), Some("fast")),
            "WebHook-Allowed-Rate `fast` is neither a positive integer (requests per minute) nor `*`",
        ),
        (
            HandshakeOutcome::Failed {
                error: "connect error".to_owned(),
            },
            "the validation request (OPTIONS) failed: connect error",
        ),
    ];
    for (outcome, expected) in cases {
        assert_eq!(reason(&judge(ORIGIN, &outcome, None)), expected);
    }
    let waiting = judge(
        ORIGIN,
        &answered(200, None, None),
        Some(datetime!(2026-12-02 09:00 UTC)),
    );
    assert!(
        reason(&waiting).ends_with(
            "; it may still consent on the callback URL offered, until 2026-12-02T09:00:00Z"
        ),
        "{waiting:?}"
    );
}

#[test]
fn callback_tokens_round_trip_and_only_their_hash_is_stored() {
    let id = SubscriptionId::from_ulid(ulid::Ulid::nil());
    let token = CallbackToken::new(id.clone(), [7; CALLBACK_SECRET_BYTES]);
    let text = token.expose();
    assert!(
        text.starts_with("sub_00000000000000000000000000."),
        "{text}"
    );
    assert_eq!(CallbackToken::parse(&text), Some(token.clone()));
    assert_eq!(token.hash().len(), 64);
    assert!(!token.hash().contains(text.split_once('.').unwrap().1));
    assert!(!format!("{token:?}").contains(text.split_once('.').unwrap().1));
    let base = url::Url::parse("https://herald.example.com/").unwrap();
    assert_eq!(
        token.url(&base),
        format!("https://herald.example.com/v1/consent/{text}")
    );
    for bad in [
        "",
        "sub_00000000000000000000000000",
        "sub_00000000000000000000000000.",
        "sub_00000000000000000000000000.short",
        "nope.BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc",
        "sub_00000000000000000000000000.!!!",
    ] {
        assert_eq!(CallbackToken::parse(bad), None, "{bad}");
    }
}

fn pending_view(token: &CallbackToken, expires_at: OffsetDateTime) -> ConsentView {
    let sink = sink("https://example.com/hook");
    let mut view = ConsentView {
        sink_digest: sink.digest(),
        state: State::Active,
        consent: ConsentMode::Required,
        endpoint_consent: Some(EndpointConsent {
            sink_digest: sink.digest(),
            origin: ORIGIN.to_owned(),
            status: judge(ORIGIN, &answered(200, None, None), Some(expires_at)),
            checked_at: NOW,
            callback: Some(token.callback(expires_at)),
        }),
        updated_at: NOW,
    };
    settle(
        &mut view.state,
        view.consent,
        view.endpoint_consent.as_ref(),
        &sink.digest(),
        NOW,
    );
    view
}

#[test]
fn a_valid_callback_activates_a_pending_subscription_at_its_rate() {
    let id = SubscriptionId::from_ulid(ulid::Ulid::nil());
    let token = CallbackToken::new(id, [1; CALLBACK_SECRET_BYTES]);
    let mut view = pending_view(&token, datetime!(2026-12-02 09:00 UTC));
    assert!(matches!(view.state, State::Pending { .. }), "{view:?}");
    let later = datetime!(2026-12-02 08:30 UTC);
    view.confirm(&token, Some("120"), later).unwrap();
    assert_eq!(view.state, State::Active);
    assert_eq!(view.updated_at, later);
    let consent = view.endpoint_consent.as_ref().unwrap();
    assert_eq!(
        consent.status,
        ConsentStatus::Granted {
            allowed_per_minute: Some(120),
            by: GrantedBy::Callback
        }
    );
    // Confirming again (a browser's second request) changes nothing but the time.
    view.confirm(&token, None, later).unwrap();
    assert_eq!(view.state, State::Active);
}

#[test]
fn unknown_expired_and_badly_rated_callbacks_are_refused() {
    let id = SubscriptionId::from_ulid(ulid::Ulid::nil());
    let token = CallbackToken::new(id.clone(), [1; CALLBACK_SECRET_BYTES]);
    let other = CallbackToken::new(id, [2; CALLBACK_SECRET_BYTES]);
    let expires_at = datetime!(2026-12-02 09:00 UTC);
    let mut view = pending_view(&token, expires_at);
    let before = view.clone();
    assert_eq!(
        view.confirm(&other, None, NOW),
        Err(CallbackRefusal::Unknown)
    );
    assert_eq!(
        view.confirm(&token, None, expires_at),
        Err(CallbackRefusal::Expired(expires_at))
    );
    assert!(matches!(
        view.confirm(&token, Some("-1"), NOW),
        Err(CallbackRefusal::BadRate(_))
    ));
    assert_eq!(view, before, "a refused callback changes nothing");
    // A callback offered for another sink is void for the current one.
    view.sink_digest = sink("https://example.com/moved").digest();
    assert_eq!(
        view.confirm(&token, None, NOW),
        Err(CallbackRefusal::Unknown)
    );
}

#[test]
fn only_required_consent_makes_a_subscription_pending_and_paused_stays_paused() {
    let hook = sink("https://example.com/hook");
    let granted = EndpointConsent {
        sink_digest: hook.digest(),
        origin: ORIGIN.to_owned(),
        status: ConsentStatus::Granted {
            allowed_per_minute: None,
            by: GrantedBy::Handshake,
        },
        checked_at: NOW,
        callback: None,
    };
    let refused = EndpointConsent {
        status: ConsentStatus::NotGranted {
            reason: "no".to_owned(),
        },
        ..granted.clone()
    };
    let moved = EndpointConsent {
        sink_digest: sink("https://example.com/old").digest(),
        ..granted.clone()
    };
    let state_after = |state: State, mode, consent: Option<&EndpointConsent>| {
        let mut state = state;
        settle(&mut state, mode, consent, &hook.digest(), NOW);
        state
    };
    let pending = |reason: &str| State::Pending {
        reason: format!("waiting for the endpoint's consent: {reason}"),
        since: NOW,
    };
    use ConsentMode::{Off, Optional, Required};
    assert_eq!(
        state_after(State::Active, Required, None),
        pending("not asked yet")
    );
    assert_eq!(
        state_after(State::Active, Required, Some(&refused)),
        pending("no")
    );
    assert_eq!(
        state_after(State::Active, Required, Some(&moved)),
        pending("the sink changed since its last answer")
    );
    assert_eq!(
        state_after(State::Active, Required, Some(&granted)),
        State::Active
    );
    assert_eq!(
        state_after(pending("no"), Required, Some(&granted)),
        State::Active
    );
    assert_eq!(
        state_after(pending("no"), Optional, Some(&refused)),
        State::Active
    );
    assert_eq!(state_after(pending("no"), Off, None), State::Active);
    assert_eq!(
        state_after(State::Active, Optional, Some(&refused)),
        State::Active
    );
    let paused = State::Paused { since: NOW };
    assert_eq!(state_after(paused.clone(), Required, None), paused);
    // A pending subscription keeps the time it became pending.
    let earlier = State::Pending {
        reason: "old".to_owned(),
        since: datetime!(2026-12-01 00:00 UTC),
    };
    assert_eq!(
        state_after(earlier, Required, Some(&refused)),
        State::Pending {
            reason: "waiting for the endpoint's consent: no".to_owned(),
            since: datetime!(2026-12-01 00:00 UTC),
        }
    );
}

#[test]
fn a_handshake_answer_never_undoes_a_callback_granted_meanwhile() {
    let hook = sink("https://example.com/hook");
    let by_callback = EndpointConsent {
        sink_digest: hook.digest(),
        origin: ORIGIN.to_owned(),
        status: ConsentStatus::Granted {
            allowed_per_minute: Some(60),
            by: GrantedBy::Callback,
        },
        checked_at: NOW,
        callback: None,
    };
    let refused = EndpointConsent {
        status: ConsentStatus::NotGranted {
            reason: "405".to_owned(),
        },
        ..by_callback.clone()
    };
    let mut current = by_callback.clone();
    current.merge_handshake(refused);
    assert_eq!(current, by_callback);
    let granted = EndpointConsent {
        status: ConsentStatus::Granted {
            allowed_per_minute: None,
            by: GrantedBy::Handshake,
        },
        ..by_callback.clone()
    };
    current.merge_handshake(granted.clone());
    assert_eq!(current, granted);
}

fn subscription(rate_limit: Option<RateLimit>, consent: ConsentMode) -> Subscription {
    let json = r#"{"id":"sub_00000000000000000000000000","sink":"https://example.com/hook","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","created_at":"2026-11-22T10:00:00Z","updated_at":"2026-11-22T10:00:00Z"}"#;
    let mut subscription: Subscription = serde_json::from_str(json).unwrap();
    subscription.delivery = DeliverySettings {
        rate_limit,
        ..DeliverySettings::default()
    };
    subscription.consent = consent;
    subscription
}

fn granted_at(subscription: &mut Subscription, allowed_per_minute: Option<u32>) {
    let recorded = subscription.record_handshake(
        EndpointConsent {
            sink_digest: subscription.sink.digest(),
            origin: ORIGIN.to_owned(),
            status: ConsentStatus::Granted {
                allowed_per_minute,
                by: GrantedBy::Handshake,
            },
            checked_at: NOW,
            callback: None,
        },
        NOW,
    );
    assert!(recorded);
}

#[test]
fn the_allowed_rate_caps_the_configured_one_and_both_stay_stored() {
    let limit = |per_second, burst| Some(RateLimit { per_second, burst });
    let pace = |millis, burst| Pace {
        interval: Duration::from_millis(millis),
        burst,
    };
    // (configured, allowed per minute, mode, effective)
    let cases = [
        (None, None, ConsentMode::Required, None),
        (
            limit(10, 20),
            None,
            ConsentMode::Required,
            Some(pace(100, 20)),
        ),
        (None, Some(300), ConsentMode::Required, Some(pace(200, 5))),
        (
            limit(10, 20),
            Some(300),
            ConsentMode::Optional,
            Some(pace(200, 5)),
        ),
        (
            limit(2, 100),
            Some(300),
            ConsentMode::Required,
            Some(pace(500, 5)),
        ),
        (None, Some(5), ConsentMode::Required, Some(pace(12_000, 1))),
        // Consent off: whatever was recorded before is not applied.
        (
            limit(10, 20),
            Some(300),
            ConsentMode::Off,
            Some(pace(100, 20)),
        ),
    ];
    for (configured, allowed, mode, expected) in cases {
        let mut subscription = subscription(configured, mode);
        granted_at(&mut subscription, allowed);
        assert_eq!(
            subscription.effective_rate_limit(),
            expected,
            "{configured:?} {allowed:?} {mode:?}"
        );
        assert_eq!(subscription.delivery.rate_limit, configured);
    }
    // Consent for an old sink caps nothing.
    let mut moved = subscription(None, ConsentMode::Required);
    granted_at(&mut moved, Some(5));
    moved.sink = sink("https://example.com/moved");
    assert_eq!(moved.effective_rate_limit(), None);
    assert_eq!(
        subscription(limit(3, 1), ConsentMode::Required).requested_rate_per_minute(),
        Some(180)
    );
    // Split among parts, the shares together keep the pace.
    assert_eq!(pace(200, 5).divided(4), pace(800, 1));
    assert_eq!(pace(200, 8).divided(1), pace(200, 8));
}

#[test]
fn an_answer_for_a_sink_changed_meanwhile_is_not_recorded() {
    let mut subscription = subscription(None, ConsentMode::Required);
    subscription.settle_consent(NOW);
    let stale = EndpointConsent {
        sink_digest: sink("https://example.com/old").digest(),
        origin: ORIGIN.to_owned(),
        status: ConsentStatus::Granted {
            allowed_per_minute: None,
            by: GrantedBy::Handshake,
        },
        checked_at: NOW,
        callback: None,
    };
    assert!(!subscription.record_handshake(stale, NOW));
    assert!(matches!(subscription.state, State::Pending { .. }));
    assert!(!subscription.has_consent());
    granted_at(&mut subscription, None);
    assert_eq!(subscription.state, State::Active);
    assert!(subscription.has_consent());
}

#[test]
fn stored_documents_without_consent_are_off_and_consent_round_trips() {
    let old = subscription(None, ConsentMode::Off);
    assert_eq!(old.consent, ConsentMode::Off);
    assert_eq!(old.endpoint_consent, None);
    let json = serde_json::to_string(&old).unwrap();
    assert!(!json.contains("consent"), "{json}");
    let mut required = subscription(None, ConsentMode::Required);
    required.settle_consent(NOW);
    let token = CallbackToken::new(required.id.clone(), [3; CALLBACK_SECRET_BYTES]);
    required.endpoint_consent = Some(EndpointConsent {
        sink_digest: required.sink.digest(),
        origin: ORIGIN.to_owned(),
        status: ConsentStatus::NotGranted {
            reason: "405".to_owned(),
        },
        checked_at: NOW,
        callback: Some(token.callback(datetime!(2026-12-02 09:00 UTC))),
    });
    let json = serde_json::to_string(&required).unwrap();
    assert!(
        json.contains(r#""state":{"state":"pending","reason":"waiting for the endpoint's consent: not asked yet","since":"2026-12-02T08:00:00Z"}"#),
        "{json}"
    );
    assert!(json.contains(r#""consent":"required""#), "{json}");
    assert_eq!(
        serde_json::from_str::<Subscription>(&json).unwrap(),
        required
    );
    // The answer names its sink by digest only.
    assert!(
        json.contains(&format!(
            r#""sink_digest":"{}""#,
            required.sink.digest().as_str()
        )),
        "{json}"
    );
    assert_eq!(
        json.matches("https://example.com/hook").count(),
        1,
        "{json}"
    );
    // The consent view reads the digest the store puts beside the sink.
    let mut document: serde_json::Value = serde_json::from_str(&json).unwrap();
    document["sink_digest"] = serde_json::json!(required.sink.digest());
    let view: ConsentView = serde_json::from_value(document).unwrap();
    assert_eq!(view.endpoint_consent, required.endpoint_consent);
    assert_eq!(view.state, required.state);
    assert!(view.sink_digest.is_of(&required.sink));
}

#[test]
fn a_consent_answer_stored_with_the_sink_url_reads_as_its_digest_and_still_grants() {
    // As stored before answers named their sink by digest.
    let json = r#"{"id":"sub_00000000000000000000000000","sink":"https://example.com/hook?t=1","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","created_at":"2026-11-22T10:00:00Z","updated_at":"2026-11-22T10:00:00Z","consent":"required","endpoint_consent":{"sink":"https://example.com/hook?t=1","origin":"events.example.com","status":{"status":"granted","by":"handshake"},"checked_at":"2026-11-22T10:00:00Z"}}"#;
    let subscription: Subscription = serde_json::from_str(json).unwrap();
    assert!(subscription.has_consent());
    assert_eq!(subscription.consented_origin(), Some(ORIGIN));
    let written = serde_json::to_string(&subscription).unwrap();
    assert_eq!(
        written.matches("https://example.com/hook?t=1").count(),
        1,
        "{written}"
    );
    let mut document: serde_json::Value = serde_json::from_str(json).unwrap();
    document["sink_digest"] = serde_json::json!(subscription.sink.digest());
    let mut view: ConsentView = serde_json::from_value(document).unwrap();
    let granted = view.clone();
    view.state = State::Pending {
        reason: "x".to_owned(),
        since: NOW,
    };
    settle(
        &mut view.state,
        view.consent,
        view.endpoint_consent.as_ref(),
        &granted.sink_digest,
        NOW,
    );
    assert_eq!(view.state, State::Active);
}

#[test]
fn deliveries_name_the_origin_only_once_the_endpoint_consented_and_never_with_consent_off() {
    for mode in [ConsentMode::Required, ConsentMode::Optional] {
        let mut subscription = subscription(None, mode);
        assert_eq!(subscription.consented_origin(), None, "{mode:?}: not asked");
        granted_at(&mut subscription, None);
        assert_eq!(subscription.consented_origin(), Some(ORIGIN), "{mode:?}");
        // A changed sink forgets the consent.
        subscription.sink = sink("https://example.com/other");
        assert_eq!(subscription.consented_origin(), None, "{mode:?}: new sink");
    }
    let mut subscription = subscription(None, ConsentMode::Required);
    granted_at(&mut subscription, None);
    subscription.consent = ConsentMode::Off;
    assert_eq!(subscription.consented_origin(), None, "consent off");
}

#[test]
fn a_pending_endpoint_is_asked_again_after_waits_doubling_from_the_first_to_the_maximum() {
    let first = Duration::from_secs(60);
    let max = Duration::from_secs(3600);
    let mut pending = subscription(None, ConsentMode::Required);
    pending.settle_consent(NOW);
    assert!(matches!(pending.state, State::Pending { .. }));
    // Never asked (the answer was not recorded): one wait after it became pending.
    assert_eq!(
        pending.next_consent_recheck(first, max),
        Some(NOW + time::Duration::minutes(1))
    );
    let mut asked_at = |minutes: i64| {
        let at = NOW + time::Duration::minutes(minutes);
        pending.record_handshake(
            EndpointConsent {
                sink_digest: pending.sink.digest(),
                origin: ORIGIN.to_owned(),
                status: ConsentStatus::NotGranted {
                    reason: "403".to_owned(),
                },
                checked_at: at,
                callback: None,
            },
            at,
        );
        pending
            .next_consent_recheck(first, max)
            .map(|next| (next - at).whole_minutes())
    };
    // Asked on create, then at 1, 2, 4, 8 ... minutes: each wait as long as all before it.
    assert_eq!(asked_at(0), Some(1));
    assert_eq!(asked_at(1), Some(1));
    assert_eq!(asked_at(2), Some(2));
    assert_eq!(asked_at(4), Some(4));
    assert_eq!(asked_at(32), Some(32));
    assert_eq!(asked_at(64), Some(60), "at most the maximum");
    assert_eq!(asked_at(600), Some(60));
    // No re-checks once consent is given, when not required, or with a zero first wait.
    assert_eq!(pending.next_consent_recheck(Duration::ZERO, max), None);
    granted_at(&mut pending, None);
    assert_eq!(pending.next_consent_recheck(first, max), None);
    let mut optional = subscription(None, ConsentMode::Optional);
    optional.settle_consent(NOW);
    assert_eq!(optional.next_consent_recheck(first, max), None);
}
