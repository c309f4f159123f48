//! The SSRF guard end to end, through the control plane and a dispatcher delivering from NATS:
//! a corpus of forbidden sinks refused at create (`INVALID_ARGUMENT`), sinks a looser control
//! plane let through refused by the dispatcher at connect, and redirects to canaries never
//! followed. Canary listeners on loopback count connections: they must see none.
//!
//! Nothing leaves loopback: every other address is refused before a connection, and no name
//! is looked up (the names used are refused by their spelling).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use herald_core::network::{Network, NetworkPolicy};
use herald_nats::Nats;
use herald_proto::v1 as pb;
use herald_proto::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::v1::subscription_service_client::SubscriptionServiceClient;
use herald_test_support::{NatsServer, eventually, structured_event};

/// The production policy plus 127.0.0.1, the one address test endpoints may use.
fn strict_policy() -> NetworkPolicy {
    NetworkPolicy::public_only().with_allowed(vec![Network::parse("127.0.0.1/32").unwrap()])
}

/// Control and a dispatcher, each with its own network policy.
struct GuardedCluster {
    _nats_server: NatsServer,
    nats: Nats,
    control: SubscriptionServiceClient<tonic::transport::Channel>,
    deliveries: DeliveryServiceClient<tonic::transport::Channel>,
    stop: CancellationToken,
}

impl GuardedCluster {
    async fn start(control_policy: NetworkPolicy, dispatcher_policy: NetworkPolicy) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nats_server = NatsServer::start().await;
        let nats = Nats::connect(&herald_test_support::nats_config(&nats_server.url()))
            .await
            .unwrap();
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
            control_policy,
            &prometheus::Registry::new(),
        ))
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(control.run(listener, stop.clone()));
        let dispatcher = herald_dispatcher::build(
            Arc::new(crate::cluster::dispatcher_config()),
            nats.clone(),
            dispatcher_policy,
            &prometheus::Registry::new(),
        )
        .unwrap();
        let token = stop.clone();
        tokio::spawn(async move { Box::pin(dispatcher.run(token)).await });
        let control = SubscriptionServiceClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        let deliveries = DeliveryServiceClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        GuardedCluster {
            _nats_server: nats_server,
            nats,
            control,
            deliveries,
            stop,
        }
    }

    async fn create(&self, sink: &str) -> Result<pb::Subscription, tonic::Status> {
        let request = pb::CreateSubscriptionRequest {
            sink: sink.to_owned(),
            filters: vec![crate::cluster::exact_type("com.example.ssrf")],
            retry_policy: Some(crate::cluster::short_retry_policy(2)),
            // No consent handshake: the canaries count the deliveries' connections only.
            consent: pb::ConsentMode::Off as i32,
            ..Default::default()
        };
        let created = self.control.clone().create_subscription(request).await?;
        Ok(created.into_inner())
    }

    async fn publish(&self, id: &str) {
        let body = structured_event(id, "com.example.ssrf");
        let event = herald_core::Event::from_structured(body.into()).unwrap();
        self.nats.publisher().publish(&event).await.unwrap();
    }

    /// Waits for the subscription's first recorded attempt.
    async fn first_attempt(&self, subscription_id: &str) -> pb::Attempt {
        let deliveries = self.deliveries.clone();
        eventually("an attempt record", Duration::from_secs(30), || {
            let mut deliveries = deliveries.clone();
            let request = pb::ListAttemptsRequest {
                subscription_id: subscription_id.to_owned(),
                ..Default::default()
            };
            async move {
                let response = deliveries.list_attempts(request).await.ok()?;
                response.into_inner().attempts.into_iter().next()
            }
        })
        .await
    }
}

