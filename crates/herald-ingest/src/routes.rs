//! The HTTP surface of ingest: `POST /v1/events` in three content modes, and `OPTIONS` for the
//! webhook abuse-protection handshake (CloudEvents HTTP Web Hooks, section 4); other paths and
//! methods get problem documents, and every request an answer within `ingest.request_timeout`.
//!
//! With the event-type catalog (`build_with_catalog`), every event of a request is checked
//! against the catalog compiled for its current revision before anything is published: the data
//! of a registered type must satisfy its version's schema, and an unregistered type is accepted
//! or refused as `catalog.unregistered` says.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::value::RawValue;

use herald_core::catalog::{CompiledCatalog, Verdict};
use herald_core::credential::TenantId;
use herald_core::event::EventError;
use herald_core::event::{BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE};
use herald_core::trace::{self, TraceContext};
use herald_core::{Event, subject};
use herald_nats::EventPublisher;
use tracing::Instrument as _;

use crate::producers::{Producer, ProducerKeys};
use crate::{CatalogRefusal, Config, Error, HeadRefusal, Metrics, Result, Unregistered};

/// The most bytes a request's header fields may hold together, names and values: a bound of
/// Herald's own below hyper's read buffer (about 400 KiB), which producers' heads (a token, a
/// trace context, `ce-` attributes) stay far under. More is refused with `431`.
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Batches larger than this are checked against the catalog on the blocking pool: at about
/// 3 µs per 1 KiB event, checking more would hold the runtime thread too long.
const INLINE_CHECK_EVENTS: usize = 16;

#[derive(Clone)]
struct AppState {
    config: Arc<Config>,
    publisher: EventPublisher,
    /// Producer keys in force, and their rate limits.
    producers: ProducerKeys,
    metrics: Metrics,
    catalog: Option<CatalogCheck>,
}

/// What ingest checks events against: the catalog compiled for its latest revision, swapped by
/// the catalog watch (`lib.rs`), and what to do with unregistered types.
#[derive(Clone)]
pub(crate) struct CatalogCheck {
    pub(crate) compiled: tokio::sync::watch::Receiver<Arc<CompiledCatalog>>,
    pub(crate) unregistered: Unregistered,
}

impl CatalogCheck {
    /// Returns the refusals of `events`, by index; empty when every event may be published.
    fn refusals(
        catalog: &CompiledCatalog,
        unregistered: Unregistered,
        events: &[Event],
    ) -> Vec<(usize, CatalogRefusal)> {
        let mut refusals = Vec::new();
        for (index, event) in events.iter().enumerate() {
            match catalog.check(event) {
                Verdict::Valid => {}
                Verdict::Unregistered => {
                    if unregistered == Unregistered::Refuse {
                        refusals.push((
                            index,
                            CatalogRefusal::Unregistered {
                                event_type: event.ty().to_owned(),
                            },
                        ));
                    }
                }
                Verdict::Invalid(violation) => refusals.push((
                    index,
                    CatalogRefusal::Invalid {
                        event_type: event.ty().to_owned(),
                        violation,
                    },
                )),
            }
        }
        refusals
    }

    /// Checks every event of a request; the request is refused whole if any event is, so a
    /// batch publishes all of its events or none.
    async fn check(&self, events: Vec<Event>, mode: Mode) -> Result<Vec<Event>> {
        // The guard is dropped at once: the watch holds a lock while borrowed.
        let catalog = Arc::clone(&self.compiled.borrow());
        let unregistered = self.unregistered;
        if catalog.is_empty() && unregistered == Unregistered::Accept {
            return Ok(events);
        }
        let (events, mut refusals) = if events.len() <= INLINE_CHECK_EVENTS {
            let refusals = CatalogCheck::refusals(&catalog, unregistered, &events);
            (events, refusals)
        } else {
            tokio::task::spawn_blocking(move || {
                let refusals = CatalogCheck::refusals(&catalog, unregistered, &events);
                (events, refusals)
            })
            .await
            .map_err(|err| Error::Internal(format!("the catalog check failed: {err}")))?
        };
        if refusals.is_empty() {
            return Ok(events);
        }
        match mode {
            Mode::Batch => Err(Error::RefusedBatch(refusals)),
            Mode::Structured | Mode::Binary => {
                let (_, refusal) = refusals.swap_remove(0);
                Err(Error::Refused(refusal))
            }
        }
    }
}

