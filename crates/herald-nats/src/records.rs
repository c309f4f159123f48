//! Delivery records in JetStream: dead letters (`HERALD_DEAD_LETTERS`, subjects
//! `herald.dead.<subscription id>`), the attempt log (`HERALD_ATTEMPTS`, subjects
//! `herald.attempts.<subscription id>.<encoded event id>`), endpoint health (KV bucket
//! `herald_endpoint_health`), and redelivery to one subscription (`herald.redeliver.<id>` in
//! the events stream).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use time::OffsetDateTime;

use herald_core::record::{AttemptRecord, DeadLetter, EndpointHealth};
use herald_core::trace::{self, TraceContext};
use herald_core::{ErrorCode, SubscriptionId, subject};

use crate::scan::{self, Scanned, Start};
use crate::{Error, Result};

/// Name of the dead-letter stream.
pub const DEAD_LETTERS_STREAM: &str = "HERALD_DEAD_LETTERS";
/// Name of the attempt log stream.
pub const ATTEMPTS_STREAM: &str = "HERALD_ATTEMPTS";
/// Name of the endpoint health bucket.
pub const HEALTH_BUCKET: &str = "herald_endpoint_health";

const HEADER_SUBSCRIPTION: &str = "Herald-Subscription";
const HEADER_ATTEMPTS: &str = "Herald-Attempts";
const HEADER_REASON: &str = "Herald-Reason";
const HEADER_LAST_ERROR: &str = "Herald-Last-Error";
const HEADER_EVENT_SEQUENCE: &str = "Herald-Event-Sequence";

/// Returns the subject events are redelivered to one subscription on.
pub fn redeliver_subject(id: &SubscriptionId) -> String {
    format!("{}.redeliver.{id}", subject::ROOT)
}

/// Dead letters, the attempt log, endpoint health and redelivery; cheap to clone.
#[derive(Clone)]
pub struct Records {
    pub(crate) jetstream: jetstream::Context,
    pub(crate) dead_letters: jetstream::stream::Stream,
    pub(crate) attempts: jetstream::stream::Stream,
    pub(crate) health: kv::Store,
}

/// A page of results and the token of the next one (`None` on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_sequence: Option<u64>,
}

/// Which attempts to list.
#[derive(Debug, Clone, Default)]
pub struct AttemptQuery {
    pub subscription_id: Option<SubscriptionId>,
    pub event_id: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Continue after a previous page.
    pub after_sequence: Option<u64>,
    pub limit: usize,
}

