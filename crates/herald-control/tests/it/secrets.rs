//! Signing secrets and sink URLs at rest: sealed under the current key-encryption key in the
//! bucket (the sink's scheme and host kept in the clear), opened for readers, and sealed again
//! at start when stored as plain text or under an older KEK.

use herald_core::SubscriptionId;
use herald_signing::kek::{Kek, Keyring};

use crate::support::{Control, Options, PUBLIC_SINK, create_request};

fn keyring(ids: &[(&str, u8)]) -> Keyring {
    Keyring::new(
        ids.iter()
            .map(|(id, byte)| Kek::new(id, [*byte; 32]).unwrap())
            .collect(),
    )
    .unwrap()
}

async fn stored(control: &Control, id: &str) -> serde_json::Value {
    let id = SubscriptionId::parse(id).unwrap();
    let bytes = control.store.stored_document(&id).await.unwrap().unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn check_sealed_under(document: &serde_json::Value, secret: &str, kek: &str) {
    let text = document.to_string();
    let key_material = secret.trim_start_matches("whsec_");
    assert!(
        !text.contains(key_material),
        "the secret is in the bucket: {text}"
    );
    assert_eq!(document["secret"]["kek"], kek, "{text}");
    assert_eq!(document["secret"]["alg"], "xchacha20poly1305", "{text}");
    // The sink's path and query (`?token=abc`) are sealed too; its scheme and host stay.
    assert!(
        !text.contains("token=abc"),
        "the sink is in the bucket: {text}"
    );
    assert_eq!(document["sink"]["kek"], kek, "{text}");
    assert_eq!(document["sink_host"], "https://hooks.example.com", "{text}");
    // The rest stays readable.
    assert!(document["created_at"].is_string(), "{text}");
}

#[tokio::test]
async fn secrets_are_sealed_in_the_bucket_and_opened_for_readers() {
    let control = Control::start(Options {
        keyring: Some(keyring(&[("k1", 1)])),
        ..Options::default()
    })
    .await;
    let created = control.create(create_request(PUBLIC_SINK)).await;
    check_sealed_under(&stored(&control, &created.id).await, &created.secret, "k1");
    let id = SubscriptionId::parse(&created.id).unwrap();
    let read = control.store.get(&id).await.unwrap().unwrap();
    assert_eq!(read.value.secret.expose(), created.secret);
    assert_eq!(read.value.sink.as_str(), PUBLIC_SINK);
    assert_eq!(created.sink, PUBLIC_SINK, "the API shows the full sink");
}

#[tokio::test]
async fn plain_text_secrets_load_and_are_sealed_at_start_with_their_history_removed() {
    // Written by a Herald without a keyring: plain text, as before sealing existed.
    let control = Control::start(Options::default()).await;
    let created = control.create(create_request(PUBLIC_SINK)).await;
    let plain = stored(&control, &created.id).await;
    assert_eq!(plain["secret"], created.secret);
    assert_eq!(plain["sink"], PUBLIC_SINK);
    let id = SubscriptionId::parse(&created.id).unwrap();
    // A second revision, so there is history holding the plain text.
    let mut client = control.client();
    client
        .update_subscription(herald_proto::v1::UpdateSubscriptionRequest {
            id: created.id.clone(),
            description: Some("second revision".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(control.store.revisions(&id).await.unwrap(), 2);

    let nats_server = Box::pin(control.into_nats_server()).await;
    let control = Control::start(Options {
        keyring: Some(keyring(&[("k1", 1)])),
        nats_server: Some(nats_server),
        ..Options::default()
    })
    .await;
    check_sealed_under(&stored(&control, &created.id).await, &created.secret, "k1");
    assert_eq!(
        control.store.revisions(&id).await.unwrap(),
        1,
        "older revisions with the plain-text secret and sink should be gone"
    );
    let read = control.store.get(&id).await.unwrap().unwrap();
    assert_eq!(read.value.secret.expose(), created.secret);
    assert_eq!(read.value.sink.as_str(), PUBLIC_SINK);
    assert_eq!(read.value.description, "second revision");
}

#[tokio::test]
async fn a_new_current_kek_reseals_at_start_and_the_old_one_can_then_go() {
    let control = Control::start(Options {
        keyring: Some(keyring(&[("k1", 1)])),
        ..Options::default()
    })
    .await;
    let created = control.create(create_request(PUBLIC_SINK)).await;
    let nats_server = Box::pin(control.into_nats_server()).await;

    // k2 becomes current, k1 stays listed for reading.
    let control = Control::start(Options {
        keyring: Some(keyring(&[("k2", 2), ("k1", 1)])),
        nats_server: Some(nats_server),
        ..Options::default()
    })
    .await;
    check_sealed_under(&stored(&control, &created.id).await, &created.secret, "k2");
    let nats_server = Box::pin(control.into_nats_server()).await;

    // Without k1, everything still opens.
    let control = Control::start(Options {
        keyring: Some(keyring(&[("k2", 2)])),
        nats_server: Some(nats_server),
        ..Options::default()
    })
    .await;
    let id = SubscriptionId::parse(&created.id).unwrap();
    let read = control.store.get(&id).await.unwrap().unwrap();
    assert_eq!(read.value.secret.expose(), created.secret);
}

#[tokio::test]
async fn a_sealed_secret_without_its_kek_is_an_error_that_names_no_secret() {
    let control = Control::start(Options {
        keyring: Some(keyring(&[("k1", 1)])),
        ..Options::default()
    })
    .await;
    let created = control.create(create_request(PUBLIC_SINK)).await;
    let nats_server = Box::pin(control.into_nats_server()).await;
    let control = Control::start(Options {
        keyring: Some(keyring(&[("k9", 9)])),
        nats_server: Some(nats_server),
        ..Options::default()
    })
    .await;
    let status = control
        .client()
        .get_subscription(herald_proto::v1::GetSubscriptionRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(status.message().contains("`k1`"), "{}", status.message());
    assert!(!status.message().contains(&created.secret[6..]));
}
