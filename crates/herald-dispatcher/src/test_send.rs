//! Test sends (`SendTestEvent`, `heraldctl sub test`): every dispatcher replica serves
//! `herald.test.<subscription id>` in one NATS queue group, so each request reaches one of them,
//! whichever owns the subscription, and answers with the attempt.
//!
//! A test send reads the subscription as stored now (so it signs with its current keys, paused
//! or disabled ones included), signs and POSTs through the same SSRF-guarded client, with the
//! same request timeout, as every delivery, and records the attempt in the attempt log with the
//! outcome `test`. It never touches the subscription's consumer, scheduler, rate limit, ordering
//! or endpoint health: it is no delivery, and whatever the endpoint answers is only reported.

use std::sync::Arc;

use time::OffsetDateTime;

use herald_core::delivery::AttemptResult;
use herald_core::record::AttemptRecord;
use herald_core::{Event, Subscription, test_event};
use herald_nats::{TestRequest, TestSend, TestSent};

use crate::client::SignedRequest;
use crate::context::WorkerContext;
use crate::responder::Responder;

/// Served by `responder::serve` (at most `responder::MAX_AT_ONCE` at once, every replica).
pub(crate) use crate::responder::serve;

impl Responder for TestSend {
    fn span(request: &TestRequest) -> tracing::Span {
        tracing::info_span!(
            "test_send",
            subscription_id = %request.subscription_id,
            event_type = request.body.ty(),
            status = tracing::field::Empty,
        )
    }

    /// Sends one test event and answers with the attempt.
    async fn answer(context: Arc<WorkerContext>, subscription: Subscription, request: TestRequest) {
        let sent = send(&context, &subscription, &request.body).await;
        request.answer(sent).await;
    }
}

/// Signs and POSTs the test event to the subscription's sink, and records the attempt.
async fn send(context: &WorkerContext, subscription: &Subscription, event: &Event) -> TestSent {
    let message_id = event.message_id();
    let started_at = OffsetDateTime::now_utc();
    // Laid out in the subscription's content mode and signed with its current keys, as a
    // delivery at this moment would be.
    let request = SignedRequest::new(
        subscription.sink.url(),
        &subscription.signing_keys(),
        event,
        &message_id,
        subscription.delivery.content_mode,
        started_at.unix_timestamp(),
        herald_runtime::trace::context_of(&tracing::Span::current(), None),
    )
    .with_origin(subscription.consented_origin())
    .with_headers(&subscription.headers)
    .with_client_certificate(&subscription.id, subscription.client_certificate.as_ref());
    let report = context.client.send(request).await;
    let result_class = report.result.class_label();
    if let AttemptResult::Response { status, .. } = &report.result {
        tracing::Span::current().record("status", status);
    }
    context
        .metrics
        .test_sends
        .with_label_values(&[result_class])
        .inc();
    let attempt = AttemptRecord {
        outcome: test_event::OUTCOME.to_owned(),
        ..crate::attempt::record_of(subscription, event, &message_id, 1, started_at, &report)
    };
    let recorded = crate::attempt::store_record(context, &attempt).await;
    tracing::info!(
        sink = %subscription.sink.authority(),
        result = result_class,
        elapsed = ?report.elapsed,
        "test event sent"
    );
    TestSent { attempt, recorded }
}
