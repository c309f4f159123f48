//! The `herald.v1.DeliveryService` implementation: dead letters, the attempt log, an event's
//! delivery status and replay, over `herald-nats`'s [`Records`] and the events stream.
//!
//! Reads page with the stream sequence of the last item as the token. Replay runs in a spawned
//! task that scans the events stream on the subscription's filter subjects, evaluates its filters
//! in-process, and republishes matches on the subscription's redelivery subject with a
//! deduplication id unique to the replay; it reports progress through a channel and stops as
//! soon as the caller goes away, or when the control service stops ([`Replays`]: the tasks are
//! owned and awaited). Event payloads and secrets are never logged.

use std::pin::Pin;

use futures::{Stream, StreamExt as _};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use herald_core::credential::{TENANT_HEADER, TenantId};
use herald_core::{Event, Subscription, SubscriptionId, filter, subject};
use herald_nats::{AttemptQuery, Nats, Records, Scanned, Start, SubscriptionStore};
use herald_proto::v1 as pb;

use crate::subscriptions::{
    DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, observe, parse_id, read_subscription, record_subscription_id,
};
use crate::{Error, Metrics, Result};

/// A replay reports progress after this many scanned events, and once more when done.
pub const REPLAY_PROGRESS_EVERY: u64 = 100;

/// Progress messages buffered between the replay task and the caller.
const REPLAY_CHANNEL_CAPACITY: usize = 16;

/// The stream `ReplayEvents` answers with.
pub(crate) type ReplayStream =
    Pin<Box<dyn Stream<Item = std::result::Result<pb::ReplayProgress, Status>> + Send>>;

/// Serves the Deliveries API; cheap to clone.
#[derive(Clone)]
pub(crate) struct DeliveryApi {
    store: SubscriptionStore,
    records: Records,
    nats: Nats,
    metrics: Metrics,
    replays: Replays,
}

/// The replay tasks of one control service, which owns them: [`Replays::cancel`] stops them
/// (their callers get `UNAVAILABLE` with how far they got) and [`Replays::wait`] waits until
/// they ended. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Replays {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Replays {
    /// Stops every replay, and refuses new ones.
    pub(crate) fn cancel(&self) {
        self.stop.cancel();
        self.tracker.close();
    }

    /// Waits until every replay ended.
    pub(crate) async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Where a replay stops.
#[derive(Debug, Clone, Copy)]
struct ReplayEnd {
    /// Last stream sequence to read.
    sequence: u64,
    /// Events stored after this are not replayed.
    time: Option<OffsetDateTime>,
}

impl DeliveryApi {
    pub(crate) fn new(
        store: SubscriptionStore,
        nats: Nats,
        metrics: Metrics,
        replays: Replays,
    ) -> DeliveryApi {
        DeliveryApi {
            store,
            records: nats.records(),
            nats,
            metrics,
            replays,
        }
    }

    async fn dead_letters_page(
        &self,
        request: pb::ListDeadLettersRequest,
    ) -> Result<pb::ListDeadLettersResponse> {
        let id = self.existing(&request.subscription_id).await?;
        let limit = page_size(request.page_size);
        let after = page_token(&request.page_token)?;
        let page = self.records.dead_letters(&id, after, limit).await?;
        Ok(pb::ListDeadLettersResponse {
            dead_letters: page
                .items
                .iter()
                .map(herald_proto::dead_letter_to_pb)
                .collect(),
            next_page_token: token_of(page.next_sequence),
        })
    }

    async fn redrive(
        &self,
        request: pb::RedriveDeadLettersRequest,
    ) -> Result<pb::RedriveDeadLettersResponse> {
        let (id, tenant) = self.existing_with_tenant(&request.subscription_id).await?;
        let sequences = selection(&request.sequences, request.all)?;
        let selected = self.records.select_dead_letters(&id, sequences).await?;
        let mut redriven = 0;
        for dead_letter in &selected {
            self.records.redrive(dead_letter).await?;
            redriven += 1;
        }
        tracing::info!(redriven, "dead letters redriven");
        crate::auth::note(id.as_str(), Some(&tenant), None, None);
        Ok(pb::RedriveDeadLettersResponse { redriven })
    }

    async fn purge(
        &self,
        request: pb::PurgeDeadLettersRequest,
    ) -> Result<pb::PurgeDeadLettersResponse> {
        let (id, tenant) = self.existing_with_tenant(&request.subscription_id).await?;
        let sequences = selection(&request.sequences, request.all)?;
        let purged = self.records.purge_dead_letters(&id, sequences).await?;
        tracing::info!(purged, "dead letters purged");
        crate::auth::note(id.as_str(), Some(&tenant), None, None);
        Ok(pb::PurgeDeadLettersResponse { purged })
    }