impl Drop for GuardedCluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A loopback listener that counts connections and answers every request with `response`.
struct Canary {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Canary {
    async fn start(ip: &str, response: String) -> Canary {
        let listener = tokio::net::TcpListener::bind((ip.parse::<std::net::IpAddr>().unwrap(), 0))
            .await
            .unwrap_or_else(|err| panic!("a canary should listen on {ip}: {err}"));
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let response = response.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0_u8; 64 * 1024];
                    // One request per connection is enough here: read its head, answer, close.
                    let mut read = 0;
                    while !buffer[..read]
                        .windows(4)
                        .any(|window| window == b"\r\n\r\n")
                    {
                        match stream.read(&mut buffer[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(more) => read += more,
                        }
                    }
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Canary {
            address,
            connections,
        }
    }

    async fn ok(ip: &str) -> Canary {
        let response = "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".to_owned();
        Canary::start(ip, response).await
    }

    fn port(&self) -> u16 {
        self.address.port()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Sinks refused at create, `{v4}` the port of a canary on 127.0.0.2 and `{v6}` of one on ::1.
const REFUSED_AT_CREATE: &[&str] = &[
    "http://127.0.0.2:{v4}/hook",
    "http://2130706434:{v4}/hook",
    "http://0177.0.0.2:{v4}/hook",
    "http://017700000002:{v4}/hook",
    "http://0x7f.0.0.2:{v4}/hook",
    "http://0x7f000002:{v4}/hook",
    "http://127.2:{v4}/hook",
    "http://127.0.2:{v4}/hook",
    "http://0x7f.2:{v4}/hook",
    "http://0177.0x0.2:{v4}/hook",
    "http://127.0.0.2.:{v4}/hook",
    "http://%31%32%37.0.0.2:{v4}/hook",
    "http://[::ffff:127.0.0.2]:{v4}/hook",
    "http://[::127.0.0.2]:{v4}/hook",
    "http://[::ffff:0:127.0.0.2]:{v4}/hook",
    "http://[64:ff9b::127.0.0.2]:{v4}/hook",
    "http://[2002:7f00:2::]:{v4}/hook",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffd]:{v4}/hook",
    "http://[::1]:{v6}/hook",
    "http://localhost:{v4}/hook",
    "http://LOCALHOST.:{v4}/hook",
    "http://api.localhost:{v4}/hook",
    "http://0/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://10.0.0.1/",
    "http://167772161/",
    "http://172.16.0.1/",
    "http://192.168.1/",
    "http://100.64.0.1/",
    "http://[fd12:3456::1]/",
    "http://169.254.1.1/",
    "http://[fe80::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/latest/meta-data/",
    "http://0xa9.0xfe.0xa9fe/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://198.18.0.1/",
    "http://[2001:2::1]/",
    "http://192.0.2.1/",
    "http://203.0.113.7/",
    "http://[2001:db8::1]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://[100::1]/",
];

#[tokio::test]
async fn create_refuses_every_forbidden_sink_and_no_canary_is_reached() {
    assert!(REFUSED_AT_CREATE.len() >= 40);
    let canary = Canary::ok("127.0.0.2").await;
    let canary_v6 = Canary::ok("::1").await;
    let cluster = GuardedCluster::start(strict_policy(), strict_policy()).await;
    for template in REFUSED_AT_CREATE {
        let sink = template
            .replace("{v4}", &canary.port().to_string())
            .replace("{v6}", &canary_v6.port().to_string());
        let status = cluster.create(&sink).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{sink}");
        assert!(
            status.message().contains("sink") && status.message().contains("not allowed"),
            "{sink}: {}",
            status.message()
        );
    }
    assert_eq!(canary.connections(), 0);
    assert_eq!(canary_v6.connections(), 0);
    // The positive control: the one allowed address, in another spelling, is accepted.
    let allowed = Canary::ok("127.0.0.1").await;
    let sink = format!("http://0x7f.1:{}/hook", allowed.port());
    cluster.create(&sink).await.unwrap();
}

#[tokio::test]
async fn the_dispatcher_refuses_at_connect_what_a_looser_control_plane_let_through() {
    // A control plane with loopback allowed stores the sinks; the dispatcher's own policy,
    // applied to every request, refuses them all the same.
    let canary = Canary::ok("127.0.0.2").await;
    let canary_v6 = Canary::ok("::1").await;
    let allowed = Canary::ok("127.0.0.1").await;
    let cluster = GuardedCluster::start(NetworkPolicy::new(true, false), strict_policy()).await;
    let sinks = [
        format!("http://2130706434:{}/hook", canary.port()),
        format!("http://127.2:{}/hook", canary.port()),
        format!("http://[::ffff:127.0.0.2]:{}/hook", canary.port()),
        format!("http://[::1]:{}/hook", canary_v6.port()),
        format!("http://localhost:{}/hook", canary.port()),
        format!("http://api.localhost.:{}/hook", canary.port()),
    ];
    let mut subscriptions = Vec::new();
    for sink in &sinks {
        subscriptions.push((sink, cluster.create(sink).await.unwrap().id));
    }
    let control_sink = format!("http://127.0.0.1:{}/hook", allowed.port());
    let control_subscription = cluster.create(&control_sink).await.unwrap().id;
    // Consumers are created by the dispatcher as it sees the subscriptions.
    for (_, id) in &subscriptions {
        let nats = cluster.nats.clone();
        eventually("the consumer", Duration::from_secs(20), || {
            let nats = nats.clone();
            let id = id.clone();
            async move { nats.consumer_progress(&id).await.ok() }
        })
        .await;
    }
    cluster.publish("ssrf-at-connect").await;
    for (sink, id) in &subscriptions {
        let attempt = cluster.first_attempt(id).await;
        assert_eq!(
            attempt.result_class, "denied_address",
            "{sink}: {attempt:?}"
        );
        assert_eq!(attempt.status_code, 0, "{sink}");
    }
    let delivered = cluster.first_attempt(&control_subscription).await;
    assert_eq!(delivered.status_code, 204, "{delivered:?}");
    assert_eq!(allowed.connections(), 1);
    assert_eq!(canary.connections(), 0);
    assert_eq!(canary_v6.connections(), 0);
}

#[tokio::test]
async fn redirects_to_canaries_are_never_followed() {
    // The canary is on the allowed address, so only the refusal to follow a redirect keeps
    // the delivery from it.
    let canary = Canary::ok("127.0.0.1").await;
    let cluster = GuardedCluster::start(strict_policy(), strict_policy()).await;
    let locations = [
        format!("http://127.0.0.1:{}/stolen", canary.port()),
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
        "http://metadata.google.internal/computeMetadata/v1/".to_owned(),
    ];
    let mut redirectors = Vec::new();
    for (index, location) in locations.iter().enumerate() {
        let status_line = [
            "302 Found",
            "307 Temporary Redirect",
            "308 Permanent Redirect",
        ][index];
        let response = format!(
            "HTTP/1.1 {status_line}\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        let redirector = Canary::start("127.0.0.1", response).await;
        let sink = format!("http://127.0.0.1:{}/hook", redirector.port());
        let id = cluster.create(&sink).await.unwrap().id;
        redirectors.push((status_line, id, redirector));
    }
    for (_, id, _) in &redirectors {
        let nats = cluster.nats.clone();
        eventually("the consumer", Duration::from_secs(20), || {
            let nats = nats.clone();
            let id = id.clone();
            async move { nats.consumer_progress(&id).await.ok() }
        })
        .await;
    }
    cluster.publish("ssrf-redirect").await;
    for (status_line, id, redirector) in &redirectors {
        let attempt = cluster.first_attempt(id).await;
        let code: u32 = status_line[..3].parse().unwrap();
        assert_eq!(attempt.status_code, code, "{status_line}: {attempt:?}");
        assert!(redirector.connections() >= 1);
    }
    assert_eq!(canary.connections(), 0);
}
