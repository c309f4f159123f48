//! Deliveries through the egress proxy (`dispatcher.egress_proxy`), against a real HTTP proxy
//! on loopback (`herald_test_support::TestProxy`) that records what it is asked to carry:
//! http sinks forwarded, https sinks tunnelled with TLS end to end, an `https://` proxy reached
//! over TLS, forbidden targets refused before the proxy hears of them, an unreachable proxy
//! named in the attempt's error.
//!
//! Nothing leaves loopback: Herald resolves names from a fixed table, the proxy from its own.

use herald_core::subscription::consent::{HandshakeOutcome, HandshakeRequest};
use herald_test_support::{TestCa, TestProxy, TestReceiver};

use super::super::resolver::Lookups;
use super::ssrf::TableLookups;
use super::*;
use crate::EgressProxy;

/// `Proxy-Authorization` for `herald:s3cret`.
const BASIC_HERALD_S3CRET: &str = "Basic aGVyYWxkOnMzY3JldA==";

fn config_through(proxy_url: &str) -> Config {
    Config {
        egress_proxy: Some(EgressProxy::new(proxy_url)),
        endpoint_ca_file: None,
        ..config()
    }
}

/// A client sending through `proxy_url`, resolving names with `lookups`.
fn client_through(
    proxy_url: &str,
    policy: NetworkPolicy,
    lookups: &Arc<TableLookups>,
) -> DeliveryClient {
    DeliveryClient::with_lookups(
        &config_through(proxy_url),
        policy,
        Arc::clone(lookups) as Arc<dyn Lookups>,
    )
    .unwrap()
}

/// `http://herald:s3cret@127.0.0.1:<port>`: the proxy with credentials.
fn with_credentials(proxy: &TestProxy) -> String {
    format!("http://herald:s3cret@127.0.0.1:{}", proxy.port())
}

#[tokio::test]
async fn an_http_delivery_goes_through_the_proxy_with_its_credentials() {
    let receiver = TestReceiver::start().await;
    let port = url::Url::parse(receiver.url()).unwrap().port().unwrap();
    let proxy = TestProxy::resolving(&[("sink.test", "127.0.0.1")]).await;
    let lookups = TableLookups::with(&[("sink.test", &["127.0.0.1"])]);
    let client = client_through(
        &with_credentials(&proxy),
        NetworkPolicy::new(true, false),
        &lookups,
    );
    let target = format!("http://sink.test:{port}/hook?token=q");
    let report = send(&client, &target).await;
    assert_eq!(status(&report), Some(200), "{:?}", report.error);
    let recorded = proxy.requests();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].target, target);
    assert_eq!(
        recorded[0].authorization.as_deref(),
        Some(BASIC_HERALD_S3CRET)
    );
    // The endpoint got the signed request, and none of the proxy's headers.
    let delivered = receiver.requests();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].header("webhook-id"), Some("msg_test"));
    assert_eq!(delivered[0].header("webhook-signature"), Some("v1,test"));
    assert_eq!(delivered[0].header("proxy-authorization"), None);
    assert_eq!(&delivered[0].body[..], b"{}");
    // Herald checked the name itself before sending.
    assert_eq!(lookups.asked(), vec!["sink.test".to_owned()]);
}

#[tokio::test]
async fn an_https_delivery_is_tunnelled_through_connect_with_tls_end_to_end() {
    let ca = TestCa::new("sink ca");
    let endpoint = TlsEndpoint::start(&ca).await;
    let proxy = TestProxy::resolving(&[("localhost", "127.0.0.1")]).await;
    let lookups = TableLookups::with(&[("localhost", &["127.0.0.1"])]);
    let client = DeliveryClient::trusting(
        &config_through(&with_credentials(&proxy)),
        NetworkPolicy::new(true, false),
        Arc::clone(&lookups) as Arc<dyn Lookups>,
        vec![reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()],
    )
    .unwrap();
    let target = format!("https://localhost:{}/hook", endpoint.port);
    let report = send(&client, &target).await;
    assert_eq!(status(&report), Some(204), "{:?}", report.error);
    let recorded = proxy.requests();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].method, "CONNECT");
    assert_eq!(recorded[0].target, format!("localhost:{}", endpoint.port));
    assert_eq!(
        recorded[0].authorization.as_deref(),
        Some(BASIC_HERALD_S3CRET)
    );
    // The endpoint read the signed request inside TLS it terminated itself.
    let heads = endpoint.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].starts_with("POST /hook HTTP/1.1"), "{}", heads[0]);
    assert!(heads[0].contains("webhook-id: msg_test"), "{}", heads[0]);
    assert!(
        !heads[0]
            .to_ascii_lowercase()
            .contains("proxy-authorization")
    );
}

