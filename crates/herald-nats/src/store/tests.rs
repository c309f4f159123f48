//! The stored form of a subscription: what a sealed document keeps in the clear, how documents
//! of before (plain sink and secret, a consent answer naming its sink by URL) load and are
//! marked for resealing, and what the consent callback reads without a key.

use serde_json::{Value, json};

use herald_core::Subscription;
use herald_signing::kek::{Kek, Keyring};

use super::consent::consent_view;
use super::{decode, encode};

const ID: &str = "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SINK: &str = "https://hooks.example.com:8443/in/path_t0ken?key=query_t0ken";
const TOKENS: [&str; 2] = ["path_t0ken", "query_t0ken"];

fn keyring(id: &str, byte: u8) -> Keyring {
    Keyring::new(vec![Kek::new(id, [byte; 32]).unwrap()]).unwrap()
}

/// A document as a Herald without sealed sinks stored it: plain sink and secret, and a
/// consent answer naming its sink by URL.
fn document_of_before() -> Value {
    json!({
        "id": ID,
        "sink": SINK,
        "secret": SECRET,
        "created_at": "2026-11-22T10:00:00Z",
        "updated_at": "2026-11-22T10:00:00Z",
        "consent": "required",
        "state": {"state": "active"},
        "endpoint_consent": {
            "sink": SINK,
            "origin": "herald.test",
            "status": {"status": "granted", "by": "handshake"},
            "checked_at": "2026-11-22T10:00:00Z"
        }
    })
}

