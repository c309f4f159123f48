//! Sinks are logged and recorded by host only, and stored sealed: customers put tokens in their
//! paths and queries (issue 10, defect 5; issue 12). A delivery to an unreachable sink fails, is
//! retried, dead-lettered and announced, and its path and query appear in no log line, attempt
//! record, dead letter or `dev.herald.attempt.exhausted` event. A subscription stored with a
//! key-encryption key is created, confirmed on its consent callback (by a listener without the
//! key), delivered to, moved to another sink that consents to the handshake and delivered to
//! again, and neither sink's path or query is in any log line, the stored document, the attempt
//! log, the audit stream or any file of the nats-server's store, while Get shows the full sink.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::SubscriptionId;
use herald_nats::AttemptQuery;
use herald_test_support::{TestReceiver, eventually, structured_event};

use crate::cluster::{TestCluster, exact_type};

const PATH_SECRET: &str = "path_5ecret_tok";
const QUERY_SECRET: &str = "query_5ecret_tok";

/// Log output captured by a tracing subscriber that is the default on this test's thread;
/// the test runtime is single-threaded, so every role's task logs here.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Returns a loopback port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [PATH_SECRET, QUERY_SECRET] {
        assert!(
            !text.contains(secret),
            "{what} shows the sink's {secret}:\n{text}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_sinks_path_and_query_appear_in_no_log_record_or_announcement() {
    // tracing decides whether a callsite is enabled when it is first hit; while one dispatcher
    // is registered it asks only the hitting thread's, so a callsite another test's thread hit
    // first would stay disabled here as well. A second, silent dispatcher kept alive makes it
    // ask every registered one.
    let _silent = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let cluster = TestCluster::start().await;
    let operator = TestReceiver::start().await;
    cluster
        .subscribe(
            operator.url(),
            vec![exact_type("dev.herald.attempt.exhausted")],
        )
        .await;
    let authority = format!("127.0.0.1:{}", closed_port().await);
    let sink = format!("http://{authority}/hooks/{PATH_SECRET}?token={QUERY_SECRET}");
    // Three attempts, 200 ms and 500 ms apart, then a dead letter and an announcement.
    let subscription = cluster
        .subscribe(&sink, vec![exact_type("com.private.sink")])
        .await;
    cluster
        .post_structured(&structured_event("private-1", "com.private.sink"))
        .await;

    let announced = operator.wait_for(1, Duration::from_secs(30)).await;
    let announcement = announced[0].json();
    assert_eq!(announcement["data"]["event_id"], "private-1");
    let last_error = announcement["data"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(last_error.contains("Connection refused"), "{announcement}");
    assert_no_secret("the exhausted announcement", &announcement.to_string());

    let id = SubscriptionId::parse(&subscription.id).unwrap();
    let records = cluster.nats.records();
    let query = AttemptQuery {
        subscription_id: Some(id.clone()),
        limit: 100,
        ..AttemptQuery::default()
    };
    let attempts = eventually("three attempt records", Duration::from_secs(10), || async {
        let page = records.attempts(&query).await.ok()?;
        (page.items.len() == 3).then_some(page.items)
    })
    .await;
    for (_, attempt) in &attempts {
        assert_eq!(attempt.result_class, "connect", "{attempt:?}");
        assert!(attempt.error.is_some(), "{attempt:?}");
        assert_no_secret(
            "an attempt record",
            &serde_json::to_string(attempt).unwrap(),
        );
    }
    let dead_letters = records.dead_letters(&id, None, 10).await.unwrap().items;
    assert_eq!(dead_letters.len(), 1, "{dead_letters:?}");
    assert!(!dead_letters[0].last_error.is_empty());
    assert_no_secret("the dead letter", &format!("{:?}", dead_letters[0]));

    cluster.shutdown().await;
    let text = logs.text();
    // The capture works, and names the sink by its host.
    assert!(text.contains("attempt failed"), "{text}");
    assert!(text.contains(&authority), "{text}");
    assert_no_secret("the logs", &text);
}

const SEALED_PATHS: [&str; 2] = ["path_5ealed_first", "path_5ealed_second"];
const SEALED_QUERIES: [&str; 2] = ["query_5ealed_first", "query_5ealed_second"];
const ORIGIN: &str = "herald.sealed.test";
const SEALED_TYPE: &str = "com.private.sealed";

/// What the endpoint behind both sinks saw: the `WebHook-Request-Callback` of every `OPTIONS`,
/// and the path and event id of every delivery.
#[derive(Default)]
struct SealedEndpointLog {
    callbacks: Vec<Option<String>>,
    deliveries: Vec<(String, String)>,
}

/// One endpoint serving both sinks: it answers the handshake for the first without
/// `WebHook-Allowed-Origin` (it will confirm on the callback) and grants it for the second.
async fn sealed_endpoint(
    log: Arc<Mutex<SealedEndpointLog>>,
) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken) {
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::IntoResponse;
    async fn handle(
        axum::extract::State(log): axum::extract::State<Arc<Mutex<SealedEndpointLog>>>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        let mut log = log.lock().unwrap();
        if method == Method::OPTIONS {
            log.callbacks.push(
                headers
                    .get("webhook-request-callback")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
            );
            if uri.path().contains(SEALED_PATHS[1]) {
                return (StatusCode::OK, [("webhook-allowed-origin", ORIGIN)]).into_response();
            }
            return StatusCode::OK.into_response();
        }
        let id = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|event| event["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        log.deliveries.push((uri.path().to_owned(), id));
        StatusCode::NO_CONTENT.into_response()
    }
    let router = axum::Router::new().fallback(handle).with_state(log);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(serving.cancelled_owned())
            .await
            .unwrap();
    });
    (address, stop)
}

