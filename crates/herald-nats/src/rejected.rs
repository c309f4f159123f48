//! The rejected-events stream: messages on the events stream that are not valid CloudEvents
//! (only producers publishing to NATS directly can store those), moved aside with their reason.
//!
//! A rejected message keeps its original payload and headers (except `Nats-*` headers, which
//! would steer the publish; the original `Nats-Msg-Id` is kept as `Herald-Original-Msg-Id`)
//! and gains `Herald-Rejected-Reason` (a bounded label), `Herald-Rejected-Detail` (the problem),
//! `Herald-Original-Subject` and `Herald-Original-Sequence`. It is published with the
//! deduplication id `rejected_<original stream sequence>`, so every subscription that rejects the
//! same message stores it once.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream::DirectGetErrorKind};
use bytes::Bytes;
use time::OffsetDateTime;

use herald_core::ErrorCode;

use crate::{Delivery, Error, Result};

/// Name of the stream holding rejected messages (subjects `herald.rejected.>`).
pub const REJECTED_STREAM: &str = "HERALD_REJECTED";

/// Subject prefix of rejected messages; the last token is the reason.
pub const REJECTED_SUBJECT_PREFIX: &str = "herald.rejected";

/// Header naming why a message was rejected: a bounded label such as `missing_attribute`.
pub const HEADER_REASON: &str = "Herald-Rejected-Reason";
/// Header with the problem, in words.
pub const HEADER_DETAIL: &str = "Herald-Rejected-Detail";
/// Header with the subject the message was published on.
pub const HEADER_ORIGINAL_SUBJECT: &str = "Herald-Original-Subject";
/// Header with the message's sequence in the events stream.
pub const HEADER_ORIGINAL_SEQUENCE: &str = "Herald-Original-Sequence";
/// Header with the producer's `Nats-Msg-Id`, when it set one.
pub const HEADER_ORIGINAL_MSG_ID: &str = "Herald-Original-Msg-Id";

/// Stores and lists rejected messages; cheap to clone.
#[derive(Clone)]
pub struct RejectedStore {
    jetstream: jetstream::Context,
}

/// A rejected message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEvent {
    /// Sequence in the rejected-events stream: the paging position.
    pub sequence: u64,
    /// Subject the producer published on.
    pub original_subject: String,
    /// Sequence of the message in the events stream.
    pub original_sequence: u64,
    /// Bounded reason label.
    pub reason: String,
    /// The problem, in words.
    pub detail: String,
    /// When it was moved aside.
    pub time: OffsetDateTime,
    /// The original payload.
    pub payload: Bytes,
    /// The original headers (without `Nats-*` ones), then Herald's.
    pub headers: Vec<(String, String)>,
}

/// Whether a stored rejection was new or already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    Duplicate,
}

impl RejectedStore {
    pub(crate) fn new(jetstream: jetstream::Context) -> RejectedStore {
        RejectedStore { jetstream }
    }

    /// Moves a delivery aside with its reason and waits until JetStream persisted it.
    pub async fn store(&self, delivery: &Delivery, reason: &str, detail: &str) -> Result<Stored> {
        let mut headers = HeaderMap::new();
        for (name, value) in delivery.headers() {
            if name.eq_ignore_ascii_case("Nats-Msg-Id") {
                headers.append(HEADER_ORIGINAL_MSG_ID, value);
            } else if !starts_with_ignore_case(name, "Nats-") && !name.starts_with("Herald-") {
                headers.append(name, value);
            }
        }
        headers.insert(HEADER_REASON, reason);
        headers.insert(HEADER_DETAIL, one_line(detail).as_str());
        headers.insert(HEADER_ORIGINAL_SUBJECT, delivery.subject());
        headers.insert(
            HEADER_ORIGINAL_SEQUENCE,
            delivery.stream_sequence.to_string().as_str(),
        );
        headers.insert(
            "Nats-Msg-Id",
            format!("rejected_{}", delivery.stream_sequence).as_str(),
        );
        let subject = format!("{REJECTED_SUBJECT_PREFIX}.{}", reason_token(reason));
        let ack = self
            .jetstream
            .publish_with_headers(subject, headers, delivery.payload().clone())
            .await
            .map_err(Error::unavailable("failed to publish a rejected message"))?
            .await
            .map_err(Error::unavailable(
                "jetstream did not acknowledge a rejected message",
            ))?;
        Ok(if ack.duplicate {
            Stored::Duplicate
        } else {
            Stored::New
        })
    }

