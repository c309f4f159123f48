//! One event traced from the producer to the endpoint through real processes: `herald ingest`,
//! `dispatch` and `control` export their spans over OTLP (gRPC, and HTTP/protobuf) to a real
//! OTLP receiver in the test, configured only through the standard `OTEL_*` environment.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;

use herald_proto::v1 as pb;
use herald_test_support::{NatsServer, Reply, TestReceiver, eventually};

use crate::process::{self, API_TOKEN, Ports};

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<Exported>>>);

impl Collected {
    fn add(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Exported {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                            .collect(),
                    });
                }
            }
        }
    }

    fn of_trace(&self, trace_id: &str) -> Vec<Exported> {
        let spans = self.0.lock().unwrap();
        spans
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for Collected {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts an OTLP receiver on loopback speaking `protocol`; returns its base URL.
async fn start_receiver(protocol: &str, collected: Collected) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    if protocol == "grpc" {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collected))
                .serve_with_incoming(incoming),
        );
    } else {
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: bytes::Bytes| {
                let collected = collected.clone();
                async move {
                    match ExportTraceServiceRequest::decode(body) {
                        Ok(request) => {
                            collected.add(request);
                            (
                                StatusCode::OK,
                                [("content-type", "application/x-protobuf")],
                                ExportTraceServiceResponse::default().encode_to_vec(),
                            )
                        }
                        Err(_) => (
                            StatusCode::BAD_REQUEST,
                            [("content-type", "text/plain")],
                            b"not an ExportTraceServiceRequest".to_vec(),
                        ),
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    format!("http://{address}")
}

async fn one_event_is_one_trace_from_the_producer_to_the_endpoint(protocol: &str) {
    let collected = Collected::default();
    let otlp = start_receiver(protocol, collected.clone()).await;
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_SERVICE_NAME", "herald-under-test"),
        // Export within a fraction of a second, not the default 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let mut control = process::start_with("control", &ports, &otel);
    let mut ingest = process::start_with("ingest", &ports, &otel);
    let _dispatch = process::start_with("dispatch", &ports, &otel);
    control.wait_listening(ports.control).await;
    ingest.wait_listening(ports.ingest).await;

    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::FailFirst {
        count: 1,
        status: StatusCode::INTERNAL_SERVER_ERROR,
    });
    let mut client = process::control_client(&ports).await;
    client
        .create_subscription(pb::CreateSubscriptionRequest {
            sink: receiver.url().to_owned(),
            retry_policy: Some(pb::RetryPolicy {
                backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
                    delays: vec![prost_types::Duration {
                        seconds: 0,
                        nanos: 200_000_000,
                    }],
                })),
                jitter_percent: Some(0),
                max_attempts: 5,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();

    // The producer's own span.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let producer_span = "00f067aa0ba902b7";
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().unwrap();
    let event = serde_json::json!({
        "specversion": "1.0", "id": "traced-1", "source": "/tracing", "type": "com.traced",
    });
    // Until the dispatcher's consumer exists the event is stored all the same: it is delivered
    // once the consumer starts at the subscription's creation time.
    let response = http
        .post(ports.ingest_url())
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/cloudevents+json")
        .header("traceparent", format!("00-{trace_id}-{producer_span}-01"))
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    let requests = receiver.wait_for(2, Duration::from_secs(60)).await;
    let sent: Vec<String> = requests
        .iter()
        .map(|request| request.header("traceparent").unwrap_or_default().to_owned())
        .collect();
    for traceparent in &sent {
        assert!(
            traceparent.starts_with(&format!("00-{trace_id}-")),
            "the endpoint continues the producer's trace: {sent:?}"
        );
    }
    assert_ne!(sent[0], sent[1], "each attempt is its own span");

    let spans = eventually("the trace's spans", Duration::from_secs(30), || async {
        let spans = collected.of_trace(trace_id);
        let deliveries = spans.iter().filter(|span| span.name == "delivery").count();
        let ingest = spans.iter().any(|span| span.name == "ingest");
        (ingest && deliveries >= 2).then_some(spans)
    })
    .await;
    let ingest_span = spans.iter().find(|span| span.name == "ingest").unwrap();
    assert_eq!(
        ingest_span.parent_span_id, producer_span,
        "ingest continues the producer's span"
    );
    assert_eq!(ingest_span.service, "herald-under-test");
    let mut deliveries: Vec<&Exported> = spans
        .iter()
        .filter(|span| span.name == "delivery")
        .collect();
    deliveries.sort_by_key(|span| span.attributes.get("attempt").cloned());
    for (attempt, span) in deliveries.iter().enumerate() {
        assert_eq!(
            span.parent_span_id, ingest_span.span_id,
            "each attempt is a child of the event's span"
        );
        assert_eq!(
            span.attributes.get("attempt").map(String::as_str),
            Some((attempt + 1).to_string().as_str())
        );
        assert!(span.attributes.contains_key("subscription_id"));
        assert_eq!(
            sent[attempt],
            format!("00-{trace_id}-{}-01", span.span_id),
            "the endpoint saw the attempt's own span as its parent"
        );
    }
    let outcomes: Vec<(&str, &str)> = deliveries
        .iter()
        .map(|span| {
            (
                span.attributes.get("status").map_or("", String::as_str),
                span.attributes.get("outcome").map_or("", String::as_str),
            )
        })
        .collect();
    assert_eq!(outcomes, [("500", "retry"), ("200", "delivered")]);
}

#[tokio::test]
async fn one_event_is_one_trace_over_otlp_grpc() {
    one_event_is_one_trace_from_the_producer_to_the_endpoint("grpc").await;
}

#[tokio::test]
async fn one_event_is_one_trace_over_otlp_http_protobuf() {
    one_event_is_one_trace_from_the_producer_to_the_endpoint("http/protobuf").await;
}

#[tokio::test]
async fn a_collector_that_is_down_does_not_stop_delivery() {
    // A port nothing listens on: every export fails.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let otlp = format!("http://{closed}");
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let mut control = process::start_with("control", &ports, &otel);
    let mut ingest = process::start_with("ingest", &ports, &otel);
    let _dispatch = process::start_with("dispatch", &ports, &otel);
    control.wait_listening(ports.control).await;
    ingest.wait_listening(ports.ingest).await;
    let receiver = TestReceiver::start().await;
    let mut client = process::control_client(&ports).await;
    client
        .create_subscription(pb::CreateSubscriptionRequest {
            sink: receiver.url().to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().unwrap();
    for n in 0..20 {
        let event = serde_json::json!({
            "specversion": "1.0", "id": format!("untraced-{n}"), "source": "/tracing",
            "type": "com.traced",
        });
        let response = http
            .post(ports.ingest_url())
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    let requests = receiver.wait_for(20, Duration::from_secs(60)).await;
    assert!(
        requests
            .iter()
            .all(|request| request.header("traceparent").is_some()),
        "Herald started a trace for each event, exported or not"
    );
}
