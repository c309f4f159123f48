//! Ingest errors and their one mapping to HTTP: `application/problem+json` (RFC 9457).

use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use herald_core::catalog::Violation;
use herald_core::credential::ScopeRefusal;
use herald_core::{ErrorCode, EventError};

/// An ingest failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid CloudEvent: {0}")]
    InvalidEvent(EventError),
    #[error("invalid batch: {} of its events are invalid", .0.len())]
    InvalidBatch(Vec<(usize, EventError)>),
    /// The event-type catalog refuses the event: its data does not satisfy its type's schema, or
    /// its type is unregistered and `catalog.unregistered` is `refuse`.
    #[error("{0}")]
    Refused(CatalogRefusal),
    /// The catalog refuses some events of a batch; nothing of it was published.
    #[error("invalid batch: the event-type catalog refuses {} of its events", .0.len())]
    RefusedBatch(Vec<(usize, CatalogRefusal)>),
    #[error("{0}")]
    BadRequest(String),
    /// A header that must appear once appears more often: a proxy reading another copy than
    /// Herald would see another event.
    #[error("header `{0}` appears more than once: send it once")]
    RepeatedHeader(String),
    #[error("the body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the batch holds {count} events, more than the limit of {limit}")]
    BatchTooLarge { count: usize, limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    /// The producer key may not publish this event; nothing of the request was published.
    #[error("{0}")]
    OutOfScope(ScopeRefusal),
    /// The producer key may not publish some events of a batch; nothing of it was published.
    #[error("forbidden batch: the producer key may not publish {} of its events", .0.len())]
    OutOfScopeBatch(Vec<(usize, ScopeRefusal)>),
    /// The producer key's rate limit is spent; `retry_after` is when enough is back.
    #[error(
        "the producer key's rate limit of {per_second} events a second is spent: retry after {retry_after_secs} s"
    )]
    RateLimited {
        per_second: u32,
        retry_after_secs: u64,
    },
    /// The producer keys could not be read at start.
    #[error("failed to load the producer keys: {0}")]
    Credentials(herald_nats::Error),
    #[error("nothing is at `{0}`: send events to POST /v1/events")]
    NotFound(String),
    #[error("method {0} is not allowed on /v1/events: send events with POST")]
    MethodNotAllowed(Method),
    /// hyper refused the request head before Herald saw the request.
    #[error("{0}")]
    MalformedHead(HeadRefusal),
    #[error("the event cannot be stored: {0}")]
    Unstorable(herald_nats::Error),
    /// JetStream did not confirm the publish. It may have stored the events all the same: the
    /// NATS client sends publishes it buffered while disconnected once it reconnects, and an
    /// acknowledgement can be lost after the store.
    #[error(
        "the events were not confirmed as persisted ({0}); they may be stored all the same: \
         retry with the same source and id, which Herald stores once"
    )]
    Unpersisted(herald_nats::Error),
    /// `ingest.request_timeout` passed before the answer; the publish may still complete.
    #[error(
        "no answer within ingest.request_timeout ({0:?}); the events may be stored all the \
         same: retry with the same source and id, which Herald stores once"
    )]
    Timeout(Duration),
    #[error("failed to register metrics: {0}")]
    Metrics(prometheus::Error),
    /// The event-type catalog could not be read at start.
    #[error("failed to load the event-type catalog: {0}")]
    Catalog(herald_nats::Error),
    /// A bug of Herald's: a task checking events failed.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("listener failed: {0}")]
    Io(std::io::Error),
}

/// Why the event-type catalog refuses one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogRefusal {
    /// The event's data does not satisfy the schema of its type's version.
    Invalid {
        event_type: String,
        violation: Violation,
    },
    /// The type is not registered, and unregistered types are refused.
    Unregistered { event_type: String },
}

impl CatalogRefusal {
    /// Returns the JSON Pointer into the event at fault (`/data/total`, `/type`).
    pub fn pointer(&self) -> &str {
        match self {
            CatalogRefusal::Invalid { violation, .. } => &violation.pointer,
            CatalogRefusal::Unregistered { .. } => "/type",
        }
    }
}

