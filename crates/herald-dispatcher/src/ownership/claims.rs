//! The claim loop: what this replica knows of members and claims (`View`, no I/O), the steps it
//! plans from that knowledge (`View::plan`), and the task that applies them to the claims
//! bucket (`run`).
//!
//! Safety rests on three rules, each checked by compare-and-set on the claim's revision:
//! a claim is created only when none is held; a released claim is taken at the revision of its
//! release; a held claim is taken only when it names an earlier epoch of this replica, or when
//! its owner's membership (replica id and epoch) is missing from a member listing that *began
//! after* the claim was seen, so the listing cannot predate the owner's join. Preference (rendezvous hashing) decides only who tries; a
//! preference computed from a stale member list costs a hand-over, never a second owner.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream, StreamExt};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use herald_core::{ErrorCode, WorkId};
use herald_nats::{Claim, ClaimEntry, ClaimState, Dispatchers, MemberChange, MemberId};

use super::lease::{Lease, Membership};
use super::{Fence, rendezvous};

/// Claim writes in flight at once.
const CONCURRENT_WRITES: usize = 32;
/// Most claims applied before planning again.
const MAX_BATCH: usize = 1024;

/// This replica's knowledge of the claims and members. No I/O.
pub(super) struct View {
    replica_id: String,
    lease: Arc<Lease>,
    membership: Membership,
    subscriptions: BTreeSet<WorkId>,
    /// Members as far as preference goes: the last listing, plus writes and deletes watched
    /// since.
    members: BTreeSet<MemberId>,
    /// The last listing, the only evidence that a member is gone.
    listing: Option<Listing>,
    seen: BTreeMap<WorkId, Seen>,
    held: BTreeMap<WorkId, Held>,
    /// Drained claims whose release is not stored yet, with their revision.
    releasing: BTreeMap<WorkId, u64>,
}

/// A member listing and when it began.
#[derive(Debug, Clone)]
pub(super) struct Listing {
    pub(super) started_at: Instant,
    pub(super) members: BTreeSet<MemberId>,
}

/// The latest state of a claim this replica saw, and when it saw it.
#[derive(Debug, Clone)]
struct Seen {
    state: ClaimState,
    revision: u64,
    seen_at: Instant,
}

/// A claim this replica holds in its current epoch.
#[derive(Debug, Clone)]
struct Held {
    fence: Fence,
    /// Given up, waiting for the caller's `drained`.
    draining: bool,
}

/// What [`View::plan`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Stop offering a held subscription (no longer preferred, or no longer active); its claim
    /// is released once the caller has drained it, or at once if its fence was never checked.
    Drain(WorkId),
    /// The claim names this replica and epoch already (a write whose answer was lost).
    Adopt { id: WorkId, revision: u64 },
    /// No claim was ever seen: create one.
    Create(WorkId),
    /// Replace a released claim, or one whose owner is gone, at `expected_revision`.
    Take { id: WorkId, expected_revision: u64 },
}

impl View {
    pub(super) fn new(replica_id: String, lease: Arc<Lease>) -> View {
        let membership = lease.membership();
        View {
            replica_id,
            lease,
            membership,
            subscriptions: BTreeSet::new(),
            members: BTreeSet::new(),
            listing: None,
            seen: BTreeMap::new(),
            held: BTreeMap::new(),
            releasing: BTreeMap::new(),
        }
    }

    /// Returns what this replica may deliver now, with the fences to check.
    pub(super) fn owned(&self) -> BTreeMap<WorkId, Fence> {
        self.held
            .iter()
            .filter(|(_, held)| !held.draining)
            .map(|(id, held)| (id.clone(), held.fence.clone()))
            .collect()
    }

    /// Returns every claim this replica has stored and not released, draining or not.
    pub(super) fn claims_to_release(&self) -> Vec<(WorkId, u64)> {
        let held = self
            .held
            .iter()
            .map(|(id, held)| (id.clone(), held.fence.token()));
        let releasing = self
            .releasing
            .iter()
            .map(|(id, revision)| (id.clone(), *revision));
        held.chain(releasing).collect()
    }

    pub(super) fn set_subscriptions(&mut self, subscriptions: BTreeSet<WorkId>) {
        self.subscriptions = subscriptions;
    }

