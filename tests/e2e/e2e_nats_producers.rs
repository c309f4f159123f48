//! Producers publishing CloudEvents to NATS directly, with an independent client (`nats-py`):
//! binary and structured mode are delivered like HTTP-ingested events; malformed messages are
//! moved to the rejected-events stream with their reasons, visible through the control API and
//! a metric.

use std::time::Duration;

use herald_proto::v1 as pb;
use herald_proto::v1::event_service_client::EventServiceClient;
use herald_test_support::{TestReceiver, eventually};
use serde_json::json;

use crate::cluster::{TestCluster, exact_type};
use crate::{verify_delivery, wait_until_settled};

/// Publishes `messages` (`{"subject", "headers", "payload"}`) with nats-py; returns their
/// stream sequences. Fails, never skips, when python or nats-py is missing.
async fn publish_with_nats_py(nats_url: &str, messages: serde_json::Value) -> Vec<u64> {
    crate::run_nats_py("publish.py", &[nats_url], &messages.to_string())
        .await
        .lines()
        .map(|line| line.trim().parse().expect("publish.py prints sequences"))
        .collect()
}

async fn list_rejected(cluster: &TestCluster) -> Vec<pb::RejectedEvent> {
    let mut client = EventServiceClient::connect(format!("http://{}", cluster.control_address))
        .await
        .unwrap();
    let mut rejected = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListRejectedEventsRequest {
            page_size: 2,
            page_token,
        };
        let page = client
            .list_rejected_events(request)
            .await
            .unwrap()
            .into_inner();
        rejected.extend(page.rejected_events);
        if page.next_page_token.is_empty() {
            return rejected;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn delivers_binary_and_structured_nats_publishes_like_ingested_events() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type("com.shop.order.created")])
        .await;
    let structured = json!({
        "specversion": "1.0", "id": "nats-structured-1", "source": "/producers/py",
        "type": "com.shop.order.created", "datacontenttype": "application/json",
        "data": {"total": 7}
    });
    let messages = json!([
        {
            "subject": "herald.events.3.com.shop.order.created",
            "headers": {
                "ce-specversion": "1.0",
                "ce-id": "nats-binary-1",
                "ce-source": "/producers/py",
                "ce-type": "com.shop.order.created",
                "ce-subject": "order%2042%20%E2%9C%93",
                "ce-region": "eu",
                "Content-Type": "application/json",
                "Nats-Msg-Id": herald_core::MessageId::derive("/producers/py", "nats-binary-1").as_str(),
            },
            "payload": "{\"total\": 12.5}",
        },
        {
            "subject": "herald.events.0.com.shop.order.created",
            "headers": {
                "Content-Type": "application/cloudevents+json",
                "Nats-Msg-Id": herald_core::MessageId::derive("/producers/py", "nats-structured-1").as_str(),
            },
            "payload": structured.to_string(),
        },
        // Another type: pre-filtered away from this subscription.
        {
            "subject": "herald.events.0.com.shop.refund.created",
            "headers": {"Content-Type": "application/cloudevents+json"},
            "payload": json!({
                "specversion": "1.0", "id": "nats-refund-1", "source": "/producers/py",
                "type": "com.shop.refund.created"
            }).to_string(),
        },
    ]);
    let sequences = publish_with_nats_py(&cluster.nats_server.url(), messages).await;
    assert_eq!(sequences.len(), 3);

    let delivered = receiver.wait_for(2, Duration::from_secs(20)).await;
    wait_until_settled(&cluster, &subscription.id).await;
    assert_eq!(receiver.count(), 2, "only the order events are delivered");
    for recorded in &delivered {
        verify_delivery(recorded, &subscription.secret);
    }
    let binary = delivered
        .iter()
        .map(|recorded| recorded.json())
        .find(|body| body["id"] == "nats-binary-1")
        .expect("the binary-mode event should be delivered");
    assert_eq!(
        binary["subject"], "order 42 ✓",
        "ce- headers are percent-decoded"
    );
    assert_eq!(binary["region"], "eu");
    assert_eq!(binary["data"]["total"], 12.5);
    let structured_delivery = delivered
        .iter()
        .map(|recorded| recorded.json())
        .find(|body| body["id"] == "nats-structured-1")
        .expect("the structured-mode event should be delivered");
    assert_eq!(structured_delivery["data"]["total"], 7);
    assert!(list_rejected(&cluster).await.is_empty());
    cluster.shutdown().await;
}

