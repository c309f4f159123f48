//! At-least-once across crashes and restarts: `kill -9` loses nothing; SIGTERM drains.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use herald_test_support::{NatsServer, TestReceiver, eventually};

use crate::process::{self, Ports};

fn delivered_ids(receiver: &TestReceiver) -> (usize, BTreeSet<String>) {
    let requests = receiver.requests();
    let ok: Vec<String> = requests
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    (ok.len(), ok.into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_dispatcher_loses_no_event_and_duplicates_stay_within_what_was_in_flight() {
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let nats = process::nats(&ports.nats_url).await;
    let mut control = process::start("control", &ports);
    let mut ingest = process::start("ingest", &ports);
    control.wait_listening(ports.control).await;
    ingest.wait_listening(ports.ingest).await;
    let receiver = TestReceiver::start().await;
    receiver.set_delay(Duration::from_millis(10));
    let dispatcher = process::start("dispatch", &ports);
    let subscription = process::subscribe(&ports, &nats, receiver.url()).await;

    process::post_batches(&ports, "crash", 5000).await;
    receiver.wait_for(1500, Duration::from_secs(60)).await;
    dispatcher.kill().await;
    let at_kill = receiver.count();
    let _restarted = process::start("dispatch", &ports);

    let (total, unique) = eventually(
        "all 5000 events delivered",
        Duration::from_secs(90),
        || async {
            let (total, unique) = delivered_ids(&receiver);
            (unique.len() == 5000).then_some((total, unique))
        },
    )
    .await;
    let duplicates = total - unique.len();
    // Only what was attempted and not yet acknowledged may be delivered twice: at most
    // max_in_flight attempts (64 here). Events pulled into the scheduler but not started were
    // never sent, so their redelivery is no duplicate.
    assert!(
        duplicates <= 64,
        "{duplicates} duplicates after kill -9 with 64 in flight"
    );
    assert!(
        at_kill < 5000,
        "the dispatcher was killed mid-run ({at_kill} delivered)"
    );
    report(&format!(
        "kill -9 after {at_kill} of 5000 deliveries: 0 lost, {duplicates} duplicates (bound 64)"
    ));
    let progress = nats.consumer_progress(&subscription).await.unwrap();
    assert_eq!(progress.num_pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_attempts_in_flight_finish_and_exits_within_the_grace_period() {
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let nats = process::nats(&ports.nats_url).await;
    let mut control = process::start("control", &ports);
    let mut ingest = process::start("ingest", &ports);
    control.wait_listening(ports.control).await;
    ingest.wait_listening(ports.ingest).await;
    let receiver = TestReceiver::start().await;
    // Below the 2 s attempt deadline: the attempts succeed, slowly.
    receiver.set_delay(Duration::from_millis(1500));
    let mut dispatcher = process::start("dispatch", &ports);
    let subscription = process::subscribe(&ports, &nats, receiver.url()).await;
    process::post_batches(&ports, "drain", 10).await;
    receiver.wait_for(10, Duration::from_secs(20)).await;

    // All ten attempts are in flight: the receiver answers each after 1.5 s.
    let signalled = Instant::now();
    dispatcher.terminate().await;
    let status = tokio::time::timeout(Duration::from_secs(8), dispatcher.child.wait())
        .await
        .expect("the dispatcher should exit within its 5 s grace period (plus startup margin)")
        .unwrap();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(1000),
        "exited after {took:?}, before the attempts finished"
    );
    assert!(took < Duration::from_secs(7), "exited after {took:?}");

    // Every in-flight attempt finished and was acknowledged: nothing pending, nothing lost.
    let progress = nats.consumer_progress(&subscription).await.unwrap();
    assert_eq!(
        (progress.num_pending, progress.num_ack_pending),
        (0, 0),
        "{progress:?}"
    );
    let (total, unique) = delivered_ids(&receiver);
    assert_eq!((total, unique.len()), (10, 10));
    report(&format!(
        "SIGTERM with 10 attempts in flight: exited after {took:?}, all 10 acknowledged"
    ));
}

#[allow(
    clippy::print_stderr,
    reason = "the figure is part of the test's report"
)]
fn report(line: &str) {
    eprintln!("{line}");
}
