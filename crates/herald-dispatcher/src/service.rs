//! The dispatcher service: reconciles one worker per subscription with the subscriptions
//! bucket, and drains them on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use herald_core::SubscriptionId;
use herald_core::network::NetworkPolicy;
use herald_nats::{Nats, SubscriptionChange, Versioned};

use crate::client::DeliveryClient;
use crate::context::WorkerContext;
use crate::supervisor::{Ended, RestartPolicy, Supervisor, Unserved};
use crate::worker::{self, Route};
use crate::{Config, Metrics, Result};

/// The dispatcher, built and ready to run.
pub struct Service {
    context: Arc<WorkerContext>,
    grace_period: Duration,
    supervisor: Supervisor,
}

/// Builds the dispatcher.
pub fn build(
    config: Arc<Config>,
    nats: Nats,
    network: NetworkPolicy,
    registry: &prometheus::Registry,
) -> Result<Service> {
    let metrics = Metrics::register(registry)?;
    let unserved = metrics.subscriptions_unserved.clone();
    let client = DeliveryClient::new(&config, network)?;
    let grace_period = config.shutdown_grace_period;
    let context = Arc::new(WorkerContext::new(config, nats, client, metrics));
    Ok(Service {
        context,
        grace_period,
        supervisor: Supervisor::new(RestartPolicy::DEFAULT, unserved),
    })
}

type Changes =
    std::pin::Pin<Box<dyn futures::Stream<Item = herald_nats::Result<SubscriptionChange>> + Send>>;

/// A running worker, as the service sees it.
struct WorkerHandle {
    revision: u64,
    routes: watch::Sender<Arc<Route>>,
    cancel: CancellationToken,
    /// The task currently serving the subscription.
    task: tokio::task::Id,
}

/// What the service loop reacts to.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per loop turn, moved at once"
)]
enum Input {
    Shutdown,
    Change(Option<herald_nats::Result<SubscriptionChange>>),
    WorkerEnded(Option<Ended>),
}

impl Service {
    /// Subscriptions whose worker ended on its own and waits for its restart: the dispatcher
    /// is not ready while there are any (readiness check `dispatcher_workers`).
    pub fn unserved(&self) -> Unserved {
        self.supervisor.unserved()
    }

