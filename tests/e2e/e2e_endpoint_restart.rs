//! An endpoint restarted between two bursts costs the second burst nothing (issue 10, defect
//! 13): a delivery whose pooled connection to the old server is lost before any response is
//! sent again at once on a new connection, and no attempt is counted as failed.

use std::time::Duration;

use herald_core::SubscriptionId;
use herald_nats::AttemptQuery;
use herald_test_support::{TestReceiver, structured_event};

use crate::cluster::{TestCluster, dispatcher_config, exact_type};
use crate::{ids, unique, wait_until_settled};

const EVENT_TYPE: &str = "com.restart.burst";
const BURST: usize = 40;

/// Posts `BURST` events in one batch request, so the dispatcher sends them concurrently.
async fn post_burst(cluster: &TestCluster, name: &str) {
    let batch: Vec<serde_json::Value> = (0..BURST)
        .map(|n| {
            let event = structured_event(&format!("{name}-{n}"), EVENT_TYPE);
            serde_json::from_str(&event).unwrap()
        })
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
}

#[tokio::test]
async fn a_burst_after_the_endpoint_restarted_has_no_failed_attempts() {
    // Idle connections outlive the test, so the second burst meets the old server's
    // connections however long the first one takes on a loaded machine.
    let mut config = dispatcher_config();
    config.pool_idle_timeout = Duration::from_secs(600);
    let cluster = TestCluster::start_with(config).await;
    let receiver = TestReceiver::start().await;
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type(EVENT_TYPE)])
        .await;

    post_burst(&cluster, "before").await;
    receiver.wait_for(BURST, Duration::from_secs(30)).await;
    wait_until_settled(&cluster, &subscription.id).await;

    receiver.restart().await;
    post_burst(&cluster, "after").await;
    eventually_unique(&receiver, 2 * BURST).await;
    wait_until_settled(&cluster, &subscription.id).await;

    assert!(
        receiver.resets() > 0,
        "the second burst should have met the old server's connections"
    );
    let id = SubscriptionId::parse(&subscription.id).unwrap();
    let query = AttemptQuery {
        subscription_id: Some(id),
        limit: 1000,
        ..AttemptQuery::default()
    };
    let attempts = cluster.nats.records().attempts(&query).await.unwrap().items;
    let failed: Vec<_> = attempts
        .iter()
        .filter(|(_, attempt)| attempt.outcome != "delivered")
        .map(|(_, attempt)| (&attempt.event_id, &attempt.result_class, &attempt.error))
        .collect();
    assert!(failed.is_empty(), "failed attempts: {failed:?}");
    assert_eq!(attempts.len(), 2 * BURST);
    cluster.shutdown().await;
}

async fn eventually_unique(receiver: &TestReceiver, count: usize) {
    herald_test_support::eventually(
        &format!("{count} distinct events delivered"),
        Duration::from_secs(30),
        || async { (unique(&ids(&receiver.requests())).len() >= count).then_some(()) },
    )
    .await;
}
