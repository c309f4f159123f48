//! `TestCluster`: every Herald role in-process against a test's own nats-server, on port-0
//! listeners, with test settings (short retry delays, loopback delivery allowed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use herald_core::network::NetworkPolicy;
use herald_nats::Nats;
use herald_proto::v1 as pb;
use herald_proto::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::v1::subscription_service_client::SubscriptionServiceClient;
use herald_test_support::NatsServer;

pub(crate) type ControlClient = SubscriptionServiceClient<tonic::transport::Channel>;
#[allow(
    dead_code,
    reason = "used by e2e_retry_and_dlq once the DeliveryService lands"
)]
pub(crate) type DeliveryClient = DeliveryServiceClient<tonic::transport::Channel>;

pub(crate) struct TestCluster {
    pub(crate) nats_server: NatsServer,
    pub(crate) nats: Nats,
    pub(crate) ingest_url: String,
    pub(crate) control_address: SocketAddr,
    pub(crate) http: reqwest::Client,
    ingest: Option<Role>,
    control: Option<Role>,
    dispatcher: Option<Role>,
    dispatcher_registry: prometheus::Registry,
    pub(crate) dispatcher_config: herald_dispatcher::Config,
}

struct Role {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Role {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("a role should stop within 30 s")
            .expect("a role should not panic");
    }
}

pub(crate) fn dispatcher_config() -> herald_dispatcher::Config {
    herald_dispatcher::Config {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        pool_idle_timeout: Duration::from_secs(4),
        max_response_body_bytes: 64 * 1024,
        disable_after: Duration::from_secs(3600),
        max_in_flight_per_subscription: 64,
        max_in_flight_per_host: 256,
        shutdown_grace_period: Duration::from_secs(10),
        lease_ttl: Duration::from_secs(10),
        // Short, so the tests' pauses between phases park their subscriptions and every later
        // event reaches them through a wake-up.
        park_after: Duration::from_secs(2),
        parked_recheck: Duration::from_secs(300),
        egress_proxy: None,
        endpoint_ca_file: None,
    }
}

impl TestCluster {
    pub(crate) async fn start() -> TestCluster {
        TestCluster::start_with(dispatcher_config()).await
    }

    /// Starts a cluster whose dispatcher uses `dispatcher_config`.
    pub(crate) async fn start_with(dispatcher_config: herald_dispatcher::Config) -> TestCluster {
        TestCluster::start_configured(dispatcher_config, false).await
    }

    /// Starts a cluster whose ingest publishes batch requests as JetStream atomic batches.
    pub(crate) async fn start_with_atomic_batches() -> TestCluster {
        TestCluster::start_configured(dispatcher_config(), true).await
    }

    async fn start_configured(
        dispatcher_config: herald_dispatcher::Config,
        atomic_batches: bool,
    ) -> TestCluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nats_server = NatsServer::start().await;
        let mut nats_config = herald_test_support::nats_config(&nats_server.url());
        nats_config.events.atomic_batches = atomic_batches;
        let nats = Nats::connect(&nats_config)
            .await
            .expect("nats should connect");
        let registry = prometheus::Registry::new();

