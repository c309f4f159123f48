//! Herald's JetStream topology seen whole: what a process that does not migrate checks before
//! it uses the streams and buckets, and how long it waits for `herald migrate` to make them.
//!
//! A stream or bucket is *unusable* when it is missing or cannot serve this version's code: a
//! subject it publishes or consumes on is not the stream's, the retention policy is another, or
//! a feature it relies on (direct get, message schedules) is off. Then the process waits. Any
//! other difference from the process's settings (retention ages, deduplication windows,
//! replicas, storage, history) is only *reported*: settings are migrate's to apply, so pods of
//! two versions with different settings never rewrite each other's configuration.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use tokio::time::Instant;

use herald_core::ErrorCode;

use crate::{Config, Error, Result};

/// What a process needs of the topology beyond the streams and buckets every role uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct TopologyNeeds {
    /// The dispatcher's `lease_ttl`, when the process runs a dispatcher: the dispatcher buckets
    /// must exist, their members keeping entries at least this long.
    pub dispatcher_lease_ttl: Option<Duration>,
}

/// The settings of a stream as the server holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// How long messages are kept (zero: no limit).
    pub max_age: Duration,
    /// The deduplication window.
    pub duplicate_window: Duration,
    /// Replicas in the cluster.
    pub replicas: usize,
}

/// How often a waiting process looks at the topology again.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How often a waiting process repeats what it waits for.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What a look at the topology found.
#[derive(Debug, Default)]
struct Inspection {
    /// Why the topology cannot serve this process; empty when it can.
    unusable: Vec<String>,
    /// Settings that differ from this process's, left as they are.
    differences: Vec<String>,
}

/// Waits until every stream and bucket exists and can serve this version, at most `wait`; logs
/// the differences from this process's settings once it can.
pub(crate) async fn wait_until_usable(
    jetstream: &jetstream::Context,
    config: &Config,
    needs: TopologyNeeds,
    wait: Duration,
) -> Result<()> {
    let deadline = Instant::now() + wait;
    let mut logged_at: Option<Instant> = None;
    loop {
        let inspection = inspect(jetstream, config, needs).await;
        if inspection.unusable.is_empty() {
            if !inspection.differences.is_empty() {
                tracing::info!(
                    differences = %inspection.differences.join("; "),
                    "the NATS streams and buckets differ from this process's settings and stay \
                     as they are: `herald migrate` applies settings"
                );
            }
            if logged_at.is_some() {
                tracing::info!("the NATS streams and buckets are in place");
            }
            return Ok(());
        }
        let now = Instant::now();
        let problems = inspection.unusable.join("; ");
        if now >= deadline {
            return Err(Error::new(
                ErrorCode::DeadlineExceeded,
                format!(
                    "the NATS streams and buckets are missing or cannot serve this version after \
                     waiting {wait:?} (startup.topology_wait): {problems}; run `herald migrate` \
                     with this version and its settings first"
                ),
            ));
        }
        if logged_at.is_none_or(|at| now.duration_since(at) >= LOG_INTERVAL) {
            tracing::warn!(
                %problems,
                remaining = ?deadline.duration_since(now),
                "waiting for `herald migrate`: the NATS streams and buckets are missing or \
                 cannot serve this version"
            );
            logged_at = Some(now);
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline.duration_since(now))).await;
    }
}

/// Looks at every stream and bucket this process uses, writing nothing.
async fn inspect(
    jetstream: &jetstream::Context,
    config: &Config,
    needs: TopologyNeeds,
) -> Inspection {
    let mut inspection = Inspection::default();
    let streams = [
        crate::events_stream_config(&config.events),
        crate::rejected::stream_config(&config.events),
        crate::records::dead_letters_config(config),
        crate::records::attempts_config(config),
        crate::retries::stream_config(&config.events),
        crate::audit::stream_config(&config.events),
    ];
    for expected in &streams {
        if let Some(actual) = read(jetstream, &expected.name, &mut inspection).await {
            compare_stream(&actual, expected, &mut inspection);
        }
    }
    let buckets = [
        crate::subscriptions_bucket_config(&config.events),
        crate::catalog::bucket_config(&config.events),
        crate::records::health_config(config),
        crate::credentials::bucket_config(&config.events),
    ];
    for expected in &buckets {
        if let Some(actual) = read(
            jetstream,
            &format!("KV_{}", expected.bucket),
            &mut inspection,
        )
        .await
        {
            compare_bucket(&actual, expected, &mut inspection);
        }
    }
    if let Some(lease_ttl) = needs.dispatcher_lease_ttl {
        let events = crate::events_stream_config(&config.events);
        let members = crate::dispatchers::members_config(&events, lease_ttl);
        let members_stream = format!("KV_{}", members.bucket);
        if let Some(actual) = read(jetstream, &members_stream, &mut inspection).await {
            if let Some(problem) = crate::dispatchers::lease_problem(actual.max_age, lease_ttl) {
                inspection.unusable.push(problem);
            }
            compare_bucket(&actual, &members, &mut inspection);
        }
        let claims = crate::dispatchers::claims_config(&events);
        let claims_stream = format!("KV_{}", claims.bucket);
        if let Some(actual) = read(jetstream, &claims_stream, &mut inspection).await {
            compare_bucket(&actual, &claims, &mut inspection);
        }
    }
    inspection
}