#[tokio::test]
async fn an_https_proxy_is_reached_over_tls_for_http_and_https_sinks() {
    let ca = TestCa::new("proxy and sink ca");
    let endpoint = TlsEndpoint::start(&ca).await;
    let receiver = TestReceiver::start().await;
    let http_port = url::Url::parse(receiver.url()).unwrap().port().unwrap();
    let proxy = TestProxy::tls(
        &ca,
        &[("localhost", "127.0.0.1"), ("sink.test", "127.0.0.1")],
    )
    .await;
    let lookups =
        TableLookups::with(&[("localhost", &["127.0.0.1"]), ("sink.test", &["127.0.0.1"])]);
    let proxy_url = format!("https://herald:s3cret@127.0.0.1:{}", proxy.port());
    let client = DeliveryClient::trusting(
        &config_through(&proxy_url),
        NetworkPolicy::new(true, false),
        Arc::clone(&lookups) as Arc<dyn Lookups>,
        vec![reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()],
    )
    .unwrap();

    // An http sink: the absolute-form request, its credentials and the signed body travel
    // inside TLS to the proxy, which forwards it.
    let http_target = format!("http://sink.test:{http_port}/hook?token=q");
    let report = send(&client, &http_target).await;
    assert_eq!(status(&report), Some(200), "{:?}", report.error);
    // An https sink: CONNECT inside TLS to the proxy, then TLS with the endpoint in the tunnel.
    let https_target = format!("https://localhost:{}/hook", endpoint.port);
    let report = send(&client, &https_target).await;
    assert_eq!(status(&report), Some(204), "{:?}", report.error);

    let recorded = proxy.requests();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(
        (recorded[0].method.as_str(), recorded[0].target.as_str()),
        ("POST", http_target.as_str())
    );
    assert_eq!(recorded[1].method, "CONNECT");
    assert_eq!(recorded[1].target, format!("localhost:{}", endpoint.port));
    for request in &recorded {
        assert_eq!(request.authorization.as_deref(), Some(BASIC_HERALD_S3CRET));
    }
    assert_eq!(
        receiver.requests()[0].header("webhook-id"),
        Some("msg_test")
    );
    let heads = endpoint.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].starts_with("POST /hook HTTP/1.1"), "{}", heads[0]);
}

#[tokio::test]
async fn an_https_proxy_whose_certificate_herald_does_not_trust_is_a_connect_failure() {
    let proxy_ca = TestCa::new("someone else's ca");
    let receiver = TestReceiver::start().await;
    let proxy = TestProxy::tls(&proxy_ca, &[]).await;
    let lookups = TableLookups::with(&[]);
    let client = DeliveryClient::trusting(
        &config_through(&format!("https://127.0.0.1:{}", proxy.port())),
        NetworkPolicy::new(true, false),
        Arc::clone(&lookups) as Arc<dyn Lookups>,
        vec![reqwest::Certificate::from_pem(TestCa::new("herald's ca").pem.as_bytes()).unwrap()],
    )
    .unwrap();
    let report = send(&client, receiver.url()).await;
    assert!(status(&report).is_none(), "{:?}", report.error);
    assert_eq!(report.result.class_label(), "connect", "{:?}", report.error);
    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|error| error.contains(&format!("127.0.0.1:{}", proxy.port()))),
        "{:?}",
        report.error
    );
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
    assert_eq!(receiver.count(), 0);
}

