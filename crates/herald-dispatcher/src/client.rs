//! The delivery HTTP client: timeouts, no redirects, no proxy unless `dispatcher.egress_proxy`
//! names one (`proxy.rs`), and a resolver that refuses addresses the network policy forbids
//! (server-side request forgery guard).
//!
//! Names are checked when they are resolved (`resolver.rs`), so DNS rebinding cannot slip a
//! private address in after a check; IP-literal URLs bypass reqwest's resolver and are checked
//! before sending, and so are names the policy refuses by their spelling (`localhost`). The
//! URL is a `url::Url`, which has already turned every numeric spelling of an IPv4 address
//! (decimal, octal, hex, short forms) into the address.
//!
//! Requests to one endpoint host share a bound (`hosts.rs`, `dispatcher.max_in_flight_per_host`):
//! however many subscriptions send to it, at most that many requests to it are in flight at
//! once, each on its own keep-alive connection. The scheduler takes an event's place before it
//! starts the attempt ([`DeliveryClient::send_permitted`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::RequestBuilder;

use herald_core::Event;
use herald_core::delivery::{AttemptResult, FailureClass};
use herald_core::event::MessageId;
use herald_core::network::NetworkPolicy;
use herald_core::record::{MAX_RECORDED_BODY, RECORDED_HEADERS};
use herald_core::subscription::ContentMode;

use crate::{Config, Error, Result};

use herald_core::SubscriptionId;
use herald_core::subscription::ClientCertificate;

use self::hosts::HostLimits;
use self::identity::{ClientPair, IdentityClients};
use self::proxy::EgressRoute;
use self::resolver::{DENIED_MARKER, GuardedResolver, Lookups, SystemLookups};

mod handshake;
mod hosts;
mod identity;
mod proxy;
mod resolver;
#[cfg(test)]
mod tests;

/// A signed request ready to send.
pub(crate) struct SignedRequest<'a> {
    pub(crate) url: &'a url::Url,
    pub(crate) body: Bytes,
    /// The body's media type: `application/cloudevents+json` in structured mode, the data's in
    /// binary mode (none for an event without data or `datacontenttype`).
    pub(crate) content_type: Option<Cow<'static, str>>,
    /// The Standard Webhooks headers: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    pub(crate) headers: [(&'static str, String); 3],
    /// The event's `ce-` headers in binary mode; empty in structured mode.
    pub(crate) event_headers: Vec<(String, String)>,
    /// Sent as `traceparent`/`tracestate`, so the endpoint's tracing continues the trace.
    pub(crate) trace: Option<herald_core::trace::TraceContext>,
    /// Sent as `WebHook-Request-Origin` to an endpoint that consented
    /// (`Subscription::consented_origin`); none otherwise.
    pub(crate) origin: Option<String>,
    /// The subscription's custom headers (`Subscription::headers`), unsigned; validated when
    /// stored, so none collides with a header Herald sets.
    pub(crate) custom_headers: Vec<herald_core::subscription::CustomHeader>,
    /// The subscription's client certificate, presented when the endpoint asks for one.
    pub(crate) client_certificate: Option<(&'a SubscriptionId, &'a ClientCertificate)>,
}

