//! Subscriptions in the `herald_subscriptions` KV bucket: one JSON document per subscription id,
//! written with the KV revision as an optimistic-concurrency token, and watched by dispatchers.
//!
//! With a keyring (`Nats::with_keyring`), the secrets of a document (`secret`,
//! `retired_secrets[].secret`, the custom headers' `headers[].value` and the client
//! certificate's private key `client_certificate.key`) and its sink URL
//! (`sink`, whose path and query may carry tokens) are sealed before it is written, each
//! replaced by `{"alg", "kek", "nonce", "ciphertext"}` bound to the subscription id (and the sink
//! to its field), and opened
//! when it is read; the rest of the document stays readable JSON. Beside a sealed sink the
//! document keeps, in the clear, `sink_host` (`scheme://host[:port]`, what logs show) for
//! operators and `sink_digest` (its SHA-256) for the consent callback, which has no key
//! (`store/consent.rs`). A field still stored as plain text (written before sealing existed,
//! or without a keyring, which writes the sink as it is and neither of those two fields) loads
//! as it is, and is sealed by the next write or by [`SubscriptionStore::seal_stored`].

use std::sync::Arc;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use serde_json::Value;

use herald_core::{ErrorCode, Subscription, SubscriptionId};
use herald_signing::kek::{Keyring, Sealed};

use crate::{Error, Result};

mod consent;
#[cfg(test)]
mod tests;

/// A stored value with the revision it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: u64,
}

/// A change seen by [`SubscriptionStore::watch`].
#[allow(
    clippy::large_enum_variant,
    reason = "changes are rare and consumed at once; boxing buys nothing"
)]
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionChange {
    /// Created or updated.
    Put(Versioned<Subscription>),
    /// Deleted.
    Deleted(SubscriptionId),
    /// The watch has delivered every subscription stored when it began (sent again after
    /// each later change that left nothing pending).
    CaughtUp,
}

/// Reads and writes subscriptions; cheap to clone.
#[derive(Clone)]
pub struct SubscriptionStore {
    kv: kv::Store,
    keyring: Option<Arc<Keyring>>,
}

impl SubscriptionStore {
    pub(crate) fn new(kv: kv::Store, keyring: Option<Arc<Keyring>>) -> SubscriptionStore {
        SubscriptionStore { kv, keyring }
    }

    /// Seals every stored secret and sink URL that is in plain text or sealed under a
    /// key-encryption key other than the current one, and removes the older revisions of each document it
    /// rewrites, so no plain-text secret or sink stays in the bucket's history. Returns how many
    /// subscriptions it rewrote; one changed meanwhile is left to its writer, who seals it.
    /// Does nothing without a keyring.
    pub async fn seal_stored(&self) -> Result<usize> {
        let Some(keyring) = &self.keyring else {
            return Ok(0);
        };
        let mut rewritten = 0;
        for key in self.keys().await? {
            let Some(entry) = self
                .kv
                .entry(&key)
                .await
                .map_err(Error::unavailable("failed to read the subscription"))?
            else {
                continue;
            };
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let (subscription, stale) = decode(&entry.key, &entry.value, Some(keyring))?;
            if !stale {
                continue;
            }
            let value = encode(&subscription, Some(keyring))?;
            match self.kv.update(&key, value, entry.revision).await {
                Ok(_) => {}
                Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(err) => return Err(Error::unavailable("failed to reseal a subscription")(err)),
            }
            self.kv
                .stream
                .purge()
                .filter(format!("{}{key}", self.kv.prefix))
                .keep(1)
                .await
                .map_err(Error::unavailable(
                    "failed to purge a subscription's older revisions",
                ))?;
            rewritten += 1;
        }
        Ok(rewritten)
    }

    async fn keys(&self) -> Result<Vec<String>> {
        self.kv
            .keys()
            .await
            .map_err(Error::unavailable("failed to list subscriptions"))?
            .try_collect()
            .await
            .map_err(Error::unavailable("failed to list subscriptions"))
    }