#[tokio::test]
async fn targets_the_policy_forbids_are_refused_before_the_proxy_hears_of_them() {
    let proxy = TestProxy::start().await;
    let lookups = TableLookups::with(&[
        ("internal.test", &["10.0.0.1"]),
        ("linklocal.test", &["169.254.1.1"]),
        ("mixed.test", &["93.184.215.14", "10.0.0.1"]),
    ]);
    // Loopback is allowed (the proxy is on it); private and link-local ranges are not.
    let client = client_through(&proxy.url(), NetworkPolicy::new(true, false), &lookups);
    let cases = [
        (
            "http://internal.test/hook",
            "internal.test resolves only to addresses the network policy denies \
             (private-network)",
        ),
        (
            "https://linklocal.test/hook",
            "linklocal.test resolves only to addresses the network policy denies (link-local)",
        ),
        (
            "http://mixed.test/hook",
            "mixed.test resolves to addresses the network policy denies (private-network) \
             among others",
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            "cloud metadata addresses are not allowed as delivery targets",
        ),
        (
            "https://[::ffff:10.0.0.1]/hook",
            "private-network addresses are not allowed as delivery targets",
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            "cloud metadata addresses are not allowed as delivery targets",
        ),
    ];
    for (target, expected) in cases {
        let report = send(&client, target).await;
        assert_eq!(
            failure_class(&report),
            Some(FailureClass::DeniedAddress),
            "{target}: {:?}",
            report.error
        );
        let error = report.error.unwrap_or_default();
        assert!(error.contains(expected), "{target}: {error}");
    }
    // The consent handshake is refused the same way.
    let handshake = HandshakeRequest {
        origin: "herald.example".to_owned(),
        callback: None,
        request_rate: None,
    };
    let url = url::Url::parse("http://internal.test/hook").unwrap();
    let HandshakeOutcome::Failed { error } = client.handshake(&url, &handshake, &[], None).await
    else {
        panic!("the handshake to internal.test should be refused");
    };
    assert!(error.contains("resolves only to addresses"), "{error}");
    assert_eq!(proxy.requests(), Vec::new());
    assert_eq!(client.proxy_failures.get(), 0);
}

#[tokio::test]
async fn a_name_herald_cannot_resolve_is_a_dns_failure_and_never_sent() {
    let proxy = TestProxy::start().await;
    let lookups = TableLookups::with(&[]);
    let client = client_through(&proxy.url(), NetworkPolicy::new(true, false), &lookups);
    let report = send(&client, "http://unknown.test/hook").await;
    assert_eq!(failure_class(&report), Some(FailureClass::Dns));
    let error = report.error.unwrap_or_default();
    assert!(error.contains("failed to lookup unknown.test"), "{error}");
    assert_eq!(proxy.requests(), Vec::new());
}

#[tokio::test]
async fn the_proxys_own_address_is_exempt_from_the_policy_and_it_resolves_targets_again() {
    // The policy refuses loopback, where the proxy is, named `proxy.test`: the operator chose
    // it. The proxy's DNS says otherwise than Herald's about the target: what the proxy then
    // reaches is its access control's business (ARCHITECTURE.md, SSRF paragraph).
    let receiver = TestReceiver::start().await;
    let port = url::Url::parse(receiver.url()).unwrap().port().unwrap();
    let proxy = TestProxy::resolving(&[("sink.test", "127.0.0.1")]).await;
    let lookups = TableLookups::with(&[
        ("proxy.test", &["127.0.0.1"]),
        ("sink.test", &["93.184.215.14"]),
    ]);
    let proxy_url = format!("http://proxy.test:{}", proxy.port());
    let client = client_through(&proxy_url, NetworkPolicy::public_only(), &lookups);
    let target = format!("http://sink.test:{port}/hook");
    let report = send(&client, &target).await;
    assert_eq!(status(&report), Some(200), "{:?}", report.error);
    assert_eq!(proxy.targets(), vec![target]);
    assert_eq!(receiver.count(), 1);
    let mut asked = lookups.asked();
    asked.sort();
    assert_eq!(asked, vec!["proxy.test".to_owned(), "sink.test".to_owned()]);
}