    /// Applies a change of this replica's lease. A new or lapsed epoch drops every held claim:
    /// their fences are invalid already, and the claims are left for whoever is preferred to
    /// take over (this replica included, under its new epoch).
    pub(super) fn set_membership(&mut self, membership: Membership) {
        let same_epoch = membership.epoch == self.membership.epoch && membership.joined;
        if !same_epoch {
            for held in self.held.values() {
                held.fence.invalidate();
            }
            self.held.clear();
        }
        self.membership = membership;
    }

    /// Replaces the member view with a listing that began at `listing.started_at`.
    pub(super) fn set_listing(&mut self, listing: Listing) {
        self.members = listing.members.clone();
        self.listing = Some(listing);
    }

    /// Applies a watched membership change; returns whether the member view changed.
    pub(super) fn apply_member_change(&mut self, change: MemberChange) -> bool {
        match change {
            MemberChange::Written(member) => self.members.insert(member),
            MemberChange::Deleted(member) => self.members.remove(&member),
        }
    }

    /// Forgets every claim seen (before watching them again from the start).
    pub(super) fn forget_seen(&mut self) {
        self.seen.clear();
    }

    /// Applies a claim read at `seen_at`; returns whether anything changed. A newer revision of
    /// a claim this replica holds, written by someone else, means the claim was lost: its fence
    /// is invalidated at once.
    pub(super) fn apply_claim(&mut self, entry: ClaimEntry, seen_at: Instant) -> bool {
        let newer = self
            .seen
            .get(&entry.work)
            .is_none_or(|seen| entry.revision > seen.revision);
        if !newer {
            return false;
        }
        if let Some(held) = self.held.get(&entry.work)
            && entry.revision > held.fence.token()
        {
            tracing::warn!(
                subscription_id = %entry.work,
                revision = entry.revision,
                "a claim this replica held was overwritten: stopping it"
            );
            held.fence.invalidate();
            self.held.remove(&entry.work);
        }
        self.seen.insert(
            entry.work,
            Seen {
                state: entry.state,
                revision: entry.revision,
                seen_at,
            },
        );
        true
    }

    /// Records a claim this replica stored under `epoch`; returns its fence, or `None` when the
    /// epoch is over by now (the claim is then left to be taken over).
    pub(super) fn claimed(
        &mut self,
        id: WorkId,
        epoch: u64,
        revision: u64,
        seen_at: Instant,
    ) -> Option<Fence> {
        let current = self.membership.joined && self.membership.epoch == epoch;
        if !current || self.held.contains_key(&id) {
            return None;
        }
        let fence = Fence::new(Arc::clone(&self.lease), epoch, revision);
        self.held.insert(
            id.clone(),
            Held {
                fence: fence.clone(),
                draining: false,
            },
        );
        let claim = Claim {
            owner: self.replica_id.clone(),
            epoch,
            claimed_at: OffsetDateTime::now_utc(),
        };
        let newer = self
            .seen
            .get(&id)
            .is_none_or(|seen| revision > seen.revision);
        if newer {
            self.seen.insert(
                id,
                Seen {
                    state: ClaimState::Held(claim),
                    revision,
                    seen_at,
                },
            );
        }
        Some(fence)
    }

    /// The caller stopped delivering `id`: invalidates its fence and queues the release.
    /// Ignored unless `id` was draining (a subscription offered again is not released).
    pub(super) fn drained(&mut self, id: &WorkId) -> bool {
        let draining = self.held.get(id).is_some_and(|held| held.draining);
        if !draining {
            tracing::debug!(subscription_id = %id, "ignoring drained: not being given up");
            return false;
        }
        if let Some(held) = self.held.remove(id) {
            held.fence.invalidate();
            self.releasing.insert(id.clone(), held.fence.token());
        }
        true
    }

    /// Returns the releases still to store.
    pub(super) fn releasing(&self) -> Vec<(WorkId, u64)> {
        self.releasing
            .iter()
            .map(|(id, revision)| (id.clone(), *revision))
            .collect()
    }

    /// Forgets a release that is stored (or moot).
    pub(super) fn released(&mut self, id: &WorkId) {
        self.releasing.remove(id);
    }

