//! A subscription's client certificate for mutual TLS: the PEM certificate chain and private
//! key its https deliveries, test sends and consent handshakes present when the endpoint asks
//! for one, with what answers show of it (fingerprint, subject, expiry).
//!
//! The key is a secret: [`ClientCertificate`]'s `Debug` never prints it, the subscription store
//! seals it (`client_certificate.key`) like signing secrets, and the gRPC API answers with the
//! certificate's fingerprint, subject and expiry only. Reading the PEM and matching the key to
//! the certificate is done at the gRPC edge (`herald-control`, which has the TLS crates); this
//! module keeps the parts that need none: the size bounds and [`check_sink`]. No I/O.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Sink, SubscriptionError};

/// Longest PEM certificate chain, and longest PEM private key, in bytes.
pub const MAX_PEM_LEN: usize = 16 * 1024;

/// A client certificate, as stored with its subscription.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCertificate {
    /// The PEM certificate chain, the subscription's own certificate first.
    pub certificate: String,
    /// The PEM private key of the first certificate; a secret.
    pub key: String,
    /// SHA-256 of the first certificate's DER encoding, lowercase hex: names the certificate in
    /// answers and keys the dispatcher's per-certificate HTTP clients.
    pub fingerprint: String,
    /// The first certificate's subject, e.g. `CN=herald-client`.
    pub subject: String,
    /// When the first certificate expires.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("fingerprint", &self.fingerprint)
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Refuses a client certificate on a sink that is not https, where it would never be sent;
/// the refusal names `field` (`client_certificate` or `set_client_certificate`).
pub fn check_sink(
    certificate: Option<&ClientCertificate>,
    sink: &Sink,
    field: &str,
) -> Result<(), SubscriptionError> {
    if certificate.is_some() && sink.url().scheme() != "https" {
        return Err(SubscriptionError::new(
            field,
            "a client certificate is only sent to an https sink",
        ));
    }
    Ok(())
}
