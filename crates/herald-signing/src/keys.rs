//! A subscription's signing keys: the current one, and those retired by a rotation that still
//! sign until the end of their overlap, so a receiver that knows only the old secret keeps
//! verifying while it moves to the new one (Standard Webhooks, "zero downtime secret rotation").
//!
//! Pure: the attempt's own timestamp decides which retired keys still sign.

use std::fmt;

use crate::{Error, Secret, SigningKey};

/// A signature scheme of Standard Webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// HMAC-SHA256 with a shared `whsec_` secret.
    V1,
    /// ed25519 with a `whsk_` signing key; receivers hold the `whpk_` public key.
    V1a,
}

impl Scheme {
    /// Returns the signature identifier, `v1` or `v1a`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::V1 => "v1",
            Scheme::V1a => "v1a",
        }
    }
}

/// One signing key of either scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum Key {
    Symmetric(Secret),
    Asymmetric(SigningKey),
}

impl Key {
    /// Parses `whsec_...` or `whsk_...`.
    pub fn parse(text: &str) -> Result<Key, Error> {
        if text.starts_with(crate::SIGNING_KEY_PREFIX) {
            return SigningKey::parse(text).map(Key::Asymmetric);
        }
        Secret::parse(text).map(Key::Symmetric)
    }

    /// Generates a key of `scheme` from the operating system's random source.
    pub fn generate(scheme: Scheme) -> Result<Key, Error> {
        match scheme {
            Scheme::V1 => Secret::generate().map(Key::Symmetric),
            Scheme::V1a => SigningKey::generate().map(Key::Asymmetric),
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            Key::Symmetric(_) => Scheme::V1,
            Key::Asymmetric(_) => Scheme::V1a,
        }
    }

    /// Returns the serialized form, `whsec_...` or `whsk_...`.
    pub fn to_text(&self) -> String {
        match self {
            Key::Symmetric(secret) => secret.to_whsec(),
            Key::Asymmetric(key) => key.to_whsk(),
        }
    }

    /// Returns the public key of an asymmetric key, `None` for a shared secret.
    pub fn public_key(&self) -> Option<crate::PublicKey> {
        match self {
            Key::Symmetric(_) => None,
            Key::Asymmetric(key) => Some(key.public_key()),
        }
    }

    /// Returns this key's signature of one attempt, `v1,...` or `v1a,...`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
        match self {
            Key::Symmetric(secret) => crate::sign(secret, msg_id, timestamp, payload),
            Key::Asymmetric(key) => key.sign(msg_id, timestamp, payload),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}, <redacted>)", self.scheme().as_str())
    }
}

/// The keys that sign a subscription's deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    current: Key,
    /// Retired keys with the unix time (seconds) until which they still sign.
    retired: Vec<(Key, i64)>,
}

impl Keys {
    /// Keys with only a current key.
    pub fn new(current: Key) -> Keys {
        Keys {
            current,
            retired: Vec::new(),
        }
    }

    /// Adds a retired key that signs attempts whose timestamp is before `valid_until` (unix
    /// seconds).
    pub fn with_retired(mut self, key: Key, valid_until: i64) -> Keys {
        self.retired.push((key, valid_until));
        self
    }

    pub fn current(&self) -> &Key {
        &self.current
    }

    /// Returns the keys that sign an attempt made at `timestamp`: the current one first.
    pub fn signing_at(&self, timestamp: i64) -> impl Iterator<Item = &Key> {
        let retired = self
            .retired
            .iter()
            .filter(move |(_, valid_until)| timestamp < *valid_until)
            .map(|(key, _)| key);
        std::iter::once(&self.current).chain(retired)
    }
}

/// Returns the `webhook-signature` value of one attempt: a signature by every key valid at
/// `timestamp`, space-separated, the current key's first.
pub fn sign_all(keys: &Keys, msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
    let signatures: Vec<String> = keys
        .signing_at(timestamp)
        .map(|key| key.sign(msg_id, timestamp, payload))
        .collect();
    signatures.join(" ")
}
