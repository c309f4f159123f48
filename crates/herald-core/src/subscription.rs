//! Subscriptions: who receives which events, where, and with which signing secret.
//!
//! The serde form of [`Subscription`] is Herald's storage format in the subscriptions KV bucket
//! (one JSON document per key, the key being the subscription id). Fields are only ever added,
//! with defaults, so older documents keep loading. Secrets appear in that form as their text;
//! the subscription store seals them (`secret`, `retired_secrets[].secret`, `headers[].value`,
//! `client_certificate.key`)
//! and the sink URL (`sink`, whose path and query may carry tokens) before writing. A consent
//! answer names its sink by digest only (`endpoint_consent.sink_digest`, `sink.rs`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::filter::{self, Filter};
use crate::retry::RetryPolicy;

pub mod client_certificate;
pub mod consent;
mod delivery;
pub mod headers;
mod part;
mod sink;
#[cfg(test)]
mod tests;

pub use client_certificate::ClientCertificate;
pub use consent::{ConsentMode, EndpointConsent, Pace};
pub use delivery::{
    ContentMode, DeliverySettings, MAX_IN_FLIGHT, MAX_RATE, OnDeadLetter, Ordering, RateLimit,
};
pub use headers::CustomHeader;
/// The signature scheme of a secret, `v1` or `v1a`.
pub use herald_signing::Scheme;
pub use part::{PART_COUNTS, Part, WorkId};
pub use sink::{Sink, SinkDigest};

/// Longest sink URL accepted, in bytes.
pub const MAX_SINK_LEN: usize = 2048;

/// Most retired secrets a subscription keeps signing with; a rotation beyond it ends the
/// oldest overlap early.
pub const MAX_RETIRED_SECRETS: usize = 4;

/// Longest overlap a rotation may give the secret it replaces.
pub const MAX_ROTATION_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// A subscription: deliver events matching `filters` to `sink`, signed with `secret`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub sink: Sink,
    /// All must match; an empty list matches every event.
    #[serde(default)]
    pub filters: Vec<Filter>,
    pub secret: WebhookSecret,
    #[serde(default)]
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// How failed deliveries are retried and when they are dead-lettered.
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    /// Whether events are being delivered, and why not.
    #[serde(default)]
    pub state: State,
    /// Rate limit, concurrency, ordering and content mode.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Secrets replaced by a rotation, still signing beside `secret` until their overlap ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_secrets: Vec<RetiredSecret>,
    /// Whether the endpoint is asked for consent before delivery (`consent.rs`). Absent from
    /// documents stored before consent existed, which load as `off` and keep delivering.
    #[serde(default, skip_serializing_if = "ConsentMode::is_off")]
    pub consent: ConsentMode,
    /// The endpoint's last answer to the consent handshake, for the sink it was asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_consent: Option<EndpointConsent>,
    /// The tenant it belongs to; a document stored before tenants existed belongs to
    /// [`crate::credential::DEFAULT_TENANT`].
    #[serde(default)]
    pub tenant: crate::credential::TenantId,
    /// Extra request headers sent with every delivery and test send (`headers.rs`); their
    /// values are secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<CustomHeader>,
    /// The client certificate https requests present for mutual TLS (`client_certificate.rs`);
    /// its key is a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificate>,
}

/// A secret replaced by a rotation: deliveries are signed with it too until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredSecret {
    pub secret: WebhookSecret,
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: OffsetDateTime,
}

