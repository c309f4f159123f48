//! What waits for each subscription, read from the streams' own bookkeeping for metrics: its
//! consumers' positions, its retry backlog and its dead letters.
//!
//! One [`Backlogs::read`] makes a fixed number of JetStream API calls whatever the number of
//! subscriptions, run concurrently: the subscription ids (the subscriptions bucket's keys), one
//! paged consumer listing each of `HERALD_EVENTS` and `HERALD_RETRIES` (the consumers are named
//! like their subscriptions, so the listing gives every subscription's pending and
//! ack-pending counts at once), and the per-subject message counts of `HERALD_RETRIES` and
//! `HERALD_DEAD_LETTERS` (stream info with a subjects filter, paged), whose subjects carry the
//! subscription id. Nothing here touches a consumer or a message, so the dispatchers' delivery
//! is unaffected.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use async_nats::jetstream;
use futures::TryStreamExt as _;

use herald_core::{SubscriptionId, subject};

use crate::{DEAD_LETTERS_STREAM, Error, Nats, RETRIES_STREAM, Result, SUBSCRIPTIONS_BUCKET};

/// What waits for one subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Its consumer on `HERALD_EVENTS`; `None` while it has none (no dispatcher set it up yet).
    pub events: Option<ConsumerLevel>,
    /// Its retry consumer on `HERALD_RETRIES`; `None` until a worker set it up.
    pub retries: Option<ConsumerLevel>,
    /// Retries scheduled for later (`herald.retry.sched.<id>.*`).
    pub retries_scheduled: u64,
    /// Retries whose time came and that are not yet acknowledged (`herald.retry.due.<id>`),
    /// released held events included.
    pub retries_due: u64,
    /// Events of ordered keys held behind an earlier event of their key
    /// (`herald.retry.hold.<id>.*`).
    pub held: u64,
    /// Dead letters stored (`herald.dead.<id>`).
    pub dead_letters: u64,
}

/// A consumer's position, as nats-server counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerLevel {
    /// Messages on the consumer's filter subjects not yet delivered to it: its lag.
    pub pending: u64,
    /// Messages delivered and not yet acknowledged (attempts running, events waiting in the
    /// dispatcher's scheduler).
    pub ack_pending: u64,
}

/// Reads what waits for every subscription (see the module documentation).
#[derive(Clone)]
pub struct Backlogs {
    subscriptions: jetstream::kv::Store,
    events: jetstream::stream::Stream,
    retries: jetstream::stream::Stream,
    dead_letters: jetstream::stream::Stream,
}

/// The kinds of message the retry stream holds, from their subject's third token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryKind {
    Scheduled,
    Due,
    Held,
}

impl Nats {
    /// Opens the backlog reader over the streams and the subscriptions bucket, which must exist.
    pub async fn backlogs(&self) -> Result<Backlogs> {
        let subscriptions = self
            .jetstream
            .get_key_value(SUBSCRIPTIONS_BUCKET)
            .await
            .map_err(Error::unavailable(
                "failed to open the subscriptions bucket",
            ))?;
        let retries = self
            .jetstream
            .get_stream(RETRIES_STREAM)
            .await
            .map_err(Error::unavailable("failed to open the retries stream"))?;
        let dead_letters = self
            .jetstream
            .get_stream(DEAD_LETTERS_STREAM)
            .await
            .map_err(Error::unavailable("failed to open the dead-letter stream"))?;
        Ok(Backlogs {
            subscriptions,
            events: self.events.clone(),
            retries,
            dead_letters,
        })
    }
}

impl Backlogs {
    /// Returns what waits for each stored subscription, by id. Consumers, retries and dead
    /// letters of ids no longer stored (a deleted subscription whose leftovers are still being
    /// removed) are left out, so a deleted subscription drops out at once.
    pub async fn read(&self) -> Result<BTreeMap<SubscriptionId, Backlog>> {
        let (ids, events, retries, retry_subjects, dead_letter_subjects) = futures::try_join!(
            self.subscription_ids(),
            consumer_levels(&self.events),
            consumer_levels(&self.retries),
            subject_counts(&self.retries, format!("{}.retry.>", subject::ROOT)),
            subject_counts(&self.dead_letters, format!("{}.dead.*", subject::ROOT)),
        )?;
        let mut backlogs: BTreeMap<SubscriptionId, Backlog> =
            ids.into_iter().map(|id| (id, Backlog::default())).collect();
        // A subscription split into parts has a consumer per part: their levels add up.
        for (name, level) in events {
            if let Some(backlog) = backlog_of_consumer(&mut backlogs, &name) {
                backlog.events = Some(level.plus(backlog.events));
            }
        }
        for (name, level) in retries {
            if let Some(backlog) = backlog_of_consumer(&mut backlogs, &name) {
                backlog.retries = Some(level.plus(backlog.retries));
            }
        }
        for (subject, count) in retry_subjects {
            let Some((kind, id)) = classify_retry_subject(&subject) else {
                continue;
            };
            if let Some(backlog) = backlog_of(&mut backlogs, id) {
                let total = match kind {
                    RetryKind::Scheduled => &mut backlog.retries_scheduled,
                    RetryKind::Due => &mut backlog.retries_due,
                    RetryKind::Held => &mut backlog.held,
                };
                *total = total.saturating_add(count);
            }
        }
        for (subject, count) in dead_letter_subjects {
            let Some(id) = dead_letter_subscription(&subject) else {
                continue;
            };
            if let Some(backlog) = backlog_of(&mut backlogs, id) {
                backlog.dead_letters = backlog.dead_letters.saturating_add(count);
            }
        }
        Ok(backlogs)
    }

