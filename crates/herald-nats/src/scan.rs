//! Reading a range of a stream: an ephemeral ordered consumer from a sequence or a time, over
//! one or more filter subjects, ending when nothing is pending. Used to page dead letters and
//! attempts and to replay events.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use time::OffsetDateTime;

use crate::{Error, Result};

/// Where a scan starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At this stream sequence (inclusive).
    Sequence(u64),
    /// At the first message stored at or after this time.
    Time(OffsetDateTime),
}

/// A stored message read by a scan.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub sequence: u64,
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
    pub time: OffsetDateTime,
}

impl Scanned {
    /// Returns a header value by name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Streams the messages matching `filter_subjects` from `start`, up to `until` (inclusive),
/// stopping once the consumer has nothing pending.
pub(crate) async fn scan(
    stream: &jetstream::stream::Stream,
    filter_subjects: Vec<String>,
    start: Start,
    until: Option<u64>,
) -> Result<impl Stream<Item = Result<Scanned>> + Send + use<>> {
    let deliver_policy = match start {
        Start::Sequence(sequence) => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: sequence.max(1),
        },
        Start::Time(start_time) => consumer::DeliverPolicy::ByStartTime { start_time },
    };
    let (filter_subject, filter_subjects) = match filter_subjects.as_slice() {
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    };
    let config = consumer::pull::OrderedConfig {
        filter_subject,
        filter_subjects,
        deliver_policy,
        ..Default::default()
    };
    let consumer = stream
        .create_consumer(config)
        .await
        .map_err(Error::unavailable("failed to create a scanning consumer"))?;
    let nothing_pending = consumer.cached_info().num_pending == 0;
    let messages = consumer
        .messages()
        .await
        .map_err(Error::unavailable("failed to read the stream"))?;
    let state = (messages, nothing_pending, until);
    Ok(futures::stream::unfold(
        state,
        |(mut messages, done, until)| async move {
            if done {
                return None;
            }
            // An idle timeout guards against a pending count that raced with deletions.
            let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
            let message = match next {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(err))) => {
                    let error = Error::new(
                        herald_core::ErrorCode::Unavailable,
                        format!("scan failed: {err}"),
                    );
                    return Some((Err(error), (messages, true, until)));
                }
                Ok(None) | Err(_) => return None,
            };
            let info = match message.info() {
                Ok(info) => (info.stream_sequence, info.pending, info.published),
                Err(err) => {
                    let error = Error::new(
                        herald_core::ErrorCode::Internal,
                        format!("malformed message: {err}"),
                    );
                    return Some((Err(error), (messages, true, until)));
                }
            };
            let (sequence, pending, time) = info;
            if until.is_some_and(|until| sequence > until) {
                return None;
            }
            let headers = message
                .headers
                .as_ref()
                .map(|headers| {
                    headers
                        .iter()
                        .flat_map(|(name, values)| {
                            values
                                .iter()
                                .map(move |value| (name.to_string(), value.as_str().to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let scanned = Scanned {
                sequence,
                subject: message.subject.to_string(),
                headers,
                payload: message.payload.clone(),
                time,
            };
            let done = pending == 0 || until.is_some_and(|until| sequence >= until);
            Some((Ok(scanned), (messages, done, until)))
        },
    ))
}
