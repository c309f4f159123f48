//! Endpoint consent end to end: the CloudEvents HTTP Web Hooks validation handshake from
//! Herald towards real endpoints on loopback. A control plane with `[consent]` settings (origin
//! `herald.test`, callbacks on an ingest serving them) runs beside the cluster, whose dispatcher
//! sends the `OPTIONS` requests and delivers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use herald_core::SubscriptionId;
use herald_core::network::NetworkPolicy;
use herald_proto::v1 as pb;
use herald_proto::v1::subscription_service_client::SubscriptionServiceClient;
use herald_test_support::{TestReceiver, eventually};

use crate::cluster::{TestCluster, exact_type};

const ORIGIN: &str = "herald.test";
const EVENT_TYPE: &str = "com.example.consent.checked";

/// What an endpoint answers to `OPTIONS`.
#[derive(Clone)]
enum Answer {
    /// This status, with these headers.
    Headers(StatusCode, Vec<(&'static str, &'static str)>),
}

#[derive(Default)]
struct EndpointState {
    answer: Option<Answer>,
    /// `WebHook-Request-*` headers of every `OPTIONS` received.
    asked: Vec<HeaderMap>,
    /// When each delivery (`POST`) arrived, and its event id.
    delivered: Vec<(Instant, String)>,
    /// The `WebHook-Request-Origin` of each delivery, in the order of `delivered`.
    delivery_origins: Vec<Option<String>>,
}

/// A webhook endpoint on loopback that answers the handshake as scripted and records
/// deliveries.
struct Endpoint {
    url: String,
    state: Arc<Mutex<EndpointState>>,
    stop: CancellationToken,
}

