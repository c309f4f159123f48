//! The egress proxy end to end (`dispatcher.egress_proxy`): an event published through ingest
//! and a test send both reach the endpoint through a real proxy on loopback
//! (`herald_test_support::TestProxy`), which records each request before carrying it; with the
//! proxy gone, the attempt log names it and the dispatcher counts it.

use std::time::Duration;

use herald_proto::v1 as pb;
use herald_test_support::{TestProxy, TestReceiver, eventually, structured_event};

use crate::cluster::{TestCluster, dispatcher_config, exact_type, short_retry_policy};

async fn attempts_of(cluster: &TestCluster, id: &str) -> Vec<pb::Attempt> {
    let request = pb::ListAttemptsRequest {
        subscription_id: id.to_owned(),
        ..Default::default()
    };
    let mut deliveries = cluster.deliveries().await;
    deliveries
        .list_attempts(request)
        .await
        .unwrap()
        .into_inner()
        .attempts
}

#[tokio::test]
async fn deliveries_and_test_sends_go_through_the_egress_proxy() {
    let proxy = TestProxy::start().await;
    let receiver = TestReceiver::start().await;
    let mut config = dispatcher_config();
    config.egress_proxy = Some(herald_dispatcher::EgressProxy::new(format!(
        "http://herald:s3cret@127.0.0.1:{}",
        proxy.port()
    )));
    let cluster = TestCluster::start_with(config).await;
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type("com.example.proxied")])
        .await;

    cluster
        .post_structured(&structured_event("evt-proxied-1", "com.example.proxied"))
        .await;
    let delivered = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(delivered[0].json()["id"], "evt-proxied-1");
    assert!(delivered[0].header("webhook-signature").is_some());
    assert_eq!(delivered[0].header("proxy-authorization"), None);

    let request = pb::SendTestEventRequest {
        id: subscription.id.clone(),
        r#type: "com.example.proxied".to_owned(),
        data: r#"{"test": true}"#.to_owned(),
    };
    let sent = cluster
        .control()
        .await
        .send_test_event(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.attempt.unwrap().status_code, 200);

    // Both POSTs went through the proxy, with its credentials, to the sink as subscribed;
    // whatever else reached the endpoint (the consent handshake) went through it as well.
    let posts: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|request| request.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    for post in &posts {
        assert_eq!(post.target, receiver.url());
        assert_eq!(
            post.authorization.as_deref(),
            Some("Basic aGVyYWxkOnMzY3JldA==")
        );
    }
    assert!(proxy.requests().len() >= receiver.count());
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_egress_proxy_is_named_in_the_attempt_log_and_counted() {
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let receiver = TestReceiver::start().await;
    let mut config = dispatcher_config();
    config.egress_proxy = Some(herald_dispatcher::EgressProxy::new(format!(
        "http://herald:s3cret@127.0.0.1:{port}"
    )));
    let cluster = TestCluster::start_with(config).await;
    let subscription = cluster
        .subscribe_with(
            receiver.url(),
            vec![exact_type("com.example.unproxied")],
            short_retry_policy(2),
        )
        .await;
    cluster
        .post_structured(&structured_event(
            "evt-unproxied-1",
            "com.example.unproxied",
        ))
        .await;
    let attempts = eventually("a failed attempt", Duration::from_secs(10), || {
        let cluster = &cluster;
        let id = subscription.id.clone();
        async move {
            let attempts = attempts_of(cluster, &id).await;
            (!attempts.is_empty()).then_some(attempts)
        }
    })
    .await;
    let attempt = &attempts[0];
    assert_eq!(attempt.result_class, "connect", "{attempt:?}");
    let expected = format!("failed to reach the egress proxy 127.0.0.1:{port}: ");
    assert!(attempt.error.starts_with(&expected), "{}", attempt.error);
    assert!(!attempt.error.contains("s3cret"), "{}", attempt.error);
    assert_eq!(receiver.count(), 0);
    let metrics = cluster.dispatcher_metrics();
    let failures = metrics
        .lines()
        .find_map(|line| line.strip_prefix("herald_dispatch_egress_proxy_failures_total "))
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(failures >= 1, "{metrics}");
    cluster.shutdown().await;
}