fn assert_nothing_sealed_shows(what: &str, text: &str) {
    for token in SEALED_PATHS.iter().chain(&SEALED_QUERIES) {
        assert!(
            !text.contains(token),
            "{what} shows the sink's {token}:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_sealed_sinks_path_and_query_are_nowhere_in_plain_text_through_delivery_update_and_consent()
 {
    use herald_proto::v1 as pb;
    use tokio_util::sync::CancellationToken;

    let _silent = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let _ = rustls::crypto::ring::default_provider().install_default();

    // Control and the dispatcher seal with a keyring; the public listener serving consent
    // callbacks has none, as in production.
    let nats_server = herald_test_support::NatsServer::start().await;
    let nats_config = herald_test_support::nats_config(&nats_server.url());
    let keyring = herald_signing::kek::Keyring::new(vec![
        herald_signing::kek::Kek::new("e2e", [7; 32]).unwrap(),
    ])
    .unwrap();
    let sealing = herald_nats::Nats::connect(&nats_config)
        .await
        .unwrap()
        .with_keyring(keyring);
    let keyless = herald_nats::Nats::connect(&nats_config).await.unwrap();
    let registry = prometheus::Registry::new();
    let stop = CancellationToken::new();
    let ingest_config = herald_ingest::Config {
        max_body_bytes: 64 * 1024,
        max_batch_events: 100,
        request_timeout: Duration::from_secs(10),
        auth: herald_ingest::AuthConfig {
            disabled: false,
            api_tokens: vec!["a-token-nobody-has-0123456789".to_owned()],
        },
    };
    let callbacks = herald_ingest::build(Arc::new(ingest_config), keyless.publisher(), &registry)
        .unwrap()
        .with_consent_callbacks(keyless.subscriptions().await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(callbacks.run(listener, stop.clone()));
    let control = Box::pin(herald_control::build_with_consent(
        Arc::new(herald_control::Config {
            auth: herald_control::AuthConfig {
                disabled: true,
                api_tokens: Vec::new(),
            },
        }),
        herald_control::ConsentConfig {
            origin: ORIGIN.to_owned(),
            callback_base_url: callback_base,
            ..herald_control::ConsentConfig::default()
        },
        sealing.clone(),
        herald_core::network::NetworkPolicy::new(true, true),
        &registry,
    ))
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control_address = listener.local_addr().unwrap();
    tokio::spawn(control.run(listener, stop.clone()));
    let dispatcher = herald_dispatcher::build(
        Arc::new(crate::cluster::dispatcher_config()),
        sealing.clone(),
        herald_core::network::NetworkPolicy::new(true, true),
        &prometheus::Registry::new(),
    )
    .unwrap();
    let token = stop.clone();
    tokio::spawn(async move { Box::pin(dispatcher.run(token)).await });
    let mut client = pb::subscription_service_client::SubscriptionServiceClient::connect(format!(
        "http://{control_address}"
    ))
    .await
    .unwrap();

    // The handshake on create needs a dispatcher serving consent checks: wait for one to
    // answer about a subscription that does not exist (anything but "no dispatcher").
    let checks = sealing.consent_checks();
    let probe = SubscriptionId::parse("sub_00000000000000000000000000").unwrap();
    let asking = herald_core::subscription::consent::HandshakeRequest {
        origin: ORIGIN.to_owned(),
        callback: None,
        request_rate: None,
    };
    eventually(
        "a dispatcher serving consent checks",
        Duration::from_secs(30),
        || async {
            let answer = checks.ask(&probe, &asking, Duration::from_secs(5)).await;
            let unavailable =
                matches!(&answer, Err(err) if err.code() == herald_core::ErrorCode::Unavailable);
            (!unavailable).then_some(())
        },
    )
    .await;

    let endpoint_log = Arc::new(Mutex::new(SealedEndpointLog::default()));
    let (endpoint, endpoint_stop) = sealed_endpoint(Arc::clone(&endpoint_log)).await;
    let sinks: Vec<String> = (0..2)
        .map(|i| {
            format!(
                "http://{endpoint}/hooks/{}?token={}",
                SEALED_PATHS[i], SEALED_QUERIES[i]
            )
        })
        .collect();
    let get = |client: &mut pb::subscription_service_client::SubscriptionServiceClient<_>,
               id: String| {
        let mut client = client.clone();
        async move {
            client
                .get_subscription(pb::GetSubscriptionRequest { id })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let publish = |tag: String| {
        let publisher = sealing.publisher();
        async move {
            let body = structured_event(&tag, SEALED_TYPE);
            let event = herald_core::Event::from_structured(body.into()).unwrap();
            publisher.publish(&event).await.unwrap();
        }
    };
    let delivered = |path: &'static str, id: &'static str| {
        let log = Arc::clone(&endpoint_log);
        eventually("the delivery", Duration::from_secs(30), move || {
            let found = log
                .lock()
                .unwrap()
                .deliveries
                .iter()
                .any(|(at, event)| at.contains(path) && event == id);
            async move { found.then_some(()) }
        })
    };

    // Created with consent required: the endpoint answers without consenting, then confirms
    // on the callback, which the keyless listener records in the sealed document.
    let created = client
        .create_subscription(pb::CreateSubscriptionRequest {
            sink: sinks[0].clone(),
            filters: vec![exact_type(SEALED_TYPE)],
            consent: pb::ConsentMode::Required as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.sink, sinks[0]);
    assert_eq!(created.state(), pb::SubscriptionState::Pending);
    let callback = endpoint_log.lock().unwrap().callbacks[0].clone().unwrap();
    let http = reqwest::Client::builder().build().unwrap();
    let confirmed = http.post(&callback).send().await.unwrap();
    assert_eq!(confirmed.status(), 200);
    let read = get(&mut client, created.id.clone()).await;
    assert_eq!(read.state(), pb::SubscriptionState::Active);
    let consent = read.endpoint_consent.unwrap();
    assert!(consent.granted);
    assert_eq!(consent.detail, "callback");
    assert_eq!(consent.sink, sinks[0]);
    publish("sealed-first".to_owned()).await;
    delivered(SEALED_PATHS[0], "sealed-first").await;

    // Moved to the second sink, which consents to the handshake.
    let updated = client
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: created.id.clone(),
            sink: sinks[1].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.sink, sinks[1]);
    let read = get(&mut client, created.id.clone()).await;
    assert_eq!(read.sink, sinks[1], "Get shows the full sink");
    assert_eq!(read.state(), pb::SubscriptionState::Active);
    let consent = read.endpoint_consent.unwrap();
    assert!(consent.granted, "{consent:?}");
    assert_eq!(consent.detail, "handshake");
    assert_eq!(consent.sink, sinks[1]);
    // An event the dispatcher took before it saw the update may still go to the first sink:
    // publish again (every half second, the check runs every 20 ms) until one reaches the
    // second.
    let mut polls = 0_u32;
    eventually(
        "a delivery to the second sink",
        Duration::from_secs(30),
        || {
            let delivered_there = endpoint_log
                .lock()
                .unwrap()
                .deliveries
                .iter()
                .any(|(at, _)| at.contains(SEALED_PATHS[1]));
            let publishing = (!delivered_there && polls.is_multiple_of(25))
                .then(|| publish(format!("sealed-second-{polls}")));
            polls += 1;
            async move {
                if let Some(publishing) = publishing {
                    publishing.await;
                }
                delivered_there.then_some(())
            }
        },
    )
    .await;

    // The stored document shows the sink's scheme and host only.
    let id = SubscriptionId::parse(&created.id).unwrap();
    let store = sealing.subscriptions().await.unwrap();
    let stored = store.stored_document(&id).await.unwrap().unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored["sink_host"], format!("http://{endpoint}"));
    assert_nothing_sealed_shows("the stored document", &stored.to_string());
    assert_eq!(
        store.get(&id).await.unwrap().unwrap().value.sink.as_str(),
        sinks[1]
    );

    // Nor the attempt log, nor the audit stream.
    let attempts = sealing
        .records()
        .attempts(&AttemptQuery {
            subscription_id: Some(id.clone()),
            limit: 100,
            ..AttemptQuery::default()
        })
        .await
        .unwrap()
        .items;
    assert!(attempts.len() >= 2, "{attempts:?}");
    assert_nothing_sealed_shows(
        "the attempt log",
        &serde_json::to_string(&attempts).unwrap(),
    );
    let audit = sealing
        .audit()
        .await
        .unwrap()
        .page(
            herald_nats::AuditOrder::NewestFirst { before: None },
            None,
            100,
        )
        .await
        .unwrap()
        .items;
    let audited: Vec<&str> = audit
        .iter()
        .filter(|(_, record)| record.resource == created.id)
        .map(|(_, record)| record.rpc.as_str())
        .collect();
    assert!(audited.contains(&"CreateSubscription"), "{audited:?}");
    assert!(audited.contains(&"UpdateSubscription"), "{audited:?}");
    assert_nothing_sealed_shows("the audit stream", &format!("{audit:?}"));

    // Nor any file of the nats-server's store, every stream and bucket with its history.
    let data_dir = nats_server.data_dir();
    assert!(
        crate::e2e_security::on_disk(data_dir, &format!("http://{endpoint}")),
        "the store on disk should hold the sink's host"
    );
    for token in SEALED_PATHS.iter().chain(&SEALED_QUERIES) {
        assert!(
            !crate::e2e_security::on_disk(data_dir, token),
            "{token} is on the nats-server's disk in plain text"
        );
    }

    stop.cancel();
    endpoint_stop.cancel();
    let text = logs.text();
    assert!(text.contains("endpoint consent recorded"), "{text}");
    assert!(text.contains(&endpoint.to_string()), "{text}");
    assert_nothing_sealed_shows("the logs", &text);
}
