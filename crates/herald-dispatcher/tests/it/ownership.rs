//! Ownership across replicas, each with its own NATS connection to one real nats-server and a
//! 2 s lease. A replica here is what the service will be: it delivers what `owned` lists and
//! says `drained` as soon as a subscription leaves that list. Every step of every test checks
//! that no subscription is ever owned, or fenced validly, by two replicas at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use herald_core::subscription::Part;
use herald_core::{SubscriptionId, WorkId};
use herald_dispatcher::ownership::{Fence, Ownership, OwnershipConfig, new_replica_id};
use herald_nats::Nats;
use herald_test_support::{NatsServer, nats_config, patience};

const TTL: Duration = Duration::from_secs(2);
const NUM_SUBSCRIPTIONS: usize = 20;

/// What the replicas share: whole subscriptions, and the four parts of a split one, which are
/// owned apart like any subscription.
fn subscriptions() -> BTreeSet<WorkId> {
    let split = SubscriptionId::from_ulid(ulid::Ulid::generate());
    (0..NUM_SUBSCRIPTIONS - 4)
        .map(|_| WorkId::whole(SubscriptionId::from_ulid(ulid::Ulid::generate())))
        .chain(Part::all(4).map(|part| WorkId::new(split.clone(), part)))
        .collect()
}

/// One replica as the service will drive it.
struct Replica {
    name: &'static str,
    ownership: Option<Ownership>,
    owned: watch::Receiver<BTreeMap<WorkId, Fence>>,
    /// What `owned` listed at the last step.
    previous: BTreeMap<WorkId, Fence>,
    /// Fences of the subscriptions this replica gave up, kept to check that they stay invalid.
    given_up: Vec<(WorkId, Fence)>,
    drained: BTreeSet<WorkId>,
}

impl Replica {
    async fn start(
        name: &'static str,
        server: &NatsServer,
        subscriptions: &BTreeSet<WorkId>,
        configure: impl FnOnce(&mut OwnershipConfig),
    ) -> Replica {
        let nats = Nats::connect(&nats_config(&server.url())).await.unwrap();
        let mut config = OwnershipConfig::new(new_replica_id(), TTL);
        configure(&mut config);
        let ownership = Ownership::start(&nats, config, CancellationToken::new())
            .await
            .unwrap();
        ownership.set_subscriptions(subscriptions.clone());
        let owned = ownership.owned();
        Replica {
            name,
            ownership: Some(ownership),
            owned,
            previous: BTreeMap::new(),
            given_up: Vec::new(),
            drained: BTreeSet::new(),
        }
    }

    /// Says `drained` for every subscription that left `owned` since the last step, as a
    /// service whose deliveries stop at once would.
    fn step(&mut self) {
        let now = self.owned.borrow().clone();
        for (id, fence) in &self.previous {
            if now.contains_key(id) {
                continue;
            }
            if let Some(ownership) = &self.ownership {
                ownership.drained(id);
            }
            self.drained.insert(id.clone());
            self.given_up.push((id.clone(), fence.clone()));
        }
        self.previous = now;
    }

    fn owned_ids(&self) -> BTreeSet<WorkId> {
        self.owned.borrow().keys().cloned().collect()
    }

    /// Subscriptions for which this replica holds a valid fence, given up ones included.
    fn validly_fenced(&self) -> BTreeSet<WorkId> {
        let owned: Vec<(WorkId, Fence)> = self
            .owned
            .borrow()
            .iter()
            .map(|(id, fence)| (id.clone(), fence.clone()))
            .collect();
        owned
            .iter()
            .chain(&self.given_up)
            .filter(|(_, fence)| fence.is_valid())
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn fences(&self) -> BTreeMap<WorkId, Fence> {
        self.owned.borrow().clone()
    }

    /// Stops without releasing anything, as `kill -9` would.
    fn kill(&mut self) {
        self.ownership = None;
    }

    async fn shutdown(&mut self) {
        self.ownership.take().unwrap().shutdown().await;
    }
}

struct Cluster {
    replicas: Vec<Replica>,
    subscriptions: BTreeSet<WorkId>,
}

impl Cluster {
    /// Steps every replica and checks exclusivity.
    fn step(&mut self) {
        for replica in &mut self.replicas {
            replica.step();
        }
        self.check_exclusive("owned", Replica::owned_ids);
        self.check_exclusive("validly fenced", Replica::validly_fenced);
    }

