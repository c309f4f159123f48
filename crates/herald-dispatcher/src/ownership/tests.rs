//! Unit tests of ownership without NATS: the rendezvous score, the lease's clock rules, and
//! the claim loop's plan from a given view. The behaviour against a real nats-server is in
//! `tests/it/ownership.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use herald_core::WorkId;
use herald_nats::{Claim, ClaimEntry, ClaimState, MemberChange, MemberId};

use super::claims::{Listing, Step, View};
use super::lease::Lease;
use super::rendezvous;

const ME: &str = "me";
const OTHER: &str = "other";

fn id(n: u128) -> WorkId {
    WorkId::whole(herald_core::SubscriptionId::from_ulid(ulid::Ulid(n)))
}

fn ids(range: std::ops::Range<u128>) -> Vec<WorkId> {
    range.map(id).collect()
}

fn member(replica_id: &str, epoch: u64) -> MemberId {
    MemberId {
        replica_id: replica_id.to_owned(),
        epoch,
    }
}

fn joined_lease(ttl: Duration) -> Arc<Lease> {
    let lease = Arc::new(Lease::new(ttl));
    let epoch = lease.begin_join();
    assert!(lease.joined(epoch, Instant::now()));
    lease
}

/// A view of `ME` (joined, epoch 1) and `OTHER` (epoch 1), knowing `subscriptions`.
fn view_with_other(subscriptions: &[WorkId]) -> View {
    let lease = joined_lease(Duration::from_secs(10));
    let mut view = View::new(ME.to_owned(), Arc::clone(&lease));
    view.set_membership(lease.membership());
    view.set_subscriptions(subscriptions.iter().cloned().collect());
    view.set_listing(Listing {
        started_at: Instant::now(),
        members: [member(ME, 1), member(OTHER, 1)].into_iter().collect(),
    });
    view
}

fn prefers(replica_id: &str, subscription: &WorkId) -> bool {
    rendezvous::preferred([ME, OTHER], subscription) == Some(replica_id)
}

fn first_preferred_by(replica_id: &str) -> WorkId {
    ids(0..100)
        .into_iter()
        .find(|subscription| prefers(replica_id, subscription))
        .expect("one of 100 subscriptions should hash to each of two members")
}

fn held_by(owner: &str, epoch: u64, subscription: &WorkId, revision: u64) -> ClaimEntry {
    ClaimEntry {
        work: subscription.clone(),
        state: ClaimState::Held(Claim {
            owner: owner.to_owned(),
            epoch,
            claimed_at: OffsetDateTime::UNIX_EPOCH,
        }),
        revision,
    }
}

#[test]
fn rendezvous_score_is_stable_across_builds_and_processes() {
    // Replicas of different builds must agree: these values are part of the contract (checked
    // against an independent FNV-1a 64 + fmix64 implementation).
    let subscription = WorkId::parse("sub_01J9ZK3Q5E8X2M4V7B6N0C1D2F").unwrap();
    assert_eq!(
        rendezvous::score("replica-a", &subscription),
        15_415_223_934_798_977_953
    );
    assert_eq!(
        rendezvous::score("replica-b", &subscription),
        4_680_044_909_838_073_450
    );
}

#[test]
fn rendezvous_spreads_subscriptions_evenly_over_members() {
    let members = [
        "dispatcher-0-1a2b3c4d",
        "dispatcher-1-1a2b3c4e",
        "dispatcher-2-1a2b3c4f",
    ];
    let subscriptions: Vec<WorkId> = (0..3000)
        .map(|_| {
            WorkId::whole(herald_core::SubscriptionId::from_ulid(
                ulid::Ulid::generate(),
            ))
        })
        .collect();
    for replica_id in members {
        let share = subscriptions
            .iter()
            .filter(|subscription| rendezvous::preferred(members, subscription) == Some(replica_id))
            .count();
        assert!(
            (800..1200).contains(&share),
            "{replica_id} got {share} of 3000"
        );
    }
}

#[test]
fn a_joining_member_takes_subscriptions_only_from_others_to_itself() {
    let before = ["a", "b"];
    let after = ["a", "b", "c"];
    let subscriptions = ids(0..500);
    let mut moved = 0;
    for subscription in &subscriptions {
        let old = rendezvous::preferred(before, subscription);
        let new = rendezvous::preferred(after, subscription);
        if old != new {
            assert_eq!(new, Some("c"), "{subscription} moved between old members");
            moved += 1;
        }
    }
    assert!(
        (100..240).contains(&moved),
        "{moved} of 500 moved to the new member"
    );
}

#[test]
fn lease_is_valid_until_sent_plus_ttl_minus_margin() {
    let lease = Lease::new(Duration::from_secs(10));
    let epoch = lease.begin_join();
    assert!(!lease.is_valid(epoch), "joining is not joined");
    let sent_long_ago = Instant::now() - Duration::from_millis(9_050);
    assert!(lease.joined(epoch, sent_long_ago));
    // 9.05 s after sending, past 10 s − 1 s margin.
    assert!(!lease.is_valid(epoch));
    assert_eq!(lease.lapse_if_due(), Some(epoch));
    assert!(!lease.membership().joined);
}

