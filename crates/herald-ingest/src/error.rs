//! Ingest errors and their one mapping to HTTP: `application/problem+json` (RFC 9457).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use herald_core::{ErrorCode, EventError};

/// An ingest failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid CloudEvent: {0}")]
    InvalidEvent(EventError),
    #[error("invalid batch: {} of its events are invalid", .0.len())]
    InvalidBatch(Vec<(usize, EventError)>),
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
    #[error("listener failed: {0}")]
    Io(std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Returns the kind of failure, which decides the HTTP status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidEvent(_)
            | Error::InvalidBatch(_)
            | Error::BadRequest(_)
            | Error::RepeatedHeader(_)
            | Error::Unstorable(_) => ErrorCode::InvalidArgument,
            Error::PayloadTooLarge { .. } | Error::BatchTooLarge { .. } => {
                ErrorCode::ResourceExhausted
            }
            Error::UnsupportedMediaType(_) => ErrorCode::InvalidArgument,
            Error::Unauthenticated => ErrorCode::Unauthenticated,
            Error::Unpersisted(_) | Error::Timeout(_) => ErrorCode::Unavailable,
            Error::Metrics(_) | Error::Io(_) => ErrorCode::Internal,
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
            // Two refusals are more precise than their code's generic status.
            Error::PayloadTooLarge { .. } | Error::BatchTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => status_of(self.code()),
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Error::InvalidEvent(_) | Error::Unstorable(_) => "invalid-event",
            Error::InvalidBatch(_) => "invalid-batch",
            Error::BadRequest(_) => "bad-request",
            Error::RepeatedHeader(_) => "repeated-header",
            Error::PayloadTooLarge { .. } | Error::BatchTooLarge { .. } => "payload-too-large",
            Error::UnsupportedMediaType(_) => "unsupported-media-type",
            Error::Unauthenticated => "unauthenticated",
            Error::Unpersisted(_) | Error::Timeout(_) => "unavailable",
            Error::Metrics(_) | Error::Io(_) => "internal",
        }
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
    /// Per-event reasons of a refused batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<BatchEntryProblem>,
}

/// Why one event of a batch was refused.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct BatchEntryProblem {
    pub index: usize,
    pub detail: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // Logged once, here, where the error is turned into an answer.
            tracing::warn!(error = %self, status = status.as_u16(), "ingest request failed");
        }
        let errors = match &self {
            Error::InvalidBatch(entries) => entries
                .iter()
                .map(|(index, err)| BatchEntryProblem {
                    index: *index,
                    detail: err.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let problem = Problem {
            problem_type: format!("urn:herald:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().as_str().to_owned(),
            errors,
        };
        // A document of strings and integers always serializes; the fallback is unreachable.
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            Error::Unpersisted(_) | Error::Timeout(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Error::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
