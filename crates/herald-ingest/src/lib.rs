//! Edge ingest role: accepts CloudEvents over HTTP and answers `202 Accepted` only once JetStream
//! has persisted them.
//!
//! `POST /v1/events` takes structured mode (`application/cloudevents+json`), batch mode
//! (`application/cloudevents-batch+json`, accepted whole or refused whole) and binary mode
//! (`ce-` headers, any body). Every refusal is an `application/problem+json` document naming the
//! attribute at fault, hyper's own refusals of a request head included (`listener.rs`).
//! `OPTIONS /v1/events` answers the CloudEvents webhook abuse-protection handshake. Every request
//! is answered within `ingest.request_timeout`.
//!
//! Built with [`build_with_catalog`], ingest checks events against the event-type catalog: the
//! catalog is read at start, compiled (`herald_core::catalog::CompiledCatalog`), and compiled
//! again on the blocking pool whenever the catalog bucket's watch reports a change, never per
//! event; requests read the latest compiled catalog. Depends on `herald-nats` for publishing and
//! the catalog, never on other roles.

mod config;
mod consent;
mod error;
mod listener;
mod metrics;
mod producers;
mod routes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use herald_core::catalog::{CompiledCatalog, EventType};
use herald_core::credential::CredentialSet;
use herald_nats::{CredentialStore, EventPublisher, EventTypeChange, EventTypeStore};
use herald_runtime::tls::TlsListener;

pub use config::{AuthConfig, CatalogConfig, Config, Unregistered};
pub use error::{BatchEntryProblem, CatalogRefusal, Error, HeadRefusal, Problem, Result};
pub use metrics::Metrics;

/// How long the catalog watch waits before watching again after it failed.
const CATALOG_WATCH_RETRY: Duration = Duration::from_secs(1);

/// The ingest service, built and ready to serve.
pub struct Service {
    router: axum::Router,
    metrics: Metrics,
    catalog: Option<CatalogWatch>,
    /// The producer keys requests are checked against, and the store that keeps them current
    /// while serving ([`Service::with_producer_keys`]; none: bootstrap tokens only).
    credentials: watch::Sender<Arc<CredentialSet>>,
    credential_store: Option<CredentialStore>,
}

/// Keeps the compiled catalog current while the service runs.
struct CatalogWatch {
    store: EventTypeStore,
    types: BTreeMap<String, EventType>,
    compiled: watch::Sender<Arc<CompiledCatalog>>,
}

/// Builds the ingest service.
pub fn build(
    config: Arc<Config>,
    publisher: EventPublisher,
    registry: &prometheus::Registry,
) -> Result<Service> {
    let metrics = Metrics::register(registry)?;
    let (credentials, keys) = watch::channel(Arc::new(CredentialSet::default()));
    let producers = producers::ProducerKeys::new(keys);
    let router = routes::router(config, publisher, producers, metrics.clone(), None);
    Ok(Service {
        router,
        metrics,
        catalog: None,
        credentials,
        credential_store: None,
    })
}

/// Builds the ingest service checking events against the event-type catalog in `event_types`:
/// reads and compiles it before serving (failing when it cannot be read), then follows its
/// changes while [`Service::run`] runs.
pub async fn build_with_catalog(
    config: Arc<Config>,
    catalog_config: &CatalogConfig,
    publisher: EventPublisher,
    event_types: EventTypeStore,
    registry: &prometheus::Registry,
) -> Result<Service> {
    let metrics = Metrics::register(registry)?;
    let types: BTreeMap<String, EventType> = event_types
        .list()
        .await
        .map_err(Error::Catalog)?
        .into_iter()
        .map(|stored| (stored.value.name.clone(), stored.value))
        .collect();
    let compiled = compile(&types).await?;
    tracing::info!(event_types = compiled.len(), "event-type catalog loaded");
    let (sender, receiver) = watch::channel(Arc::new(compiled));
    let check = routes::CatalogCheck {
        compiled: receiver,
        unregistered: catalog_config.unregistered,
    };
    let (credentials, keys) = watch::channel(Arc::new(CredentialSet::default()));
    let producers = producers::ProducerKeys::new(keys);
    let router = routes::router(config, publisher, producers, metrics.clone(), Some(check));
    Ok(Service {
        router,
        metrics,
        catalog: Some(CatalogWatch {
            store: event_types,
            types,
            compiled: sender,
        }),
        credentials,
        credential_store: None,
    })
}

impl Service {
    /// Returns the service also accepting the producer keys of `store` (the credentials
    /// bucket): read now (failing when they cannot be), then kept current by its watch while the
    /// service runs, so a key created or revoked counts within moments, without a restart.
    pub async fn with_producer_keys(mut self, store: CredentialStore) -> Result<Service> {
        let set = store.load().await.map_err(Error::Credentials)?;
        tracing::info!(credentials = set.len(), "producer keys loaded");
        self.credentials.send_replace(Arc::new(set));
        self.credential_store = Some(store);
        Ok(self)
    }

