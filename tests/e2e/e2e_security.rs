//! Security end to end: secrets sealed at rest while every role delivers with them, custom
//! headers (sent with deliveries and test sends, sealed at rest, named but never shown), secret
//! rotation (both signatures during the overlap, one after, checked by the `standardwebhooks`
//! Python package), and `v1a` (ed25519) signatures checked with the published public key by
//! OpenSSL, an implementation that shares nothing with Herald's.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use herald_core::SubscriptionId;
use herald_core::network::NetworkPolicy;
use herald_nats::Nats;
use herald_proto::v1 as pb;
use herald_proto::v1::subscription_service_client::SubscriptionServiceClient;
use herald_signing::kek::{Kek, Keyring};
use herald_test_support::{NatsServer, Recorded, TestReceiver, eventually, structured_event};

/// Control, dispatcher and a NATS connection whose subscription store seals secrets.
pub(crate) struct SealedCluster {
    _nats_server: NatsServer,
    address: std::net::SocketAddr,
    pub(crate) nats: Nats,
    pub(crate) control: SubscriptionServiceClient<tonic::transport::Channel>,
    stop: CancellationToken,
}

impl SealedCluster {
    pub(crate) async fn start() -> SealedCluster {
        SealedCluster::start_with(crate::cluster::dispatcher_config()).await
    }