/// Whether a subscription delivers. Events keep accumulating in its consumer while it is paused
/// or disabled, and are delivered once it is resumed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    #[default]
    Active,
    /// Paused by an operator.
    Paused {
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
    /// Disabled by Herald: the endpoint answered 410 Gone, or kept failing past the threshold.
    Disabled {
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
    /// Waiting for the endpoint's consent (`consent: required`); events accumulate meanwhile.
    Pending {
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
}

impl State {
    pub fn is_active(&self) -> bool {
        matches!(self, State::Active)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("sink", &self.sink)
            .field("filters", &self.filters)
            .field("description", &self.description)
            .field("created_at", &self.created_at)
            .field("retry_policy", &self.retry_policy)
            .field("state", &self.state)
            .field("delivery", &self.delivery)
            .field("scheme", &self.secret.scheme())
            .field("retired_secrets", &self.retired_secrets.len())
            .field("headers", &self.headers)
            .field("client_certificate", &self.client_certificate)
            .field("consent", &self.consent)
            .field("endpoint_consent", &self.endpoint_consent)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// Why a subscription was refused: the field at fault and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SubscriptionError {
    pub field: String,
    pub reason: String,
}

impl SubscriptionError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> SubscriptionError {
        SubscriptionError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<filter::FilterError> for SubscriptionError {
    fn from(error: filter::FilterError) -> SubscriptionError {
        SubscriptionError {
            field: error.path,
            reason: error.reason,
        }
    }
}

impl Subscription {
    /// What replicas own and workers deliver of this subscription: the whole of it, or each of
    /// its `delivery.parts` parts.
    pub fn work_ids(&self) -> impl Iterator<Item = WorkId> + '_ {
        Part::all(self.delivery.parts).map(|part| WorkId::new(self.id.clone(), part))
    }

    /// Returns the keys that sign this subscription's deliveries: its secret, and the retired
    /// secrets whose overlap has not ended (the attempt's timestamp decides, see
    /// `herald_signing::sign_all`).
    pub fn signing_keys(&self) -> herald_signing::Keys {
        self.retired_secrets.iter().fold(
            herald_signing::Keys::new(self.secret.key().clone()),
            |keys, retired| {
                keys.with_retired(
                    retired.secret.key().clone(),
                    retired.valid_until.unix_timestamp(),
                )
            },
        )
    }

    /// Replaces the secret with `new`; the current one keeps signing beside it for `overlap`
    /// (none when zero). Retired secrets whose overlap has ended are forgotten, and at most
    /// [`MAX_RETIRED_SECRETS`] are kept, the latest.
    pub fn rotate_secret(&mut self, new: WebhookSecret, overlap: Duration, now: OffsetDateTime) {
        self.forget_expired_secrets(now);
        let old = std::mem::replace(&mut self.secret, new);
        if !overlap.is_zero() {
            self.retired_secrets.push(RetiredSecret {
                secret: old,
                valid_until: now.saturating_add(overlap.try_into().unwrap_or(time::Duration::MAX)),
            });
        }
        let excess = self
            .retired_secrets
            .len()
            .saturating_sub(MAX_RETIRED_SECRETS);
        self.retired_secrets.drain(..excess);
        self.updated_at = now;
    }

    /// Forgets retired secrets whose overlap ended at or before `now`.
    pub fn forget_expired_secrets(&mut self, now: OffsetDateTime) {
        self.retired_secrets
            .retain(|retired| retired.valid_until > now);
    }

    /// Checks the parts that are not checked by their own constructors.
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        filter::validate(&self.filters)?;
        self.delivery.validate()?;
        headers::validate(&self.headers)?;
        client_certificate::check_sink(
            self.client_certificate.as_ref(),
            &self.sink,
            "client_certificate",
        )?;
        if self.description.len() > 1024 {
            return Err(SubscriptionError::new(
                "description",
                "must be at most 1024 bytes",
            ));
        }
        Ok(())
    }
}

/// A subscription id: `sub_` followed by a ULID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubscriptionId(String);

impl SubscriptionId {
    const PREFIX: &'static str = "sub_";

    /// Wraps a freshly generated ULID.
    pub fn from_ulid(ulid: ulid::Ulid) -> SubscriptionId {
        SubscriptionId(format!("{}{ulid}", Self::PREFIX))
    }

    /// Parses an id given by a caller.
    pub fn parse(text: &str) -> Result<SubscriptionId, SubscriptionError> {
        let valid = text
            .strip_prefix(Self::PREFIX)
            .is_some_and(|rest| ulid::Ulid::from_string(rest).is_ok());
        if valid {
            Ok(SubscriptionId(text.to_owned()))
        } else {
            Err(SubscriptionError::new(
                "id",
                format!("`{text}` is not a subscription id (sub_<ULID>)"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SubscriptionId {
    type Error = SubscriptionError;
    fn try_from(text: String) -> Result<SubscriptionId, SubscriptionError> {
        SubscriptionId::parse(&text)
    }
}

impl From<SubscriptionId> for String {
    fn from(id: SubscriptionId) -> String {
        id.0
    }
}

/// A Standard Webhooks signing secret, never printed: a shared `whsec_<base64>` secret
/// (scheme `v1`) or an ed25519 `whsk_<base64>` signing key (scheme `v1a`), its text and the key
/// it decodes to, so a stored secret is parsed once, when it is read.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookSecret {
    text: String,
    key: herald_signing::Key,
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<WebhookSecret, SubscriptionError> {
        let key = herald_signing::Key::parse(text)
            .map_err(|err| SubscriptionError::new("secret", err.to_string()))?;
        Ok(WebhookSecret {
            text: text.to_owned(),
            key,
        })
    }

    /// Wraps a freshly generated shared secret.
    pub fn from_key(key: herald_signing::Secret) -> WebhookSecret {
        WebhookSecret::from_signing_key(herald_signing::Key::Symmetric(key))
    }

    /// Wraps a freshly generated key of either scheme.
    pub fn from_signing_key(key: herald_signing::Key) -> WebhookSecret {
        WebhookSecret {
            text: key.to_text(),
            key,
        }
    }

    /// Returns the secret text, for sealing and for the answers that reveal it (create and
    /// rotate).
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Returns the signing key.
    pub fn key(&self) -> &herald_signing::Key {
        &self.key
    }

    /// Returns `v1` (HMAC) or `v1a` (ed25519).
    pub fn scheme(&self) -> herald_signing::Scheme {
        self.key.scheme()
    }

    /// Returns the public key (`whpk_...`) of an ed25519 secret, which is not secret.
    pub fn public_key(&self) -> Option<String> {
        self.key.public_key().map(|key| key.to_whpk())
    }
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &WebhookSecret) -> bool {
        self.text == other.text
    }
}

impl Eq for WebhookSecret {}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl TryFrom<String> for WebhookSecret {
    type Error = SubscriptionError;
    fn try_from(text: String) -> Result<WebhookSecret, SubscriptionError> {
        WebhookSecret::parse(&text)
    }
}

impl From<WebhookSecret> for String {
    fn from(secret: WebhookSecret) -> String {
        secret.text
    }
}