    /// The ids of the stored subscriptions (deleted keys are not listed).
    async fn subscription_ids(&self) -> Result<Vec<SubscriptionId>> {
        let keys = self
            .subscriptions
            .keys()
            .await
            .map_err(Error::unavailable("failed to list the subscriptions"))?;
        let keys: Vec<String> = keys
            .try_collect()
            .await
            .map_err(Error::unavailable("failed to list the subscriptions"))?;
        Ok(keys
            .iter()
            .filter_map(|key| SubscriptionId::parse(key).ok())
            .collect())
    }
}

/// The entry of the subscription a consumer or subject names, if it is a stored one.
fn backlog_of<'a>(
    backlogs: &'a mut BTreeMap<SubscriptionId, Backlog>,
    name: &str,
) -> Option<&'a mut Backlog> {
    let id = SubscriptionId::parse(name).ok()?;
    backlogs.get_mut(&id)
}

/// The entry of the subscription a consumer belongs to (`herald_core::WorkId::consumer_name`:
/// the subscription's own, or one of its parts'), if it is a stored one.
fn backlog_of_consumer<'a>(
    backlogs: &'a mut BTreeMap<SubscriptionId, Backlog>,
    name: &str,
) -> Option<&'a mut Backlog> {
    let work = herald_core::WorkId::parse_consumer_name(name).ok()?;
    backlogs.get_mut(work.subscription())
}

impl ConsumerLevel {
    /// This level added to another consumer's of the same subscription, if any.
    fn plus(self, other: Option<ConsumerLevel>) -> ConsumerLevel {
        let other = other.unwrap_or_default();
        ConsumerLevel {
            pending: self.pending.saturating_add(other.pending),
            ack_pending: self.ack_pending.saturating_add(other.ack_pending),
        }
    }
}

/// Every consumer of `stream` with its position: one paged listing.
async fn consumer_levels(
    stream: &jetstream::stream::Stream,
) -> Result<Vec<(String, ConsumerLevel)>> {
    stream
        .consumers()
        .map_ok(|info| {
            let level = ConsumerLevel {
                pending: info.num_pending,
                ack_pending: u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX),
            };
            (info.name, level)
        })
        .try_collect()
        .await
        .map_err(Error::unavailable("failed to list consumers"))
}

/// The message count of every subject of `stream` that `filter` matches: stream info with a
/// subjects filter, paged.
async fn subject_counts(
    stream: &jetstream::stream::Stream,
    filter: String,
) -> Result<Vec<(String, u64)>> {
    let subjects = stream
        .info_with_subjects(filter)
        .await
        .map_err(Error::unavailable("failed to read a stream's subjects"))?;
    subjects
        .map_ok(|(subject, count)| (subject, u64::try_from(count).unwrap_or(u64::MAX)))
        .try_collect()
        .await
        .map_err(Error::unavailable("failed to read a stream's subjects"))
}

/// Splits a retry-stream subject into its kind and the subscription id it carries:
/// `herald.retry.sched.<id>.<sequence>`, `herald.retry.due.<id>` or
/// `herald.retry.hold.<id>.<key token>`, each with a part token after the id for a part of a
/// split subscription (`herald.retry.due.<id>.p1of4`); `None` for anything else.
pub(crate) fn classify_retry_subject(subject: &str) -> Option<(RetryKind, &str)> {
    let rest = subject
        .strip_prefix(subject::ROOT)?
        .strip_prefix(".retry.")?;
    let mut tokens = rest.split('.').peekable();
    let kind = tokens.next()?;
    let id = tokens.next()?;
    if tokens
        .peek()
        .is_some_and(|token| herald_core::subscription::Part::parse_token(token).is_some())
    {
        tokens.next();
    }
    let remaining = tokens.count();
    match (kind, remaining) {
        ("sched", 1) => Some((RetryKind::Scheduled, id)),
        ("due", 0) => Some((RetryKind::Due, id)),
        ("hold", 1) => Some((RetryKind::Held, id)),
        _ => None,
    }
}

/// The subscription id of a dead-letter subject, `herald.dead.<id>`.
pub(crate) fn dead_letter_subscription(subject: &str) -> Option<&str> {
    let id = subject
        .strip_prefix(subject::ROOT)?
        .strip_prefix(".dead.")?;
    (!id.is_empty() && !id.contains('.')).then_some(id)
}