impl Endpoint {
    async fn start(answer: Answer) -> Endpoint {
        let state = Arc::new(Mutex::new(EndpointState {
            answer: Some(answer),
            ..EndpointState::default()
        }));
        let router = axum::Router::new()
            .route("/hook", axum::routing::options(handshake).post(deliver))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let serving = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(serving.cancelled_owned())
                .await
                .unwrap();
        });
        Endpoint { url, state, stop }
    }

    fn answer(&self, answer: Answer) {
        self.state.lock().unwrap().answer = Some(answer);
    }

    fn asked(&self) -> Vec<HeaderMap> {
        self.state.lock().unwrap().asked.clone()
    }

    fn delivered(&self) -> Vec<(Instant, String)> {
        self.state.lock().unwrap().delivered.clone()
    }

    /// Waits until the events `ids` were delivered here.
    async fn wait_for(&self, ids: &[String]) {
        eventually("the deliveries", Duration::from_secs(30), || async {
            let got: Vec<String> = self.delivered().into_iter().map(|(_, id)| id).collect();
            ids.iter().all(|id| got.contains(id)).then_some(())
        })
        .await;
    }

    fn delivery_origins(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().delivery_origins.clone()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handshake(State(state): State<Arc<Mutex<EndpointState>>>, headers: HeaderMap) -> Response {
    let mut state = state.lock().unwrap();
    state.asked.push(headers);
    let Some(Answer::Headers(status, headers)) = state.answer.clone() else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    let mut response = status.into_response();
    for (name, value) in headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

async fn deliver(
    State(state): State<Arc<Mutex<EndpointState>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|event| event["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let origin = headers
        .get("webhook-request-origin")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut state = state.lock().unwrap();
    state.delivered.push((Instant::now(), id));
    state.delivery_origins.push(origin);
    StatusCode::NO_CONTENT
}

fn consents(rate: &'static str) -> Answer {
    Answer::Headers(
        StatusCode::OK,
        vec![
            ("webhook-allowed-origin", ORIGIN),
            ("webhook-allowed-rate", rate),
        ],
    )
}

/// The cluster, and beside it a control plane asking endpoints for consent as `herald.test`
/// and an ingest serving the callbacks it offers.
struct Consenting {
    cluster: TestCluster,
    control_address: std::net::SocketAddr,
    callback_base: String,
    stops: Vec<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Consenting {
    async fn start() -> Consenting {
        Consenting::start_rechecking(Duration::from_secs(60), Duration::from_secs(3600)).await
    }

    /// Re-checks pending subscriptions first after `first`, at most every `max`.
    async fn start_rechecking(first: Duration, max: Duration) -> Consenting {
        let cluster = TestCluster::start().await;
        let registry = prometheus::Registry::new();
        let ingest_config = herald_ingest::Config {
            max_body_bytes: 64 * 1024,
            max_batch_events: 100,
            request_timeout: Duration::from_secs(10),
            auth: herald_ingest::AuthConfig {
                disabled: false,
                api_tokens: vec!["a-token-nobody-has-0123456789".to_owned()],
            },
        };
        let callbacks =
            herald_ingest::build(Arc::new(ingest_config), cluster.nats.publisher(), &registry)
                .unwrap()
                .with_consent_callbacks(cluster.nats.subscriptions().await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let callback_base = format!("http://{}", listener.local_addr().unwrap());
        let mut stops = Vec::new();
        let stop = CancellationToken::new();
        let token = stop.clone();
        stops.push((
            stop,
            tokio::spawn(async move { callbacks.run(listener, token).await.unwrap() }),
        ));
        let control_config = herald_control::Config {
            auth: herald_control::AuthConfig {
                disabled: true,
                api_tokens: Vec::new(),
            },
        };
        let consent = herald_control::ConsentConfig {
            origin: ORIGIN.to_owned(),
            callback_base_url: callback_base.clone(),
            callback_ttl: Duration::from_secs(3600),
            recheck_first: first,
            recheck_max: max,
        };
        assert!(consent.problems().is_empty(), "{:?}", consent.problems());
        let control = Box::pin(herald_control::build_with_consent(
            Arc::new(control_config),
            consent,
            cluster.nats.clone(),
            NetworkPolicy::new(true, true),
            &registry,
        ))
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control_address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        stops.push((
            stop,
            tokio::spawn(async move { control.run(listener, token).await.unwrap() }),
        ));
        Consenting {
            cluster,
            control_address,
            callback_base,
            stops,
        }
    }

    async fn control(&self) -> SubscriptionServiceClient<tonic::transport::Channel> {
        SubscriptionServiceClient::connect(format!("http://{}", self.control_address))
            .await
            .unwrap()
    }

    async fn create(
        &self,
        sink: &str,
        consent: pb::ConsentMode,
        delivery: Option<pb::DeliverySettings>,
    ) -> pb::Subscription {
        let request = pb::CreateSubscriptionRequest {
            sink: sink.to_owned(),
            filters: vec![exact_type(EVENT_TYPE)],
            consent: consent as i32,
            delivery,
            ..Default::default()
        };
        Box::pin(self.control().await.create_subscription(request))
            .await
            .unwrap()
            .into_inner()
    }

    async fn get(&self, id: &str) -> pb::Subscription {
        let request = pb::GetSubscriptionRequest { id: id.to_owned() };
        Box::pin(self.control().await.get_subscription(request))
            .await
            .unwrap()
            .into_inner()
    }

    /// Publishes `count` events of the test type in one batch and returns their ids.
    async fn publish(&self, count: usize, tag: &str) -> Vec<String> {
        let ids: Vec<String> = (0..count).map(|i| format!("{tag}-{i}")).collect();
        let batch: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| {
                serde_json::json!({
                    "specversion": "1.0", "id": id, "source": "/e2e/consent",
                    "type": EVENT_TYPE, "data": {"n": id},
                })
            })
            .collect();
        let response = self
            .cluster
            .http
            .post(&self.cluster.ingest_url)
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&batch).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        ids
    }

    async fn shutdown(self) {
        for (stop, task) in self.stops {
            stop.cancel();
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap();
        }
        self.cluster.shutdown().await;
    }
}

/// Waits until a reference subscription without consent (to `witness`) got the events `ids`:
/// by then the dispatcher has seen them, and anything else would have been delivered too.
async fn wait_for_witness(witness: &TestReceiver, ids: &[String]) {
    eventually(
        "the witness to get the events",
        Duration::from_secs(20),
        || async {
            let got = crate::ids(&witness.requests());
            ids.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
}

async fn start_witness(consenting: &Consenting) -> TestReceiver {
    let witness = TestReceiver::start().await;
    consenting
        .cluster
        .subscribe(witness.url(), vec![exact_type(EVENT_TYPE)])
        .await;
    witness
}

#[tokio::test]
async fn a_required_subscription_stays_pending_while_its_endpoint_refuses_and_delivers_nothing() {
    let consenting = Consenting::start().await;
    let witness = start_witness(&consenting).await;
    let wrong_origin = Endpoint::start(Answer::Headers(
        StatusCode::OK,
        vec![("webhook-allowed-origin", "someone-else.example")],
    ))
    .await;
    let refusing = Endpoint::start(Answer::Headers(StatusCode::FORBIDDEN, Vec::new())).await;
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", listener.local_addr().unwrap())
    };
    let cases = [
        (
            wrong_origin.url.clone(),
            "the endpoint allows the origin `someone-else.example`, not `herald.test`",
        ),
        (
            refusing.url.clone(),
            "the endpoint answered the validation request (OPTIONS) with status 403",
        ),
        (
            unreachable.clone(),
            "the validation request (OPTIONS) failed",
        ),
    ];
    let mut pending = Vec::new();
    for (sink, reason) in cases {
        let created = consenting
            .create(&sink, pb::ConsentMode::Required, None)
            .await;
        assert_eq!(created.state(), pb::SubscriptionState::Pending, "{sink}");
        assert!(
            created
                .state_reason
                .starts_with("waiting for the endpoint's consent: "),
            "{}",
            created.state_reason
        );
        assert!(
            created.state_reason.contains(reason),
            "{}",
            created.state_reason
        );
        // GetSubscription says so too, with the endpoint's answer.
        let read = consenting.get(&created.id).await;
        assert_eq!(read.state(), pb::SubscriptionState::Pending);
        assert_eq!(read.state_reason, created.state_reason);
        let consent = read.endpoint_consent.expect("the answer is recorded");
        assert!(!consent.granted);
        assert_eq!(consent.sink, sink);
        assert_eq!(consent.origin, ORIGIN);
        pending.push(created.id);
    }
    // The handshake carried the origin and offered a callback.
    let asked = wrong_origin.asked();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["webhook-request-origin"], ORIGIN);
    let callback = asked[0]["webhook-request-callback"].to_str().unwrap();
    assert!(
        callback.starts_with(&format!("{}/v1/consent/sub_", consenting.callback_base)),
        "{callback}"
    );

    let ids = consenting.publish(3, "refused").await;
    wait_for_witness(&witness, &ids).await;
    assert!(wrong_origin.delivered().is_empty());
    assert!(refusing.delivered().is_empty());
    // A pending subscription has no worker, so no consumer was made; the events wait in the
    // stream from the subscription's creation on.
    for id in &pending {
        assert!(consenting.cluster.nats.consumer_progress(id).await.is_err());
    }

    // Once the endpoint consents, asking again activates the subscription and what
    // accumulated meanwhile is delivered.
    wrong_origin.answer(consents("*"));
    let verified = Box::pin(consenting.control().await.verify_endpoint(
        pb::VerifyEndpointRequest {
            id: pending[0].clone(),
        },
    ))
    .await
    .unwrap()
    .into_inner();
    assert_eq!(verified.state(), pb::SubscriptionState::Active);
    let consent = verified.endpoint_consent.unwrap();
    assert!(consent.granted);
    assert_eq!(consent.detail, "handshake");
    assert_eq!(consent.allowed_rate_per_minute, None);
    wrong_origin.wait_for(&ids).await;
    assert!(refusing.delivered().is_empty());
    // Once consent is given, every delivery names the origin the handshake named.
    let origins = wrong_origin.delivery_origins();
    assert!(
        origins
            .iter()
            .all(|origin| origin.as_deref() == Some(ORIGIN)),
        "{origins:?}"
    );
    // The witness (consent optional, its endpoint never consented) is sent no origin.
    for request in witness.requests() {
        assert_eq!(request.header("webhook-request-origin"), None);
    }
    consenting.shutdown().await;
}

#[tokio::test]
async fn an_allowed_rate_caps_delivery_in_requests_per_minute() {
    let consenting = Consenting::start().await;
    // 300 requests a minute is 5 a second; the subscription asks for 50 a second.
    let five_a_second = Endpoint::start(consents("300")).await;
    let configured = pb::DeliverySettings {
        rate_limit: Some(pb::RateLimit {
            per_second: 50,
            burst: 50,
        }),
        ..Default::default()
    };
    let created = consenting
        .create(
            &five_a_second.url,
            pb::ConsentMode::Required,
            Some(configured),
        )
        .await;
    assert_eq!(created.state(), pb::SubscriptionState::Active);
    let consent = created.endpoint_consent.clone().unwrap();
    assert!(consent.granted);
    assert_eq!(consent.allowed_rate_per_minute, Some(300));
    // Both are kept: the configured limit is still 50/s, the endpoint's cap applies on top.
    assert_eq!(created.delivery.unwrap().rate_limit.unwrap().per_second, 50);
    // Herald asked for its configured rate, in requests per minute.
    assert_eq!(five_a_second.asked()[0]["webhook-request-rate"], "3000");
    // And `WebHook-Allowed-Rate: 5` is five a minute.
    let five_a_minute = Endpoint::start(consents("5")).await;
    let slow = consenting
        .create(&five_a_minute.url, pb::ConsentMode::Required, None)
        .await;
    assert_eq!(slow.state(), pb::SubscriptionState::Active);
    assert_eq!(
        slow.endpoint_consent.unwrap().allowed_rate_per_minute,
        Some(5)
    );
    for id in [&created.id, &slow.id] {
        let nats = consenting.cluster.nats.clone();
        eventually("the consumer", Duration::from_secs(10), || {
            let nats = nats.clone();
            async move { nats.consumer_progress(id).await.ok() }
        })
        .await;
    }

    let published_at = Instant::now();
    consenting.publish(60, "paced").await;
    let window = Duration::from_secs(4);
    tokio::time::sleep_until((published_at + window).into()).await;
    let within = |delivered: Vec<(Instant, String)>| {
        delivered
            .iter()
            .filter(|(at, _)| at.duration_since(published_at) <= window)
            .count()
    };
    let fast_count = within(five_a_second.delivered());
    let slow_count = within(five_a_minute.delivered());
    // At most rate × window + burst: 5 × 4 + 5 (the bucket starts empty, so fewer in fact).
    assert!(
        fast_count <= 25,
        "{fast_count} deliveries in {window:?} at 5/s"
    );
    // Generous on the lower side only: a busy machine delivers later, never more.
    assert!(
        fast_count >= 5,
        "only {fast_count} deliveries in {window:?} at 5/s"
    );
    // 5/min: at most one in four seconds (burst 1, then one every 12 s).
    assert!(
        slow_count <= 1,
        "{slow_count} deliveries in {window:?} at 5/min"
    );
    tracing::info!(fast_count, slow_count, "deliveries in the window");
    consenting.shutdown().await;
}

#[tokio::test]
async fn deliveries_and_test_sends_to_a_consenting_endpoint_name_the_origin_and_consent_off_none() {
    let consenting = Consenting::start().await;
    let consenting_endpoint = Endpoint::start(consents("*")).await;
    let off_endpoint = Endpoint::start(consents("*")).await;
    let granted = consenting
        .create(&consenting_endpoint.url, pb::ConsentMode::Required, None)
        .await;
    assert_eq!(granted.state(), pb::SubscriptionState::Active);
    let off = consenting
        .create(&off_endpoint.url, pb::ConsentMode::Off, None)
        .await;
    // With consent off Herald never asks, so it never introduces itself either.
    assert!(off_endpoint.asked().is_empty());
    for id in [&granted.id, &off.id] {
        let nats = consenting.cluster.nats.clone();
        eventually("the consumer", Duration::from_secs(10), || {
            let nats = nats.clone();
            async move { nats.consumer_progress(id).await.ok() }
        })
        .await;
    }
    let ids = consenting.publish(2, "origin").await;
    consenting_endpoint.wait_for(&ids).await;
    off_endpoint.wait_for(&ids).await;
    // A test send is a delivery in the subscription's name: the same header, or none.
    for id in [&granted.id, &off.id] {
        let request = pb::SendTestEventRequest {
            id: id.clone(),
            ..Default::default()
        };
        let sent = Box::pin(consenting.control().await.send_test_event(request))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(sent.attempt.unwrap().status_code, 204);
    }
    let origins = consenting_endpoint.delivery_origins();
    assert_eq!(origins.len(), 3, "{origins:?}");
    assert!(
        origins
            .iter()
            .all(|origin| origin.as_deref() == Some(ORIGIN)),
        "{origins:?}"
    );
    let origins = off_endpoint.delivery_origins();
    assert_eq!(origins.len(), 3, "{origins:?}");
    assert!(origins.iter().all(Option::is_none), "{origins:?}");
    consenting.shutdown().await;
}

#[tokio::test]
async fn the_consent_handshake_carries_the_subscriptions_custom_headers() {
    // An endpoint behind an API gateway wants its key on every request, the OPTIONS included:
    // without it the gateway would answer the handshake itself and consent never come.
    let consenting = Consenting::start().await;
    let endpoint = Endpoint::start(consents("*")).await;
    let request = pb::CreateSubscriptionRequest {
        sink: endpoint.url.clone(),
        filters: vec![exact_type(EVENT_TYPE)],
        consent: pb::ConsentMode::Required as i32,
        headers: vec![pb::CustomHeader {
            name: "X-Api-Key".to_owned(),
            value: "gateway-key-1".to_owned(),
        }],
        ..Default::default()
    };
    let created = Box::pin(consenting.control().await.create_subscription(request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.state(), pb::SubscriptionState::Active);
    let asked = endpoint.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        asked[0]
            .get("x-api-key")
            .and_then(|value| value.to_str().ok()),
        Some("gateway-key-1")
    );
    assert_eq!(
        asked[0]
            .get("webhook-request-origin")
            .and_then(|value| value.to_str().ok()),
        Some(ORIGIN)
    );
    consenting.shutdown().await;
}

#[tokio::test]
async fn a_pending_subscription_is_asked_again_on_its_own_and_delivers_once_its_endpoint_consents()
{
    let first = Duration::from_secs(1);
    let consenting = Consenting::start_rechecking(first, Duration::from_secs(2)).await;
    let endpoint = Endpoint::start(Answer::Headers(StatusCode::FORBIDDEN, Vec::new())).await;
    let started = Instant::now();
    let created = consenting
        .create(&endpoint.url, pb::ConsentMode::Required, None)
        .await;
    assert_eq!(created.state(), pb::SubscriptionState::Pending);
    let ids = consenting.publish(3, "rechecked").await;
    // Nobody calls VerifyEndpoint: control asks again by itself.
    eventually("two re-checks", Duration::from_secs(60), || async {
        (endpoint.asked().len() >= 3).then_some(())
    })
    .await;
    let asked = endpoint.asked();
    let elapsed = started.elapsed();
    // Never more often than one wait of `first` allows (a busy machine only asks less often).
    let at_most = 1 + (elapsed.as_secs_f64() / first.as_secs_f64()).floor() as usize;
    assert!(
        asked.len() <= at_most,
        "{} handshakes in {elapsed:?}",
        asked.len()
    );
    // Each names the origin; only the first offers a callback, which stays valid meanwhile.
    assert!(asked[0].contains_key("webhook-request-callback"));
    for headers in &asked[1..] {
        assert_eq!(headers["webhook-request-origin"], ORIGIN);
        assert!(!headers.contains_key("webhook-request-callback"));
    }
    assert!(endpoint.delivered().is_empty());
    let still = consenting.get(&created.id).await;
    assert_eq!(still.state(), pb::SubscriptionState::Pending);
    assert!(
        still
            .state_reason
            .contains("it may still consent on the callback URL offered"),
        "{}",
        still.state_reason
    );

    // The endpoint consents: the next re-check activates the subscription, which delivers
    // what accumulated meanwhile.
    endpoint.answer(consents("*"));
    eventually(
        "the subscription active",
        Duration::from_secs(60),
        || async {
            let read = consenting.get(&created.id).await;
            (read.state() == pb::SubscriptionState::Active).then_some(())
        },
    )
    .await;
    endpoint.wait_for(&ids).await;
    // Consent given, it is asked no more.
    let asked = endpoint.asked().len();
    tokio::time::sleep(3 * first).await;
    assert_eq!(endpoint.asked().len(), asked);
    consenting.shutdown().await;
}

#[tokio::test]
async fn a_callback_activates_a_pending_subscription_and_its_accumulated_events_are_delivered() {
    let consenting = Consenting::start().await;
    let witness = start_witness(&consenting).await;
    // Answers 200 without WebHook-Allowed-Origin: it will confirm on the callback.
    let later = Endpoint::start(Answer::Headers(StatusCode::OK, Vec::new())).await;
    let created = consenting
        .create(&later.url, pb::ConsentMode::Required, None)
        .await;
    assert_eq!(created.state(), pb::SubscriptionState::Pending);
    assert!(
        created
            .state_reason
            .contains("it may still consent on the callback URL offered, until "),
        "{}",
        created.state_reason
    );
    assert!(
        created
            .endpoint_consent
            .unwrap()
            .callback_expire_time
            .is_some()
    );
    let callback = later.asked()[0]["webhook-request-callback"]
        .to_str()
        .unwrap()
        .to_owned();
    // Only the token's hash is stored.
    let id = SubscriptionId::parse(&created.id).unwrap();
    let store = consenting.cluster.nats.subscriptions().await.unwrap();
    let document = store.stored_document(&id).await.unwrap().unwrap();
    let secret = callback.rsplit_once('.').unwrap().1;
    assert!(!String::from_utf8_lossy(&document).contains(secret));

    let ids = consenting.publish(3, "accumulated").await;
    wait_for_witness(&witness, &ids).await;
    assert!(later.delivered().is_empty());

    let confirmed = consenting
        .cluster
        .http
        .post(&callback)
        .header("webhook-allowed-rate", "600")
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    let read = consenting.get(&created.id).await;
    assert_eq!(read.state(), pb::SubscriptionState::Active);
    let consent = read.endpoint_consent.unwrap();
    assert!(consent.granted);
    assert_eq!(consent.detail, "callback");
    assert_eq!(consent.allowed_rate_per_minute, Some(600));
    later.wait_for(&ids).await;
    // Confirming again (a browser's GET) is harmless.
    let again = consenting.cluster.http.get(&callback).send().await.unwrap();
    assert_eq!(again.status(), 200);
    consenting.shutdown().await;
}

/// Asserts a problem document with `status` and `problem_type`.
async fn check_problem(response: reqwest::Response, status: u16, problem_type: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["type"], problem_type, "{problem}");
    assert_eq!(problem["status"], status);
}

#[tokio::test]
async fn expired_and_unknown_callback_tokens_are_refused_with_problem_json() {
    let consenting = Consenting::start().await;
    let later = Endpoint::start(Answer::Headers(StatusCode::OK, Vec::new())).await;
    let created = consenting
        .create(&later.url, pb::ConsentMode::Required, None)
        .await;
    let callback = later.asked()[0]["webhook-request-callback"]
        .to_str()
        .unwrap()
        .to_owned();
    let http = &consenting.cluster.http;
    let base = &consenting.callback_base;
    let unknown = "urn:herald:problem:consent-callback-unknown";
    for token in [
        "nonsense".to_owned(),
        format!("{}.{}", created.id, "A".repeat(43)),
        format!("sub_01JDZZZZZZZZZZZZZZZZZZZZZZ.{}", "A".repeat(43)),
    ] {
        let url = format!("{base}/v1/consent/{token}");
        check_problem(http.get(&url).send().await.unwrap(), 404, unknown).await;
    }
    check_problem(
        http.put(&callback).send().await.unwrap(),
        405,
        "urn:herald:problem:method-not-allowed",
    )
    .await;

    // Expire the callback in the stored subscription, as an hour passing would.
    let id = SubscriptionId::parse(&created.id).unwrap();
    let store = consenting.cluster.nats.subscriptions().await.unwrap();
    let stored = store.get(&id).await.unwrap().unwrap();
    let mut subscription = stored.value;
    let consent = subscription.endpoint_consent.as_mut().unwrap();
    consent.callback.as_mut().unwrap().expires_at =
        time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    store.update(&subscription, stored.revision).await.unwrap();
    check_problem(
        http.get(&callback).send().await.unwrap(),
        410,
        "urn:herald:problem:consent-callback-expired",
    )
    .await;
    let read = consenting.get(&created.id).await;
    assert_eq!(read.state(), pb::SubscriptionState::Pending);
    assert!(later.delivered().is_empty());
    consenting.shutdown().await;
}
