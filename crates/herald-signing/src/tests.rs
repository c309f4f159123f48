//! Unit tests of signing: round trips, the Standard Webhooks test vector, and an independent
//! implementation (`standardwebhooks` crate) as the oracle.

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