    /// Stores a new subscription; fails with `AlreadyExists` when the id is taken.
    pub async fn create(&self, subscription: &Subscription) -> Result<u64> {
        let value = encode(subscription, self.keyring.as_deref())?;
        self.kv
            .create(subscription.id.as_str(), value)
            .await
            .map_err(|err| match err.kind() {
                kv::CreateErrorKind::AlreadyExists => Error::new(
                    ErrorCode::AlreadyExists,
                    format!("subscription {} already exists", subscription.id),
                ),
                _ => Error::unavailable("failed to store the subscription")(err),
            })
    }

    /// Reads one subscription.
    pub async fn get(&self, id: &SubscriptionId) -> Result<Option<Versioned<Subscription>>> {
        let entry = self
            .kv
            .entry(id.as_str())
            .await
            .map_err(Error::unavailable("failed to read the subscription"))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => Ok(Some(Versioned {
                value: decode(&entry.key, &entry.value, self.keyring.as_deref())?.0,
                revision: entry.revision,
            })),
            _ => Ok(None),
        }
    }

    /// Returns a subscription's document exactly as stored, sealed secrets and sink included:
    /// what anyone who can read the bucket sees (for audits and tests).
    pub async fn stored_document(&self, id: &SubscriptionId) -> Result<Option<Bytes>> {
        let entry = self
            .kv
            .entry(id.as_str())
            .await
            .map_err(Error::unavailable("failed to read the subscription"))?;
        Ok(entry
            .filter(|entry| entry.operation == kv::Operation::Put)
            .map(|entry| entry.value))
    }

    /// Returns how many revisions of a subscription the bucket holds, its history included.
    pub async fn revisions(&self, id: &SubscriptionId) -> Result<usize> {
        let history = self
            .kv
            .history(id.as_str())
            .await
            .map_err(Error::unavailable(
                "failed to read the subscription's history",
            ))?;
        let entries: Vec<kv::Entry> = history.try_collect().await.map_err(Error::unavailable(
            "failed to read the subscription's history",
        ))?;
        Ok(entries.len())
    }

    /// Reads every subscription, ordered by id.
    pub async fn list(&self) -> Result<Vec<Versioned<Subscription>>> {
        let keys = self.keys().await?;
        let mut subscriptions = Vec::with_capacity(keys.len());
        for key in keys {
            let Ok(id) = SubscriptionId::parse(&key) else {
                continue;
            };
            // A key deleted between the listing and this read is simply skipped.
            if let Some(subscription) = self.get(&id).await? {
                subscriptions.push(subscription);
            }
        }
        subscriptions.sort_by(|a, b| a.value.id.cmp(&b.value.id));
        Ok(subscriptions)
    }

    /// Replaces a subscription if it is still at `expected_revision`; fails with `Aborted` when
    /// someone else changed it first.
    pub async fn update(&self, subscription: &Subscription, expected_revision: u64) -> Result<u64> {
        let value = encode(subscription, self.keyring.as_deref())?;
        self.kv
            .update(subscription.id.as_str(), value, expected_revision)
            .await
            .map_err(|err| match err.kind() {
                kv::UpdateErrorKind::WrongLastRevision => Error::new(
                    ErrorCode::Aborted,
                    format!(
                        "subscription {} changed since revision {expected_revision}: read it again",
                        subscription.id
                    ),
                ),
                _ => Error::unavailable("failed to update the subscription")(err),
            })
    }

    /// Deletes a subscription if it is still at `expected_revision`.
    pub async fn delete(&self, id: &SubscriptionId, expected_revision: u64) -> Result<()> {
        self.kv
            .delete_expect_revision(id.as_str(), Some(expected_revision))
            .await
            .map_err(|err| {
                if err.to_string().contains("wrong last sequence") {
                    Error::new(
                        ErrorCode::Aborted,
                        format!("subscription {id} changed: read it again"),
                    )
                } else {
                    Error::unavailable("failed to delete the subscription")(err)
                }
            })
    }

    /// Streams the current state of every subscription, then every later change.
    pub async fn watch(&self) -> Result<impl Stream<Item = Result<SubscriptionChange>> + use<>> {
        let kv = self.kv.clone();
        let stored = kv
            .status()
            .await
            .map_err(Error::unavailable(
                "failed to read the subscriptions bucket",
            ))?
            .values();
        let watch = self
            .kv
            .watch_with_history(">")
            .await
            .map_err(Error::unavailable("failed to watch subscriptions"))?;
        let keyring = self.keyring.clone();
        // An empty bucket replays nothing: the watch is caught up at once.
        let empty =
            futures::stream::iter((stored == 0).then_some(Ok(SubscriptionChange::CaughtUp)));
        let changes = watch.flat_map(move |entry| {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    let failed = Err(Error::unavailable("subscription watch failed")(err));
                    return futures::stream::iter(vec![failed]);
                }
            };
            let mut changes = Vec::with_capacity(2);
            match SubscriptionId::parse(&entry.key) {
                Err(_) => {
                    tracing::warn!(key = %entry.key, "ignoring a foreign key in the subscriptions bucket");
                }
                Ok(id) => match entry.operation {
                    kv::Operation::Put => match decode(&entry.key, &entry.value, keyring.as_deref()) {
                        Ok((value, _)) => changes.push(Ok(SubscriptionChange::Put(Versioned {
                            value,
                            revision: entry.revision,
                        }))),
                        Err(err) => {
                            tracing::error!(subscription_id = %id, error = %err, "unreadable subscription");
                        }
                    },
                    kv::Operation::Delete | kv::Operation::Purge => {
                        changes.push(Ok(SubscriptionChange::Deleted(id)));
                    }
                },
            }
            if entry.delta == 0 {
                changes.push(Ok(SubscriptionChange::CaughtUp));
            }
            futures::stream::iter(changes)
        });
        Ok(empty.chain(changes))
    }
}