impl Records {
    /// Stores a dead letter; storing the same event for the same subscription twice (a crash
    /// between storing and terminating) keeps one.
    #[allow(
        clippy::too_many_arguments,
        reason = "each is one header of the dead letter"
    )]
    pub async fn dead_letter(
        &self,
        subscription_id: &SubscriptionId,
        event: Bytes,
        event_sequence: u64,
        attempts: u32,
        reason: &str,
        last_error: &str,
        trace: Option<&TraceContext>,
    ) -> Result<()> {
        let message = with_trace(jetstream::message::PublishMessage::build(), trace)
            .payload(event)
            .message_id(format!("dead-{subscription_id}-{event_sequence}"))
            .header("Content-Type", herald_core::event::STRUCTURED_CONTENT_TYPE)
            .header(HEADER_SUBSCRIPTION, subscription_id.as_str())
            .header(HEADER_ATTEMPTS, attempts.to_string())
            .header(HEADER_REASON, reason)
            .header(HEADER_LAST_ERROR, header_safe(last_error))
            .header(HEADER_EVENT_SEQUENCE, event_sequence.to_string());
        let subject = format!("{}.dead.{subscription_id}", subject::ROOT);
        self.publish(subject, message).await
    }

    /// Lists a subscription's dead letters, oldest first.
    pub async fn dead_letters(
        &self,
        subscription_id: &SubscriptionId,
        after_sequence: Option<u64>,
        limit: usize,
    ) -> Result<Page<DeadLetter>> {
        let filter = format!("{}.dead.{subscription_id}", subject::ROOT);
        let start = Start::Sequence(after_sequence.map_or(1, |sequence| sequence + 1));
        let mut scanned =
            Box::pin(scan::scan(&self.dead_letters, vec![filter], start, None).await?);
        let mut items = Vec::new();
        while let Some(message) = scanned.next().await {
            items.push(dead_letter_of(&message?));
            if items.len() == limit {
                break;
            }
        }
        let next_sequence = (items.len() == limit)
            .then(|| items.last().map(|d| d.sequence))
            .flatten();
        Ok(Page {
            items,
            next_sequence,
        })
    }

    /// Returns the given dead letters of a subscription, or all of them.
    pub async fn select_dead_letters(
        &self,
        subscription_id: &SubscriptionId,
        sequences: Option<&[u64]>,
    ) -> Result<Vec<DeadLetter>> {
        let filter = format!("{}.dead.{subscription_id}", subject::ROOT);
        let scanned =
            scan::scan(&self.dead_letters, vec![filter], Start::Sequence(1), None).await?;
        let all: Vec<Scanned> = scanned.try_collect().await?;
        Ok(all
            .iter()
            .map(dead_letter_of)
            .filter(|dead| sequences.is_none_or(|wanted| wanted.contains(&dead.sequence)))
            .collect())
    }

    /// Sends a dead letter back into delivery for its subscription, then removes it.
    pub async fn redrive(&self, dead_letter: &DeadLetter) -> Result<()> {
        let id = SubscriptionId::parse(&dead_letter.subscription_id)
            .map_err(|err| Error::new(ErrorCode::Internal, err.to_string()))?;
        let message = with_trace(
            jetstream::message::PublishMessage::build(),
            dead_letter.trace.as_ref(),
        )
        .payload(dead_letter.event.clone())
        .message_id(format!("redrive-{id}-{}", dead_letter.sequence))
        .header("Content-Type", herald_core::event::STRUCTURED_CONTENT_TYPE);
        self.publish(redeliver_subject(&id), message).await?;
        self.remove_dead_letter(dead_letter.sequence).await
    }

    /// Deletes one dead letter.
    pub async fn remove_dead_letter(&self, sequence: u64) -> Result<()> {
        match self.dead_letters.delete_message(sequence).await {
            Ok(_) => Ok(()),
            Err(err) if err.to_string().contains("no message found") => Ok(()),
            Err(err) => Err(Error::unavailable("failed to delete a dead letter")(err)),
        }
    }

    /// Republishes a stored event to one subscription (replay) with the trace context it was
    /// stored with; `dedup` makes it idempotent.
    pub async fn redeliver(
        &self,
        id: &SubscriptionId,
        event: Bytes,
        dedup: &str,
        trace: Option<&TraceContext>,
    ) -> Result<()> {
        let message = with_trace(jetstream::message::PublishMessage::build(), trace)
            .payload(event)
            .message_id(dedup)
            .header("Content-Type", herald_core::event::STRUCTURED_CONTENT_TYPE);
        self.publish(redeliver_subject(id), message).await
    }

    /// Appends an attempt to the log.
    pub async fn record_attempt(&self, record: &AttemptRecord) -> Result<()> {
        let subject = format!(
            "{}.attempts.{}.{}",
            subject::ROOT,
            record.subscription_id,
            subject::encode_token(&record.event_id)
        );
        let payload = Bytes::from(serde_json::to_vec(record).map_err(serialize_error)?);
        let message = jetstream::message::PublishMessage::build().payload(payload);
        self.publish(subject, message).await
    }

    /// Lists attempts, oldest first.
    pub async fn attempts(&self, query: &AttemptQuery) -> Result<Page<(u64, AttemptRecord)>> {
        let subscription = query
            .subscription_id
            .as_ref()
            .map_or("*".to_owned(), |id| id.to_string());
        let event = query
            .event_id
            .as_deref()
            .map_or(">".to_owned(), subject::encode_token);
        let filter = format!("{}.attempts.{subscription}.{event}", subject::ROOT);
        let start = match (query.after_sequence, query.from) {
            (Some(sequence), _) => Start::Sequence(sequence + 1),
            (None, Some(from)) => Start::Time(from),
            (None, None) => Start::Sequence(1),
        };
        let mut scanned = Box::pin(scan::scan(&self.attempts, vec![filter], start, None).await?);
        let mut items = Vec::new();
        let mut last_sequence = None;
        while let Some(message) = scanned.next().await {
            let message = message?;
            last_sequence = Some(message.sequence);
            let Ok(record) = serde_json::from_slice::<AttemptRecord>(&message.payload) else {
                continue;
            };
            if query.until.is_some_and(|until| record.started_at > until) {
                last_sequence = None;
                break;
            }
            if query
                .outcome
                .as_ref()
                .is_some_and(|outcome| *outcome != record.outcome)
            {
                continue;
            }
            items.push((message.sequence, record));
            if items.len() == query.limit {
                break;
            }
        }
        let next_sequence = if items.len() == query.limit {
            last_sequence
        } else {
            None
        };
        Ok(Page {
            items,
            next_sequence,
        })
    }

    /// Returns the latest attempt of an event for a subscription.
    pub async fn last_attempt(
        &self,
        id: &SubscriptionId,
        event_id: &str,
    ) -> Result<Option<AttemptRecord>> {
        let subject = format!(
            "{}.attempts.{id}.{}",
            subject::ROOT,
            subject::encode_token(event_id)
        );
        match self.attempts.direct_get_last_for_subject(subject).await {
            Ok(message) => Ok(serde_json::from_slice(&message.payload).ok()),
            Err(err) if err.to_string().to_lowercase().contains("not found") => Ok(None),
            Err(err) => Err(Error::unavailable("failed to read the attempt log")(err)),
        }
    }

    /// Reads a subscription's endpoint health.
    pub async fn health(&self, id: &SubscriptionId) -> Result<EndpointHealth> {
        let value = self
            .health
            .get(id.as_str())
            .await
            .map_err(Error::unavailable("failed to read endpoint health"))?;
        Ok(value
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default())
    }

    /// Returns a subscription's endpoint health and the revision it is stored at, for
    /// [`Records::set_health_if`]: 0 when none was ever stored.
    pub async fn health_versioned(&self, id: &SubscriptionId) -> Result<(EndpointHealth, u64)> {
        let entry = self
            .health
            .entry(id.as_str())
            .await
            .map_err(Error::unavailable("failed to read endpoint health"))?;
        Ok(match entry {
            Some(entry) if entry.operation == kv::Operation::Put => (
                serde_json::from_slice(&entry.value).unwrap_or_default(),
                entry.revision,
            ),
            Some(entry) => (EndpointHealth::default(), entry.revision),
            None => (EndpointHealth::default(), 0),
        })
    }

    /// Writes a subscription's endpoint health only if it is still at `revision` (0: none
    /// stored): the new revision, or `None` when another writer came first (a replica that
    /// delivered for the subscription just before), whose view the caller merges and writes.
    pub async fn set_health_if(
        &self,
        id: &SubscriptionId,
        health: &EndpointHealth,
        revision: u64,
    ) -> Result<Option<u64>> {
        let value = Bytes::from(serde_json::to_vec(health).map_err(serialize_error)?);
        if revision == 0 {
            return match self.health.create(id.as_str(), value).await {
                Ok(revision) => Ok(Some(revision)),
                Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(err) => Err(Error::unavailable("failed to write endpoint health")(err)),
            };
        }
        match self.health.update(id.as_str(), value, revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(err) => Err(Error::unavailable("failed to write endpoint health")(err)),
        }
    }

    /// Writes a subscription's endpoint health, whatever is stored (an operator's reset).
    pub async fn set_health(&self, id: &SubscriptionId, health: &EndpointHealth) -> Result<()> {
        let value = Bytes::from(serde_json::to_vec(health).map_err(serialize_error)?);
        self.health
            .put(id.as_str(), value)
            .await
            .map_err(Error::unavailable("failed to write endpoint health"))?;
        Ok(())
    }

    /// Forgets a subscription's records: its dead letters and health (attempts age out).
    pub async fn forget(&self, id: &SubscriptionId) -> Result<()> {
        self.dead_letters
            .purge()
            .filter(format!("{}.dead.{id}", subject::ROOT))
            .await
            .map_err(Error::unavailable("failed to purge dead letters"))?;
        self.health
            .purge(id.as_str())
            .await
            .map_err(Error::unavailable("failed to purge health"))?;
        Ok(())
    }

    /// Purges the given dead letters of a subscription, or all of them; returns how many.
    pub async fn purge_dead_letters(
        &self,
        id: &SubscriptionId,
        sequences: Option<&[u64]>,
    ) -> Result<u64> {
        match sequences {
            None => {
                let response = self
                    .dead_letters
                    .purge()
                    .filter(format!("{}.dead.{id}", subject::ROOT))
                    .await
                    .map_err(Error::unavailable("failed to purge dead letters"))?;
                Ok(response.purged)
            }
            Some(sequences) => {
                let selected = self.select_dead_letters(id, Some(sequences)).await?;
                for dead in &selected {
                    self.remove_dead_letter(dead.sequence).await?;
                }
                Ok(selected.len() as u64)
            }
        }
    }

    /// Streams the stored events on `filter_subjects` from `start` to `until`.
    pub async fn scan_events(
        &self,
        events: &jetstream::stream::Stream,
        filter_subjects: Vec<String>,
        start: Start,
        until: Option<u64>,
    ) -> Result<impl Stream<Item = Result<Scanned>> + Send + use<>> {
        scan::scan(events, filter_subjects, start, until).await
    }

    async fn publish(
        &self,
        subject: String,
        message: jetstream::message::PublishMessage,
    ) -> Result<()> {
        self.jetstream
            .send_publish(subject, message)
            .await
            .map_err(Error::unavailable("failed to publish a record"))?
            .await
            .map_err(Error::unavailable("jetstream did not acknowledge a record"))?;
        Ok(())
    }
}

