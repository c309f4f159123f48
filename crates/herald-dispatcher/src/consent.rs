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

use herald_core::Subscription;
use herald_core::subscription::consent::{Handshake, HandshakeOutcome};
use herald_nats::{ConsentCheck, ConsentRequest};

use crate::context::WorkerContext;
use crate::responder::Responder;

/// Served by `responder::serve` (at most `responder::MAX_AT_ONCE` at once, every replica).
pub(crate) use crate::responder::serve;

impl Responder for ConsentCheck {
    fn span(request: &ConsentRequest) -> tracing::Span {
        tracing::info_span!(
            "consent_handshake",
            subscription_id = %request.subscription_id,
            status = tracing::field::Empty,
        )
    }

    /// Sends one validation request to the subscription's sink and answers with the endpoint's
    /// answer.
    async fn answer(
        context: Arc<WorkerContext>,
        subscription: Subscription,
        request: ConsentRequest,
    ) {
        let outcome = context
            .client
            .handshake(
                subscription.sink.url(),
                &request.body,
                &subscription.headers,
                subscription
                    .client_certificate
                    .as_ref()
                    .map(|certificate| (&subscription.id, certificate)),
            )
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
        request.answer(handshake).await;
    }
}
