//! Test sends over NATS request-reply (`request_reply.rs`): control asks on
//! `herald.test.<subscription id>`, one dispatcher of the queue group [`TEST_SENDS_QUEUE`]
//! delivers the test event and answers with the attempt it recorded.
//!
//! The request's payload is the test event, structured CloudEvents JSON; the answer is
//! `{"sent": {"attempt": <AttemptRecord>, "recorded": bool}}` or
//! `{"error": {"code", "message"}}`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use herald_core::record::AttemptRecord;
use herald_core::{Event, SubscriptionId, test_event};

use crate::Result;
use crate::request_reply::{DISPATCHERS_QUEUE, Purpose, Request, Requester, Requests};

/// The queue group dispatchers serve test sends in: each request reaches one of them.
pub const TEST_SENDS_QUEUE: &str = DISPATCHERS_QUEUE;

/// What a test send did: the attempt, and whether it is in the attempt log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSent {
    pub attempt: AttemptRecord,
    /// False when storing the record failed; the attempt was made all the same.
    pub recorded: bool,
}

/// Test sends: a test event (`herald_core::test_event`) to deliver, answered with
/// [`TestSent`].
pub struct TestSend;

impl Purpose for TestSend {
    type Request = Event;
    type Answer = TestSent;
    const SEGMENT: &'static str = "test";
    const ANSWER_KEY: &'static str = "sent";
    const NOUN: &'static str = "test send";
    const NO_RESPONDERS: &'static str = "no dispatcher is running to send the test event";

    fn encode(event: &Event) -> Result<Bytes> {
        Ok(event.structured().clone())
    }

    fn decode(payload: Bytes) -> std::result::Result<Event, String> {
        match Event::from_structured(payload) {
            Ok(event) if test_event::is_test(&event) => Ok(event),
            Ok(_) => Err("not a test event".to_owned()),
            Err(err) => Err(format!("invalid event: {err}")),
        }
    }
}

/// Requests and serves test sends ([`Requester::ask`], [`Requester::serve`]).
pub type TestSends = Requester<TestSend>;
/// Test sends asked of this process; dropping it stops serving.
pub type TestRequests = Requests<TestSend>;
/// A well-formed test send to answer: which subscription, which event. Answering consumes it.
pub type TestRequest = Request<TestSend>;

/// Returns the subject a subscription's test sends are requested on.
pub fn test_send_subject(id: &SubscriptionId) -> String {
    crate::request_reply::request_subject::<TestSend>(id)
}
