//! The `herald.v1.EventService` implementation: lists the messages the dispatchers moved to the
//! rejected-events stream, so producers publishing to NATS directly can see what was refused and
//! why. Reads through `herald-nats`'s [`RejectedStore`]; never writes.

use std::future::Future;

use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use herald_nats::{RejectedEvent, RejectedStore};
use herald_proto::v1 as pb;

use crate::{Error, Metrics, Result};

/// Page size of `ListRejectedEvents` when the request leaves it at 0.
pub const DEFAULT_REJECTED_PAGE_SIZE: usize = 100;

/// Largest page `ListRejectedEvents` returns; larger requests are capped.
pub const MAX_REJECTED_PAGE_SIZE: usize = 1000;

/// Longest payload returned per rejected message, in bytes; longer ones are truncated.
pub const PAYLOAD_SIZE_LIMIT: usize = 4096;

/// Serves the Events API; cheap to clone.
#[derive(Clone)]
pub(crate) struct EventApi {
    rejected: RejectedStore,
    metrics: Metrics,
}

impl EventApi {
    pub(crate) fn new(rejected: RejectedStore, metrics: Metrics) -> EventApi {
        EventApi { rejected, metrics }
    }

    async fn observe<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> std::result::Result<Response<T>, Status> {
        let span = tracing::info_span!("grpc", method);
        let result = call.instrument(span.clone()).await;
        let code = match &result {
            Ok(_) => "ok",
            Err(err) => err.code().as_str(),
        };
        self.metrics.record(method, code);
        span.in_scope(|| result.map(Response::new).map_err(Status::from))
    }

    async fn list(
        &self,
        request: pb::ListRejectedEventsRequest,
    ) -> Result<pb::ListRejectedEventsResponse> {
        let page_size = match request.page_size as usize {
            0 => DEFAULT_REJECTED_PAGE_SIZE,
            requested => requested.min(MAX_REJECTED_PAGE_SIZE),
        };
        // The token is the stream sequence of the last message of the previous page.
        let after = if request.page_token.is_empty() {
            0
        } else {
            request.page_token.parse::<u64>().map_err(|_| {
                Error::invalid_argument("page_token", "not a token from a previous answer")
            })?
        };
        // One more than the page tells whether another page follows.
        let mut rejected = self.rejected.list(after, page_size + 1).await?;
        let has_more = rejected.len() > page_size;
        rejected.truncate(page_size);
        let next_page_token = match rejected.last() {
            Some(last) if has_more => last.sequence.to_string(),
            _ => String::new(),
        };
        Ok(pb::ListRejectedEventsResponse {
            rejected_events: rejected.into_iter().map(rejected_to_pb).collect(),
            next_page_token,
        })
    }
}

fn rejected_to_pb(rejected: RejectedEvent) -> pb::RejectedEvent {
    let payload_truncated = rejected.payload.len() > PAYLOAD_SIZE_LIMIT;
    let payload = rejected
        .payload
        .slice(..rejected.payload.len().min(PAYLOAD_SIZE_LIMIT));
    pb::RejectedEvent {
        sequence: rejected.sequence,
        subject: rejected.original_subject,
        reason: rejected.reason,
        detail: rejected.detail,
        time: Some(herald_proto::timestamp_to_pb(rejected.time)),
        payload: payload.to_vec(),
        payload_truncated,
        original_sequence: rejected.original_sequence,
        headers: rejected.headers.into_iter().collect(),
    }
}

#[tonic::async_trait]
impl pb::event_service_server::EventService for EventApi {
    async fn list_rejected_events(
        &self,
        request: Request<pb::ListRejectedEventsRequest>,
    ) -> std::result::Result<Response<pb::ListRejectedEventsResponse>, Status> {
        self.observe("ListRejectedEvents", self.list(request.into_inner()))
            .await
    }
}