/// Content modes of the CloudEvents HTTP binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Structured,
    Batch,
    Binary,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Structured => "structured",
            Mode::Batch => "batch",
            Mode::Binary => "binary",
        }
    }
}

pub(crate) fn router(
    config: Arc<Config>,
    publisher: EventPublisher,
    producers: ProducerKeys,
    metrics: Metrics,
    catalog: Option<CatalogCheck>,
) -> Router {
    let body_limit = config.max_body_bytes;
    let state = AppState {
        config,
        publisher,
        producers,
        metrics,
        catalog,
    };
    let events = post(publish_events)
        .options(abuse_protection)
        .fallback(method_not_allowed);
    Router::new()
        .route("/v1/events", events)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(bounded_head))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            within_deadline,
        ))
        .with_state(state)
}

/// Answers every request within `ingest.request_timeout`, reading the body and waiting for
/// JetStream included, and counts the refusals.
async fn within_deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let timeout = state.config.request_timeout;
    // A publish cut short here may still complete: the answer says so.
    let response = tokio::time::timeout(timeout, next.run(request))
        .await
        .unwrap_or_else(|_elapsed| Error::Timeout(timeout).into_response());
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        state
            .metrics
            .requests_rejected
            .with_label_values(&[status.as_str()])
            .inc();
    }
    response
}

/// Refuses a request whose header fields hold more than [`MAX_HEADER_BYTES`], before anything
/// else reads them.
async fn bounded_head(request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Error::MalformedHead(HeadRefusal::TooLarge).into_response();
    }
    next.run(request).await
}

/// Finds who sends the request (`producers.rs`) and hands it to the handler; nobody known is
/// `401`.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    match state
        .producers
        .authenticate(&state.config.auth, authorization)
    {
        Some(producer) => {
            request.extensions_mut().insert(producer);
            next.run(request).await
        }
        None => Error::Unauthenticated.into_response(),
    }
}

async fn not_found(uri: Uri) -> Response {
    Error::NotFound(uri.path().to_owned()).into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    // The method router adds `Allow: POST,OPTIONS` to this answer.
    Error::MethodNotAllowed(method).into_response()
}

