//! A dispatcher stopped with events unacknowledged, then started again, delivers them all.

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
