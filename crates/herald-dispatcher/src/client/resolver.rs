//! The delivery client's name resolver: the system resolver, minus every address the network
//! policy denies.
//!
//! reqwest connects only to the addresses a resolver returns, so a name is judged at every
//! connection, and DNS rebinding cannot slip a private address in after a check.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use herald_core::network::NetworkPolicy;

/// Part of the error text of a name that resolves only to denied addresses; the client's
/// failure classification looks for it.
pub(super) const DENIED_MARKER: &str = "resolves only to addresses the network policy denies";

/// Resolves with the system resolver and drops addresses the policy denies.
pub(super) struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
}

impl GuardedResolver {
    pub(super) fn new(policy: Arc<NetworkPolicy>) -> GuardedResolver {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|err| format!("dns error: failed to lookup {host}: {err}"))?
                .collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| policy.denied_range(addr.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                let denied = resolved
                    .first()
                    .and_then(|addr| policy.denied_range(addr.ip()));
                let range = denied.map(|range| range.to_string()).unwrap_or_default();
                return Err(format!("{host} {DENIED_MARKER} ({range})").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}
