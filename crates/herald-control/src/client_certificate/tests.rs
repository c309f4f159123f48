//! What a client certificate given in a request must be: each refusal names its field and
//! never quotes the key.

use time::OffsetDateTime;

use herald_proto::v1 as pb;
use herald_test_support::TestCa;

use super::parse;

fn given(certificate: &str, key: &str) -> pb::ClientCertificate {
    pb::ClientCertificate {
        certificate: certificate.to_owned(),
        key: key.to_owned(),
    }
}

#[test]
fn a_certificate_and_its_key_are_read_with_fingerprint_subject_and_expiry() {
    let ca = TestCa::new("herald test client ca");
    let (certificate, key) = ca.issue("herald-client");
    let chain = format!("{certificate}{}", ca.pem);
    let read = parse(
        &given(&chain, &key),
        "client_certificate",
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(read.subject, "CN=herald-client");
    assert_eq!(read.fingerprint.len(), 64);
    assert!(read.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(read.not_after > OffsetDateTime::now_utc());
    assert_eq!(read.key, key);
    assert_eq!(read.certificate, chain);
}

#[test]
fn bad_certificates_and_keys_are_refused_naming_their_field_without_quoting_the_key() {
    let ca = TestCa::new("herald test client ca");
    let (certificate, key) = ca.issue("herald-client");
    let (_, other_key) = ca.issue("someone-else");
    let now = OffsetDateTime::now_utc();
    let (expired, expired_key) = ca.issue_valid(
        "expired",
        Some((
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )),
    );
    let (future, future_key) = ca.issue_valid(
        "future",
        Some((
            now + time::Duration::days(1),
            now + time::Duration::days(30),
        )),
    );
    let garbage_der = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
    let oversized = "x".repeat(16 * 1024 + 1);
    let cases: Vec<(&str, pb::ClientCertificate, &str, &str)> = vec![
        (
            "empty certificate",
            given("", &key),
            "client_certificate.certificate",
            "no PEM certificate",
        ),
        (
            "key as certificate",
            given(&key, &key),
            "client_certificate.certificate",
            "no PEM certificate",
        ),
        (
            "not DER",
            given(garbage_der, &key),
            "client_certificate.certificate",
            "not X.509",
        ),
        (
            "expired",
            given(&expired, &expired_key),
            "client_certificate.certificate",
            "expired",
        ),
        (
            "not yet valid",
            given(&future, &future_key),
            "client_certificate.certificate",
            "not valid before",
        ),
        (
            "oversized certificate",
            given(&oversized, &key),
            "client_certificate.certificate",
            "at most 16384",
        ),
        (
            "empty key",
            given(&certificate, ""),
            "client_certificate.key",
            "not a PEM private key",
        ),
        (
            "certificate as key",
            given(&certificate, &certificate),
            "client_certificate.key",
            "not a PEM private key",
        ),
        (
            "another key",
            given(&certificate, &other_key),
            "client_certificate.key",
            "not the private key",
        ),
        (
            "oversized key",
            given(&certificate, &oversized),
            "client_certificate.key",
            "at most 16384",
        ),
    ];
    for (case, request, field, reason) in cases {
        let err = parse(&request, "client_certificate", now).unwrap_err();
        assert_eq!(err.field, field, "{case}: {err}");
        assert!(err.reason.contains(reason), "{case}: {err}");
        for line in request
            .key
            .lines()
            .filter(|line| !line.starts_with("-----"))
        {
            assert!(
                !err.to_string().contains(line),
                "{case} quotes the key: {err}"
            );
        }
    }
}

#[test]
fn an_updates_refusals_name_the_set_field() {
    let ca = TestCa::new("herald test client ca");
    let (certificate, _) = ca.issue("herald-client");
    let (_, other_key) = ca.issue("someone-else");
    let err = parse(
        &given(&certificate, &other_key),
        "set_client_certificate",
        OffsetDateTime::now_utc(),
    )
    .unwrap_err();
    assert_eq!(err.field, "set_client_certificate.key");
}