    async fn attempts_page(
        &self,
        request: pb::ListAttemptsRequest,
    ) -> Result<pb::ListAttemptsResponse> {
        let scope = crate::auth::caller()?;
        let subscription_id = if request.subscription_id.is_empty() {
            if !scope.is_admin() {
                return Err(Error::invalid_argument(
                    "subscription_id",
                    "is required with a tenant's operator token",
                ));
            }
            None
        } else if scope.is_admin() {
            // An admin may read the attempts of a deleted subscription too.
            let id = parse_id(&request.subscription_id)?;
            record_subscription_id(&id);
            Some(id)
        } else {
            Some(self.existing(&request.subscription_id).await?)
        };
        let outcome = match pb::AttemptOutcome::try_from(request.outcome) {
            Ok(outcome) => herald_proto::attempt_outcome_label(outcome).map(str::to_owned),
            Err(_) => return Err(Error::invalid_argument("outcome", "unknown outcome")),
        };
        let query = AttemptQuery {
            subscription_id,
            event_id: (!request.event_id.is_empty()).then_some(request.event_id),
            outcome,
            from: instant(request.start_time.as_ref(), "start_time")?,
            until: instant(request.end_time.as_ref(), "end_time")?,
            after_sequence: page_token(&request.page_token)?,
            limit: page_size(request.page_size),
        };
        let page = self.records.attempts(&query).await?;
        Ok(pb::ListAttemptsResponse {
            attempts: page
                .items
                .iter()
                .map(|(_, record)| herald_proto::attempt_to_pb(record))
                .collect(),
            next_page_token: token_of(page.next_sequence),
        })
    }

    async fn event_delivery_status(
        &self,
        request: pb::GetEventDeliveryStatusRequest,
    ) -> Result<pb::GetEventDeliveryStatusResponse> {
        if request.event_id.is_empty() {
            return Err(Error::invalid_argument("event_id", "must not be empty"));
        }
        let scope = crate::auth::caller()?;
        let subscriptions = self.store.list().await?;
        let mut statuses = Vec::with_capacity(subscriptions.len());
        for entry in subscriptions
            .into_iter()
            .filter(|entry| scope.sees(&entry.value.tenant))
        {
            let id = entry.value.id;
            let last_attempt = self
                .records
                .last_attempt(&id, &request.event_id)
                .await?
                .filter(|attempt| {
                    request.event_source.is_empty() || attempt.event_source == request.event_source
                });
            let state = match last_attempt
                .as_ref()
                .map(|attempt| attempt.outcome.as_str())
            {
                None => pb::DeliveryState::NotAttempted,
                Some("delivered") => pb::DeliveryState::Delivered,
                Some("retry") => pb::DeliveryState::Retrying,
                Some("dead" | "gone") => pb::DeliveryState::Dead,
                Some(_) => pb::DeliveryState::Unspecified,
            };
            statuses.push(pb::SubscriptionDeliveryStatus {
                subscription_id: id.to_string(),
                state: state as i32,
                last_attempt: last_attempt.as_ref().map(herald_proto::attempt_to_pb),
            });
        }
        Ok(pb::GetEventDeliveryStatusResponse { statuses })
    }