async fn publish_events(
    State(state): State<AppState>,
    producer: Option<Extension<Producer>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    // The authentication middleware always sets it; without it, nobody was checked.
    let Some(Extension(producer)) = producer else {
        return Error::Unauthenticated.into_response();
    };
    match accept(&state, &producer, &headers, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn accept(
    state: &AppState,
    producer: &Producer,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    refuse_repeated_headers(headers)?;
    refuse_content_encoding(headers)?;
    let mode = mode_of(headers)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge {
            limit: state.config.max_body_bytes,
        },
        _ => Error::BadRequest(format!(
            "failed to read the body: {}",
            rejection.body_text()
        )),
    })?;
    let events = match mode {
        Mode::Structured => vec![Event::from_structured(body).map_err(Error::InvalidEvent)?],
        Mode::Binary => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let ce_headers = headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes()));
            vec![Event::from_binary(ce_headers, content_type, &body).map_err(Error::InvalidEvent)?]
        }
        Mode::Batch => parse_batch(&body, state.config.max_batch_events)?,
    };
    // A producer key's events are stored for its tenant, on its subjects; bootstrap tokens
    // publish into the default tenant, which stores no header.
    let tenant = match producer {
        Producer::Bootstrap => None,
        Producer::Key(key) => Some(&key.tenant),
    };
    refuse_unstorable_types(&events, tenant, mode)?;
    let publisher = match producer {
        Producer::Bootstrap => state.publisher.clone(),
        Producer::Key(key) => {
            state.producers.admit(key, &events, mode == Mode::Batch)?;
            state.publisher.for_tenant(&key.tenant)
        }
    };
    let mode_label = [mode.as_str()];
    state
        .metrics
        .events_received
        .with_label_values(&mode_label)
        .inc_by(events.len() as u64);
    let events = match &state.catalog {
        Some(catalog) => catalog.check(events, mode).await?,
        None => events,
    };
    // The ingest span continues the producer's trace, and its context is stored with the events
    // (NATS headers), so each delivery attempt is its child.
    let span = tracing::info_span!(
        "ingest",
        otel.kind = "server",
        mode = mode.as_str(),
        events = events.len(),
    );
    let producer = producer_trace(headers, &events);
    herald_runtime::trace::continue_trace(&span, producer.as_ref());
    let stored = herald_runtime::trace::context_of(&span, producer);
    let started = Instant::now();
    let receipts = async {
        match events.as_slice() {
            [event] => publisher
                .publish_traced(event, stored.as_ref())
                .await
                .map(|receipt| vec![receipt]),
            _ => publisher.publish_all_traced(&events, stored.as_ref()).await,
        }
    }
    .instrument(span)
    .await
    .map_err(Error::publishing)?;
    state
        .metrics
        .publish_duration
        .with_label_values(&mode_label)
        .observe(started.elapsed().as_secs_f64());
    let num_duplicates = receipts.iter().filter(|receipt| receipt.duplicate).count() as u64;
    let accepted = &state.metrics.events_accepted;
    accepted.with_label_values(&["true"]).inc_by(num_duplicates);
    accepted
        .with_label_values(&["false"])
        .inc_by(receipts.len() as u64 - num_duplicates);
    let body = match mode {
        Mode::Batch => serde_json::json!({
            "ids": events.iter().map(Event::id).collect::<Vec<_>>(),
            "duplicates": num_duplicates,
        }),
        Mode::Structured | Mode::Binary => serde_json::json!({
            "id": events[0].id(),
            "duplicate": num_duplicates == 1,
        }),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// The producer's trace context: the request's `traceparent`/`tracestate` headers, or else the
/// CloudEvents Distributed Tracing extension attributes of a single event.
fn producer_trace(headers: &HeaderMap, events: &[Event]) -> Option<TraceContext> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(parent) = header(trace::TRACEPARENT) {
        return TraceContext::parse(parent, header(trace::TRACESTATE));
    }
    let [event] = events else {
        return None;
    };
    let parent = event.attributes().get(trace::TRACEPARENT)?;
    TraceContext::parse(
        &parent,
        event.attributes().get(trace::TRACESTATE).as_deref(),
    )
}

/// Refuses a request that repeats `Content-Type` or a `ce-` header: Herald would read one copy,
/// and a proxy reading another would see another event.
fn refuse_repeated_headers(headers: &HeaderMap) -> Result<()> {
    let repeated = headers.keys().find(|name| {
        let once_only = *name == header::CONTENT_TYPE || name.as_str().starts_with("ce-");
        once_only && headers.get_all(*name).iter().nth(1).is_some()
    });
    match repeated {
        Some(name) => Err(Error::RepeatedHeader(name.as_str().to_owned())),
        None => Ok(()),
    }
}

/// The longest event type whose subject always fits under a root of `root_len` bytes, so the
/// check below builds no subject for it: the root, `.15` (3 bytes), then per part a dot and at
/// most 3 bytes per byte (`_HH`) or `_` for an empty part, at most `root_len + 5 + 3 * len`
/// bytes in all (`herald.events`: 335 bytes).
const fn always_storable_type_len(root_len: usize) -> usize {
    subject::MAX_SUBJECT_LEN.saturating_sub(root_len + 5) / 3
}

