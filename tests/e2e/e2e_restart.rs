//! A dispatcher stopped with events unacknowledged, then started again, delivers them all;
//! those it had pulled and not yet attempted it hands back at once.

use std::time::Duration;

use axum::http::StatusCode;
use herald_test_support::{Reply, TestReceiver, structured_event};

use crate::cluster::TestCluster;
use crate::{ids, unique, wait_until_settled};

#[tokio::test]
async fn restarted_dispatcher_delivers_every_unacknowledged_event() {
    let mut cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let subscription = cluster.subscribe(receiver.url(), vec![]).await;
    for n in 0..20 {
        cluster
            .post_structured(&structured_event(&format!("failing-{n}"), "com.restart"))
            .await;
    }
    // Every event has been attempted and failed, so none is acknowledged.
    herald_test_support::eventually("every event attempted", Duration::from_secs(20), || async {
        (unique(&ids(&receiver.requests())).len() >= 20).then_some(())
    })
    .await;
    cluster.stop_dispatcher().await;
    for n in 0..20 {
        cluster
            .post_structured(&structured_event(&format!("stopped-{n}"), "com.restart"))
            .await;
    }
    receiver.set_reply(Reply::Status(StatusCode::OK));
    cluster.start_dispatcher().await;
    wait_until_settled(&cluster, &subscription.id).await;
    let delivered: Vec<String> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.status == StatusCode::OK)
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        unique(&delivered).len(),
        40,
        "every event delivered: {:?}",
        ids(&receiver.requests())
    );
    cluster.shutdown().await;
}

/// Events a dispatcher had pulled but not yet attempted when it stopped (held back by the
/// subscription's rate limit) are handed back at once, so the next dispatcher delivers them in
/// seconds rather than after the consumer's ack wait (67 s here), which they would otherwise
/// spend filling the subscription's window.
#[tokio::test]
async fn events_waiting_when_a_dispatcher_stops_are_delivered_by_the_next_at_once() {
    use herald_proto::v1 as pb;

    let mut config = crate::cluster::dispatcher_config();
    // ack wait = 2 × request_timeout + connect_timeout + 5 s = 67 s.
    config.request_timeout = Duration::from_secs(30);
    // Never parked: a worker that parks and finds its consumer's window held renews the
    // consumer, which would hide what this test is about.
    config.park_after = Duration::ZERO;
    let mut cluster = TestCluster::start_with(config).await;
    let receiver = TestReceiver::start().await;
    cluster
        .create_subscription(pb::CreateSubscriptionRequest {
            sink: receiver.url().to_owned(),
            filters: vec![crate::cluster::exact_type("com.restart.waiting")],
            delivery: Some(pb::DeliverySettings {
                rate_limit: Some(pb::RateLimit {
                    per_second: 2,
                    burst: 1,
                }),
                max_in_flight: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    for n in 0..12 {
        cluster
            .post_structured(&structured_event(
                &format!("waiting-{n}"),
                "com.restart.waiting",
            ))
            .await;
    }
    // A few delivered; the rest were pulled and wait for tokens.
    receiver.wait_for(2, Duration::from_secs(30)).await;
    cluster.stop_dispatcher().await;
    let stopped = tokio::time::Instant::now();
    cluster.start_dispatcher().await;
    herald_test_support::eventually(
        "every waiting event delivered",
        Duration::from_secs(60),
        || async { (unique(&ids(&receiver.requests())).len() >= 12).then_some(()) },
    )
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(60),
        "the waiting events came {:?} after the stop: only when the ack wait ran out",
        stopped.elapsed()
    );
    cluster.shutdown().await;
}
