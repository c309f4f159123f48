//! The consent callback's write: it changes only the consent part of a stored subscription
//! (`herald_core::subscription::consent::ConsentView`) in the document's JSON, so the public
//! listener serving callbacks needs no key-encryption key and never opens a signing secret or
//! the sink. It knows the sink by its SHA-256: `sink_digest`, which a document with a sealed
//! sink keeps beside it, or the digest of a plain `sink` (a document written without a
//! keyring, or before sinks were sealed); the stored answer names its sink by digest too.

use async_nats::jetstream::kv;
use bytes::Bytes;
use serde_json::Value;

use herald_core::subscription::consent::ConsentView;
use herald_core::{ErrorCode, SubscriptionId};

use super::SubscriptionStore;
use crate::{Error, Result};

/// How many times a consent change re-reads and retries after losing a race with a writer.
const MAX_ATTEMPTS: u32 = 5;

impl SubscriptionStore {
    /// Applies `change` to the consent part of subscription `id` and writes it back by
    /// compare-and-set on its revision, re-reading and applying again when another writer
    /// came first. `Ok(None)`: no such subscription; `Ok(Some(Err(_)))`: `change` refused and
    /// nothing was written. Every other field of the document stays byte for byte as stored.
    pub async fn update_consent<T, E>(
        &self,
        id: &SubscriptionId,
        mut change: impl FnMut(&mut ConsentView) -> std::result::Result<T, E>,
    ) -> Result<Option<std::result::Result<T, E>>> {
        for _ in 0..MAX_ATTEMPTS {
            let entry = self
                .kv
                .entry(id.as_str())
                .await
                .map_err(Error::unavailable("failed to read the subscription"))?;
            let Some(entry) = entry.filter(|entry| entry.operation == kv::Operation::Put) else {
                return Ok(None);
            };
            let unreadable = |err: serde_json::Error| {
                Error::new(
                    ErrorCode::Internal,
                    format!("stored subscription {id} is unreadable: {err}"),
                )
            };
            let mut document: Value = serde_json::from_slice(&entry.value).map_err(unreadable)?;
            let mut view = consent_view(&document).map_err(unreadable)?;
            let changed = match change(&mut view) {
                Ok(changed) => changed,
                Err(refused) => return Ok(Some(Err(refused))),
            };
            let written = serde_json::to_value(&view).map_err(unreadable)?;
            if let (Some(object), Value::Object(written)) = (document.as_object_mut(), written) {
                for field in ConsentView::WRITTEN {
                    match written.get(field) {
                        Some(Value::Null) | None => object.remove(field),
                        Some(value) => object.insert(field.to_owned(), value.clone()),
                    };
                }
            }
            let value = serde_json::to_vec(&document).map_err(unreadable)?;
            match self
                .kv
                .update(id.as_str(), Bytes::from(value), entry.revision)
                .await
            {
                Ok(_) => return Ok(Some(Ok(changed))),
                Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(err) => {
                    return Err(Error::unavailable("failed to update the subscription")(err));
                }
            }
        }
        Err(Error::new(
            ErrorCode::Aborted,
            format!("subscription {id} kept changing while its consent was written; try again"),
        ))
    }
}

/// Reads the consent part of a stored document. A document without `sink_digest` has its sink
/// in plain text, which reads as its digest (`herald_core::SinkDigest`).
pub(super) fn consent_view(document: &Value) -> serde_json::Result<ConsentView> {
    let mut view = document.clone();
    if let Value::Object(object) = &mut view
        && !object.contains_key(super::SINK_DIGEST)
        && let Some(sink @ Value::String(_)) = object.get("sink").cloned()
    {
        object.insert(super::SINK_DIGEST.to_owned(), sink);
    }
    serde_json::from_value(view)
}
