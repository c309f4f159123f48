//! A replay stops with control: SIGTERM to a `herald control` process in the middle of a long
//! replay ends the replay (the caller gets `UNAVAILABLE` with how far it got), the process
//! exits, and the replay republished nothing once control stopped.
//!
//! Counting is exact, not timed: after the process exited, the test publishes a fence on the
//! subscription's redeliver subject and waits for its acknowledgement. The control process
//! flushed its connection before exiting (`Nats::close`), so every publish it sent was queued
//! to the events stream ahead of the fence, and the fence's acknowledgement means all of them
//! are stored. The count taken then is final, and stays the same at a second fence.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use herald_core::{Event, SubscriptionId};
use herald_nats::{Nats, Start};
use herald_proto::v1 as pb;
use herald_test_support::structured_event;

use crate::process::{self, Ports};

/// Events stored before the replay: far more than a replay republishes between the first
/// progress report and the moment control stops, however fast the machine.
const EVENTS: usize = 20_000;

type DeliveryClient = pb::delivery_service_client::DeliveryServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
    >,
>;

async fn delivery_client(ports: &Ports) -> DeliveryClient {
    let channel = tonic::transport::Channel::from_shared(ports.control_url())
        .expect("the control URL should be valid")
        .connect()
        .await
        .expect("control should accept connections");
    pb::delivery_service_client::DeliveryServiceClient::with_interceptor(
        channel,
        process::authorize as fn(_) -> _,
    )
}

/// Publishes a fence on the subscription's redeliver subject, waits for its acknowledgement,
/// then returns the stream sequences of the replay's republished messages stored so far.
async fn replayed_behind_fence(nats: &Nats, id: &SubscriptionId, fence: &str) -> Vec<u64> {
    let body = structured_event(fence, "com.replay.fence");
    nats.records()
        .redeliver(id, Bytes::from(body), fence, None)
        .await
        .expect("the fence should be stored");
    let last = nats.events_last_sequence().await.unwrap();
    let scan = nats
        .scan_events(
            vec![format!("herald.redeliver.{id}")],
            Start::Sequence(1),
            Some(last),
        )
        .await
        .unwrap();
    let mut scan = std::pin::pin!(scan);
    let mut replayed = Vec::new();
    let mut fence_seen = false;
    while let Some(scanned) = scan.next().await {
        let scanned = scanned.unwrap();
        let event = Event::from_stored(
            scanned.header("Content-Type"),
            scanned
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
            &scanned.payload,
        )
        .unwrap();
        if event.id() == fence {
            fence_seen = true;
        } else if event.ty() == "com.replay.stop" {
            assert!(
                !fence_seen,
                "an event was republished behind the fence {fence}"
            );
            replayed.push(scanned.sequence);
        }
    }
    assert!(fence_seen, "the scan should reach the fence {fence}");
    replayed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_running_replay_and_nothing_is_republished_after_control_stopped() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats_server = herald_test_support::NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let mut control = process::start("control", &ports);
    control.wait_listening(ports.control).await;
    let nats = process::nats(&ports.nats_url).await;

    let publisher = nats.publisher();
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(500) {
        let events: Vec<Event> = chunk
            .iter()
            .map(|n| {
                let body = structured_event(&format!("replay-{n}"), "com.replay.stop");
                Event::from_structured(Bytes::from(body)).unwrap()
            })
            .collect();
        publisher.publish_all(&events).await.unwrap();
    }
    // No dispatcher runs: what the replay republishes stays on the redeliver subject.
    let mut subscriptions = process::control_client(&ports).await;
    let id = subscriptions
        .create_subscription(pb::CreateSubscriptionRequest {
            sink: "http://127.0.0.1:9/hook".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let id = SubscriptionId::parse(&id).unwrap();

    let mut deliveries = delivery_client(&ports).await;
    let mut progress = deliveries
        .replay_events(pb::ReplayEventsRequest {
            subscription_id: id.to_string(),
            from: Some(pb::replay_events_request::From::StartSequence(1)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // The replay runs: its first progress report came.
    let first = progress
        .next()
        .await
        .expect("the replay should report progress")
        .expect("the replay should be running");
    assert!(!first.done && first.scanned > 0, "{first:?}");

    control.terminate().await;
    let mut last = first;
    let ended = loop {
        match progress.next().await {
            Some(Ok(report)) => {
                assert!(
                    !report.done,
                    "the replay finished before control stopped: {report:?}"
                );
                last = report;
            }
            Some(Err(status)) => break Some(status),
            None => break None,
        }
    };
    let status = ended.expect("the caller should hear why the replay ended");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("replay stopped"), "{status:?}");
    let exit = tokio::time::timeout(Duration::from_secs(120), control.child.wait())
        .await
        .expect("control should exit after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");

    let replayed = replayed_behind_fence(&nats, &id, "fence-1").await;
    let count = replayed.len();
    assert!(
        count > 0 && count < EVENTS,
        "the replay should have stopped part-way, it republished {count} of {EVENTS}"
    );
    assert!(
        u64::try_from(count).unwrap() >= last.replayed,
        "{count} stored, {} reported",
        last.replayed
    );
    // Republished in scan order, one at a time: the stored ones are the first `count` events.
    assert!(replayed.windows(2).all(|pair| pair[0] < pair[1]));

    // Nothing more comes, whatever else gets the machine's time meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = replayed_behind_fence(&nats, &id, "fence-2").await;
    assert_eq!(
        again, replayed,
        "events were republished after control stopped"
    );
    report(&format!(
        "replay stopped by SIGTERM: {count} of {EVENTS} events republished ({} reported before \
         the stop), none after",
        last.replayed
    ));
}

#[allow(
    clippy::print_stderr,
    reason = "the figures are part of the test's report"
)]
fn report(line: &str) {
    eprintln!("{line}");
}
