//! Client certificates (mutual TLS) against a real HTTPS endpoint on loopback that requires a
//! client certificate issued by its own CA: the right certificate gets the delivery and the
//! consent handshake through, none or another CA's fails the attempt like any TLS failure, and
//! each subscription's clients are kept for its certificate only.

use std::sync::Mutex;

use herald_core::SubscriptionId;
use herald_core::subscription::ClientCertificate;
use herald_core::subscription::consent::{HandshakeOutcome, HandshakeRequest};
use herald_test_support::TestCa;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::super::resolver::Lookups;
use super::ssrf::TableLookups;
use super::*;

/// An HTTPS endpoint for `localhost` that accepts only clients with a certificate of
/// `client_ca`; records the head of every request and answers 204.
struct MtlsEndpoint {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl MtlsEndpoint {
    async fn start(server_ca: &TestCa, client_ca: &TestCa) -> MtlsEndpoint {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (certificate, key) = server_ca.issue("sink");
        let chain = CertificateDer::pem_slice_iter(certificate.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(client_ca.pem.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let tls = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut buffer = Vec::new();
                    while let Some(length) = read_request(&mut stream, &mut buffer).await {
                        let head = String::from_utf8_lossy(&buffer[..length]).into_owned();
                        recorded.lock().unwrap().push(head);
                        buffer.drain(..length);
                        let response = b"HTTP/1.1 204 No Content\r\n\r\n";
                        if stream.write_all(response).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        MtlsEndpoint { port, heads }
    }

    fn url(&self) -> url::Url {
        url::Url::parse(&format!("https://localhost:{}/hook", self.port)).unwrap()
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

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
    let request = SignedRequest {
        url,
        body: bytes::Bytes::from_static(b"{}"),
        content_type: Some(herald_core::event::STRUCTURED_CONTENT_TYPE.into()),
        headers: [
            ("webhook-id", "msg_test".to_owned()),
            ("webhook-timestamp", "0".to_owned()),
            ("webhook-signature", "v1,test".to_owned()),
        ],
        event_headers: Vec::new(),
        trace: None,
        origin: None,
        custom_headers: Vec::new(),
        client_certificate: None,
    }
    .with_client_certificate(subscription, certificate);
    client.send(request).await
}

#[tokio::test]
async fn a_delivery_with_the_client_certificate_the_endpoint_trusts_gets_through() {
    let server_ca = TestCa::new("sink ca");
    let client_ca = TestCa::new("client ca");
    let endpoint = MtlsEndpoint::start(&server_ca, &client_ca).await;
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
    let endpoint = MtlsEndpoint::start(&server_ca, &client_ca).await;
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
    let endpoint = MtlsEndpoint::start(&server_ca, &client_ca).await;
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
    let endpoint = MtlsEndpoint::start(&server_ca, &client_ca).await;
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