/// Reads a stream's configuration; a stream that cannot be read is unusable.
async fn read(
    jetstream: &jetstream::Context,
    name: &str,
    inspection: &mut Inspection,
) -> Option<stream::Config> {
    match jetstream.get_stream(name).await {
        Ok(stream) => Some(stream.cached_info().config.clone()),
        Err(err) => {
            inspection
                .unusable
                .push(format!("stream {name} is missing or unreadable ({err})"));
            None
        }
    }
}

fn compare_stream(actual: &stream::Config, expected: &stream::Config, inspection: &mut Inspection) {
    let name = &expected.name;
    for subject in &expected.subjects {
        if !actual.subjects.contains(subject) {
            inspection
                .unusable
                .push(format!("stream {name} does not take subject {subject}"));
        }
    }
    if let Some(transform) = &expected.subject_transform
        && actual.subject_transform.as_ref() != Some(transform)
    {
        inspection.unusable.push(format!(
            "stream {name} does not store {} on {}",
            transform.source, transform.destination
        ));
    }
    if actual.retention != expected.retention {
        inspection.unusable.push(format!(
            "stream {name} has retention {:?}, this version needs {:?}",
            actual.retention, expected.retention
        ));
    }
    if expected.allow_direct && !actual.allow_direct {
        inspection
            .unusable
            .push(format!("stream {name} does not allow direct get"));
    }
    if expected.allow_message_schedules && !actual.allow_message_schedules {
        inspection
            .unusable
            .push(format!("stream {name} does not allow message schedules"));
    }
    if expected.republish.is_some() && !crate::wakes::republishes_wakes(actual.republish.as_ref()) {
        inspection.differences.push(format!(
            "{name} republishes no wake-ups: idle subscriptions keep a pull open each"
        ));
    }
    compare_settings(name, actual, expected, inspection);
    if expected.duplicate_window != actual.duplicate_window && !expected.duplicate_window.is_zero()
    {
        inspection.differences.push(format!(
            "{name} duplicate_window {:?} (settings: {:?})",
            actual.duplicate_window, expected.duplicate_window
        ));
    }
    if expected.max_consumers > 0 && actual.max_consumers != expected.max_consumers {
        inspection.differences.push(format!(
            "{name} max_consumers {} (this version: {})",
            actual.max_consumers, expected.max_consumers
        ));
    }
}

fn compare_bucket(actual: &stream::Config, expected: &kv::Config, inspection: &mut Inspection) {
    let name = &actual.name;
    let subject = format!("$KV.{}.>", expected.bucket);
    if !actual.subjects.contains(&subject) {
        inspection.unusable.push(format!(
            "stream {name} is not the bucket {}",
            expected.bucket
        ));
    }
    let as_stream = stream::Config {
        name: name.clone(),
        max_age: expected.max_age,
        storage: expected.storage,
        num_replicas: expected.num_replicas.max(1),
        ..Default::default()
    };
    compare_settings(name, actual, &as_stream, inspection);
    if expected.history != actual.max_messages_per_subject {
        inspection.differences.push(format!(
            "{name} history {} (this version: {})",
            actual.max_messages_per_subject, expected.history
        ));
    }
}

/// Reports the settings every stream and bucket has: retention age, storage, replicas.
fn compare_settings(
    name: &str,
    actual: &stream::Config,
    expected: &stream::Config,
    inspection: &mut Inspection,
) {
    if actual.max_age != expected.max_age {
        inspection.differences.push(format!(
            "{name} max_age {:?} (settings: {:?})",
            actual.max_age, expected.max_age
        ));
    }
    if actual.storage != expected.storage {
        inspection.differences.push(format!(
            "{name} storage {:?} (settings: {:?})",
            actual.storage, expected.storage
        ));
    }
    if actual.num_replicas != expected.num_replicas.max(1) {
        inspection.differences.push(format!(
            "{name} replicas {} (settings: {})",
            actual.num_replicas, expected.num_replicas
        ));
    }
}

/// Returns the settings a stream has on the server now.
pub(crate) async fn stream_settings(
    jetstream: &jetstream::Context,
    name: &str,
) -> Result<StreamSettings> {
    let stream = jetstream
        .get_stream(name)
        .await
        .map_err(Error::unavailable("failed to read a stream's settings"))?;
    let config = &stream.cached_info().config;
    Ok(StreamSettings {
        max_age: config.max_age,
        duplicate_window: config.duplicate_window,
        replicas: config.num_replicas,
    })
}