impl<'a> SignedRequest<'a> {
    /// Lays `event` out in the subscription's content mode and signs the body exactly as it
    /// will be sent with every key valid at `timestamp`; `webhook-id` is the event's message
    /// id (`Event::message_id`, derived once per attempt by the caller), the same for every
    /// attempt and either mode.
    ///
    /// An event whose binary form cannot be read (none can: every stored event was validated
    /// when it was decoded) is sent structured rather than not at all, with an error logged.
    pub(crate) fn new(
        url: &'a url::Url,
        keys: &herald_signing::Keys,
        event: &Event,
        message_id: &MessageId,
        mode: ContentMode,
        timestamp: i64,
        trace: Option<herald_core::trace::TraceContext>,
    ) -> SignedRequest<'a> {
        let structured = || {
            (
                event.structured().clone(),
                Some(Cow::Borrowed(herald_core::event::STRUCTURED_CONTENT_TYPE)),
                Vec::new(),
            )
        };
        let (body, content_type, event_headers) = match mode {
            ContentMode::Structured => structured(),
            ContentMode::Binary => match event.to_binary() {
                Ok(binary) => (
                    binary.body,
                    binary.content_type.map(Cow::Owned),
                    binary.headers,
                ),
                Err(err) => {
                    tracing::error!(
                        error = %err,
                        "the event has no binary form; sending it structured"
                    );
                    structured()
                }
            },
        };
        let signature = herald_signing::sign_all(keys, message_id.as_str(), timestamp, &body);
        SignedRequest {
            url,
            body,
            content_type,
            headers: [
                (herald_signing::HEADER_ID, message_id.to_string()),
                (herald_signing::HEADER_TIMESTAMP, timestamp.to_string()),
                (herald_signing::HEADER_SIGNATURE, signature),
            ],
            event_headers,
            trace,
            origin: None,
            custom_headers: Vec::new(),
            client_certificate: None,
        }
    }

    /// Presents the subscription's client certificate, if it has one, when the endpoint asks
    /// for one (https only).
    pub(crate) fn with_client_certificate(
        self,
        subscription: &'a SubscriptionId,
        certificate: Option<&'a ClientCertificate>,
    ) -> SignedRequest<'a> {
        SignedRequest {
            client_certificate: certificate.map(|certificate| (subscription, certificate)),
            ..self
        }
    }

    /// Sends the subscription's custom headers with the request (unsigned, like `traceparent`).
    pub(crate) fn with_headers(
        self,
        headers: &[herald_core::subscription::CustomHeader],
    ) -> SignedRequest<'a> {
        SignedRequest {
            custom_headers: headers.to_vec(),
            ..self
        }
    }

    /// Sends `WebHook-Request-Origin: origin` with the request (unsigned, like `traceparent`).
    pub(crate) fn with_origin(self, origin: Option<&str>) -> SignedRequest<'a> {
        SignedRequest {
            origin: origin.map(str::to_owned),
            ..self
        }
    }
}

/// What one attempt produced.
pub(crate) struct AttemptReport {
    pub(crate) result: AttemptResult,
    pub(crate) elapsed: Duration,
    pub(crate) error: Option<String>,
    /// The response headers worth recording (`record::RECORDED_HEADERS`).
    pub(crate) response_headers: BTreeMap<String, String>,
    /// The first `record::MAX_RECORDED_BODY` bytes of the response body.
    pub(crate) response_body: Vec<u8>,
}

impl AttemptReport {
    fn failed(class: FailureClass, elapsed: Duration, error: String) -> AttemptReport {
        AttemptReport {
            result: AttemptResult::Failed { class },
            elapsed,
            error: Some(error),
            response_headers: BTreeMap::new(),
            response_body: Vec::new(),
        }
    }
}

/// Sends deliveries; cheap to clone.
#[derive(Clone)]
pub(crate) struct DeliveryClient {
    /// Keeps idle keep-alive connections for `pool_idle_timeout`.
    http: reqwest::Client,
    /// Keeps no idle connections: every request gets a new one. Sends a request again whose
    /// reused connection was lost before any response.
    fresh: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    /// Requests in flight per endpoint host, across subscriptions.
    hosts: Arc<HostLimits>,
    max_body_bytes: usize,
    request_timeout: Duration,
    connect_timeout: Duration,
    /// Resolves target names through the egress proxy (`proxy.rs`); the resolver's otherwise.
    lookups: Arc<dyn Lookups>,
    /// The egress proxy every request goes through, if any.
    proxy: Option<Arc<EgressRoute>>,
    /// Counts requests the egress proxy failed (`herald_dispatch_egress_proxy_failures_total`).
    proxy_failures: prometheus::IntCounter,
    /// How `http` and `fresh` were built, to build the certificate clients alike.
    recipe: Arc<ClientRecipe>,
    /// Clients presenting subscriptions' client certificates (`identity.rs`).
    identities: Arc<IdentityClients>,
}

