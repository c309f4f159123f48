//! Control-plane role: the `herald.v1.SubscriptionService` gRPC API over the subscriptions
//! stored in JetStream KV, the `herald.v1.DeliveryService` over the delivery records (dead
//! letters, attempt log, endpoint health) and the events stream (replay), and the
//! `herald.v1.EventService` over the rejected-events stream, and the `herald.v1.EventTypeService`
//! over the event-type catalog, with gRPC health checking and server reflection.
//!
//! Requests are converted from `pb::` types to `herald-core` types and validated at the edge
//! (sink URL and network policy, filters, secret), then written through `herald-nats`'s
//! [`SubscriptionStore`] with optimistic concurrency. Dispatchers watch the same bucket, so a
//! change here reaches them without a call from this crate. Both APIs require a bearer token
//! unless authentication is disabled; health and reflection stay open.
//! Depends on `herald-nats` and `herald-proto`, never on other roles.

mod auth;
mod client_certificate;
mod config;
mod consent;
mod credentials;
mod deliveries;
mod error;
mod event_types;
mod events;
mod gauges;
mod metrics;
mod subscriptions;
mod test_sends;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, Router, TcpIncoming};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::layer::util::{Identity, Stack};

use herald_core::network::NetworkPolicy;
use herald_nats::Nats;
use herald_proto::v1::audit_service_server::AuditServiceServer;
use herald_proto::v1::credential_service_server::CredentialServiceServer;
use herald_proto::v1::delivery_service_server::DeliveryServiceServer;
use herald_proto::v1::event_service_server::EventServiceServer;
use herald_proto::v1::event_type_service_server::EventTypeServiceServer;
use herald_proto::v1::subscription_service_server::SubscriptionServiceServer;
use herald_proto::{
    AUDIT_SERVICE_NAME, CREDENTIAL_SERVICE_NAME, DELIVERY_SERVICE_NAME, EVENT_SERVICE_NAME,
    EVENT_TYPE_SERVICE_NAME, SUBSCRIPTION_SERVICE_NAME,
};

pub use config::{AuthConfig, Config, SubscriptionMetricsConfig};
pub use consent::{CONSENT_TIMEOUT, ConsentConfig};
pub use deliveries::REPLAY_PROGRESS_EVERY;
pub use error::{Error, Result};
pub use events::{DEFAULT_REJECTED_PAGE_SIZE, MAX_REJECTED_PAGE_SIZE, PAYLOAD_SIZE_LIMIT};
pub use metrics::Metrics;
pub use subscriptions::{DEFAULT_PAGE_SIZE, DEFAULT_ROTATION_OVERLAP, MAX_PAGE_SIZE};
pub use test_sends::TEST_SEND_TIMEOUT;

/// The gRPC services whose health `Service::run` reports.
const SERVICE_NAMES: [&str; 6] = [
    SUBSCRIPTION_SERVICE_NAME,
    CREDENTIAL_SERVICE_NAME,
    AUDIT_SERVICE_NAME,
    DELIVERY_SERVICE_NAME,
    EVENT_SERVICE_NAME,
    EVENT_TYPE_SERVICE_NAME,
];

/// The control service, built and ready to serve.
pub struct Service {
    router: Router<Stack<auth::AccessLayer, Identity>>,
    health_reporter: HealthReporter,
    /// Replays in progress, stopped with the service.
    replays: deliveries::Replays,
    /// Keeps the operator tokens the access layer checks current while the service runs.
    credentials: CredentialFollow,
    /// What the subscription gauge task reads from and sets, and how often (boxed: the
    /// service is moved into `run`'s future).
    gauges: Box<gauges::Setup>,
    /// What the consent re-check task asks with and reads (`consent/recheck.rs`).
    rechecks: (consent::Consent, herald_nats::SubscriptionStore),
}

/// Builds the control service: the Subscriptions, Deliveries and Events APIs behind authentication,
/// gRPC health and server reflection (v1 and v1alpha). Opens the subscription store on `nats`.
pub async fn build(
    config: Arc<Config>,
    nats: Nats,
    network: NetworkPolicy,
    registry: &prometheus::Registry,
) -> Result<Service> {
    Box::pin(build_with_consent(
        config,
        ConsentConfig::default(),
        nats,
        network,
        registry,
    ))
    .await
}