/// Refuses, before anything is published, events whose type makes a subject longer than
/// `MAX_SUBJECT_LEN` in some partition under `tenant`'s root (`herald.events` for `None`): the
/// publisher refuses each such event only when its turn comes, after the events before it in a
/// batch were stored.
fn refuse_unstorable_types(events: &[Event], tenant: Option<&TenantId>, mode: Mode) -> Result<()> {
    let root_len = tenant.map_or(subject::EVENTS_ROOT.len(), |tenant| {
        subject::events_root(tenant).len()
    });
    let always_storable = always_storable_type_len(root_len);
    let last = subject::PARTITIONS - 1;
    let mut problems: Vec<(usize, EventError)> = events
        .iter()
        .enumerate()
        .filter(|(_, event)| {
            event.ty().len() > always_storable
                && match tenant {
                    Some(tenant) => subject::tenant_event_subject(tenant, last, event.ty()),
                    None => subject::event_subject(last, event.ty()),
                }
                .is_none()
        })
        .map(|(index, _)| {
            let problem = EventError::Invalid {
                attribute: "type".to_owned(),
                reason: format!(
                    "too long: its encoded subject would exceed {} bytes",
                    subject::MAX_SUBJECT_LEN
                ),
            };
            (index, problem)
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    match mode {
        Mode::Batch => Err(Error::InvalidBatch(problems)),
        Mode::Structured | Mode::Binary => Err(Error::InvalidEvent(problems.swap_remove(0).1)),
    }
}

/// Refuses a body sent with a content coding (`gzip`, `br`, ...): ingest decodes none, and
/// taking the encoded bytes for the event would store something the producer never sent.
/// `identity` is no coding at all.
fn refuse_content_encoding(headers: &HeaderMap) -> Result<()> {
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let encoded = text
            .split(',')
            .map(str::trim)
            .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
        if encoded {
            return Err(Error::UnsupportedMediaType(format!(
                "content encoding `{}` is not supported: send the body unencoded",
                text.trim()
            )));
        }
    }
    Ok(())
}

fn mode_of(headers: &HeaderMap) -> Result<Mode> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let essence = content_type
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if essence == STRUCTURED_CONTENT_TYPE {
        return Ok(Mode::Structured);
    }
    if essence == BATCH_CONTENT_TYPE {
        return Ok(Mode::Batch);
    }
    if essence.starts_with("application/cloudevents") {
        return Err(Error::UnsupportedMediaType(format!(
            "event format `{essence}` is not supported: use {STRUCTURED_CONTENT_TYPE} or {BATCH_CONTENT_TYPE}"
        )));
    }
    if headers.contains_key("ce-specversion") {
        return Ok(Mode::Binary);
    }
    Err(Error::UnsupportedMediaType(format!(
        "content type `{}` is neither a CloudEvents format nor binary mode (no ce-specversion header): \
         send {STRUCTURED_CONTENT_TYPE}, {BATCH_CONTENT_TYPE}, or ce- headers",
        content_type.unwrap_or("(none)")
    )))
}

fn parse_batch(body: &Bytes, limit: usize) -> Result<Vec<Event>> {
    let members: Vec<&RawValue> = serde_json::from_slice(body).map_err(|err| {
        Error::BadRequest(format!("a batch must be a JSON array of events: {err}"))
    })?;
    if members.len() > limit {
        return Err(Error::BatchTooLarge {
            count: members.len(),
            limit,
        });
    }
    let mut events = Vec::with_capacity(members.len());
    let mut problems = Vec::new();
    for (index, member) in members.iter().enumerate() {
        let bytes = body.slice_ref(member.get().as_bytes());
        match Event::from_structured(bytes) {
            Ok(event) => events.push(event),
            Err(err) => problems.push((index, err)),
        }
    }
    if !problems.is_empty() {
        return Err(Error::InvalidBatch(problems));
    }
    if events.is_empty() {
        return Err(Error::BadRequest(
            "a batch must hold at least one event".to_owned(),
        ));
    }
    Ok(events)
}

/// CloudEvents HTTP Web Hooks, "Abuse Protection": a sender asks with `WebHook-Request-Origin`
/// whether this endpoint accepts its deliveries; Herald accepts every origin that passed
/// authentication, at any rate.
async fn abuse_protection(headers: HeaderMap) -> Response {
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    out.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    if let Some(origin) = headers.get("webhook-request-origin") {
        out.insert("webhook-allowed-origin", origin.clone());
        out.insert("webhook-allowed-rate", HeaderValue::from_static("*"));
    }
    response
}
