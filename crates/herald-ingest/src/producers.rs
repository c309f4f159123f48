//! Who publishes: a bootstrap token of `ingest.auth` (the default tenant, any event), or a
//! producer key from the credentials bucket, scoped to a tenant, to `source` and `type`
//! prefixes and optionally to a rate.
//!
//! Keys are held in memory ([`CredentialSet`], kept current by the bucket's watch, see
//! `lib.rs`), so authenticating reads no KV: a request's token is found by the key id it
//! carries and checked against the key's SHA-256 in constant time, and a revoked key is refused
//! from the moment the watch delivers its revocation. Every event of a request is checked
//! against the key's scope before anything is published, so a batch with one event outside it
//! is refused whole (`403`). The rate limit is a `governor` token bucket per key, in this
//! process: each event takes a token, and a request that finds too few is refused whole with
//! `429` and `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use tokio::sync::watch;

use herald_core::Event;
use herald_core::auth::bearer_token;
use herald_core::credential::{CredentialId, CredentialSet, ProducerKey, ScopeRefusal};

use crate::{AuthConfig, Error, Result};

/// Who sent a request, as the authentication middleware found it.
#[derive(Debug, Clone)]
pub(crate) enum Producer {
    /// A bootstrap token from the configuration (or authentication disabled): the default
    /// tenant, any event, no rate limit.
    Bootstrap,
    /// A producer key.
    Key(Arc<ProducerKey>),
}

/// The producer keys in force and their rate limiters; cheap to clone.
#[derive(Clone)]
pub(crate) struct ProducerKeys {
    current: watch::Receiver<Arc<CredentialSet>>,
    limiters: Arc<Mutex<HashMap<CredentialId, Arc<DefaultDirectRateLimiter>>>>,
}

impl ProducerKeys {
    pub(crate) fn new(current: watch::Receiver<Arc<CredentialSet>>) -> ProducerKeys {
        ProducerKeys {
            current,
            limiters: Arc::default(),
        }
    }

    /// Returns who presents this `Authorization` value, or `None` when no one known does.
    pub(crate) fn authenticate(
        &self,
        bootstrap: &AuthConfig,
        authorization: Option<&str>,
    ) -> Option<Producer> {
        // A producer key counts even with authentication disabled (dev mode), so its scope
        // and tenant do too.
        let key = bearer_token(authorization).and_then(|token| {
            // The guard is dropped at once: the watch holds a lock while borrowed.
            let set = Arc::clone(&self.current.borrow());
            set.producer_key(token).cloned()
        });
        if let Some(key) = key {
            return Some(Producer::Key(Arc::new(key)));
        }
        bootstrap
            .accepts(authorization)
            .then_some(Producer::Bootstrap)
    }

    /// Checks that `key` may publish every one of `events` (`batch`: name the members at
    /// fault), then takes one token per event from its rate limit.
    pub(crate) fn admit(&self, key: &ProducerKey, events: &[Event], batch: bool) -> Result<()> {
        let mut refusals: Vec<(usize, ScopeRefusal)> = events
            .iter()
            .enumerate()
            .filter_map(|(index, event)| {
                key.permits(event.source(), event.ty())
                    .err()
                    .map(|refusal| (index, refusal))
            })
            .collect();
        if !refusals.is_empty() {
            if batch {
                return Err(Error::OutOfScopeBatch(refusals));
            }
            return Err(Error::OutOfScope(refusals.swap_remove(0).1));
        }
        let Some(limit) = key.rate_limit else {
            return Ok(());
        };
        let limiter = self.limiter(key, limit);
        let cells = NonZeroU32::new(u32::try_from(events.len()).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let refused = |wait_secs: u64| Error::RateLimited {
            per_second: limit.per_second,
            retry_after_secs: wait_secs.max(1),
        };
        match limiter.check_n(cells) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(refused(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)))
            }
            // More events than the burst: no wait makes room for them at once.
            Err(_) => Err(refused(
                u64::from(cells.get()).div_ceil(u64::from(limit.per_second.max(1))),
            )),
        }
    }

    fn limiter(
        &self,
        key: &ProducerKey,
        limit: herald_core::subscription::RateLimit,
    ) -> Arc<DefaultDirectRateLimiter> {
        let mut limiters = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let limiter = limiters.entry(key.id.clone()).or_insert_with(|| {
            let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(limit.burst).unwrap_or(per_second);
            Arc::new(DefaultDirectRateLimiter::direct(
                Quota::per_second(per_second).allow_burst(burst),
            ))
        });
        Arc::clone(limiter)
    }
}