    /// Returns the steps that bring this replica's claims in line with its preferences.
    pub(super) fn plan(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        for (id, held) in &self.held {
            let wanted = self.subscriptions.contains(id) && self.prefers(id);
            if !held.draining && !wanted {
                steps.push(Step::Drain(id.clone()));
            }
        }
        if !self.membership.joined {
            return steps;
        }
        for id in &self.subscriptions {
            let busy = self.held.contains_key(id) || self.releasing.contains_key(id);
            if busy || !self.prefers(id) {
                continue;
            }
            let Some(seen) = self.seen.get(id) else {
                steps.push(Step::Create(id.clone()));
                continue;
            };
            let take = Step::Take {
                id: id.clone(),
                expected_revision: seen.revision,
            };
            match &seen.state {
                ClaimState::Released | ClaimState::Unreadable => steps.push(take),
                ClaimState::Held(claim) => {
                    let ours = claim.owner == self.replica_id;
                    if ours && claim.epoch == self.membership.epoch {
                        steps.push(Step::Adopt {
                            id: id.clone(),
                            revision: seen.revision,
                        });
                    } else if ours || self.is_gone(claim, seen.seen_at) {
                        steps.push(take);
                    }
                }
            }
        }
        steps
    }

    /// Applies a step that needs no write (drain, adopt); returns the write the others need.
    pub(super) fn apply_local(&mut self, step: Step, now: Instant) -> Option<Write> {
        match step {
            Step::Drain(id) => {
                let held = self.held.get_mut(&id)?;
                if held.fence.retire_if_unchecked() {
                    // Never checked, so never delivered for: nothing to wait for.
                    let token = held.fence.token();
                    self.held.remove(&id);
                    self.releasing.insert(id, token);
                } else {
                    tracing::debug!(subscription_id = %id, "giving up a subscription: draining");
                    held.draining = true;
                }
                None
            }
            Step::Adopt { id, revision } => {
                let epoch = self.membership.epoch;
                self.claimed(id, epoch, revision, now);
                None
            }
            Step::Create(id) => Some(Write::Create(id)),
            Step::Take {
                id,
                expected_revision,
            } => Some(Write::Take {
                id,
                expected_revision,
            }),
        }
    }

    fn prefers(&self, id: &WorkId) -> bool {
        if !self.membership.joined {
            return false;
        }
        let others = self
            .members
            .iter()
            .map(|member| member.replica_id.as_str())
            .filter(|replica_id| *replica_id != self.replica_id);
        let candidates = others.chain(std::iter::once(self.replica_id.as_str()));
        rendezvous::preferred(candidates, id) == Some(self.replica_id.as_str())
    }

    /// True when a listing that began after the claim was seen lacks the claim's membership.
    fn is_gone(&self, claim: &Claim, seen_at: Instant) -> bool {
        let Some(listing) = &self.listing else {
            return false;
        };
        let owner = MemberId {
            replica_id: claim.owner.clone(),
            epoch: claim.epoch,
        };
        listing.started_at > seen_at && !listing.members.contains(&owner)
    }
}

/// A claim write planned by [`View::plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Write {
    Create(WorkId),
    Take { id: WorkId, expected_revision: u64 },
}

/// The inputs of the claim loop.
pub(super) struct Inputs {
    pub(super) subscriptions: watch::Receiver<BTreeSet<WorkId>>,
    pub(super) drained: mpsc::UnboundedReceiver<WorkId>,
    pub(super) membership: watch::Receiver<Membership>,
}

/// The claim loop's settings and handles.
pub(super) struct ClaimLoop {
    pub(super) dispatchers: Dispatchers,
    pub(super) replica_id: String,
    pub(super) lease: Arc<Lease>,
    /// How often members are listed, lapses checked and failed writes retried.
    pub(super) tick: Duration,
    pub(super) owned: watch::Sender<BTreeMap<WorkId, Fence>>,
    /// Rounds that planned with every offered subscription as a member (`Ownership::settled`).
    pub(super) settled: watch::Sender<u64>,
}

type Watched<T> = Option<Pin<Box<dyn Stream<Item = herald_nats::Result<T>> + Send>>>;

/// One trigger of the claim loop.
enum Input {
    Stop,
    Subscriptions,
    Drained(WorkId),
    Membership,
    Claim(Option<herald_nats::Result<ClaimEntry>>),
    Member(Option<herald_nats::Result<MemberChange>>),
    /// The lease's deadline passed (unless a rewrite extended it meanwhile).
    Deadline,
    Tick,
}

