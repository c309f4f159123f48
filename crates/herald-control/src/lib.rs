//! Control-plane role: the `herald.v1.SubscriptionService` gRPC API over the subscriptions
//! stored in JetStream KV, the `herald.v1.EventService` over the rejected-events stream, with
//! gRPC health checking and server reflection.
//!
//! Requests are converted from `pb::` types to `herald-core` types and validated at the edge
//! (sink URL and network policy, filters, secret), then written through `herald-nats`'s
//! [`SubscriptionStore`] with optimistic concurrency. Dispatchers watch the same bucket, so a
//! change here reaches them without a call from this crate. The Subscriptions API requires a
//! bearer token unless authentication is disabled; health and reflection stay open.
//! Depends on `herald-nats` and `herald-proto`, never on other roles.

mod auth;
mod config;
mod error;
mod events;
mod metrics;
mod subscriptions;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Router, TcpIncoming};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use herald_core::network::NetworkPolicy;
use herald_nats::{RejectedStore, SubscriptionStore};
use herald_proto::v1::event_service_server::EventServiceServer;
use herald_proto::v1::subscription_service_server::SubscriptionServiceServer;
use herald_proto::{EVENT_SERVICE_NAME, SUBSCRIPTION_SERVICE_NAME};

pub use config::{AuthConfig, Config};
pub use error::{Error, Result};
pub use events::{DEFAULT_REJECTED_PAGE_SIZE, MAX_REJECTED_PAGE_SIZE, PAYLOAD_SIZE_LIMIT};
pub use metrics::Metrics;
pub use subscriptions::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// The control service, built and ready to serve.
pub struct Service {
    router: Router,
    health_reporter: HealthReporter,
}

/// Builds the control service: the Subscriptions and Events APIs behind authentication, gRPC
/// health and server reflection (v1 and v1alpha).
pub fn build(
    config: Arc<Config>,
    store: SubscriptionStore,
    rejected: RejectedStore,
    network: NetworkPolicy,
    registry: &prometheus::Registry,
) -> Result<Service> {
    let metrics = Metrics::register(registry)?;
    let authenticator = auth::Authenticator::new(&config.auth, metrics.clone());
    let events = events::EventApi::new(rejected, metrics.clone());
    let events = EventServiceServer::with_interceptor(events, authenticator.clone());
    let api = subscriptions::SubscriptionApi::new(store, network, metrics);
    let api = SubscriptionServiceServer::with_interceptor(api, authenticator);

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
        .add_service(api)
        .add_service(events)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok(Service {
        router,
        health_reporter,
    })
}

impl Service {
    /// Serves until `shutdown` is cancelled: health turns to `NOT_SERVING`, the server stops
    /// accepting, and calls in flight finish before this returns.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
        let address = listener.local_addr().map_err(Error::Io)?;
        let health_reporter = self.health_reporter;
        for service_name in [SUBSCRIPTION_SERVICE_NAME, EVENT_SERVICE_NAME] {
            health_reporter
                .set_service_status(service_name, ServingStatus::Serving)
                .await;
        }
        tracing::info!(%address, "control listening");
        let signal = {
            let health_reporter = health_reporter.clone();
            async move {
                shutdown.cancelled().await;
                for service_name in [SUBSCRIPTION_SERVICE_NAME, EVENT_SERVICE_NAME] {
                    health_reporter
                        .set_service_status(service_name, ServingStatus::NotServing)
                        .await;
                }
            }
        };
        self.router
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), signal)
            .await
            .map_err(Error::Transport)?;
        tracing::info!("control stopped");
        Ok(())
    }
}
