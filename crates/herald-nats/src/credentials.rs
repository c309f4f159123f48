//! Producer keys and operator tokens in the `herald_credentials` KV bucket: one JSON
//! [`Credential`] per key, the credential's id (`pk_<ULID>`, `ot_<ULID>`), holding the SHA-256
//! of its token and never the token. Written by control with the KV revision as an
//! optimistic-concurrency token; ingest and control hold the credentials in force in memory and
//! keep them current with a watch ([`CredentialStore::follow`]), so authenticating a request
//! reads no KV and a revocation is seen as soon as the watch delivers it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::sync::watch;

use herald_core::ErrorCode;
use herald_core::credential::{Credential, CredentialId, CredentialSet};

use crate::{Error, EventsStreamConfig, Nats, Result, Versioned};

/// Name of the KV bucket holding producer keys and operator tokens.
pub const CREDENTIALS_BUCKET: &str = "herald_credentials";

/// How long [`CredentialStore::follow`] waits before watching again after the watch failed.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// Reads and writes credentials; cheap to clone.
#[derive(Clone)]
pub struct CredentialStore {
    kv: kv::Store,
}

impl Nats {
    /// Returns the credential store.
    pub async fn credentials(&self) -> Result<CredentialStore> {
        let kv = self
            .jetstream
            .get_key_value(CREDENTIALS_BUCKET)
            .await
            .map_err(Error::unavailable("failed to open the credentials bucket"))?;
        Ok(CredentialStore { kv })
    }
}

impl CredentialStore {
    /// Stores a new credential; returns its revision.
    pub async fn create(&self, credential: &Credential) -> Result<u64> {
        let value = encode(credential)?;
        self.kv
            .create(credential.id().as_str(), value)
            .await
            .map_err(|err| match err.kind() {
                kv::CreateErrorKind::AlreadyExists => Error::new(
                    ErrorCode::AlreadyExists,
                    format!("credential {} already exists", credential.id()),
                ),
                _ => Error::unavailable("failed to store the credential")(err),
            })
    }

    /// Reads one credential.
    pub async fn get(&self, id: &CredentialId) -> Result<Option<Versioned<Credential>>> {
        let entry = self
            .kv
            .entry(id.as_str())
            .await
            .map_err(Error::unavailable("failed to read the credential"))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => Ok(Some(Versioned {
                value: decode(&entry.key, &entry.value)?,
                revision: entry.revision,
            })),
            _ => Ok(None),
        }
    }

    /// Reads every credential, revoked ones included, ordered by id. A stored document that no
    /// longer parses is skipped and logged.
    pub async fn list(&self) -> Result<Vec<Versioned<Credential>>> {
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(Error::unavailable("failed to list credentials"))?
            .try_collect()
            .await
            .map_err(Error::unavailable("failed to list credentials"))?;
        let mut credentials = Vec::with_capacity(keys.len());
        for key in keys {
            let entry = self
                .kv
                .entry(&key)
                .await
                .map_err(Error::unavailable("failed to read the credential"))?;
            let Some(entry) = entry.filter(|entry| entry.operation == kv::Operation::Put) else {
                continue;
            };
            match decode(&entry.key, &entry.value) {
                Ok(value) => credentials.push(Versioned {
                    value,
                    revision: entry.revision,
                }),
                Err(err) => {
                    tracing::error!(key = %entry.key, error = %err, "unreadable credential")
                }
            }
        }
        credentials.sort_by(|a, b| a.value.id().cmp(b.value.id()));
        Ok(credentials)
    }

    /// Replaces a credential if it is still at `expected_revision`; `Aborted` otherwise.
    pub async fn update(&self, credential: &Credential, expected_revision: u64) -> Result<u64> {
        let value = encode(credential)?;
        self.kv
            .update(credential.id().as_str(), value, expected_revision)
            .await
            .map_err(|err| match err.kind() {
                kv::UpdateErrorKind::WrongLastRevision => Error::new(
                    ErrorCode::Aborted,
                    format!(
                        "credential {} changed since revision {expected_revision}: read it again",
                        credential.id()
                    ),
                ),
                _ => Error::unavailable("failed to update the credential")(err),
            })
    }

    /// Reads the credentials in force now.
    pub async fn load(&self) -> Result<CredentialSet> {
        let mut set = CredentialSet::default();
        for stored in self.list().await? {
            set.put(stored.value);
        }
        Ok(set)
    }

    /// Keeps `current` up to date with the bucket, forever: every change the watch delivers
    /// is applied and published at once; a failed watch is started again after a second (its
    /// replay of the bucket brings back what was missed), the last set staying in force
    /// meanwhile. The caller owns the future and ends it by dropping it.
    pub async fn follow(self, current: watch::Sender<Arc<CredentialSet>>) {
        loop {
            match self.kv.watch_with_history(">").await {
                Ok(mut changes) => {
                    while let Some(change) = changes.next().await {
                        let entry = match change {
                            Ok(entry) => entry,
                            Err(err) => {
                                tracing::warn!(error = %err, "credentials watch failed");
                                break;
                            }
                        };
                        let mut set = CredentialSet::clone(&current.borrow());
                        match entry.operation {
                            kv::Operation::Put => match decode(&entry.key, &entry.value) {
                                Ok(credential) => set.put(credential),
                                Err(err) => {
                                    tracing::error!(key = %entry.key, error = %err, "unreadable credential");
                                    continue;
                                }
                            },
                            kv::Operation::Delete | kv::Operation::Purge => {
                                if let Ok(id) = CredentialId::parse(&entry.key, "key") {
                                    set.remove(&id);
                                }
                            }
                        }
                        current.send_replace(Arc::new(set));
                    }
                    tracing::warn!("credentials watch ended; watching again");
                }
                Err(err) => tracing::warn!(error = %err, "failed to watch the credentials"),
            }
            tokio::time::sleep(WATCH_RETRY).await;
        }
    }
}

/// The credentials bucket as `config` (the events stream's settings) shapes it.
pub(crate) fn bucket_config(config: &EventsStreamConfig) -> kv::Config {
    kv::Config {
        bucket: CREDENTIALS_BUCKET.to_owned(),
        description: "Herald: producer keys and operator tokens by id, JSON, hashes only"
            .to_owned(),
        history: 5,
        storage: crate::storage_type(config.storage),
        num_replicas: config.replicas,
        ..Default::default()
    }
}

/// Creates the credentials bucket, or updates it to `config`'s storage and replicas.
pub(crate) async fn ensure(
    jetstream: &jetstream::Context,
    config: &EventsStreamConfig,
) -> Result<()> {
    jetstream
        .create_or_update_key_value(bucket_config(config))
        .await
        .map_err(Error::unavailable(
            "failed to create or update the credentials bucket",
        ))?;
    Ok(())
}

fn encode(credential: &Credential) -> Result<Bytes> {
    let bytes = serde_json::to_vec(credential).map_err(|err| {
        Error::new(
            ErrorCode::Internal,
            format!("failed to serialize a credential: {err}"),
        )
    })?;
    Ok(Bytes::from(bytes))
}

fn decode(key: &str, value: &[u8]) -> Result<Credential> {
    serde_json::from_slice(value).map_err(|err| {
        Error::new(
            ErrorCode::Internal,
            format!("stored credential {key} is unreadable: {err}"),
        )
    })
}
