//! Routing end to end: `sql` and `cel` filters, fan-out to many subscriptions that never wait
//! for each other, and NATS pre-filtering that shows each consumer only its own event types.

use std::time::Duration;

use herald_proto::v1 as pb;
use herald_test_support::TestReceiver;
use serde_json::json;

use crate::cluster::{TestCluster, exact_type};
use crate::{ids, unique, wait_until_settled};

fn sql(expression: &str) -> pb::Filter {
    pb::Filter {
        dialect: Some(pb::filter::Dialect::Sql(expression.to_owned())),
    }
}

fn cel(expression: &str) -> pb::Filter {
    pb::Filter {
        dialect: Some(pb::filter::Dialect::Cel(expression.to_owned())),
    }
}

fn order(id: &str, event_type: &str, total: f64, region: &str) -> String {
    json!({
        "specversion": "1.0", "id": id, "source": "/shop", "type": event_type,
        "region": region, "datacontenttype": "application/json", "data": {"total": total}
    })
    .to_string()
}

#[tokio::test]
async fn sql_and_cel_filters_select_events_and_count_evaluation_errors() {
    let cluster = TestCluster::start().await;
    let sql_receiver = TestReceiver::start().await;
    let cel_receiver = TestReceiver::start().await;
    let sql_subscription = cluster
        .subscribe(
            sql_receiver.url(),
            vec![sql("type LIKE 'com.shop.%' AND region = 'eu'")],
        )
        .await;
    let cel_subscription = cluster
        .subscribe(
            cel_receiver.url(),
            vec![cel(r#"type.startsWith("com.shop.") && data.total > 100"#)],
        )
        .await;

    cluster
        .post_structured(&order("eu-big", "com.shop.order.created", 250.0, "eu"))
        .await;
    cluster
        .post_structured(&order("eu-small", "com.shop.order.created", 20.0, "eu"))
        .await;
    cluster
        .post_structured(&order("us-big", "com.shop.order.created", 500.0, "us"))
        .await;
    cluster
        .post_structured(&order("bank-big", "com.bank.transfer", 900.0, "eu"))
        .await;
    // No JSON data: the CEL filter cannot read `data`, so it does not match and counts an error.
    let text = json!({
        "specversion": "1.0", "id": "eu-text", "source": "/shop", "type": "com.shop.note",
        "region": "eu", "datacontenttype": "text/plain", "data": "total=999"
    });
    cluster.post_structured(&text.to_string()).await;

    for subscription in [&sql_subscription, &cel_subscription] {
        wait_until_settled(&cluster, &subscription.id).await;
    }
    let mut sql_ids = ids(&sql_receiver.requests());
    sql_ids.sort();
    assert_eq!(sql_ids, ["eu-big", "eu-small", "eu-text"]);
    let mut cel_ids = ids(&cel_receiver.requests());
    cel_ids.sort();
    assert_eq!(cel_ids, ["eu-big", "us-big"]);
    let metrics = cluster.dispatcher_metrics();
    assert!(
        metrics.contains(r#"herald_dispatch_filter_errors_total{dialect="cel"} 1"#),
        "{metrics}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_hanging_endpoint_never_delays_another_subscription() {
    let mut cluster = TestCluster::start().await;
    // One attempt at a time per subscription, and attempts that may hang for a long time.
    cluster.stop_dispatcher().await;
    cluster.dispatcher_config.max_in_flight_per_subscription = 1;
    cluster.dispatcher_config.request_timeout = Duration::from_secs(120);
    cluster.dispatcher_config.shutdown_grace_period = Duration::from_millis(100);
    cluster.start_dispatcher().await;
    let hanging = TestReceiver::start().await;
    hanging.set_delay(Duration::from_secs(300));
    let healthy = TestReceiver::start().await;
    let hanging_subscription = cluster
        .subscribe(hanging.url(), vec![exact_type("com.shop.order.created")])
        .await;
    let healthy_subscription = cluster
        .subscribe(healthy.url(), vec![exact_type("com.shop.order.created")])
        .await;

    let num_events = 5;
    for index in 0..num_events {
        let body = order(
            &format!("order-{index}"),
            "com.shop.order.created",
            1.0,
            "eu",
        );
        cluster.post_structured(&body).await;
    }
    healthy.wait_for(num_events, Duration::from_secs(20)).await;
    wait_until_settled(&cluster, &healthy_subscription.id).await;
    assert_eq!(unique(&ids(&healthy.requests())).len(), num_events);
    // The hanging endpoint still holds its first attempt; everything else waits behind it,
    // unacknowledged (pulled into its scheduler's window, or still in the stream).
    assert_eq!(hanging.count(), 1);
    let progress = cluster
        .nats
        .consumer_progress(&hanging_subscription.id)
        .await
        .unwrap();
    assert_eq!(
        progress.num_ack_pending + progress.num_pending,
        num_events as u64,
        "{progress:?}"
    );
    assert_eq!(progress.ack_floor_stream_sequence, 0, "{progress:?}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn each_consumer_sees_only_its_own_event_types() {
    let cluster = TestCluster::start().await;
    let num_types = 8;
    let mut receivers = Vec::new();
    let mut subscriptions = Vec::new();
    for index in 0..num_types {
        let receiver = TestReceiver::start().await;
        let subscription = cluster
            .subscribe(
                receiver.url(),
                vec![exact_type(&format!("com.disjoint.type{index}"))],
            )
            .await;
        receivers.push(receiver);
        subscriptions.push(subscription);
    }
    // Type i gets i + 1 events, interleaved.
    for round in 0..num_types {
        for index in round..num_types {
            let body = order(
                &format!("t{index}-r{round}"),
                &format!("com.disjoint.type{index}"),
                1.0,
                "eu",
            );
            cluster.post_structured(&body).await;
        }
    }
    for (index, (receiver, subscription)) in receivers.iter().zip(&subscriptions).enumerate() {
        receiver.wait_for(index + 1, Duration::from_secs(20)).await;
        wait_until_settled(&cluster, &subscription.id).await;
        let progress = cluster
            .nats
            .consumer_progress(&subscription.id)
            .await
            .unwrap();
        assert_eq!(
            progress.num_delivered,
            index as u64 + 1,
            "consumer {index} should have been handed only its own events: {progress:?}"
        );
        assert_eq!(receiver.count(), index + 1);
        assert!(
            ids(&receiver.requests())
                .iter()
                .all(|id| id.starts_with(&format!("t{index}-"))),
            "{index}"
        );
    }
    cluster.shutdown().await;
}
