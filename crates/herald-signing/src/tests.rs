//! Unit tests of signing: round trips, the Standard Webhooks test vector, and an independent
//! implementation (`standardwebhooks` crate) as the oracle.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;

use super::*;

// The example of the Standard Webhooks reference libraries.
const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TIMESTAMP: i64 = 1614265330;
const VECTOR_PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

#[test]
fn signs_the_standard_webhooks_test_vector() {
    let secret = Secret::parse(VECTOR_SECRET).unwrap();
    assert_eq!(
        sign(&secret, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD),
        VECTOR_SIGNATURE
    );
}

#[test]
fn verifies_one_of_several_signatures() {
    let secret = Secret::parse(VECTOR_SECRET).unwrap();
    let header = format!("v1,bm9wZQ== {VECTOR_SIGNATURE}");
    let now = VECTOR_TIMESTAMP + 10;
    let timestamp = VECTOR_TIMESTAMP.to_string();
    assert_eq!(
        verify(
            &secret,
            VECTOR_ID,
            &timestamp,
            &header,
            VECTOR_PAYLOAD,
            now,
            300
        ),
        Ok(())
    );
}

#[test]
fn rejects_tampered_payload_and_stale_timestamp() {
    let secret = Secret::parse(VECTOR_SECRET).unwrap();
    let timestamp = VECTOR_TIMESTAMP.to_string();
    let now = VECTOR_TIMESTAMP;
    let tampered = verify(
        &secret,
        VECTOR_ID,
        &timestamp,
        VECTOR_SIGNATURE,
        b"{}",
        now,
        300,
    );
    assert_eq!(tampered, Err(Error::NoMatch));
    let late = now + 301;
    let stale = verify(
        &secret,
        VECTOR_ID,
        &timestamp,
        VECTOR_SIGNATURE,
        VECTOR_PAYLOAD,
        late,
        300,
    );
    assert_eq!(stale, Err(Error::TimestampOutOfTolerance(301)));
}

#[test]
fn a_skew_beyond_the_range_of_i64_is_out_of_tolerance_instead_of_overflowing() {
    // Found by the `signature` fuzz target: `now - timestamp` saturating at `i64::MIN` made
    // `abs` overflow (a panic with overflow checks, an accepted timestamp without them).
    let secret = Secret::parse(VECTOR_SECRET).unwrap();
    let public = SigningKey::generate().unwrap().public_key();
    let timestamp = VECTOR_TIMESTAMP.to_string();
    let symmetric = verify(
        &secret,
        VECTOR_ID,
        &timestamp,
        VECTOR_SIGNATURE,
        VECTOR_PAYLOAD,
        i64::MIN,
        300,
    );
    assert_eq!(symmetric, Err(Error::TimestampOutOfTolerance(i64::MIN)));
    let asymmetric = verify_asymmetric(
        &public,
        VECTOR_ID,
        &timestamp,
        "v1a,",
        VECTOR_PAYLOAD,
        i64::MIN,
        i64::MAX,
    );
    assert_eq!(asymmetric, Err(Error::TimestampOutOfTolerance(i64::MIN)));
    let negative_tolerance = verify(
        &secret,
        VECTOR_ID,
        &timestamp,
        VECTOR_SIGNATURE,
        VECTOR_PAYLOAD,
        VECTOR_TIMESTAMP,
        -1,
    );
    assert_eq!(negative_tolerance, Err(Error::TimestampOutOfTolerance(0)));
}

#[test]
fn refuses_malformed_secrets() {
    assert_eq!(
        Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        Err(Error::SecretPrefix)
    );
    assert_eq!(Secret::parse("whsec_!!!"), Err(Error::SecretEncoding));
    assert_eq!(Secret::parse("whsec_c2hvcnQ="), Err(Error::SecretLength(5)));
}

#[test]
fn generated_secrets_round_trip_and_differ() {
    let first = Secret::generate().unwrap();
    let second = Secret::generate().unwrap();
    assert_ne!(first, second);
    assert_eq!(Secret::parse(&first.to_whsec()).unwrap(), first);
}

#[test]
fn debug_output_never_shows_the_key() {
    let secret = Secret::parse(VECTOR_SECRET).unwrap();
    assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
}