fn dead_letter_of(message: &Scanned) -> DeadLetter {
    let number = |name| {
        message
            .header(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    DeadLetter {
        sequence: message.sequence,
        subscription_id: message
            .header(HEADER_SUBSCRIPTION)
            .unwrap_or_default()
            .to_owned(),
        event: message.payload.clone(),
        attempts: u32::try_from(number(HEADER_ATTEMPTS)).unwrap_or(u32::MAX),
        reason: message.header(HEADER_REASON).unwrap_or_default().to_owned(),
        last_error: message
            .header(HEADER_LAST_ERROR)
            .unwrap_or_default()
            .to_owned(),
        dead_at: message.time,
        event_sequence: number(HEADER_EVENT_SEQUENCE),
        trace: message
            .header(trace::TRACEPARENT)
            .and_then(|parent| TraceContext::parse(parent, message.header(trace::TRACESTATE))),
    }
}

/// Adds a trace context's headers to a message being built.
fn with_trace(
    message: jetstream::message::PublishMessage,
    trace: Option<&TraceContext>,
) -> jetstream::message::PublishMessage {
    let Some(trace) = trace else {
        return message;
    };
    let message = message.header(trace::TRACEPARENT, trace.traceparent());
    match trace.tracestate() {
        Some(state) => message.header(trace::TRACESTATE, state),
        None => message,
    }
}

/// Header values must be printable ASCII without CR/LF; keep them short.
fn header_safe(text: &str) -> String {
    let mut safe: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    safe.truncate(512);
    safe
}

/// The dead-letter stream as `config` shapes it.
pub(crate) fn dead_letters_config(config: &crate::Config) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: DEAD_LETTERS_STREAM.to_owned(),
        description: Some("Herald: events given up on, per subscription".to_owned()),
        subjects: vec![format!("{}.dead.>", subject::ROOT)],
        max_age: config.dead_letter_retention,
        duplicate_window: Duration::from_secs(120),
        storage: crate::storage_type(config.events.storage),
        num_replicas: config.events.replicas,
        allow_direct: true,
        ..Default::default()
    }
}

