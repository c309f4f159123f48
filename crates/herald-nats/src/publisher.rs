//! Publishing events onto the events stream, deduplicated by their message id.
//!
//! With `nats.events.atomic_batches` (and nats-server 2.12+), a request carrying many events is
//! published as JetStream atomic batches (ADR-50): the server stores a batch in one step, which
//! under `sync_interval: always` cost nats-server 0.048 ms of CPU per event in `make bench`,
//! against 0.074 ms for single publishes (docs/PERFORMANCE.md). A batch that JetStream refuses (a duplicate `Nats-Msg-Id` inside it
//! rejects all of it, as do its limits on batches in flight) is published again event by event,
//! pipelined; deduplication makes the second try harmless whatever the first one stored. A batch
//! JetStream does not answer fails the request, and the producer's retry is deduplicated alike.

use async_nats::jetstream;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::{HeaderMap, header};
use bytes::Bytes;
use futures::future::try_join_all;

use herald_core::credential::{TENANT_HEADER, TenantId};
use herald_core::trace::{self, TraceContext};
use herald_core::{ErrorCode, Event, MessageId, subject};

use crate::{Error, Result};

/// Where an accepted event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishReceipt {
    /// Stream sequence of the event (of the first copy, for a duplicate).
    pub sequence: u64,
    /// True when JetStream dropped this publish as a duplicate within the window.
    pub duplicate: bool,
}

/// JetStream's limit on the messages of one atomic batch.
const MAX_ATOMIC_BATCH: usize = 1000;

/// Publishes events; cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    jetstream: jetstream::Context,
    /// The events stream accepts atomic batches.
    atomic: bool,
    /// The tenant every event is stored for (its subject root and `Herald-Tenant`), set by
    /// ingest from the producer key; `None` stores on `herald.events` with no tenant header
    /// (the default tenant).
    tenant: Option<TenantId>,
}

impl EventPublisher {
    pub(crate) fn new(jetstream: jetstream::Context, atomic: bool) -> EventPublisher {
        EventPublisher {
            jetstream,
            atomic,
            tenant: None,
        }
    }

    /// Returns a publisher storing every event on `tenant`'s subjects
    /// (`herald.t.<tenant>.<partition>.<type tokens>`, `herald.events.…` for the default
    /// tenant, [`subject::tenant_event_subject`]) with `tenant` in its `Herald-Tenant` header
    /// ([`herald_core::credential::TENANT_HEADER`]): ingest sets it from the producer key,
    /// never from the event, so a producer cannot publish into another tenant.
    pub fn for_tenant(&self, tenant: &TenantId) -> EventPublisher {
        EventPublisher {
            tenant: Some(tenant.clone()),
            ..self.clone()
        }
    }

    /// True when many-event requests go out as atomic batches: asked for in the settings and
    /// accepted by the server (2.12+).
    pub fn atomic_batches(&self) -> bool {
        self.atomic
    }

    /// Publishes one event and waits until JetStream has persisted it.
    pub async fn publish(&self, event: &Event) -> Result<PublishReceipt> {
        self.publish_traced(event, None).await
    }

    /// Publishes one event with the trace context it is stored with (`traceparent` and
    /// `tracestate` headers), and waits until JetStream has persisted it.
    pub async fn publish_traced(
        &self,
        event: &Event,
        trace: Option<&TraceContext>,
    ) -> Result<PublishReceipt> {
        let ack = self.send(event, trace).await?;
        await_ack(ack).await
    }

    /// Publishes many events: in atomic batches of up to 1,000 when the stream allows them,
    /// otherwise pipelined (every publish sent before any acknowledgement is awaited). Succeeds
    /// only when every event is persisted; on error some may be persisted, and publishing them
    /// again is harmless thanks to deduplication.
    pub async fn publish_all(&self, events: &[Event]) -> Result<Vec<PublishReceipt>> {
        self.publish_all_traced(events, None).await
    }

    /// Like [`EventPublisher::publish_all`], every event stored with the trace context `trace`.
    pub async fn publish_all_traced(
        &self,
        events: &[Event],
        trace: Option<&TraceContext>,
    ) -> Result<Vec<PublishReceipt>> {
        if !self.atomic || events.len() < 2 {
            return self.publish_pipelined(events, trace).await;
        }
        let mut receipts = Vec::with_capacity(events.len());
        for chunk in events.chunks(MAX_ATOMIC_BATCH) {
            match self.publish_atomic(chunk, trace).await {
                Ok(committed) => receipts.extend(committed),
                Err(BatchError::Refused(refusal)) => {
                    tracing::debug!(reason = %refusal, events = chunk.len(), "atomic batch refused; publishing its events one by one");
                    receipts.extend(self.publish_pipelined(chunk, trace).await?);
                }
                // NATS did not answer: publishing again now would only wait as long again. The
                // producer's retry is safe, deduplicated against whatever was committed.
                Err(BatchError::Unavailable(err)) => return Err(err),
            }
        }
        Ok(receipts)
    }