#[test]
fn lapsed_epoch_is_never_valid_again_even_after_a_rewrite() {
    let lease = Lease::new(Duration::from_secs(10));
    let epoch = lease.begin_join();
    assert!(lease.joined(epoch, Instant::now()));
    assert!(lease.is_valid(epoch));
    lease.lapse(epoch);
    assert!(!lease.is_valid(epoch));
    assert!(
        !lease.renewed(epoch, Instant::now()),
        "a rewrite stored after the lapse must not revive the epoch"
    );
    assert!(!lease.is_valid(epoch));
    let next = lease.begin_join();
    assert!(lease.joined(next, Instant::now()));
    assert!(lease.is_valid(next));
    assert!(
        !lease.is_valid(epoch),
        "the old epoch's fences stay invalid"
    );
}

#[test]
fn renewal_sent_after_the_deadline_does_not_extend_the_lease() {
    let lease = Lease::new(Duration::from_secs(10));
    let epoch = lease.begin_join();
    let sent = Instant::now() - Duration::from_secs(9);
    assert!(lease.joined(epoch, sent));
    assert!(!lease.renewed(epoch, Instant::now()));
    assert!(!lease.is_valid(epoch));
}

#[test]
fn plan_creates_claims_only_for_preferred_unclaimed_subscriptions() {
    let subscriptions = ids(0..20);
    let view = view_with_other(&subscriptions);
    let expected: Vec<Step> = subscriptions
        .iter()
        .filter(|subscription| prefers(ME, subscription))
        .map(|subscription| Step::Create(subscription.clone()))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(view.plan(), expected);
}

#[test]
fn plan_claims_nothing_while_not_a_member() {
    let lease = Arc::new(Lease::new(Duration::from_secs(10)));
    let mut view = View::new(ME.to_owned(), Arc::clone(&lease));
    view.set_subscriptions(ids(0..20).into_iter().collect());
    assert_eq!(view.plan(), Vec::new());
}

#[test]
fn plan_takes_a_released_claim_at_the_revision_of_its_release() {
    let subscription = first_preferred_by(ME);
    let mut view = view_with_other(std::slice::from_ref(&subscription));
    let released = ClaimEntry {
        work: subscription.clone(),
        state: ClaimState::Released,
        revision: 7,
    };
    view.apply_claim(released, Instant::now());
    assert_eq!(
        view.plan(),
        vec![Step::Take {
            id: subscription,
            expected_revision: 7
        }]
    );
}

#[test]
fn plan_waits_for_a_live_owner_to_release() {
    let subscription = first_preferred_by(ME);
    let mut view = view_with_other(std::slice::from_ref(&subscription));
    view.apply_claim(held_by(OTHER, 1, &subscription, 3), Instant::now());
    assert_eq!(view.plan(), Vec::new());
}

#[test]
fn plan_takes_over_from_a_member_missing_from_a_later_listing() {
    let subscription = first_preferred_by(ME);
    let mut view = view_with_other(std::slice::from_ref(&subscription));
    let seen_at = Instant::now();
    view.apply_claim(held_by(OTHER, 1, &subscription, 3), seen_at);
    view.set_listing(Listing {
        started_at: seen_at + Duration::from_millis(1),
        members: [member(ME, 1)].into_iter().collect(),
    });
    assert_eq!(
        view.plan(),
        vec![Step::Take {
            id: subscription,
            expected_revision: 3
        }]
    );
}

#[test]
fn plan_never_trusts_a_listing_older_than_the_claim() {
    // The listing may predate the owner's join: its absence there proves nothing.
    let subscription = first_preferred_by(ME);
    let mut view = view_with_other(std::slice::from_ref(&subscription));
    let listed_at = Instant::now();
    view.set_listing(Listing {
        started_at: listed_at,
        members: [member(ME, 1)].into_iter().collect(),
    });
    view.apply_claim(
        held_by("newcomer", 1, &subscription, 3),
        listed_at + Duration::from_millis(1),
    );
    assert_eq!(view.plan(), Vec::new());
}

#[test]
fn plan_takes_over_a_claim_of_an_older_epoch_of_the_same_member() {
    let subscription = first_preferred_by(ME);
    let mut view = view_with_other(std::slice::from_ref(&subscription));
    let seen_at = Instant::now();
    view.apply_claim(held_by(OTHER, 1, &subscription, 3), seen_at);
    view.set_listing(Listing {
        started_at: seen_at + Duration::from_millis(1),
        members: [member(ME, 1), member(OTHER, 2)].into_iter().collect(),
    });
    view.set_subscriptions([subscription.clone()].into_iter().collect());
    let steps = view.plan();
    // OTHER epoch 2 is live, so preference is unchanged, but its epoch-1 claim is dead.
    assert_eq!(
        steps,
        vec![Step::Take {
            id: subscription,
            expected_revision: 3
        }]
    );
}