    /// Validates a replay and starts its scan; the returned stream reports its progress.
    async fn replay(&self, request: pb::ReplayEventsRequest) -> Result<ReplayStream> {
        let id = parse_id(&request.subscription_id)?;
        record_subscription_id(&id);
        let start = match request.from {
            Some(pb::replay_events_request::From::StartTime(time)) => {
                match instant(Some(&time), "start_time")? {
                    Some(time) => Start::Time(time),
                    None => return Err(Error::invalid_argument("start_time", "is required")),
                }
            }
            Some(pb::replay_events_request::From::StartSequence(sequence)) => {
                Start::Sequence(sequence.max(1))
            }
            None => {
                return Err(Error::invalid_argument(
                    "from",
                    "set start_time or start_sequence",
                ));
            }
        };
        let subscription = read_subscription(&self.store, &id).await?.value;
        crate::auth::note(id.as_str(), Some(&subscription.tenant), None, None);
        let end = match request.to {
            Some(pb::replay_events_request::To::EndSequence(sequence)) => ReplayEnd {
                sequence,
                time: None,
            },
            Some(pb::replay_events_request::To::EndTime(time)) => ReplayEnd {
                sequence: self.nats.events_last_sequence().await?,
                time: instant(Some(&time), "end_time")?,
            },
            None => ReplayEnd {
                sequence: self.nats.events_last_sequence().await?,
                time: None,
            },
        };
        if self.replays.stop.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let replay_id = ulid::Ulid::generate();
        tracing::info!(%replay_id, ?start, until = end.sequence, "replay started");
        let (sender, mut receiver) = mpsc::channel(REPLAY_CHANNEL_CAPACITY);
        let scan = if end.sequence == 0 {
            None
        } else {
            // The subscription's tenant's subjects only, as its consumer reads.
            let filter_subjects =
                subject::tenant_filter_subjects(&subscription.tenant, &subscription.filters);
            Some(
                self.nats
                    .scan_events(filter_subjects, start, Some(end.sequence))
                    .await?,
            )
        };
        // Stored filters were validated when written; one that no longer compiles replays nothing.
        let filters = filter::compile(&subscription.filters).map_err(|err| {
            Error::invalid_argument(
                "subscription_id",
                format!("its filters do not compile: {err}"),
            )
        })?;
        let replay = Replay {
            records: self.records.clone(),
            filters,
            subscription,
            replay_id,
            end,
            sender,
            progress: pb::ReplayProgress::default(),
        };
        let span = tracing::Span::current();
        let stop = self.replays.stop.clone();
        let stopped = replay.sender.clone();
        self.replays.tracker.spawn(
            async move {
                let work = async move {
                    match scan {
                        Some(scan) => Box::pin(replay.run(scan)).await,
                        None => replay.finish().await,
                    }
                };
                tokio::select! {
                    () = work => {}
                    () = stop.cancelled() => {
                        tracing::info!(%replay_id, "replay stopped: the control plane is shutting down");
                        let _ = stopped
                            .send(Err(Status::unavailable(
                                "the control plane is shutting down: the replay stopped; replay \
                                 again from after the last sequence reported",
                            )))
                            .await;
                    }
                }
            }
            .instrument(span),
        );
        let stream = futures::stream::poll_fn(move |context| receiver.poll_recv(context));
        Ok(Box::pin(stream))
    }

    /// Parses a subscription id and checks that the subscription exists, and that the caller
    /// may see it.
    async fn existing(&self, text: &str) -> Result<SubscriptionId> {
        Ok(self.existing_with_tenant(text).await?.0)
    }

    /// Like [`DeliveryApi::existing`], also returning the subscription's tenant.
    async fn existing_with_tenant(&self, text: &str) -> Result<(SubscriptionId, TenantId)> {
        let id = parse_id(text)?;
        record_subscription_id(&id);
        let stored = read_subscription(&self.store, &id).await?;
        Ok((id, stored.value.tenant))
    }
}

/// One running replay: what it reads, where it republishes, and how far it got.
struct Replay {
    records: Records,
    subscription: Subscription,
    /// The subscription's filters, compiled once for the whole replay.
    filters: filter::CompiledFilters,
    replay_id: ulid::Ulid,
    end: ReplayEnd,
    sender: mpsc::Sender<std::result::Result<pb::ReplayProgress, Status>>,
    progress: pb::ReplayProgress,
}

impl Replay {
    async fn run(mut self, scan: impl Stream<Item = herald_nats::Result<Scanned>>) {
        let mut scan = std::pin::pin!(scan);
        while let Some(scanned) = scan.next().await {
            if self.sender.is_closed() {
                tracing::info!(replay_id = %self.replay_id, "replay abandoned by the caller");
                return;
            }
            let scanned = match scanned {
                Ok(scanned) => scanned,
                Err(err) => return self.fail(err.into()).await,
            };
            if self.end.time.is_some_and(|end| scanned.time > end) {
                break;
            }
            if let Err(err) = self.replay_one(&scanned).await {
                return self.fail(err).await;
            }
            if self.progress.scanned.is_multiple_of(REPLAY_PROGRESS_EVERY)
                && self.sender.send(Ok(self.progress)).await.is_err()
            {
                tracing::info!(replay_id = %self.replay_id, "replay abandoned by the caller");
                return;
            }
        }
        self.finish().await;
    }

