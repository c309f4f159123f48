//! Starts a control service over a fresh nats-server and offers `check_*`-style helpers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use herald_core::network::NetworkPolicy;
use herald_nats::{Nats, SubscriptionStore};
use herald_proto::v1 as pb;
use herald_proto::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::v1::subscription_service_client::SubscriptionServiceClient;
use herald_test_support::NatsServer;

/// A token long enough for `Config::problems`.
pub(crate) const TOKEN: &str = "it-token-0123456789";

/// A sink every network policy accepts.
pub(crate) const PUBLIC_SINK: &str = "https://hooks.example.com/herald?token=abc";

/// How a test control service is set up.
pub(crate) struct Options {
    pub(crate) auth_disabled: bool,
    pub(crate) network: NetworkPolicy,
    /// Key-encryption keys sealing secrets at rest; none stores them as text.
    pub(crate) keyring: Option<herald_signing::kek::Keyring>,
    /// A nats-server to use instead of a fresh one (a restarted control keeps its data).
    pub(crate) nats_server: Option<NatsServer>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            auth_disabled: true,
            network: NetworkPolicy::public_only(),
            keyring: None,
            nats_server: None,
        }
    }
}

/// A running control service and what it stores into.
pub(crate) struct Control {
    pub(crate) address: SocketAddr,
    pub(crate) channel: Channel,
    pub(crate) store: SubscriptionStore,
    /// The service's NATS connection, to write and read records behind its back.
    pub(crate) nats: Nats,
    pub(crate) registry: prometheus::Registry,
    shutdown: CancellationToken,
    server: Option<JoinHandle<herald_control::Result<()>>>,
    _nats: Option<NatsServer>,
}

impl Control {
    pub(crate) async fn start(options: Options) -> Control {
        let nats_server = match options.nats_server {
            Some(server) => server,
            None => NatsServer::start().await,
        };
        let nats = Box::pin(Nats::connect(&herald_test_support::nats_config(
            &nats_server.url(),
        )))
        .await
        .expect("nats should connect");
        let nats = match options.keyring {
            Some(keyring) => nats.with_keyring(keyring),
            None => nats,
        };
        let store = nats.subscriptions().await.expect("the store should open");
        let config = herald_control::Config {
            auth: herald_control::AuthConfig {
                disabled: options.auth_disabled,
                api_tokens: vec![TOKEN.to_owned()],
            },
        };
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        let registry = prometheus::Registry::new();
        let service = Box::pin(herald_control::build(
            Arc::new(config),
            nats.clone(),
            options.network,
            &registry,
        ))
        .await
        .expect("the control service should build");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port should work");
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(service.run(listener, shutdown.clone()));
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .expect("the control service should accept connections");
        Control {
            address,
            channel,
            store,
            nats,
            registry,
            shutdown,
            server: Some(server),
            _nats: Some(nats_server),
        }
    }

    pub(crate) fn client(&self) -> SubscriptionServiceClient<Channel> {
        SubscriptionServiceClient::new(self.channel.clone())
    }

    pub(crate) fn deliveries(&self) -> DeliveryServiceClient<Channel> {
        DeliveryServiceClient::new(self.channel.clone())
    }

    /// Stops the service and hands back its nats-server, for a control started again on it.
    pub(crate) async fn into_nats_server(mut self) -> NatsServer {
        self.stop().await.expect("the service should stop cleanly");
        self._nats
            .take()
            .expect("the nats-server is handed back once")
    }

    /// Cancels the service and returns what `run` returned.
    pub(crate) async fn stop(&mut self) -> herald_control::Result<()> {
        self.shutdown.cancel();
        let server = self.server.take().expect("the service should be running");
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the service should stop within 10 s")
            .expect("the service task should not panic")
    }

    /// Creates a subscription through the API and returns the answer.
    pub(crate) async fn create(&self, request: pb::CreateSubscriptionRequest) -> pb::Subscription {
        self.client()
            .create_subscription(request)
            .await
            .expect("creating the subscription should succeed")
            .into_inner()
    }

    /// Returns the ids stored, bypassing the API.
    pub(crate) async fn stored_ids(&self) -> Vec<String> {
        let stored = self
            .store
            .list()
            .await
            .expect("listing the store should work");
        stored
            .into_iter()
            .map(|entry| entry.value.id.to_string())
            .collect()
    }

    /// Returns `herald_control_requests_total{method,code}`.
    pub(crate) fn requests_total(&self, method: &str, code: &str) -> u64 {
        let families = self.registry.gather();
        let Some(family) = families
            .iter()
            .find(|family| family.name() == "herald_control_requests_total")
        else {
            return 0;
        };
        family
            .get_metric()
            .iter()
            .filter(|metric| {
                let labels = metric.get_label();
                let has = |name: &str, value: &str| {
                    labels
                        .iter()
                        .any(|label| label.name() == name && label.value() == value)
                };
                has("method", method) && has("code", code)
            })
            .map(|metric| metric.get_counter().get_value() as u64)
            .sum()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A create request for `sink` with no filters.
pub(crate) fn create_request(sink: &str) -> pb::CreateSubscriptionRequest {
    pb::CreateSubscriptionRequest {
        sink: sink.to_owned(),
        ..Default::default()
    }
}

/// A filter in the specification's JSON encoding, as its wire form.
pub(crate) fn filter(json: &str) -> pb::Filter {
    let filter: herald_core::Filter = serde_json::from_str(json).expect("the test filter is JSON");
    pb::Filter::from(filter)
}

/// Asserts that `status` is INVALID_ARGUMENT naming `field`, in its message and its details.
pub(crate) fn check_invalid_argument(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "message `{}` should start with `{field}: `",
        status.message()
    );
    let violations = herald_proto::rpc::field_violations(status);
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, [field]);
}
