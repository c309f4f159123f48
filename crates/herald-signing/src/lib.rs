//! Standard Webhooks signatures: scheme `v1` (HMAC-SHA256 over `msg_id.timestamp.payload`) and
//! scheme `v1a` (ed25519 over the same content), signing with several keys at once during a
//! rotation, and the sealing of stored secrets under key-encryption keys (`kek.rs`).
//!
//! The dispatcher signs every attempt afresh with [`sign_all`] (one signature per key still
//! valid at the attempt's timestamp, space-separated); `heraldctl listen` and receivers written
//! in Rust check them with [`verify`] and [`verify_asymmetric`]. Symmetric secrets are
//! `whsec_<base64>` strings of 24 to 64 random bytes, asymmetric ones `whsk_<base64>` (an
//! ed25519 seed) with the public key `whpk_<base64>` (Standard Webhooks, "Signature scheme").
//! No secret ever appears in `Debug` output.
//!
//! No I/O except the operating system's random source (generating secrets, sealing nonces); no
//! async runtime.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit, Mac};

mod asymmetric;
pub mod kek;
mod keys;
#[cfg(test)]
mod tests;

pub use asymmetric::{
    PUBLIC_KEY_PREFIX, PublicKey, SIGNING_KEY_PREFIX, SigningKey, verify_asymmetric,
};
pub use keys::{Key, Keys, Scheme, sign_all};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Prefix of a serialized secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The header names of a signed request.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Default tolerance between a signature's timestamp and the verifier's clock, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;

/// Why a secret or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("secret must start with `whsec_`")]
    SecretPrefix,
    #[error("secret is not valid base64 after `whsec_`")]
    SecretEncoding,
    #[error("secret must hold 24 to 64 bytes, it holds {0}")]
    SecretLength(usize),
    #[error("webhook-timestamp is not a unix timestamp")]
    TimestampFormat,
    #[error("webhook-timestamp is {0} s away from now, beyond the tolerance")]
    TimestampOutOfTolerance(i64),
    #[error("webhook-id must not be empty or contain `.`")]
    MessageId,
    #[error("no v1 signature matches")]
    NoMatch,
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("key must start with `whsk_` (signing) or `whpk_` (public)")]
    KeyPrefix,
    #[error("key is not valid base64 after its prefix")]
    KeyEncoding,
    #[error("key is not a valid ed25519 key")]
    KeyInvalid,
    #[error("no v1a signature verifies")]
    NoAsymmetricMatch,
}

/// A symmetric signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl Secret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Secret, Error> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(Error::SecretPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| Error::SecretEncoding)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(Error::SecretLength(key.len()));
        }
        Ok(Secret { key })
    }

    /// Generates a secret of 32 bytes from the operating system's random source.
    pub fn generate() -> Result<Secret, Error> {
        let mut key = vec![0_u8; 32];
        getrandom::fill(&mut key).map_err(|err| Error::Random(err.to_string()))?;
        Ok(Secret { key })
    }

    /// Returns the serialized form, `whsec_<base64>`.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, payload: &[u8]) -> HmacSha256 {
        #[allow(
            clippy::expect_used,
            reason = "HMAC takes keys of any length: new_from_slice cannot fail"
        )]
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC should accept keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        mac
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Returns 32 bytes from the operating system's random source: the secret part of a producer
/// key or operator token (`herald_core::credential::IssuedToken`).
pub fn random_token_bytes() -> Result<[u8; 32], Error> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| Error::Random(err.to_string()))?;
    Ok(bytes)
}

/// Returns the `webhook-signature` value for one attempt: `v1,<base64 HMAC-SHA256>`.
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
    let tag = secret
        .mac(msg_id, timestamp, payload)
        .finalize()
        .into_bytes();
    format!("v1,{}", BASE64.encode(tag))
}

/// Verifies a signed request: the timestamp lies within `tolerance_secs` of `now` (unix
/// seconds), and one of the space-separated `v1` signatures matches, compared in constant time.
pub fn verify(
    secret: &Secret,
    msg_id: &str,
    timestamp: &str,
    signatures: &str,
    payload: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), Error> {
    let timestamp = check_headers(msg_id, timestamp, now, tolerance_secs)?;
    for candidate in signatures.split_whitespace() {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(tag) = BASE64.decode(encoded) else {
            continue;
        };
        if secret
            .mac(msg_id, timestamp, payload)
            .verify_slice(&tag)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(Error::NoMatch)
}

/// Checks the message id and the timestamp's distance from `now`; returns the timestamp.
pub(crate) fn check_headers(
    msg_id: &str,
    timestamp: &str,
    now: i64,
    tolerance_secs: i64,
) -> Result<i64, Error> {
    if msg_id.is_empty() || msg_id.contains('.') {
        return Err(Error::MessageId);
    }
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Error::TimestampFormat)?;
    let skew = now.saturating_sub(timestamp);
    // `unsigned_abs`: a skew saturated at `i64::MIN` has no `i64` magnitude (found by the
    // `signature` fuzz target); a negative tolerance accepts nothing.
    if tolerance_secs < 0 || skew.unsigned_abs() > tolerance_secs.unsigned_abs() {
        return Err(Error::TimestampOutOfTolerance(skew));
    }
    Ok(timestamp)
}
