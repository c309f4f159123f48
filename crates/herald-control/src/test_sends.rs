//! `SendTestEvent`: builds a test event (`herald_core::test_event`) and asks a dispatcher, over
//! NATS request-reply (`herald_nats::TestSends`), to send it to one subscription now.
//!
//! Control cannot send it itself: only the dispatcher has the SSRF-guarded delivery client and
//! signs, and roles never depend on each other. The request is validated (`id`, `type`, `data`)
//! and the subscription read before anything is sent; no dispatcher running is `UNAVAILABLE`,
//! none answering within [`TEST_SEND_TIMEOUT`] is `DEADLINE_EXCEEDED`.

use std::time::Duration;

use time::OffsetDateTime;

use herald_core::test_event::TestEvent;
use herald_nats::{SubscriptionStore, TestSends};
use herald_proto::v1 as pb;

use crate::subscriptions::{parse_id, read_subscription, record_subscription_id};
use crate::{Error, Result};

/// How long control waits for a dispatcher's answer: above the dispatcher's default request
/// timeout (15 s) and connect timeout (5 s) with room for reading the subscription and
/// recording the attempt.
pub const TEST_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one test event to the subscription `request.id` and returns the endpoint's answer.
pub(crate) async fn send_test_event(
    store: &SubscriptionStore,
    test_sends: &TestSends,
    request: pb::SendTestEventRequest,
) -> Result<pb::SendTestEventResponse> {
    let id = parse_id(&request.id)?;
    record_subscription_id(&id);
    let unique = ulid::Ulid::generate().to_string();
    let event = TestEvent {
        subscription_id: &id,
        unique: &unique,
        event_type: Some(&request.r#type),
        data: Some(&request.data),
        now: OffsetDateTime::now_utc(),
    }
    .build()
    .map_err(|err| Error::invalid_argument(err.field, err.reason))?;
    // A deleted subscription is NOT_FOUND here already, with or without a dispatcher.
    let stored = read_subscription(store, &id).await?;
    let sent = test_sends.ask(&id, &event, TEST_SEND_TIMEOUT).await?;
    // Audited like a mutation: it sends a request in the subscription's name.
    crate::auth::note(id.as_str(), Some(&stored.value.tenant), None, None);
    tracing::info!(
        event_id = event.id(),
        status = sent.attempt.status,
        result = sent.attempt.result_class.as_str(),
        "test event sent"
    );
    Ok(pb::SendTestEventResponse {
        attempt: Some(herald_proto::attempt_to_pb(&sent.attempt)),
        event: event.structured().to_vec(),
        recorded: sent.recorded,
    })
}
