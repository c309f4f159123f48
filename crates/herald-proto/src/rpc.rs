//! The parts of the `google.rpc` error model Herald uses: a `Status` carrying a `BadRequest`
//! detail that names the offending field, as `tonic-types` would encode it.
//!
//! The messages are declared by hand (three small, frozen messages) instead of generated, so the
//! build needs no copy of `googleapis`. Clients that understand rich error details (grpcurl,
//! `tonic-types`) show the field violation; every other client still sees the plain message.

use prost::Message as _;

use herald_core::ErrorCode;

/// Type URL of a packed [`BadRequest`].
pub const BAD_REQUEST_TYPE_URL: &str = "type.googleapis.com/google.rpc.BadRequest";

/// `google.rpc.Status`: what `grpc-status-details-bin` carries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// `google.rpc.BadRequest`: which fields of the request were invalid.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BadRequest {
    #[prost(message, repeated, tag = "1")]
    pub field_violations: Vec<FieldViolation>,
}

/// `google.rpc.BadRequest.FieldViolation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FieldViolation {
    /// Path of the field, e.g. `filters[1].any[0]`.
    #[prost(string, tag = "1")]
    pub field: String,
    #[prost(string, tag = "2")]
    pub description: String,
}

/// Returns an `INVALID_ARGUMENT` status whose message is `<field>: <description>` and whose
/// details hold the same as a `google.rpc.BadRequest`.
pub fn invalid_argument(field: &str, description: &str) -> tonic::Status {
    let code = crate::code_of(ErrorCode::InvalidArgument);
    let message = format!("{field}: {description}");
    let bad_request = BadRequest {
        field_violations: vec![FieldViolation {
            field: field.to_owned(),
            description: description.to_owned(),
        }],
    };
    let status = Status {
        code: code as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: BAD_REQUEST_TYPE_URL.to_owned(),
            value: bad_request.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(code, message, status.encode_to_vec().into())
}

/// Returns the field violations a status carries, empty when it has none.
pub fn field_violations(status: &tonic::Status) -> Vec<FieldViolation> {
    let Ok(rich_status) = Status::decode(status.details()) else {
        return Vec::new();
    };
    rich_status
        .details
        .iter()
        .filter(|any| any.type_url == BAD_REQUEST_TYPE_URL)
        .filter_map(|any| BadRequest::decode(any.value.as_slice()).ok())
        .flat_map(|bad_request| bad_request.field_violations)
        .collect()
}