/// Every setting of the delivery clients, so a client presenting a certificate differs from
/// the shared one by its certificate only.
struct ClientRecipe {
    policy: Arc<NetworkPolicy>,
    lookups: Arc<dyn Lookups>,
    proxy: Option<Arc<EgressRoute>>,
    /// The only TLS roots trusted when not empty (tests' own CA); the platform's otherwise.
    roots: Vec<reqwest::Certificate>,
    /// Trusted beside the platform's roots (`dispatcher.endpoint_ca_file`).
    extra_roots: Vec<reqwest::Certificate>,
    request_timeout: Duration,
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    per_host: usize,
}

impl ClientRecipe {
    /// Builds a client keeping idle connections (`pooled`) or none, presenting `identity`
    /// when given.
    fn build(
        &self,
        pooled: bool,
        identity: Option<reqwest::Identity>,
    ) -> std::result::Result<reqwest::Client, String> {
        let resolver = GuardedResolver::new(Arc::clone(&self.policy), Arc::clone(&self.lookups))
            .exempting(self.proxy.as_ref().and_then(|proxy| proxy.name()));
        let builder = reqwest::Client::builder()
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
            .timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(resolver))
            .tcp_nodelay(true);
        let builder = match &self.proxy {
            Some(proxy) => builder.proxy(proxy.reqwest_proxy().map_err(|err| err.to_string())?),
            None => builder.no_proxy(),
        };
        let builder = if !self.roots.is_empty() {
            builder.tls_certs_only(self.roots.iter().cloned())
        } else if !self.extra_roots.is_empty() {
            builder.tls_certs_merge(self.extra_roots.iter().cloned())
        } else {
            builder
        };
        let builder = match identity {
            Some(identity) => builder.identity(identity),
            None => builder,
        };
        let builder = if pooled && !self.pool_idle_timeout.is_zero() {
            // A host never has more requests in flight than this, so it never needs more
            // idle connections either.
            builder
                .pool_idle_timeout(self.pool_idle_timeout)
                .pool_max_idle_per_host(self.per_host)
        } else {
            builder.pool_max_idle_per_host(0)
        };
        builder.build().map_err(|err| err.to_string())
    }
}

impl DeliveryClient {
    pub(crate) fn new(config: &Config, policy: NetworkPolicy) -> Result<DeliveryClient> {
        DeliveryClient::with_lookups(config, policy, Arc::new(SystemLookups))
    }

    /// Builds a client that resolves names with `lookups` (tests pass a fixed table, so no
    /// name is ever looked up outside the test).
    pub(crate) fn with_lookups(
        config: &Config,
        policy: NetworkPolicy,
        lookups: Arc<dyn Lookups>,
    ) -> Result<DeliveryClient> {
        DeliveryClient::build(config, policy, lookups, Vec::new())
    }

