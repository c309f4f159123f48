//! Endpoint consent from the control plane's side: the CloudEvents HTTP Web Hooks validation
//! handshake (`herald_core::subscription::consent`) made on create, when the sink changes or
//! consent is turned on by an update, and on demand (`VerifyEndpoint`).
//!
//! Control cannot reach an endpoint itself (only the dispatcher has the SSRF-guarded client,
//! and roles never depend on each other): it asks a dispatcher over NATS request-reply
//! (`herald_nats::ConsentChecks`), judges the answer and stores it with the subscription by
//! compare-and-set on its revision, re-reading when another writer came first, and never
//! recording an answer about a sink the subscription no longer has. Before asking, it stores
//! the callback it offers (the SHA-256 of a random token only), so an endpoint confirming at
//! once finds it. A handshake that gets no dispatcher's answer is recorded as missing consent
//! with the reason; `VerifyEndpoint` asks again, and so does the re-check task
//! (`consent/recheck.rs`) for pending subscriptions, on a schedule that backs off.

use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use herald_core::subscription::consent::{
    CALLBACK_SECRET_BYTES, CallbackToken, ConsentStatus, EndpointConsent, HandshakeRequest,
    MIN_CALLBACK_TTL, judge,
};
use herald_core::{ErrorCode, Subscription, SubscriptionId};
use herald_nats::{ConsentChecks, SubscriptionStore, Versioned};
use herald_proto::v1 as pb;
use herald_proto::{SecretVisibility, subscription_to_pb};

use crate::subscriptions::{parse_id, read_subscription, record_subscription_id};
use crate::{Error, Result};

/// How long control waits for a dispatcher's answer: above the dispatcher's default request
/// timeout (15 s) and connect timeout (5 s).
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times recording an answer re-reads after losing a race with another writer.
const MAX_WRITE_ATTEMPTS: u32 = 5;

mod recheck;
#[cfg(test)]
mod tests;

pub(crate) use recheck::RecheckTask;

/// The `[consent]` settings: how Herald introduces itself to endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// `WebHook-Request-Origin`: a DNS name identifying this Herald installation.
    pub origin: String,
    /// Where endpoints reach ingest from outside, e.g. `https://events.example.com`; callbacks
    /// are `<base>/v1/consent/<token>`. None offered while empty.
    pub callback_base_url: String,
    /// How long a callback URL stays valid (at least 10 minutes).
    #[serde(with = "humantime_serde")]
    pub callback_ttl: Duration,
    /// How long after it was last asked the endpoint of a pending subscription (consent
    /// required, not given) is asked again automatically; the waits then double. Zero: only
    /// `VerifyEndpoint` asks again.
    #[serde(with = "humantime_serde")]
    pub recheck_first: Duration,
    /// The longest wait between two automatic re-checks.
    #[serde(with = "humantime_serde")]
    pub recheck_max: Duration,
}

impl Default for ConsentConfig {
    fn default() -> ConsentConfig {
        ConsentConfig {
            origin: "herald".to_owned(),
            callback_base_url: String::new(),
            callback_ttl: Duration::from_secs(3600),
            recheck_first: Duration::from_secs(60),
            recheck_max: Duration::from_secs(3600),
        }
    }
}

