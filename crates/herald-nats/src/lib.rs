//! The only crate that talks to NATS.
//!
//! It owns the JetStream topology (the events stream, the rejected-events stream and the
//! subscriptions KV bucket), publishes events with their deduplication id, stores subscriptions
//! with optimistic concurrency, manages the durable consumer of each subscription, and moves
//! invalid messages aside into the rejected-events stream. Role crates see Herald types
//! ([`Event`](herald_core::Event), [`Subscription`](herald_core::Subscription)) and this crate's
//! handles, never `async_nats` types: swapping the client or the topology stays a change here.

mod audit;
mod backlogs;
mod catalog;
mod consent_checks;
mod consumer;
mod credentials;
mod dispatchers;
mod error;
mod pauses;
mod publisher;
mod records;
mod rejected;
mod request_reply;
mod retries;
mod scan;
mod store;
mod test_sends;
mod topology;
mod wakes;

use std::time::Duration;

use async_nats::jetstream;
use serde::Deserialize;

use herald_core::ErrorCode;

pub use audit::{AUDIT_RETENTION, AUDIT_STREAM, AuditLog, AuditOrder};
pub use backlogs::{Backlog, Backlogs, ConsumerLevel};
pub use catalog::{EVENT_TYPES_BUCKET, EventTypeChange, EventTypeStore};
pub use consent_checks::{
    CONSENT_CHECKS_QUEUE, ConsentCheck, ConsentChecks, ConsentRequest, ConsentRequests,
    consent_check_subject,
};
pub use consumer::{
    ConsumerProgress, ConsumerSpec, Delivery, EventConsumer, Messages, ProgressHandle,
};
pub use credentials::{CREDENTIALS_BUCKET, CredentialStore};
pub use dispatchers::{
    CLAIMS_BUCKET, Claim, ClaimEntry, ClaimState, Dispatchers, MEMBERS_BUCKET, MIN_LEASE_TTL,
    MemberChange, MemberId, validate_replica_id,
};
pub use error::{Error, Result};
pub use pauses::{Pause, PauseStream, Pauses, pause_subject};
pub use publisher::{EventPublisher, PublishReceipt};
pub use records::{
    ATTEMPTS_STREAM, AttemptQuery, DEAD_LETTERS_STREAM, HEALTH_BUCKET, Page, Records,
    redeliver_subject,
};
pub use rejected::{
    HEADER_DETAIL, HEADER_ORIGINAL_MSG_ID, HEADER_ORIGINAL_SEQUENCE, HEADER_ORIGINAL_SUBJECT,
    HEADER_REASON, REJECTED_STREAM, REJECTED_SUBJECT_PREFIX, RejectedEvent, RejectedStore, Stored,
};
pub use request_reply::{
    DISPATCHERS_QUEUE, Purpose, Request, Requester, Requests, request_subject,
};
pub use retries::{Held, RETRIES_STREAM, Retries, RetryOf, due_subject};
pub use scan::{Scanned, Start};
pub use store::{SubscriptionChange, SubscriptionStore, Versioned};
pub use test_sends::{
    TEST_SENDS_QUEUE, TestRequest, TestRequests, TestSend, TestSends, TestSent, test_send_subject,
};
pub use topology::{StreamSettings, TopologyNeeds};
pub use wakes::{WAKE_PREFIX, Wake, WakeStream};

/// Name of the stream holding every event (subjects `herald.events.>`, `herald.t.>` and
/// `herald.redeliver.>`).
pub const EVENTS_STREAM: &str = "HERALD_EVENTS";

/// Most consumers the events stream accepts, that is most subscriptions. Set explicitly because
/// nats-server 2.15 gives every stream that sets none (or sets -1) a default of 1,000, which
/// made the 1,001st subscription fail to get a consumer.
pub const MAX_SUBSCRIPTION_CONSUMERS: i32 = 1_000_000;

/// Name of the KV bucket holding subscriptions, keyed by subscription id.
pub const SUBSCRIPTIONS_BUCKET: &str = "herald_subscriptions";