impl std::fmt::Display for CatalogRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogRefusal::Invalid {
                event_type,
                violation,
            } => {
                let version = violation
                    .version
                    .as_deref()
                    .map(|version| format!(" version {version}"))
                    .unwrap_or_default();
                write!(
                    f,
                    "the event does not satisfy the registered schema of `{event_type}`{version} \
                     at `{}`: {}",
                    violation.pointer, violation.message
                )
            }
            CatalogRefusal::Unregistered { event_type } => write!(
                f,
                "event type `{event_type}` is not registered in the event-type catalog, and \
                 unregistered types are refused (catalog.unregistered = \"refuse\"): register \
                 it with `heraldctl types create`"
            ),
        }
    }
}

/// A request head that hyper refuses on its own, answering before any handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadRefusal {
    /// More header fields than hyper's limit (100), a head larger than its read buffer, or
    /// header fields over `routes::MAX_HEADER_BYTES` together.
    TooLarge,
    /// A request target longer than hyper accepts.
    UriTooLong,
    /// A head that is not valid HTTP/1.
    Invalid,
}

impl HeadRefusal {
    /// Returns the refusal hyper answers with `status`, if it is one of its automatic answers.
    pub(crate) fn of_status(status: StatusCode) -> Option<HeadRefusal> {
        match status {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Some(HeadRefusal::TooLarge),
            StatusCode::URI_TOO_LONG => Some(HeadRefusal::UriTooLong),
            StatusCode::BAD_REQUEST => Some(HeadRefusal::Invalid),
            _ => None,
        }
    }

    fn status(self) -> StatusCode {
        match self {
            HeadRefusal::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadRefusal::UriTooLong => StatusCode::URI_TOO_LONG,
            HeadRefusal::Invalid => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for HeadRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeadRefusal::TooLarge => {
                "the request head is too large: at most 100 header fields, of 64 KiB in all"
            }
            HeadRefusal::UriTooLong => "the request target is too long",
            HeadRefusal::Invalid => "the request head is not valid HTTP/1.1",
        })
    }
}