    /// Runs until `shutdown` is cancelled; then stops pulling, lets in-flight attempts finish
    /// within the grace period, and leaves everything else unacknowledged for redelivery.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let context = self.context;
        let mut supervisor = self.supervisor;
        // NATS may be briefly unreachable while the process starts: keep trying until shutdown.
        let store = loop {
            match context.nats.subscriptions().await {
                Ok(store) => break store,
                Err(err) => {
                    tracing::warn!(error = %err, "failed to open the subscriptions bucket; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        };
        if let Err(err) = remove_orphan_consumers(&context.nats, &store).await {
            tracing::warn!(error = %err, "failed to remove consumers of deleted subscriptions");
        }
        let mut changes: Changes = match watch_again(&store, &shutdown).await {
            Ok(changes) => changes,
            Err(_) => return Ok(()),
        };
        let mut workers: HashMap<SubscriptionId, WorkerHandle> = HashMap::new();
        tracing::info!("dispatcher running");
        loop {
            let input = tokio::select! {
                _ = shutdown.cancelled() => Input::Shutdown,
                change = changes.next() => Input::Change(change),
                ended = supervisor.join_next(), if !supervisor.is_empty() => Input::WorkerEnded(ended),
            };
            match input {
                Input::Shutdown => break,
                Input::Change(Some(Ok(SubscriptionChange::Put(subscription)))) => {
                    upsert(
                        &context,
                        &mut workers,
                        &mut supervisor,
                        &shutdown,
                        subscription,
                    );
                }
                Input::Change(Some(Ok(SubscriptionChange::Deleted(id)))) => {
                    if let Some(worker) = workers.remove(&id) {
                        worker.cancel.cancel();
                    }
                    supervisor.forget(&id);
                    context.metrics.subscriptions.set(workers.len() as i64);
                    if let Err(err) = context.nats.delete_consumer(id.as_str()).await {
                        tracing::warn!(subscription_id = %id, error = %err, "failed to delete consumer");
                    }
                    if let Err(err) = context.retries.forget(&id).await {
                        tracing::warn!(subscription_id = %id, error = %err, "failed to forget the subscription's retries");
                    }
                    tracing::info!(subscription_id = %id, "subscription removed");
                }
                Input::Change(Some(Err(err))) => {
                    tracing::warn!(error = %err, "subscription watch failed; watching again");
                    match watch_again(&store, &shutdown).await {
                        Ok(new_changes) => changes = new_changes,
                        Err(_) => break,
                    }
                }
                Input::Change(None) => {
                    tracing::warn!("subscription watch ended; watching again");
                    match watch_again(&store, &shutdown).await {
                        Ok(new_changes) => changes = new_changes,
                        Err(_) => break,
                    }
                }
                Input::WorkerEnded(Some(ended)) => {
                    restart_if_wanted(&context, &mut workers, &mut supervisor, ended);
                }
                Input::WorkerEnded(None) => {}
            }
        }
        tracing::info!(workers = workers.len(), grace_period = ?self.grace_period, "dispatcher draining");
        for worker in workers.values() {
            worker.cancel.cancel();
        }
        let drained = tokio::time::timeout(self.grace_period, async {
            while supervisor.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = supervisor.len(),
                "grace period over: abandoning attempts in flight, they will be redelivered"
            );
            supervisor.abort_all().await;
        }
        tracing::info!(graceful = drained.is_ok(), "dispatcher stopped");
        Ok(())
    }
}

fn upsert(
    context: &Arc<WorkerContext>,
    workers: &mut HashMap<SubscriptionId, WorkerHandle>,
    supervisor: &mut Supervisor,
    shutdown: &CancellationToken,
    subscription: Versioned<herald_core::Subscription>,
) {
    let id = subscription.value.id.clone();
    let revision = subscription.revision;
    if !subscription.value.state.is_active() {
        // Paused or disabled: stop delivering but keep the consumer, so events accumulate and
        // are delivered once the subscription is resumed.
        if let Some(worker) = workers.remove(&id) {
            worker.cancel.cancel();
            tracing::info!(subscription_id = %id, state = ?subscription.value.state, "subscription not active: delivery stopped");
        }
        supervisor.forget(&id);
        context.metrics.subscriptions.set(workers.len() as i64);
        return;
    }
    if let Some(worker) = workers.get_mut(&id) {
        if worker.revision >= revision {
            return;
        }
        worker.revision = revision;
        // The worker applies new filter subjects to its consumer and uses the new route for
        // every delivery from now on.
        worker
            .routes
            .send_replace(Arc::new(Route::new(subscription.value)));
        tracing::info!(subscription_id = %id, revision, "subscription updated");
        return;
    }
    let (routes, routes_rx) = watch::channel(Arc::new(Route::new(subscription.value)));
    let cancel = shutdown.child_token();
    let task = supervisor.start(
        id.clone(),
        worker::run(Arc::clone(context), routes_rx, cancel.clone()),
    );
    workers.insert(
        id.clone(),
        WorkerHandle {
            revision,
            routes,
            cancel,
            task,
        },
    );
    context.metrics.subscriptions.set(workers.len() as i64);
    tracing::info!(subscription_id = %id, revision, "subscription added");
}

/// Restarts a worker that ended while its subscription still wants delivering (it panicked, or
/// returned without being cancelled); a worker stopped on purpose is let go.
fn restart_if_wanted(
    context: &Arc<WorkerContext>,
    workers: &mut HashMap<SubscriptionId, WorkerHandle>,
    supervisor: &mut Supervisor,
    ended: Ended,
) {
    let Some(worker) = workers.get_mut(&ended.id) else {
        return;
    };
    if worker.task != ended.task || worker.cancel.is_cancelled() {
        return;
    }
    let routes = worker.routes.subscribe();
    let run = worker::run(Arc::clone(context), routes, worker.cancel.clone());
    let (task, delay) = supervisor.restart(ended.id.clone(), worker.cancel.clone(), run);
    worker.task = task;
    context.metrics.worker_restarts.inc();
    match ended.result {
        Err(err) if err.is_panic() => {
            tracing::error!(subscription_id = %ended.id, error = %err, restart_in = ?delay, "a delivery worker panicked; restarting it");
        }
        _ => {
            tracing::error!(subscription_id = %ended.id, restart_in = ?delay, "a delivery worker ended on its own; restarting it");
        }
    }
}

async fn watch_again(
    store: &herald_nats::SubscriptionStore,
    shutdown: &CancellationToken,
) -> Result<Changes> {
    let mut delay = Duration::from_millis(200);
    loop {
        match store.watch().await {
            Ok(changes) => return Ok(Box::pin(changes)),
            Err(err) => {
                tracing::warn!(error = %err, "failed to watch subscriptions");
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(err.into()),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Deletes consumers of subscriptions deleted while no dispatcher was running.
///
/// Racing a subscription created meanwhile is harmless: its worker recreates the consumer from
/// the subscription's creation time.
async fn remove_orphan_consumers(
    nats: &Nats,
    store: &herald_nats::SubscriptionStore,
) -> Result<()> {
    let live: Vec<String> = store
        .list()
        .await?
        .into_iter()
        .map(|s| s.value.id.as_str().to_owned())
        .collect();
    for name in nats.consumer_names().await? {
        let Ok(id) = SubscriptionId::parse(&name) else {
            continue;
        };
        if !live.contains(&name) {
            tracing::info!(consumer = %name, "deleting the consumer of a deleted subscription");
            nats.delete_consumer(&name).await?;
            nats.retries().forget(&id).await?;
        }
    }
    Ok(())
}
