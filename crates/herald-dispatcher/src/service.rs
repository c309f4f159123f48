//! The dispatcher service: reconciles one worker per owned subscription (or part of a split
//! one, `herald_core::WorkId`) with the subscriptions bucket, and drains them on shutdown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use herald_core::network::NetworkPolicy;
use herald_core::subscription::Part;
use herald_core::{SubscriptionId, WorkId};
use herald_nats::{Nats, SubscriptionChange, Versioned};

use crate::client::DeliveryClient;
use crate::consent;
use crate::context::WorkerContext;
use crate::ownership::{Fence, Ownership, OwnershipConfig, new_replica_id};
use crate::readiness::Readiness;
use crate::supervisor::{Ended, RestartPolicy, Supervisor, Unserved};
use crate::test_send;
use crate::worker::{self, Route};
use crate::{Config, Metrics, Result};

/// The dispatcher, built and ready to run.
pub struct Service {
    context: Arc<WorkerContext>,
    grace_period: Duration,
    supervisor: Supervisor,
    readiness: Readiness,
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
    let client = DeliveryClient::new(&config, network)?
        .with_proxy_failures(metrics.egress_proxy_failures.clone());
    let grace_period = config.shutdown_grace_period;
    // Workers set up their consumers through this handle: readiness hears of each.
    let readiness = Readiness::default();
    let hook = readiness.clone();
    let nats = nats.with_consumer_hook(Arc::new(move |name: &str| hook.consumer_set_up(name)));
    let context = Arc::new(WorkerContext::new(config, nats, client, metrics));
    Ok(Service {
        context,
        grace_period,
        supervisor: Supervisor::new(RestartPolicy::DEFAULT, unserved),
        readiness,
    })
}

type Changes =
    std::pin::Pin<Box<dyn futures::Stream<Item = herald_nats::Result<SubscriptionChange>> + Send>>;

/// A running worker, as the service sees it.
struct WorkerHandle {
    revision: u64,
    routes: watch::Sender<Arc<Route>>,
    /// Cancelled when the worker must stop (shutdown, not active, not owned any more).
    cancel: CancellationToken,
    /// Checked before every attempt: this replica still owns the subscription.
    fence: Fence,
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
    Owned,
    /// A claim round planned with every subscription offered.
    Settled,
    WorkerEnded(Option<Ended>),
}

impl Service {
    /// Subscriptions whose worker ended on its own and waits for its restart: the dispatcher
    /// is not ready while there are any (readiness check `dispatcher_workers`).
    pub fn unserved(&self) -> Unserved {
        self.supervisor.unserved()
    }

