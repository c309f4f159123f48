//! Delivery content modes end to end: a `binary` subscription receives each event in CloudEvents
//! HTTP binary mode (`ce-` headers, the data as the body with its own Content-Type), signed over
//! the body as sent; the signatures are checked by the `standardwebhooks` Python package and the
//! `standardwebhooks` crate, the requests read by the CloudEvents SDK's binary-mode reader. A
//! `structured` subscription to the same events gets them as before. Binary-mode events from NATS
//! producers, redriven from the dead letters and replayed, reach a binary subscription whole.

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use cloudevents::AttributesReader as _;
use herald_proto::v1 as pb;
use herald_test_support::{Recorded, Reply, TestReceiver};
use serde_json::json;

use crate::cluster::{TestCluster, exact_type, short_retry_policy};
use crate::{run_standardwebhooks_py, verify_delivery, wait_until_settled};

const TYPE: &str = "com.shop.order.created";

fn binary_settings() -> pb::DeliverySettings {
    pb::DeliverySettings {
        content_mode: pb::delivery_settings::ContentMode::Binary as i32,
        ..Default::default()
    }
}

async fn subscribe_binary(
    cluster: &TestCluster,
    sink: &str,
    retry_policy: pb::RetryPolicy,
) -> pb::Subscription {
    let subscription = cluster
        .create_subscription(pb::CreateSubscriptionRequest {
            sink: sink.to_owned(),
            filters: vec![exact_type(TYPE)],
            retry_policy: Some(retry_policy),
            delivery: Some(binary_settings()),
            ..Default::default()
        })
        .await;
    assert_eq!(
        subscription.delivery.as_ref().map(|d| d.content_mode()),
        Some(pb::delivery_settings::ContentMode::Binary)
    );
    subscription
}

/// What Python said of a delivery's signature: the `standardwebhooks` package's verdict, and the
/// verdict of the specification's HMAC-SHA256 over `msg_id.timestamp.body` computed with the
/// standard library over the body's bytes. Each is `verified`, or why not.
#[derive(Debug)]
struct Verdicts {
    package: String,
    spec: String,
}

