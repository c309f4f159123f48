//! Subscriptions take effect without restarts: created while events flow, deleted mid-stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use herald_proto::v1 as pb;
use herald_test_support::{TestReceiver, eventually, structured_event};

use crate::cluster::{TestCluster, exact_type};
use crate::{ids, wait_until_settled};

#[tokio::test]
async fn subscription_created_while_events_flow_starts_receiving() {
    let cluster = Arc::new(TestCluster::start().await);
    let running = Arc::new(AtomicBool::new(true));
    let posted = Arc::new(AtomicUsize::new(0));
    let producer = {
        let cluster = Arc::clone(&cluster);
        let running = Arc::clone(&running);
        let posted = Arc::clone(&posted);
        tokio::spawn(async move {
            let mut n = 0;
            while running.load(Ordering::SeqCst) {
                cluster
                    .post_structured(&structured_event(&format!("flow-{n}"), "com.flow"))
                    .await;
                posted.fetch_add(1, Ordering::SeqCst);
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    eventually("events to flow", Duration::from_secs(10), || async {
        (posted.load(Ordering::SeqCst) >= 10).then_some(())
    })
    .await;
    let receiver = TestReceiver::start().await;
    let request = pb::CreateSubscriptionRequest {
        sink: receiver.url().to_owned(),
        filters: vec![exact_type("com.flow")],
        ..Default::default()
    };
    cluster
        .control()
        .await
        .create_subscription(request)
        .await
        .unwrap();
    receiver.wait_for(10, Duration::from_secs(20)).await;
    running.store(false, Ordering::SeqCst);
    producer.await.unwrap();
    let cluster = Arc::into_inner(cluster).expect("the producer is done");
    cluster.shutdown().await;
}

#[tokio::test]
async fn deleted_subscription_stops_receiving() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    let sentinel_receiver = TestReceiver::start().await;
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type("com.deleted")])
        .await;
    let sentinel = cluster
        .subscribe(sentinel_receiver.url(), vec![exact_type("com.deleted")])
        .await;
    cluster
        .post_structured(&structured_event("first", "com.deleted"))
        .await;
    receiver.wait_for(1, Duration::from_secs(20)).await;

    let request = pb::DeleteSubscriptionRequest {
        id: subscription.id.clone(),
        ..Default::default()
    };
    cluster
        .control()
        .await
        .delete_subscription(request)
        .await
        .unwrap();
    let nats = cluster.nats.clone();
    let id = subscription.id.clone();
    eventually(
        "the consumer to be deleted",
        Duration::from_secs(10),
        || {
            let nats = nats.clone();
            let id = id.clone();
            async move { nats.consumer_progress(&id).await.is_err().then_some(()) }
        },
    )
    .await;

    cluster
        .post_structured(&structured_event("second", "com.deleted"))
        .await;
    sentinel_receiver.wait_for(2, Duration::from_secs(20)).await;
    wait_until_settled(&cluster, &sentinel.id).await;
    assert_eq!(ids(&receiver.requests()), ["first"]);
    cluster.shutdown().await;
}
