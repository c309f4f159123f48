//! Idle subscriptions park (drop their pull) and the next event stored for one wakes exactly it;
//! a gap in the wake-ups wakes every parked subscription (`crates/herald-dispatcher/src/parking.rs`);
//! an event handed to the pull a subscription dropped to park is delivered when it wakes, not
//! an ack wait later (`worker.rs`).

use std::time::Duration;

use herald_test_support::{TestReceiver, structured_event};

use crate::cluster::{TestCluster, exact_type};

/// The dispatcher's `herald_dispatch_subscriptions_parked`.
fn parked(cluster: &TestCluster) -> i64 {
    metric(cluster, "herald_dispatch_subscriptions_parked")
}

/// The parked subscriptions woken by `cause` so far.
fn woken(cluster: &TestCluster, cause: &str) -> i64 {
    metric(
        cluster,
        &format!("herald_dispatch_subscriptions_woken_total{{cause=\"{cause}\"}}"),
    )
}

fn metric(cluster: &TestCluster, series: &str) -> i64 {
    cluster
        .dispatcher_metrics()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_for_parked(cluster: &TestCluster, count: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while parked(cluster) != count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} subscriptions parked, not {count}, after 60 s",
            parked(cluster)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn idle_subscriptions_park_and_the_next_event_for_one_wakes_it_and_is_delivered() {
    let cluster = TestCluster::start().await;
    let receivers = [
        TestReceiver::start().await,
        TestReceiver::start().await,
        TestReceiver::start().await,
    ];
    let types = ["com.shop.order", "com.shop.refund", "com.bank.transfer"];
    for (receiver, event_type) in receivers.iter().zip(types) {
        cluster
            .subscribe(receiver.url(), vec![exact_type(event_type)])
            .await;
    }
    // Nothing to deliver: all three park (`park_after` is 2 s in these tests).
    wait_for_parked(&cluster, 3).await;
    let woken_before = woken(&cluster, "event");

    for round in 0..3 {
        cluster
            .post_structured(&structured_event(&format!("order-{round}"), types[0]))
            .await;
        let delivered = receivers[0]
            .wait_for(round + 1, Duration::from_secs(30))
            .await;
        assert_eq!(delivered.len(), round + 1);
        // The order subscription parks again once idle.
        wait_for_parked(&cluster, 3).await;
    }
    // A later event of another type wakes its subscription only.
    cluster
        .post_structured(&structured_event("transfer-1", types[2]))
        .await;
    receivers[2].wait_for(1, Duration::from_secs(30)).await;
    wait_for_parked(&cluster, 3).await;
    assert_eq!(receivers[0].count(), 3);
    assert_eq!(receivers[1].count(), 0);
    assert_eq!(receivers[2].count(), 1);
    // Each event woke its own subscription, and no wake-up was found missing.
    assert_eq!(woken(&cluster, "event") - woken_before, 4);
    assert_eq!(woken(&cluster, "gap"), 0);
    assert_eq!(woken(&cluster, "recheck"), 0);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_gap_in_the_wake_ups_wakes_every_parked_subscription_which_parks_again() {
    let cluster = TestCluster::start().await;
    let receivers = [TestReceiver::start().await, TestReceiver::start().await];
    for (index, receiver) in receivers.iter().enumerate() {
        cluster
            .subscribe(
                receiver.url(),
                vec![exact_type(&format!("com.gap.{index}"))],
            )
            .await;
    }
    wait_for_parked(&cluster, 2).await;
    // A wake-up saying messages before it were stored that the dispatcher was never told of
    // (as after a reconnect), on a subject neither subscription reads.
    let client = async_nats::connect(cluster.nats_server.url())
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Sequence", "1000001");
    headers.insert("Nats-Last-Sequence", "1000000");
    client
        .publish_with_headers(
            "herald.wake.herald.events.0.com.nobody",
            headers,
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    // Both are woken (and, finding nothing, park again at once).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while woken(&cluster, "gap") < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gap woke {} of 2",
            woken(&cluster, "gap")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(woken(&cluster, "gap"), 2);
    // Woken, they find nothing and park again; an event for one is still delivered.
    wait_for_parked(&cluster, 2).await;
    cluster
        .post_structured(&structured_event("gap-1", "com.gap.1"))
        .await;
    receivers[1].wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(receivers[0].count(), 0);
    cluster.shutdown().await;
}

/// An event the server handed to a pull that is gone (as the pull a subscription drops to park
/// can be handed one in the moment before it ends) is delivered when the subscription wakes,
/// not an ack wait later. Here a pull of the test's own takes the event and drops it unread,
/// standing in for that race; the ack wait is 67 s, and the event arrives well within it.
#[tokio::test]
async fn an_event_a_dropped_pull_was_handed_is_delivered_on_waking_not_after_the_ack_wait() {
    use futures::StreamExt as _;

    let mut config = crate::cluster::dispatcher_config();
    // ack wait = 2 × request_timeout + connect_timeout + 5 s = 67 s.
    config.request_timeout = Duration::from_secs(30);
    let cluster = TestCluster::start_with(config).await;
    let receiver = TestReceiver::start().await;
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type("com.parked.race")])
        .await;
    // Parked after delivering something, so it parked by dropping a pull of its own.
    wait_for_parked(&cluster, 1).await;
    cluster
        .post_structured(&structured_event("race-1", "com.parked.race"))
        .await;
    receiver.wait_for(1, Duration::from_secs(30)).await;
    wait_for_parked(&cluster, 1).await;

    // The only pull waiting on the consumer is the test's: the server hands it the next event.
    let client = async_nats::connect(cluster.nats_server.url())
        .await
        .unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        async_nats::jetstream::new(client.clone())
            .get_stream(herald_nats::EVENTS_STREAM)
            .await
            .unwrap()
            .get_consumer(
                &herald_core::WorkId::whole(
                    herald_core::SubscriptionId::parse(&subscription.id).unwrap(),
                )
                .consumer_name(),
            )
            .await
            .unwrap();
    let mut taking = consumer
        .batch()
        .max_messages(1)
        .expires(Duration::from_secs(60))
        .messages()
        .await
        .unwrap();
    client.flush().await.unwrap();
    let posted = tokio::time::Instant::now();
    cluster
        .post_structured(&structured_event("race-2", "com.parked.race"))
        .await;
    let taken = taking.next().await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&taken.payload).contains("race-2"),
        "the test's pull took another event"
    );
    // Dropped unacknowledged and unread, as a pull that ended would.
    drop(taken);
    drop(taking);

    let delivered = receiver.wait_for(2, Duration::from_secs(60)).await;
    assert_eq!(delivered[1].json()["id"], "race-2");
    assert!(
        posted.elapsed() < Duration::from_secs(60),
        "delivered {:?} after it was stored: only when the ack wait ran out",
        posted.elapsed()
    );
    cluster.shutdown().await;
}