    /// Whether the dispatcher is ready (readiness check `dispatcher_started`): once its
    /// subscription watch delivered what is stored, a claim round planned with all of it, and
    /// every worker it then started set up its consumer; and while the watch runs.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Runs until `shutdown` is cancelled; then stops pulling, lets in-flight attempts finish
    /// within the grace period, hands its subscriptions over to the other replicas, and leaves
    /// everything else unacknowledged for redelivery.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let context = self.context;
        // NATS may be briefly unreachable while the process starts: keep trying until shutdown.
        let Some(store) = until_up(&shutdown, "open the subscriptions bucket", || {
            context.nats.subscriptions()
        })
        .await
        else {
            return Ok(());
        };
        // Subscribed before this replica takes any subscription, so test sends are served as
        // soon as it delivers; those arriving meanwhile wait in the subscription.
        let Some(test_requests) = until_up(&shutdown, "serve test sends", || async {
            context.nats.test_sends().serve().await
        })
        .await
        else {
            return Ok(());
        };
        // Consent handshakes likewise, from every replica.
        let Some(consent_requests) = until_up(&shutdown, "serve consent handshakes", || async {
            context.nats.consent_checks().serve().await
        })
        .await
        else {
            return Ok(());
        };
        let ownership_config = OwnershipConfig::new(new_replica_id(), context.config.lease_ttl);
        let Some(ownership) = until_up(&shutdown, "join the dispatchers", || {
            Ownership::start(
                &context.nats,
                ownership_config.clone(),
                shutdown.child_token(),
            )
        })
        .await
        else {
            return Ok(());
        };
        if let Err(err) = remove_orphan_consumers(&context.nats, &store).await {
            tracing::warn!(error = %err, "failed to remove consumers of deleted subscriptions");
        }
        let mut changes: Changes = match watch_again(&store, &shutdown).await {
            Ok(changes) => changes,
            Err(_) => return Ok(()),
        };
        // Test sends are served beside delivery, by every replica, until shutdown.
        let test_sends_stop = shutdown.child_token();
        let test_sends = tokio::spawn(test_send::serve(
            Arc::clone(&context),
            store.clone(),
            test_requests,
            test_sends_stop.clone(),
            self.grace_period,
        ));
        let consent_stop = shutdown.child_token();
        let consent_task = tokio::spawn(consent::serve(
            Arc::clone(&context),
            store.clone(),
            consent_requests,
            consent_stop.clone(),
            self.grace_period,
        ));
        // Wake-ups of parked subscriptions are followed before any worker parks.
        let wakes_stop = shutdown.child_token();
        let wakes_task = tokio::spawn(crate::parking::follow(
            Arc::clone(&context.parking),
            context.nats.clone(),
            wakes_stop.clone(),
        ));
        let mut owned_rx = ownership.owned();
        let mut dispatcher = Reconciler {
            context,
            supervisor: self.supervisor,
            readiness: self.readiness.clone(),
            ownership,
            shutdown: shutdown.clone(),
            active: BTreeMap::new(),
            parts: HashMap::new(),
            owned: BTreeMap::new(),
            workers: HashMap::new(),
        };
        tracing::info!(
            replica_id = dispatcher.ownership.replica_id(),
            "dispatcher running"
        );
        let readiness = self.readiness;
        let mut settled_rx = dispatcher.ownership.settled();
        // The claim round count when the watch first caught up; settled once it grows.
        let mut settle_after: Option<u64> = None;
        let mut settled = false;
        loop {
            let input = tokio::select! {
                _ = shutdown.cancelled() => Input::Shutdown,
                change = changes.next() => Input::Change(change),
                Ok(()) = owned_rx.changed() => Input::Owned,
                Ok(()) = settled_rx.changed() => Input::Settled,
                ended = dispatcher.supervisor.join_next(), if !dispatcher.supervisor.is_empty() => Input::WorkerEnded(ended),
            };
            match input {
                Input::Shutdown => break,
                Input::Change(Some(Ok(SubscriptionChange::Put(subscription)))) => {
                    dispatcher.put(subscription);
                }
                Input::Change(Some(Ok(SubscriptionChange::Deleted(id)))) => {
                    dispatcher.delete(id).await;
                }
                Input::Change(Some(Ok(SubscriptionChange::CaughtUp))) => {
                    readiness.set_watching(true);
                    if !settled && settle_after.is_none() {
                        settle_after = Some(*settled_rx.borrow());
                    }
                }
                Input::Change(Some(Err(err))) => {
                    readiness.set_watching(false);
                    tracing::warn!(error = %err, "subscription watch failed; watching again");
                    match watch_again(&store, &shutdown).await {
                        Ok(new_changes) => changes = new_changes,
                        Err(_) => break,
                    }
                }
                Input::Change(None) => {
                    readiness.set_watching(false);
                    tracing::warn!("subscription watch ended; watching again");
                    match watch_again(&store, &shutdown).await {
                        Ok(new_changes) => changes = new_changes,
                        Err(_) => break,
                    }
                }
                Input::Owned => {
                    let owned = owned_rx.borrow_and_update().clone();
                    dispatcher.owned_changed(owned);
                }
                Input::Settled => {
                    let rounds = *settled_rx.borrow_and_update();
                    if settle_after.is_some_and(|after| rounds > after) {
                        // What that round claimed, before the dispatcher counts as started.
                        if owned_rx.has_changed().unwrap_or(false) {
                            let owned = owned_rx.borrow_and_update().clone();
                            dispatcher.owned_changed(owned);
                        }
                        settle_after = None;
                        settled = true;
                        readiness.settled();
                    }
                }
                Input::WorkerEnded(Some(ended)) => dispatcher.ended(ended),
                Input::WorkerEnded(None) => {}
            }
        }
        readiness.set_watching(false);
        let Reconciler {
            mut supervisor,
            workers,
            ownership,
            context,
            ..
        } = dispatcher;
        let context_metrics = &context.metrics;
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
        context_metrics.subscriptions.set(0);
        // It stopped taking test sends at shutdown and waits for those in flight, within the
        // same grace period.
        test_sends_stop.cancel();
        if let Err(err) = test_sends.await {
            tracing::error!(error = %err, "the test-send server failed");
        }
        consent_stop.cancel();
        if let Err(err) = consent_task.await {
            tracing::error!(error = %err, "the consent-handshake server failed");
        }
        wakes_stop.cancel();
        if let Err(err) = wakes_task.await {
            tracing::error!(error = %err, "the wake-up follower failed");
        }
        // Nothing is delivered any more: the other replicas may take everything at once.
        ownership.shutdown().await;
        tracing::info!(graceful = drained.is_ok(), "dispatcher stopped");
        Ok(())
    }
}

