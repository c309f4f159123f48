//! Consent handshakes over NATS request-reply (`request_reply.rs`): control asks on
//! `herald.consent.<subscription id>`, one dispatcher of the queue group [`CONSENT_CHECKS_QUEUE`]
//! sends the `OPTIONS` validation request to the subscription's sink through its SSRF-guarded
//! client and answers with what the endpoint said. Control judges the answer and stores it.
//!
//! The request's payload is a `herald_core::subscription::consent::HandshakeRequest` in JSON;
//! the answer is `{"answered": <Handshake>}` or `{"error": {"code", "message"}}`.

use bytes::Bytes;

use herald_core::subscription::consent::{Handshake, HandshakeRequest};
use herald_core::{ErrorCode, SubscriptionId};

use crate::request_reply::{DISPATCHERS_QUEUE, Purpose, Request, Requester, Requests};
use crate::{Error, Result};

/// The queue group dispatchers serve consent handshakes in: each request reaches one of them.
pub const CONSENT_CHECKS_QUEUE: &str = DISPATCHERS_QUEUE;

/// Consent handshakes: a [`HandshakeRequest`] to send, answered with the endpoint's
/// [`Handshake`].
pub struct ConsentCheck;

impl Purpose for ConsentCheck {
    type Request = HandshakeRequest;
    type Answer = Handshake;
    const SEGMENT: &'static str = "consent";
    const ANSWER_KEY: &'static str = "answered";
    const NOUN: &'static str = "consent handshake";
    const NO_RESPONDERS: &'static str = "no dispatcher is running to ask the endpoint for consent";

    fn encode(request: &HandshakeRequest) -> Result<Bytes> {
        serde_json::to_vec(request).map(Bytes::from).map_err(|err| {
            Error::new(
                ErrorCode::Internal,
                format!("failed to encode a consent request: {err}"),
            )
        })
    }

    fn decode(payload: Bytes) -> std::result::Result<HandshakeRequest, String> {
        serde_json::from_slice(&payload).map_err(|err| format!("not a consent request: {err}"))
    }
}

/// Requests and serves consent handshakes ([`Requester::ask`], [`Requester::serve`]).
pub type ConsentChecks = Requester<ConsentCheck>;
/// Consent handshakes asked of this process; dropping it stops serving.
pub type ConsentRequests = Requests<ConsentCheck>;
/// A well-formed consent handshake to make. Answering consumes it.
pub type ConsentRequest = Request<ConsentCheck>;

/// Returns the subject a subscription's consent handshakes are requested on.
pub fn consent_check_subject(id: &SubscriptionId) -> String {
    crate::request_reply::request_subject::<ConsentCheck>(id)
}
