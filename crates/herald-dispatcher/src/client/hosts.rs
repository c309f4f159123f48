//! The bound on requests in flight to one endpoint host, shared by every subscription.
//!
//! Fifty subscriptions to one host, each with 256 requests in flight, would otherwise open
//! 12,800 connections to it: the host's sockets, and the dispatcher's memory and CPU for each
//! connection's buffers and pool entry, grow with them while the host answers no faster.
//! A host is its URL's scheme, host and port. Waiters are served first come, first served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hosts kept without a sweep: beyond twice as many as the last sweep kept (and at least
/// this many), the entries no request holds are dropped.
const KEPT_HOSTS: usize = 1024;

/// One semaphore per endpoint host.
pub(super) struct HostLimits {
    per_host: usize,
    hosts: Mutex<Hosts>,
}

struct Hosts {
    semaphores: HashMap<String, Arc<Semaphore>>,
    /// The map's length at which the next sweep runs.
    sweep_at: usize,
}

impl HostLimits {
    pub(super) fn new(per_host: usize) -> HostLimits {
        HostLimits {
            per_host: per_host.max(1),
            hosts: Mutex::new(Hosts {
                semaphores: HashMap::new(),
                sweep_at: KEPT_HOSTS,
            }),
        }
    }

    /// Requests in flight to one host at most.
    pub(super) fn per_host(&self) -> usize {
        self.per_host
    }

    /// Waits until a request to `url`'s host may start; the permit ends it. The future holds
    /// the host's semaphore, not `self`, and waiters are served in the order they came.
    pub(super) fn acquire(
        &self,
        url: &url::Url,
    ) -> impl Future<Output = OwnedSemaphorePermit> + Send + 'static {
        let semaphore = self.semaphore(host_of(url));
        async move {
            #[allow(
                clippy::expect_used,
                reason = "the semaphores of HostLimits are never closed"
            )]
            semaphore
                .acquire_owned()
                .await
                .expect("a host's semaphore is never closed, so acquiring should succeed")
        }
    }

    /// A request to `url`'s host may start now: its permit, or `None` when the host is full
    /// (or others wait for it, who come first).
    pub(super) fn try_acquire(&self, url: &url::Url) -> Option<OwnedSemaphorePermit> {
        self.semaphore(host_of(url)).try_acquire_owned().ok()
    }

    fn semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(semaphore) = hosts.semaphores.get(host) {
            return Arc::clone(semaphore);
        }
        if hosts.semaphores.len() >= hosts.sweep_at {
            // A semaphore only the map holds has no request running or waiting.
            hosts
                .semaphores
                .retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
            hosts.sweep_at = (hosts.semaphores.len() * 2).max(KEPT_HOSTS);
        }
        let semaphore = Arc::new(Semaphore::new(self.per_host));
        hosts
            .semaphores
            .insert(host.to_owned(), Arc::clone(&semaphore));
        semaphore
    }

    #[cfg(test)]
    pub(super) fn num_hosts(&self) -> usize {
        self.hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .semaphores
            .len()
    }
}

/// The part of a URL that names its host: scheme, credentials, host and port (the url crate
/// leaves a scheme's default port out, so `http://a` and `http://a:80` are one host).
fn host_of(url: &url::Url) -> &str {
    &url[..url::Position::AfterPort]
}