/// How Herald connects to NATS and shapes its streams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// NATS server URL(s), comma separated.
    pub url: String,
    /// How long a JetStream API call or publish acknowledgement may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Events stream settings.
    pub events: EventsStreamConfig,
    /// How long the attempt log keeps each attempt.
    #[serde(with = "humantime_serde")]
    pub attempt_retention: Duration,
    /// How long dead letters are kept before they expire.
    #[serde(with = "humantime_serde")]
    pub dead_letter_retention: Duration,
}

/// How Herald authenticates to NATS and secures its connection, beyond what fits in a URL:
/// every field optional, at most one way to authenticate.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectOptions {
    /// A `.creds` file (user JWT and nkey seed), for decentralised auth.
    pub credentials_file: Option<std::path::PathBuf>,
    /// A file holding an nkey seed (`SU...`).
    pub nkey_seed_file: Option<std::path::PathBuf>,
    /// User name, with `password`.
    pub user: Option<String>,
    pub password: Option<String>,
    /// An authentication token.
    pub token: Option<String>,
    /// PEM file of the CA certificates that sign the servers' certificates (a private CA).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    pub tls_cert_file: Option<std::path::PathBuf>,
    pub tls_key_file: Option<std::path::PathBuf>,
    /// Refuse to talk to a server without TLS.
    pub tls_required: bool,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("credentials_file", &self.credentials_file)
            .field("nkey_seed_file", &self.nkey_seed_file)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_required", &self.tls_required)
            .finish_non_exhaustive()
    }
}

impl ConnectOptions {
    /// Returns every problem with the options, empty when they are usable. `section` names
    /// them in messages.
    pub fn problems(&self, section: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let methods = [
            self.credentials_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
        ];
        if methods.iter().filter(|set| **set).count() > 1 {
            problems.push(format!(
                "{section}: set at most one of credentials_file, nkey_seed_file, user/password \
                 and token"
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            problems.push(format!("{section}: user and password go together"));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            problems.push(format!(
                "{section}: tls_cert_file and tls_key_file go together"
            ));
        }
        problems
    }

    /// Applies the options to a client's connect options.
    async fn apply(
        &self,
        options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions> {
        let mut options = options;
        if let Some(path) = &self.credentials_file {
            options = options.credentials_file(path).await.map_err(|err| {
                Error::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "failed to read the nats credentials file {}: {err}",
                        path.display()
                    ),
                )
            })?;
        }
        if let Some(path) = &self.nkey_seed_file {
            let seed = tokio::fs::read_to_string(path).await.map_err(|err| {
                Error::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "failed to read the nats nkey seed file {}: {err}",
                        path.display()
                    ),
                )
            })?;
            options = options.nkey(seed.trim().to_owned());
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(path) = &self.tls_ca_file {
            options = options.add_root_certificates(path.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls_required || self.tls_ca_file.is_some() {
            options = options.require_tls(true);
        }
        Ok(options)
    }
}

/// Settings of the events stream. Applied when Herald starts (created or updated in place).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsStreamConfig {
    /// How long events are retained, for redelivery and replay.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Window within which a second event with the same (source, id) is dropped as a duplicate.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// `file` (durable) or `memory`.
    pub storage: Storage,
    /// Number of replicas in a NATS cluster (1 for a single server).
    pub replicas: usize,
    /// Publish many-event requests as atomic batches rather than pipelined publishes.
    pub atomic_batches: bool,
}

/// JetStream storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    File,
    Memory,
}