    /// Returns up to `limit` rejected messages with a sequence greater than `after`, oldest
    /// first.
    pub async fn list(&self, after: u64, limit: usize) -> Result<Vec<RejectedEvent>> {
        let stream =
            self.jetstream
                .get_stream(REJECTED_STREAM)
                .await
                .map_err(Error::unavailable(
                    "failed to open the rejected-events stream",
                ))?;
        let mut events = Vec::new();
        let mut next = after.saturating_add(1);
        let subjects = format!("{REJECTED_SUBJECT_PREFIX}.>");
        while events.len() < limit {
            let message = match stream
                .direct_get_next_for_subject(subjects.as_str(), Some(next))
                .await
            {
                Ok(message) => message,
                Err(err) if err.kind() == DirectGetErrorKind::NotFound => break,
                Err(err) => {
                    return Err(Error::new(
                        ErrorCode::Unavailable,
                        format!("failed to read a rejected message: {err}"),
                    ));
                }
            };
            next = message.sequence.saturating_add(1);
            events.push(rejected_event(message));
        }
        Ok(events)
    }
}

fn rejected_event(message: jetstream::message::StreamMessage) -> RejectedEvent {
    let header = |name: &str| {
        message
            .headers
            .get(name)
            .map(|value| value.as_str().to_owned())
            .unwrap_or_default()
    };
    let headers = message
        .headers
        .iter()
        .filter(|(name, _)| !starts_with_ignore_case(name.as_ref(), "Nats-"))
        .flat_map(|(name, values)| {
            values
                .iter()
                .map(move |value| (name.to_string(), value.as_str().to_owned()))
        })
        .collect();
    RejectedEvent {
        sequence: message.sequence,
        original_subject: header(HEADER_ORIGINAL_SUBJECT),
        original_sequence: header(HEADER_ORIGINAL_SEQUENCE).parse().unwrap_or(0),
        reason: header(HEADER_REASON),
        detail: header(HEADER_DETAIL),
        time: message.time,
        payload: message.payload,
        headers,
    }
}

/// The rejected-events stream as `config` (the events stream's settings) shapes it.
pub(crate) fn stream_config(config: &crate::EventsStreamConfig) -> jetstream::stream::Config {
    // Rejections of one message by many subscriptions may be far apart (a dispatcher that was
    // down), so the deduplication window is as long as the retention allows, up to a day.
    let duplicate_window = config
        .retention
        .min(std::time::Duration::from_secs(24 * 3600));
    jetstream::stream::Config {
        name: REJECTED_STREAM.to_owned(),
        description: Some(
            "Herald: messages on the events stream that are not valid CloudEvents, with reasons"
                .to_owned(),
        ),
        subjects: vec![format!("{REJECTED_SUBJECT_PREFIX}.>")],
        retention: jetstream::stream::RetentionPolicy::Limits,
        max_age: config.retention,
        duplicate_window,
        storage: crate::storage_type(config.storage),
        num_replicas: config.replicas,
        discard: jetstream::stream::DiscardPolicy::Old,
        allow_direct: true,
        ..Default::default()
    }
}

pub(crate) async fn ensure_stream(
    jetstream: &jetstream::Context,
    config: &crate::EventsStreamConfig,
) -> Result<()> {
    jetstream
        .create_or_update_stream(stream_config(config))
        .await
        .map_err(Error::unavailable(
            "failed to create or update the rejected-events stream",
        ))?;
    Ok(())
}

fn starts_with_ignore_case(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Header values are one line; newlines would break the NATS header block.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A reason label as one subject token (labels are snake_case already; this keeps it safe).
fn reason_token(reason: &str) -> String {
    let token: String = reason
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if token.is_empty() {
        "unknown".to_owned()
    } else {
        token
    }
}
