//! Consent handshakes over NATS request-reply: control asks on `herald.consent.<subscription
//! id>`, one dispatcher of the queue group [`CONSENT_CHECKS_QUEUE`] sends the `OPTIONS`
//! validation request to the subscription's sink through its SSRF-guarded client and answers
//! with what the endpoint said. Control judges the answer and stores it.
//!
//! The request's payload is a `herald_core::subscription::consent::HandshakeRequest` in JSON;
//! the answer is `{"answered": <Handshake>}` or `{"error": {"code", "message"}}`, a wire format
//! between Herald's own roles. No stream captures `herald.consent.>`, so with no dispatcher
//! running the server answers "no responders" at once.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use herald_core::subscription::consent::{Handshake, HandshakeRequest};
use herald_core::{ErrorCode, SubscriptionId, subject};

use crate::{Error, Result};

/// The queue group dispatchers serve consent handshakes in: each request reaches one of them.
pub const CONSENT_CHECKS_QUEUE: &str = "herald-dispatchers";

/// Returns the subject a subscription's consent handshakes are requested on.
pub fn consent_check_subject(id: &SubscriptionId) -> String {
    format!("{}.consent.{id}", subject::ROOT)
}

/// Requests and serves consent handshakes; cheap to clone.
#[derive(Clone)]
pub struct ConsentChecks {
    client: async_nats::Client,
}

/// The answer on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Answered(Handshake),
    Error { code: String, message: String },
}

impl ConsentChecks {
    pub(crate) fn new(client: async_nats::Client) -> ConsentChecks {
        ConsentChecks { client }
    }

    /// Asks a dispatcher to send the validation request for the subscription `id` and waits at
    /// most `timeout`. No dispatcher running is `Unavailable`, no answer in time
    /// `DeadlineExceeded`; a refusal keeps the dispatcher's code (`NotFound`, ...).
    pub async fn check(
        &self,
        id: &SubscriptionId,
        request: &HandshakeRequest,
        timeout: Duration,
    ) -> Result<Handshake> {
        let payload = serde_json::to_vec(request).map_err(|err| {
            Error::new(
                ErrorCode::Internal,
                format!("failed to encode a consent request: {err}"),
            )
        })?;
        let request = async_nats::Request::new()
            .payload(Bytes::from(payload))
            .timeout(Some(timeout));
        let answer = self
            .client
            .send_request(consent_check_subject(id), request)
            .await
            .map_err(|err| match err.kind() {
                async_nats::RequestErrorKind::NoResponders => Error::new(
                    ErrorCode::Unavailable,
                    "no dispatcher is running to ask the endpoint for consent",
                ),
                async_nats::RequestErrorKind::TimedOut => Error::new(
                    ErrorCode::DeadlineExceeded,
                    format!("no dispatcher answered the consent request within {timeout:?}"),
                ),
                _ => Error::unavailable("failed to request a consent handshake")(err),
            })?;
        match serde_json::from_slice::<Answer>(&answer.payload) {
            Ok(Answer::Answered(handshake)) => Ok(handshake),
            Ok(Answer::Error { code, message }) => Err(Error::new(
                ErrorCode::named(&code).unwrap_or(ErrorCode::Internal),
                message,
            )),
            Err(err) => Err(Error::new(
                ErrorCode::Internal,
                format!("the dispatcher's answer to a consent request is unreadable: {err}"),
            )),
        }
    }

    /// Starts serving consent handshakes in the dispatchers' queue group.
    pub async fn serve(&self) -> Result<ConsentRequests> {
        let subscriber = self
            .client
            .queue_subscribe(
                format!("{}.consent.*", subject::ROOT),
                CONSENT_CHECKS_QUEUE.to_owned(),
            )
            .await
            .map_err(Error::unavailable("failed to serve consent handshakes"))?;
        Ok(ConsentRequests {
            subscriber,
            client: self.client.clone(),
        })
    }
}

/// Consent handshakes asked of this process; dropping it stops serving.
pub struct ConsentRequests {
    subscriber: async_nats::Subscriber,
    client: async_nats::Client,
}

impl ConsentRequests {
    /// Returns the next well-formed request; `None` when the subscription ended. A request for
    /// no valid subscription id, or whose payload is not a handshake request, is refused here
    /// with `InvalidArgument`.
    pub async fn next(&mut self) -> Option<ConsentRequest> {
        loop {
            let message = self.subscriber.next().await?;
            let Some(subject) = message.reply else {
                continue;
            };
            let reply = Reply {
                subject,
                client: self.client.clone(),
            };
            let id = message
                .subject
                .strip_prefix(&format!("{}.consent.", subject::ROOT))
                .and_then(|id| SubscriptionId::parse(id).ok());
            let Some(subscription_id) = id else {
                reply
                    .refuse(ErrorCode::InvalidArgument, "not a subscription id")
                    .await;
                continue;
            };
            match serde_json::from_slice::<HandshakeRequest>(&message.payload) {
                Ok(request) => {
                    return Some(ConsentRequest {
                        subscription_id,
                        request,
                        reply,
                    });
                }
                Err(err) => {
                    let message = format!("not a consent request: {err}");
                    reply.refuse(ErrorCode::InvalidArgument, &message).await;
                }
            }
        }
    }
}

/// A well-formed consent handshake to make. Answering consumes it.
pub struct ConsentRequest {
    pub subscription_id: SubscriptionId,
    pub request: HandshakeRequest,
    reply: Reply,
}

impl ConsentRequest {
    /// Answers with what the endpoint said.
    pub async fn answered(self, handshake: Handshake) {
        self.reply.answer(&Answer::Answered(handshake)).await;
    }

    /// Answers with a refusal or a failure (`NotFound` for a deleted subscription).
    pub async fn refuse(self, code: ErrorCode, message: &str) {
        self.reply.refuse(code, message).await;
    }
}

/// Where a request's answer goes.
struct Reply {
    subject: async_nats::Subject,
    client: async_nats::Client,
}

impl Reply {
    async fn answer(self, answer: &Answer) {
        let payload = match serde_json::to_vec(answer) {
            Ok(payload) => Bytes::from(payload),
            Err(err) => {
                tracing::warn!(error = %err, "failed to encode a consent answer");
                return;
            }
        };
        // A caller that gave up meanwhile reads nothing: the publish goes nowhere, harmlessly.
        if let Err(err) = self.client.publish(self.subject, payload).await {
            tracing::warn!(error = %err, "failed to answer a consent request");
        }
    }

    async fn refuse(self, code: ErrorCode, message: &str) {
        let answer = Answer::Error {
            code: code.as_str().to_owned(),
            message: message.to_owned(),
        };
        self.answer(&answer).await;
    }
}
