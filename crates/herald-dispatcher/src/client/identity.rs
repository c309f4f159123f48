//! HTTP clients that present a subscription's client certificate (mutual TLS): one pair
//! (pooled and fresh, as the shared client) per subscription, built with every setting of the
//! shared client (timeouts, no redirects, the SSRF-guarded resolver, the egress proxy, the TLS
//! roots) plus the certificate as reqwest's `Identity`.
//!
//! A pair is kept per subscription for the certificate fingerprint it was built with: a
//! subscription whose certificate changed gets a new pair and its old one is dropped at once,
//! and a deleted subscription's pair is dropped by [`IdentityClients::forget`]. At most
//! [`MAX_IDENTITY_CLIENTS`] pairs are kept; past that, the one used longest ago is dropped
//! (and built again if needed). Only https requests use them: the control plane refuses a
//! client certificate on an http sink.

use std::collections::HashMap;
use std::sync::Mutex;

use herald_core::SubscriptionId;
use herald_core::subscription::ClientCertificate;

/// Most subscriptions whose certificate clients are kept at once.
pub(crate) const MAX_IDENTITY_CLIENTS: usize = 1024;

/// A pooled and a fresh client presenting one certificate.
#[derive(Clone)]
pub(crate) struct ClientPair {
    pub(crate) http: reqwest::Client,
    pub(crate) fresh: reqwest::Client,
}

struct Entry {
    fingerprint: String,
    clients: ClientPair,
    last_used: u64,
}

/// The certificate clients of subscriptions, bounded.
pub(crate) struct IdentityClients {
    entries: Mutex<Inner>,
    /// Most subscriptions whose clients are kept.
    capacity: usize,
}

#[derive(Default)]
struct Inner {
    by_subscription: HashMap<SubscriptionId, Entry>,
    uses: u64,
}

impl Default for IdentityClients {
    fn default() -> IdentityClients {
        IdentityClients::with_capacity(MAX_IDENTITY_CLIENTS)
    }
}

impl IdentityClients {
    /// Keeps the clients of at most `capacity` subscriptions.
    pub(crate) fn with_capacity(capacity: usize) -> IdentityClients {
        IdentityClients {
            entries: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The clients presenting `certificate` for `subscription`, built with `build` unless the
    /// subscription's are at hand for this certificate. A failed build is described without
    /// the key. Building (which reads the platform's roots) happens outside the lock, so other
    /// subscriptions' requests never wait for it; two first requests at once may both build,
    /// and the later one's clients are kept.
    pub(crate) fn get_or_build(
        &self,
        subscription: &SubscriptionId,
        certificate: &ClientCertificate,
        build: impl FnOnce(reqwest::Identity) -> Result<ClientPair, String>,
    ) -> Result<ClientPair, String> {
        {
            let mut inner = self.lock();
            inner.uses += 1;
            let uses = inner.uses;
            if let Some(entry) = inner.by_subscription.get_mut(subscription)
                && entry.fingerprint == certificate.fingerprint
            {
                entry.last_used = uses;
                return Ok(entry.clients.clone());
            }
            // The old certificate's clients (if any) are dropped here, whatever happens next.
            inner.by_subscription.remove(subscription);
        }
        let mut pem = Vec::with_capacity(certificate.key.len() + certificate.certificate.len() + 1);
        pem.extend_from_slice(certificate.key.as_bytes());
        pem.push(b'\n');
        pem.extend_from_slice(certificate.certificate.as_bytes());
        // reqwest's error would name nothing secret, but it is not needed either.
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|_| "the subscription's client certificate cannot be used".to_owned())?;
        let clients = build(identity)?;
        let mut inner = self.lock();
        inner.uses += 1;
        let uses = inner.uses;
        if !inner.by_subscription.contains_key(subscription)
            && inner.by_subscription.len() >= self.capacity
            && let Some(oldest) = inner
                .by_subscription
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(id, _)| id.clone())
        {
            inner.by_subscription.remove(&oldest);
        }
        inner.by_subscription.insert(
            subscription.clone(),
            Entry {
                fingerprint: certificate.fingerprint.clone(),
                clients: clients.clone(),
                last_used: uses,
            },
        );
        Ok(clients)
    }

    /// Drops the clients of `subscription` (deleted, or without a certificate now).
    pub(crate) fn forget(&self, subscription: &SubscriptionId) {
        self.lock().by_subscription.remove(subscription);
    }

    /// How many subscriptions' clients are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().by_subscription.len()
    }

    /// Whether `subscription`'s clients are kept.
    #[cfg(test)]
    pub(crate) fn holds(&self, subscription: &SubscriptionId) -> bool {
        self.lock().by_subscription.contains_key(subscription)
    }
}

#[cfg(test)]
mod tests;
