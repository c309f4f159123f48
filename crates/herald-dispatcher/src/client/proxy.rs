//! Deliveries through the egress proxy (`dispatcher.egress_proxy`): the reqwest proxy, the
//! check of a target's name before a request leaves, and what a failure to reach the proxy is
//! called.
//!
//! Through a proxy, Herald connects only to the proxy, which resolves the target's name
//! itself: the resolver's guard (`resolver.rs`) never sees the target's addresses. So the
//! client resolves each target name itself before sending and judges the addresses by the
//! same policy; a name with any denied address is refused, since the proxy, not Herald, picks
//! the address it connects to. IP literals and names refused by their spelling are refused
//! before, as without a proxy. The proxy's own address is exempt: the operator chose it.
//!
//! The proxy resolves the name again, so a name rebound between the two lookups reaches what
//! the proxy allows: refusing private ranges there is the proxy's access control's job.

use std::net::IpAddr;
use std::time::Instant;

use herald_core::delivery::FailureClass;
use herald_core::network::NetworkPolicy;

use crate::config::ProxyEndpoint;
use crate::{Error, Result};

use super::DeliveryClient;
use super::resolver::DENIED_MARKER;

/// The egress proxy a client sends through.
pub(super) struct EgressRoute {
    endpoint: ProxyEndpoint,
}

impl EgressRoute {
    pub(super) fn new(endpoint: ProxyEndpoint) -> EgressRoute {
        EgressRoute { endpoint }
    }

    /// Returns the proxy for reqwest: every request, http and https alike (CONNECT), with the
    /// credentials as `Proxy-Authorization: Basic`. The URL handed to reqwest has no user or
    /// password, so nothing reqwest logs or reports can show them.
    pub(super) fn reqwest_proxy(&self) -> Result<reqwest::Proxy> {
        let proxy = reqwest::Proxy::all(self.endpoint.url.as_str()).map_err(|err| {
            Error::Client(format!(
                "the egress proxy {} is unusable: {err}",
                self.endpoint.address
            ))
        })?;
        Ok(match &self.endpoint.credentials {
            Some(credentials) => proxy.basic_auth(&credentials.user, &credentials.password),
            None => proxy,
        })
    }

    /// The proxy's host name, which the resolver resolves without the policy.
    pub(super) fn name(&self) -> Option<String> {
        self.endpoint.name.clone()
    }

    /// Returns what went wrong with a request through the proxy when the failure is the
    /// proxy's, naming the proxy by host and port: it could not be reached, refused the tunnel
    /// or asked for credentials; `None` for any other failure. `chain` is the error's text
    /// without the request's URL.
    pub(super) fn describe(
        &self,
        err: &reqwest::Error,
        target: &url::Url,
        chain: &str,
    ) -> Option<String> {
        if !err.is_connect() {
            return None;
        }
        let proxy = &self.endpoint.address;
        if chain.contains("tunnel error: proxy authorization required") {
            return Some(format!(
                "the egress proxy {proxy} asked for credentials (407) and refused the tunnel to \
                 the endpoint: {chain}"
            ));
        }
        if chain.contains("tunnel error: unsuccessful") {
            return Some(format!(
                "the egress proxy {proxy} refused to open a tunnel to the endpoint: {chain}"
            ));
        }
        if chain.contains("tunnel error: unexpected end of file")
            || chain.contains("tunnel error: io error establishing tunnel")
        {
            return Some(format!(
                "the egress proxy {proxy} closed the connection while opening a tunnel to the \
                 endpoint: {chain}"
            ));
        }
        // Herald connects to nothing but the proxy: for an http sink every connect error is
        // the proxy's, for an https sink those before the tunnel.
        let reaching_proxy = target.scheme() == "http"
            || chain.contains("tunnel error: failed to create underlying connection");
        reaching_proxy.then(|| format!("failed to reach the egress proxy {proxy}: {chain}"))
    }
}
impl DeliveryClient {
    /// Through the egress proxy, resolves the target's name (an IP literal needs none) and
    /// refuses it when the lookup fails or any address is one the policy denies: the proxy
    /// would connect without the resolver's guard. Bounded by `connect_timeout` and what is
    /// left of the attempt. Without a proxy the resolver judges at connect, and this does
    /// nothing.
    pub(super) async fn refuse_target_through_proxy(
        &self,
        url: &url::Url,
        started: Instant,
    ) -> Option<(FailureClass, String)> {
        self.proxy.as_ref()?;
        let Some(url::Host::Domain(host)) = url.host() else {
            return None;
        };
        let remaining = self.request_timeout.saturating_sub(started.elapsed());
        let deadline = self.connect_timeout.min(remaining);
        let lookup = tokio::time::timeout(deadline, self.lookups.lookup(host)).await;
        let resolved = match lookup {
            Err(_) => {
                return Some((
                    FailureClass::Timeout,
                    format!("dns error: failed to lookup {host}: timed out"),
                ));
            }
            Ok(Err(err)) => {
                return Some((
                    FailureClass::Dns,
                    format!("dns error: failed to lookup {host}: {err}"),
                ));
            }
            Ok(Ok(resolved)) => resolved,
        };
        if resolved.is_empty() {
            return Some((
                FailureClass::Dns,
                format!("dns error: failed to lookup {host}: no addresses"),
            ));
        }
        judge(&self.policy, host, &resolved).map(|error| (FailureClass::DeniedAddress, error))
    }
}

/// Returns why `host`, resolved to `resolved`, may not be sent to through the proxy: every
/// address denied (the resolver's refusal, word for word), or one denied among allowed ones.
fn judge(policy: &NetworkPolicy, host: &str, resolved: &[IpAddr]) -> Option<String> {
    let denied: Vec<_> = resolved
        .iter()
        .filter_map(|ip| policy.denied_range(*ip))
        .collect();
    let first = denied.first()?;
    if denied.len() == resolved.len() {
        Some(format!("{host} {DENIED_MARKER} ({first})"))
    } else {
        Some(format!(
            "{host} resolves to addresses the network policy denies ({first}) among others; the \
             egress proxy would pick among them, so the name is refused"
        ))
    }
}
