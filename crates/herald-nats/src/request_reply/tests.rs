//! The request-reply wire format: answers and refusals as the two enums of before wrote them.

use serde::{Deserialize, Serialize};

use herald_core::ErrorCode;
use herald_core::subscription::Sink;
use herald_core::subscription::consent::{Handshake, HandshakeOutcome};

use super::{decode_answer, encode_answer, encode_failure};
use crate::ConsentCheck;

/// The answer as consent_checks.rs wrote it before the purposes shared this module.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OldAnswer {
    Answered(Handshake),
    Error { code: String, message: String },
}

fn handshake() -> Handshake {
    Handshake {
        sink: Sink::parse("https://example.com/hook").unwrap(),
        outcome: HandshakeOutcome::Answered {
            status: 200,
            allowed_origin: Some("herald".to_owned()),
            allowed_rate: None,
        },
    }
}

#[test]
fn answers_and_refusals_keep_the_wire_format_of_before_both_ways() {
    let answer = encode_answer::<ConsentCheck>(&handshake()).unwrap();
    let old: OldAnswer = serde_json::from_slice(&answer).unwrap();
    assert!(matches!(old, OldAnswer::Answered(h) if h == handshake()));
    let written_before = serde_json::to_vec(&OldAnswer::Answered(handshake())).unwrap();
    assert_eq!(answer, written_before);
    let read = decode_answer::<ConsentCheck>(&written_before).unwrap();
    assert_eq!(read.unwrap(), handshake());

    let refusal = encode_failure(ErrorCode::NotFound, "subscription sub_x not found").unwrap();
    let old: OldAnswer = serde_json::from_slice(&refusal).unwrap();
    assert!(matches!(old, OldAnswer::Error { code, .. } if code == "not_found"));
    let err = decode_answer::<ConsentCheck>(&refusal)
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert_eq!(err.to_string(), "subscription sub_x not found");
}

#[test]
fn an_unknown_code_is_internal_and_an_unreadable_answer_is_no_answer() {
    let unknown = br#"{"error": {"code": "no_such_code", "message": "m"}}"#;
    let err = decode_answer::<ConsentCheck>(unknown).unwrap().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal);
    for unreadable in [
        &b"not json"[..],
        &br#"{}"#[..],
        &br#"{"sent": 1}"#[..],
        &br#"[1]"#[..],
    ] {
        assert!(decode_answer::<ConsentCheck>(unreadable).is_err());
    }
}
