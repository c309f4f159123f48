//! Errors of NATS operations, classified by what the caller can do about them.

use herald_core::ErrorCode;

/// A failed NATS operation.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    code: ErrorCode,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// Returns a mapper that wraps a client error as `Unavailable` with `context`.
    pub(crate) fn unavailable<E>(context: impl std::fmt::Display) -> impl FnOnce(E) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |source| Error {
            code: ErrorCode::Unavailable,
            message: format!("{context}: {source}"),
            source: Some(Box::new(source)),
        }
    }

    /// Returns what kind of failure this is.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}
