//! This replica's membership: the lease every fence checks, and the task that keeps it by
//! rewriting the member entry.
//!
//! The lease is valid until `sent + ttl − margin`, where `sent` is when the last successful
//! rewrite was *sent*, on this process's monotonic clock: the server stamps the entry no
//! earlier than that, so the lease ends before the server can expire the entry, whatever the
//! wall clocks say. Once lapsed (its deadline passed, or a rewrite found the entry gone), an
//! epoch is never valid again: the replica joins anew under the next epoch. Fences of the old
//! epoch stay invalid for good.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use herald_core::ErrorCode;
use herald_nats::{Dispatchers, MemberId};

/// The lease of this replica's current epoch; shared by every fence.
pub(super) struct Lease {
    ttl: Duration,
    margin: Duration,
    state: Mutex<LeaseState>,
    changes: watch::Sender<Membership>,
}

/// What the claim loop needs to know of the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Membership {
    /// The current epoch (0 before the first join).
    pub(super) epoch: u64,
    /// True from a successful join until the epoch lapses.
    pub(super) joined: bool,
}

#[derive(Debug, Clone, Copy)]
struct LeaseState {
    epoch: u64,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The member entry of this epoch is being written.
    Joining,
    /// Valid until the instant (exclusive).
    Joined { valid_until: Instant },
    /// Over for good.
    Lapsed,
}

impl Lease {
    /// Returns a lease that was never joined; `margin` is `ttl / 10`.
    pub(super) fn new(ttl: Duration) -> Lease {
        let (changes, _) = watch::channel(Membership {
            epoch: 0,
            joined: false,
        });
        Lease {
            ttl,
            margin: ttl / 10,
            state: Mutex::new(LeaseState {
                epoch: 0,
                phase: Phase::Lapsed,
            }),
            changes,
        }
    }

    /// True while `epoch` is the joined epoch and its deadline has not passed.
    pub(super) fn is_valid(&self, epoch: u64) -> bool {
        let state = self.lock();
        match state.phase {
            Phase::Joined { valid_until } => state.epoch == epoch && Instant::now() < valid_until,
            Phase::Joining | Phase::Lapsed => false,
        }
    }

    /// Returns when the joined epoch's lease ends, if joined.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.lock().phase {
            Phase::Joined { valid_until } => Some(valid_until),
            Phase::Joining | Phase::Lapsed => None,
        }
    }

    /// Returns the current membership.
    pub(super) fn membership(&self) -> Membership {
        membership_of(&self.lock())
    }

    /// Returns a receiver of every membership change.
    pub(super) fn subscribe(&self) -> watch::Receiver<Membership> {
        self.changes.subscribe()
    }

    /// Starts the next epoch (the previous one, if any, is over); returns it.
    pub(super) fn begin_join(&self) -> u64 {
        let mut state = self.lock();
        state.epoch += 1;
        state.phase = Phase::Joining;
        self.publish(&state);
        state.epoch
    }

    /// Records that the member entry of `epoch`, sent at `sent`, was stored. False when the
    /// epoch is no longer the one joining.
    pub(super) fn joined(&self, epoch: u64, sent: Instant) -> bool {
        let mut state = self.lock();
        if state.epoch != epoch || state.phase != Phase::Joining {
            return false;
        }
        state.phase = Phase::Joined {
            valid_until: sent + self.ttl - self.margin,
        };
        self.publish(&state);
        true
    }

    /// Extends the lease after a rewrite sent at `sent` was stored. False when the epoch lapsed
    /// before the rewrite was sent: it is over even though the server kept the entry.
    pub(super) fn renewed(&self, epoch: u64, sent: Instant) -> bool {
        let mut state = self.lock();
        match state.phase {
            Phase::Joined { valid_until } if state.epoch == epoch && sent < valid_until => {
                state.phase = Phase::Joined {
                    valid_until: valid_until.max(sent + self.ttl - self.margin),
                };
                true
            }
            _ => false,
        }
    }

    /// Ends the joined epoch if its deadline has passed; returns the epoch that lapsed.
    pub(super) fn lapse_if_due(&self) -> Option<u64> {
        let mut state = self.lock();
        match state.phase {
            Phase::Joined { valid_until } if Instant::now() >= valid_until => {
                state.phase = Phase::Lapsed;
                self.publish(&state);
                Some(state.epoch)
            }
            _ => None,
        }
    }

    /// Ends `epoch` now, whatever its deadline (its entry is gone, or the replica stops).
    pub(super) fn lapse(&self, epoch: u64) {
        let mut state = self.lock();
        if state.epoch == epoch && state.phase != Phase::Lapsed {
            state.phase = Phase::Lapsed;
            self.publish(&state);
        }
    }

    fn publish(&self, state: &LeaseState) {
        self.changes.send_replace(membership_of(state));
    }

    fn lock(&self) -> MutexGuard<'_, LeaseState> {
        // The state is two plain values, consistent after every statement: a panic elsewhere
        // while it was locked leaves nothing half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn membership_of(state: &LeaseState) -> Membership {
    Membership {
        epoch: state.epoch,
        joined: matches!(state.phase, Phase::Joined { .. }),
    }
}