/// The media type of every refusal (RFC 9457).
pub(crate) const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Returns the kind of failure, which decides the HTTP status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidEvent(_)
            | Error::InvalidBatch(_)
            | Error::Refused(_)
            | Error::RefusedBatch(_)
            | Error::BadRequest(_)
            | Error::RepeatedHeader(_)
            | Error::UnsupportedMediaType(_)
            | Error::MethodNotAllowed(_)
            | Error::Unstorable(_) => ErrorCode::InvalidArgument,
            Error::MalformedHead(HeadRefusal::Invalid) => ErrorCode::InvalidArgument,
            Error::PayloadTooLarge { .. }
            | Error::BatchTooLarge { .. }
            | Error::MalformedHead(HeadRefusal::TooLarge | HeadRefusal::UriTooLong) => {
                ErrorCode::ResourceExhausted
            }
            Error::Unauthenticated => ErrorCode::Unauthenticated,
            Error::OutOfScope(_) | Error::OutOfScopeBatch(_) => ErrorCode::PermissionDenied,
            Error::RateLimited { .. } => ErrorCode::ResourceExhausted,
            Error::Credentials(err) => err.code(),
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Unpersisted(_) | Error::Timeout(_) => ErrorCode::Unavailable,
            Error::Catalog(err) => err.code(),
            Error::Metrics(_) | Error::Io(_) | Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Returns the publish failure as an answer: the caller's fault when NATS refused the
    /// event itself, otherwise unconfirmed.
    pub(crate) fn publishing(err: herald_nats::Error) -> Error {
        match err.code() {
            ErrorCode::InvalidArgument => Error::Unstorable(err),
            _ => Error::Unpersisted(err),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            // These refusals are more precise than their code's generic status.
            Error::PayloadTooLarge { .. } | Error::BatchTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::MalformedHead(refusal) => refusal.status(),
            _ => status_of(self.code()),
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Error::InvalidEvent(_) | Error::Unstorable(_) => "invalid-event",
            Error::InvalidBatch(_) | Error::RefusedBatch(_) => "invalid-batch",
            Error::Refused(CatalogRefusal::Invalid { .. }) => "schema-violation",
            Error::Refused(CatalogRefusal::Unregistered { .. }) => "unregistered-type",
            Error::BadRequest(_) | Error::MalformedHead(HeadRefusal::Invalid) => "bad-request",
            Error::RepeatedHeader(_) => "repeated-header",
            Error::PayloadTooLarge { .. } | Error::BatchTooLarge { .. } => "payload-too-large",
            Error::MalformedHead(HeadRefusal::TooLarge) => "header-too-large",
            Error::MalformedHead(HeadRefusal::UriTooLong) => "uri-too-long",
            Error::UnsupportedMediaType(_) => "unsupported-media-type",
            Error::Unauthenticated => "unauthenticated",
            Error::OutOfScope(_) | Error::OutOfScopeBatch(_) => "forbidden",
            Error::RateLimited { .. } => "rate-limited",
            Error::Credentials(_) => "unavailable",
            Error::NotFound(_) => "not-found",
            Error::MethodNotAllowed(_) => "method-not-allowed",
            Error::Unpersisted(_) | Error::Timeout(_) => "unavailable",
            Error::Catalog(_) => "unavailable",
            Error::Metrics(_) | Error::Io(_) | Error::Internal(_) => "internal",
        }
    }

    /// Returns the problem document of this refusal, serialized, with its status.
    pub(crate) fn problem(&self) -> (StatusCode, Vec<u8>) {
        let status = self.status();
        let errors = match self {
            Error::InvalidBatch(entries) => entries
                .iter()
                .map(|(index, err)| BatchEntryProblem {
                    index: *index,
                    detail: err.to_string(),
                    pointer: None,
                })
                .collect(),
            Error::RefusedBatch(entries) => entries
                .iter()
                .map(|(index, refusal)| BatchEntryProblem {
                    index: *index,
                    detail: refusal.to_string(),
                    pointer: Some(refusal.pointer().to_owned()),
                })
                .collect(),
            Error::OutOfScopeBatch(entries) => entries
                .iter()
                .map(|(index, refusal)| BatchEntryProblem {
                    index: *index,
                    detail: refusal.to_string(),
                    pointer: Some(format!("/{}", refusal.attribute)),
                })
                .collect(),
            _ => Vec::new(),
        };
        let pointer = match self {
            Error::Refused(refusal) => Some(refusal.pointer().to_owned()),
            Error::OutOfScope(refusal) => Some(format!("/{}", refusal.attribute)),
            _ => None,
        };
        let problem = Problem {
            problem_type: format!("urn:herald:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().as_str().to_owned(),
            pointer,
            errors,
        };
        // A document of strings and integers always serializes; the fallback is unreachable.
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        (status, body)
    }
}

/// Maps an error code to its HTTP status, once for the whole ingest API.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadyExists | ErrorCode::Aborted => StatusCode::CONFLICT,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A problem document (RFC 9457).
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Herald's error code (`invalid_argument`, ...).
    pub code: String,
    /// JSON Pointer into the event at fault, when the event-type catalog refused it
    /// (`/data/total`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// Per-event reasons of a refused batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<BatchEntryProblem>,
}

/// Why one event of a batch was refused.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct BatchEntryProblem {
    pub index: usize,
    pub detail: String,
    /// JSON Pointer into the event at fault, when the event-type catalog refused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = self.problem();
        if status.is_server_error() {
            // Logged once, here, where the error is turned into an answer.
            tracing::warn!(error = %self, status = status.as_u16(), "ingest request failed");
        }
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        match &self {
            Error::Unpersisted(_) | Error::Timeout(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Error::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::RateLimited {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}
