//! Test sends (`SendTestEvent`): one signed event to one subscription, answered with the
//! endpoint's status, headers, body and duration, and recorded in the attempt log; refused
//! naming the field, the missing subscription, or the missing dispatcher.

use axum::response::IntoResponse;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};

use herald_core::SubscriptionId;
use herald_proto::v1 as pb;

use crate::cluster::{TestCluster, exact_type};

/// An endpoint on loopback that answers `/ok` with 200 and a JSON body, anything else with 500
/// and a text body, both with an `x-request-id`, and records every request.
struct Endpoint {
    base: String,
    requests: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Endpoint {
    async fn start() -> Endpoint {
        let requests: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
        let recorded = Arc::clone(&requests);
        let router = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: Bytes| {
                let recorded = Arc::clone(&recorded);
                async move {
                    // The consent handshake a new subscription sends (consent `optional` by
                    // default) is answered as an endpoint without the handshake does, and is
                    // not one of the requests these tests count.
                    if method == axum::http::Method::OPTIONS {
                        return StatusCode::METHOD_NOT_ALLOWED.into_response();
                    }
                    recorded.lock().unwrap().push((headers, body));
                    if uri.path() == "/ok" {
                        (
                            StatusCode::OK,
                            [
                                ("x-request-id", "req-ok-1"),
                                ("content-type", "application/json"),
                            ],
                            r#"{"received":true}"#,
                        )
                            .into_response()
                    } else {
                        (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            [
                                ("x-request-id", "req-fail-1"),
                                ("content-type", "text/plain"),
                            ],
                            "database unavailable",
                        )
                            .into_response()
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let until = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(until)
                .await
                .unwrap();
        });
        Endpoint {
            base,
            requests,
            stop,
        }
    }

    fn requests(&self) -> Vec<(HeaderMap, Bytes)> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// Asserts the request carries a `v1` signature of `secret` over its body, checked with
/// `herald-signing`.
fn assert_signed(secret: &str, headers: &HeaderMap, body: &Bytes) {
    let secret = herald_signing::Secret::parse(secret).unwrap();
    herald_signing::verify(
        &secret,
        header(headers, "webhook-id"),
        header(headers, "webhook-timestamp"),
        header(headers, "webhook-signature"),
        body,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        herald_signing::DEFAULT_TOLERANCE_SECS,
    )
    .expect("the test event should be signed with the subscription's secret");
}

/// Asserts the request is signed (`assert_signed`) and returns the body as JSON.
fn verified(secret: &str, headers: &HeaderMap, body: &Bytes) -> serde_json::Value {
    assert_signed(secret, headers, body);
    serde_json::from_slice(body).unwrap()
}

/// The subscription's endpoint health, as `GetSubscription` reports it.
async fn health_of(cluster: &TestCluster, id: &str) -> pb::EndpointHealth {
    let mut control = cluster.control().await;
    control
        .get_subscription(pb::GetSubscriptionRequest { id: id.to_owned() })
        .await
        .unwrap()
        .into_inner()
        .health
        .unwrap_or_default()
}

async fn send_test(
    cluster: &TestCluster,
    id: &str,
    event_type: &str,
    data: &str,
) -> Result<pb::SendTestEventResponse, tonic::Status> {
    let request = pb::SendTestEventRequest {
        id: id.to_owned(),
        r#type: event_type.to_owned(),
        data: data.to_owned(),
    };
    let mut control = cluster.control().await;
    control
        .send_test_event(request)
        .await
        .map(tonic::Response::into_inner)
}

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
async fn a_test_send_answers_with_the_endpoints_status_headers_body_and_duration_and_is_logged() {
    let cluster = TestCluster::start().await;
    let endpoint = Endpoint::start().await;
    // The filter matches no test event: a test send goes to the subscription whatever it says.
    let subscription = cluster
        .subscribe(
            &format!("{}/ok", endpoint.base),
            vec![exact_type("com.example.never")],
        )
        .await;

    let sent = send_test(
        &cluster,
        &subscription.id,
        "com.example.order.created",
        r#"{"order": 42}"#,
    )
    .await
    .unwrap();
    let attempt = sent.attempt.clone().unwrap();
    assert_eq!(attempt.status_code, 200);
    assert_eq!(attempt.result_class, "2xx");
    assert_eq!(attempt.response_body, r#"{"received":true}"#);
    assert_eq!(attempt.response_headers["x-request-id"], "req-ok-1");
    assert_eq!(attempt.response_headers["content-type"], "application/json");
    assert!(attempt.duration.is_some());
    assert_eq!(attempt.outcome, pb::AttemptOutcome::Test as i32);
    assert!(sent.recorded);

    // The endpoint got exactly this one event, signed, marked as a test.
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1);
    let (headers, body) = &requests[0];
    assert_eq!(body.as_ref(), sent.event.as_slice());
    let event = verified(&subscription.secret, headers, body);
    assert_eq!(event["heraldtest"], true);
    assert_eq!(event["type"], "com.example.order.created");
    assert_eq!(event["data"], serde_json::json!({"order": 42}));
    assert_eq!(event["id"], attempt.event_id.as_str());
    assert_eq!(header(headers, "webhook-id"), attempt.message_id);
    assert_eq!(
        header(headers, "content-type"),
        "application/cloudevents+json"
    );

    // It is in the attempt log like any attempt, and the endpoint's health did not move.
    let logged = attempts_of(&cluster, &subscription.id).await;
    assert_eq!(logged, vec![attempt]);
    let health = health_of(&cluster, &subscription.id).await;
    assert_eq!(health.last_success_time, None, "a test send is no delivery");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_failing_endpoints_answer_is_reported_never_retried_and_paused_subscriptions_are_tested()
{
    let cluster = TestCluster::start().await;
    let endpoint = Endpoint::start().await;
    let subscription = cluster
        .subscribe(&format!("{}/fail", endpoint.base), Vec::new())
        .await;
    let mut control = cluster.control().await;
    control
        .pause_subscription(pb::PauseSubscriptionRequest {
            id: subscription.id.clone(),
        })
        .await
        .unwrap();

    let sent = send_test(&cluster, &subscription.id, "", "").await.unwrap();
    let attempt = sent.attempt.unwrap();
    assert_eq!(attempt.status_code, 500);
    assert_eq!(attempt.result_class, "5xx");
    assert_eq!(attempt.response_body, "database unavailable");
    assert_eq!(attempt.response_headers["x-request-id"], "req-fail-1");
    assert_eq!(attempt.outcome, pb::AttemptOutcome::Test as i32);
    assert_eq!(attempt.next_attempt_time, None);
    assert_eq!(attempt.event_type, herald_core::test_event::DEFAULT_TYPE);

    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1);
    let event = verified(&subscription.secret, &requests[0].0, &requests[0].1);
    assert_eq!(event["heraldtest"], true);
    assert_eq!(event["data"]["subscription_id"], subscription.id.as_str());

    let logged = attempts_of(&cluster, &subscription.id).await;
    assert_eq!(logged, vec![attempt]);
    let health = health_of(&cluster, &subscription.id).await;
    assert_eq!(health.consecutive_failures, 0, "a test send is no delivery");
    // A second test send is a second event: the first was never retried.
    let again = send_test(&cluster, &subscription.id, "", "").await.unwrap();
    assert_eq!(endpoint.requests().len(), 2);
    assert_ne!(
        again.attempt.unwrap().event_id,
        event["id"].as_str().unwrap()
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn test_sends_are_refused_naming_the_field_the_missing_subscription_or_dispatcher() {
    let mut cluster = TestCluster::start().await;
    let endpoint = Endpoint::start().await;
    let subscription = cluster
        .subscribe(&format!("{}/ok", endpoint.base), Vec::new())
        .await;

    for (id, event_type, data, field) in [
        ("sub_nonsense", "", "", "id"),
        (subscription.id.as_str(), "", "{not json", "data"),
        (subscription.id.as_str(), "bad\u{7}type", "", "type"),
    ] {
        let status = send_test(&cluster, id, event_type, data).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{status:?}"
        );
    }

    let missing = "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let status = send_test(&cluster, missing, "", "").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let mut control = cluster.control().await;
    control
        .delete_subscription(pb::DeleteSubscriptionRequest {
            id: subscription.id.clone(),
            expected_revision: 0,
        })
        .await
        .unwrap();
    let status = send_test(&cluster, &subscription.id, "", "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    let alive = cluster
        .subscribe(&format!("{}/ok", endpoint.base), Vec::new())
        .await;
    cluster.stop_dispatcher().await;
    let status = send_test(&cluster, &alive.id, "", "").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("no dispatcher is running"),
        "{status:?}"
    );
    assert!(endpoint.requests().is_empty(), "nothing was sent");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_test_send_nobody_answers_in_time_is_deadline_exceeded() {
    let cluster = TestCluster::start().await;
    let endpoint = Endpoint::start().await;
    let subscription = cluster
        .subscribe(&format!("{}/ok", endpoint.base), Vec::new())
        .await;
    let mut cluster = cluster;
    cluster.stop_dispatcher().await;
    // A member of the queue group that takes requests and never answers.
    let test_sends = cluster.nats.test_sends();
    let mut silent = test_sends.serve().await.unwrap();
    let id = SubscriptionId::parse(&subscription.id).unwrap();
    let unique = "01J00000000000000000000000";
    let event = herald_core::test_event::TestEvent {
        subscription_id: &id,
        unique,
        event_type: None,
        data: None,
        now: time::OffsetDateTime::now_utc(),
    }
    .build()
    .unwrap();
    let (sent, taken) = tokio::join!(
        test_sends.ask(&id, &event, Duration::from_millis(300)),
        silent.next()
    );
    let error = sent.unwrap_err();
    assert_eq!(
        error.code(),
        herald_core::ErrorCode::DeadlineExceeded,
        "{error}"
    );
    let taken = taken.expect("the request should reach the queue group");
    assert_eq!(taken.subscription_id, id);
    assert_eq!(taken.body.id(), event.id());
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_test_send_honours_the_subscriptions_binary_content_mode() {
    let cluster = TestCluster::start().await;
    let endpoint = Endpoint::start().await;
    let request = pb::CreateSubscriptionRequest {
        sink: format!("{}/ok", endpoint.base),
        delivery: Some(pb::DeliverySettings {
            content_mode: pb::delivery_settings::ContentMode::Binary as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    let subscription = cluster.create_subscription(request).await;

    let sent = send_test(&cluster, &subscription.id, "", r#"{"n":1}"#)
        .await
        .unwrap();
    assert_eq!(sent.attempt.unwrap().status_code, 200);
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1);
    let (headers, body) = &requests[0];
    // The data is the body, signed as sent; the attributes, the marker included, are headers.
    assert_signed(&subscription.secret, headers, body);
    assert_eq!(body.as_ref(), br#"{"n":1}"#);
    assert_eq!(header(headers, "content-type"), "application/json");
    assert_eq!(header(headers, "ce-heraldtest"), "true");
    assert_eq!(
        header(headers, "ce-type"),
        herald_core::test_event::DEFAULT_TYPE
    );
    cluster.shutdown().await;
}