    /// Builds a client that trusts only `roots` for TLS (tests' own CA).
    #[cfg(test)]
    pub(crate) fn trusting(
        config: &Config,
        policy: NetworkPolicy,
        lookups: Arc<dyn Lookups>,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<DeliveryClient> {
        DeliveryClient::build(config, policy, lookups, roots)
    }

    /// Counts the requests the egress proxy fails into `counter`.
    pub(crate) fn with_proxy_failures(self, counter: prometheus::IntCounter) -> DeliveryClient {
        DeliveryClient {
            proxy_failures: counter,
            ..self
        }
    }

    /// Builds the client; `roots`, when not empty, are the only TLS roots trusted (the
    /// platform's otherwise).
    fn build(
        config: &Config,
        policy: NetworkPolicy,
        lookups: Arc<dyn Lookups>,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<DeliveryClient> {
        // reqwest is built without a default crypto provider; ring is the process's one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = Arc::new(policy);
        let per_host = config.max_in_flight_per_host;
        let proxy = config
            .egress_proxy()
            .map_err(Error::Client)?
            .map(|endpoint| Arc::new(EgressRoute::new(endpoint)));
        let recipe = Arc::new(ClientRecipe {
            policy: Arc::clone(&policy),
            lookups: Arc::clone(&lookups),
            proxy: proxy.clone(),
            roots,
            extra_roots: config.endpoint_roots().map_err(Error::Client)?,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
            pool_idle_timeout: config.pool_idle_timeout,
            per_host,
        });
        let build = |pooled: bool| recipe.build(pooled, None).map_err(Error::Client);
        Ok(DeliveryClient {
            http: build(true)?,
            fresh: build(false)?,
            policy,
            hosts: Arc::new(HostLimits::new(per_host)),
            max_body_bytes: config.max_response_body_bytes,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
            lookups,
            proxy,
            proxy_failures: crate::metrics::egress_proxy_failures()
                .map_err(|err| Error::Client(err.to_string()))?,
            recipe,
            identities: Arc::new(IdentityClients::default()),
        })
    }

    /// The clients `request` goes out with: the shared ones, or those presenting its
    /// subscription's client certificate (`identity.rs`).
    fn clients_for(
        &self,
        client_certificate: Option<(&SubscriptionId, &ClientCertificate)>,
    ) -> std::result::Result<ClientPair, String> {
        let Some((subscription, certificate)) = client_certificate else {
            return Ok(ClientPair {
                http: self.http.clone(),
                fresh: self.fresh.clone(),
            });
        };
        self.identities
            .get_or_build(subscription, certificate, |identity| {
                Ok(ClientPair {
                    http: self.recipe.build(true, Some(identity.clone()))?,
                    fresh: self.recipe.build(false, Some(identity))?,
                })
            })
    }

    /// Drops the clients presenting `subscription`'s client certificate: it was deleted, or
    /// has no certificate any more.
    pub(crate) fn forget_client_certificate(&self, subscription: &SubscriptionId) {
        self.identities.forget(subscription);
    }

    /// How many subscriptions' certificate clients are kept (for tests).
    #[cfg(test)]
    pub(crate) fn client_certificate_clients(&self) -> usize {
        self.identities.len()
    }

    /// Performs one attempt; never fails, the failure is in the report.
    ///
    /// Waits for a place among the requests in flight to the endpoint's host first, within the
    /// attempt's deadline (test sends, `test_send.rs`); [`DeliveryClient::send_permitted`]
    /// sends with a place already taken.
    pub(crate) async fn send(&self, request: SignedRequest<'_>) -> AttemptReport {
        let started = Instant::now();
        if let Some(report) = self.refuse_denied_host(&request, started) {
            return report;
        }
        // Waiting for the host counts against the attempt's deadline, so an attempt still
        // takes at most `request_timeout` (the consumer's ack wait assumes so).
        let acquired =
            tokio::time::timeout(self.request_timeout, self.hosts.acquire(request.url)).await;
        let Ok(permit) = acquired else {
            let error = format!(
                "waited the whole request timeout for one of the {} requests in flight to the \
                 endpoint's host to finish",
                self.hosts.per_host()
            );
            return AttemptReport::failed(FailureClass::Timeout, started.elapsed(), error);
        };
        Box::pin(self.send_now(&request, HostPermit { _held: permit }, started)).await
    }

    /// Performs one attempt with its place among the host's requests already taken
    /// ([`DeliveryClient::try_host_permit`], [`DeliveryClient::host_permit`]): what the
    /// scheduler does, so an event waiting for its host waits in its lane, not as an attempt.
    ///
    /// A request whose connection is closed or reset before any of the response arrived (what
    /// a pooled keep-alive connection to a restarted or idle-closing server produces) is sent
    /// once more at once on a new connection, within the same deadline, and only the second
    /// result counts. The endpoint cannot have answered the first; should it have processed it
    /// all the same, the retry is a duplicate with the same `webhook-id`, which Standard
    /// Webhooks receivers deduplicate. reqwest does not say whether a connection was reused,
    /// so a new connection lost the same way gets the second chance too. Timeouts, refused
    /// connections and answered requests are never sent again here.
    pub(crate) async fn send_permitted(
        &self,
        request: SignedRequest<'_>,
        permit: HostPermit,
    ) -> AttemptReport {
        let started = Instant::now();
        if let Some(report) = self.refuse_denied_host(&request, started) {
            return report;
        }
        // The request's own future (reqwest's, several KiB) exists only while it runs.
        Box::pin(self.send_now(&request, permit, started)).await
    }

    /// A place for a request to `url`'s host now, or `None` while the host has
    /// `max_in_flight_per_host` requests in flight (or others wait for a place, who come first).
    pub(crate) fn try_host_permit(&self, url: &url::Url) -> Option<HostPermit> {
        self.hosts
            .try_acquire(url)
            .map(|held| HostPermit { _held: held })
    }

    /// Waits for a place for a request to `url`'s host, first come first served across
    /// subscriptions.
    pub(crate) fn host_permit(
        &self,
        url: &url::Url,
    ) -> impl Future<Output = HostPermit> + Send + 'static {
        let acquire = self.hosts.acquire(url);
        async move {
            HostPermit {
                _held: acquire.await,
            }
        }
    }

    /// Refuses a sink whose host the policy forbids by its spelling (an IP literal, a name
    /// such as `localhost`) before any connection; names are checked again when resolved.
    fn refuse_denied_host(
        &self,
        request: &SignedRequest<'_>,
        started: Instant,
    ) -> Option<AttemptReport> {
        let range = request
            .url
            .host()
            .and_then(|host| self.policy.denied_host(&host))?;
        let error = format!("{range} addresses are not allowed as delivery targets");
        Some(AttemptReport::failed(
            FailureClass::DeniedAddress,
            started.elapsed(),
            error,
        ))
    }

    /// Sends a request whose host permit is held (until the response is read); `started` is
    /// when the attempt began.
    async fn send_now(
        &self,
        request: &SignedRequest<'_>,
        _permit: HostPermit,
        started: Instant,
    ) -> AttemptReport {
        if let Some((class, error)) = self.refuse_target_through_proxy(request.url, started).await {
            return AttemptReport::failed(class, started.elapsed(), error);
        }
        let clients = match self.clients_for(request.client_certificate) {
            Ok(clients) => clients,
            Err(error) => {
                return AttemptReport::failed(FailureClass::Other, started.elapsed(), error);
            }
        };
        let remaining = self.request_timeout.saturating_sub(started.elapsed());
        let sent = match self
            .post(&clients.http, request)
            .timeout(remaining)
            .send()
            .await
        {
            Err(err) if connection_lost_before_response(&err) => {
                let remaining = self.request_timeout.saturating_sub(started.elapsed());
                if remaining.is_zero() {
                    Err(err)
                } else {
                    tracing::debug!(
                        error = describe_failure(err).as_str(),
                        "connection lost before a response; sending again on a new connection"
                    );
                    self.post(&clients.fresh, request)
                        .timeout(remaining)
                        .send()
                        .await
                }
            }
            sent => sent,
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => {
                let class = failure_class(&err);
                let error = self.describe_request_failure(err, request.url);
                return AttemptReport::failed(class, started.elapsed(), error);
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let response_headers = RECORDED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = response.headers().get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), value.chars().take(256).collect()))
            })
            .collect();
        // Read (a bounded part of) the body so the connection can be reused; a hostile endpoint
        // cannot make us buffer more than the cap, and only a prefix is kept.
        let mut read = 0_usize;
        let mut response_body = Vec::new();
        while read <= self.max_body_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    let room = MAX_RECORDED_BODY.saturating_sub(response_body.len());
                    response_body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        AttemptReport {
            result: AttemptResult::Response {
                status,
                retry_after,
            },
            elapsed: started.elapsed(),
            error: None,
            response_headers,
            response_body,
        }
    }
}