    /// Publishes `events` (at least two) as one atomic batch (ADR-50): the first message as a
    /// request the server answers empty once the batch is open, the others plainly, and the last
    /// with the commit header as a request answered by the batch's publish acknowledgement.
    async fn publish_atomic(
        &self,
        events: &[Event],
        trace: Option<&TraceContext>,
    ) -> std::result::Result<Vec<PublishReceipt>, BatchError> {
        let client = self.jetstream.client();
        let batch_id = ulid::Ulid::generate().to_string();
        let last = events.len().saturating_sub(1);
        for (index, event) in events.iter().enumerate() {
            let message_id = event.message_id();
            // The pipelined path reports an invalid subject with its proper error.
            let subject = subject_of(self.tenant.as_ref(), event, &message_id)
                .map_err(|err| BatchError::Refused(err.to_string()))?;
            let mut headers = HeaderMap::new();
            headers.insert(header::NATS_MESSAGE_ID, message_id.as_str());
            headers.insert("Content-Type", herald_core::event::STRUCTURED_CONTENT_TYPE);
            headers.insert(header::NATS_BATCH_ID, batch_id.as_str());
            headers.insert(
                header::NATS_BATCH_SEQUENCE,
                (index + 1).to_string().as_str(),
            );
            insert_trace(&mut headers, trace);
            if let Some(tenant) = &self.tenant {
                headers.insert(TENANT_HEADER, tenant.as_str());
            }
            let payload = Bytes::clone(event.structured());
            if index == 0 || index == last {
                if index == last {
                    headers.insert(header::NATS_BATCH_COMMIT, header::NATS_BATCH_COMMIT_FINAL);
                }
                let reply = client
                    .request_with_headers(subject, headers, payload)
                    .await
                    .map_err(Error::unavailable(
                        "jetstream did not answer an atomic batch",
                    ))
                    .map_err(BatchError::Unavailable)?;
                if index == last {
                    return committed(&reply.payload, events.len()).map_err(BatchError::Refused);
                }
                if !reply.payload.is_empty() {
                    return Err(BatchError::Refused(refusal(&reply.payload)));
                }
            } else {
                client
                    .publish_with_headers(subject, headers, payload)
                    .await
                    .map_err(Error::unavailable("failed to publish an atomic batch"))
                    .map_err(BatchError::Unavailable)?;
            }
        }
        Err(BatchError::Refused(
            "an atomic batch needs events".to_owned(),
        ))
    }

    async fn publish_pipelined(
        &self,
        events: &[Event],
        trace: Option<&TraceContext>,
    ) -> Result<Vec<PublishReceipt>> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            acks.push(self.send(event, trace).await?);
        }
        try_join_all(acks.into_iter().map(await_ack)).await
    }

    async fn send(&self, event: &Event, trace: Option<&TraceContext>) -> Result<PublishAckFuture> {
        let message_id = event.message_id();
        let subject = subject_of(self.tenant.as_ref(), event, &message_id)?;
        let mut message = jetstream::message::PublishMessage::build()
            .payload(Bytes::clone(event.structured()))
            .message_id(message_id.as_str())
            .header("Content-Type", herald_core::event::STRUCTURED_CONTENT_TYPE);
        if let Some(tenant) = &self.tenant {
            message = message.header(TENANT_HEADER, tenant.as_str());
        }
        if let Some(trace) = trace {
            message = message.header(trace::TRACEPARENT, trace.traceparent());
            if let Some(state) = trace.tracestate() {
                message = message.header(trace::TRACESTATE, state);
            }
        }
        self.jetstream
            .send_publish(subject, message)
            .await
            .map_err(Error::unavailable("failed to publish to the events stream"))
    }
}

/// Adds a trace context's headers (`traceparent`, `tracestate`) to a message's.
pub(crate) fn insert_trace(headers: &mut HeaderMap, trace: Option<&TraceContext>) {
    if let Some(trace) = trace {
        headers.insert(trace::TRACEPARENT, trace.traceparent());
        if let Some(state) = trace.tracestate() {
            headers.insert(trace::TRACESTATE, state);
        }
    }
}

/// Returns the subject an event is stored on, under its tenant's root (`herald.t.<tenant>`;
/// `herald.events` for the default tenant, or when no tenant is set); `message_id` is the
/// event's, derived once by the caller (a SHA-256 per event).
fn subject_of(tenant: Option<&TenantId>, event: &Event, message_id: &MessageId) -> Result<String> {
    let partition = event.partition(message_id);
    match tenant {
        Some(tenant) => subject::tenant_event_subject(tenant, partition, event.ty()),
        None => subject::event_subject(partition, event.ty()),
    }
    .ok_or_else(|| Error::new(ErrorCode::InvalidArgument, "event type is too long"))
}

/// Why an atomic batch was not committed.
enum BatchError {
    /// JetStream answered with a refusal; the events can be published one by one.
    Refused(String),
    /// JetStream did not answer.
    Unavailable(Error),
}

/// What JetStream answers to a batch's commit: a publish acknowledgement or an error.
#[derive(serde::Deserialize)]
struct BatchAck {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    count: usize,
    error: Option<ApiError>,
}

#[derive(serde::Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// Turns a commit acknowledgement into one receipt per event: the batch's messages take the
/// consecutive sequences ending at the acknowledged one.
fn committed(reply: &[u8], expected: usize) -> std::result::Result<Vec<PublishReceipt>, String> {
    let ack: BatchAck = serde_json::from_slice(reply).map_err(|_| refusal(reply))?;
    if ack.error.is_some() || ack.count != expected || ack.seq < expected as u64 {
        return Err(refusal(reply));
    }
    let first = ack.seq + 1 - expected as u64;
    Ok((0..expected as u64)
        .map(|offset| PublishReceipt {
            sequence: first + offset,
            duplicate: false,
        })
        .collect())
}

/// Describes a refused batch from the server's answer.
fn refusal(reply: &[u8]) -> String {
    match serde_json::from_slice::<BatchAck>(reply) {
        Ok(BatchAck {
            error: Some(error), ..
        }) => format!("{} (err_code {})", error.description, error.err_code),
        _ => format!(
            "unexpected answer to an atomic batch: {}",
            String::from_utf8_lossy(reply)
        ),
    }
}

async fn await_ack(ack: PublishAckFuture) -> Result<PublishReceipt> {
    let ack = ack.await.map_err(Error::unavailable(
        "jetstream did not acknowledge the event",
    ))?;
    Ok(PublishReceipt {
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}
