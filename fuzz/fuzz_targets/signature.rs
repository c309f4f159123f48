//! The Standard Webhooks signature header as a receiver reads it (`herald_signing::verify` for
//! `v1`, `verify_asymmetric` for `v1a`): the `webhook-signature` list, `webhook-timestamp` and
//! `webhook-id` from the input, and the keys and KEK entries a config or a request may carry
//! (`Key::parse`, `PublicKey::parse`, `Kek::parse`, sealed values). The input's first line is
//! the signature header, the second the timestamp, the third the message id, the rest the
//! payload. Whatever the header holds, a genuine signature placed beside it must still verify.
#![no_main]

use herald_signing::kek::{Kek, Keyring, Sealed};
use herald_signing::{Key, Keys, PublicKey, Secret, sign_all, verify, verify_asymmetric};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SIGNING_KEY: &str = "whsk_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEK: &str = "fuzz:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn lines(data: &[u8]) -> (&str, &str, &str, &[u8]) {
    let mut rest = data;
    let mut parts = [""; 3];
    for part in &mut parts {
        let (line, tail) = match rest.iter().position(|byte| *byte == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        *part = std::str::from_utf8(line).unwrap_or("");
        rest = tail;
    }
    (parts[0], parts[1], parts[2], rest)
}

fuzz_target!(|data: &[u8]| {
    let (header, timestamp, msg_id, payload) = lines(data);
    let secret = Secret::parse(SECRET).expect("the fixed secret should parse");
    let signing = Key::parse(SIGNING_KEY).expect("the fixed signing key should parse");
    let public = signing
        .public_key()
        .expect("an ed25519 key should have a public key");
    let now = timestamp.trim().parse::<i64>().unwrap_or(0);

    let _ = verify(&secret, msg_id, timestamp, header, payload, now, 300);
    let _ = verify_asymmetric(&public, msg_id, timestamp, header, payload, now, 300);
    let _ = verify(
        &secret,
        msg_id,
        timestamp,
        header,
        payload,
        i64::MAX,
        i64::MAX,
    );
    let _ = verify_asymmetric(&public, msg_id, timestamp, header, payload, i64::MIN, 0);

    // A genuine signature of each scheme beside whatever the header holds still verifies.
    let valid_headers = !msg_id.is_empty() && !msg_id.contains('.');
    if let (true, Ok(at)) = (valid_headers, timestamp.trim().parse::<i64>()) {
        let keys =
            Keys::new(Key::Symmetric(secret.clone())).with_retired(signing.clone(), i64::MAX);
        let signed = sign_all(&keys, msg_id, at, payload);
        let both = format!("{header} {signed}");
        assert_eq!(
            verify(&secret, msg_id, timestamp, &both, payload, at, 0),
            Ok(())
        );
        assert_eq!(
            verify_asymmetric(&public, msg_id, timestamp, &both, payload, at, 0),
            Ok(())
        );
    }

    // Keys and KEK entries written in config or sent through the API.
    let keyring = Keyring::parse(&[KEK.to_owned()]).expect("the fixed KEK should parse");
    for text in std::iter::once(header).chain(header.split_whitespace()) {
        if let Ok(key) = Key::parse(text) {
            let again = Key::parse(&key.to_text()).expect("a key's text form should parse");
            assert!(again == key, "a key should survive its text form");
            let _ = key.sign(msg_id, 0, payload);
        }
        if let Ok(key) = PublicKey::parse(text) {
            assert_eq!(
                PublicKey::parse(&key.to_whpk()).map(|k| *k.as_bytes()),
                Ok(*key.as_bytes())
            );
        }
        let _ = Kek::parse(text);
        let _ = Keyring::parse(&[text.to_owned(), KEK.to_owned()]);
    }
    let sealed = Sealed {
        algorithm: header.to_owned(),
        key_id: "fuzz".to_owned(),
        nonce: timestamp.to_owned(),
        ciphertext: msg_id.to_owned(),
    };
    let _ = keyring.open(&sealed, payload);
    let sealed = Sealed {
        algorithm: "xchacha20poly1305".to_owned(),
        ..sealed
    };
    let _ = keyring.open(&sealed, payload);
});