/// A connection to NATS with Herald's JetStream topology in place.
#[derive(Clone)]
pub struct Nats {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    events: jetstream::stream::Stream,
    records: Records,
    retries: Retries,
    atomic_batches: bool,
    /// Seals and opens the signing secrets of stored subscriptions; `None` stores them as text.
    keyring: Option<std::sync::Arc<herald_signing::kek::Keyring>>,
    /// True when this handle created or updated the topology ([`Nats::connect`]), so that what
    /// it opens later (the dispatcher buckets) it may create too; false for a handle that only
    /// uses what `herald migrate` made ([`Nats::connect_existing`]).
    manages_topology: bool,
    /// Told the name of each consumer this handle set up ([`Nats::with_consumer_hook`]).
    consumer_hook: Option<ConsumerHook>,
}

/// Called with a consumer's name once [`Nats::ensure_consumer`] or [`Nats::renew_consumer`]
/// set it up.
pub type ConsumerHook = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

impl Nats {
    /// Connects and ensures the topology: every stream and bucket is created, or updated to
    /// `config` when it exists. This is migration: `herald migrate` (and `herald dev` and
    /// `herald all`, which migrate themselves) and tests use it; role processes use
    /// [`Nats::connect_existing`], which never writes the topology.
    pub async fn connect(config: &Config) -> Result<Nats> {
        Nats::connect_with(config, &ConnectOptions::default()).await
    }

    /// Connects as [`Nats::connect`] does, authenticating and securing the connection with
    /// `options` (credentials, nkey, user and password or token; TLS with a private CA).
    pub async fn connect_with(config: &Config, options: &ConnectOptions) -> Result<Nats> {
        // Boxed: setting up the topology is a deep future, and callers keep theirs small.
        Box::pin(Nats::connect_unboxed(config, options)).await
    }

    /// Connects and uses the topology `herald migrate` made, never creating or updating a
    /// stream or bucket: while one is missing, or cannot serve this version (its subjects,
    /// retention or features differ from what this code relies on), it waits, checking every
    /// second and logging what it waits for, for at most `wait`; then it fails with
    /// `DeadlineExceeded` naming each problem. Settings that differ (retention, windows,
    /// replicas) are logged once and left as they are: they are migrate's to change, so
    /// processes of two versions never rewrite each other's stream configuration.
    pub async fn connect_existing(
        config: &Config,
        options: &ConnectOptions,
        needs: TopologyNeeds,
        wait: Duration,
    ) -> Result<Nats> {
        // Boxed like `connect_with`.
        Box::pin(Nats::connect_existing_unboxed(config, options, needs, wait)).await
    }

    async fn connect_unboxed(config: &Config, options: &ConnectOptions) -> Result<Nats> {
        let (client, jetstream) = connect_client(config, options).await?;
        let events = ensure_events_stream(&jetstream, &config.events).await?;
        rejected::ensure_stream(&jetstream, &config.events).await?;
        ensure_subscriptions_bucket(&jetstream, &config.events).await?;
        catalog::ensure(&jetstream, &config.events).await?;
        credentials::ensure(&jetstream, &config.events).await?;
        audit::ensure(&jetstream, &config.events).await?;
        let records = records::ensure(&jetstream, config).await?;
        let retries = retries::ensure(&jetstream, &config.events).await?;
        Ok(Nats {
            client,
            jetstream,
            events,
            records,
            retries,
            atomic_batches: config.events.atomic_batches,
            keyring: None,
            manages_topology: true,
            consumer_hook: None,
        })
    }

    async fn connect_existing_unboxed(
        config: &Config,
        options: &ConnectOptions,
        needs: TopologyNeeds,
        wait: Duration,
    ) -> Result<Nats> {
        let (client, jetstream) = connect_client(config, options).await?;
        topology::wait_until_usable(&jetstream, config, needs, wait).await?;
        let events = jetstream
            .get_stream(EVENTS_STREAM)
            .await
            .map_err(Error::unavailable("failed to open the events stream"))?;
        let records = records::open(&jetstream).await?;
        let retries = retries::open(&jetstream).await?;
        Ok(Nats {
            client,
            jetstream,
            events,
            records,
            retries,
            atomic_batches: config.events.atomic_batches,
            keyring: None,
            manages_topology: false,
            consumer_hook: None,
        })
    }