/// The attempt log's stream as `config` shapes it.
pub(crate) fn attempts_config(config: &crate::Config) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: ATTEMPTS_STREAM.to_owned(),
        description: Some("Herald: every delivery attempt".to_owned()),
        subjects: vec![format!("{}.attempts.>", subject::ROOT)],
        max_age: config.attempt_retention,
        storage: crate::storage_type(config.events.storage),
        num_replicas: config.events.replicas,
        allow_direct: true,
        ..Default::default()
    }
}

/// The endpoint health bucket as `config` shapes it.
pub(crate) fn health_config(config: &crate::Config) -> kv::Config {
    kv::Config {
        bucket: HEALTH_BUCKET.to_owned(),
        description: "Herald: endpoint health per subscription".to_owned(),
        history: 1,
        storage: crate::storage_type(config.events.storage),
        num_replicas: config.events.replicas,
        ..Default::default()
    }
}

pub(crate) async fn ensure(
    jetstream: &jetstream::Context,
    config: &crate::Config,
) -> Result<Records> {
    jetstream
        .create_or_update_stream(dead_letters_config(config))
        .await
        .map_err(Error::unavailable(
            "failed to create or update the dead-letter stream",
        ))?;
    jetstream
        .create_or_update_stream(attempts_config(config))
        .await
        .map_err(Error::unavailable(
            "failed to create or update the attempts stream",
        ))?;
    jetstream
        .create_or_update_key_value(health_config(config))
        .await
        .map_err(Error::unavailable(
            "failed to create or update the health bucket",
        ))?;
    open(jetstream).await
}

/// Opens the record streams and the health bucket, which must exist.
pub(crate) async fn open(jetstream: &jetstream::Context) -> Result<Records> {
    let health = jetstream
        .get_key_value(HEALTH_BUCKET)
        .await
        .map_err(Error::unavailable("failed to open the health bucket"))?;
    let dead_letters = jetstream
        .get_stream(DEAD_LETTERS_STREAM)
        .await
        .map_err(Error::unavailable("failed to open the dead-letter stream"))?;
    let attempts = jetstream
        .get_stream(ATTEMPTS_STREAM)
        .await
        .map_err(Error::unavailable("failed to open the attempts stream"))?;
    Ok(Records {
        jetstream: jetstream.clone(),
        dead_letters,
        attempts,
        health,
    })
}

fn serialize_error(err: serde_json::Error) -> Error {
    Error::new(
        herald_core::ErrorCode::Internal,
        format!("failed to serialize a record: {err}"),
    )
}
