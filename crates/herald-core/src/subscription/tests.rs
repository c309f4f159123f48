//! Subscription model tests: ids, sinks, the network policy on IP literals, storage form.

use super::*;
use crate::network::NetworkPolicy;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn ids_are_prefixed_ulids() {
    let id = SubscriptionId::from_ulid(ulid::Ulid::nil());
    assert_eq!(id.as_str(), "sub_00000000000000000000000000");
    assert_eq!(SubscriptionId::parse(id.as_str()).unwrap(), id);
    for bad in [
        "",
        "sub_",
        "00000000000000000000000000",
        "sub_xyz",
        "ep_00000000000000000000000000",
    ] {
        assert!(SubscriptionId::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn sinks_must_be_deliverable_http_urls() {
    assert!(Sink::parse("https://example.com/hooks?token=x").is_ok());
    let cases = [
        ("", "sink: must not be empty"),
        ("example.com/hook", "sink: not a valid URL"),
        ("ftp://example.com/", "sink: scheme must be http or https"),
        (
            "https://example.com/#frag",
            "sink: must not have a fragment",
        ),
    ];
    for (text, expected) in cases {
        let error = Sink::parse(text).unwrap_err().to_string();
        assert!(error.starts_with(expected), "{text}: {error}");
    }
}

#[test]
fn sink_ip_literals_are_checked_against_the_network_policy() {
    let strict = NetworkPolicy::public_only();
    let dev = NetworkPolicy::new(true, true);
    for text in [
        "http://127.0.0.1:9000/",
        "http://[::1]/",
        "http://localhost:9000/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest",
    ] {
        let sink = Sink::parse(text).unwrap();
        assert!(
            sink.check_policy(&strict).is_err(),
            "{text} must be refused by default"
        );
    }
    assert!(
        Sink::parse("http://127.0.0.1:9000/")
            .unwrap()
            .check_policy(&dev)
            .is_ok()
    );
    assert!(
        Sink::parse("http://169.254.169.254/")
            .unwrap()
            .check_policy(&dev)
            .is_err()
    );
    assert!(
        Sink::parse("https://93.184.216.34/")
            .unwrap()
            .check_policy(&strict)
            .is_ok()
    );
}

#[test]
fn storage_form_round_trips_and_debug_hides_the_secret() {
    let subscription = Subscription {
        id: SubscriptionId::from_ulid(ulid::Ulid::nil()),
        sink: Sink::parse("https://example.com/hook").unwrap(),
        filters: vec![crate::Filter::exact("type", "a.b")],
        secret: WebhookSecret::parse(SECRET).unwrap(),
        description: "orders".to_owned(),
        created_at: time::macros::datetime!(2026-11-22 10:00 UTC),
        updated_at: time::macros::datetime!(2026-11-22 10:00 UTC),
        retry_policy: crate::retry::RetryPolicy::fixed(vec![std::time::Duration::from_secs(1)]),
        state: State::Disabled {
            reason: "gone".to_owned(),
            since: time::macros::datetime!(2026-11-22 11:00 UTC),
        },
        delivery: DeliverySettings {
            rate_limit: Some(RateLimit {
                per_second: 5,
                burst: 2,
            }),
            max_in_flight: None,
            ordering: Ordering::Key,
            on_dead_letter: OnDeadLetter::Block,
            content_mode: ContentMode::Structured,
            parts: 1,
        },
        retired_secrets: Vec::new(),
        consent: ConsentMode::Off,
        endpoint_consent: None,
        tenant: crate::credential::TenantId::parse("acme", "tenant").unwrap(),
        headers: Vec::new(),
        client_certificate: None,
    };
    let json = serde_json::to_string(&subscription).unwrap();
    assert_eq!(
        json,
        r#"{"id":"sub_00000000000000000000000000","sink":"https://example.com/hook","filters":[{"exact":{"type":"a.b"}}],"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","description":"orders","created_at":"2026-11-22T10:00:00Z","updated_at":"2026-11-22T10:00:00Z","retry_policy":{"backoff":{"fixed":{"delays":[1000]}},"jitter_percent":0,"max_attempts":2,"max_age":2592000000,"terminal_status_codes":[]},"state":{"state":"disabled","reason":"gone","since":"2026-11-22T11:00:00Z"},"delivery":{"rate_limit":{"per_second":5,"burst":2},"ordering":"key","on_dead_letter":"block"},"tenant":"acme"}"#
    );
    assert_eq!(
        serde_json::from_str::<Subscription>(&json).unwrap(),
        subscription
    );
    assert!(!format!("{subscription:?}").contains("MfKQ"));
    assert!(serde_json::from_str::<Subscription>(&json.replace("whsec_", "nope_")).is_err());
}

#[test]
fn documents_without_new_fields_load_with_defaults() {
    let json = r#"{"id":"sub_00000000000000000000000000","sink":"https://example.com/hook","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","created_at":"2026-11-22T10:00:00Z","updated_at":"2026-11-22T10:00:00Z"}"#;
    let subscription: Subscription = serde_json::from_str(json).unwrap();
    assert_eq!(
        subscription.retry_policy,
        crate::retry::RetryPolicy::standard()
    );
    assert_eq!(subscription.state, State::Active);
    assert!(subscription.filters.is_empty());
}

#[test]
fn rotation_keeps_the_old_secret_signing_for_the_overlap_only() {
    let now = time::macros::datetime!(2026-11-22 10:00 UTC);
    let json = r#"{"id":"sub_00000000000000000000000000","sink":"https://example.com/hook","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","created_at":"2026-11-22T10:00:00Z","updated_at":"2026-11-22T10:00:00Z"}"#;
    let mut subscription: Subscription = serde_json::from_str(json).unwrap();
    let new = WebhookSecret::from_signing_key(
        herald_signing::Key::generate(herald_signing::Scheme::V1a).unwrap(),
    );
    let overlap = std::time::Duration::from_secs(3600);
    subscription.rotate_secret(new.clone(), overlap, now);
    assert_eq!(subscription.secret, new);
    assert_eq!(subscription.secret.scheme(), herald_signing::Scheme::V1a);
    assert!(
        subscription
            .secret
            .public_key()
            .unwrap()
            .starts_with("whpk_")
    );
    assert_eq!(subscription.retired_secrets.len(), 1);
    let keys = subscription.signing_keys();
    let at = |offset: i64| keys.signing_at(now.unix_timestamp() + offset).count();
    assert_eq!(at(0), 2);
    assert_eq!(at(3599), 2);
    assert_eq!(at(3600), 1);
    // The storage form carries the retired secret, and loads again.
    let stored = serde_json::to_string(&subscription).unwrap();
    assert!(stored.contains("retired_secrets"));
    assert_eq!(
        serde_json::from_str::<Subscription>(&stored).unwrap(),
        subscription
    );
    assert!(!format!("{subscription:?}").contains("MfKQ"));
    // Later rotations forget ended overlaps and keep at most MAX_RETIRED_SECRETS.
    for hour in 2..10 {
        let secret = WebhookSecret::from_key(herald_signing::Secret::generate().unwrap());
        subscription.rotate_secret(secret, overlap * 100, now + time::Duration::hours(hour));
    }
    assert_eq!(subscription.retired_secrets.len(), MAX_RETIRED_SECRETS);
    subscription.rotate_secret(
        new,
        std::time::Duration::ZERO,
        now + time::Duration::days(30),
    );
    assert!(subscription.retired_secrets.is_empty());
}