    /// Returns the settings a stream (or a bucket's `KV_` stream) has on the server now.
    pub async fn stream_settings(&self, stream: &str) -> Result<StreamSettings> {
        topology::stream_settings(&self.jetstream, stream).await
    }

    /// Returns this connection with subscription secrets sealed under `keyring` at rest
    /// (`store.rs`): every subscription store it opens seals what it writes and opens what it
    /// reads.
    pub fn with_keyring(mut self, keyring: herald_signing::kek::Keyring) -> Nats {
        self.keyring = Some(std::sync::Arc::new(keyring));
        self
    }

    /// Returns a publisher onto the events stream.
    pub fn publisher(&self) -> EventPublisher {
        let atomic = self.atomic_batches && self.events.cached_info().config.allow_atomic_publish;
        EventPublisher::new(self.jetstream.clone(), atomic)
    }

    /// Returns the retry backlog.
    pub fn retries(&self) -> Retries {
        self.retries.clone()
    }

    /// Returns the delivery records: dead letters, attempts, endpoint health, redelivery.
    pub fn records(&self) -> Records {
        self.records.clone()
    }

    /// Streams stored events on `filter_subjects` from `start` up to sequence `until`.
    pub async fn scan_events(
        &self,
        filter_subjects: Vec<String>,
        start: Start,
        until: Option<u64>,
    ) -> Result<impl futures::Stream<Item = Result<Scanned>> + Send + use<>> {
        self.records
            .scan_events(&self.events, filter_subjects, start, until)
            .await
    }

    /// Returns the sequence of the newest stored event (0 when the stream is empty).
    pub async fn events_last_sequence(&self) -> Result<u64> {
        let mut stream = self.events.clone();
        let info = stream
            .info()
            .await
            .map_err(Error::unavailable("failed to read stream info"))?;
        Ok(info.state.last_sequence)
    }

    /// Whether the events stream republishes wake-ups (read from the server now): it does once
    /// `herald migrate` of this version ran.
    pub async fn events_republish_wakes(&self) -> Result<bool> {
        let mut stream = self.events.clone();
        let info = stream
            .info()
            .await
            .map_err(Error::unavailable("failed to read stream info"))?;
        Ok(wakes::republishes_wakes(info.config.republish.as_ref()))
    }

    /// Follows the wake-ups of every event stored from now on (`wakes.rs`).
    pub async fn wakes(&self) -> Result<WakeStream> {
        wakes::follow(&self.client).await
    }

    /// Returns test sends: control requests them, dispatchers serve them.
    pub fn test_sends(&self) -> TestSends {
        self.requester()
    }

    /// Announces and follows the pauses endpoints ask split subscriptions for.
    pub fn pauses(&self) -> Pauses {
        Pauses::new(self.client.clone())
    }

    /// Requests and serves consent handshakes (NATS request-reply, `herald.consent.<id>`).
    pub fn consent_checks(&self) -> ConsentChecks {
        self.requester()
    }

    /// Makes and serves the requests of purpose `P` (NATS request-reply,
    /// `herald.<P::SEGMENT>.<id>`).
    pub fn requester<P: Purpose>(&self) -> Requester<P> {
        Requester::new(self.client.clone())
    }

    /// Returns the store of rejected messages.
    pub fn rejected(&self) -> RejectedStore {
        RejectedStore::new(self.jetstream.clone())
    }

    /// Returns the subscription store.
    pub async fn subscriptions(&self) -> Result<SubscriptionStore> {
        let kv = self
            .jetstream
            .get_key_value(SUBSCRIPTIONS_BUCKET)
            .await
            .map_err(Error::unavailable(
                "failed to open the subscriptions bucket",
            ))?;
        Ok(SubscriptionStore::new(kv, self.keyring.clone()))
    }

    /// Creates or updates the durable consumer of a subscription.
    pub async fn ensure_consumer(&self, spec: &ConsumerSpec) -> Result<EventConsumer> {
        let max_message = consumer::max_message(&self.client);
        let mut consumer = consumer::ensure(&self.events, spec).await?;
        consumer.max_message = max_message;
        self.consumer_set_up(&spec.name);
        Ok(consumer)
    }

