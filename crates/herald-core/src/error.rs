//! The closed set of error codes every Herald error maps to.
//!
//! Each API edge maps an `ErrorCode` exactly once: to an HTTP status in `herald-ingest`, to a
//! `tonic::Code` in `herald-proto`. Library errors expose `fn code(&self) -> ErrorCode`.

/// What kind of failure an error is, independent of the protocol that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The caller sent something malformed or semantically invalid.
    InvalidArgument,
    /// The named resource does not exist.
    NotFound,
    /// The resource to create already exists.
    AlreadyExists,
    /// The resource changed since the caller read it (optimistic concurrency).
    Aborted,
    /// The caller did not present valid credentials.
    Unauthenticated,
    /// The caller is authenticated but not allowed to do this.
    PermissionDenied,
    /// A limit was hit (size, rate, quota).
    ResourceExhausted,
    /// A dependency (NATS, an endpoint) cannot be reached now; retrying may help.
    Unavailable,
    /// A deadline passed before the operation completed.
    DeadlineExceeded,
    /// A bug or a broken invariant on our side.
    Internal,
}

impl ErrorCode {
    /// Returns the stable snake_case name used in problem documents and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::Aborted => "aborted",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::Internal => "internal",
        }
    }

    /// Returns the code whose [`ErrorCode::as_str`] is `name`, if any (a code carried as text,
    /// such as a dispatcher's refusal of a test send).
    pub fn named(name: &str) -> Option<ErrorCode> {
        Some(match name {
            "invalid_argument" => ErrorCode::InvalidArgument,
            "not_found" => ErrorCode::NotFound,
            "already_exists" => ErrorCode::AlreadyExists,
            "aborted" => ErrorCode::Aborted,
            "unauthenticated" => ErrorCode::Unauthenticated,
            "permission_denied" => ErrorCode::PermissionDenied,
            "resource_exhausted" => ErrorCode::ResourceExhausted,
            "unavailable" => ErrorCode::Unavailable,
            "deadline_exceeded" => ErrorCode::DeadlineExceeded,
            "internal" => ErrorCode::Internal,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_code_is_found_by_its_name_and_nothing_else_is() {
        let codes = [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::Aborted,
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::ResourceExhausted,
            ErrorCode::Unavailable,
            ErrorCode::DeadlineExceeded,
            ErrorCode::Internal,
        ];
        for code in codes {
            assert_eq!(ErrorCode::named(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::named("Internal"), None);
        assert_eq!(ErrorCode::named(""), None);
    }
}
