//! Subscriptions in the `herald_subscriptions` KV bucket: one JSON document per subscription id,
//! written with the KV revision as an optimistic-concurrency token, and watched by dispatchers.

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use herald_core::{ErrorCode, Subscription, SubscriptionId};

use crate::{Error, Result};

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
}

/// Reads and writes subscriptions; cheap to clone.
#[derive(Clone)]
pub struct SubscriptionStore {
    kv: kv::Store,
}

impl SubscriptionStore {
    pub(crate) fn new(kv: kv::Store) -> SubscriptionStore {
        SubscriptionStore { kv }
    }

    /// Stores a new subscription; fails with `AlreadyExists` when the id is taken.
    pub async fn create(&self, subscription: &Subscription) -> Result<u64> {
        let value = encode(subscription)?;
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
                value: decode(&entry.key, &entry.value)?,
                revision: entry.revision,
            })),
            _ => Ok(None),
        }
    }

    /// Reads every subscription, ordered by id.
    pub async fn list(&self) -> Result<Vec<Versioned<Subscription>>> {
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(Error::unavailable("failed to list subscriptions"))?
            .try_collect()
            .await
            .map_err(Error::unavailable("failed to list subscriptions"))?;
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
        let value = encode(subscription)?;
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
        let watch = self
            .kv
            .watch_with_history(">")
            .await
            .map_err(Error::unavailable("failed to watch subscriptions"))?;
        Ok(watch.filter_map(|entry| async move {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => return Some(Err(Error::unavailable("subscription watch failed")(err))),
            };
            let Ok(id) = SubscriptionId::parse(&entry.key) else {
                tracing::warn!(key = %entry.key, "ignoring a foreign key in the subscriptions bucket");
                return None;
            };
            match entry.operation {
                kv::Operation::Put => match decode(&entry.key, &entry.value) {
                    Ok(value) => {
                        Some(Ok(SubscriptionChange::Put(Versioned { value, revision: entry.revision })))
                    }
                    Err(err) => {
                        tracing::error!(subscription_id = %id, error = %err, "unreadable subscription");
                        None
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => Some(Ok(SubscriptionChange::Deleted(id))),
            }
        }))
    }
}

fn encode(subscription: &Subscription) -> Result<Bytes> {
    let bytes = serde_json::to_vec(subscription).map_err(|err| {
        Error::new(
            ErrorCode::Internal,
            format!("failed to serialize a subscription: {err}"),
        )
    })?;
    Ok(Bytes::from(bytes))
}

fn decode(key: &str, value: &[u8]) -> Result<Subscription> {
    serde_json::from_slice(value).map_err(|err| {
        Error::new(
            ErrorCode::Internal,
            format!("stored subscription {key} is unreadable: {err}"),
        )
    })
}