/// Retries `open` until it succeeds or `shutdown`; `None` when shut down first.
pub(crate) async fn until_up<T, E, F, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    mut open: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>>,
{
    loop {
        match Box::pin(open()).await {
            Ok(value) => return Some(value),
            Err(err) => {
                tracing::warn!(error = %err, "failed to {what}; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// The service's state: which subscriptions are active, which work (subscriptions, or parts of
/// split ones) this replica owns, and the workers it runs. A piece of work has a worker exactly
/// while its subscription is active and it is owned; a worker that must stop is cancelled, and
/// once its task ended the work is drained (its claim released) or, if it is wanted again,
/// started anew.
struct Reconciler {
    context: Arc<WorkerContext>,
    supervisor: Supervisor,
    readiness: Readiness,
    ownership: Ownership,
    shutdown: CancellationToken,
    active: BTreeMap<SubscriptionId, Versioned<herald_core::Subscription>>,
    /// The number of parts of every subscription seen, active or not: what to withdraw and
    /// whose consumers to delete when it goes.
    parts: HashMap<SubscriptionId, u32>,
    owned: BTreeMap<WorkId, Fence>,
    workers: HashMap<WorkId, WorkerHandle>,
}

impl Reconciler {
    fn put(&mut self, subscription: Versioned<herald_core::Subscription>) {
        let id = subscription.value.id.clone();
        if subscription.value.client_certificate.is_none() {
            // A changed certificate replaces its clients when next used; a removed one's go now.
            self.context.client.forget_client_certificate(&id);
        }
        let parts = subscription.value.delivery.parts;
        let known_parts = self.parts.insert(id.clone(), parts);
        if let Some(known) = known_parts.filter(|known| *known != parts) {
            // Control refuses to change the parts; should the stored value change anyway, the
            // old parts stop and the new ones start.
            tracing::warn!(subscription_id = %id, from = known, to = parts, "the subscription's parts changed");
            for part in Part::all(known) {
                self.ownership.withdraw(&WorkId::new(id.clone(), part));
            }
        }
        if subscription.value.state.is_active() {
            let stale = self
                .active
                .get(&id)
                .is_some_and(|known| known.revision >= subscription.revision);
            if stale {
                return;
            }
            for work in subscription.value.work_ids() {
                self.ownership.offer(work);
            }
            self.active.insert(id.clone(), subscription);
        } else if self.active.remove(&id).is_some() {
            // Paused or disabled: stop delivering but keep the consumer, so events accumulate
            // and are delivered once the subscription is resumed.
            for part in Part::all(parts) {
                self.ownership.withdraw(&WorkId::new(id.clone(), part));
            }
            tracing::info!(subscription_id = %id, "subscription not active: delivery stops");
        }
        self.reconcile_subscription(&id);
    }

    async fn delete(&mut self, id: SubscriptionId) {
        self.active.remove(&id);
        self.context.client.forget_client_certificate(&id);
        let parts = self.parts.remove(&id).unwrap_or(1);
        for part in Part::all(parts) {
            self.ownership.withdraw(&WorkId::new(id.clone(), part));
        }
        self.reconcile_subscription(&id);
        for part in Part::all(parts) {
            let work = WorkId::new(id.clone(), part);
            if let Err(err) = self
                .context
                .nats
                .delete_consumer(&work.consumer_name())
                .await
            {
                tracing::warn!(subscription_id = %id, consumer = %work.consumer_name(), error = %err, "failed to delete consumer");
            }
        }
        if let Err(err) = self.context.retries.forget(&id, parts).await {
            tracing::warn!(subscription_id = %id, error = %err, "failed to forget the subscription's retries");
        }
        tracing::info!(subscription_id = %id, "subscription removed");
    }

    fn owned_changed(&mut self, owned: BTreeMap<WorkId, Fence>) {
        let mut touched: BTreeSet<WorkId> = self.owned.keys().cloned().collect();
        touched.extend(owned.keys().cloned());
        self.owned = owned;
        for work in touched {
            self.reconcile(&work);
        }
    }

    /// Reconciles every piece of work of a subscription: its parts as stored, and whatever it
    /// has a worker or a claim for.
    fn reconcile_subscription(&mut self, id: &SubscriptionId) {
        let parts = self.parts.get(id).copied().unwrap_or(1);
        let mut touched: BTreeSet<WorkId> = Part::all(parts)
            .map(|part| WorkId::new(id.clone(), part))
            .collect();
        touched.extend(
            self.workers
                .keys()
                .chain(self.owned.keys())
                .filter(|work| work.subscription() == id)
                .cloned(),
        );
        for work in touched {
            self.reconcile(&work);
        }
    }

    /// Brings one piece of work's worker in line with whether its subscription is active (with
    /// this many parts) and the work owned, and with the claim it is owned under: a worker
    /// holding another claim's fence (this replica lost the work and took it again between two
    /// looks at the owned map) is stopped, and started again under the new fence once its task
    /// ended.
    fn reconcile(&mut self, work: &WorkId) {
        let subscription = self
            .active
            .get(work.subscription())
            .filter(|subscription| subscription.value.delivery.parts == work.part().count());
        let fence = self.owned.get(work);
        match (subscription.zip(fence), self.workers.get_mut(work)) {
            (Some((subscription, fence)), Some(worker))
                if worker.fence.token() == fence.token() =>
            {
                if !worker.cancel.is_cancelled() && worker.revision < subscription.revision {
                    worker.revision = subscription.revision;
                    // The worker applies new filter subjects to its consumer and uses the new
                    // route for every delivery from now on.
                    worker.routes.send_replace(Arc::new(Route::new(
                        subscription.value.clone(),
                        work.part(),
                    )));
                    tracing::info!(%work, revision = subscription.revision, "subscription updated");
                }
                // A cancelled worker is started again once its task ended, if still wanted.
            }
            (_, Some(worker)) => {
                if !worker.cancel.is_cancelled() {
                    worker.cancel.cancel();
                    self.readiness.worker_stopped(work);
                    self.context.metrics.subscriptions.dec();
                    tracing::info!(%work, "delivery of the subscription stops here");
                }
            }
            (Some((subscription, fence)), None) => {
                let (subscription, fence) = (subscription.clone(), fence.clone());
                self.start(subscription, work.clone(), fence);
            }
            (None, None) => {}
        }
    }

    fn start(
        &mut self,
        subscription: Versioned<herald_core::Subscription>,
        work: WorkId,
        fence: Fence,
    ) {
        let revision = subscription.revision;
        let route = Route::new(subscription.value, work.part());
        let (routes, routes_rx) = watch::channel(Arc::new(route));
        let cancel = self.shutdown.child_token();
        let task = self.supervisor.start(
            work.clone(),
            worker::run(
                Arc::clone(&self.context),
                routes_rx,
                fence.clone(),
                cancel.clone(),
            ),
        );
        self.workers.insert(
            work.clone(),
            WorkerHandle {
                revision,
                routes,
                cancel,
                fence,
                task,
            },
        );
        self.readiness.worker_started(&work);
        self.context.metrics.subscriptions.inc();
        tracing::info!(%work, revision, "delivering the subscription");
    }

    /// A worker's task ended: restart it if it ended on its own while still wanted, otherwise
    /// drain the work and start it again if it is wanted again meanwhile.
    fn ended(&mut self, ended: Ended) {
        let Some(worker) = self.workers.get_mut(&ended.id) else {
            return;
        };
        if worker.task != ended.task {
            return;
        }
        if !worker.cancel.is_cancelled() {
            let routes = worker.routes.subscribe();
            let run = worker::run(
                Arc::clone(&self.context),
                routes,
                worker.fence.clone(),
                worker.cancel.clone(),
            );
            let (task, delay) =
                self.supervisor
                    .restart(ended.id.clone(), worker.cancel.clone(), run);
            worker.task = task;
            self.context.metrics.worker_restarts.inc();
            match ended.result {
                Err(err) if err.is_panic() => {
                    tracing::error!(work = %ended.id, error = %err, restart_in = ?delay, "a delivery worker panicked; restarting it");
                }
                _ => {
                    tracing::error!(work = %ended.id, restart_in = ?delay, "a delivery worker ended on its own; restarting it");
                }
            }
            return;
        }
        self.workers.remove(&ended.id);
        self.supervisor.forget(&ended.id);
        self.ownership.drained(&ended.id);
        self.reconcile(&ended.id);
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

/// Deletes consumers of subscriptions deleted while no dispatcher was running (each part's).
///
/// Racing a subscription created meanwhile is harmless: its worker recreates the consumer from
/// the subscription's creation time.
async fn remove_orphan_consumers(
    nats: &Nats,
    store: &herald_nats::SubscriptionStore,
) -> Result<()> {
    let live: BTreeSet<SubscriptionId> = store
        .list()
        .await?
        .into_iter()
        .map(|s| s.value.id)
        .collect();
    for name in nats.consumer_names().await? {
        let Ok(work) = WorkId::parse_consumer_name(&name) else {
            continue;
        };
        if !live.contains(work.subscription()) {
            tracing::info!(consumer = %name, "deleting the consumer of a deleted subscription");
            nats.delete_consumer(&name).await?;
            nats.retries()
                .forget(work.subscription(), work.part().count())
                .await?;
        }
    }
    Ok(())
}