#[test]
fn plan_adopts_a_claim_written_in_the_current_epoch_and_takes_one_of_an_old_epoch() {
    let current = first_preferred_by(ME);
    let older = ids(100..200)
        .into_iter()
        .find(|subscription| prefers(ME, subscription))
        .unwrap();
    let mut view = view_with_other(&[current.clone(), older.clone()]);
    view.apply_claim(held_by(ME, 1, &current, 4), Instant::now());
    view.apply_claim(held_by(ME, 0, &older, 5), Instant::now());
    let steps = view.plan();
    assert!(steps.contains(&Step::Adopt {
        id: current.clone(),
        revision: 4
    }));
    assert!(steps.contains(&Step::Take {
        id: older,
        expected_revision: 5
    }));
    for step in steps {
        view.apply_local(step, Instant::now());
    }
    assert_eq!(view.owned().get(&current).map(super::Fence::token), Some(4));
}

#[test]
fn a_subscription_preferred_elsewhere_is_drained_before_its_claim_is_released() {
    let subscription = first_preferred_by(ME);
    let mut view = view_with_other(std::slice::from_ref(&subscription));
    let fence = view
        .claimed(subscription.clone(), 1, 9, Instant::now())
        .unwrap();
    assert!(fence.is_valid());
    // A newcomer that wins the subscription's hash joins.
    let newcomer = (0..1000)
        .map(|n| format!("newcomer-{n}"))
        .find(|name| {
            rendezvous::preferred([ME, OTHER, name.as_str()], &subscription) == Some(name.as_str())
        })
        .unwrap();
    assert!(view.apply_member_change(MemberChange::Written(member(&newcomer, 1))));
    let steps = view.plan();
    assert_eq!(steps, vec![Step::Drain(subscription.clone())]);
    for step in steps {
        assert_eq!(view.apply_local(step, Instant::now()), None);
    }
    assert!(
        view.owned().is_empty(),
        "a draining subscription is not offered"
    );
    assert!(
        fence.is_valid(),
        "attempts in flight may finish while draining"
    );
    assert!(
        view.releasing().is_empty(),
        "nothing is released before drained"
    );
    assert_eq!(view.plan(), Vec::new());

    assert!(view.drained(&subscription));
    assert!(!fence.is_valid());
    assert_eq!(view.releasing(), vec![(subscription, 9)]);
}

#[test]
fn a_subscription_whose_fence_was_never_checked_is_released_at_once_when_given_up() {
    // The caller never saw it (it came and went between two looks at the map): no attempt can
    // have started, so nothing waits for a drained that would never come.
    let subscription = first_preferred_by(ME);
    let mut view = view_with_other(std::slice::from_ref(&subscription));
    let fence = view
        .claimed(subscription.clone(), 1, 9, Instant::now())
        .unwrap();
    view.set_subscriptions(BTreeSet::new());
    let steps = view.plan();
    assert_eq!(steps, vec![Step::Drain(subscription.clone())]);
    for step in steps {
        view.apply_local(step, Instant::now());
    }
    assert!(!fence.is_valid(), "a retired fence never becomes valid");
    assert_eq!(view.releasing(), vec![(subscription, 9)]);
}

#[test]
fn drained_is_ignored_for_a_subscription_still_offered() {
    let subscription = first_preferred_by(ME);
    let mut view = view_with_other(std::slice::from_ref(&subscription));
    let fence = view
        .claimed(subscription.clone(), 1, 9, Instant::now())
        .unwrap();
    assert!(!view.drained(&subscription));
    assert!(fence.is_valid());
    assert!(view.releasing().is_empty());
}

#[test]
fn an_overwritten_claim_is_dropped_and_its_fence_invalidated() {
    let subscription = first_preferred_by(ME);
    let mut view = view_with_other(std::slice::from_ref(&subscription));
    let fence = view
        .claimed(subscription.clone(), 1, 9, Instant::now())
        .unwrap();
    // The echo of this replica's own write changes nothing.
    view.apply_claim(held_by(ME, 1, &subscription, 9), Instant::now());
    assert!(fence.is_valid());
    view.apply_claim(held_by(OTHER, 1, &subscription, 12), Instant::now());
    assert!(!fence.is_valid());
    assert!(view.owned().is_empty());
}

#[test]
fn a_lapsed_membership_drops_every_claim_and_invalidates_its_fences() {
    let lease = joined_lease(Duration::from_secs(10));
    let mut view = View::new(ME.to_owned(), Arc::clone(&lease));
    view.set_membership(lease.membership());
    let subscriptions: BTreeSet<WorkId> = ids(0..5).into_iter().collect();
    view.set_subscriptions(subscriptions.clone());
    let fences: Vec<_> = subscriptions
        .iter()
        .map(|subscription| {
            view.claimed(subscription.clone(), 1, 1, Instant::now())
                .unwrap()
        })
        .collect();
    assert!(fences.iter().all(super::Fence::is_valid));
    lease.lapse(1);
    assert!(fences.iter().all(|fence| !fence.is_valid()));
    view.set_membership(lease.membership());
    assert!(view.owned().is_empty());
    assert_eq!(view.plan(), Vec::new());
    assert!(
        view.claims_to_release().is_empty(),
        "lapsed claims are left to be taken over"
    );
}
