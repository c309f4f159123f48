//! Tests of the error-code mapping and of rich error details.

use herald_core::ErrorCode;

use crate::{code_name, code_of, rpc};

#[test]
fn every_error_code_maps_to_its_grpc_namesake() {
    let cases = [
        (ErrorCode::InvalidArgument, "INVALID_ARGUMENT"),
        (ErrorCode::NotFound, "NOT_FOUND"),
        (ErrorCode::AlreadyExists, "ALREADY_EXISTS"),
        (ErrorCode::Aborted, "ABORTED"),
        (ErrorCode::Unauthenticated, "UNAUTHENTICATED"),
        (ErrorCode::PermissionDenied, "PERMISSION_DENIED"),
        (ErrorCode::ResourceExhausted, "RESOURCE_EXHAUSTED"),
        (ErrorCode::Unavailable, "UNAVAILABLE"),
        (ErrorCode::DeadlineExceeded, "DEADLINE_EXCEEDED"),
        (ErrorCode::Internal, "INTERNAL"),
    ];
    for (code, name) in cases {
        assert_eq!(code_name(code_of(code)), name);
        assert_eq!(code.as_str().to_uppercase(), name);
    }
}

#[test]
fn invalid_argument_names_the_field_in_message_and_details() {
    let status = rpc::invalid_argument("sink", "scheme must be http or https");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "sink: scheme must be http or https");
    let violations = rpc::field_violations(&status);
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "sink");
    assert_eq!(violations[0].description, "scheme must be http or https");
}

#[test]
fn status_without_details_has_no_field_violations() {
    let status = tonic::Status::not_found("no such subscription");
    assert!(rpc::field_violations(&status).is_empty());
}
