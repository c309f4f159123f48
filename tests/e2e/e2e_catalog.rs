//! The event-type catalog end to end: types registered over gRPC, an ingest built with the
//! catalog (`herald_ingest::build_with_catalog`, as `herald ingest` runs it) refusing data that
//! violates its type's schema with a problem document naming the JSON path and publishing
//! nothing, valid events delivered, a type registered while ingest runs checked from then on,
//! and unregistered types accepted by default and refused in strict mode.

use std::sync::Arc;
use std::time::Duration;

use herald_proto::v1 as pb;
use herald_proto::v1::event_type_service_client::EventTypeServiceClient;
use herald_test_support::{TestReceiver, eventually};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cluster::{TestCluster, exact_type};
use crate::verify_delivery;

const ORDER_SCHEMA: &str = r#"{
    "type": "object",
    "required": ["total"],
    "properties": {"total": {"type": "integer", "minimum": 0}}
}"#;

/// An ingest with the catalog, on its own port, over the cluster's NATS.
struct CatalogIngest {
    url: String,
    stop: CancellationToken,
}

impl CatalogIngest {
    async fn start(cluster: &TestCluster, unregistered: herald_ingest::Unregistered) -> Self {
        let config = herald_ingest::Config {
            max_body_bytes: 64 * 1024,
            max_batch_events: 100,
            request_timeout: Duration::from_secs(10),
            auth: herald_ingest::AuthConfig {
                disabled: true,
                api_tokens: Vec::new(),
            },
        };
        let ingest = herald_ingest::build_with_catalog(
            Arc::new(config),
            &herald_ingest::CatalogConfig { unregistered },
            cluster.nats.publisher(),
            cluster.nats.event_types().await.unwrap(),
            &prometheus::Registry::new(),
        )
        .await
        .expect("ingest should build with the catalog");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/events", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        tokio::spawn(ingest.run(listener, stop.clone()));
        CatalogIngest { url, stop }
    }

    /// Posts a body with a content type; returns the status and the parsed answer.
    async fn post(&self, cluster: &TestCluster, content_type: &str, body: &Value) -> (u16, Value) {
        let response = cluster
            .http
            .post(&self.url)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status >= 400 {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
        (status, response.json().await.unwrap())
    }

    async fn post_event(&self, cluster: &TestCluster, event: &Value) -> (u16, Value) {
        self.post(cluster, "application/cloudevents+json", event)
            .await
    }
}

impl Drop for CatalogIngest {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn event(id: &str, event_type: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "/shop", "type": event_type,
        "datacontenttype": "application/json", "data": data,
    })
}

async fn register(cluster: &TestCluster, name: &str, schema: &str) {
    let mut client = EventTypeServiceClient::connect(format!("http://{}", cluster.control_address))
        .await
        .unwrap();
    client
        .create_event_type(pb::CreateEventTypeRequest {
            name: name.to_owned(),
            description: "test type".to_owned(),
            owner: "e2e".to_owned(),
            versions: vec![pb::EventTypeVersion {
                version: "1".to_owned(),
                dataschema: String::new(),
                schema: schema.to_owned(),
                examples: vec![r#"{"total": 1}"#.to_owned()],
            }],
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn refuses_data_violating_its_schema_with_the_json_path_and_delivers_valid_events() {
    let cluster = TestCluster::start().await;
    register(&cluster, "com.example.order.created", ORDER_SCHEMA).await;
    let receiver = TestReceiver::start().await;
    let subscription = cluster
        .subscribe(
            receiver.url(),
            vec![exact_type("com.example.order.created")],
        )
        .await;
    let ingest = CatalogIngest::start(&cluster, herald_ingest::Unregistered::Accept).await;
    let stored_before = cluster.nats.events_stored().await.unwrap();

    let violating = event(
        "order-bad",
        "com.example.order.created",
        json!({"total": "forty-two"}),
    );
    let (status, problem) = ingest.post_event(&cluster, &violating).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:herald:problem:schema-violation");
    assert_eq!(problem["pointer"], "/data/total");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "the event does not satisfy the registered schema of `com.example.order.created` \
             version 1 at `/data/total`: "
        ),
        "{detail}"
    );

    // A batch is checked whole before anything is published.
    let batch = json!([
        event(
            "order-ok-in-batch",
            "com.example.order.created",
            json!({"total": 1})
        ),
        event(
            "order-negative",
            "com.example.order.created",
            json!({"total": -5})
        ),
        event("order-missing", "com.example.order.created", json!({})),
    ]);
    let (status, problem) = ingest
        .post(&cluster, "application/cloudevents-batch+json", &batch)
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:herald:problem:invalid-batch");
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{problem}");
    assert_eq!(
        (errors[0]["index"].clone(), errors[0]["pointer"].clone()),
        (json!(1), json!("/data/total"))
    );
    assert_eq!(
        (errors[1]["index"].clone(), errors[1]["pointer"].clone()),
        (json!(2), json!("/data"))
    );
    assert_eq!(cluster.nats.events_stored().await.unwrap(), stored_before);

    let valid = event(
        "order-good",
        "com.example.order.created",
        json!({"total": 42}),
    );
    let (status, answer) = ingest.post_event(&cluster, &valid).await;
    assert_eq!(status, 202, "{answer}");
    let delivered = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        verify_delivery(&delivered[0], &subscription.secret),
        "order-good"
    );
    assert_eq!(delivered[0].json()["data"], json!({"total": 42}));
    assert_eq!(
        cluster.nats.events_stored().await.unwrap(),
        stored_before + 1
    );

    // A type registered while ingest runs is checked as soon as the watch brings it.
    register(&cluster, "com.example.late", ORDER_SCHEMA).await;
    let late = event("late-bad", "com.example.late", json!({"total": 1.5}));
    let problem = eventually(
        "the late type to be checked",
        Duration::from_secs(20),
        || {
            let (ingest, cluster, late) = (&ingest, &cluster, &late);
            async move {
                let (status, problem) = ingest.post_event(cluster, late).await;
                (status == 400).then_some(problem)
            }
        },
    )
    .await;
    assert_eq!(problem["pointer"], "/data/total");
    assert_eq!(receiver.count(), 1, "only the valid order was delivered");
}

#[tokio::test]
async fn unregistered_types_are_accepted_by_default_and_refused_in_strict_mode() {
    let cluster = TestCluster::start().await;
    register(&cluster, "com.example.order.created", ORDER_SCHEMA).await;
    let receiver = TestReceiver::start().await;
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type("com.example.unknown")])
        .await;
    let accepting = CatalogIngest::start(&cluster, herald_ingest::Unregistered::Accept).await;
    let strict = CatalogIngest::start(&cluster, herald_ingest::Unregistered::Refuse).await;

    let unknown = event(
        "unknown-1",
        "com.example.unknown",
        json!({"anything": true}),
    );
    let (status, problem) = strict.post_event(&cluster, &unknown).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:herald:problem:unregistered-type");
    assert_eq!(problem["pointer"], "/type");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("event type `com.example.unknown` is not registered"),
        "{problem}"
    );

    // Strict mode still takes registered types with valid data.
    let registered = event("order-1", "com.example.order.created", json!({"total": 3}));
    let (status, answer) = strict.post_event(&cluster, &registered).await;
    assert_eq!(status, 202, "{answer}");

    let (status, answer) = accepting.post_event(&cluster, &unknown).await;
    assert_eq!(status, 202, "{answer}");
    let delivered = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        verify_delivery(&delivered[0], &subscription.secret),
        "unknown-1"
    );
}
