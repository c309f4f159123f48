//! Ownership: which dispatcher replica delivers for each subscription, one at a time.
//!
//! Each replica keeps a membership lease (`lease.rs`: the entry `member.<replica id>.<epoch>`
//! in `herald_dispatchers`, rewritten every `lease_ttl / 3`), prefers the subscriptions that
//! rendezvous hashing gives it among the live members (`rendezvous.rs`), and claims them by
//! compare-and-set in `herald_claims` (`claims.rs`). What it may deliver is [`Ownership::owned`]:
//! a map of subscriptions to [`Fence`]s, to be checked before every attempt. A subscription it
//! no longer prefers leaves that map first; its claim is released only when the caller says it
//! has [`drained`](Ownership::drained) it, so two replicas never deliver for it at once.
//!
//! The service (`service.rs`) wires this in: it runs workers only for what `owned` lists and
//! calls `drained` when a removed subscription's worker has ended and its attempts finished. This module depends on
//! `herald-nats` for storage and on nothing else of the dispatcher.

mod claims;
mod lease;
mod rendezvous;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use herald_core::{ErrorCode, WorkId};
use herald_nats::{Dispatchers, MemberId, Nats};

use crate::Result;
use claims::{ClaimLoop, Inputs};
use lease::Lease;

/// Settings of one replica's ownership.
#[derive(Debug, Clone)]
pub struct OwnershipConfig {
    /// Unique per process start ([`new_replica_id`]); letters, digits, `-` and `_`.
    pub replica_id: String,
    /// How long a membership outlives its last rewrite (`dispatcher.lease_ttl`). A dead
    /// replica's subscriptions move after at most about `lease_ttl + lease_ttl / 3`.
    pub lease_ttl: Duration,
    /// How often the member entry is rewritten: `lease_ttl / 3` ([`OwnershipConfig::new`]).
    /// Longer than `lease_ttl` only to make a replica stall in tests.
    pub rewrite_interval: Duration,
}

impl OwnershipConfig {
    /// Returns the settings for `replica_id`, rewriting every `lease_ttl / 3`.
    pub fn new(replica_id: String, lease_ttl: Duration) -> OwnershipConfig {
        OwnershipConfig {
            replica_id,
            lease_ttl,
            rewrite_interval: lease_ttl / 3,
        }
    }
}

/// Returns a replica id unique to this process start: host name, process id and a random
/// suffix, such as `dispatcher-7f9c-4242-01j9zk3q`.
pub fn new_replica_id() -> String {
    let host: String = host_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    let host = host.trim_matches('-');
    let host = if host.is_empty() { "herald" } else { host };
    let random = ulid::Ulid::generate().to_string().to_ascii_lowercase();
    let suffix = random.get(random.len().saturating_sub(8)..).unwrap_or("0");
    format!("{host}-{}-{suffix}", std::process::id())
}

/// This replica's part in ownership: keeps its membership, claims what it prefers, and offers
/// what it holds. Dropping it stops its tasks without releasing anything (the claims lapse with
/// the membership, as after a crash); [`Ownership::shutdown`] hands over at once.
pub struct Ownership {
    replica_id: String,
    dispatchers: Dispatchers,
    lease: Arc<Lease>,
    subscriptions: watch::Sender<BTreeSet<WorkId>>,
    drained: mpsc::UnboundedSender<WorkId>,
    owned: watch::Receiver<BTreeMap<WorkId, Fence>>,
    settled: watch::Receiver<u64>,
    membership_task: JoinHandle<()>,
    claims_task: JoinHandle<Vec<(WorkId, u64)>>,
    stop: StopOnDrop,
}

