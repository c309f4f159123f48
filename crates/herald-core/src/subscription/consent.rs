//! Endpoint consent: the abuse-protection handshake of the CloudEvents HTTP Web Hooks
//! specification (section 4), from Herald towards a subscription's endpoint.
//!
//! Herald sends `OPTIONS <sink>` with `WebHook-Request-Origin` (and `WebHook-Request-Rate`
//! when the subscription has a rate limit, and `WebHook-Request-Callback` when a callback base
//! URL is configured); the endpoint consents by answering with `WebHook-Allowed-Origin` (the
//! origin, or `*`) and `WebHook-Allowed-Rate` (requests per minute, or `*`), or later by a `GET`
//! or `POST` on the callback URL. What it answered is stored with the subscription
//! ([`EndpointConsent`], for the sink it was asked about, which it names by its SHA-256 only,
//! [`SinkDigest`]: the sink's path and query may carry tokens); under [`ConsentMode::Required`] a
//! subscription without consent for its current sink is [`State::Pending`], and an allowed
//! rate caps its rate limit ([`Subscription::effective_rate_limit`]).
//!
//! The wire forms between control and a dispatcher ([`HandshakeRequest`], [`Handshake`]) and
//! the part of a stored subscription the callback changes ([`ConsentView`]) live here too, so
//! every role judges an answer the same way. No clock, no randomness: callers pass both in.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{RateLimit, Sink, SinkDigest, State, Subscription, SubscriptionId};

/// Request header naming the sending system.
pub const REQUEST_ORIGIN: &str = "webhook-request-origin";
/// Request header offering the callback URL.
pub const REQUEST_CALLBACK: &str = "webhook-request-callback";
/// Request header asking for a rate, in requests per minute.
pub const REQUEST_RATE: &str = "webhook-request-rate";
/// Response header granting an origin.
pub const ALLOWED_ORIGIN: &str = "webhook-allowed-origin";
/// Response (or callback request) header granting a rate, requests per minute or `*`.
pub const ALLOWED_RATE: &str = "webhook-allowed-rate";

/// Shortest time a callback URL stays valid: long enough for a person to find it in a log
/// and open it.
pub const MIN_CALLBACK_TTL: Duration = Duration::from_secs(10 * 60);

/// Bytes of randomness in a callback token.
pub const CALLBACK_SECRET_BYTES: usize = 32;

/// Whether a subscription's endpoint is asked for consent, and whether delivery waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// The handshake is made on create and when the sink changes; nothing is delivered until
    /// the endpoint consents (the subscription is pending meanwhile, events accumulate).
    Required,
    /// The handshake is made and its answer recorded (an allowed rate caps the rate limit),
    /// but delivery never waits for it. What the API gives a new subscription by default.
    Optional,
    /// No handshake. What a stored subscription without the field is: subscriptions stored
    /// before consent existed keep delivering as they did.
    #[default]
    Off,
}

impl ConsentMode {
    pub fn is_off(&self) -> bool {
        *self == ConsentMode::Off
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ConsentMode::Required => "required",
            ConsentMode::Optional => "optional",
            ConsentMode::Off => "off",
        }
    }
}

/// The endpoint's last answer about one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointConsent {
    /// The SHA-256 of the sink the answer is about: consent is void for any other. Stored as
    /// `sink_digest`; a document of before, which stored the sink URL as `sink`, reads as its
    /// digest.
    #[serde(rename = "sink_digest", alias = "sink")]
    pub sink_digest: SinkDigest,
    /// The origin Herald asked for (`consent.origin` then).
    pub origin: String,
    pub status: ConsentStatus,
    /// When the answer was judged (or the callback confirmed).
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// The callback offered with the request, while it is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<ConsentCallback>,
}

/// Consented or not, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ConsentStatus {
    Granted {
        /// Requests per minute the endpoint allows; `None` when it set no limit (`*`, or no
        /// `WebHook-Allowed-Rate`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed_per_minute: Option<u32>,
        by: GrantedBy,
    },
    NotGranted {
        reason: String,
    },
}

/// How the endpoint consented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantedBy {
    /// `WebHook-Allowed-Origin` in its answer to `OPTIONS`.
    Handshake,
    /// A `GET` or `POST` on the callback URL.
    Callback,
}