fn subscription() -> Subscription {
    serde_json::from_value(document_of_before()).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn assert_no_token(what: &str, text: &str) {
    for token in TOKENS {
        assert!(!text.contains(token), "{what} holds {token}: {text}");
    }
}

#[test]
fn a_sealed_document_keeps_only_the_sink_host_and_digest_in_the_clear() {
    let keyring = keyring("k1", 1);
    let subscription = subscription();
    let stored = encode(&subscription, Some(&keyring)).unwrap();
    assert_no_token("the sealed document", &text(&stored));
    let document: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(document["sink_host"], "https://hooks.example.com:8443");
    assert_eq!(document["sink_digest"], subscription.sink.digest().as_str());
    assert_eq!(document["sink"]["kek"], "k1", "{document}");
    assert_eq!(
        document["endpoint_consent"]["sink_digest"],
        subscription.sink.digest().as_str()
    );
    let (read, stale) = decode(ID, &stored, Some(&keyring)).unwrap();
    assert_eq!(read, subscription);
    assert_eq!(read.sink.as_str(), SINK);
    assert!(read.has_consent());
    assert!(!stale);
}

#[test]
fn a_document_of_before_loads_as_it_is_and_is_resealed_with_a_keyring() {
    let keyring = keyring("k1", 1);
    let before = serde_json::to_vec(&document_of_before()).unwrap();
    let (read, stale) = decode(ID, &before, Some(&keyring)).unwrap();
    assert_eq!(read.sink.as_str(), SINK);
    assert!(
        read.has_consent(),
        "an answer naming its sink by URL still grants"
    );
    assert!(stale, "a plain sink is to be sealed");
    let resealed = encode(&read, Some(&keyring)).unwrap();
    assert_no_token("the resealed document", &text(&resealed));
    let (again, stale) = decode(ID, &resealed, Some(&keyring)).unwrap();
    assert_eq!(again, read);
    assert!(!stale);

    // Without a keyring it loads too, and nothing is to be resealed.
    let (plain, stale) = decode(ID, &before, None).unwrap();
    assert_eq!(plain, read);
    assert!(!stale);
}

#[test]
fn a_sealed_sink_only_sealed_secrets_or_an_older_kek_all_mark_it_for_resealing() {
    let old = keyring("k1", 1);
    let current = Keyring::new(vec![
        Kek::new("k2", [2; 32]).unwrap(),
        Kek::new("k1", [1; 32]).unwrap(),
    ])
    .unwrap();
    let sealed_under_old = encode(&subscription(), Some(&old)).unwrap();
    let (read, stale) = decode(ID, &sealed_under_old, Some(&current)).unwrap();
    assert_eq!(read.sink.as_str(), SINK);
    assert!(stale, "sealed under an older KEK");

    // Sealed secrets beside a plain sink: what this version's predecessor wrote with a keyring.
    let mut secrets_only: Value = serde_json::from_slice(&sealed_under_old).unwrap();
    secrets_only["sink"] = json!(SINK);
    let bytes = serde_json::to_vec(&secrets_only).unwrap();
    let (read, stale) = decode(ID, &bytes, Some(&old)).unwrap();
    assert_eq!(read.sink.as_str(), SINK);
    assert!(stale, "a plain sink beside sealed secrets");
}

#[test]
fn without_a_keyring_the_sink_is_stored_as_it_is() {
    let stored = encode(&subscription(), None).unwrap();
    let document: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(document["sink"], SINK);
    assert_eq!(document.get("sink_host"), None);
    assert_eq!(document.get("sink_digest"), None);
    // A consent answer names its sink by digest in every mode.
    assert_eq!(document["endpoint_consent"].get("sink"), None, "{document}");
}

#[test]
fn a_sealed_sink_without_its_kek_or_moved_into_a_secrets_place_does_not_open() {
    let keyring = keyring("k1", 1);
    let stored = encode(&subscription(), Some(&keyring)).unwrap();
    let err = decode(ID, &stored, None).unwrap_err();
    assert!(err.to_string().contains("no key-encryption key"), "{err}");
    assert_no_token("the error", &err.to_string());
    let err = decode(ID, &stored, Some(&self::keyring("k9", 9))).unwrap_err();
    assert!(err.to_string().contains("`k1`"), "{err}");

    let mut swapped: Value = serde_json::from_slice(&stored).unwrap();
    let sealed_sink = swapped["sink"].take();
    swapped["sink"] = swapped["secret"].take();
    swapped["secret"] = sealed_sink;
    let bytes = serde_json::to_vec(&swapped).unwrap();
    let err = decode(ID, &bytes, Some(&keyring)).unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    // Nor in another subscription's document.
    let other = "sub_01ARZ3NDEKTSV4RRFFQ69G5FAW";
    assert!(decode(other, &stored, Some(&keyring)).is_err());
}

#[test]
fn the_consent_callback_knows_the_sink_by_digest_in_sealed_plain_and_old_documents() {
    let keyring = keyring("k1", 1);
    let subscription = subscription();
    let sealed: Value =
        serde_json::from_slice(&encode(&subscription, Some(&keyring)).unwrap()).unwrap();
    let plain: Value = serde_json::from_slice(&encode(&subscription, None).unwrap()).unwrap();
    for (what, document) in [
        ("sealed", sealed),
        ("plain", plain),
        ("of before", document_of_before()),
    ] {
        let view = consent_view(&document).unwrap();
        assert!(view.sink_digest.is_of(&subscription.sink), "{what}");
        let consent = view.endpoint_consent.as_ref().unwrap();
        assert!(consent.grants(&subscription.sink), "{what}");
        assert_no_token(what, &serde_json::to_string(&view).unwrap());
    }
}

#[test]
fn a_client_certificates_key_is_sealed_and_its_certificate_stays_in_the_clear() {
    const KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0X2tleV9tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n";
    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n";
    let keyring = keyring("k1", 1);
    let mut subscription = subscription();
    subscription.client_certificate = Some(herald_core::subscription::ClientCertificate {
        certificate: CERTIFICATE.to_owned(),
        key: KEY.to_owned(),
        fingerprint: "ab".repeat(32),
        subject: "CN=herald-client".to_owned(),
        not_after: time::macros::datetime!(2030-01-01 00:00 UTC),
    });
    let stored = encode(&subscription, Some(&keyring)).unwrap();
    let stored_text = text(&stored);
    assert!(
        !stored_text.contains("c2VjcmV0X2tleV9tYXRlcmlhbA"),
        "{stored_text}"
    );
    assert!(!stored_text.contains("PRIVATE KEY"), "{stored_text}");
    let document: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(document["client_certificate"]["key"]["kek"], "k1");
    assert_eq!(document["client_certificate"]["certificate"], CERTIFICATE);
    let (read, stale) = decode(ID, &stored, Some(&keyring)).unwrap();
    assert_eq!(read, subscription);
    assert!(!stale);
}