    /// Returns this handle telling `hook` the name of every events-stream consumer it sets up
    /// from now on (the dispatcher's readiness counts them).
    pub fn with_consumer_hook(mut self, hook: ConsumerHook) -> Nats {
        self.consumer_hook = Some(hook);
        self
    }

    fn consumer_set_up(&self, name: &str) {
        if let Some(hook) = &self.consumer_hook {
            hook(name);
        }
    }

    /// Recreates a subscription's consumer from its acknowledgement floor, so what a previous
    /// worker or owner left unacknowledged comes first, in stream order, and no other process
    /// keeps a pull on it (see `consumer::renew`).
    pub async fn renew_consumer(&self, spec: &ConsumerSpec) -> Result<EventConsumer> {
        let max_message = consumer::max_message(&self.client);
        let mut consumer = consumer::renew(&self.events, spec).await?;
        consumer.max_message = max_message;
        self.consumer_set_up(&spec.name);
        Ok(consumer)
    }

    /// Deletes a subscription's consumer; deleting one that does not exist succeeds.
    ///
    /// Its retry consumer and backlog are separate: see [`Retries::forget`].
    pub async fn delete_consumer(&self, name: &str) -> Result<()> {
        consumer::delete(&self.events, name).await
    }

    /// Returns the names of every consumer on the events stream.
    pub async fn consumer_names(&self) -> Result<Vec<String>> {
        consumer::names(&self.events).await
    }

    /// Returns the position of an existing consumer, or `NotFound`.
    pub async fn consumer_progress(&self, name: &str) -> Result<ConsumerProgress> {
        consumer::progress(&self.events, name).await
    }

    /// Returns the number of events stored in the events stream.
    pub async fn events_stored(&self) -> Result<u64> {
        let mut stream = self.events.clone();
        let info = stream
            .info()
            .await
            .map_err(Error::unavailable("failed to read stream info"))?;
        Ok(info.state.messages)
    }

    /// Returns true while the client is connected to a server.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Closes the connection once the server has read everything sent on it, acknowledgements
    /// included, waiting at most `deadline`.
    ///
    /// Acks are fire-and-forget publishes that sit in the client's buffer until its connection
    /// task writes them, and `drain` only asks that task to finish: a process that exits right
    /// after it can lose the last acks (their events are then redelivered as duplicates). So
    /// this first flushes, then makes a round trip, which the server answers only after reading
    /// what came before it on the connection, and only then drains.
    pub async fn close(&self, deadline: Duration) -> Result<()> {
        let settled = tokio::time::timeout(deadline, async {
            self.client
                .flush()
                .await
                .map_err(Error::unavailable("failed to flush the nats connection"))?;
            self.jetstream
                .query_account()
                .await
                .map_err(Error::unavailable(
                    "the server did not answer before closing",
                ))?;
            Ok::<(), Error>(())
        })
        .await;
        let drained = self
            .client
            .drain()
            .await
            .map_err(Error::unavailable("failed to drain the nats connection"));
        match settled {
            Ok(result) => result.and(drained),
            Err(_) => Err(Error::new(
                ErrorCode::Unavailable,
                format!("the nats connection did not settle within {deadline:?}"),
            )),
        }
    }
}

/// Connects the client and its JetStream context, without touching the topology.
async fn connect_client(
    config: &Config,
    options: &ConnectOptions,
) -> Result<(async_nats::Client, jetstream::Context)> {
    let client = options
        .apply(async_nats::ConnectOptions::new())
        .await?
        .name("herald")
        .connection_timeout(config.request_timeout)
        .retry_on_initial_connect()
        .connect(server_urls(&config.url))
        .await
        .map_err(Error::unavailable("failed to connect to nats"))?;
    let mut jetstream = jetstream::new(client.clone());
    jetstream.set_timeout(config.request_timeout);
    Ok((client, jetstream))
}

