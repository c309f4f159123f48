//! Control-plane errors and their one conversion to a gRPC status.

use herald_core::ErrorCode;
use herald_core::SubscriptionId;
use herald_core::catalog::CatalogError;
use herald_core::credential::CredentialError;
use herald_core::filter::FilterError;
use herald_core::retry::PolicyError;
use herald_core::subscription::SubscriptionError;

/// A control-plane failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; `field` is its path (`sink`, `filters[1].any[0]`).
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("subscription {0} not found")]
    NotFound(SubscriptionId),
    #[error("subscription {id} is at revision {actual}, not the expected revision {expected}")]
    RevisionMismatch {
        id: SubscriptionId,
        expected: u64,
        actual: u64,
    },
    #[error("event type {0} not found")]
    EventTypeNotFound(String),
    #[error("event type {name} is at revision {actual}, not the expected revision {expected}")]
    EventTypeChanged {
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    /// The caller's credential does not allow this call, or this tenant.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("credential {0} not found")]
    CredentialNotFound(String),
    /// A bug on our side, described.
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Store(herald_nats::Error),
    #[error("failed to register metrics: {0}")]
    Metrics(prometheus::Error),
    #[error("failed to build the reflection service: {0}")]
    Reflection(tonic_reflection::server::Error),
    #[error("listener failed: {0}")]
    Io(std::io::Error),
    #[error("grpc server failed: {0}")]
    Transport(tonic::transport::Error),
    #[error("failed to generate a signing secret: {0}")]
    Secret(herald_signing::Error),
    /// The service is stopping: the call may be made again, to another replica.
    #[error("the control plane is shutting down")]
    ShuttingDown,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Returns the kind of failure, which decides the gRPC status code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Error::NotFound(_) | Error::EventTypeNotFound(_) => ErrorCode::NotFound,
            Error::RevisionMismatch { .. } | Error::EventTypeChanged { .. } => ErrorCode::Aborted,
            Error::Unauthenticated => ErrorCode::Unauthenticated,
            Error::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Error::CredentialNotFound(_) => ErrorCode::NotFound,
            Error::Internal(_) => ErrorCode::Internal,
            Error::ShuttingDown => ErrorCode::Unavailable,
            Error::Store(err) => err.code(),
            Error::Metrics(_)
            | Error::Reflection(_)
            | Error::Io(_)
            | Error::Transport(_)
            | Error::Secret(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn invalid_argument(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<SubscriptionError> for Error {
    fn from(error: SubscriptionError) -> Error {
        Error::InvalidArgument {
            field: error.field,
            reason: error.reason,
        }
    }
}

impl From<CredentialError> for Error {
    fn from(error: CredentialError) -> Error {
        Error::InvalidArgument {
            field: error.field,
            reason: error.reason,
        }
    }
}

impl From<CatalogError> for Error {
    fn from(error: CatalogError) -> Error {
        Error::InvalidArgument {
            field: error.field,
            reason: error.reason,
        }
    }
}

impl From<PolicyError> for Error {
    fn from(error: PolicyError) -> Error {
        Error::InvalidArgument {
            field: error.field.to_owned(),
            reason: error.reason,
        }
    }
}

impl From<FilterError> for Error {
    fn from(error: FilterError) -> Error {
        Error::InvalidArgument {
            field: error.path,
            reason: error.reason,
        }
    }
}

impl From<herald_nats::Error> for Error {
    fn from(error: herald_nats::Error) -> Error {
        Error::Store(error)
    }
}

impl From<Error> for tonic::Status {
    /// The one place control errors become gRPC statuses; failures on our side are logged here.
    fn from(error: Error) -> tonic::Status {
        let code = error.code();
        match code {
            ErrorCode::Internal => tracing::error!(error = %error, "control request failed"),
            ErrorCode::Unavailable | ErrorCode::DeadlineExceeded => {
                tracing::warn!(error = %error, "control request failed");
            }
            _ => tracing::debug!(error = %error, "control request refused"),
        }
        match error {
            Error::InvalidArgument { field, reason } => {
                herald_proto::rpc::invalid_argument(&field, &reason)
            }
            other => tonic::Status::new(herald_proto::code_of(code), other.to_string()),
        }
    }
}
