//! Client certificates (mutual TLS) against a real HTTPS endpoint on loopback that requires a
//! client certificate issued by its own CA: the right certificate gets the delivery and the
//! consent handshake through, none or another CA's fails the attempt like any TLS failure, and
//! each subscription's clients are kept for its certificate only.

use herald_core::SubscriptionId;
use herald_core::subscription::ClientCertificate;
use herald_core::subscription::consent::{HandshakeOutcome, HandshakeRequest};
use herald_test_support::TestCa;

use super::super::resolver::Lookups;
use super::ssrf::TableLookups;
use super::*;

/// A client trusting `server_ca`, resolving `localhost` to 127.0.0.1, loopback allowed.
fn client_trusting(server_ca: &TestCa) -> DeliveryClient {
    let lookups = TableLookups::with(&[("localhost", &["127.0.0.1"])]);
    DeliveryClient::trusting(
        &config(),
        NetworkPolicy::new(true, false),
        lookups as Arc<dyn Lookups>,
        vec![reqwest::Certificate::from_pem(server_ca.pem.as_bytes()).unwrap()],
    )
    .unwrap()
}

/// A client certificate issued by `ca`, as the control plane would have read it.
fn client_certificate(ca: &TestCa, name: &str) -> ClientCertificate {
    let (certificate, key) = ca.issue(name);
    ClientCertificate {
        certificate,
        key,
        fingerprint: format!("{name:0>64}"),
        subject: format!("CN={name}"),
        not_after: time::OffsetDateTime::now_utc() + time::Duration::days(1),
    }
}

fn subscription_id() -> SubscriptionId {
    SubscriptionId::from_ulid(ulid::Ulid::generate())
}

async fn send_as(
    client: &DeliveryClient,
    url: &url::Url,
    subscription: &SubscriptionId,
    certificate: Option<&ClientCertificate>,
) -> AttemptReport {
    let request = test_request(url).with_client_certificate(subscription, certificate);
    client.send(request).await
}

#[tokio::test]
async fn a_delivery_with_the_client_certificate_the_endpoint_trusts_gets_through() {
    let server_ca = TestCa::new("sink ca");
    let client_ca = TestCa::new("client ca");
    let endpoint = TlsEndpoint::requiring(&server_ca, &client_ca).await;
    let client = client_trusting(&server_ca);
    let subscription = subscription_id();
    let certificate = client_certificate(&client_ca, "herald-client");
    let report = send_as(&client, &endpoint.url(), &subscription, Some(&certificate)).await;
    assert_eq!(status(&report), Some(204), "{:?}", report.error);
    let heads = endpoint.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].contains("webhook-id: msg_test"), "{}", heads[0]);
    assert_eq!(client.client_certificate_clients(), 1);
    // A second delivery reuses the subscription's clients.
    let report = send_as(&client, &endpoint.url(), &subscription, Some(&certificate)).await;
    assert_eq!(status(&report), Some(204), "{:?}", report.error);
    assert_eq!(client.client_certificate_clients(), 1);
}

#[tokio::test]
async fn a_delivery_without_a_certificate_or_with_another_cas_fails_like_a_tls_failure() {
    let server_ca = TestCa::new("sink ca");
    let client_ca = TestCa::new("client ca");
    let other_ca = TestCa::new("other ca");
    let endpoint = TlsEndpoint::requiring(&server_ca, &client_ca).await;
    let client = client_trusting(&server_ca);
    // What an endpoint whose own certificate is not trusted produces: the existing TLS failure.
    let untrusted = client_trusting(&other_ca);
    let tls_failure = send_as(&untrusted, &endpoint.url(), &subscription_id(), None).await;
    let tls_class = failure_class(&tls_failure);
    assert!(tls_class.is_some(), "{:?}", tls_failure.result);
    let foreign = client_certificate(&other_ca, "stranger");
    for (case, certificate) in [("none", None), ("another ca's", Some(&foreign))] {
        let report = send_as(&client, &endpoint.url(), &subscription_id(), certificate).await;
        assert_eq!(
            failure_class(&report),
            tls_class,
            "{case}: {:?}",
            report.error
        );
        let error = report.error.unwrap_or_default();
        assert!(!error.contains("PRIVATE KEY"), "{case}: {error}");
    }
    assert!(endpoint.heads().is_empty(), "{:?}", endpoint.heads());
}

#[tokio::test]
async fn a_subscriptions_clients_follow_its_certificate_and_are_dropped_when_forgotten() {
    let server_ca = TestCa::new("sink ca");
    let client_ca = TestCa::new("client ca");
    let other_ca = TestCa::new("other ca");
    let endpoint = TlsEndpoint::requiring(&server_ca, &client_ca).await;
    let client = client_trusting(&server_ca);
    let subscription = subscription_id();
    let foreign = client_certificate(&other_ca, "stranger");
    let report = send_as(&client, &endpoint.url(), &subscription, Some(&foreign)).await;
    assert!(failure_class(&report).is_some(), "{:?}", report.result);
    // The certificate changed: the new one is used, and the old one's clients are gone.
    let trusted = client_certificate(&client_ca, "herald-client");
    let report = send_as(&client, &endpoint.url(), &subscription, Some(&trusted)).await;
    assert_eq!(status(&report), Some(204), "{:?}", report.error);
    assert_eq!(client.client_certificate_clients(), 1);
    let other_subscription = subscription_id();
    let report = send_as(
        &client,
        &endpoint.url(),
        &other_subscription,
        Some(&trusted),
    )
    .await;
    assert_eq!(status(&report), Some(204), "{:?}", report.error);
    assert_eq!(client.client_certificate_clients(), 2);
    client.forget_client_certificate(&subscription);
    client.forget_client_certificate(&other_subscription);
    assert_eq!(client.client_certificate_clients(), 0);
}

#[tokio::test]
async fn the_consent_handshake_presents_the_client_certificate() {
    let server_ca = TestCa::new("sink ca");
    let client_ca = TestCa::new("client ca");
    let endpoint = TlsEndpoint::requiring(&server_ca, &client_ca).await;
    let client = client_trusting(&server_ca);
    let subscription = subscription_id();
    let certificate = client_certificate(&client_ca, "herald-client");
    let handshake = HandshakeRequest {
        origin: "herald.example".to_owned(),
        callback: None,
        request_rate: None,
    };
    let outcome = client
        .handshake(
            &endpoint.url(),
            &handshake,
            &[],
            Some((&subscription, &certificate)),
        )
        .await;
    let HandshakeOutcome::Answered { status, .. } = outcome else {
        panic!("the handshake should be answered: {outcome:?}");
    };
    assert_eq!(status, 204);
    let outcome = client
        .handshake(&endpoint.url(), &handshake, &[], None)
        .await;
    assert!(
        matches!(outcome, HandshakeOutcome::Failed { .. }),
        "{outcome:?}"
    );
    let heads = endpoint.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].starts_with("OPTIONS /hook"), "{}", heads[0]);
}
