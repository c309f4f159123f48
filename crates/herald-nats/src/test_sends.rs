//! Test sends over NATS request-reply: control asks on `herald.test.<subscription id>`, one
//! dispatcher of the queue group [`TEST_SENDS_QUEUE`] delivers the test event and answers with
//! the attempt it recorded.
//!
//! The request's payload is the test event, structured CloudEvents JSON; the answer is JSON,
//! `{"sent": {"attempt": <AttemptRecord>, "recorded": bool}}` or
//! `{"error": {"code", "message"}}`, a wire format between Herald's own roles. No stream
//! captures `herald.test.>`, so nothing but a dispatcher ever answers: with none running, the
//! server answers "no responders" at once.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use herald_core::record::AttemptRecord;
use herald_core::{ErrorCode, Event, SubscriptionId, subject, test_event};

use crate::{Error, Result};

/// The queue group dispatchers serve test sends in: each request reaches one of them.
pub const TEST_SENDS_QUEUE: &str = "herald-dispatchers";

/// Returns the subject a subscription's test sends are requested on.
pub fn test_send_subject(id: &SubscriptionId) -> String {
    format!("{}.test.{id}", subject::ROOT)
}

/// What a test send did: the attempt, and whether it is in the attempt log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSent {
    pub attempt: AttemptRecord,
    /// False when storing the record failed; the attempt was made all the same.
    pub recorded: bool,
}

/// Requests and serves test sends; cheap to clone.
#[derive(Clone)]
pub struct TestSends {
    client: async_nats::Client,
}

/// The answer on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Sent(Box<TestSent>),
    Error { code: String, message: String },
}

impl TestSends {
    pub(crate) fn new(client: async_nats::Client) -> TestSends {
        TestSends { client }
    }

    /// Asks a dispatcher to send `event` to the subscription `id` and waits at most `timeout`
    /// for its answer. No dispatcher running is `Unavailable`, no answer in time
    /// `DeadlineExceeded`; a refusal keeps the dispatcher's code (`NotFound`, ...).
    pub async fn send(
        &self,
        id: &SubscriptionId,
        event: &Event,
        timeout: Duration,
    ) -> Result<TestSent> {
        let request = async_nats::Request::new()
            .payload(event.structured().clone())
            .timeout(Some(timeout));
        let answer = self
            .client
            .send_request(test_send_subject(id), request)
            .await
            .map_err(|err| match err.kind() {
                async_nats::RequestErrorKind::NoResponders => Error::new(
                    ErrorCode::Unavailable,
                    "no dispatcher is running to send the test event",
                ),
                async_nats::RequestErrorKind::TimedOut => Error::new(
                    ErrorCode::DeadlineExceeded,
                    format!("no dispatcher answered the test send within {timeout:?}"),
                ),
                _ => Error::unavailable("failed to request a test send")(err),
            })?;
        match serde_json::from_slice::<Answer>(&answer.payload) {
            Ok(Answer::Sent(sent)) => Ok(*sent),
            Ok(Answer::Error { code, message }) => Err(Error::new(code_named(&code), message)),
            Err(err) => Err(Error::new(
                ErrorCode::Internal,
                format!("the dispatcher's answer to a test send is unreadable: {err}"),
            )),
        }
    }

    /// Starts serving test sends in the dispatchers' queue group.
    pub async fn serve(&self) -> Result<TestRequests> {
        let subscriber = self
            .client
            .queue_subscribe(
                format!("{}.test.*", subject::ROOT),
                TEST_SENDS_QUEUE.to_owned(),
            )
            .await
            .map_err(Error::unavailable("failed to serve test sends"))?;
        Ok(TestRequests {
            subscriber,
            client: self.client.clone(),
        })
    }
}

/// Test sends asked of this process; dropping it stops serving (requests already delivered to
/// it and not read are lost, and their callers time out).
pub struct TestRequests {
    subscriber: async_nats::Subscriber,
    client: async_nats::Client,
}

impl TestRequests {
    /// Returns the next well-formed request; `None` when the subscription ended. A request for
    /// no valid subscription id, or whose payload is not a test event, is refused here with
    /// `InvalidArgument`.
    pub async fn next(&mut self) -> Option<TestRequest> {
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
                .strip_prefix(&format!("{}.test.", subject::ROOT))
                .and_then(|id| SubscriptionId::parse(id).ok());
            let Some(subscription_id) = id else {
                reply
                    .refuse(ErrorCode::InvalidArgument, "not a subscription id")
                    .await;
                continue;
            };
            match Event::from_structured(message.payload) {
                Ok(event) if test_event::is_test(&event) => {
                    return Some(TestRequest {
                        subscription_id,
                        event,
                        reply,
                    });
                }
                Ok(_) => {
                    reply
                        .refuse(ErrorCode::InvalidArgument, "not a test event")
                        .await;
                }
                Err(err) => {
                    reply
                        .refuse(ErrorCode::InvalidArgument, &format!("invalid event: {err}"))
                        .await;
                }
            }
        }
    }
}

/// A well-formed test send to answer: which subscription, which event. Answering consumes it.
pub struct TestRequest {
    pub subscription_id: SubscriptionId,
    pub event: Event,
    reply: Reply,
}

impl TestRequest {
    /// Answers with what the test send did.
    pub async fn sent(self, sent: TestSent) {
        self.reply.answer(&Answer::Sent(Box::new(sent))).await;
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
                tracing::warn!(error = %err, "failed to encode a test send's answer");
                return;
            }
        };
        // A caller that gave up meanwhile reads nothing: the publish goes nowhere, harmlessly.
        if let Err(err) = self.client.publish(self.subject, payload).await {
            tracing::warn!(error = %err, "failed to answer a test send");
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

/// Returns the code named `name` (`ErrorCode::as_str`); an unknown name is `Internal`.
fn code_named(name: &str) -> ErrorCode {
    ErrorCode::named(name).unwrap_or(ErrorCode::Internal)
}
