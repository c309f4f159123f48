//! The bounded loop that serves one kind of control's requests about a subscription (a
//! [`Responder`]: consent handshakes in `consent.rs`, test sends in `test_send.rs`):
//! every replica serves them in one NATS queue group, at most [`MAX_AT_ONCE`] at once, each
//! in a task of its own that reads the subscription as stored now (a deleted one is refused
//! `NotFound`) and hands it to the purpose's handler. The loop subscribes again when the
//! requests stop arriving, and at shutdown lets those in flight finish within the grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use herald_core::{ErrorCode, Subscription};
use herald_nats::{Purpose, Request, Requests, SubscriptionStore};

use crate::context::WorkerContext;
use crate::service::until_up;

/// Requests of one purpose one dispatcher runs at once; more are refused with
/// `ResourceExhausted`.
pub(crate) const MAX_AT_ONCE: usize = 16;

/// How a dispatcher answers the requests of one purpose.
pub(crate) trait Responder: Purpose + Sized {
    /// The span a request is answered in.
    fn span(request: &Request<Self>) -> tracing::Span;

    /// Answers a request, given the subscription it is about as stored now.
    fn answer(
        context: Arc<WorkerContext>,
        subscription: Subscription,
        request: Request<Self>,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// Serves the requests `requests` brings until `shutdown`, then lets those in flight finish
/// within `grace_period`. `requests` is subscribed before this starts, so a replica that runs
/// serves them from then on.
pub(crate) async fn serve<P: Responder>(
    context: Arc<WorkerContext>,
    store: SubscriptionStore,
    mut requests: Requests<P>,
    shutdown: CancellationToken,
    grace_period: Duration,
) {
    let noun = P::NOUN;
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(joined) = running.join_next(), if !running.is_empty() => {
                if let Err(err) = joined {
                    // Its caller gets no answer and sees the deadline pass.
                    tracing::error!(error = %err, "a {noun} panicked");
                }
            }
            request = requests.next() => match request {
                Some(request) if running.len() >= MAX_AT_ONCE => {
                    let message = format!(
                        "this dispatcher is running {MAX_AT_ONCE} {noun}s already; try again"
                    );
                    request.refuse(ErrorCode::ResourceExhausted, &message).await;
                }
                Some(request) => {
                    let span = P::span(&request);
                    let store = store.clone();
                    let context = Arc::clone(&context);
                    running.spawn(
                        async move {
                            if let Some((subscription, request)) = read(&store, request).await {
                                P::answer(context, subscription, request).await;
                            }
                        }
                        .instrument(span),
                    );
                }
                None => {
                    tracing::warn!("{noun}s stopped arriving; serving them again");
                    let what = format!("serve {noun}s");
                    let again = until_up(&shutdown, &what, || async {
                        context.nats.requester::<P>().serve().await
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
            "grace period over: abandoning {noun}s in flight"
        );
        running.abort_all();
    }
}

/// Reads the subscription a request is about; refuses the request (and returns `None`) when
/// it is gone or cannot be read.
async fn read<P: Purpose>(
    store: &SubscriptionStore,
    request: Request<P>,
) -> Option<(Subscription, Request<P>)> {
    let id = &request.subscription_id;
    match store.get(id).await {
        Ok(Some(stored)) => Some((stored.value, request)),
        Ok(None) => {
            let message = format!("subscription {id} not found");
            request.refuse(ErrorCode::NotFound, &message).await;
            None
        }
        Err(err) => {
            let message = format!("failed to read subscription {id}: {err}");
            request.refuse(err.code(), &message).await;
            None
        }
    }
}