impl ConsentConfig {
    /// Returns every problem with the settings, empty when they are usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let origin = self.origin.trim();
        let valid_origin = !origin.is_empty()
            && origin.len() <= 253
            && origin
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*'));
        if !valid_origin {
            problems.push(format!(
                "consent.origin `{}` must be a DNS name (letters, digits, '-', '.')",
                self.origin
            ));
        }
        if let Err(problem) = self.callback_base() {
            problems.push(problem);
        }
        if self.callback_ttl < MIN_CALLBACK_TTL {
            problems.push(format!(
                "consent.callback_ttl {:?} must be at least 10 minutes",
                self.callback_ttl
            ));
        }
        if !self.recheck_first.is_zero() && self.recheck_max < self.recheck_first {
            problems.push(format!(
                "consent.recheck_max {:?} must be at least consent.recheck_first {:?}",
                self.recheck_max, self.recheck_first
            ));
        }
        problems
    }

    /// Returns the callback base URL, `None` when unset, or what is wrong with it.
    pub fn callback_base(&self) -> std::result::Result<Option<url::Url>, String> {
        let text = self.callback_base_url.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let problem = |what: &str| format!("consent.callback_base_url `{text}` {what}");
        let base = url::Url::parse(text).map_err(|err| problem(&format!("is no URL: {err}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(problem("must be an absolute http(s) URL"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(problem("must have no query or fragment"));
        }
        Ok(Some(base))
    }
}

/// Asks endpoints for consent through a dispatcher; cheap to clone.
#[derive(Clone)]
pub(crate) struct Consent {
    config: ConsentConfig,
    /// `config.callback_base_url`, parsed (an invalid one offers no callback; the settings'
    /// validation refuses it before any role starts).
    callback_base: Option<url::Url>,
    checks: ConsentChecks,
}

/// A handshake prepared before the subscription was written: what to send, and the callback
/// whose hash the written subscription holds.
pub(crate) struct Prepared {
    request: HandshakeRequest,
    callback: Option<herald_core::subscription::consent::ConsentCallback>,
}

impl Consent {
    pub(crate) fn new(config: ConsentConfig, checks: ConsentChecks) -> Consent {
        let callback_base = config.callback_base().unwrap_or_else(|problem| {
            tracing::warn!(%problem, "no consent callbacks are offered");
            None
        });
        Consent {
            config,
            callback_base,
            checks,
        }
    }

    /// Prepares a handshake for `subscription` about to be written (created, its sink
    /// changed, consent turned on, or verified): stores the callback offered, if any, in its
    /// consent record, marks consent as being asked for unless it is already given for this
    /// sink, and settles its state (a `required` one without consent is pending). `None` when
    /// consent is off.
    pub(crate) fn prepare(
        &self,
        subscription: &mut Subscription,
        now: OffsetDateTime,
    ) -> Result<Option<Prepared>> {
        self.prepare_asking(subscription, now, false)
    }

    /// [`Consent::prepare`]; with `keep_callback`, a callback offered before for this sink and
    /// still valid is kept (its URL cannot be offered again, only its hash is stored, so the
    /// request offers none), so an endpoint, or a person, about to confirm on it still can.
    fn prepare_asking(
        &self,
        subscription: &mut Subscription,
        now: OffsetDateTime,
        keep_callback: bool,
    ) -> Result<Option<Prepared>> {
        if subscription.consent.is_off() {
            subscription.settle_consent(now);
            return Ok(None);
        }
        let valid_callback = subscription
            .endpoint_consent
            .as_ref()
            .filter(|consent| keep_callback && consent.is_for(&subscription.sink))
            .and_then(|consent| consent.callback.clone())
            .filter(|callback| callback.expires_at > now);
        let (callback_url, callback) = match (valid_callback, &self.callback_base) {
            (Some(kept), _) => (None, Some(kept)),
            (None, Some(base)) => {
                let mut random = [0_u8; CALLBACK_SECRET_BYTES];
                getrandom::fill(&mut random).map_err(|err| {
                    Error::Io(std::io::Error::other(format!(
                        "failed to draw a callback token: {err}"
                    )))
                })?;
                let token = CallbackToken::new(subscription.id.clone(), random);
                let expires_at = now.saturating_add(
                    self.config
                        .callback_ttl
                        .try_into()
                        .unwrap_or(time::Duration::HOUR),
                );
                (Some(token.url(base)), Some(token.callback(expires_at)))
            }
            (None, None) => (None, None),
        };
        let asking = EndpointConsent {
            sink_digest: subscription.sink.digest(),
            origin: self.config.origin.clone(),
            status: ConsentStatus::NotGranted {
                reason: "the validation request (OPTIONS) has not been answered yet".to_owned(),
            },
            checked_at: now,
            callback: callback.clone(),
        };
        match &mut subscription.endpoint_consent {
            // Asking again keeps a consent already given for this sink until the answer.
            Some(current) if current.grants(&subscription.sink) => {
                current.callback = callback.clone();
            }
            slot => *slot = Some(asking),
        }
        subscription.settle_consent(now);
        Ok(Some(Prepared {
            request: HandshakeRequest {
                origin: self.config.origin.clone(),
                callback: callback_url,
                request_rate: subscription.requested_rate_per_minute(),
            },
            callback,
        }))
    }

    /// Makes the prepared handshake for the subscription written at `written` and records the
    /// judged answer; returns the subscription as stored then. Failing to record leaves the
    /// subscription as written (its reason says consent was being asked for) and is logged.
    pub(crate) async fn ask(
        &self,
        store: &SubscriptionStore,
        written: Versioned<Subscription>,
        prepared: Prepared,
    ) -> Versioned<Subscription> {
        let id = written.value.id.clone();
        let sink = written.value.sink.clone();
        let callback_until = prepared
            .callback
            .as_ref()
            .map(|callback| callback.expires_at);
        let status = match self
            .checks
            .ask(&id, &prepared.request, CONSENT_TIMEOUT)
            .await
        {
            Ok(handshake) if handshake.sink == sink => {
                judge(&self.config.origin, &handshake.outcome, callback_until)
            }
            Ok(_) => return written,
            // Nothing was learnt, and an optional consent waits for nothing: the stored record
            // already says the request has not been answered, no write is needed.
            Err(err)
                if err.code() == ErrorCode::Unavailable
                    && written.value.consent
                        != herald_core::subscription::ConsentMode::Required =>
            {
                tracing::info!(error = %err, "the endpoint could not be asked for consent");
                return written;
            }
            Err(err) => {
                let hint = match err.code() {
                    ErrorCode::Unavailable | ErrorCode::DeadlineExceeded => {
                        "; ask again with VerifyEndpoint (heraldctl sub verify)"
                    }
                    _ => "",
                };
                let reason = format!("the endpoint could not be asked: {err}{hint}");
                let status = ConsentStatus::NotGranted { reason };
                match callback_until {
                    Some(until) => with_callback_note(status, until),
                    None => status,
                }
            }
        };
        let granted = matches!(status, ConsentStatus::Granted { .. });
        let answered = EndpointConsent {
            sink_digest: sink.digest(),
            origin: self.config.origin.clone(),
            status,
            checked_at: OffsetDateTime::now_utc(),
            callback: prepared.callback,
        };
        match record(store, &id, answered).await {
            Ok(Some(stored)) => {
                tracing::info!(
                    granted,
                    revision = stored.revision,
                    state = ?stored.value.state,
                    "endpoint consent recorded"
                );
                stored
            }
            Ok(None) => written,
            Err(err) => {
                tracing::warn!(error = %err, "failed to record the endpoint's consent answer");
                written
            }
        }
    }

    /// `VerifyEndpoint`: asks the endpoint again now (with a new callback) and answers with
    /// the subscription as stored after the answer.
    pub(crate) async fn verify(
        &self,
        store: &SubscriptionStore,
        request: pb::VerifyEndpointRequest,
    ) -> Result<pb::Subscription> {
        let id = parse_id(&request.id)?;
        record_subscription_id(&id);
        let mut attempt = 1;
        let (written, prepared, before) = loop {
            let Versioned {
                value: mut subscription,
                revision,
            } = read_subscription(store, &id).await?;
            if subscription.consent.is_off() {
                return Err(Error::invalid_argument(
                    "id",
                    format!(
                        "subscription {id} has consent off: set it to required or optional \
                         (heraldctl sub update --consent) to ask its endpoint"
                    ),
                ));
            }
            let now = OffsetDateTime::now_utc();
            let Some(prepared) = self.prepare(&mut subscription, now)? else {
                continue;
            };
            subscription.updated_at = now;
            match store.update(&subscription, revision).await {
                Ok(new_revision) => {
                    let written = Versioned {
                        value: subscription,
                        revision: new_revision,
                    };
                    break (written, prepared, revision);
                }
                Err(err) if err.code() == ErrorCode::Aborted && attempt < MAX_WRITE_ATTEMPTS => {
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        };
        let stored = Box::pin(self.ask(store, written, prepared)).await;
        // Audited like a mutation: it writes the subscription and asks in its name.
        crate::auth::note(
            id.as_str(),
            Some(&stored.value.tenant),
            Some(before),
            Some(stored.revision),
        );
        Ok(subscription_to_pb(
            &stored.value,
            stored.revision,
            SecretVisibility::Omit,
        ))
    }
}

impl Consent {
    /// Asks the endpoint of the pending subscription `stored` again (a scheduled re-check),
    /// keeping a callback still valid. The write that marks it asked is a compare-and-set on
    /// the revision read: when another writer (another control replica re-checking it too)
    /// came first, this asks nothing and answers `Ok(false)`. `Ok(true)`: the endpoint consented.
    pub(crate) async fn recheck(
        &self,
        store: &SubscriptionStore,
        stored: Versioned<Subscription>,
    ) -> Result<bool> {
        let Versioned {
            value: mut subscription,
            revision,
        } = stored;
        let now = OffsetDateTime::now_utc();
        let Some(prepared) = self.prepare_asking(&mut subscription, now, true)? else {
            return Ok(false);
        };
        subscription.updated_at = now;
        let revision = match store.update(&subscription, revision).await {
            Ok(revision) => revision,
            Err(err) if err.code() == ErrorCode::Aborted => {
                tracing::debug!("another writer came first; not re-checking now");
                return Ok(false);
            }
            Err(err) => return Err(err.into()),
        };
        let written = Versioned {
            value: subscription,
            revision,
        };
        let stored = Box::pin(self.ask(store, written, prepared)).await;
        let granted = stored.value.has_consent();
        tracing::info!(granted, "endpoint consent re-checked");
        Ok(granted)
    }
}

/// Writes a judged answer into the stored subscription by compare-and-set, re-reading after a
/// lost race; `None` when the subscription is gone or its sink changed since it was asked.
async fn record(
    store: &SubscriptionStore,
    id: &SubscriptionId,
    answered: EndpointConsent,
) -> Result<Option<Versioned<Subscription>>> {
    let mut attempt = 1;
    loop {
        let Some(Versioned {
            value: mut subscription,
            revision,
        }) = store.get(id).await?
        else {
            return Ok(None);
        };
        if !subscription.record_handshake(answered.clone(), OffsetDateTime::now_utc()) {
            return Ok(None);
        }
        match store.update(&subscription, revision).await {
            Ok(new_revision) => {
                return Ok(Some(Versioned {
                    value: subscription,
                    revision: new_revision,
                }));
            }
            Err(err) if err.code() == ErrorCode::Aborted && attempt < MAX_WRITE_ATTEMPTS => {
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

fn with_callback_note(status: ConsentStatus, until: OffsetDateTime) -> ConsentStatus {
    match status {
        ConsentStatus::NotGranted { reason } => ConsentStatus::NotGranted {
            reason: format!(
                "{reason}; it may still consent on the callback URL offered, until {}",
                until
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
        },
        granted => granted,
    }
}

impl Consent {
    /// Prepares the handshake an update calls for: when consent is on and the endpoint has not
    /// been asked about the current sink (the sink changed, which forgets the old answer) or
    /// consent was off before. Otherwise only settles the state (turning consent off activates
    /// a pending subscription).
    pub(crate) fn after_update(
        &self,
        subscription: &mut Subscription,
        consent_was_off: bool,
        now: OffsetDateTime,
    ) -> Result<Option<Prepared>> {
        let asked = subscription
            .endpoint_consent
            .as_ref()
            .is_some_and(|consent| consent.is_for(&subscription.sink));
        if !subscription.consent.is_off() && (consent_was_off || !asked) {
            return self.prepare(subscription, now);
        }
        subscription.settle_consent(now);
        Ok(None)
    }
}