impl Ownership {
    /// Opens the buckets and starts the membership and claim tasks, which run until
    /// `shutdown` is cancelled, [`Ownership::shutdown`] is called, or this is dropped.
    pub async fn start(
        nats: &Nats,
        config: OwnershipConfig,
        shutdown: CancellationToken,
    ) -> Result<Ownership> {
        herald_nats::validate_replica_id(&config.replica_id)?;
        // Boxed: creating two buckets is a deep future, and callers keep theirs small.
        let dispatchers = Box::pin(Dispatchers::open(nats, config.lease_ttl)).await?;
        let lease = Arc::new(Lease::new(config.lease_ttl));
        let cancel = shutdown.child_token();
        let (subscriptions, subscriptions_rx) = watch::channel(BTreeSet::new());
        let (drained, drained_rx) = mpsc::unbounded_channel();
        let (owned_tx, owned) = watch::channel(BTreeMap::new());
        let (settled_tx, settled) = watch::channel(0);
        let span = tracing::info_span!("dispatcher_ownership", replica_id = %config.replica_id);
        let membership_task = tokio::spawn(
            lease::keep_membership(
                dispatchers.clone(),
                config.replica_id.clone(),
                config.rewrite_interval.max(Duration::from_millis(1)),
                Arc::clone(&lease),
                cancel.clone(),
            )
            .instrument(span.clone()),
        );
        let claim_loop = ClaimLoop {
            dispatchers: dispatchers.clone(),
            replica_id: config.replica_id.clone(),
            lease: Arc::clone(&lease),
            tick: config.lease_ttl / 3,
            owned: owned_tx,
            settled: settled_tx,
        };
        let inputs = Inputs {
            subscriptions: subscriptions_rx,
            drained: drained_rx,
            membership: lease.subscribe(),
        };
        let claims_task = tokio::spawn(claim_loop.run(inputs, cancel.clone()).instrument(span));
        Ok(Ownership {
            replica_id: config.replica_id,
            dispatchers,
            lease: Arc::clone(&lease),
            subscriptions,
            drained,
            owned,
            settled,
            membership_task,
            claims_task,
            stop: StopOnDrop { cancel, lease },
        })
    }

    /// Returns this replica's id.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Sets the active subscriptions this replica knows; the others are neither claimed nor
    /// offered (one that leaves this set leaves [`Ownership::owned`] and must be drained).
    pub fn set_subscriptions(&self, ids: BTreeSet<WorkId>) {
        self.subscriptions.send_replace(ids);
    }

    /// Adds one active subscription to those [`Ownership::set_subscriptions`] set: a change of
    /// one, for callers that learn of subscriptions one at a time.
    pub fn offer(&self, id: WorkId) {
        self.subscriptions.send_if_modified(|ids| ids.insert(id));
    }

    /// Removes one subscription from those offered (see [`Ownership::offer`]).
    pub fn withdraw(&self, id: &WorkId) {
        self.subscriptions.send_if_modified(|ids| ids.remove(id));
    }

    /// Returns what this replica may deliver now, each with the fence to check before every
    /// attempt. A subscription that leaves the map must stop; call [`Ownership::drained`] once
    /// its attempts have finished. (One that came and went between two looks at the map needs
    /// nothing: its fence was never checked, so its claim goes at once.)
    pub fn owned(&self) -> watch::Receiver<BTreeMap<WorkId, Fence>> {
        self.owned.clone()
    }

    /// Counts the claim rounds that planned with every subscription offered so far, while this
    /// replica was a member: once it exceeds its value at some moment, every subscription
    /// offered before that moment was claimed, found taken by another replica, or failed, and
    /// [`Ownership::owned`] shows the outcome.
    pub fn settled(&self) -> watch::Receiver<u64> {
        self.settled.clone()
    }

    /// Says that the caller stopped delivering `id` after it left [`Ownership::owned`]: its
    /// fence becomes invalid and its claim is released, for the preferred replica to take.
    /// Ignored for a subscription that was not given up.
    pub fn drained(&self, id: &WorkId) {
        // The claim task is gone only when stopping, and then nothing is left to release.
        let _ = self.drained.send(id.clone());
    }