impl ClaimLoop {
    /// Runs until `cancel`; returns the claims still held, for a graceful stop to release.
    pub(super) async fn run(
        self,
        mut inputs: Inputs,
        cancel: CancellationToken,
    ) -> Vec<(WorkId, u64)> {
        let mut view = View::new(self.replica_id.clone(), Arc::clone(&self.lease));
        let mut claims: Watched<ClaimEntry> = None;
        let mut members: Watched<MemberChange> = None;
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.lease.deadline();
            let input = tokio::select! {
                biased;
                () = cancel.cancelled() => Input::Stop,
                changed = inputs.membership.changed() => match changed {
                    Ok(()) => Input::Membership,
                    Err(_) => Input::Stop,
                },
                drained = inputs.drained.recv() => match drained {
                    Some(id) => Input::Drained(id),
                    None => Input::Stop,
                },
                changed = inputs.subscriptions.changed() => match changed {
                    Ok(()) => Input::Subscriptions,
                    Err(_) => Input::Stop,
                },
                entry = next(&mut claims) => Input::Claim(entry),
                change = next(&mut members) => Input::Member(change),
                () = sleep_until(deadline) => Input::Deadline,
                _ = tick.tick() => Input::Tick,
            };
            match input {
                Input::Stop => break,
                Input::Subscriptions => {
                    let subscriptions = inputs.subscriptions.borrow_and_update().clone();
                    view.set_subscriptions(subscriptions);
                }
                Input::Drained(id) => {
                    if view.drained(&id) {
                        self.release(&mut view).await;
                    }
                }
                Input::Membership => {
                    view.set_membership(*inputs.membership.borrow_and_update());
                }
                Input::Claim(Some(Ok(entry))) => {
                    let mut changed = view.apply_claim(entry, Instant::now());
                    // Claims come in bursts (the initial replay, a replica's whole share at
                    // once): plan once per burst, not once per claim.
                    for _ in 0..MAX_BATCH {
                        match claims
                            .as_mut()
                            .and_then(|watch| watch.next().now_or_never())
                        {
                            Some(Some(Ok(entry))) => {
                                changed |= view.apply_claim(entry, Instant::now());
                            }
                            Some(Some(Err(err))) => {
                                tracing::warn!(error = %err, "claim watch failed: watching again");
                                claims = None;
                                break;
                            }
                            Some(None) => {
                                claims = None;
                                break;
                            }
                            None => break,
                        }
                    }
                    if !changed {
                        continue;
                    }
                }
                Input::Claim(Some(Err(err))) => {
                    tracing::warn!(error = %err, "claim watch failed: watching again");
                    claims = None;
                    continue;
                }
                Input::Claim(None) => {
                    claims = None;
                    continue;
                }
                Input::Member(Some(Ok(change))) => {
                    let left = matches!(change, MemberChange::Deleted(_));
                    if !view.apply_member_change(change) {
                        continue;
                    }
                    if left {
                        self.list_members(&mut view).await;
                    }
                }
                Input::Member(Some(Err(err))) => {
                    tracing::warn!(error = %err, "member watch failed: watching again");
                    members = None;
                    continue;
                }
                Input::Member(None) => {
                    members = None;
                    continue;
                }
                Input::Deadline => {
                    if !self.lapse_if_due(&mut view) {
                        continue;
                    }
                }
                Input::Tick => {
                    self.lapse_if_due(&mut view);
                    if claims.is_none() {
                        claims = self.watch_claims(&mut view).await;
                    }
                    if members.is_none() {
                        members = self.watch_members().await;
                    }
                    self.list_members(&mut view).await;
                    self.release(&mut view).await;
                }
            }
            self.reconcile(&mut view).await;
            // Planned with the latest offers (none arrived unseen) as a member: settled.
            let offers_seen = !inputs.subscriptions.has_changed().unwrap_or(true);
            if view.membership.joined && offers_seen {
                self.settled.send_modify(|rounds| *rounds += 1);
            }
        }
        let to_release = view.claims_to_release();
        // Stopped: every fence becomes invalid and nothing is offered any more; the claims are
        // left in place, for a graceful stop to release.
        view.set_membership(Membership {
            epoch: view.membership.epoch,
            joined: false,
        });
        self.owned.send_replace(BTreeMap::new());
        to_release
    }

    /// Ends the lease if its deadline passed (a stall kept it from being rewritten in time);
    /// returns whether it did.
    fn lapse_if_due(&self, view: &mut View) -> bool {
        let lapsed = self.lease.lapse_if_due().is_some();
        if lapsed {
            tracing::warn!(
                "membership lapsed by this replica's clock: dropping every owned subscription"
            );
        }
        view.set_membership(self.lease.membership());
        lapsed
    }

    async fn reconcile(&self, view: &mut View) {
        let steps = view.plan();
        let now = Instant::now();
        let writes: Vec<Write> = steps
            .into_iter()
            .filter_map(|step| view.apply_local(step, now))
            .collect();
        if !view.releasing.is_empty() {
            self.release(view).await;
        }
        let epoch = view.membership.epoch;
        let claim = Claim {
            owner: self.replica_id.clone(),
            epoch,
            claimed_at: OffsetDateTime::now_utc(),
        };
        let results: Vec<(WorkId, herald_nats::Result<u64>)> = futures::stream::iter(writes)
            .map(|write| self.write(write, &claim))
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        let written_at = Instant::now();
        for (id, result) in results {
            match result {
                Ok(revision) => {
                    if view
                        .claimed(id.clone(), epoch, revision, written_at)
                        .is_some()
                    {
                        tracing::debug!(subscription_id = %id, revision, "claimed a subscription");
                    }
                }
                Err(err) if err.code() == ErrorCode::Aborted => {
                    tracing::debug!(subscription_id = %id, error = %err, "lost a claim race");
                }
                Err(err) => {
                    tracing::warn!(
                        subscription_id = %id,
                        error = %err,
                        "failed to claim a subscription"
                    );
                }
            }
        }
        self.owned.send_if_modified(|owned| {
            let now_owned = view.owned();
            let changed = !same_keys_and_tokens(owned, &now_owned);
            if changed {
                *owned = now_owned;
            }
            changed
        });
    }

    async fn write(&self, write: Write, claim: &Claim) -> (WorkId, herald_nats::Result<u64>) {
        match write {
            Write::Create(id) => {
                let result = self.dispatchers.create_claim(&id, claim).await;
                (id, result)
            }
            Write::Take {
                id,
                expected_revision,
            } => {
                let result = self
                    .dispatchers
                    .update_claim(&id, claim, expected_revision)
                    .await;
                (id, result)
            }
        }
    }

    async fn release(&self, view: &mut View) {
        let releases = view.releasing();
        let results: Vec<(WorkId, herald_nats::Result<()>)> = futures::stream::iter(releases)
            .map(|(id, revision)| async move {
                let result = self.dispatchers.delete_claim(&id, revision).await;
                (id, result)
            })
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        for (id, result) in results {
            match result {
                Ok(()) => {
                    tracing::debug!(subscription_id = %id, "released a subscription");
                    view.released(&id);
                }
                Err(err) if err.code() == ErrorCode::Aborted => {
                    // Changed since: nothing left to release.
                    view.released(&id);
                }
                Err(err) => {
                    tracing::warn!(
                        subscription_id = %id,
                        error = %err,
                        "failed to release a claim; retrying"
                    );
                }
            }
        }
    }

    async fn list_members(&self, view: &mut View) {
        let started_at = Instant::now();
        match tokio::time::timeout(self.tick, self.dispatchers.members()).await {
            Ok(Ok(members)) => view.set_listing(Listing {
                started_at,
                members: members.into_iter().collect(),
            }),
            Ok(Err(err)) => tracing::warn!(error = %err, "failed to list dispatcher members"),
            Err(_) => tracing::warn!("listing dispatcher members took longer than a tick"),
        }
    }

    async fn watch_claims(&self, view: &mut View) -> Watched<ClaimEntry> {
        match self.dispatchers.watch_claims().await {
            Ok(watch) => {
                view.forget_seen();
                Some(Box::pin(watch))
            }
            Err(err) => {
                tracing::warn!(error = %err, "failed to watch claims");
                None
            }
        }
    }

    async fn watch_members(&self) -> Watched<MemberChange> {
        match self.dispatchers.watch_members().await {
            Ok(watch) => Some(Box::pin(watch)),
            Err(err) => {
                tracing::warn!(error = %err, "failed to watch dispatcher members");
                None
            }
        }
    }
}

/// Waits until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}

/// Waits for the next item of a watch, or forever when there is none.
async fn next<T>(watched: &mut Watched<T>) -> Option<herald_nats::Result<T>> {
    match watched {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

fn same_keys_and_tokens(a: &BTreeMap<WorkId, Fence>, b: &BTreeMap<WorkId, Fence>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((id_a, fence_a), (id_b, fence_b))| id_a == id_b && fence_a.same(fence_b))
}