proptest! {
    #[test]
    fn independent_implementation_agrees(
        msg_id in "msg_[a-zA-Z0-9]{1,30}",
        timestamp in 1_000_000_000_i64..4_000_000_000,
        payload in "[ -~]{0,200}",
    ) {
        let secret = Secret::generate().unwrap();
        let ours = sign(&secret, &msg_id, timestamp, payload.as_bytes());
        let theirs = standardwebhooks::Webhook::new(&secret.to_whsec())
            .unwrap()
            .sign(&msg_id, timestamp, payload.as_bytes())
            .unwrap();
        prop_assert_eq!(&ours, &theirs);
        let timestamp_text = timestamp.to_string();
        let verified =
            verify(&secret, &msg_id, &timestamp_text, &theirs, payload.as_bytes(), timestamp, 300);
        prop_assert_eq!(verified, Ok(()));
    }
}

// v1a, ed25519.

#[test]
fn v1a_signature_verifies_with_an_independent_ed25519_implementation() {
    let key = SigningKey::generate().unwrap();
    let signature = key.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD);
    let encoded = signature.strip_prefix("v1a,").expect("a v1a signature");
    let bytes = BASE64.decode(encoded).unwrap();
    let content = format!(
        "{VECTOR_ID}.{VECTOR_TIMESTAMP}.{}",
        std::str::from_utf8(VECTOR_PAYLOAD).unwrap()
    );
    // ring (BoringSSL's ed25519) shares no code with ed25519-dalek.
    let public = PublicKey::parse(&key.public_key().to_whpk()).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public.as_bytes())
        .verify(content.as_bytes(), &bytes)
        .expect("ring should verify Herald's v1a signature");
}

#[test]
fn v1a_round_trip_and_refusals() {
    let key = SigningKey::parse(&SigningKey::generate().unwrap().to_whsk()).unwrap();
    let public = key.public_key();
    let header = format!(
        "v1,bm9wZQ== {}",
        key.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD)
    );
    let timestamp = VECTOR_TIMESTAMP.to_string();
    let check = |payload: &[u8], header: &str| {
        verify_asymmetric(
            &public,
            VECTOR_ID,
            &timestamp,
            header,
            payload,
            VECTOR_TIMESTAMP,
            300,
        )
    };
    assert_eq!(check(VECTOR_PAYLOAD, &header), Ok(()));
    assert_eq!(check(b"{}", &header), Err(Error::NoAsymmetricMatch));
    let other = SigningKey::generate().unwrap();
    let forged = other.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD);
    assert_eq!(
        check(VECTOR_PAYLOAD, &forged),
        Err(Error::NoAsymmetricMatch)
    );
    assert_eq!(PublicKey::parse("whsec_abc"), Err(Error::KeyPrefix));
    assert_eq!(
        SigningKey::parse("whsk_AAAA").err(),
        Some(Error::KeyInvalid)
    );
    assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
}

// Rotation: every key valid at the attempt's timestamp signs.

#[test]
fn rotation_signs_with_both_keys_during_the_overlap_and_the_new_one_after() {
    let old = Secret::parse(VECTOR_SECRET).unwrap();
    let new = Secret::generate().unwrap();
    let asymmetric = SigningKey::generate().unwrap();
    let keys = Keys::new(Key::Symmetric(new.clone()))
        .with_retired(Key::Symmetric(old.clone()), VECTOR_TIMESTAMP + 60)
        .with_retired(Key::Asymmetric(asymmetric.clone()), VECTOR_TIMESTAMP - 1);
    let during = sign_all(&keys, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD);
    let parts: Vec<&str> = during.split(' ').collect();
    assert_eq!(parts.len(), 2, "{during}");
    assert_eq!(parts[1], VECTOR_SIGNATURE);
    for secret in [&old, &new] {
        let timestamp = VECTOR_TIMESTAMP.to_string();
        let verified = verify(
            secret,
            VECTOR_ID,
            &timestamp,
            &during,
            VECTOR_PAYLOAD,
            VECTOR_TIMESTAMP,
            300,
        );
        assert_eq!(verified, Ok(()));
        // The independent implementation's signature is one of the header's.
        let webhook = standardwebhooks::Webhook::new(&secret.to_whsec()).unwrap();
        let expected = webhook
            .sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD)
            .unwrap();
        assert!(parts.contains(&expected.as_str()), "{during}");
    }
    let after = sign_all(&keys, VECTOR_ID, VECTOR_TIMESTAMP + 60, VECTOR_PAYLOAD);
    assert_eq!(after.split(' ').count(), 1);
    assert_eq!(
        after,
        sign(&new, VECTOR_ID, VECTOR_TIMESTAMP + 60, VECTOR_PAYLOAD)
    );
}

