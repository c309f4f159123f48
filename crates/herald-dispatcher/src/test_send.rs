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
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use herald_core::delivery::AttemptResult;
use herald_core::record::AttemptRecord;
use herald_core::{ErrorCode, Event, Subscription, test_event};
use herald_nats::{SubscriptionStore, TestRequest, TestRequests, TestSent};

use crate::client::SignedRequest;
use crate::context::WorkerContext;
use crate::service::until_up;

/// Test sends one dispatcher runs at once; more are refused with `ResourceExhausted`.
pub(crate) const MAX_AT_ONCE: usize = 16;

/// Serves the test sends `requests` brings until `shutdown`, then lets those in flight finish
/// within `grace_period`. `requests` is subscribed before this starts, so a replica that runs
/// serves test sends from then on.
pub(crate) async fn serve(
    context: Arc<WorkerContext>,
    store: SubscriptionStore,
    mut requests: TestRequests,
    shutdown: CancellationToken,
    grace_period: Duration,
) {
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(joined) = running.join_next(), if !running.is_empty() => {
                if let Err(err) = joined {
                    // Its caller gets no answer and sees the deadline pass.
                    tracing::error!(error = %err, "a test send panicked");
                }
            }
            request = requests.next() => match request {
                Some(request) if running.len() >= MAX_AT_ONCE => {
                    let message = format!(
                        "this dispatcher is running {MAX_AT_ONCE} test sends already; try again"
                    );
                    request.refuse(ErrorCode::ResourceExhausted, &message).await;
                }
                Some(request) => {
                    let span = tracing::info_span!(
                        "test_send",
                        subscription_id = %request.subscription_id,
                        event_type = request.event.ty(),
                        status = tracing::field::Empty,
                    );
                    let context = Arc::clone(&context);
                    let store = store.clone();
                    running.spawn(
                        async move { answer(&context, &store, request).await }.instrument(span),
                    );
                }
                None => {
                    tracing::warn!("test sends stopped arriving; serving them again");
                    let again = until_up(&shutdown, "serve test sends", || async {
                        context.nats.test_sends().serve().await
                    })
                    .await;
                    let Some(again) = again else {
                        break;
                    };
                    requests = again;
                }
            },
        }
    }
    drop(requests);
    let finished = tokio::time::timeout(grace_period, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            remaining = running.len(),
            "grace period over: abandoning test sends in flight"
        );
        running.abort_all();
    }
}

/// Sends one test event and answers with the attempt, or with why there was none.
async fn answer(context: &WorkerContext, store: &SubscriptionStore, request: TestRequest) {
    let id = &request.subscription_id;
    let subscription = match store.get(id).await {
        Ok(Some(stored)) => stored.value,
        Ok(None) => {
            let message = format!("subscription {id} not found");
            return request.refuse(ErrorCode::NotFound, &message).await;
        }
        Err(err) => {
            let message = format!("failed to read subscription {id}: {err}");
            return request.refuse(err.code(), &message).await;
        }
    };
    let sent = send(context, &subscription, &request.event).await;
    request.sent(sent).await;
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
    );
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