/// A callback URL offered to the endpoint: only the SHA-256 of its secret is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentCallback {
    /// Hex SHA-256 of the token's secret part.
    pub token_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What control asks a dispatcher to send (NATS request-reply, `herald.consent.<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeRequest {
    /// `WebHook-Request-Origin`.
    pub origin: String,
    /// `WebHook-Request-Callback`, when one is offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
    /// `WebHook-Request-Rate`, requests per minute, when the subscription has a rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_rate: Option<u64>,
}

/// What the dispatcher got back for one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// The sink the request went to (the subscription's as the dispatcher read it).
    pub sink: Sink,
    pub outcome: HandshakeOutcome,
}

/// The endpoint's answer to `OPTIONS`, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum HandshakeOutcome {
    Answered {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed_origin: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed_rate: Option<String>,
    },
    /// No answer: refused address, DNS, connect, timeout; the text names no URL.
    Failed { error: String },
}

/// One token bucket the scheduler keeps: a token every `interval`, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub interval: Duration,
    pub burst: u32,
}

impl Pace {
    /// The pace of a configured rate limit (`per_second` at least 1, as validated).
    pub fn of_limit(limit: RateLimit) -> Pace {
        Pace {
            interval: Duration::from_secs(1) / limit.per_second.max(1),
            burst: limit.burst.max(1),
        }
    }

    /// The pace of an allowed rate in requests per minute, with a burst of one second's worth
    /// (at least one request).
    pub fn per_minute(per_minute: u32) -> Pace {
        Pace {
            interval: Duration::from_secs(60) / per_minute.max(1),
            burst: (per_minute / 60).max(1),
        }
    }

    /// The slower rate of the two and the smaller burst: neither is ever exceeded.
    pub fn min(self, other: Pace) -> Pace {
        Pace {
            interval: self.interval.max(other.interval),
            burst: self.burst.min(other.burst),
        }
    }

    /// [`Pace::min`] of whichever are limits; `None` when neither is.
    pub fn slowest(left: Option<Pace>, right: Option<Pace>) -> Option<Pace> {
        match (left, right) {
            (Some(left), Some(right)) => Some(left.min(right)),
            (left, right) => left.or(right),
        }
    }

    /// One of `parts` equal shares: `parts` times the interval, the burst divided (at least
    /// one), so the parts together keep the whole pace.
    pub fn divided(self, parts: u32) -> Pace {
        let parts = parts.max(1);
        Pace {
            interval: self.interval.saturating_mul(parts),
            burst: (self.burst / parts).max(1),
        }
    }
}

impl From<RateLimit> for Pace {
    fn from(limit: RateLimit) -> Pace {
        Pace::of_limit(limit)
    }
}

/// A callback token: the subscription id and a random secret, `<id>.<base64url secret>`, the
/// last path segment of the callback URL. Never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackToken {
    pub subscription_id: SubscriptionId,
    secret: String,
}

impl CallbackToken {
    /// Makes a token from freshly drawn random bytes.
    pub fn new(subscription_id: SubscriptionId, random: [u8; CALLBACK_SECRET_BYTES]) -> Self {
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        CallbackToken {
            subscription_id,
            secret,
        }
    }

    /// Reads a token from a callback path segment; `None` when it cannot be one.
    pub fn parse(text: &str) -> Option<CallbackToken> {
        let (id, secret) = text.split_once('.')?;
        let subscription_id = SubscriptionId::parse(id).ok()?;
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(secret)
            .ok()?;
        (decoded.len() == CALLBACK_SECRET_BYTES).then(|| CallbackToken {
            subscription_id,
            secret: secret.to_owned(),
        })
    }

    /// Returns the token's text, for the callback URL only.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.subscription_id, self.secret)
    }

    /// Returns the hex SHA-256 of the secret, what is stored.
    pub fn hash(&self) -> String {
        crate::digest::sha256_hex(self.secret.as_bytes())
    }

    /// Returns the stored form of a callback made with this token, valid until `expires_at`.
    pub fn callback(&self, expires_at: OffsetDateTime) -> ConsentCallback {
        ConsentCallback {
            token_hash: self.hash(),
            expires_at,
        }
    }

    /// Returns the callback URL under `base` (`consent.callback_base_url`):
    /// `<base>/v1/consent/<token>`.
    pub fn url(&self, base: &url::Url) -> String {
        format!(
            "{}/v1/consent/{}",
            base.as_str().trim_end_matches('/'),
            self.expose()
        )
    }
}

impl fmt::Debug for CallbackToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackToken")
            .field("subscription_id", &self.subscription_id)
            .finish_non_exhaustive()
    }
}

/// Why a callback is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefusal {
    /// No subscription waits for this token (never issued, replaced, or for an old sink).
    #[error("no subscription waits for this consent callback")]
    Unknown,
    #[error("this consent callback expired at {0}; ask for a new one with `heraldctl sub verify`")]
    Expired(OffsetDateTime),
    #[error("{0}")]
    BadRate(String),
}

/// Returns the allowed rate a `WebHook-Allowed-Rate` value grants: `None` for `*` (no limit),
/// or the requests per minute.
pub fn parse_allowed_rate(value: &str) -> Result<Option<u32>, String> {
    let value = value.trim();
    if value == "*" {
        return Ok(None);
    }
    match value.parse::<u32>() {
        Ok(per_minute) if per_minute > 0 => Ok(Some(per_minute)),
        _ => Err(format!(
            "WebHook-Allowed-Rate `{}` is neither a positive integer (requests per minute) nor `*`",
            value.chars().take(64).collect::<String>()
        )),
    }
}

/// Judges an endpoint's answer to the handshake asking for `origin`. `callback_until` is when
/// the callback offered with it expires, if one was.
pub fn judge(
    origin: &str,
    outcome: &HandshakeOutcome,
    callback_until: Option<OffsetDateTime>,
) -> ConsentStatus {
    let or_callback = |reason: String| match callback_until {
        Some(until) => ConsentStatus::NotGranted {
            reason: format!(
                "{reason}; it may still consent on the callback URL offered, until {}",
                rfc3339(until)
            ),
        },
        None => ConsentStatus::NotGranted { reason },
    };
    match outcome {
        HandshakeOutcome::Failed { error } => {
            or_callback(format!("the validation request (OPTIONS) failed: {error}"))
        }
        HandshakeOutcome::Answered { status, .. } if !(200..300).contains(status) => or_callback(
            format!("the endpoint answered the validation request (OPTIONS) with status {status}"),
        ),
        HandshakeOutcome::Answered {
            status,
            allowed_origin: None,
            ..
        } => or_callback(format!(
            "the endpoint answered the validation request (OPTIONS) with status {status} but \
             without WebHook-Allowed-Origin"
        )),
        HandshakeOutcome::Answered {
            allowed_origin: Some(allowed),
            allowed_rate,
            ..
        } => {
            let allowed = allowed.trim();
            if allowed != "*" && !allowed.eq_ignore_ascii_case(origin) {
                return ConsentStatus::NotGranted {
                    reason: format!(
                        "the endpoint allows the origin `{}`, not `{origin}`",
                        allowed.chars().take(256).collect::<String>()
                    ),
                };
            }
            match allowed_rate.as_deref().map(parse_allowed_rate) {
                None => ConsentStatus::Granted {
                    allowed_per_minute: None,
                    by: GrantedBy::Handshake,
                },
                Some(Ok(allowed_per_minute)) => ConsentStatus::Granted {
                    allowed_per_minute,
                    by: GrantedBy::Handshake,
                },
                Some(Err(reason)) => ConsentStatus::NotGranted { reason },
            }
        }
    }
}

impl EndpointConsent {
    /// Whether this is the answer about `sink` (granting or not).
    pub fn is_for(&self, sink: &Sink) -> bool {
        self.sink_digest.is_of(sink)
    }

    /// Whether this is consent for `sink`.
    pub fn grants(&self, sink: &Sink) -> bool {
        self.is_for(sink) && matches!(self.status, ConsentStatus::Granted { .. })
    }

    /// The rate the endpoint allows `sink`, requests per minute; `None` without a limit or
    /// without consent for it.
    pub fn allowed_per_minute(&self, sink: &Sink) -> Option<u32> {
        match &self.status {
            ConsentStatus::Granted {
                allowed_per_minute, ..
            } if self.is_for(sink) => *allowed_per_minute,
            _ => None,
        }
    }

    /// Takes the judged answer of a handshake made while `self` was stored, keeping a callback
    /// that is still valid; a consent the callback granted meanwhile stands unless the answer
    /// grants too.
    pub fn merge_handshake(&mut self, answered: EndpointConsent) {
        let granted_meanwhile = self.sink_digest == answered.sink_digest
            && matches!(
                self.status,
                ConsentStatus::Granted {
                    by: GrantedBy::Callback,
                    ..
                }
            );
        let answer_grants = matches!(answered.status, ConsentStatus::Granted { .. });
        if granted_meanwhile && !answer_grants {
            return;
        }
        let callback = answered.callback.or_else(|| self.callback.take());
        *self = EndpointConsent {
            callback,
            ..answered
        };
    }

    /// Grants consent through the callback whose token is `token`, at `now`, at the rate the
    /// callback request allows (`WebHook-Allowed-Rate`, absent: no limit beyond the
    /// subscription's own, which is the rate Herald asked for).
    pub fn confirm(
        &mut self,
        token: &CallbackToken,
        allowed_rate: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), CallbackRefusal> {
        let Some(callback) = &self.callback else {
            return Err(CallbackRefusal::Unknown);
        };
        if !constant_time_eq(callback.token_hash.as_bytes(), token.hash().as_bytes()) {
            return Err(CallbackRefusal::Unknown);
        }
        if callback.expires_at <= now {
            return Err(CallbackRefusal::Expired(callback.expires_at));
        }
        let allowed_per_minute = match allowed_rate {
            None => None,
            Some(value) => parse_allowed_rate(value).map_err(CallbackRefusal::BadRate)?,
        };
        self.status = ConsentStatus::Granted {
            allowed_per_minute,
            by: GrantedBy::Callback,
        };
        self.checked_at = now;
        Ok(())
    }
}

/// Why a subscription in `mode` waits for consent to deliver to the sink whose digest is
/// `sink`; `None` when it does not (consent granted, or not required).
pub fn pending_reason(
    mode: ConsentMode,
    consent: Option<&EndpointConsent>,
    sink: &SinkDigest,
) -> Option<String> {
    if mode != ConsentMode::Required {
        return None;
    }
    match consent {
        None => Some("waiting for the endpoint's consent: not asked yet".to_owned()),
        Some(consent) if consent.sink_digest != *sink => Some(
            "waiting for the endpoint's consent: the sink changed since its last answer".to_owned(),
        ),
        Some(consent) => match &consent.status {
            ConsentStatus::Granted { .. } => None,
            ConsentStatus::NotGranted { reason } => {
                Some(format!("waiting for the endpoint's consent: {reason}"))
            }
        },
    }
}

/// Moves `state` between active and pending as consent to the sink whose digest is `sink`
/// requires; paused and disabled stay.
pub fn settle(
    state: &mut State,
    mode: ConsentMode,
    consent: Option<&EndpointConsent>,
    sink: &SinkDigest,
    now: OffsetDateTime,
) {
    let reason = pending_reason(mode, consent, sink);
    let next = match (&*state, reason) {
        (State::Active, Some(reason)) => State::Pending { reason, since: now },
        (State::Pending { since, .. }, Some(reason)) => State::Pending {
            reason,
            since: *since,
        },
        (State::Pending { .. }, None) => State::Active,
        _ => return,
    };
    *state = next;
}

/// The part of a stored subscription a consent callback reads and writes, so the public
/// listener that serves callbacks never opens a sealed field (the signing secrets, the sink):
/// fields as [`Subscription`]'s storage form names them. The sink is known by its digest,
/// `sink_digest`, which a document with a sealed sink keeps in the clear beside it (the
/// subscription store fills it in from a plain `sink`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentView {
    pub sink_digest: SinkDigest,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub consent: ConsentMode,
    #[serde(default)]
    pub endpoint_consent: Option<EndpointConsent>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl ConsentView {
    /// The storage fields [`ConsentView::confirm`] may change.
    pub const WRITTEN: [&'static str; 3] = ["state", "endpoint_consent", "updated_at"];

    /// Grants consent through a callback and activates a pending subscription.
    pub fn confirm(
        &mut self,
        token: &CallbackToken,
        allowed_rate: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), CallbackRefusal> {
        let consent = self
            .endpoint_consent
            .as_mut()
            .filter(|consent| consent.sink_digest == self.sink_digest)
            .ok_or(CallbackRefusal::Unknown)?;
        consent.confirm(token, allowed_rate, now)?;
        settle(
            &mut self.state,
            self.consent,
            self.endpoint_consent.as_ref(),
            &self.sink_digest,
            now,
        );
        self.updated_at = now;
        Ok(())
    }
}

impl Subscription {
    /// The pace the scheduler keeps: the configured rate limit, capped by the rate the
    /// endpoint allows when it consented (unless consent is off), the slower and the smaller
    /// burst of the two. `None`: no limit at all.
    pub fn effective_rate_limit(&self) -> Option<Pace> {
        Pace::slowest(
            self.delivery.rate_limit.map(Pace::of_limit),
            self.allowed_pace(),
        )
    }

    /// The pace the endpoint allowed when it consented to the current sink (unless consent is
    /// off); `None` when it set no limit or did not consent.
    pub fn allowed_pace(&self) -> Option<Pace> {
        self.endpoint_consent
            .as_ref()
            .filter(|_| !self.consent.is_off())
            .and_then(|consent| consent.allowed_per_minute(&self.sink))
            .map(Pace::per_minute)
    }

    /// The rate to ask the endpoint for (`WebHook-Request-Rate`), requests per minute: the
    /// configured rate limit's, if any.
    pub fn requested_rate_per_minute(&self) -> Option<u64> {
        self.delivery
            .rate_limit
            .map(|limit| u64::from(limit.per_second) * 60)
    }

    /// The `WebHook-Request-Origin` every delivery carries once the endpoint consented (the
    /// CloudEvents HTTP Web Hooks specification, 4.1.2): the origin the validation request
    /// named, while consent is `required` or `optional` and granted for the current sink.
    /// `None` otherwise: with consent off Herald never introduced itself, so it sends nothing.
    pub fn consented_origin(&self) -> Option<&str> {
        self.endpoint_consent
            .as_ref()
            .filter(|consent| !self.consent.is_off() && consent.grants(&self.sink))
            .map(|consent| consent.origin.as_str())
    }

    /// When the endpoint of a subscription pending for its consent is to be asked again
    /// automatically: `first` after it was last asked, then as long again as the subscription
    /// had been pending when it was last asked (so the waits double), never more than `max`.
    /// `None` when it is not pending for consent (or `first` is zero: no re-checks).
    pub fn next_consent_recheck(&self, first: Duration, max: Duration) -> Option<OffsetDateTime> {
        let State::Pending { since, .. } = &self.state else {
            return None;
        };
        if first.is_zero() || self.consent != ConsentMode::Required || self.has_consent() {
            return None;
        }
        let asked = self
            .endpoint_consent
            .as_ref()
            .map_or(*since, |consent| consent.checked_at.max(*since));
        let pending: Duration = (asked - *since).try_into().unwrap_or(Duration::ZERO);
        let wait = pending.clamp(first, max.max(first));
        Some(asked.saturating_add(wait.try_into().unwrap_or(time::Duration::HOUR)))
    }

    /// Whether the endpoint consented to its current sink.
    pub fn has_consent(&self) -> bool {
        self.endpoint_consent
            .as_ref()
            .is_some_and(|consent| consent.grants(&self.sink))
    }

    /// Moves the state between active and pending as the consent mode and the recorded
    /// consent require ([`settle`]).
    pub fn settle_consent(&mut self, now: OffsetDateTime) {
        settle(
            &mut self.state,
            self.consent,
            self.endpoint_consent.as_ref(),
            &self.sink.digest(),
            now,
        );
    }

    /// Records a handshake's judged answer, unless the sink changed since it was asked (then
    /// it returns false and changes nothing), and settles the state.
    pub fn record_handshake(&mut self, answered: EndpointConsent, now: OffsetDateTime) -> bool {
        if !answered.is_for(&self.sink) {
            return false;
        }
        match &mut self.endpoint_consent {
            Some(current) if current.sink_digest == answered.sink_digest => {
                current.merge_handshake(answered);
            }
            slot => *slot = Some(answered),
        }
        self.settle_consent(now);
        self.updated_at = now;
        true
    }
}

/// Whether two byte strings are equal, in a time that depends on their lengths only.
pub(super) fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn rfc3339(instant: OffsetDateTime) -> String {
    instant
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| instant.to_string())
}

#[cfg(test)]
mod tests;