    /// Returns the service also serving consent callbacks, `GET` and `POST
    /// /v1/consent/<token>` (`consent.rs`): an endpoint confirms there, without a bearer token,
    /// that it consents to deliveries; the consent is written into `subscriptions`.
    pub fn with_consent_callbacks(
        mut self,
        subscriptions: herald_nats::SubscriptionStore,
    ) -> Service {
        self.router = self.router.merge(consent::router(subscriptions));
        self
    }

    /// Returns the HTTP router, for serving or for driving with `tower::ServiceExt::oneshot`.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serves until `shutdown` is cancelled, then finishes the requests in flight (each waits for
    /// its publish acknowledgement) before returning.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
        let address = listener.local_addr().map_err(Error::Io)?;
        tracing::info!(%address, "ingest listening");
        let listener = listener::Listener::new(listener, self.metrics.requests_rejected.clone());
        self.serve(listener, shutdown).await
    }

    /// Serves HTTPS on the connections of `listener` (`herald_runtime::tls::ServerTls::listen`,
    /// whose accept task ends with the same `shutdown`) as [`Service::run`] serves HTTP: hyper's
    /// refusals of request heads are problem documents here too.
    pub async fn run_tls(self, listener: TlsListener, shutdown: CancellationToken) -> Result<()> {
        let address = listener.local_addr();
        tracing::info!(%address, "ingest listening (tls)");
        let listener =
            listener::TlsConnections::new(listener, self.metrics.requests_rejected.clone());
        self.serve(listener, shutdown).await
    }

    async fn serve<L>(self, listener: L, shutdown: CancellationToken) -> Result<()>
    where
        L: axum::serve::Listener<Addr = std::net::SocketAddr>,
    {
        let watch_stop = shutdown.child_token();
        let watch_task = self
            .catalog
            .map(|catalog| tokio::spawn(catalog.run(watch_stop.clone())));
        let credentials = self.credentials;
        let credential_task = self
            .credential_store
            .map(|store| tokio::spawn(store.follow(credentials)));
        let served = axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(Error::Io);
        watch_stop.cancel();
        if let Some(task) = credential_task {
            task.abort();
            let _ = task.await;
        }
        if let Some(task) = watch_task
            && let Err(err) = task.await
        {
            tracing::error!(error = %err, "the catalog watch panicked");
        }
        served?;
        tracing::info!("ingest stopped");
        Ok(())
    }
}

impl CatalogWatch {
    /// Follows the catalog bucket until `shutdown`, compiling the catalog again after each
    /// change (a burst of changes, such as the watch's first replay, compiles once); a failed
    /// watch is started again after a pause, the last compiled catalog staying in force.
    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let watched = tokio::select! {
                () = shutdown.cancelled() => return,
                watched = self.store.watch() => watched,
            };
            match watched {
                Ok(changes) => {
                    let mut changes = std::pin::pin!(changes);
                    loop {
                        let next = tokio::select! {
                            () = shutdown.cancelled() => return,
                            next = changes.next() => next,
                        };
                        let mut changed = match next {
                            Some(Ok(change)) => self.apply(change),
                            Some(Err(err)) => {
                                tracing::warn!(error = %err, "event-type catalog watch failed");
                                break;
                            }
                            None => {
                                tracing::warn!("event-type catalog watch ended");
                                break;
                            }
                        };
                        // Take what is already there, so a burst compiles once.
                        while let Some(Some(Ok(change))) = changes.next().now_or_never() {
                            changed |= self.apply(change);
                        }
                        if changed {
                            self.publish().await;
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "failed to watch the event-type catalog"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(CATALOG_WATCH_RETRY) => {}
            }
        }
    }

    /// Applies one change; returns whether the catalog changed.
    fn apply(&mut self, change: EventTypeChange) -> bool {
        match change {
            EventTypeChange::Put(stored) => {
                let event_type = stored.value;
                if self.types.get(&event_type.name) == Some(&event_type) {
                    return false;
                }
                self.types.insert(event_type.name.clone(), event_type);
                true
            }
            EventTypeChange::Deleted(name) => self.types.remove(&name).is_some(),
        }
    }

    async fn publish(&self) {
        match compile(&self.types).await {
            Ok(compiled) => {
                tracing::info!(event_types = compiled.len(), "event-type catalog compiled");
                self.compiled.send_replace(Arc::new(compiled));
            }
            Err(err) => tracing::error!(error = %err, "failed to compile the event-type catalog"),
        }
    }
}

/// Compiles the catalog on the blocking pool (schemas take a while to compile); a stored type
/// whose schema no longer compiles is left out and logged.
async fn compile(types: &BTreeMap<String, EventType>) -> Result<CompiledCatalog> {
    let types: Vec<EventType> = types.values().cloned().collect();
    let (compiled, errors) = tokio::task::spawn_blocking(move || CompiledCatalog::compile(&types))
        .await
        .map_err(|err| {
            Error::Internal(format!("compiling the event-type catalog failed: {err}"))
        })?;
    for error in errors {
        tracing::error!(error = %error, "a registered event type does not compile; its events count as unregistered");
    }
    Ok(compiled)
}