/// A place among the requests in flight to one endpoint host; the place is free again when
/// this is dropped.
pub(crate) struct HostPermit {
    _held: tokio::sync::OwnedSemaphorePermit,
}

impl DeliveryClient {
    /// Returns what went wrong, as [`describe_failure`] does, naming the egress proxy by host
    /// and port when the failure is the proxy's (and counting it).
    fn describe_request_failure(&self, err: reqwest::Error, target: &url::Url) -> String {
        let err = err.without_url();
        let chain = error_chain(&err);
        let Some(proxy) = &self.proxy else {
            return chain;
        };
        match proxy.describe(&err, target, &chain) {
            Some(error) => {
                self.proxy_failures.inc();
                error
            }
            None => chain,
        }
    }

    fn post(&self, client: &reqwest::Client, request: &SignedRequest<'_>) -> RequestBuilder {
        let mut builder = client.post(request.url.clone()).body(request.body.clone());
        for header in &request.custom_headers {
            builder = builder.header(header.name.as_str(), header.value.as_str());
        }
        if let Some(content_type) = &request.content_type {
            builder = builder.header(http::header::CONTENT_TYPE, content_type.as_ref());
        }
        for (name, value) in &request.event_headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_str());
        }
        if let Some(origin) = &request.origin {
            builder = builder.header(
                herald_core::subscription::consent::REQUEST_ORIGIN,
                origin.as_str(),
            );
        }
        if let Some(trace) = &request.trace {
            builder = builder.header(herald_core::trace::TRACEPARENT, trace.traceparent());
            if let Some(state) = trace.tracestate() {
                builder = builder.header(herald_core::trace::TRACESTATE, state);
            }
        }
        builder
    }
}