    /// Starts one whose dispatcher uses `dispatcher_config`.
    pub(crate) async fn start_with(dispatcher_config: herald_dispatcher::Config) -> SealedCluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nats_server = NatsServer::start().await;
        let keyring = Keyring::new(vec![Kek::new("e2e", [42; 32]).unwrap()]).unwrap();
        let nats = Nats::connect(&herald_test_support::nats_config(&nats_server.url()))
            .await
            .unwrap()
            .with_keyring(keyring);
        let registry = prometheus::Registry::new();
        let stop = CancellationToken::new();
        let control_config = herald_control::Config {
            auth: herald_control::AuthConfig {
                disabled: true,
                api_tokens: Vec::new(),
            },
        };
        let control = Box::pin(herald_control::build(
            Arc::new(control_config),
            nats.clone(),
            NetworkPolicy::new(true, true),
            &registry,
        ))
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(control.run(listener, stop.clone()));
        let dispatcher = herald_dispatcher::build(
            Arc::new(dispatcher_config),
            nats.clone(),
            NetworkPolicy::new(true, true),
            &prometheus::Registry::new(),
        )
        .unwrap();
        let token = stop.clone();
        tokio::spawn(async move { Box::pin(dispatcher.run(token)).await });
        let control = SubscriptionServiceClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        SealedCluster {
            _nats_server: nats_server,
            address,
            nats,
            control,
            stop,
        }
    }

    async fn create(&self, sink: &str, scheme: pb::SignatureScheme) -> pb::Subscription {
        // A v1a subscription is created with its signing key, as `heraldctl sub create
        // --scheme v1a` does.
        let secret = match scheme {
            pb::SignatureScheme::V1a => herald_signing::Key::generate(herald_signing::Scheme::V1a)
                .unwrap()
                .to_text(),
            _ => String::new(),
        };
        let request = pb::CreateSubscriptionRequest {
            sink: sink.to_owned(),
            filters: vec![crate::cluster::exact_type("com.example.secure")],
            secret,
            ..Default::default()
        };
        self.control
            .clone()
            .create_subscription(request)
            .await
            .unwrap()
            .into_inner()
    }

    async fn rotate(&self, id: &str, overlap: Duration) -> pb::Subscription {
        self.rotate_to(id, overlap, pb::SignatureScheme::Unspecified)
            .await
    }

    async fn rotate_to(
        &self,
        id: &str,
        overlap: Duration,
        scheme: pb::SignatureScheme,
    ) -> pb::Subscription {
        let request = pb::RotateSecretRequest {
            id: id.to_owned(),
            overlap: Some(herald_proto::duration_to_pb(overlap)),
            signature_scheme: scheme as i32,
            ..Default::default()
        };
        self.control
            .clone()
            .rotate_secret(request)
            .await
            .unwrap()
            .into_inner()
    }

    pub(crate) async fn get(&self, id: &str) -> pb::Subscription {
        let request = pb::GetSubscriptionRequest { id: id.to_owned() };
        self.control
            .clone()
            .get_subscription(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// Publishes an event straight onto the events stream, as ingest would.
    pub(crate) async fn publish(&self, id: &str) {
        let body = structured_event(id, "com.example.secure");
        let event = herald_core::Event::from_structured(body.into()).unwrap();
        self.nats.publisher().publish(&event).await.unwrap();
    }

    /// Publishes events `prefix-1`, `prefix-2`, ... (one each 300 ms) until `found` finds what
    /// it waits for, which it returns; panics after 60 s.
    pub(crate) async fn publish_until<T>(&self, prefix: &str, found: impl Fn() -> Option<T>) -> T {
        let sent = std::sync::atomic::AtomicUsize::new(0);
        let found = &found;
        eventually(
            &format!("a delivery of {prefix}"),
            Duration::from_secs(60),
            || {
                let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                async move {
                    self.publish(&format!("{prefix}-{n}")).await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    found()
                }
            },
        )
        .await
    }

    /// Returns the subscription's document as stored in the bucket.
    pub(crate) async fn stored(&self, id: &str) -> String {
        let store = self.nats.subscriptions().await.unwrap();
        let id = SubscriptionId::parse(id).unwrap();
        let bytes = store.stored_document(&id).await.unwrap().unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

impl Drop for SealedCluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Checks a delivery with the `standardwebhooks` Python package and `secret`; true when it
/// accepts one of the signatures.
async fn python_verifies(recorded: &Recorded, secret: &str) -> bool {
    const SCRIPT: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
request = json.load(sys.stdin)
try:
    Webhook(request["secret"]).verify(request["body"], request["headers"])
    print("verified")
except Exception as err:
    print("refused:", type(err).__name__, err)
"#;
    let body = String::from_utf8(recorded.body.to_vec()).unwrap();
    let stdout = crate::run_standardwebhooks_py(SCRIPT, recorded, secret, body).await;
    stdout.trim() == "verified"
}

/// Verifies the `v1a` signatures of a delivery with OpenSSL and the published `whpk_` key;
/// true when one verifies.
async fn openssl_verifies(recorded: &Recorded, public_key: &str) -> bool {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let key = herald_signing::PublicKey::parse(public_key).unwrap();
    // SubjectPublicKeyInfo of an ed25519 key: a fixed prefix, then the 32 bytes.
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(key.as_bytes());
    let content = format!(
        "{}.{}.{}",
        recorded.header("webhook-id").unwrap(),
        recorded.header("webhook-timestamp").unwrap(),
        String::from_utf8(recorded.body.to_vec()).unwrap()
    );
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("herald-e2e-v1a-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let key_path = write("key.der", &der);
    let content_path = write("content", content.as_bytes());
    let openssl = |args: Vec<std::ffi::OsString>| async move {
        tokio::process::Command::new("openssl")
            .args(args)
            .output()
            .await
            .expect("openssl should run (apt-get install openssl)")
    };
    let mut verified = false;
    let signatures = recorded.header("webhook-signature").unwrap_or_default();
    for signature in signatures.split(' ') {
        let Some(encoded) = signature.strip_prefix("v1a,") else {
            continue;
        };
        let encoded_path = write("signature.b64", encoded.as_bytes());
        let signature_path = dir.join("signature");
        let decoded = openssl(vec![
            "base64".into(),
            "-d".into(),
            "-A".into(),
            "-in".into(),
            encoded_path.into(),
            "-out".into(),
            signature_path.clone().into(),
        ])
        .await;
        assert!(decoded.status.success(), "{decoded:?}");
        let output = openssl(vec![
            "pkeyutl".into(),
            "-verify".into(),
            "-pubin".into(),
            "-keyform".into(),
            "DER".into(),
            "-rawin".into(),
            "-inkey".into(),
            key_path.clone().into(),
            "-in".into(),
            content_path.clone().into(),
            "-sigfile".into(),
            signature_path.into(),
        ])
        .await;
        verified |= output.status.success();
    }
    let _ = std::fs::remove_dir_all(&dir);
    verified
}

/// Publishes events `<prefix>-1`, `<prefix>-2`, ... until one is delivered and `accept`s:
/// a dispatcher applies a change moments after it is stored, so the first events after it may
/// still be signed as before.
async fn deliver_until(
    cluster: &SealedCluster,
    receiver: &TestReceiver,
    prefix: &str,
    accept: impl Fn(&Recorded) -> bool,
) -> Recorded {
    cluster
        .publish_until(prefix, || {
            receiver.requests().into_iter().find(|recorded| {
                recorded.json()["id"]
                    .as_str()
                    .is_some_and(|delivered| delivered.starts_with(prefix))
                    && accept(recorded)
            })
        })
        .await
}

fn signature_count(recorded: &Recorded) -> usize {
    recorded
        .header("webhook-signature")
        .unwrap_or_default()
        .split(' ')
        .count()
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_during_the_overlap_and_with_the_new_one_after() {
    let cluster = SealedCluster::start().await;
    let receiver = TestReceiver::start().await;
    let created = cluster
        .create(receiver.url(), pb::SignatureScheme::Unspecified)
        .await;
    let first = created.secret.clone();
    let rotated = cluster.rotate(&created.id, Duration::from_secs(3600)).await;
    let second = rotated.secret.clone();
    assert!(second.starts_with("whsec_") && second != first);
    assert_eq!(rotated.retired_secrets.len(), 1);
    // Both secrets are stored sealed.
    let stored = cluster.stored(&created.id).await;
    for secret in [&first, &second] {
        assert!(
            !stored.contains(&secret[6..]),
            "a secret is stored in clear: {stored}"
        );
    }
    // Answers other than the rotation's carry no secret.
    let read = cluster.get(&created.id).await;
    assert!(read.secret.is_empty());
    assert_eq!(read.retired_secrets.len(), 1);
    assert!(read.retired_secrets[0].expire_time.is_some());

    // During the overlap: two signatures, each secret verifies on its own.
    let during = deliver_until(&cluster, &receiver, "during", |r| signature_count(r) == 2).await;
    assert!(
        python_verifies(&during, &first).await,
        "the old secret verifies"
    );
    assert!(
        python_verifies(&during, &second).await,
        "the new secret verifies"
    );
    assert!(
        !python_verifies(&during, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").await,
        "an unrelated secret does not"
    );

    // After an overlap: a second rotation with 2 s of overlap signs with three secrets, then,
    // once those 2 s are over, with the third and the first (whose hour still runs) only.
    let third = cluster
        .rotate(&created.id, Duration::from_secs(2))
        .await
        .secret;
    let after = deliver_until(&cluster, &receiver, "after", |r| {
        signature_count(r) == 2
            && r.header("webhook-signature") != during.header("webhook-signature")
    })
    .await;
    assert!(python_verifies(&after, &third).await);
    assert!(python_verifies(&after, &first).await);
    assert!(
        !python_verifies(&after, &second).await,
        "its overlap has ended"
    );

    // Without an overlap, the replaced secret stops signing at once.
    let fourth = cluster.rotate(&created.id, Duration::ZERO).await.secret;
    let last = deliver_until(&cluster, &receiver, "last", |r| {
        signature_count(r) == 2 && !python_ok(&third, r)
    })
    .await;
    assert!(python_verifies(&last, &fourth).await);
    assert!(
        !python_verifies(&last, &third).await,
        "rotated out without overlap"
    );
}

/// The signature check of `herald-signing`, to pick deliveries out without a process each.
fn python_ok(secret: &str, recorded: &Recorded) -> bool {
    let secret = herald_signing::Secret::parse(secret).unwrap();
    herald_signing::verify(
        &secret,
        recorded.header("webhook-id").unwrap_or_default(),
        recorded.header("webhook-timestamp").unwrap_or_default(),
        recorded.header("webhook-signature").unwrap_or_default(),
        &recorded.body,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        herald_signing::DEFAULT_TOLERANCE_SECS,
    )
    .is_ok()
}

#[tokio::test]
async fn v1a_subscriptions_sign_with_ed25519_verified_by_openssl_with_the_published_key() {
    let cluster = SealedCluster::start().await;
    let receiver = TestReceiver::start().await;
    let created = cluster
        .create(receiver.url(), pb::SignatureScheme::V1a)
        .await;
    assert!(created.secret.starts_with("whsk_"), "{}", created.secret);
    assert_eq!(created.signature_scheme(), pb::SignatureScheme::V1a);
    // The public key is published in every answer; the signing key only at creation.
    let read = cluster.get(&created.id).await;
    assert!(read.secret.is_empty());
    assert!(read.public_key.starts_with("whpk_"));
    assert_eq!(read.public_key, created.public_key);
    let stored = cluster.stored(&created.id).await;
    assert!(
        !stored.contains(&created.secret[5..]),
        "signing key in clear: {stored}"
    );

    cluster.publish("asymmetric-1").await;
    let delivered = receiver.wait_for(1, Duration::from_secs(20)).await;
    let signature = delivered[0].header("webhook-signature").unwrap();
    assert!(
        signature.starts_with("v1a,") && !signature.contains(' '),
        "{signature}"
    );
    assert!(openssl_verifies(&delivered[0], &read.public_key).await);
    let other = herald_signing::SigningKey::generate()
        .unwrap()
        .public_key()
        .to_whpk();
    assert!(
        !openssl_verifies(&delivered[0], &other).await,
        "another key does not verify"
    );
    assert!(!python_verifies(&delivered[0], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").await);

    // Moving to v1 with an overlap: both schemes sign, each verifiable on its own.
    let rotated = cluster
        .rotate_to(
            &created.id,
            Duration::from_secs(3600),
            pb::SignatureScheme::V1,
        )
        .await;
    assert!(rotated.secret.starts_with("whsec_"));
    assert!(rotated.public_key.is_empty());
    assert_eq!(rotated.retired_secrets[0].public_key, read.public_key);
    let both = deliver_until(&cluster, &receiver, "both", |r| signature_count(r) == 2).await;
    assert!(openssl_verifies(&both, &read.public_key).await);
    assert!(python_verifies(&both, &rotated.secret).await);
}

#[tokio::test]
async fn rotation_refuses_bad_requests_naming_the_field() {
    let cluster = SealedCluster::start().await;
    let created = cluster
        .create("http://127.0.0.1:9/", pb::SignatureScheme::Unspecified)
        .await;
    let mut control = cluster.control.clone();
    let cases = [
        (
            pb::RotateSecretRequest {
                id: created.id.clone(),
                overlap: Some(herald_proto::duration_to_pb(Duration::from_secs(
                    31 * 86_400,
                ))),
                ..Default::default()
            },
            "overlap",
        ),
        (
            pb::RotateSecretRequest {
                id: created.id.clone(),
                secret: created.secret.clone(),
                ..Default::default()
            },
            "secret",
        ),
        (
            pb::RotateSecretRequest {
                id: created.id.clone(),
                secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
                signature_scheme: pb::SignatureScheme::V1a as i32,
                ..Default::default()
            },
            "signature_scheme",
        ),
        (
            pb::RotateSecretRequest {
                id: created.id.clone(),
                secret: "whsec_short".to_owned(),
                ..Default::default()
            },
            "secret",
        ),
    ];
    for (request, field) in cases {
        let status = control.rotate_secret(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{status:?}"
        );
        assert!(!status.message().contains(&created.secret[6..]));
    }
    let missing = control
        .rotate_secret(pb::RotateSecretRequest {
            id: "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

/// Returns whether any file of the nats-server's store (every stream and bucket) holds `needle`.
pub(crate) fn on_disk(data_dir: &std::path::Path, needle: &str) -> bool {
    fn walk(path: &std::path::Path, needle: &[u8]) -> bool {
        if path.is_dir() {
            return std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .any(|entry| walk(&entry.path(), needle));
        }
        std::fs::read(path)
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|window| window == needle))
    }
    walk(data_dir, needle.as_bytes())
}

#[tokio::test]
async fn custom_headers_reach_the_endpoint_sealed_at_rest_and_are_only_ever_named() {
    const API_KEY: &str = "ak_live_5ecret_0f_the_endpoint";
    const NEW_KEY: &str = "ak_live_r0tated_5ecret_value";
    const TEAM: &str = "team-payments-5ecret";
    let cluster = SealedCluster::start().await;
    let receiver = TestReceiver::start().await;
    let header = |name: &str, value: &str| pb::CustomHeader {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let created = cluster
        .control
        .clone()
        .create_subscription(pb::CreateSubscriptionRequest {
            sink: receiver.url().to_owned(),
            filters: vec![crate::cluster::exact_type("com.example.secure")],
            headers: vec![header("X-Api-Key", API_KEY), header("X-Team", TEAM)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.header_names, ["X-Api-Key", "X-Team"]);
    let got = cluster.get(&created.id).await;
    assert_eq!(got.header_names, ["X-Api-Key", "X-Team"]);
    let listed = cluster
        .control
        .clone()
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let answers = format!("{created:?} {got:?} {listed:?}");
    for value in [API_KEY, TEAM] {
        assert!(
            !answers.contains(value),
            "an answer shows {value}: {answers}"
        );
    }
    let stored = cluster.stored(&created.id).await;
    assert!(stored.contains("X-Api-Key"), "{stored}");
    for value in [API_KEY, TEAM] {
        assert!(!stored.contains(value), "stored in plain text: {stored}");
    }

    let delivered = deliver_until(&cluster, &receiver, "hdr", |recorded| {
        recorded.header("x-api-key").is_some()
    })
    .await;
    assert_eq!(delivered.header("x-api-key"), Some(API_KEY));
    assert_eq!(delivered.header("x-team"), Some(TEAM));
    assert!(delivered.header("webhook-signature").is_some());
    let sent = cluster
        .control
        .clone()
        .send_test_event(pb::SendTestEventRequest {
            id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let test_event_id = sent.attempt.as_ref().unwrap().event_id.clone();
    let test_send = eventually("the test send", Duration::from_secs(30), || {
        let found = receiver
            .requests()
            .into_iter()
            .find(|recorded| recorded.json()["id"].as_str() == Some(test_event_id.as_str()));
        async move { found }
    })
    .await;
    assert_eq!(test_send.header("x-api-key"), Some(API_KEY));

    // An update replaces one header by name, in any case, and removes another, keeping
    // nothing of the old values.
    let updated = cluster
        .control
        .clone()
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            set_headers: vec![header("x-api-key", NEW_KEY)],
            remove_headers: vec!["x-team".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.header_names, ["x-api-key"]);
    let after = deliver_until(&cluster, &receiver, "rotated", |recorded| {
        recorded.header("x-api-key") == Some(NEW_KEY)
    })
    .await;
    assert_eq!(after.header("x-team"), None);

    // Refused, naming the field: a header Herald sets, and a value that would split the request.
    for (headers, field) in [
        (vec![header("Webhook-Id", "x")], "headers[0].name"),
        (
            vec![header("X-Ok", "1"), header("X-Bad", "a\r\nHost: evil")],
            "headers[1].value",
        ),
    ] {
        let status = cluster
            .control
            .clone()
            .create_subscription(pb::CreateSubscriptionRequest {
                sink: receiver.url().to_owned(),
                headers,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{status:?}");
    }
    let refused = cluster
        .control
        .clone()
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            set_headers: vec![header("Content-Length", "0")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("set_headers[0].name"),
        "{refused:?}"
    );

    // Neither the attempt log nor any stream or bucket on disk holds a value in plain text.
    let mut deliveries = herald_proto::v1::delivery_service_client::DeliveryServiceClient::connect(
        format!("http://{}", cluster.address),
    )
    .await
    .unwrap();
    let attempts = deliveries
        .list_attempts(pb::ListAttemptsRequest {
            subscription_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!attempts.attempts.is_empty());
    let logged = format!("{attempts:?}");
    // The store is on disk (the name, which is no secret, is there to be found).
    assert!(on_disk(cluster._nats_server.data_dir(), "X-Api-Key"));
    for value in [API_KEY, NEW_KEY, TEAM] {
        assert!(!logged.contains(value), "the attempt log shows {value}");
        assert!(
            !on_disk(cluster._nats_server.data_dir(), value),
            "{value} is on the nats-server's disk in plain text"
        );
    }
}
