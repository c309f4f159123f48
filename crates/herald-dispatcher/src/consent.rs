//! Consent handshakes (`VerifyEndpoint`, and control's handshake on create and on a sink
//! change): every dispatcher replica serves `herald.consent.<subscription id>` in one NATS queue
//! group, so each request reaches one of them, and answers with what the endpoint said.
//!
//! A handshake reads the subscription as stored now and sends `OPTIONS` to its sink through the
//! same SSRF-guarded client, timeouts and per-host bound as every delivery, so control, which
//! has no delivery client, never reaches an endpoint itself. It judges nothing and writes
//! nothing: control judges the answer (`herald_core::subscription::consent::judge`) and stores
//! it by compare-and-set. It never touches a consumer, a scheduler or endpoint health.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use herald_core::ErrorCode;
use herald_core::subscription::consent::{Handshake, HandshakeOutcome};
use herald_nats::{ConsentRequest, ConsentRequests, SubscriptionStore};

use crate::context::WorkerContext;
use crate::service::until_up;

/// Handshakes one dispatcher runs at once; more are refused with `ResourceExhausted`.
pub(crate) const MAX_AT_ONCE: usize = 16;

/// Serves the handshakes `requests` brings until `shutdown`, then lets those in flight finish
/// within `grace_period`.
pub(crate) async fn serve(
    context: Arc<WorkerContext>,
    store: SubscriptionStore,
    mut requests: ConsentRequests,
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
                    tracing::error!(error = %err, "a consent handshake panicked");
                }
            }
            request = requests.next() => match request {
                Some(request) if running.len() >= MAX_AT_ONCE => {
                    let message = format!(
                        "this dispatcher is running {MAX_AT_ONCE} consent handshakes already; \
                         try again"
                    );
                    request.refuse(ErrorCode::ResourceExhausted, &message).await;
                }
                Some(request) => {
                    let span = tracing::info_span!(
                        "consent_handshake",
                        subscription_id = %request.subscription_id,
                        status = tracing::field::Empty,
                    );
                    let context = Arc::clone(&context);
                    let store = store.clone();
                    running.spawn(
                        async move { answer(&context, &store, request).await }.instrument(span),
                    );
                }
                None => {
                    tracing::warn!("consent requests stopped arriving; serving them again");
                    let again = until_up(&shutdown, "serve consent handshakes", || async {
                        context.nats.consent_checks().serve().await
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
            "grace period over: abandoning consent handshakes in flight"
        );
        running.abort_all();
    }
}

/// Sends one validation request and answers with the endpoint's answer.
async fn answer(context: &WorkerContext, store: &SubscriptionStore, request: ConsentRequest) {
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
    let outcome = context
        .client
        .handshake(subscription.sink.url(), &request.request)
        .await;
    match &outcome {
        HandshakeOutcome::Answered { status, .. } => {
            tracing::Span::current().record("status", status);
            tracing::info!(sink = %subscription.sink.authority(), "the endpoint answered the consent handshake");
        }
        HandshakeOutcome::Failed { error } => {
            tracing::info!(sink = %subscription.sink.authority(), error = %error, "the consent handshake failed");
        }
    }
    let handshake = Handshake {
        sink: subscription.sink,
        outcome,
    };
    request.answered(handshake).await;
}
