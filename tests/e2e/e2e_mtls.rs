//! Client certificates per subscription (mutual TLS, issue 12): an https endpoint on loopback
//! (`herald_test_support::TlsReceiver`) that accepts only clients with a certificate of its own
//! CA, its server certificate signed by a CA the dispatcher trusts through
//! `dispatcher.endpoint_ca_file`. A subscription with a certificate of that CA is delivered to
//! on connections presenting exactly that certificate; one without a certificate is refused at
//! the handshake, which its attempt log records as a `connect` failure; a renewed certificate
//! is presented from the next delivery on, and a removed one no longer; the private key is in
//! no answer and not in plain text in the stored document; a certificate on an http sink is
//! refused naming the field.

use std::time::Duration;

use herald_core::SubscriptionId;
use herald_nats::AttemptQuery;
use herald_proto::v1 as pb;
use herald_test_support::{TestCa, TlsReceiver, TlsRecorded, eventually};

use crate::e2e_security::SealedCluster;

/// Publishes events named `prefix-n` until one reaches the endpoint on a connection whose
/// client certificate `accept`s; returns that request.
async fn deliver_until(
    cluster: &SealedCluster,
    endpoint: &TlsReceiver,
    prefix: &str,
    accept: impl Fn(Option<&str>) -> bool,
) -> TlsRecorded {
    cluster
        .publish_until(prefix, || {
            endpoint.requests().into_iter().find(|recorded| {
                let id = serde_json::from_slice::<serde_json::Value>(&recorded.body)
                    .ok()
                    .and_then(|event| event["id"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                id.starts_with(prefix) && accept(recorded.client_fingerprint.as_deref())
            })
        })
        .await
}

async fn attempts_of(cluster: &SealedCluster, id: &str) -> Vec<herald_core::record::AttemptRecord> {
    let query = AttemptQuery {
        subscription_id: Some(SubscriptionId::parse(id).unwrap()),
        limit: 100,
        ..AttemptQuery::default()
    };
    cluster
        .nats
        .records()
        .attempts(&query)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|(_, attempt)| attempt)
        .collect()
}

fn client_certificate(certificate: &str, key: &str) -> pb::ClientCertificate {
    pb::ClientCertificate {
        certificate: certificate.to_owned(),
        key: key.to_owned(),
    }
}

#[tokio::test]
async fn a_subscriptions_client_certificate_opens_an_endpoint_that_requires_one() {
    let endpoint_ca = TestCa::new("endpoint-ca");
    let client_ca = TestCa::new("client-ca");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("endpoint-ca.pem");
    std::fs::write(&ca_file, &endpoint_ca.pem).unwrap();
    let mut config = crate::cluster::dispatcher_config();
    config.endpoint_ca_file = Some(ca_file);
    let cluster = SealedCluster::start_with(config).await;
    let endpoint = TlsReceiver::start(&endpoint_ca, Some(&client_ca)).await;
    let (certificate, key) = client_ca.issue("herald-client");
    // A line of the key's base64: nothing Herald answers or stores in the clear may hold it.
    let key_line = key.lines().nth(1).unwrap().to_owned();

    let created = cluster
        .control
        .clone()
        .create_subscription(pb::CreateSubscriptionRequest {
            sink: endpoint.url().to_owned(),
            filters: vec![crate::cluster::exact_type("com.example.secure")],
            client_certificate: Some(client_certificate(&certificate, &key)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let info = created.client_certificate.clone().unwrap();
    assert_eq!(info.subject, "CN=herald-client");
    let got = cluster.get(&created.id).await;
    assert_eq!(got.client_certificate, Some(info.clone()));
    let answers = format!("{created:?} {got:?}");
    assert!(
        !answers.contains(&key_line),
        "an answer shows the key: {answers}"
    );
    let stored = cluster.stored(&created.id).await;
    assert!(stored.contains(&info.fingerprint_sha256), "{stored}");
    assert!(
        !stored.contains(&key_line),
        "the key is stored in plain text: {stored}"
    );
    assert!(!stored.contains("PRIVATE KEY"), "{stored}");

    // Delivered on a connection presenting exactly the subscription's certificate.
    let delivered = deliver_until(&cluster, &endpoint, "mtls", |fingerprint| {
        fingerprint.is_some()
    })
    .await;
    assert_eq!(
        delivered.client_fingerprint.as_deref(),
        Some(info.fingerprint_sha256.as_str())
    );
    assert_eq!(delivered.path, "/hook");

    // A subscription to the same endpoint without a certificate is refused at the handshake:
    // nothing of it arrives, and its attempts fail as `connect`, like any TLS failure.
    let bare = cluster
        .control
        .clone()
        .create_subscription(pb::CreateSubscriptionRequest {
            sink: endpoint.url().to_owned(),
            filters: vec![crate::cluster::exact_type("com.example.secure")],
            consent: pb::ConsentMode::Off as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let refused_before = endpoint.refused_handshakes();
    let failed = eventually(
        "a failed attempt of the subscription without a certificate",
        Duration::from_secs(60),
        || async {
            cluster
                .publish(&format!("bare-{}", endpoint.requests().len()))
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            attempts_of(&cluster, &bare.id)
                .await
                .into_iter()
                .find(|attempt| attempt.result_class != "success")
        },
    )
    .await;
    assert_eq!(failed.result_class, "connect", "{failed:?}");
    assert!(endpoint.refused_handshakes() > refused_before);
    assert!(
        endpoint
            .requests()
            .iter()
            .all(|recorded| recorded.client_fingerprint.as_deref()
                == Some(info.fingerprint_sha256.as_str())),
        "a request arrived without the certificate"
    );

    // A renewed certificate is presented from the next delivery on.
    let (renewed, renewed_key) = client_ca.issue("herald-client-renewed");
    let updated = cluster
        .control
        .clone()
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            set_client_certificate: Some(client_certificate(&renewed, &renewed_key)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let renewed_info = updated.client_certificate.unwrap();
    assert_eq!(renewed_info.subject, "CN=herald-client-renewed");
    assert_ne!(renewed_info.fingerprint_sha256, info.fingerprint_sha256);
    deliver_until(&cluster, &endpoint, "renewed", |fingerprint| {
        fingerprint == Some(renewed_info.fingerprint_sha256.as_str())
    })
    .await;

    // Removed: the subscription presents none, so the endpoint lets nothing of it in.
    let removed = cluster
        .control
        .clone()
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            remove_client_certificate: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.client_certificate, None);
    assert!(
        !cluster
            .stored(&created.id)
            .await
            .contains("client_certificate")
    );

    // A certificate on an http sink, where it would never be sent, is refused naming the
    // field; so is a key that is not the certificate's, without quoting it.
    for (sink, given, field) in [
        (
            "http://127.0.0.1:9/hook".to_owned(),
            client_certificate(&certificate, &key),
            "client_certificate",
        ),
        (
            endpoint.url().to_owned(),
            client_certificate(&certificate, &renewed_key),
            "client_certificate.key",
        ),
    ] {
        let status = cluster
            .control
            .clone()
            .create_subscription(pb::CreateSubscriptionRequest {
                sink,
                client_certificate: Some(given),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{status:?}"
        );
        assert!(!status.message().contains(&key_line), "{status:?}");
    }
}
