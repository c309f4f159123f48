//! An event in over HTTP, a signed webhook out: content modes, filters, deduplication.

use std::time::Duration;

use herald_test_support::{TestReceiver, structured_event};

use crate::cluster::{TestCluster, exact_type, type_prefix};
use crate::{ids, verify_delivery, wait_until_settled};

#[tokio::test]
async fn delivers_each_content_mode_once_signed_and_only_to_matching_subscriptions() {
    let cluster = TestCluster::start().await;
    let exact_receiver = TestReceiver::start().await;
    let prefix_receiver = TestReceiver::start().await;
    let other_receiver = TestReceiver::start().await;
    let exact = cluster
        .subscribe(
            exact_receiver.url(),
            vec![exact_type("com.shop.order.created")],
        )
        .await;
    let prefix = cluster
        .subscribe(prefix_receiver.url(), vec![type_prefix("com.shop.")])
        .await;
    let other = cluster
        .subscribe(other_receiver.url(), vec![exact_type("com.bank.transfer")])
        .await;

    cluster
        .post_structured(&structured_event("structured-1", "com.shop.order.created"))
        .await;
    let binary = cluster
        .http
        .post(&cluster.ingest_url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "binary-1")
        .header("ce-source", "/herald/tests")
        .header("ce-type", "com.shop.order.created")
        .header("ce-subject", "order%2042")
        .header("content-type", "application/json")
        .body(r#"{"total": 12.50}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 202);
    let binary_body: serde_json::Value = binary.json().await.unwrap();
    assert_eq!(binary_body["id"], "binary-1");
    cluster
        .post_structured(&structured_event("refund-1", "com.shop.refund.created"))
        .await;
    // The same (source, id) again: accepted, stored once, delivered once.
    let again = cluster
        .post_structured(&structured_event("structured-1", "com.shop.order.created"))
        .await;
    assert_eq!(again["duplicate"], true);

    let delivered = exact_receiver.wait_for(2, Duration::from_secs(20)).await;
    prefix_receiver.wait_for(3, Duration::from_secs(20)).await;
    for subscription in [&exact, &prefix, &other] {
        wait_until_settled(&cluster, &subscription.id).await;
    }
    let delivered_ids = ids(&exact_receiver.requests());
    assert_eq!(
        delivered_ids.len(),
        2,
        "exactly once each: {delivered_ids:?}"
    );
    assert!(
        delivered_ids.contains(&"structured-1".to_owned())
            && delivered_ids.contains(&"binary-1".to_owned())
    );
    for recorded in &delivered {
        verify_delivery(recorded, &exact.secret);
    }
    let binary_delivery = delivered
        .iter()
        .find(|r| r.json()["id"] == "binary-1")
        .unwrap();
    assert_eq!(binary_delivery.json()["subject"], "order 42");
    assert_eq!(binary_delivery.json()["data"]["total"], 12.50);

    let mut prefix_ids = ids(&prefix_receiver.requests());
    prefix_ids.sort();
    assert_eq!(prefix_ids, ["binary-1", "refund-1", "structured-1"]);
    for recorded in prefix_receiver.requests() {
        verify_delivery(&recorded, &prefix.secret);
    }
    // Filtered on the server: the consumer of a subscription to another type never saw these.
    assert_eq!(other_receiver.count(), 0);
    let progress = cluster.nats.consumer_progress(&other.id).await.unwrap();
    assert_eq!(progress.delivered_stream_sequence, 0, "{progress:?}");
    assert_eq!(cluster.nats.events_stored().await.unwrap(), 3);
    cluster.shutdown().await;
}

#[tokio::test]
async fn accepts_a_batch_whole_and_delivers_every_event() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    let subscription = cluster.subscribe(receiver.url(), vec![]).await;
    let ids_in_batch: Vec<String> = (0..20).map(|n| format!("batch-{n}")).collect();
    let accepted = post_batch(&cluster, &ids_in_batch).await;
    assert_eq!(accepted["duplicates"], 0);
    receiver.wait_for(20, Duration::from_secs(20)).await;
    wait_until_settled(&cluster, &subscription.id).await;
    assert_eq!(crate::unique(&ids(&receiver.requests())).len(), 20);
    assert_eq!(receiver.count(), 20);
    cluster.shutdown().await;
}

/// With atomic batches on, JetStream refuses a whole batch when one of its events is a
/// duplicate; Herald then publishes its events one by one, so overlapping batches and an event
/// repeated within a batch still store and deliver each event exactly once.
#[tokio::test]
async fn overlapping_atomic_batches_store_and_deliver_each_event_once() {
    let cluster = TestCluster::start_with_atomic_batches().await;
    assert!(cluster.nats.publisher().atomic_batches());
    let pipelined = TestCluster::start().await;
    assert!(!pipelined.nats.publisher().atomic_batches());
    pipelined.shutdown().await;
    let receiver = TestReceiver::start().await;
    let subscription = cluster.subscribe(receiver.url(), vec![]).await;

    let first = post_batch(&cluster, &["a", "b", "c"]).await;
    assert_eq!(first["duplicates"], 0);
    let overlapping = post_batch(&cluster, &["c", "d", "e"]).await;
    assert_eq!(overlapping["duplicates"], 1, "{overlapping}");
    let repeating = post_batch(&cluster, &["f", "f", "g"]).await;
    assert_eq!(repeating["duplicates"], 1, "{repeating}");

    assert_eq!(cluster.nats.events_stored().await.unwrap(), 7);
    receiver.wait_for(7, Duration::from_secs(20)).await;
    wait_until_settled(&cluster, &subscription.id).await;
    let delivered = ids(&receiver.requests());
    assert_eq!(crate::unique(&delivered).len(), 7);
    assert_eq!(delivered.len(), 7, "{delivered:?}");
    cluster.shutdown().await;
}

/// Posts a batch of events of type `com.shop.batch` with these ids; returns the 202's body.
async fn post_batch(cluster: &TestCluster, event_ids: &[impl AsRef<str>]) -> serde_json::Value {
    let batch: Vec<serde_json::Value> = event_ids
        .iter()
        .map(|id| serde_json::from_str(&structured_event(id.as_ref(), "com.shop.batch")).unwrap())
        .collect();
    let response = cluster
        .http
        .post(&cluster.ingest_url)
        .header("content-type", "application/cloudevents-batch+json")
        .body(serde_json::to_vec(&batch).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}
