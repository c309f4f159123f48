//! What every delivery worker shares: settings, the NATS handle and the stores opened on it, the
//! delivery client and the metrics. Built once per dispatcher.

use std::sync::Arc;

use herald_nats::{EventPublisher, Nats, Pauses, Records, RejectedStore, Retries};

use crate::client::DeliveryClient;
use crate::parking::Parking;
use crate::{Config, Metrics};

/// Everything workers share.
pub(crate) struct WorkerContext {
    pub(crate) config: Arc<Config>,
    pub(crate) nats: Nats,
    pub(crate) metrics: Metrics,
    pub(crate) rejected: RejectedStore,
    pub(crate) client: DeliveryClient,
    pub(crate) records: Records,
    pub(crate) publisher: EventPublisher,
    pub(crate) retries: Retries,
    /// The pauses the parts of a split subscription tell each other.
    pub(crate) pauses: Pauses,
    /// Workers setting up their consumers at once, at most [`SET_UP_AT_ONCE`]: a dispatcher
    /// taking 10,000 subscriptions would otherwise send 20,000 consumer creations to JetStream
    /// together, most of which time out and are sent again (benchmark W6).
    pub(crate) set_up: Arc<tokio::sync::Semaphore>,
    /// Idle workers parked without a pull, and what wakes them.
    pub(crate) parking: Arc<Parking>,
}

/// How many workers may set up their consumers at the same time.
pub(crate) const SET_UP_AT_ONCE: usize = 32;

impl WorkerContext {
    pub(crate) fn new(
        config: Arc<Config>,
        nats: Nats,
        client: DeliveryClient,
        metrics: Metrics,
    ) -> WorkerContext {
        let records = nats.records();
        let publisher = nats.publisher();
        let rejected = nats.rejected();
        let retries = nats.retries();
        let pauses = nats.pauses();
        let parking = Arc::new(Parking::new(
            metrics.subscriptions_parked.clone(),
            metrics.subscriptions_woken.clone(),
        ));
        WorkerContext {
            config,
            nats,
            metrics,
            rejected,
            client,
            records,
            publisher,
            retries,
            pauses,
            set_up: Arc::new(tokio::sync::Semaphore::new(SET_UP_AT_ONCE)),
            parking,
        }
    }
}