    async fn replay_one(&mut self, scanned: &Scanned) -> Result<()> {
        self.progress.scanned += 1;
        self.progress.last_sequence = scanned.sequence;
        let headers = scanned
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()));
        let Ok(event) =
            Event::from_stored(scanned.header("Content-Type"), headers, &scanned.payload)
        else {
            tracing::debug!(
                sequence = scanned.sequence,
                "replay skipped an unreadable event"
            );
            return Ok(());
        };
        // A subscription replays only its tenant's events (the scan reads its tenant's subjects
        // only; on `herald.events`, an event a tenant's key published before tenants had
        // subjects says its tenant in `Herald-Tenant`), as the dispatcher's admission decides.
        let tenant = subject::tenant_of(&scanned.subject, scanned.header(TENANT_HEADER));
        let ours = tenant == Some(self.subscription.tenant.as_str());
        if !ours || !self.filters.matches(&event).matched {
            return Ok(());
        }
        let dedup = format!(
            "replay-{}-{}-{}",
            self.subscription.id, self.replay_id, scanned.sequence
        );
        // The structured form: a binary-mode event from a NATS producer is replayed whole.
        let trace = scanned
            .header(herald_core::trace::TRACEPARENT)
            .and_then(|parent| {
                herald_core::trace::TraceContext::parse(
                    parent,
                    scanned.header(herald_core::trace::TRACESTATE),
                )
            });
        self.records
            .redeliver(
                &self.subscription.id,
                event.structured().clone(),
                &dedup,
                trace.as_ref(),
            )
            .await?;
        self.progress.replayed += 1;
        Ok(())
    }

    async fn finish(mut self) {
        self.progress.done = true;
        tracing::info!(
            replay_id = %self.replay_id,
            scanned = self.progress.scanned,
            replayed = self.progress.replayed,
            "replay finished"
        );
        // A caller that went away no longer needs the result.
        let _ = self.sender.send(Ok(self.progress)).await;
    }

    async fn fail(self, error: Error) {
        tracing::warn!(replay_id = %self.replay_id, error = %error, "replay failed");
        let _ = self.sender.send(Err(Status::from(error))).await;
    }
}

#[tonic::async_trait]
impl pb::delivery_service_server::DeliveryService for DeliveryApi {
    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> std::result::Result<Response<pb::ListDeadLettersResponse>, Status> {
        let call = self.dead_letters_page(request.into_inner());
        observe(&self.metrics, "ListDeadLetters", call).await
    }

    async fn redrive_dead_letters(
        &self,
        request: Request<pb::RedriveDeadLettersRequest>,
    ) -> std::result::Result<Response<pb::RedriveDeadLettersResponse>, Status> {
        let call = self.redrive(request.into_inner());
        observe(&self.metrics, "RedriveDeadLetters", call).await
    }

    async fn purge_dead_letters(
        &self,
        request: Request<pb::PurgeDeadLettersRequest>,
    ) -> std::result::Result<Response<pb::PurgeDeadLettersResponse>, Status> {
        let call = self.purge(request.into_inner());
        observe(&self.metrics, "PurgeDeadLetters", call).await
    }

    async fn list_attempts(
        &self,
        request: Request<pb::ListAttemptsRequest>,
    ) -> std::result::Result<Response<pb::ListAttemptsResponse>, Status> {
        let call = self.attempts_page(request.into_inner());
        observe(&self.metrics, "ListAttempts", call).await
    }

    async fn get_event_delivery_status(
        &self,
        request: Request<pb::GetEventDeliveryStatusRequest>,
    ) -> std::result::Result<Response<pb::GetEventDeliveryStatusResponse>, Status> {
        let call = self.event_delivery_status(request.into_inner());
        observe(&self.metrics, "GetEventDeliveryStatus", call).await
    }

    type ReplayEventsStream = ReplayStream;

    async fn replay_events(
        &self,
        request: Request<pb::ReplayEventsRequest>,
    ) -> std::result::Result<Response<ReplayStream>, Status> {
        observe(
            &self.metrics,
            "ReplayEvents",
            self.replay(request.into_inner()),
        )
        .await
    }
}

/// Returns the page size a request asks for: 0 means the default, larger ones are capped (the
/// same bounds as `ListSubscriptions`).
fn page_size(requested: u32) -> usize {
    match requested as usize {
        0 => DEFAULT_PAGE_SIZE,
        requested => requested.min(MAX_PAGE_SIZE),
    }
}

/// Parses a page token: the stream sequence of the previous page's last item.
fn page_token(token: &str) -> Result<Option<u64>> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse::<u64>()
        .map(Some)
        .map_err(|_| Error::invalid_argument("page_token", "not a token from a previous answer"))
}

fn token_of(next_sequence: Option<u64>) -> String {
    next_sequence
        .map(|sequence| sequence.to_string())
        .unwrap_or_default()
}

/// Returns the dead letters a redrive or purge selects: `None` for all.
fn selection(sequences: &[u64], all: bool) -> Result<Option<&[u64]>> {
    match (all, sequences.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some(sequences)),
        (true, false) => Err(Error::invalid_argument(
            "sequences",
            "must be empty when all is set",
        )),
        (false, true) => Err(Error::invalid_argument(
            "sequences",
            "name the dead letters, or set all",
        )),
    }
}

fn instant(
    timestamp: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<OffsetDateTime>> {
    timestamp
        .map(|timestamp| {
            herald_proto::timestamp_from_pb(timestamp)
                .map_err(|_| Error::invalid_argument(field, "timestamp out of range"))
        })
        .transpose()
}