/// The events stream's subject transform: `herald.t.default.>` stored on `herald.events.>`.
pub(crate) fn default_tenant_transform() -> jetstream::stream::SubjectTransform {
    jetstream::stream::SubjectTransform {
        source: herald_core::subject::DEFAULT_TENANT_WILDCARD.to_owned(),
        destination: herald_core::subject::EVENTS_WILDCARD.to_owned(),
    }
}

/// The events stream as `config` shapes it.
pub(crate) fn events_stream_config(config: &EventsStreamConfig) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: EVENTS_STREAM.to_owned(),
        description: Some("Herald: every accepted CloudEvent, structured JSON".to_owned()),
        // Tenants' roots (`herald.t.>`) came after the other two: a role of an older version
        // needs only those and runs on a stream `herald migrate` gave all three.
        subjects: vec![
            herald_core::subject::EVENTS_WILDCARD.to_owned(),
            format!("{}.redeliver.>", herald_core::subject::ROOT),
            herald_core::subject::TENANTS_WILDCARD.to_owned(),
        ],
        // `herald.t.default.…` is no root (the default tenant's is `herald.events`): what a
        // direct producer publishes there is stored on `herald.events.…`, where the default
        // tenant's consumers read it, rather than kept where nothing reads it.
        subject_transform: Some(default_tenant_transform()),
        retention: jetstream::stream::RetentionPolicy::Limits,
        max_age: config.retention,
        duplicate_window: config.duplicate_window,
        storage: storage_type(config.storage),
        num_replicas: config.replicas,
        discard: jetstream::stream::DiscardPolicy::Old,
        allow_direct: true,
        max_consumers: MAX_SUBSCRIPTION_CONSUMERS,
        // Batch ingest may commit atomic batches (one store step per batch). Servers
        // before 2.12 drop the field, and the publisher then pipelines.
        allow_atomic_publish: true,
        // Every stored event's headers, on `herald.wake.<subject>`: what wakes parked
        // subscriptions (`wakes.rs`).
        republish: Some(wakes::republish()),
        ..Default::default()
    }
}

async fn ensure_events_stream(
    jetstream: &jetstream::Context,
    config: &EventsStreamConfig,
) -> Result<jetstream::stream::Stream> {
    let info = jetstream
        .create_or_update_stream(events_stream_config(config))
        .await
        .map_err(Error::unavailable(
            "failed to create or update the events stream",
        ))?;
    tracing::debug!(stream = %info.config.name, messages = info.state.messages, "events stream ready");
    jetstream
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(Error::unavailable("failed to open the events stream"))
}

/// The subscriptions bucket as `config` shapes it.
pub(crate) fn subscriptions_bucket_config(config: &EventsStreamConfig) -> jetstream::kv::Config {
    jetstream::kv::Config {
        bucket: SUBSCRIPTIONS_BUCKET.to_owned(),
        description: "Herald: subscriptions by id, JSON".to_owned(),
        history: 5,
        storage: storage_type(config.storage),
        num_replicas: config.replicas,
        ..Default::default()
    }
}

async fn ensure_subscriptions_bucket(
    jetstream: &jetstream::Context,
    config: &EventsStreamConfig,
) -> Result<()> {
    jetstream
        .create_or_update_key_value(subscriptions_bucket_config(config))
        .await
        .map_err(Error::unavailable(
            "failed to create or update the subscriptions bucket",
        ))?;
    Ok(())
}

/// Splits `nats.url`, a comma-separated seed list, into the servers the client tries: it parses
/// one string as one URL, so `a:4222,b:4222` would be refused whole.
fn server_urls(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .collect()
}

pub(crate) fn storage_type(storage: Storage) -> jetstream::stream::StorageType {
    match storage {
        Storage::File => jetstream::stream::StorageType::File,
        Storage::Memory => jetstream::stream::StorageType::Memory,
    }
}