    /// Fails if a subscription is `what` by two replicas at once. Reads every replica, then
    /// every replica again: a subscription in replica i's first and second reading and in
    /// replica j's reading between them was held by both at the moment j was read.
    fn check_exclusive(&self, what: &str, read: fn(&Replica) -> BTreeSet<WorkId>) {
        let first: Vec<BTreeSet<WorkId>> = self.replicas.iter().map(read).collect();
        let second: Vec<BTreeSet<WorkId>> = self.replicas.iter().map(read).collect();
        for i in 0..self.replicas.len() {
            for j in i + 1..self.replicas.len() {
                let both: Vec<&WorkId> = first[i]
                    .intersection(&first[j])
                    .filter(|id| second[i].contains(*id))
                    .collect();
                assert!(
                    both.is_empty(),
                    "{both:?} {what} by {} and {} at once",
                    self.replicas[i].name,
                    self.replicas[j].name
                );
            }
        }
    }

    /// Steps until `done` holds; returns how long it took. Fails after `timeout` (scaled by
    /// the patience factor).
    async fn until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Cluster) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            self.step();
            if done(self) {
                return started.elapsed();
            }
            if started.elapsed() >= timeout.mul_f64(patience()) {
                let owned: Vec<String> = self
                    .replicas
                    .iter()
                    .map(|replica| format!("{}: {:?}", replica.name, replica.fences()))
                    .collect();
                panic!("timed out after {timeout:?} waiting until {what}; {owned:#?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Steps for `duration`, checking exclusivity all along.
    async fn keep_stepping(&mut self, duration: Duration) {
        let started = Instant::now();
        while started.elapsed() < duration {
            self.step();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// True when every subscription is owned, with a valid fence, by exactly one of
    /// `replicas`, and each of them owns at least one.
    fn split_among(&self, replicas: &[usize]) -> bool {
        let mut owners: BTreeMap<WorkId, usize> = BTreeMap::new();
        for &index in replicas {
            let fences = self.replicas[index].fences();
            if fences.is_empty() {
                return false;
            }
            for (id, fence) in fences {
                if fence.is_valid() {
                    *owners.entry(id).or_default() += 1;
                }
            }
        }
        self.subscriptions
            .iter()
            .all(|id| owners.get(id) == Some(&1))
    }

    fn owned_by(&self, index: usize) -> BTreeSet<WorkId> {
        self.replicas[index].owned_ids()
    }
}

async fn two_replicas(
    server: &NatsServer,
    configure_first: impl FnOnce(&mut OwnershipConfig),
) -> Cluster {
    let subscriptions = subscriptions();
    let a = Replica::start("a", server, &subscriptions, configure_first).await;
    let b = Replica::start("b", server, &subscriptions, |_| {}).await;
    let mut cluster = Cluster {
        replicas: vec![a, b],
        subscriptions,
    };
    cluster
        .until(
            "two replicas split the subscriptions",
            Duration::from_secs(15),
            |cluster| cluster.split_among(&[0, 1]),
        )
        .await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_split_the_subscriptions_each_owned_by_exactly_one() {
    let server = NatsServer::start().await;
    let mut cluster = two_replicas(&server, |_| {}).await;
    // Stable: several rewrite intervals later nothing moved (a, alone at first, may have
    // handed some to b before the split).
    let a_before = cluster.owned_by(0);
    let drained_before: Vec<usize> = cluster.replicas.iter().map(|r| r.drained.len()).collect();
    cluster.keep_stepping(TTL * 2).await;
    assert!(cluster.split_among(&[0, 1]));
    assert_eq!(cluster.owned_by(0), a_before);
    let drained_after: Vec<usize> = cluster.replicas.iter().map(|r| r.drained.len()).collect();
    assert_eq!(drained_after, drained_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_replica_takes_subscriptions_only_after_their_owner_drained_them() {
    let server = NatsServer::start().await;
    let mut cluster = two_replicas(&server, |_| {}).await;
    let before: Vec<BTreeMap<WorkId, Fence>> =
        cluster.replicas.iter().map(Replica::fences).collect();
    let c = Replica::start("c", &server, &cluster.subscriptions, |_| {}).await;
    cluster.replicas.push(c);
    cluster
        .until(
            "three replicas split the subscriptions",
            Duration::from_secs(15),
            |cluster| cluster.split_among(&[0, 1, 2]),
        )
        .await;
    let moved = cluster.owned_by(2);
    assert!(!moved.is_empty());
    for id in &moved {
        let giver = (0..2)
            .find(|&index| before[index].contains_key(id))
            .expect("every subscription had an owner before c joined");
        assert!(
            cluster.replicas[giver].drained.contains(id),
            "{id} moved to c before {} drained it",
            cluster.replicas[giver].name
        );
        let old_fence = &before[giver][id];
        assert!(
            !old_fence.is_valid(),
            "the giver's fence of {id} is still valid"
        );
        let new_fence = &cluster.replicas[2].fences()[id];
        assert!(new_fence.token() > old_fence.token());
    }
    // Only what c took moved.
    for (giver, fences) in before.iter().enumerate() {
        let kept: BTreeSet<WorkId> = fences
            .keys()
            .filter(|id| !moved.contains(*id))
            .cloned()
            .collect();
        assert_eq!(cluster.owned_by(giver), kept);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stderr,
    reason = "the takeover time is reported, not asserted tightly"
)]
async fn a_killed_replicas_subscriptions_move_within_the_lease_ttl_and_a_rewrite_interval() {
    let server = NatsServer::start().await;
    let mut cluster = two_replicas(&server, |_| {}).await;
    let killed = cluster.replicas[0].fences();
    cluster.replicas[0].kill();
    let takeover = cluster
        .until(
            "the survivor owns every subscription",
            Duration::from_secs(20),
            |cluster| cluster.split_among(&[1]),
        )
        .await;
    eprintln!(
        "takeover after kill: {takeover:?} (lease ttl {TTL:?}, bound ttl + ttl/3 = {:?})",
        TTL + TTL / 3
    );
    let slack = Duration::from_secs(1).mul_f64(patience());
    assert!(
        takeover <= TTL + TTL / 3 + slack,
        "takeover took {takeover:?}"
    );
    let survivor = cluster.replicas[1].fences();
    for (id, fence) in &killed {
        assert!(!fence.is_valid());
        assert!(survivor[id].token() > fence.token());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stderr,
    reason = "the takeover time is reported, not asserted tightly"
)]
async fn a_stalled_replica_fences_itself_off_before_its_subscriptions_are_taken_then_rejoins() {
    let server = NatsServer::start().await;
    // a joins, then stops rewriting its member entry for three lease TTLs: a stall.
    let mut cluster = two_replicas(&server, |config| config.rewrite_interval = TTL * 3).await;
    let stalled = cluster.replicas[0].fences();
    assert!(!stalled.is_empty());
    // Every step checks that b's fence of a subscription is never valid while a's is.
    let takeover = cluster
        .until(
            "b owns every subscription",
            Duration::from_secs(20),
            |cluster| cluster.split_among(&[1]),
        )
        .await;
    eprintln!("takeover from a stalled replica: {takeover:?} (lease ttl {TTL:?})");
    let taken = cluster.replicas[1].fences();
    for (id, fence) in &stalled {
        assert!(!fence.is_valid());
        assert!(taken[id].token() > fence.token());
    }
    // When a wakes, it finds its lease lapsed and joins again under a new epoch: it gets a
    // share back, each only after b drained it, while its old fences stay invalid.
    cluster
        .until(
            "a owns subscriptions again",
            Duration::from_secs(20),
            |cluster| cluster.replicas[0].fences().values().any(Fence::is_valid),
        )
        .await;
    assert!(stalled.values().all(|fence| !fence.is_valid()));
    for id in cluster.owned_by(0) {
        assert!(
            cluster.replicas[1].drained.contains(&id),
            "{id} moved before b drained it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr, reason = "the hand-over time is reported")]
async fn shutdown_hands_over_at_once() {
    let server = NatsServer::start().await;
    let mut cluster = two_replicas(&server, |_| {}).await;
    let leaving = cluster.replicas[0].fences();
    let started = Instant::now();
    cluster.replicas[0].shutdown().await;
    assert!(leaving.values().all(|fence| !fence.is_valid()));
    let handover = cluster
        .until(
            "the remaining replica owns every subscription",
            Duration::from_secs(10),
            |cluster| cluster.split_among(&[1]),
        )
        .await;
    let total = started.elapsed();
    eprintln!(
        "hand-over on shutdown: {total:?} (shutdown took {:?})",
        total - handover
    );
    assert!(
        total < TTL / 2,
        "hand-over took {total:?}, not well below the lease ttl {TTL:?}"
    );
}
