//! The CloudEvents HTTP Web Hooks abuse-protection handshake on the ingest endpoint: a sender
//! asks with `OPTIONS` and `WebHook-Request-Origin` whether it may deliver.

use crate::cluster::TestCluster;

#[tokio::test]
async fn ingest_answers_the_webhook_abuse_protection_handshake() {
    let cluster = TestCluster::start().await;
    let response = cluster
        .http
        .request(http::Method::OPTIONS, &cluster.ingest_url)
        .header("WebHook-Request-Origin", "eventemitter.example.com")
        .header("WebHook-Request-Rate", "120")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("webhook-allowed-origin").as_deref(),
        Some("eventemitter.example.com")
    );
    assert_eq!(header("webhook-allowed-rate").as_deref(), Some("*"));
    assert!(header("allow").is_some_and(|allow| allow.contains("POST")));

    // Without the request header it is a plain OPTIONS: no grant.
    let plain = cluster
        .http
        .request(http::Method::OPTIONS, &cluster.ingest_url)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("webhook-allowed-origin").is_none());
    cluster.shutdown().await;
}