/// Stored in the clear beside a sealed sink: its scheme and host, for operators.
const SINK_HOST: &str = "sink_host";
/// Stored in the clear beside a sealed sink: its SHA-256, for the consent callback.
const SINK_DIGEST: &str = "sink_digest";

/// Serializes a subscription, sealing its secrets and sink when there is a keyring.
fn encode(subscription: &Subscription, keyring: Option<&Keyring>) -> Result<Bytes> {
    let serialize_error = |err: serde_json::Error| {
        Error::new(
            ErrorCode::Internal,
            format!("failed to serialize a subscription: {err}"),
        )
    };
    let mut document = serde_json::to_value(subscription).map_err(serialize_error)?;
    if let Some(keyring) = keyring {
        if let Value::Object(object) = &mut document {
            object.insert(
                SINK_HOST.to_owned(),
                Value::String(subscription.sink.scheme_and_host()),
            );
            object.insert(
                SINK_DIGEST.to_owned(),
                Value::String(subscription.sink.digest().as_str().to_owned()),
            );
        }
        for_each_secret(&mut document, |slot, field| {
            let Value::String(text) = slot else {
                return Ok(());
            };
            let context = field.sealing_context(subscription.id.as_str());
            let sealed = keyring.seal(text.as_bytes(), &context).map_err(|err| {
                Error::new(
                    ErrorCode::Internal,
                    format!(
                        "failed to seal the {} of subscription {}: {err}",
                        field.name(),
                        subscription.id
                    ),
                )
            })?;
            *slot = sealed_to_json(&sealed);
            Ok(())
        })?;
    }
    let bytes = serde_json::to_vec(&document).map_err(serialize_error)?;
    Ok(Bytes::from(bytes))
}

