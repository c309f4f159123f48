//! Supervisor tests: tasks that panic or return are reported with their subscription, restarted
//! after a growing backoff, and counted as unserved until they run again.

use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn id() -> WorkId {
    WorkId::whole(herald_core::SubscriptionId::from_ulid(
        ulid::Ulid::from_parts(NEXT.fetch_add(1, Ordering::SeqCst), 0),
    ))
}

fn gauge() -> IntGauge {
    IntGauge::new("unserved", "test").unwrap()
}

const POLICY: RestartPolicy = RestartPolicy {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(8),
    healthy_after: Duration::from_secs(60),
};

#[test]
fn restart_delays_double_up_to_the_maximum() {
    let delays: Vec<u64> = (1..=6).map(|n| POLICY.delay(n).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 8, 8]);
    assert_eq!(POLICY.delay(u32::MAX), POLICY.max);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_task_is_reported_with_its_subscription_and_restarted_after_a_backoff() {
    let mut supervisor = Supervisor::new(POLICY, gauge());
    let unserved = supervisor.unserved();
    let subscription = id();
    let first = supervisor.start(subscription.clone(), async { panic!("poison") });

    let ended = supervisor.join_next().await.unwrap();
    assert_eq!(
        (ended.id.clone(), ended.task),
        (subscription.clone(), first)
    );
    assert!(ended.result.unwrap_err().is_panic());
    assert!(
        unserved.is_empty(),
        "not unserved before the service asks for a restart"
    );

    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let (second, delay) =
        supervisor.restart(subscription.clone(), CancellationToken::new(), async move {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        });
    assert_eq!(delay, Duration::from_secs(1));
    assert_eq!(unserved.ids(), std::slice::from_ref(&subscription));
    assert_eq!(unserved.gauge.get(), 1);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "started before its backoff");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(unserved.is_empty());
    assert_eq!(unserved.gauge.get(), 0);
    assert_ne!(second, first);
    supervisor.abort_all().await;
}

#[tokio::test(start_paused = true)]
async fn repeated_restarts_back_off_and_a_healthy_run_resets_the_backoff() {
    let mut supervisor = Supervisor::new(POLICY, gauge());
    let subscription = id();
    supervisor.start(subscription.clone(), async {});
    let mut delays = Vec::new();
    for _ in 0..4 {
        supervisor.join_next().await.unwrap();
        let (_, delay) =
            supervisor.restart(subscription.clone(), CancellationToken::new(), async {});
        delays.push(delay.as_secs());
    }
    assert_eq!(delays, [1, 2, 4, 8]);

    // This one runs for longer than `healthy_after` before it ends.
    supervisor.join_next().await.unwrap();
    supervisor.restart(subscription.clone(), CancellationToken::new(), async {
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
    supervisor.join_next().await.unwrap();
    let (_, delay) = supervisor.restart(subscription.clone(), CancellationToken::new(), async {});
    assert_eq!(delay, Duration::from_secs(1));
    supervisor.abort_all().await;
}

#[tokio::test(start_paused = true)]
async fn a_subscription_removed_during_its_backoff_is_not_started_again() {
    let mut supervisor = Supervisor::new(POLICY, gauge());
    let unserved = supervisor.unserved();
    let subscription = id();
    supervisor.start(subscription.clone(), async {});
    supervisor.join_next().await.unwrap();
    let cancel = CancellationToken::new();
    let started = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&started);
    supervisor.restart(subscription.clone(), cancel.clone(), async move {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    assert!(!unserved.is_empty());

    cancel.cancel();
    supervisor.forget(&subscription);
    let ended = supervisor.join_next().await.unwrap();
    assert!(ended.result.is_ok());
    assert_eq!(started.load(Ordering::SeqCst), 0);
    assert!(unserved.is_empty());
    assert!(supervisor.is_empty());
}
