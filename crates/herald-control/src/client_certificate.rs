//! Reads a client certificate given in a request (PEM certificate chain and PEM private key)
//! into `herald_core::subscription::ClientCertificate`: the chain must hold at least one
//! readable certificate, valid now; the key must be a PEM private key that rustls can sign
//! with (RSA, ECDSA P-256/P-384, Ed25519) and the first certificate's key. Each part is at most
//! [`MAX_PEM_LEN`] bytes.
//!
//! Parsing is pure (no I/O). Refusals name the request's field (`client_certificate.certificate`,
//! `client_certificate.key`, or the `set_` forms of an update) and never quote what was given:
//! the key is a secret, and so may be what a caller pasted into the wrong field.

use time::OffsetDateTime;

use herald_core::subscription::client_certificate::MAX_PEM_LEN;
use herald_core::subscription::{ClientCertificate, SubscriptionError};
use herald_proto::v1 as pb;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Reads and checks `given`, the request's field `field` (`client_certificate` or
/// `set_client_certificate`), at `now`.
pub(crate) fn parse(
    given: &pb::ClientCertificate,
    field: &str,
    now: OffsetDateTime,
) -> Result<ClientCertificate, SubscriptionError> {
    let certificate_field = format!("{field}.certificate");
    let key_field = format!("{field}.key");
    if given.certificate.len() > MAX_PEM_LEN {
        return Err(SubscriptionError::new(
            certificate_field,
            format!("must be at most {MAX_PEM_LEN} bytes"),
        ));
    }
    if given.key.len() > MAX_PEM_LEN {
        return Err(SubscriptionError::new(
            key_field,
            format!("must be at most {MAX_PEM_LEN} bytes"),
        ));
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(given.certificate.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| SubscriptionError::new(&certificate_field, "is not PEM"))?;
    let Some(leaf) = chain.first() else {
        return Err(SubscriptionError::new(
            certificate_field,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|_| {
        SubscriptionError::new(&certificate_field, "its first certificate is not X.509 DER")
    })?;
    let validity = parsed.validity();
    let not_before = validity.not_before.to_datetime();
    let not_after = validity.not_after.to_datetime();
    if not_after <= now {
        return Err(SubscriptionError::new(
            certificate_field,
            format!("expired at {not_after}"),
        ));
    }
    if not_before > now {
        return Err(SubscriptionError::new(
            certificate_field,
            format!("is not valid before {not_before}"),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(given.key.as_bytes()).map_err(|_| {
        SubscriptionError::new(
            &key_field,
            "is not a PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
        SubscriptionError::new(
            &key_field,
            "is not an RSA, ECDSA (P-256, P-384) or Ed25519 key",
        )
    })?;
    let matches = signing_key
        .public_key()
        .is_some_and(|spki| spki.as_ref() == parsed.tbs_certificate.subject_pki.raw);
    if !matches {
        return Err(SubscriptionError::new(
            key_field,
            "is not the private key of the first certificate",
        ));
    }
    let fingerprint = herald_core::digest::sha256_hex(leaf.as_ref());
    Ok(ClientCertificate {
        certificate: given.certificate.clone(),
        key: given.key.clone(),
        fingerprint,
        subject: parsed.subject().to_string(),
        not_after,
    })
}

#[cfg(test)]
mod tests;