/// Checks a delivery's signature in Python. The package reads every body as UTF-8 (so it
/// cannot check binary data); the standard-library check takes the bytes as they are.
async fn python_verdicts(recorded: &Recorded, secret: &str) -> Verdicts {
    const SCRIPT: &str = r#"
import base64, hashlib, hmac, json, sys
from standardwebhooks.webhooks import Webhook
request = json.load(sys.stdin)
body = base64.b64decode(request["body"])
headers = request["headers"]
try:
    Webhook(request["secret"]).verify(body, headers, json_parse=False)
    package = "verified"
except Exception as err:
    package = f"refused: {type(err).__name__} {err}"
key = base64.b64decode(request["secret"].removeprefix("whsec_"))
signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
signatures = [s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ") if s.startswith("v1,")]
spec = "verified" if any(hmac.compare_digest(s, expected) for s in signatures) else "refused"
print(json.dumps({"package": package, "spec": spec}))
"#;
    let body = base64::engine::general_purpose::STANDARD.encode(&recorded.body);
    let stdout = run_standardwebhooks_py(SCRIPT, recorded, secret, body).await;
    let verdicts: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    Verdicts {
        package: verdicts["package"].as_str().unwrap_or_default().to_owned(),
        spec: verdicts["spec"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Asserts that Python verifies the delivery both ways.
async fn assert_python_verifies(recorded: &Recorded, secret: &str) {
    let verdicts = python_verdicts(recorded, secret).await;
    assert_eq!(
        (verdicts.package.as_str(), verdicts.spec.as_str()),
        ("verified", "verified"),
        "{verdicts:?}"
    );
}

/// Asserts that the `standardwebhooks` crate verifies a delivery with a UTF-8 body.
fn assert_crate_verifies(recorded: &Recorded, secret: &str) {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&recorded.body, &recorded.headers)
        .unwrap_or_else(|err| panic!("the signature should verify: {err:?}"));
}

/// Reads a binary-mode delivery with the CloudEvents SDK's HTTP binary-mode reader.
fn read_binary(recorded: &Recorded) -> cloudevents::Event {
    assert_eq!(recorded.header("ce-specversion"), Some("1.0"));
    let event = cloudevents::binding::http::to_event(&recorded.headers, recorded.body.to_vec())
        .unwrap_or_else(|err| panic!("the SDK should read a binary-mode event: {err}"));
    let expected_id = herald_core::MessageId::derive(&event.source().to_string(), event.id());
    assert_eq!(recorded.header("webhook-id"), Some(expected_id.as_str()));
    event
}

fn data_bytes(event: &cloudevents::Event) -> Vec<u8> {
    match event.data() {
        Some(cloudevents::Data::Binary(bytes)) => bytes.clone(),
        Some(cloudevents::Data::String(text)) => text.clone().into_bytes(),
        Some(cloudevents::Data::Json(value)) => serde_json::to_vec(value).unwrap(),
        None => Vec::new(),
    }
}

fn find<'a>(requests: &'a [Recorded], id: &str) -> &'a Recorded {
    requests
        .iter()
        .find(|recorded| {
            recorded.header("ce-id") == Some(id)
                || serde_json::from_slice::<serde_json::Value>(&recorded.body)
                    .is_ok_and(|body| body["id"] == id)
        })
        .unwrap_or_else(|| panic!("a delivery of {id}"))
}

#[tokio::test]
async fn binary_mode_deliveries_verify_with_standardwebhooks_and_parse_with_the_sdk_binary_reader()
{
    let cluster = TestCluster::start().await;
    let binary_receiver = TestReceiver::start().await;
    let structured_receiver = TestReceiver::start().await;
    let binary = subscribe_binary(&cluster, binary_receiver.url(), short_retry_policy(3)).await;
    let structured = cluster
        .subscribe(structured_receiver.url(), vec![exact_type(TYPE)])
        .await;
    assert_eq!(
        structured.delivery.as_ref().map(|d| d.content_mode()),
        Some(pb::delivery_settings::ContentMode::Structured),
        "structured is the default"
    );

    // JSON data without datacontenttype, spaced as the producer wrote it.
    let json_event = r#"{"specversion":"1.0","id":"json-1","source":"/shop","type":"com.shop.order.created","subject":"order 42 ✓","region":"eu","partitionkey":"customer-7","data":{"total": 12.50, "items": [1, 2]}}"#;
    let text_event = json!({
        "specversion": "1.0", "id": "text-1", "source": "/shop", "type": TYPE,
        "datacontenttype": "text/plain; charset=utf-8", "data": "héllo \"world\"",
    })
    .to_string();
    let raw_bytes = [0_u8, 1, 2, 159, 255];
    let bytes_event = json!({
        "specversion": "1.0", "id": "bytes-1", "source": "/shop", "type": TYPE,
        "datacontenttype": "application/octet-stream",
        "data_base64": base64::engine::general_purpose::STANDARD.encode(raw_bytes),
    })
    .to_string();
    for event in [json_event, text_event.as_str(), bytes_event.as_str()] {
        cluster.post_structured(event).await;
    }
    let delivered = binary_receiver.wait_for(3, Duration::from_secs(20)).await;
    structured_receiver
        .wait_for(3, Duration::from_secs(20))
        .await;
    wait_until_settled(&cluster, &binary.id).await;
    wait_until_settled(&cluster, &structured.id).await;

    // JSON data: the body is the data member, byte for byte, as application/json.
    let json_delivery = find(&delivered, "json-1");
    assert_eq!(
        json_delivery.body.as_ref(),
        br#"{"total": 12.50, "items": [1, 2]}"#
    );
    assert_eq!(
        json_delivery.header("content-type"),
        Some("application/json")
    );
    assert_python_verifies(json_delivery, &binary.secret).await;
    assert_crate_verifies(json_delivery, &binary.secret);
    let event = read_binary(json_delivery);
    assert_eq!(
        (event.id(), event.ty(), event.source().as_str()),
        ("json-1", TYPE, "/shop")
    );
    assert_eq!(event.datacontenttype(), Some("application/json"));
    assert_eq!(
        event
            .extension("region")
            .map(ToString::to_string)
            .as_deref(),
        Some("eu")
    );
    // The binding percent-encodes what is not printable ASCII; the SDK hands it over as sent.
    assert_eq!(
        json_delivery.header("ce-subject"),
        Some("order%2042%20%E2%9C%93")
    );
    assert_eq!(
        herald_core::event::decode_header_value(event.subject().unwrap().as_bytes()).unwrap(),
        "order 42 ✓"
    );
    assert_eq!(data_bytes(&event), json_delivery.body.as_ref());

    // Text data: the string's text, with its own content type.
    let text_delivery = find(&delivered, "text-1");
    assert_eq!(text_delivery.body.as_ref(), "héllo \"world\"".as_bytes());
    assert_eq!(
        text_delivery.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_python_verifies(text_delivery, &binary.secret).await;
    assert_crate_verifies(text_delivery, &binary.secret);
    let event = read_binary(text_delivery);
    assert_eq!(event.datacontenttype(), Some("text/plain; charset=utf-8"));
    assert_eq!(data_bytes(&event), "héllo \"world\"".as_bytes());

    // data_base64: the decoded bytes. Not UTF-8, which both standardwebhooks libraries refuse
    // to read (they decode every body as UTF-8 before checking it), so the specification's
    // HMAC over the bytes checks it.
    let bytes_delivery = find(&delivered, "bytes-1");
    assert_eq!(bytes_delivery.body.as_ref(), raw_bytes);
    assert_eq!(
        bytes_delivery.header("content-type"),
        Some("application/octet-stream")
    );
    let event = read_binary(bytes_delivery);
    assert_eq!(data_bytes(&event), raw_bytes);
    let verdicts = python_verdicts(bytes_delivery, &binary.secret).await;
    assert_eq!(verdicts.spec, "verified", "{verdicts:?}");
    assert!(
        verdicts.package.contains("UnicodeDecodeError"),
        "the Python package reads bodies as UTF-8 only: {verdicts:?}"
    );

    // A tampered body fails verification: the signature covers the binary body, not the event.
    let mut tampered = json_delivery.clone();
    tampered.body = bytes::Bytes::from_static(br#"{"total": 99}"#);
    let verdicts = python_verdicts(&tampered, &binary.secret).await;
    assert!(verdicts.package.starts_with("refused"), "{verdicts:?}");
    assert_eq!(verdicts.spec, "refused");

    // The structured subscription's deliveries are as they always were.
    for recorded in structured_receiver.requests() {
        verify_delivery(&recorded, &structured.secret);
        assert!(recorded.header("ce-id").is_none());
    }
    let structured_json = find(&structured_receiver.requests(), "json-1").clone();
    assert_eq!(structured_json.body.as_ref(), json_event.as_bytes());
    assert_eq!(
        (binary_receiver.count(), structured_receiver.count()),
        (3, 3)
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn binary_mode_events_from_nats_producers_reach_a_binary_subscription_whole_when_redriven_and_replayed()
 {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    // One attempt: the first delivery dead-letters at once.
    receiver.set_reply(Reply::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let subscription = subscribe_binary(&cluster, receiver.url(), short_retry_policy(1)).await;
    let messages = json!([{
        "subject": "herald.events.0.com.shop.order.created",
        "headers": {
            "ce-specversion": "1.0", "ce-id": "nats-binary-1", "ce-source": "/producers/py",
            "ce-type": TYPE, "ce-subject": "order%2042", "ce-region": "eu",
            "Content-Type": "application/json",
        },
        "payload": "{\"total\":  3.50}",
    }]);
    crate::run_nats_py(
        "publish.py",
        &[&cluster.nats_server.url()],
        &messages.to_string(),
    )
    .await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let mut deliveries = cluster.deliveries().await;
    herald_test_support::eventually("the dead letter", Duration::from_secs(20), || {
        let mut deliveries = deliveries.clone();
        let id = subscription.id.clone();
        async move {
            let page = deliveries
                .list_dead_letters(pb::ListDeadLettersRequest {
                    subscription_id: id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            (!page.dead_letters.is_empty()).then_some(())
        }
    })
    .await;
    wait_until_settled(&cluster, &subscription.id).await;

    receiver.set_reply(Reply::Status(StatusCode::OK));
    let redriven = deliveries
        .redrive_dead_letters(pb::RedriveDeadLettersRequest {
            subscription_id: subscription.id.clone(),
            all: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redriven.redriven, 1);
    receiver.wait_for(2, Duration::from_secs(20)).await;
    wait_until_settled(&cluster, &subscription.id).await;

    let last = cluster
        .replay(
            &subscription.id,
            pb::replay_events_request::From::StartSequence(1),
        )
        .await;
    assert_eq!((last.done, last.replayed), (true, 1), "{last:?}");
    let requests = receiver.wait_for(3, Duration::from_secs(20)).await;
    wait_until_settled(&cluster, &subscription.id).await;

    // The first attempt, the redriven one and the replayed one are the same binary request.
    for recorded in &requests {
        assert_eq!(recorded.body.as_ref(), b"{\"total\":  3.50}");
        assert_eq!(recorded.header("content-type"), Some("application/json"));
        assert_eq!(recorded.header("ce-subject"), Some("order%2042"));
        assert_eq!(recorded.header("ce-region"), Some("eu"));
        assert_python_verifies(recorded, &subscription.secret).await;
        assert_crate_verifies(recorded, &subscription.secret);
        let event = read_binary(recorded);
        assert_eq!((event.id(), event.ty()), ("nats-binary-1", TYPE));
        assert_eq!(
            recorded.header("webhook-id"),
            requests[0].header("webhook-id")
        );
    }
    assert_eq!(
        requests
            .iter()
            .map(|recorded| recorded.status)
            .collect::<Vec<_>>(),
        [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::OK,
            StatusCode::OK
        ]
    );
    cluster.shutdown().await;
}