/// Parses a stored subscription, opening its sealed secrets and sink; the flag says whether it
/// should be written again to seal it under the current key-encryption key (a plain-text
/// secret or sink, one sealed under an older KEK, or a consent answer naming its sink by URL).
/// Errors name the key and never quote the document.
fn decode(key: &str, value: &[u8], keyring: Option<&Keyring>) -> Result<(Subscription, bool)> {
    let unreadable = |reason: String| {
        Error::new(
            ErrorCode::Internal,
            format!("stored subscription {key} is unreadable: {reason}"),
        )
    };
    let mut document: Value =
        serde_json::from_slice(value).map_err(|err| unreadable(err.to_string()))?;
    let mut stale = false;
    for_each_secret(&mut document, |slot, field| {
        match slot {
            Value::String(_) => stale |= keyring.is_some(),
            Value::Object(_) => {
                let keyring = keyring.ok_or_else(|| {
                    unreadable(
                        "it is sealed and no key-encryption key is configured (secrets.keys)"
                            .to_owned(),
                    )
                })?;
                let sealed = sealed_from_json(slot).ok_or_else(|| {
                    unreadable(format!("its sealed {} is malformed", field.name()))
                })?;
                let plaintext = keyring
                    .open(&sealed, &field.sealing_context(key))
                    .map_err(|err| unreadable(err.to_string()))?;
                let text = String::from_utf8(plaintext)
                    .map_err(|_| unreadable(format!("its sealed {} is not text", field.name())))?;
                stale |= keyring.is_stale(&sealed);
                *slot = Value::String(text);
            }
            _ => {}
        }
        Ok(())
    })?;
    if let Value::Object(object) = &mut document {
        object.remove(SINK_HOST);
        object.remove(SINK_DIGEST);
    }
    let consent_names_its_sink = document
        .get("endpoint_consent")
        .is_some_and(|consent| consent.get("sink").is_some());
    stale |= keyring.is_some() && consent_names_its_sink;
    let subscription: Subscription =
        serde_json::from_value(document).map_err(|err| unreadable(err.to_string()))?;
    Ok((subscription, stale))
}

/// A field of a stored document that is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SealedField {
    /// `sink`.
    Sink,
    /// `secret`, `retired_secrets[].secret`, `headers[].value` or `client_certificate.key`.
    Secret,
}

impl SealedField {
    fn name(self) -> &'static str {
        match self {
            SealedField::Sink => "sink",
            SealedField::Secret => "secret",
        }
    }

    /// What a sealed field is bound to: its subscription, so it opens in no other document,
    /// and whether it is the sink, so a sealed secret moved into `sink` (or the sealed sink
    /// into a secret's place) does not open either.
    fn sealing_context(self, id: &str) -> Vec<u8> {
        match self {
            SealedField::Sink => format!("herald/subscription-sink/{id}").into_bytes(),
            SealedField::Secret => format!("herald/subscription-secret/{id}").into_bytes(),
        }
    }
}

/// Calls `f` on every field of a stored document that is sealed: `sink`, `secret`,
/// `retired_secrets[].secret`, `headers[].value` and `client_certificate.key`, the fields
/// `herald_core::Subscription`
/// keeps its sink URL and secrets in.
fn for_each_secret(
    document: &mut Value,
    mut f: impl FnMut(&mut Value, SealedField) -> Result<()>,
) -> Result<()> {
    if let Some(slot) = document.get_mut("sink") {
        f(slot, SealedField::Sink)?;
    }
    if let Some(slot) = document.get_mut("secret") {
        f(slot, SealedField::Secret)?;
    }
    if let Some(Value::Array(retired)) = document.get_mut("retired_secrets") {
        for entry in retired {
            if let Some(slot) = entry.get_mut("secret") {
                f(slot, SealedField::Secret)?;
            }
        }
    }
    if let Some(Value::Array(headers)) = document.get_mut("headers") {
        for header in headers {
            if let Some(slot) = header.get_mut("value") {
                f(slot, SealedField::Secret)?;
            }
        }
    }
    if let Some(slot) = document
        .get_mut("client_certificate")
        .and_then(|certificate| certificate.get_mut("key"))
    {
        f(slot, SealedField::Secret)?;
    }
    Ok(())
}

fn sealed_to_json(sealed: &Sealed) -> Value {
    serde_json::json!({
        "alg": sealed.algorithm,
        "kek": sealed.key_id,
        "nonce": sealed.nonce,
        "ciphertext": sealed.ciphertext,
    })
}

fn sealed_from_json(value: &Value) -> Option<Sealed> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    Some(Sealed {
        algorithm: field("alg")?,
        key_id: field("kek")?,
        nonce: field("nonce")?,
        ciphertext: field("ciphertext")?,
    })
}
