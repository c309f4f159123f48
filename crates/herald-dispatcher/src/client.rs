//! The delivery HTTP client: timeouts, no redirects, no proxy, and a resolver that refuses
//! addresses the network policy forbids (server-side request forgery guard).
//!
//! Names are checked when they are resolved (`resolver.rs`), so DNS rebinding cannot slip a
//! private address in after a check; IP-literal URLs bypass reqwest's resolver and are checked
//! before sending.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use herald_core::delivery::{AttemptResult, FailureClass};
use herald_core::network::NetworkPolicy;
use herald_core::record::{MAX_RECORDED_BODY, RECORDED_HEADERS};

use crate::{Config, Error, Result};

use self::resolver::{DENIED_MARKER, GuardedResolver};

mod resolver;
#[cfg(test)]
mod tests;

/// A signed request ready to send.
pub(crate) struct SignedRequest<'a> {
    pub(crate) url: &'a url::Url,
    pub(crate) body: Bytes,
    pub(crate) headers: [(&'static str, String); 3],
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
    http: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    max_body_bytes: usize,
}

impl DeliveryClient {
    pub(crate) fn new(config: &Config, policy: NetworkPolicy) -> Result<DeliveryClient> {
        // reqwest is built without a default crypto provider; ring is the process's one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = Arc::new(policy);
        let resolver = Arc::new(GuardedResolver::new(Arc::clone(&policy)));
        let http = reqwest::Client::builder()
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(resolver)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|err| Error::Client(err.to_string()))?;
        Ok(DeliveryClient {
            http,
            policy,
            max_body_bytes: config.max_response_body_bytes,
        })
    }

    /// Performs one attempt; never fails, the failure is in the report.
    pub(crate) async fn send(&self, request: SignedRequest<'_>) -> AttemptReport {
        let started = Instant::now();
        let literal = match request.url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(range) = literal.and_then(|ip| self.policy.denied_range(ip)) {
            let error = format!("{range} addresses are not allowed as delivery targets");
            return AttemptReport::failed(FailureClass::DeniedAddress, started.elapsed(), error);
        }
        let mut builder = self
            .http
            .post(request.url.clone())
            .header(
                http::header::CONTENT_TYPE,
                herald_core::event::STRUCTURED_CONTENT_TYPE,
            )
            .body(request.body);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        let mut response = match builder.send().await {
            Ok(response) => response,
            Err(err) => {
                let class = failure_class(&err);
                return AttemptReport::failed(class, started.elapsed(), describe_failure(err));
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

fn failure_class(err: &reqwest::Error) -> FailureClass {
    let chain = error_chain(err);
    if err.is_timeout() {
        FailureClass::Timeout
    } else if chain.contains(DENIED_MARKER) {
        FailureClass::DeniedAddress
    } else if chain.contains("dns error") || chain.contains("failed to lookup") {
        FailureClass::Dns
    } else if err.is_connect() {
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
