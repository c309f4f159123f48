//! Dispatcher errors: failures of the service itself, never of a delivery (those are outcomes).

use herald_core::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Nats(#[from] herald_nats::Error),
    #[error("failed to build the http client: {0}")]
    Client(String),
    #[error("failed to register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Nats(err) => err.code(),
            Error::Client(_) | Error::Metrics(_) => ErrorCode::Internal,
        }
    }
}
