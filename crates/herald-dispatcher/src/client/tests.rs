//! Delivery client tests against real HTTP endpoints on loopback, with a network policy that
//! refuses loopback unless a test says otherwise.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use herald_core::delivery::{AttemptResult, FailureClass};
use herald_core::network::NetworkPolicy;

use super::hosts::HostLimits;
use super::resolver::{DENIED_MARKER, GuardedResolver, SystemLookups};
use super::{AttemptReport, DeliveryClient, SignedRequest};
use crate::Config;

mod mtls;
mod proxy;
mod ssrf;

fn config() -> Config {
    Config {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        pool_idle_timeout: Duration::from_secs(60),
        max_response_body_bytes: 64 * 1024,
        disable_after: Duration::from_secs(3600),
        max_in_flight_per_subscription: 8,
        max_in_flight_per_host: 1024,
        shutdown_grace_period: Duration::from_secs(5),
        lease_ttl: Duration::from_secs(10),
        park_after: Duration::from_secs(30),
        parked_recheck: Duration::from_secs(300),
        egress_proxy: None,
        endpoint_ca_file: None,
    }
}

/// An HTTPS endpoint on 127.0.0.1 with a certificate of a test CA for `localhost`, optionally
/// accepting only clients with a certificate of another (mutual TLS); records the head of every
/// request and answers 204.
struct TlsEndpoint {
    port: u16,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl TlsEndpoint {
    async fn start(ca: &herald_test_support::TestCa) -> TlsEndpoint {
        TlsEndpoint::serving(ca.server_config("sink", None)).await
    }

    /// One that accepts only clients presenting a certificate of `client_ca`.
    async fn requiring(
        ca: &herald_test_support::TestCa,
        client_ca: &herald_test_support::TestCa,
    ) -> TlsEndpoint {
        TlsEndpoint::serving(ca.server_config("sink", Some(client_ca))).await
    }

    async fn serving(tls: Arc<rustls::ServerConfig>) -> TlsEndpoint {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut buffer = Vec::new();
                    while let Some(length) = read_request(&mut stream, &mut buffer).await {
                        let head = String::from_utf8_lossy(&buffer[..length]).into_owned();
                        recorded.lock().unwrap().push(head);
                        buffer.drain(..length);
                        let response = b"HTTP/1.1 204 No Content\r\n\r\n";
                        if stream.write_all(response).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TlsEndpoint { port, heads }
    }

    /// `https://localhost:<port>/hook`.
    fn url(&self) -> url::Url {
        url::Url::parse(&format!("https://localhost:{}/hook", self.port)).unwrap()
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// A keep-alive HTTP/1.1 endpoint on 127.0.0.1 answering every request with 204; counts the
/// connections it accepted and the requests it answered.
struct Endpoint {
    port: u16,
    state: Arc<EndpointState>,
    accepting: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct EndpointState {
    connections: AtomicUsize,
    requests: AtomicUsize,
    /// Bumped when the endpoint forgets its connections.
    generation: AtomicUsize,
    /// Read requests and never answer them.
    hang: std::sync::atomic::AtomicBool,
}

impl Endpoint {
    async fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(EndpointState::default());
        let accepting = tokio::spawn(accept(listener, Arc::clone(&state)));
        Endpoint {
            port,
            state,
            accepting,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Forgets every open connection without closing it, as a restarted endpoint behind NAT
    /// or a load balancer looks to a client: nothing arrives until the client sends on one,
    /// then the request is reset unread.
    fn forget_connections(&self) {
        self.state.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Stops listening and forgets every connection: new connections are refused.
    async fn stop(self) {
        self.forget_connections();
        self.accepting.abort();
        let _ = self.accepting.await;
    }
}

async fn accept(listener: TcpListener, state: Arc<EndpointState>) {
    while let Ok((stream, _)) = listener.accept().await {
        state.connections.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(answer(stream, Arc::clone(&state)));
    }
}

/// Answers requests on one connection until the client closes it.
async fn answer(mut stream: TcpStream, state: Arc<EndpointState>) {
    let generation = state.generation.load(Ordering::SeqCst);
    let mut buffer = Vec::new();
    loop {
        let Some(request_length) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        if state.generation.load(Ordering::SeqCst) != generation {
            // Dropped with SO_LINGER 0: the client gets a reset, the request is not processed.
            let _ = stream.set_zero_linger();
            return;
        }
        buffer.drain(..request_length);
        state.requests.fetch_add(1, Ordering::SeqCst);
        if state.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let response = b"HTTP/1.1 204 No Content\r\n\r\n";
        if stream.write_all(response).await.is_err() {
            return;
        }
    }
}

/// Reads until `buffer` holds a whole request; returns its length, or `None` at the end of
/// the connection.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(head_end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
            let body_length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            let request_length = head_end + 4 + body_length;
            if buffer.len() >= request_length {
                return Some(request_length);
            }
        }
        let mut chunk = [0_u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
}

async fn send(client: &DeliveryClient, url: &str) -> AttemptReport {
    let url = url::Url::parse(url).unwrap();
    client.send(test_request(&url)).await
}

/// A signed request to `url` with a fixed body and signature, none of a subscription's extras.
fn test_request(url: &url::Url) -> SignedRequest<'_> {
    SignedRequest {
        url,
        body: bytes::Bytes::from_static(b"{}"),
        content_type: Some(herald_core::event::STRUCTURED_CONTENT_TYPE.into()),
        headers: [
            ("webhook-id", "msg_test".to_owned()),
            ("webhook-timestamp", "0".to_owned()),
            ("webhook-signature", "v1,test".to_owned()),
        ],
        event_headers: Vec::new(),
        trace: None,
        origin: None,
        custom_headers: Vec::new(),
        client_certificate: None,
    }
}

fn failure_class(report: &AttemptReport) -> Option<FailureClass> {
    match report.result {
        AttemptResult::Failed { class } => Some(class),
        AttemptResult::Response { .. } => None,
    }
}

fn status(report: &AttemptReport) -> Option<u16> {
    match report.result {
        AttemptResult::Response { status, .. } => Some(status),
        AttemptResult::Failed { .. } => None,
    }
}

#[tokio::test]
async fn resolver_refuses_a_name_that_resolves_only_to_loopback() {
    let resolver = GuardedResolver::new(
        Arc::new(NetworkPolicy::public_only()),
        Arc::new(SystemLookups),
    );
    let resolved = reqwest::dns::Resolve::resolve(&resolver, "localhost".parse().unwrap()).await;
    let Err(err) = resolved else {
        panic!("localhost should be refused");
    };
    let text = err.to_string();
    assert!(text.contains(DENIED_MARKER), "{text}");
    assert!(text.contains("loopback"), "{text}");
}

#[tokio::test]
async fn resolver_passes_loopback_when_the_policy_allows_it() {
    let resolver = GuardedResolver::new(
        Arc::new(NetworkPolicy::new(true, false)),
        Arc::new(SystemLookups),
    );
    let resolved = reqwest::dns::Resolve::resolve(&resolver, "localhost".parse().unwrap())
        .await
        .unwrap_or_else(|err| panic!("localhost should resolve: {err}"));
    let addresses: Vec<_> = resolved.collect();
    assert!(!addresses.is_empty());
    assert!(
        addresses.iter().all(|addr| addr.ip().is_loopback()),
        "{addresses:?}"
    );
}

#[tokio::test]
async fn send_refuses_a_name_that_resolves_to_loopback_without_connecting() {
    let endpoint = Endpoint::start().await;
    let client = DeliveryClient::new(&config(), NetworkPolicy::public_only()).unwrap();
    let report = send(&client, &format!("http://localhost:{}/hook", endpoint.port)).await;
    assert_eq!(
        failure_class(&report),
        Some(FailureClass::DeniedAddress),
        "{:?}",
        report.error
    );
    assert_eq!(endpoint.connections(), 0);
}

/// IPv6 literals that carry 127.0.0.1: mapped, compatible, translated, NAT64, 6to4, Teredo.
const LOOPBACK_IN_IPV6: [&str; 6] = [
    "[::ffff:127.0.0.1]",
    "[::127.0.0.1]",
    "[::ffff:0:127.0.0.1]",
    "[64:ff9b::127.0.0.1]",
    "[2002:7f00:1::]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
];

#[tokio::test]
async fn send_refuses_ipv6_literals_that_embed_loopback_without_connecting() {
    let endpoint = Endpoint::start().await;
    let client = DeliveryClient::new(&config(), NetworkPolicy::public_only()).unwrap();
    for host in LOOPBACK_IN_IPV6 {
        let report = send(&client, &format!("http://{host}:{}/hook", endpoint.port)).await;
        assert_eq!(
            failure_class(&report),
            Some(FailureClass::DeniedAddress),
            "{host}: {:?}",
            report.error
        );
        let error = report.error.unwrap_or_default();
        assert!(error.contains("loopback"), "{host}: {error}");
    }
    assert_eq!(endpoint.connections(), 0);
}

#[tokio::test]
async fn send_delivers_to_loopback_names_and_mapped_literals_when_the_policy_allows_it() {
    // The positive control: these targets do reach the endpoint when nothing refuses them.
    let endpoint = Endpoint::start().await;
    let client = DeliveryClient::new(&config(), NetworkPolicy::new(true, false)).unwrap();
    for host in ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]"] {
        let report = send(&client, &format!("http://{host}:{}/hook", endpoint.port)).await;
        assert_eq!(status(&report), Some(204), "{host}: {:?}", report.error);
    }
    assert_eq!(endpoint.requests(), 3);
}

/// Returns a loopback port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_failure_is_described_without_the_sinks_path_or_query() {
    // Issue 10, defect 5: customers put tokens in sink paths and queries.
    let client = DeliveryClient::new(&config(), NetworkPolicy::new(true, false)).unwrap();
    let port = closed_port().await;
    let url = format!("http://127.0.0.1:{port}/hooks/path_5ecret?token=query_5ecret");
    let report = send(&client, &url).await;
    assert_eq!(failure_class(&report), Some(FailureClass::Connect));
    let error = report.error.unwrap_or_default();
    assert!(error.contains("Connection refused"), "{error}");
    assert!(!error.contains("5ecret"), "{error}");
}

#[tokio::test]
async fn a_request_whose_reused_connection_was_lost_is_sent_again_on_a_new_one() {
    // Issue 10, defect 13: after an endpoint restart, pooled connections to the old server
    // failed the next attempts with class `other`.
    let endpoint = Endpoint::start().await;
    let client = DeliveryClient::new(&config(), NetworkPolicy::new(true, false)).unwrap();
    let first = send(&client, &endpoint.url()).await;
    assert_eq!(status(&first), Some(204), "{:?}", first.error);
    endpoint.forget_connections();
    let second = send(&client, &endpoint.url()).await;
    assert_eq!(status(&second), Some(204), "{:?}", second.error);
    assert_eq!(endpoint.requests(), 2);
    assert_eq!(endpoint.connections(), 2);
}

#[tokio::test]
async fn a_refused_new_connection_still_fails_the_attempt() {
    let endpoint = Endpoint::start().await;
    let url = endpoint.url();
    let client = DeliveryClient::new(&config(), NetworkPolicy::new(true, false)).unwrap();
    let first = send(&client, &url).await;
    assert_eq!(status(&first), Some(204), "{:?}", first.error);
    endpoint.stop().await;
    let second = send(&client, &url).await;
    assert_eq!(
        failure_class(&second),
        Some(FailureClass::Connect),
        "{:?}",
        second.error
    );
}

#[tokio::test]
async fn a_request_the_endpoint_took_and_left_unanswered_is_not_sent_again() {
    let endpoint = Endpoint::start().await;
    endpoint.state.hang.store(true, Ordering::SeqCst);
    let mut config = config();
    config.request_timeout = Duration::from_millis(300);
    let client = DeliveryClient::new(&config, NetworkPolicy::new(true, false)).unwrap();
    let report = send(&client, &endpoint.url()).await;
    assert_eq!(failure_class(&report), Some(FailureClass::Timeout));
    assert_eq!(endpoint.requests(), 1);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_pool_idle_timeout() {
    let endpoint = Endpoint::start().await;
    let mut config = config();
    config.pool_idle_timeout = Duration::from_millis(100);
    let client = DeliveryClient::new(&config, NetworkPolicy::new(true, false)).unwrap();
    send(&client, &endpoint.url()).await;
    // Idle for many times the timeout: the connection is not reused.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    send(&client, &endpoint.url()).await;
    assert_eq!(endpoint.requests(), 2);
    assert_eq!(endpoint.connections(), 2);
}

#[tokio::test]
async fn idle_connections_are_reused_within_the_pool_idle_timeout() {
    let endpoint = Endpoint::start().await;
    let client = DeliveryClient::new(&config(), NetworkPolicy::new(true, false)).unwrap();
    for _ in 0..3 {
        send(&client, &endpoint.url()).await;
    }
    assert_eq!(endpoint.requests(), 3);
    assert_eq!(endpoint.connections(), 1);
}

#[tokio::test]
async fn requests_to_one_host_wait_for_its_bound_within_the_request_timeout() {
    let endpoint = Endpoint::start().await;
    let mut config = config();
    config.request_timeout = Duration::from_millis(300);
    let mut client = DeliveryClient::new(&config, NetworkPolicy::new(true, false)).unwrap();
    client.hosts = Arc::new(HostLimits::new(1));
    // Another subscription's request to the same host holds its only slot throughout (held
    // here, so no deadline of its own can race this one's).
    let first_url = url::Url::parse(&endpoint.url()).unwrap();
    let _held = client.hosts.acquire(&first_url).await;
    let second_url = format!("http://127.0.0.1:{}/other", endpoint.port);
    let second = send(&client, &second_url).await;
    assert_eq!(failure_class(&second), Some(FailureClass::Timeout));
    let error = second.error.unwrap_or_default();
    assert!(error.contains("requests in flight"), "{error}");
    // The waiting request was never sent.
    assert_eq!(endpoint.requests(), 0);
    assert_eq!(endpoint.connections(), 0);
}

#[tokio::test]
async fn a_request_waiting_for_its_host_goes_out_when_another_finishes() {
    let endpoint = Endpoint::start().await;
    let mut client = DeliveryClient::new(&config(), NetworkPolicy::new(true, false)).unwrap();
    client.hosts = Arc::new(HostLimits::new(1));
    let url = endpoint.url();
    let reports = futures::future::join_all((0..4).map(|_| send(&client, &url))).await;
    for report in &reports {
        assert_eq!(status(report), Some(204), "{:?}", report.error);
    }
    // One at a time, so one connection served them all.
    assert_eq!(endpoint.requests(), 4);
    assert_eq!(endpoint.connections(), 1);
}

#[tokio::test]
async fn hosts_are_told_apart_by_scheme_host_and_port_and_unused_ones_are_forgotten() {
    let limits = HostLimits::new(1);
    let url = |text: &str| url::Url::parse(text).unwrap();
    let held = limits.acquire(&url("http://a.example/one")).await;
    // Another path of the same host waits; the default port is the same host.
    let same = tokio::time::timeout(
        Duration::from_millis(50),
        limits.acquire(&url("http://a.example:80/two")),
    )
    .await;
    assert!(same.is_err(), "the same host should wait");
    let other = tokio::time::timeout(
        Duration::from_millis(50),
        limits.acquire(&url("http://a.example:8080/one")),
    )
    .await;
    assert!(other.is_ok(), "another port is another host");
    drop(other);
    drop(held);
    assert_eq!(limits.num_hosts(), 2);
    for index in 0..2_000 {
        drop(
            limits
                .acquire(&url(&format!("http://h{index}.example/")))
                .await,
        );
    }
    assert!(limits.num_hosts() <= 1_024, "{}", limits.num_hosts());
}
