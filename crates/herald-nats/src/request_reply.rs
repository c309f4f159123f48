//! Requests about one subscription that control makes of a dispatcher over NATS request-reply,
//! one [`Purpose`] a subject: `herald.<segment>.<subscription id>`, served by every dispatcher
//! in one queue group, so each request reaches one of them. Consent handshakes
//! (`consent_checks.rs`) and test sends (`test_sends.rs`) are the purposes.
//!
//! The answer is JSON, `{"<answer key>": <answer>}` or `{"error": {"code", "message"}}` with
//! the code as `ErrorCode::as_str` names it, a wire format between Herald's own roles. No stream
//! captures these subjects, so nothing but a dispatcher ever answers: with none running, the
//! server answers "no responders" at once.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use herald_core::{ErrorCode, SubscriptionId, subject};

use crate::{Error, Result};

/// The queue group dispatchers serve requests in: each request reaches one of them.
pub const DISPATCHERS_QUEUE: &str = "herald-dispatchers";

/// The wire key of a refusal or failure.
const ERROR_KEY: &str = "error";

/// One kind of request: its subject, what it carries and what it is answered with.
pub trait Purpose: Send + Sync + 'static {
    /// What a request carries.
    type Request: Send + Sync + 'static;
    /// What a dispatcher answers with.
    type Answer: Serialize + DeserializeOwned + Send + 'static;
    /// Requests about subscription `id` are made on `herald.<SEGMENT>.<id>`.
    const SEGMENT: &'static str;
    /// The answer's key on the wire.
    const ANSWER_KEY: &'static str;
    /// What one request is called in messages (`consent handshake`, `test send`).
    const NOUN: &'static str;
    /// The `Unavailable` message when no dispatcher is running.
    const NO_RESPONDERS: &'static str;

    /// Writes a request's payload.
    fn encode(request: &Self::Request) -> Result<Bytes>;

    /// Reads a request's payload; the error says why it is none (refused `InvalidArgument`).
    fn decode(payload: Bytes) -> std::result::Result<Self::Request, String>;
}

/// Returns the subject requests of purpose `P` about subscription `id` are made on.
pub fn request_subject<P: Purpose>(id: &SubscriptionId) -> String {
    format!("{}.{}.{id}", subject::ROOT, P::SEGMENT)
}

/// Makes and serves requests of one purpose; cheap to clone.
pub struct Requester<P> {
    client: async_nats::Client,
    purpose: PhantomData<fn() -> P>,
}

impl<P> Clone for Requester<P> {
    fn clone(&self) -> Requester<P> {
        Requester {
            client: self.client.clone(),
            purpose: PhantomData,
        }
    }
}

/// A refusal or failure on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Failure {
    code: String,
    message: String,
}

impl<P: Purpose> Requester<P> {
    pub(crate) fn new(client: async_nats::Client) -> Requester<P> {
        Requester {
            client,
            purpose: PhantomData,
        }
    }

    /// Asks a dispatcher about the subscription `id` and waits at most `timeout` for its
    /// answer. No dispatcher running is `Unavailable`, no answer in time `DeadlineExceeded`; a
    /// refusal keeps the dispatcher's code (`NotFound`, ...; an unknown one is `Internal`).
    pub async fn ask(
        &self,
        id: &SubscriptionId,
        request: &P::Request,
        timeout: Duration,
    ) -> Result<P::Answer> {
        let request = async_nats::Request::new()
            .payload(P::encode(request)?)
            .timeout(Some(timeout));
        let noun = P::NOUN;
        let answer = self
            .client
            .send_request(request_subject::<P>(id), request)
            .await
            .map_err(|err| match err.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    Error::new(ErrorCode::Unavailable, P::NO_RESPONDERS)
                }
                async_nats::RequestErrorKind::TimedOut => Error::new(
                    ErrorCode::DeadlineExceeded,
                    format!("no dispatcher answered the {noun} within {timeout:?}"),
                ),
                _ => Error::unavailable(format!("failed to request a {noun}"))(err),
            })?;
        decode_answer::<P>(&answer.payload).unwrap_or_else(|err| {
            Err(Error::new(
                ErrorCode::Internal,
                format!("the dispatcher's answer to a {noun} is unreadable: {err}"),
            ))
        })
    }

    /// Starts serving requests of this purpose in the dispatchers' queue group.
    pub async fn serve(&self) -> Result<Requests<P>> {
        let subscriber = self
            .client
            .queue_subscribe(
                format!("{}.{}.*", subject::ROOT, P::SEGMENT),
                DISPATCHERS_QUEUE.to_owned(),
            )
            .await
            .map_err(Error::unavailable(format!("failed to serve {}s", P::NOUN)))?;
        Ok(Requests {
            subscriber,
            client: self.client.clone(),
            purpose: PhantomData,
        })
    }
}