/// Builds the control service as [`build`] does, asking endpoints for consent (on create, on a
/// sink change, on `VerifyEndpoint`) as `consent` says: its origin, and the callback base URL
/// and lifetime.
pub async fn build_with_consent(
    config: Arc<Config>,
    consent: ConsentConfig,
    nats: Nats,
    network: NetworkPolicy,
    registry: &prometheus::Registry,
) -> Result<Service> {
    let metrics = Metrics::register(registry)?;
    // Boxed: opening the bucket is a large future, and callers embed `build`'s.
    let store = Box::pin(nats.subscriptions()).await?;
    // Secrets written before sealing existed, or sealed under a key-encryption key that is no
    // longer the current one, are sealed again now; failing that, each is sealed at its next
    // write, and reads keep working meanwhile.
    match Box::pin(store.seal_stored()).await {
        Ok(0) => {}
        Ok(resealed) => tracing::info!(resealed, "sealed stored secrets under the current key"),
        Err(err) => {
            tracing::warn!(error = %err, "failed to seal stored secrets; will retry at the next start")
        }
    }
    // Operator tokens are read before serving and kept current by a watch while serving.
    let credential_store = Box::pin(nats.credentials()).await?;
    let credential_set = Box::pin(credential_store.load()).await?;
    let (credential_sender, credential_receiver) =
        tokio::sync::watch::channel(Arc::new(credential_set));
    let audit = Box::pin(nats.audit()).await?;
    let access = auth::AccessLayer::new(
        &config.auth,
        credential_receiver,
        audit.clone(),
        metrics.clone(),
    );
    let credential_api =
        credentials::CredentialApi::new(credential_store.clone(), audit, metrics.clone());
    let events = events::EventApi::new(nats.rejected(), metrics.clone());
    let events = EventServiceServer::new(events);
    let event_types = Box::pin(nats.event_types()).await?;
    let consent = consent::Consent::new(consent, nats.consent_checks());
    let rechecks = (consent.clone(), store.clone());
    let subscriptions = subscriptions::SubscriptionApi::new(
        store.clone(),
        nats.records(),
        event_types.clone(),
        network,
        metrics.clone(),
        nats.test_sends(),
        consent.clone(),
    );
    let event_types = event_types::EventTypeApi::new(event_types, metrics.clone());
    let event_types = EventTypeServiceServer::new(event_types);
    let subscriptions = SubscriptionServiceServer::new(subscriptions);
    let replays = deliveries::Replays::default();
    let deliveries =
        deliveries::DeliveryApi::new(store, nats.clone(), metrics.clone(), replays.clone());
    let deliveries = DeliveryServiceServer::new(deliveries);

    let (health_reporter, health) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(herald_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(Error::Reflection)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(herald_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(Error::Reflection)?;

    let router = tonic::transport::Server::builder()
        .layer(access)
        .add_service(CredentialServiceServer::new(credential_api.clone()))
        .add_service(AuditServiceServer::new(credential_api))
        .add_service(subscriptions)
        .add_service(deliveries)
        .add_service(events)
        .add_service(event_types)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok(Service {
        router,
        health_reporter,
        replays,
        credentials: CredentialFollow {
            store: credential_store,
            current: credential_sender,
        },
        gauges: Box::new(gauges::Setup {
            nats,
            metrics,
            config: None,
        }),
        rechecks,
    })
}

/// The watch of the credentials bucket that keeps the access layer's operator tokens current.
struct CredentialFollow {
    store: herald_nats::CredentialStore,
    current: tokio::sync::watch::Sender<Arc<herald_core::credential::CredentialSet>>,
}

impl CredentialFollow {
    /// Starts following; the task is aborted when the service stops.
    fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.store.follow(self.current))
    }
}

impl Service {
    /// Returns the service exporting what waits for each subscription (consumer lag, retry
    /// backlog, dead letters) as gauges, read from NATS every `config.interval` by a task the
    /// service owns and stops (`gauges.rs`).
    pub fn with_subscription_metrics(mut self, config: SubscriptionMetricsConfig) -> Service {
        self.gauges.config = Some(config);
        self
    }

    /// Serves until `shutdown` is cancelled: health turns to `NOT_SERVING`, replays in progress
    /// stop (their callers get `UNAVAILABLE`), the server stops accepting, and calls in flight
    /// finish before this returns.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
        let address = listener.local_addr().map_err(Error::Io)?;
        tracing::info!(%address, "control listening");
        self.run_incoming(TcpIncoming::from(listener), shutdown)
            .await
    }

    /// Serves the connections `incoming` yields (TLS connections, for instance, from
    /// `herald_runtime::tls::TlsListener::into_incoming`) as [`Service::run`] serves a TCP
    /// listener's.
    pub async fn run_incoming<I, IO, IE>(
        self,
        incoming: I,
        shutdown: CancellationToken,
    ) -> Result<()>
    where
        I: futures::Stream<Item = std::result::Result<IO, IE>>,
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let health_reporter = self.health_reporter;
        for name in SERVICE_NAMES {
            health_reporter
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        let replays = self.replays;
        let credentials = self.credentials.spawn();
        let gauges = gauges::GaugeTask::spawn(*self.gauges, &shutdown);
        let (consent, store) = self.rechecks;
        let rechecks = consent::RecheckTask::spawn(consent, store, &shutdown);
        let signal = {
            let health_reporter = health_reporter.clone();
            let replays = replays.clone();
            async move {
                shutdown.cancelled().await;
                // A replay's answer is a stream the server would wait for: end it first.
                replays.cancel();
                for name in SERVICE_NAMES {
                    health_reporter
                        .set_service_status(name, ServingStatus::NotServing)
                        .await;
                }
            }
        };
        let served = self
            .router
            .serve_with_incoming_shutdown(incoming, signal)
            .await;
        replays.cancel();
        replays.wait().await;
        credentials.abort();
        let _ = credentials.await;
        if let Some(gauges) = gauges {
            Box::pin(gauges.stop()).await;
        }
        if let Some(rechecks) = rechecks {
            rechecks.stop().await;
        }
        served.map_err(Error::Transport)?;
        tracing::info!("control stopped");
        Ok(())
    }
}
