//! The event-type catalog in the `herald_event_types` KV bucket: one JSON
//! [`EventType`](herald_core::catalog::EventType) per registered type, keyed by the type's subject
//! tokens (`com.shop.order.created`, other bytes `_HH`-encoded as in event subjects), written
//! with the KV revision as an optimistic-concurrency token and watched by ingest.
//!
//! Types are checked by `herald-core` before they reach this store; the store only reads and
//! writes them. Nothing here compiles schemas.

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use herald_core::ErrorCode;
use herald_core::catalog::EventType;

use crate::{Error, EventsStreamConfig, Nats, Result, Versioned};

/// Name of the KV bucket holding the event-type catalog.
pub const EVENT_TYPES_BUCKET: &str = "herald_event_types";

/// A change seen by [`EventTypeStore::watch`].
#[derive(Debug, Clone, PartialEq)]
pub enum EventTypeChange {
    /// Registered or updated (deprecated, say).
    Put(Versioned<EventType>),
    /// Removed; the name of the removed type.
    Deleted(String),
}

/// Reads and writes registered event types; cheap to clone.
#[derive(Clone)]
pub struct EventTypeStore {
    kv: kv::Store,
}

impl Nats {
    /// Returns the event-type catalog store.
    pub async fn event_types(&self) -> Result<EventTypeStore> {
        let kv = self
            .jetstream
            .get_key_value(EVENT_TYPES_BUCKET)
            .await
            .map_err(Error::unavailable("failed to open the event types bucket"))?;
        Ok(EventTypeStore { kv })
    }
}

impl EventTypeStore {
    /// Stores a new event type; fails with `AlreadyExists` when the name is taken.
    pub async fn create(&self, event_type: &EventType) -> Result<u64> {
        let key = key_of(&event_type.name)?;
        let value = encode(event_type)?;
        self.kv
            .create(&key, value)
            .await
            .map_err(|err| match err.kind() {
                kv::CreateErrorKind::AlreadyExists => Error::new(
                    ErrorCode::AlreadyExists,
                    format!("event type {} already exists", event_type.name),
                ),
                _ => Error::unavailable("failed to store the event type")(err),
            })
    }

    /// Reads one event type by name.
    pub async fn get(&self, name: &str) -> Result<Option<Versioned<EventType>>> {
        let Ok(key) = key_of(name) else {
            return Ok(None);
        };
        let entry = self
            .kv
            .entry(&key)
            .await
            .map_err(Error::unavailable("failed to read the event type"))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => Ok(Some(Versioned {
                value: decode(&entry.key, &entry.value)?,
                revision: entry.revision,
            })),
            _ => Ok(None),
        }
    }

    /// Reads every event type, ordered by name. A stored document that no longer parses is
    /// skipped and logged, so one bad entry does not hide the catalog.
    pub async fn list(&self) -> Result<Vec<Versioned<EventType>>> {
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(Error::unavailable("failed to list event types"))?
            .try_collect()
            .await
            .map_err(Error::unavailable("failed to list event types"))?;
        let mut event_types = Vec::with_capacity(keys.len());
        for key in keys {
            let entry = self
                .kv
                .entry(&key)
                .await
                .map_err(Error::unavailable("failed to read the event type"))?;
            // A key deleted between the listing and this read is simply skipped.
            let Some(entry) = entry.filter(|entry| entry.operation == kv::Operation::Put) else {
                continue;
            };
            match decode(&entry.key, &entry.value) {
                Ok(value) => event_types.push(Versioned {
                    value,
                    revision: entry.revision,
                }),
                Err(err) => {
                    tracing::error!(key = %entry.key, error = %err, "unreadable event type")
                }
            }
        }
        event_types.sort_by(|a, b| a.value.name.cmp(&b.value.name));
        Ok(event_types)
    }

    /// Replaces an event type if it is still at `expected_revision`; fails with `Aborted` when
    /// someone else changed it first.
    pub async fn update(&self, event_type: &EventType, expected_revision: u64) -> Result<u64> {
        let key = key_of(&event_type.name)?;
        let value = encode(event_type)?;
        self.kv
            .update(&key, value, expected_revision)
            .await
            .map_err(|err| match err.kind() {
                kv::UpdateErrorKind::WrongLastRevision => Error::new(
                    ErrorCode::Aborted,
                    format!(
                        "event type {} changed since revision {expected_revision}: read it again",
                        event_type.name
                    ),
                ),
                _ => Error::unavailable("failed to update the event type")(err),
            })
    }

    /// Streams the current state of every event type, then every later change.
    pub async fn watch(&self) -> Result<impl Stream<Item = Result<EventTypeChange>> + use<>> {
        let watch = self
            .kv
            .watch_with_history(">")
            .await
            .map_err(Error::unavailable("failed to watch event types"))?;
        Ok(watch.filter_map(|entry| async move {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => return Some(Err(Error::unavailable("event type watch failed")(err))),
            };
            match entry.operation {
                kv::Operation::Put => match decode(&entry.key, &entry.value) {
                    Ok(value) => Some(Ok(EventTypeChange::Put(Versioned {
                        value,
                        revision: entry.revision,
                    }))),
                    Err(err) => {
                        tracing::error!(key = %entry.key, error = %err, "unreadable event type");
                        None
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => {
                    let prefix = format!("{}.events.0.", herald_core::subject::ROOT);
                    let name =
                        herald_core::subject::event_type_of(&format!("{prefix}{}", entry.key));
                    Some(Ok(EventTypeChange::Deleted(name.unwrap_or(entry.key))))
                }
            }
        }))
    }
}

/// Creates the catalog bucket, or updates it to `config`'s storage and replicas.
/// The event-type catalog bucket as `config` (the events stream's settings) shapes it.
pub(crate) fn bucket_config(config: &EventsStreamConfig) -> kv::Config {
    kv::Config {
        bucket: EVENT_TYPES_BUCKET.to_owned(),
        description: "Herald: registered event types by name, JSON".to_owned(),
        history: 5,
        storage: crate::storage_type(config.storage),
        num_replicas: config.replicas,
        ..Default::default()
    }
}

pub(crate) async fn ensure(
    jetstream: &jetstream::Context,
    config: &EventsStreamConfig,
) -> Result<()> {
    jetstream
        .create_or_update_key_value(bucket_config(config))
        .await
        .map_err(Error::unavailable(
            "failed to create or update the event types bucket",
        ))?;
    Ok(())
}

/// Returns the key of an event type: its subject tokens, which KV keys accept whatever the
/// name holds.
fn key_of(name: &str) -> Result<String> {
    let invalid = || {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("`{name}` is not a usable event type name"),
        )
    };
    if name.is_empty() {
        return Err(invalid());
    }
    let subject = herald_core::subject::event_subject(0, name).ok_or_else(invalid)?;
    let prefix = format!("{}.events.0.", herald_core::subject::ROOT);
    subject
        .strip_prefix(&prefix)
        .map(str::to_owned)
        .ok_or_else(invalid)
}

fn encode(event_type: &EventType) -> Result<Bytes> {
    let bytes = serde_json::to_vec(event_type).map_err(|err| {
        Error::new(
            ErrorCode::Internal,
            format!("failed to serialize an event type: {err}"),
        )
    })?;
    Ok(Bytes::from(bytes))
}

fn decode(key: &str, value: &[u8]) -> Result<EventType> {
    serde_json::from_slice(value).map_err(|err| {
        Error::new(
            ErrorCode::Internal,
            format!("stored event type {key} is unreadable: {err}"),
        )
    })
}