/// Keeps this replica a member until `cancel`: joins, rewrites the entry every
/// `rewrite_interval` by compare-and-set, and joins again under a new epoch when the lease
/// lapsed (deadline passed before a rewrite, or the entry was gone).
pub(super) async fn keep_membership(
    dispatchers: Dispatchers,
    replica_id: String,
    rewrite_interval: Duration,
    lease: std::sync::Arc<Lease>,
    cancel: CancellationToken,
) {
    let retry_delay = (lease.ttl / 10).min(rewrite_interval);
    let mut previous: Option<MemberId> = None;
    'join: while !cancel.is_cancelled() {
        let epoch = lease.begin_join();
        if let Some(old) = previous.take() {
            // Best effort: a lapsed entry left in place expires on its own within the TTL; deleting
            // it lets the others take the old epoch's claims at once.
            if let Err(err) = dispatchers.leave(&old).await {
                tracing::debug!(
                    epoch = old.epoch,
                    error = %err,
                    "failed to delete a lapsed member entry"
                );
            }
        }
        let member = MemberId {
            replica_id: replica_id.clone(),
            epoch,
        };
        let sent = Instant::now();
        let mut revision = match cancel.run_until_cancelled(dispatchers.join(&member)).await {
            None => return,
            Some(Ok(revision)) => revision,
            Some(Err(err)) => {
                tracing::warn!(epoch, error = %err, "failed to join the dispatchers");
                // The write may have been stored all the same.
                previous = Some(member);
                if cancel
                    .run_until_cancelled(tokio::time::sleep(retry_delay))
                    .await
                    .is_none()
                {
                    return;
                }
                continue 'join;
            }
        };
        previous = Some(member.clone());
        if !lease.joined(epoch, sent) {
            continue 'join;
        }
        tracing::info!(epoch, "joined the dispatchers");
        let mut next_rewrite = sent + rewrite_interval;
        loop {
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next_rewrite));
            if cancel.run_until_cancelled(sleep).await.is_none() {
                return;
            }
            let lapsed = lease.lapse_if_due().is_some() || !lease.is_valid(epoch);
            if lapsed {
                tracing::warn!(
                    epoch,
                    "membership lapsed before it was rewritten (a stall?): dropping every owned \
                     subscription and joining again"
                );
                continue 'join;
            }
            let sent = Instant::now();
            match cancel
                .run_until_cancelled(dispatchers.renew(&member, revision))
                .await
            {
                None => return,
                Some(Ok(new_revision)) => {
                    revision = new_revision;
                    if !lease.renewed(epoch, sent) {
                        tracing::warn!(
                            epoch,
                            "membership lapsed while it was rewritten: joining again"
                        );
                        continue 'join;
                    }
                    next_rewrite = sent + rewrite_interval;
                }
                Some(Err(err)) if err.code() == ErrorCode::Aborted => {
                    lease.lapse(epoch);
                    tracing::warn!(
                        epoch,
                        error = %err,
                        "member entry expired: dropping every owned subscription and joining again"
                    );
                    continue 'join;
                }
                Some(Err(err)) => {
                    tracing::warn!(epoch, error = %err, "failed to rewrite the member entry");
                    next_rewrite = Instant::now() + retry_delay;
                }
            }
        }
    }
}