#[tokio::test]
async fn an_unreachable_proxy_fails_the_attempt_as_a_connect_failure_naming_the_proxy() {
    let port = closed_port().await;
    let lookups = TableLookups::with(&[("sink.test", &["127.0.0.1"])]);
    let proxy_url = format!("http://herald:s3cret@127.0.0.1:{port}");
    let client = client_through(&proxy_url, NetworkPolicy::new(true, false), &lookups);
    for target in [
        "http://sink.test/hook?token=q5ecret",
        "https://sink.test/hook",
    ] {
        let report = send(&client, target).await;
        assert_eq!(
            failure_class(&report),
            Some(FailureClass::Connect),
            "{target}: {:?}",
            report.error
        );
        let error = report.error.unwrap_or_default();
        let expected = format!("failed to reach the egress proxy 127.0.0.1:{port}: ");
        assert!(error.starts_with(&expected), "{target}: {error}");
        assert!(error.contains("Connection refused"), "{target}: {error}");
        assert!(!error.contains("s3cret"), "{target}: {error}");
        assert!(!error.contains("q5ecret"), "{target}: {error}");
        assert!(!error.contains("herald"), "{target}: {error}");
    }
    let handshake = HandshakeRequest {
        origin: "herald.example".to_owned(),
        callback: None,
        request_rate: None,
    };
    let url = url::Url::parse("https://sink.test/hook").unwrap();
    let HandshakeOutcome::Failed { error } = client.handshake(&url, &handshake, &[], None).await
    else {
        panic!("the handshake through an unreachable proxy should fail");
    };
    assert!(
        error.starts_with("failed to reach the egress proxy"),
        "{error}"
    );
    assert_eq!(client.proxy_failures.get(), 3);
}

#[tokio::test]
async fn a_tunnel_the_proxy_refuses_is_a_connect_failure_naming_the_proxy() {
    // The proxy answers CONNECT with 502: nothing listens where it was asked to go.
    let proxy = TestProxy::start().await;
    let port = closed_port().await;
    let lookups = TableLookups::with(&[("localhost", &["127.0.0.1"])]);
    let client = client_through(&proxy.url(), NetworkPolicy::new(true, false), &lookups);
    let target = format!("https://localhost:{port}/hook");
    let report = send(&client, &target).await;
    assert_eq!(failure_class(&report), Some(FailureClass::Connect));
    let error = report.error.unwrap_or_default();
    let expected = format!(
        "the egress proxy 127.0.0.1:{} refused to open a tunnel to the endpoint",
        proxy.port()
    );
    assert!(error.starts_with(&expected), "{error}");
    assert_eq!(proxy.targets(), vec![format!("localhost:{port}")]);
    assert_eq!(client.proxy_failures.get(), 1);
}

#[tokio::test]
async fn a_proxy_that_wants_other_credentials_is_named_in_the_error() {
    let proxy = TestProxy::requiring("Basic b3RoZXI6Y3JlZGVudGlhbHM=").await;
    let lookups = TableLookups::with(&[("localhost", &["127.0.0.1"])]);
    let client = client_through(
        &with_credentials(&proxy),
        NetworkPolicy::new(true, false),
        &lookups,
    );
    // An https sink: the proxy refuses the tunnel, which is the proxy's failure.
    let report = send(&client, "https://localhost:9/hook").await;
    assert_eq!(failure_class(&report), Some(FailureClass::Connect));
    let error = report.error.unwrap_or_default();
    let expected = format!(
        "the egress proxy 127.0.0.1:{} asked for credentials (407)",
        proxy.port()
    );
    assert!(error.starts_with(&expected), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
    // An http sink: the proxy's answer is the attempt's response, as any answer is.
    let report = send(&client, "http://localhost:9/hook").await;
    assert_eq!(status(&report), Some(407), "{:?}", report.error);
    assert_eq!(proxy.requests().len(), 2);
    assert_eq!(client.proxy_failures.get(), 1);
}

#[tokio::test]
async fn an_invalid_proxy_setting_builds_no_client() {
    let Err(err) = DeliveryClient::new(
        &config_through("socks5://herald:s3cret@proxy.internal:1080"),
        NetworkPolicy::public_only(),
    ) else {
        panic!("a socks proxy should be refused");
    };
    let text = err.to_string();
    assert!(text.contains("dispatcher.egress_proxy"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
