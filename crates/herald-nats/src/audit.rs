//! The audit stream `HERALD_AUDIT`: one JSON [`AuditRecord`] per mutation made through the
//! control plane, on `herald.audit.<tenant>` (the resource's tenant, `_` for none), read back a
//! page at a time, newest first or oldest first from a time. Records hold credential ids,
//! resource ids and revisions, never a secret or a token.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt as _;
use time::OffsetDateTime;

use herald_core::ErrorCode;
use herald_core::credential::AuditRecord;

use crate::scan::{self, Start};
use crate::{Error, EventsStreamConfig, Nats, Page, Result};

/// Name of the audit stream.
pub const AUDIT_STREAM: &str = "HERALD_AUDIT";

/// How long audit records are kept: mutations are rare, and audits look back far.
pub const AUDIT_RETENTION: Duration = Duration::from_secs(400 * 24 * 3600);

/// Which audit records to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOrder {
    /// Newest first: from the newest record, or from before the sequence of a page token.
    NewestFirst { before: Option<u64> },
    /// Oldest first: from a sequence (a page token) or from the first record at or after a time.
    OldestFirst(Start),
}

/// Appends and reads audit records; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    jetstream: jetstream::Context,
    stream: jetstream::stream::Stream,
}

impl Nats {
    /// Returns the audit log.
    pub async fn audit(&self) -> Result<AuditLog> {
        let stream = self
            .jetstream
            .get_stream(AUDIT_STREAM)
            .await
            .map_err(Error::unavailable("failed to open the audit stream"))?;
        Ok(AuditLog {
            jetstream: self.jetstream.clone(),
            stream,
        })
    }
}

impl AuditLog {
    /// Stores a record and waits for JetStream's acknowledgement; returns its sequence.
    pub async fn append(&self, record: &AuditRecord) -> Result<u64> {
        let tenant = record.tenant.as_ref().map_or("_", |tenant| tenant.as_str());
        let payload = serde_json::to_vec(record).map_err(|err| {
            Error::new(
                ErrorCode::Internal,
                format!("failed to serialize an audit record: {err}"),
            )
        })?;
        let ack = self
            .jetstream
            .publish(
                format!("{}.audit.{tenant}", herald_core::subject::ROOT),
                payload.into(),
            )
            .await
            .map_err(Error::unavailable("failed to store an audit record"))?
            .await
            .map_err(Error::unavailable("failed to store an audit record"))?;
        Ok(ack.sequence)
    }

    /// Reads at most `limit` records in `order`, none older than `since`; the page's
    /// `next_sequence` is the token of the next page.
    pub async fn page(
        &self,
        order: AuditOrder,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Page<(u64, AuditRecord)>> {
        let limit = limit.max(1);
        let mut stream = self.stream.clone();
        let state = stream
            .info()
            .await
            .map_err(Error::unavailable("failed to read the audit stream"))?
            .state
            .clone();
        if state.messages == 0 {
            return Ok(Page {
                items: Vec::new(),
                next_sequence: None,
            });
        }
        match order {
            AuditOrder::NewestFirst { before } => {
                let end = before
                    .map_or(state.last_sequence, |before| before.saturating_sub(1))
                    .min(state.last_sequence);
                if end < state.first_sequence {
                    return Ok(Page {
                        items: Vec::new(),
                        next_sequence: None,
                    });
                }
                let start = end
                    .saturating_sub(limit as u64 - 1)
                    .max(state.first_sequence);
                let mut items = self.read(Start::Sequence(start), end, limit).await?;
                items.reverse();
                let reached_since =
                    since.is_some_and(|since| items.iter().any(|(_, record)| record.time < since));
                items.retain(|(_, record)| since.is_none_or(|since| record.time >= since));
                let next_sequence =
                    (start > state.first_sequence && !reached_since).then_some(start);
                Ok(Page {
                    items,
                    next_sequence,
                })
            }
            AuditOrder::OldestFirst(start) => {
                let start = match (start, since) {
                    (Start::Sequence(sequence), _) => Start::Sequence(sequence),
                    (Start::Time(time), Some(since)) => Start::Time(time.max(since)),
                    (Start::Time(time), None) => Start::Time(time),
                };
                let items = self.read(start, state.last_sequence, limit).await?;
                let next_sequence = match items.last() {
                    Some((sequence, _))
                        if items.len() == limit && *sequence < state.last_sequence =>
                    {
                        Some(sequence + 1)
                    }
                    _ => None,
                };
                Ok(Page {
                    items,
                    next_sequence,
                })
            }
        }
    }

    async fn read(
        &self,
        start: Start,
        until: u64,
        limit: usize,
    ) -> Result<Vec<(u64, AuditRecord)>> {
        let subjects = vec![format!("{}.audit.>", herald_core::subject::ROOT)];
        let scanned = scan::scan(&self.stream, subjects, start, Some(until)).await?;
        let mut scanned = std::pin::pin!(scanned);
        let mut items = Vec::new();
        while let Some(message) = scanned.next().await {
            let message = message?;
            match serde_json::from_slice::<AuditRecord>(&message.payload) {
                Ok(record) => items.push((message.sequence, record)),
                Err(err) => tracing::error!(
                    sequence = message.sequence,
                    error = %err,
                    "unreadable audit record"
                ),
            }
            if items.len() >= limit {
                break;
            }
        }
        Ok(items)
    }
}

/// The audit stream as `config` (the events stream's storage and replicas) shapes it.
pub(crate) fn stream_config(config: &EventsStreamConfig) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: AUDIT_STREAM.to_owned(),
        description: Some(
            "Herald: every control-plane mutation (who, what, revisions), JSON, no secrets"
                .to_owned(),
        ),
        subjects: vec![format!("{}.audit.>", herald_core::subject::ROOT)],
        retention: jetstream::stream::RetentionPolicy::Limits,
        max_age: AUDIT_RETENTION,
        storage: crate::storage_type(config.storage),
        num_replicas: config.replicas,
        discard: jetstream::stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// Creates the audit stream, or updates it to `config`'s storage and replicas.
pub(crate) async fn ensure(
    jetstream: &jetstream::Context,
    config: &EventsStreamConfig,
) -> Result<()> {
    jetstream
        .create_or_update_stream(stream_config(config))
        .await
        .map_err(Error::unavailable(
            "failed to create or update the audit stream",
        ))?;
    Ok(())
}
