//! The delivery client's name resolver: a lookup (the system resolver in production, a fixed
//! table in tests), minus every address the network policy denies.
//!
//! reqwest connects only to the addresses a resolver returns, so a name is judged at every
//! connection, and DNS rebinding cannot slip a private address in after a check. Names the
//! policy refuses by their spelling (`localhost`, `*.localhost`, cloud metadata names) are
//! refused before any lookup.
//!
//! With an egress proxy (`proxy.rs`) reqwest resolves only the proxy's name, which the operator
//! chose and which is exempt; every other name is still judged.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use herald_core::network::NetworkPolicy;

/// Part of the error text of a name that resolves only to denied addresses; the client's
/// failure classification looks for it.
pub(super) const DENIED_MARKER: &str = "resolves only to addresses the network policy denies";

/// The addresses a lookup found for a name.
pub(crate) type Lookup = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Turns host names into addresses; the guard judges what it returns.
pub(crate) trait Lookups: Send + Sync + 'static {
    fn lookup(&self, host: &str) -> Lookup;
}

/// The operating system's resolver (getaddrinfo, through tokio).
pub(crate) struct SystemLookups;

impl Lookups for SystemLookups {
    fn lookup(&self, host: &str) -> Lookup {
        let host = host.to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(resolved.map(|addr| addr.ip()).collect())
        })
    }
}

/// Resolves with its lookups and drops addresses the policy denies.
pub(super) struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
    lookups: Arc<dyn Lookups>,
    /// The egress proxy's host name, resolved without the policy.
    exempt: Option<String>,
}

impl GuardedResolver {
    pub(super) fn new(policy: Arc<NetworkPolicy>, lookups: Arc<dyn Lookups>) -> GuardedResolver {
        GuardedResolver {
            policy,
            lookups,
            exempt: None,
        }
    }

    /// Resolves `name` (the egress proxy's) to whatever addresses it has, the policy aside.
    pub(super) fn exempting(self, name: Option<String>) -> GuardedResolver {
        GuardedResolver {
            exempt: name,
            ..self
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        if self
            .exempt
            .as_deref()
            .is_some_and(|exempt| exempt.eq_ignore_ascii_case(&host))
        {
            let lookup = self.lookups.lookup(&host);
            return Box::pin(async move {
                let resolved = lookup
                    .await
                    .map_err(|err| format!("dns error: failed to lookup {host}: {err}"))?;
                let addrs: Addrs = Box::new(resolved.into_iter().map(|ip| SocketAddr::new(ip, 0)));
                Ok(addrs)
            });
        }
        let denied_name = policy.denied_name(&host);
        let lookup = denied_name.is_none().then(|| self.lookups.lookup(&host));
        Box::pin(async move {
            let Some(lookup) = lookup else {
                let range = denied_name
                    .map(|range| range.to_string())
                    .unwrap_or_default();
                return Err(format!("{host} {DENIED_MARKER} ({range})").into());
            };
            let resolved: Vec<IpAddr> = lookup
                .await
                .map_err(|err| format!("dns error: failed to lookup {host}: {err}"))?;
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .filter(|ip| policy.denied_range(**ip).is_none())
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect();
            if allowed.is_empty() {
                let denied = resolved.first().and_then(|ip| policy.denied_range(*ip));
                let range = denied.map(|range| range.to_string()).unwrap_or_default();
                return Err(format!("{host} {DENIED_MARKER} ({range})").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}
