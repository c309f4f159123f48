//! Scheme `v1a`: ed25519 signatures over `msg_id.timestamp.payload` (Standard Webhooks,
//! "Signature scheme"). The signing key is `whsk_<base64 of the 32-byte seed>` and stays with
//! Herald; the public key, `whpk_<base64 of the 32-byte key>`, is what receivers verify with.
//!
//! No I/O except the operating system's random source in [`SigningKey::generate`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;

use crate::Error;

/// Prefix of a serialized ed25519 signing key.
pub const SIGNING_KEY_PREFIX: &str = "whsk_";

/// Prefix of a serialized ed25519 public key.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// An ed25519 signing key; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

/// An ed25519 public key, `whpk_<base64>`; not a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
}

impl SigningKey {
    /// Parses `whsk_<base64>`: a 32-byte seed, or a 64-byte keypair (seed then public key) as
    /// some libraries write it.
    pub fn parse(text: &str) -> Result<SigningKey, Error> {
        let encoded = text
            .strip_prefix(SIGNING_KEY_PREFIX)
            .ok_or(Error::KeyPrefix)?;
        let bytes = BASE64.decode(encoded).map_err(|_| Error::KeyEncoding)?;
        SigningKey::from_bytes(&bytes)
    }

    /// Builds a key from a 32-byte seed or a 64-byte keypair.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<SigningKey, Error> {
        let key = match bytes.len() {
            32 => {
                let seed: [u8; 32] = bytes.try_into().map_err(|_| Error::KeyInvalid)?;
                ed25519_dalek::SigningKey::from_bytes(&seed)
            }
            64 => {
                let pair: [u8; 64] = bytes.try_into().map_err(|_| Error::KeyInvalid)?;
                ed25519_dalek::SigningKey::from_keypair_bytes(&pair)
                    .map_err(|_| Error::KeyInvalid)?
            }
            _ => return Err(Error::KeyInvalid),
        };
        Ok(SigningKey { key })
    }

    /// Generates a key from the operating system's random source.
    pub fn generate() -> Result<SigningKey, Error> {
        let mut seed = [0_u8; 32];
        getrandom::fill(&mut seed).map_err(|err| Error::Random(err.to_string()))?;
        Ok(SigningKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// Returns the serialized form, `whsk_<base64 seed>`.
    pub fn to_whsk(&self) -> String {
        format!("{SIGNING_KEY_PREFIX}{}", BASE64.encode(self.key.as_bytes()))
    }

    /// Returns the public key receivers verify with.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
        }
    }

    /// Returns the `v1a,<base64 signature>` of one attempt.
    pub fn sign(&self, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
        let content = signed_content(msg_id, timestamp, payload);
        let signature = self.key.sign(&content);
        format!("v1a,{}", BASE64.encode(signature.to_bytes()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl PublicKey {
    /// Parses `whpk_<base64>`.
    pub fn parse(text: &str) -> Result<PublicKey, Error> {
        let encoded = text
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(Error::KeyPrefix)?;
        let bytes = BASE64.decode(encoded).map_err(|_| Error::KeyEncoding)?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::KeyInvalid)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| Error::KeyInvalid)?;
        Ok(PublicKey { key })
    }

    /// Returns the serialized form, `whpk_<base64>`.
    pub fn to_whpk(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", BASE64.encode(self.key.as_bytes()))
    }

    /// Returns the raw 32 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }
}

/// Verifies a request signed with `v1a`: the timestamp lies within `tolerance_secs` of `now`,
/// and one of the space-separated `v1a` signatures verifies under `public_key` (strict ed25519
/// verification, which refuses malleable signatures and weak keys).
pub fn verify_asymmetric(
    public_key: &PublicKey,
    msg_id: &str,
    timestamp: &str,
    signatures: &str,
    payload: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), Error> {
    let timestamp = crate::check_headers(msg_id, timestamp, now, tolerance_secs)?;
    let content = signed_content(msg_id, timestamp, payload);
    for candidate in signatures.split_whitespace() {
        let Some(encoded) = candidate.strip_prefix("v1a,") else {
            continue;
        };
        let Ok(bytes) = BASE64.decode(encoded) else {
            continue;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(&bytes) else {
            continue;
        };
        if public_key.key.verify_strict(&content, &signature).is_ok() {
            return Ok(());
        }
    }
    Err(Error::NoAsymmetricMatch)
}

/// The bytes both schemes sign: `msg_id.timestamp.payload`.
fn signed_content(msg_id: &str, timestamp: i64, payload: &[u8]) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut content = Vec::with_capacity(msg_id.len() + timestamp.len() + payload.len() + 2);
    content.extend_from_slice(msg_id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(payload);
    content
}