/// Returns whether a request failed because its established connection was closed or reset
/// before any of the response arrived: not while connecting, not at the deadline, not after
/// the response began (reqwest returns a response as soon as its head arrived).
fn connection_lost_before_response(err: &reqwest::Error) -> bool {
    if !err.is_request() || err.is_connect() || err.is_timeout() {
        return false;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        // hyper's `Error::is_incomplete_message`: the connection closed before the response's
        // head was complete; hyper is not a direct dependency, so its text is matched.
        if cause.to_string() == INCOMPLETE_MESSAGE {
            return true;
        }
        source = cause.source();
    }
    false
}

/// hyper's description of a connection closed before the response was complete.
const INCOMPLETE_MESSAGE: &str = "connection closed before message completed";

/// rustls's description of an alert the peer ended TLS with. An endpoint that refuses the
/// client certificate (none, or one it does not trust) sends it only after the client, in TLS
/// 1.3, has finished its side of the handshake and sent the request, so reqwest reports a
/// request error rather than a connect error; it is classed as the TLS failure it is,
/// `connect`, like an endpoint certificate Herald does not trust.
const TLS_ALERT: &str = "received fatal alert";

fn failure_class(err: &reqwest::Error) -> FailureClass {
    let chain = error_chain(err);
    if err.is_timeout() {
        FailureClass::Timeout
    } else if chain.contains(DENIED_MARKER) {
        FailureClass::DeniedAddress
    } else if chain.contains("dns error") || chain.contains("failed to lookup") {
        FailureClass::Dns
    } else if err.is_connect() || chain.contains(TLS_ALERT) {
        FailureClass::Connect
    } else {
        FailureClass::Other
    }
}

/// Returns what went wrong, causes included, without the request's URL: the text goes into
/// logs, attempt records, dead letters and `dev.herald.attempt.exhausted` events, and a sink's
/// path and query may carry tokens (sinks are logged by host only).
fn describe_failure(err: reqwest::Error) -> String {
    error_chain(&err.without_url())
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