#[tokio::test]
async fn moves_malformed_nats_publishes_aside_once_with_their_reasons() {
    let cluster = TestCluster::start().await;
    let first = TestReceiver::start().await;
    let second = TestReceiver::start().await;
    // Two subscriptions see every message: each rejects the malformed ones, stored once.
    let subscriptions = [
        cluster.subscribe(first.url(), Vec::new()).await,
        cluster.subscribe(second.url(), Vec::new()).await,
    ];
    let messages = json!([
        {
            "subject": "herald.events.0.com.shop.order.created",
            "headers": {
                "ce-specversion": "1.0", "ce-id": "no-source", "ce-type": "com.shop.order.created",
                "Content-Type": "application/json", "Nats-Msg-Id": "producer-1",
            },
            "payload": "{\"total\": 1}",
        },
        {
            "subject": "herald.events.0.com.shop.order.created",
            "headers": {"Content-Type": "application/cloudevents+json"},
            "payload": "{not json",
        },
        {
            "subject": "herald.events.0.com.shop.order.created",
            "headers": {"Content-Type": "application/cloudevents+json"},
            "payload": json!({
                "specversion": "1.0", "id": "misrouted", "source": "/producers/py",
                "type": "com.shop.refund.created"
            }).to_string(),
        },
        {
            "subject": "herald.events.0.com.shop.order.created",
            "headers": {
                "ce-specversion": "0.3", "ce-id": "old", "ce-source": "/p", "ce-type": "com.shop.order.created",
            },
            "payload": "",
        },
        // A valid event after the malformed ones still flows.
        {
            "subject": "herald.events.0.com.shop.order.created",
            "headers": {"Content-Type": "application/cloudevents+json"},
            "payload": json!({
                "specversion": "1.0", "id": "valid-after", "source": "/producers/py",
                "type": "com.shop.order.created"
            }).to_string(),
        },
    ]);
    let sequences = publish_with_nats_py(&cluster.nats_server.url(), messages).await;
    first.wait_for(1, Duration::from_secs(20)).await;
    second.wait_for(1, Duration::from_secs(20)).await;
    for subscription in &subscriptions {
        wait_until_settled(&cluster, &subscription.id).await;
    }
    assert_eq!(first.requests()[0].json()["id"], "valid-after");
    assert_eq!((first.count(), second.count()), (1, 1));

    let mut rejected = list_rejected(&cluster).await;
    // Both workers reject concurrently, so the rejected stream's order is not the original one.
    rejected.sort_by_key(|event| event.original_sequence);
    let summary: Vec<(u64, &str, &str)> = rejected
        .iter()
        .map(|event| {
            (
                event.original_sequence,
                event.reason.as_str(),
                event.subject.as_str(),
            )
        })
        .collect();
    let subject = "herald.events.0.com.shop.order.created";
    assert_eq!(
        summary,
        vec![
            (sequences[0], "missing_attribute", subject),
            (sequences[1], "not_json", subject),
            (sequences[2], "subject_mismatch", subject),
            (sequences[3], "unsupported_specversion", subject),
        ],
        "each malformed message is stored once"
    );
    let missing_source = &rejected[0];
    assert_eq!(missing_source.detail, "missing required attribute `source`");
    assert_eq!(missing_source.payload, b"{\"total\": 1}");
    assert_eq!(missing_source.headers["ce-id"], "no-source");
    assert_eq!(
        missing_source.headers["Herald-Original-Msg-Id"],
        "producer-1"
    );
    assert_eq!(
        missing_source.headers["Herald-Rejected-Reason"],
        "missing_attribute"
    );
    assert!(missing_source.time.is_some());

    let metrics = cluster.dispatcher_metrics();
    for reason in [
        "missing_attribute",
        "not_json",
        "subject_mismatch",
        "unsupported_specversion",
    ] {
        let line = format!("herald_dispatch_events_rejected_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    // Nothing is left to redeliver: rejected messages were terminated, not nak'd.
    eventually("no redeliveries", Duration::from_secs(5), || async {
        let progress = cluster
            .nats
            .consumer_progress(&subscriptions[0].id)
            .await
            .ok()?;
        (progress.num_ack_pending == 0).then_some(())
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_message_only_a_full_parse_rejects_is_moved_aside_and_the_subscription_moves_on() {
    // Extension values that the lenient first parse accepts and a full parse refuses: they made
    // the delivery worker panic, and the subscription stopped for good.
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type("com.shop.order.created")])
        .await;
    let subject = "herald.events.0.com.shop.order.created";
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let poison = |id: &str, value: &str| {
        json!({
            "subject": subject,
            "headers": {"Content-Type": "application/cloudevents+json"},
            "payload": format!(
                r#"{{"specversion":"1.0","id":"{id}","source":"/p","type":"com.shop.order.created","ext":{value}}}"#
            ),
        })
    };
    let valid = |id: &str| {
        json!({
            "subject": subject,
            "headers": {"Content-Type": "application/cloudevents+json"},
            "payload": json!({
                "specversion": "1.0", "id": id, "source": "/p", "type": "com.shop.order.created"
            }).to_string(),
        })
    };
    let messages = json!([
        poison("huge", "1e400"),
        valid("between"),
        poison("deep", &deep),
        valid("after"),
    ]);
    let sequences = publish_with_nats_py(&cluster.nats_server.url(), messages).await;
    receiver.wait_for(2, Duration::from_secs(20)).await;
    wait_until_settled(&cluster, &subscription.id).await;
    let mut delivered = crate::ids(&receiver.requests());
    delivered.sort();
    assert_eq!(delivered, ["after", "between"]);

    let mut rejected = list_rejected(&cluster).await;
    rejected.sort_by_key(|event| event.original_sequence);
    let summary: Vec<(u64, &str)> = rejected
        .iter()
        .map(|event| (event.original_sequence, event.reason.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (sequences[0], "invalid_attribute"),
            (sequences[2], "invalid_attribute")
        ]
    );
    assert!(
        rejected[0].detail.contains("attribute `ext`"),
        "{}",
        rejected[0].detail
    );
    let metrics = cluster.dispatcher_metrics();
    for line in [
        "herald_dispatch_worker_restarts_total 0",
        "herald_dispatch_delivery_panics_total 0",
        "herald_dispatch_subscriptions_unserved 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn replay_delivers_binary_mode_events_from_nats_producers_too() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type("com.shop.order.created")])
        .await;
    let messages = json!([{
        "subject": "herald.events.0.com.shop.order.created",
        "headers": {
            "ce-specversion": "1.0", "ce-id": "binary-replayed", "ce-source": "/producers/py",
            "ce-type": "com.shop.order.created", "Content-Type": "application/json",
        },
        "payload": "{\"total\": 3}",
    }]);
    publish_with_nats_py(&cluster.nats_server.url(), messages).await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    wait_until_settled(&cluster, &subscription.id).await;

    let last = cluster
        .replay(
            &subscription.id,
            pb::replay_events_request::From::StartSequence(1),
        )
        .await;
    assert_eq!((last.done, last.replayed), (true, 1), "{last:?}");
    let requests = receiver.wait_for(2, Duration::from_secs(20)).await;
    for recorded in &requests {
        verify_delivery(recorded, &subscription.secret);
        assert_eq!(recorded.json()["data"]["total"], 3);
    }
    assert_eq!(
        requests[1].header("webhook-id"),
        requests[0].header("webhook-id")
    );
    wait_until_settled(&cluster, &subscription.id).await;
    cluster.shutdown().await;
}