/// Reads an answer: the outer error when it is no answer at all.
fn decode_answer<P: Purpose>(payload: &[u8]) -> serde_json::Result<Result<P::Answer>> {
    let mut answer: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(payload)?;
    if let Some(failure) = answer.remove(ERROR_KEY) {
        let Failure { code, message } = serde_json::from_value(failure)?;
        let code = ErrorCode::named(&code).unwrap_or(ErrorCode::Internal);
        return Ok(Err(Error::new(code, message)));
    }
    let value = answer.remove(P::ANSWER_KEY).ok_or_else(|| {
        serde::de::Error::custom(format!("neither `{}` nor `{ERROR_KEY}`", P::ANSWER_KEY))
    })?;
    Ok(Ok(serde_json::from_value(value)?))
}

/// Requests of one purpose asked of this process; dropping it stops serving (requests already
/// delivered to it and not read are lost, and their callers time out).
pub struct Requests<P> {
    subscriber: async_nats::Subscriber,
    client: async_nats::Client,
    purpose: PhantomData<fn() -> P>,
}

impl<P: Purpose> Requests<P> {
    /// Returns the next well-formed request; `None` when the subscription ended. A request for
    /// no valid subscription id, or whose payload `P` cannot read, is refused here with
    /// `InvalidArgument`.
    pub async fn next(&mut self) -> Option<Request<P>> {
        let prefix = format!("{}.{}.", subject::ROOT, P::SEGMENT);
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
                .strip_prefix(&prefix)
                .and_then(|id| SubscriptionId::parse(id).ok());
            let Some(subscription_id) = id else {
                reply
                    .refuse(ErrorCode::InvalidArgument, "not a subscription id", P::NOUN)
                    .await;
                continue;
            };
            match P::decode(message.payload) {
                Ok(body) => {
                    return Some(Request {
                        subscription_id,
                        body,
                        reply,
                        purpose: PhantomData,
                    });
                }
                Err(message) => {
                    reply
                        .refuse(ErrorCode::InvalidArgument, &message, P::NOUN)
                        .await;
                }
            }
        }
    }
}

/// A well-formed request to answer: which subscription, what it asks. Answering consumes it.
pub struct Request<P: Purpose> {
    pub subscription_id: SubscriptionId,
    pub body: P::Request,
    reply: Reply,
    purpose: PhantomData<fn() -> P>,
}

impl<P: Purpose> Request<P> {
    /// Answers with what the dispatcher did.
    pub async fn answer(self, answer: P::Answer) {
        self.reply.send(encode_answer::<P>(&answer), P::NOUN).await;
    }

    /// Answers with a refusal or a failure (`NotFound` for a deleted subscription).
    pub async fn refuse(self, code: ErrorCode, message: &str) {
        self.reply.refuse(code, message, P::NOUN).await;
    }
}

/// Writes an answer: `{"<answer key>": <answer>}`.
fn encode_answer<P: Purpose>(answer: &P::Answer) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Keyed(P::ANSWER_KEY, answer))
}

/// Writes a refusal: `{"error": {"code", "message"}}`.
fn encode_failure(code: ErrorCode, message: &str) -> serde_json::Result<Vec<u8>> {
    let failure = Failure {
        code: code.as_str().to_owned(),
        message: message.to_owned(),
    };
    serde_json::to_vec(&Keyed(ERROR_KEY, &failure))
}

/// A JSON object of one member, as serde writes an enum's variant: `{"<key>": <value>}`.
struct Keyed<'a, T>(&'static str, &'a T);

impl<T: Serialize> Serialize for Keyed<'_, T> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0, self.1)?;
        map.end()
    }
}

/// Where a request's answer goes.
struct Reply {
    subject: async_nats::Subject,
    client: async_nats::Client,
}

impl Reply {
    async fn send(self, payload: serde_json::Result<Vec<u8>>, noun: &str) {
        let payload = match payload {
            Ok(payload) => Bytes::from(payload),
            Err(err) => {
                tracing::warn!(error = %err, "failed to encode the answer to a {noun}");
                return;
            }
        };
        // A caller that gave up meanwhile reads nothing: the publish goes nowhere, harmlessly.
        if let Err(err) = self.client.publish(self.subject, payload).await {
            tracing::warn!(error = %err, "failed to answer a {noun}");
        }
    }

    async fn refuse(self, code: ErrorCode, message: &str, noun: &str) {
        self.send(encode_failure(code, message), noun).await;
    }
}

#[cfg(test)]
mod tests;
