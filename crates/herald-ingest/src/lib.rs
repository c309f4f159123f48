//! Edge ingest role: accepts CloudEvents over HTTP and answers `202 Accepted` only once JetStream
//! has persisted them.
//!
//! `POST /v1/events` takes structured mode (`application/cloudevents+json`), batch mode
//! (`application/cloudevents-batch+json`, accepted whole or refused whole) and binary mode
//! (`ce-` headers, any body). Every refusal is an `application/problem+json` document naming the
//! attribute at fault, hyper's own refusals of a request head included (`listener.rs`).
//! `OPTIONS /v1/events` answers the CloudEvents webhook abuse-protection handshake. Every request
//! is answered within `ingest.request_timeout`. Depends on `herald-nats` for publishing, never on
//! other roles.

mod config;
mod error;
mod listener;
mod metrics;
mod routes;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use herald_nats::EventPublisher;

pub use config::{AuthConfig, Config};
pub use error::{BatchEntryProblem, Error, HeadRefusal, Problem, Result};
pub use metrics::Metrics;

/// The ingest service, built and ready to serve.
pub struct Service {
    router: axum::Router,
    metrics: Metrics,
}

/// Builds the ingest service.
pub fn build(
    config: Arc<Config>,
    publisher: EventPublisher,
    registry: &prometheus::Registry,
) -> Result<Service> {
    let metrics = Metrics::register(registry)?;
    let router = routes::router(config, publisher, metrics.clone());
    Ok(Service { router, metrics })
}

impl Service {
    /// Returns the HTTP router, for serving or for driving with `tower::ServiceExt::oneshot`.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serves until `shutdown` is cancelled, then finishes the requests in flight (each waits for
    /// its publish acknowledgement) before returning.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
        let address = listener.local_addr().map_err(Error::Io)?;
        tracing::info!(%address, "ingest listening");
        let listener = listener::Listener::new(listener, self.metrics.requests_rejected);
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(Error::Io)?;
        tracing::info!("ingest stopped");
        Ok(())
    }
}