    /// Stops, releasing every claim and deleting the member entry, so that the other replicas
    /// take over at once. Call it only after every delivery has stopped.
    pub async fn shutdown(self) {
        let Ownership {
            replica_id,
            dispatchers,
            lease,
            membership_task,
            claims_task,
            stop,
            ..
        } = self;
        stop.cancel.cancel();
        lease.lapse(lease.membership().epoch);
        if let Err(err) = membership_task.await {
            tracing::error!(replica_id, error = %err, "the membership task failed");
        }
        // Read once the task is over, so that no later join can begin.
        let epoch = lease.membership().epoch;
        lease.lapse(epoch);
        let claims = match claims_task.await {
            Ok(claims) => claims,
            Err(err) => {
                tracing::error!(replica_id, error = %err, "the claim task failed");
                Vec::new()
            }
        };
        let num_claims = claims.len();
        let failures: Vec<herald_nats::Error> = futures::stream::iter(claims)
            .map(|(id, revision)| {
                let dispatchers = &dispatchers;
                async move { dispatchers.delete_claim(&id, revision).await }
            })
            .buffer_unordered(32)
            .filter_map(|result| async move { result.err() })
            .filter(|err| std::future::ready(err.code() != ErrorCode::Aborted))
            .collect()
            .await;
        if let Some(err) = failures.first() {
            tracing::warn!(
                replica_id,
                failed = failures.len(),
                error = %err,
                "failed to release claims: they move when the membership expires"
            );
        }
        if epoch > 0 {
            let member = MemberId {
                replica_id: replica_id.clone(),
                epoch,
            };
            if let Err(err) = dispatchers.leave(&member).await {
                tracing::warn!(replica_id, error = %err, "failed to delete the member entry");
            }
        }
        tracing::info!(
            replica_id,
            released = num_claims - failures.len(),
            "left the dispatchers"
        );
    }
}

/// Permission to deliver for one subscription, while it lasts: cheap to clone, checked before
/// each attempt.
///
/// When its subscription is given up, a fence that was never checked lets the claim go at once
/// (no attempt can have started under it, so there is nothing to drain); a checked one keeps the
/// claim until [`Ownership::drained`].
#[derive(Clone)]
pub struct Fence {
    inner: Arc<FenceInner>,
}

struct FenceInner {
    lease: Arc<Lease>,
    epoch: u64,
    token: u64,
    /// `UNCHECKED`, `CHECKED` or `INVALID`; only ever moves forward.
    state: AtomicU8,
}

const UNCHECKED: u8 = 0;
const CHECKED: u8 = 1;
const INVALID: u8 = 2;

impl Fence {
    fn new(lease: Arc<Lease>, epoch: u64, token: u64) -> Fence {
        Fence {
            inner: Arc::new(FenceInner {
                lease,
                epoch,
                token,
                state: AtomicU8::new(UNCHECKED),
            }),
        }
    }

    /// True while this replica's membership is valid by its monotonic clock (ending
    /// `lease_ttl / 10` before the server can expire it) and the claim is still its own. Once
    /// false because the claim was released, lost or its epoch ended, it stays false.
    pub fn is_valid(&self) -> bool {
        // Marks the fence checked, unless it was retired or invalidated first.
        let state = match self.inner.state.compare_exchange(
            UNCHECKED,
            CHECKED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => CHECKED,
            Err(state) => state,
        };
        state == CHECKED && self.holds()
    }

    /// Returns the claim's revision: greater for every later owner of the subscription.
    pub fn token(&self) -> u64 {
        self.inner.token
    }

    /// Like [`Fence::is_valid`], without marking the fence checked.
    fn holds(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) != INVALID
            && self.inner.lease.is_valid(self.inner.epoch)
    }

    fn invalidate(&self) {
        self.inner.state.store(INVALID, Ordering::Release);
    }

    /// Invalidates the fence if it was never checked; returns whether it did.
    fn retire_if_unchecked(&self) -> bool {
        self.inner
            .state
            .compare_exchange(UNCHECKED, INVALID, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// True when both are clones of one fence.
    fn same(&self, other: &Fence) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("token", &self.inner.token)
            .field("epoch", &self.inner.epoch)
            .field("valid", &self.holds())
            .finish()
    }
}

/// Stops the tasks and ends the lease when the handle goes away without a graceful stop.
struct StopOnDrop {
    cancel: CancellationToken,
    lease: Arc<Lease>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.lease.lapse(self.lease.membership().epoch);
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}