#[test]
fn keys_parse_by_prefix() {
    let symmetric = Key::parse(VECTOR_SECRET).unwrap();
    assert_eq!(symmetric.scheme(), Scheme::V1);
    assert_eq!(symmetric.public_key(), None);
    let asymmetric = Key::generate(Scheme::V1a).unwrap();
    let parsed = Key::parse(&asymmetric.to_text()).unwrap();
    assert_eq!(parsed, asymmetric);
    assert!(parsed.public_key().is_some());
    assert!(!format!("{parsed:?}").contains(&asymmetric.to_text()[5..]));
}

// Sealing under key-encryption keys.

fn kek(id: &str, byte: u8) -> kek::Kek {
    kek::Kek::new(id, [byte; 32]).unwrap()
}

#[test]
fn sealed_secrets_open_under_the_same_record_only() {
    let keyring = kek::Keyring::new(vec![kek("k2", 2), kek("k1", 1)]).unwrap();
    let sealed = keyring.seal(VECTOR_SECRET.as_bytes(), b"sub_1").unwrap();
    assert_eq!(sealed.key_id, "k2");
    assert!(
        !sealed
            .ciphertext
            .contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    );
    assert_eq!(
        keyring.open(&sealed, b"sub_1").unwrap(),
        VECTOR_SECRET.as_bytes()
    );
    assert_eq!(keyring.open(&sealed, b"sub_2"), Err(kek::Error::Open));
    let mut tampered = sealed.clone();
    tampered.ciphertext = BASE64.encode(b"not the ciphertext at all, not at all");
    assert_eq!(keyring.open(&tampered, b"sub_1"), Err(kek::Error::Open));
    // Two sealings of one secret differ (fresh nonces).
    let again = keyring.seal(VECTOR_SECRET.as_bytes(), b"sub_1").unwrap();
    assert_ne!(again.ciphertext, sealed.ciphertext);
}

#[test]
fn rotated_keyring_opens_old_sealings_and_marks_them_stale() {
    let before = kek::Keyring::new(vec![kek("k1", 1)]).unwrap();
    let sealed = before.seal(b"whsec_x", b"ctx").unwrap();
    let after = kek::Keyring::new(vec![kek("k2", 2), kek("k1", 1)]).unwrap();
    assert_eq!(after.open(&sealed, b"ctx").unwrap(), b"whsec_x");
    assert!(after.is_stale(&sealed));
    assert!(!after.is_stale(&after.seal(b"whsec_x", b"ctx").unwrap()));
    let without_k1 = kek::Keyring::new(vec![kek("k2", 2)]).unwrap();
    assert_eq!(
        without_k1.open(&sealed, b"ctx"),
        Err(kek::Error::UnknownKey("k1".to_owned()))
    );
}

#[test]
fn keyring_configuration_is_checked() {
    let key = BASE64.encode([7_u8; 32]);
    let keyring = kek::Keyring::parse(&[format!("2026-11:{key}"), format!("old:{key}")]).unwrap();
    assert_eq!(keyring.current_id(), "2026-11");
    let check = |entries: &[&str]| {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        kek::Keyring::parse(&entries).err()
    };
    assert_eq!(check(&[]), Some(kek::Error::Empty));
    assert_eq!(check(&["nocolon"]), Some(kek::Error::Format));
    assert_eq!(
        check(&["k:c2hvcnQ="]),
        Some(kek::Error::KeyLength("k".to_owned()))
    );
    assert_eq!(
        check(&[&format!("bad id:{key}")]),
        Some(kek::Error::KeyId("bad id".to_owned()))
    );
    assert_eq!(
        check(&[&format!("a:{key}"), &format!("a:{key}")]),
        Some(kek::Error::DuplicateId("a".to_owned()))
    );
    let debug = format!("{keyring:?}");
    assert!(!debug.contains(&key), "{debug}");
}