        let ingest_config = herald_ingest::Config {
            max_body_bytes: 64 * 1024,
            max_batch_events: 100,
            request_timeout: Duration::from_secs(10),
            auth: herald_ingest::AuthConfig {
                disabled: true,
                api_tokens: Vec::new(),
            },
        };
        let ingest = herald_ingest::build(Arc::new(ingest_config), nats.publisher(), &registry)
            .expect("ingest should build");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ingest_url = format!("http://{}/v1/events", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            ingest
                .run(listener, token)
                .await
                .expect("ingest should run")
        });
        let ingest = Role { stop, task };

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
        .expect("control should build");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control_address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            control
                .run(listener, token)
                .await
                .expect("control should run")
        });
        let control = Role { stop, task };

        let mut cluster = TestCluster {
            nats_server,
            nats,
            ingest_url,
            control_address,
            http: reqwest::Client::builder().build().unwrap(),
            ingest: Some(ingest),
            control: Some(control),
            dispatcher: None,
            dispatcher_registry: prometheus::Registry::new(),
            dispatcher_config,
        };
        cluster.start_dispatcher().await;
        cluster
    }

    /// Starts a dispatcher (again), with a registry of its own.
    pub(crate) async fn start_dispatcher(&mut self) {
        assert!(self.dispatcher.is_none(), "a dispatcher is already running");
        self.dispatcher_registry = prometheus::Registry::new();
        let dispatcher = herald_dispatcher::build(
            Arc::new(self.dispatcher_config.clone()),
            self.nats.clone(),
            NetworkPolicy::new(true, true),
            &self.dispatcher_registry,
        )
        .expect("dispatcher should build");
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task =
            tokio::spawn(
                async move { dispatcher.run(token).await.expect("dispatcher should run") },
            );
        self.dispatcher = Some(Role { stop, task });
    }

    /// Returns the current dispatcher's metrics in the Prometheus text format.
    pub(crate) fn dispatcher_metrics(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.dispatcher_registry.gather())
            .expect("metrics should encode")
    }

    /// Stops the dispatcher gracefully.
    pub(crate) async fn stop_dispatcher(&mut self) {
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.stop().await;
        }
    }

    #[allow(
        dead_code,
        reason = "used by e2e_retry_and_dlq once the DeliveryService lands"
    )]
    pub(crate) async fn deliveries(&self) -> DeliveryClient {
        DeliveryServiceClient::connect(format!("http://{}", self.control_address))
            .await
            .expect("the control plane should accept connections")
    }

    /// Replays a subscription's events from `from` to now and returns the replay's last
    /// progress report (its totals).
    pub(crate) async fn replay(
        &self,
        subscription_id: &str,
        from: pb::replay_events_request::From,
    ) -> pb::ReplayProgress {
        let mut progress = self
            .deliveries()
            .await
            .replay_events(pb::ReplayEventsRequest {
                subscription_id: subscription_id.to_owned(),
                from: Some(from),
                to: None,
            })
            .await
            .expect("the replay should start")
            .into_inner();
        let mut last = None;
        while let Some(update) = progress
            .message()
            .await
            .expect("the replay's progress should stream")
        {
            last = Some(update);
        }
        last.expect("replay reports progress")
    }

    pub(crate) async fn control(&self) -> ControlClient {
        SubscriptionServiceClient::connect(format!("http://{}", self.control_address))
            .await
            .expect("the control plane should accept connections")
    }

    /// Creates a subscription and waits until its consumer exists, so events published from
    /// now on reach it.
    pub(crate) async fn subscribe(&self, sink: &str, filters: Vec<pb::Filter>) -> pb::Subscription {
        self.subscribe_with(sink, filters, short_retry_policy(3))
            .await
    }

    /// Creates a subscription with a retry policy and waits until its consumer exists.
    pub(crate) async fn subscribe_with(
        &self,
        sink: &str,
        filters: Vec<pb::Filter>,
        retry_policy: pb::RetryPolicy,
    ) -> pb::Subscription {
        let request = pb::CreateSubscriptionRequest {
            sink: sink.to_owned(),
            filters,
            retry_policy: Some(retry_policy),
            ..Default::default()
        };
        self.create_subscription(request).await
    }

    /// Creates a subscription and waits until its consumer exists (each part's, for a split
    /// one).
    pub(crate) async fn create_subscription(
        &self,
        request: pb::CreateSubscriptionRequest,
    ) -> pb::Subscription {
        // Boxed: a gRPC connect and call make a large future.
        Box::pin(async move {
            let subscription = self
                .control()
                .await
                .create_subscription(request)
                .await
                .unwrap()
                .into_inner();
            let parts = subscription
                .delivery
                .as_ref()
                .map_or(1, |delivery| delivery.parts.max(1));
            let id = herald_core::SubscriptionId::parse(&subscription.id).unwrap();
            for part in herald_core::subscription::Part::all(parts) {
                let name = herald_core::WorkId::new(id.clone(), part).consumer_name();
                let nats = self.nats.clone();
                herald_test_support::eventually(
                    "the subscription's consumer",
                    Duration::from_secs(10),
                    || {
                        let nats = nats.clone();
                        let name = name.clone();
                        async move { nats.consumer_progress(&name).await.ok() }
                    },
                )
                .await;
            }
            subscription
        })
        .await
    }

    /// Posts a structured event, asserting 202.
    pub(crate) async fn post_structured(&self, body: &str) -> serde_json::Value {
        let response = self
            .http
            .post(&self.ingest_url)
            .header("content-type", "application/cloudevents+json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            202,
            "{}",
            response.text().await.unwrap_or_default()
        );
        response.json().await.unwrap()
    }

    pub(crate) async fn shutdown(mut self) {
        self.stop_dispatcher().await;
        if let Some(ingest) = self.ingest.take() {
            ingest.stop().await;
        }
        if let Some(control) = self.control.take() {
            control.stop().await;
        }
    }
}

pub(crate) fn exact_type(event_type: &str) -> pb::Filter {
    pb::Filter {
        dialect: Some(pb::filter::Dialect::Exact(pb::AttributeFilter {
            attributes: [("type".to_owned(), event_type.to_owned())].into(),
        })),
    }
}

pub(crate) fn type_prefix(prefix: &str) -> pb::Filter {
    pb::Filter {
        dialect: Some(pb::filter::Dialect::Prefix(pb::AttributeFilter {
            attributes: [("type".to_owned(), prefix.to_owned())].into(),
        })),
    }
}

/// A fast policy for tests: 200 ms, then 500 ms between attempts, no jitter.
pub(crate) fn short_retry_policy(max_attempts: u32) -> pb::RetryPolicy {
    fixed_retry_policy(&[200, 500], max_attempts)
}

/// A fixed policy with these delays in milliseconds, no jitter.
pub(crate) fn fixed_retry_policy(delays_ms: &[u64], max_attempts: u32) -> pb::RetryPolicy {
    let millis = |ms: u64| prost_types::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    };
    pb::RetryPolicy {
        backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
            delays: delays_ms.iter().map(|ms| millis(*ms)).collect(),
        })),
        jitter_percent: Some(0),
        max_attempts,
        max_age: None,
        terminal_status_codes: Vec::new(),
    }
}
