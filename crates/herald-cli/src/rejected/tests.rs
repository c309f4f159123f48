//! Snapshots of rendered rejected messages: the table and JSON.

use std::collections::BTreeMap;

use super::*;

fn rejected(sequence: u64, detail: &str) -> pb::RejectedEvent {
    pb::RejectedEvent {
        sequence,
        subject: "herald.events.0.com.shop.order".to_owned(),
        reason: "missing_attribute".to_owned(),
        detail: detail.to_owned(),
        time: Some(prost_types::Timestamp {
            seconds: 1_735_787_045,
            nanos: 0,
        }),
        payload: b"{\"total\":1}".to_vec(),
        payload_truncated: false,
        original_sequence: 7,
        headers: BTreeMap::from([("ce-id".to_owned(), "1".to_owned())]),
    }
}

#[test]
fn table_shows_sequence_time_reason_subject_and_shortened_detail() {
    let long = "x".repeat(100);
    let table = rejected_table(&[
        rejected(1, "missing required attribute `source`"),
        rejected(12, &long),
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "SEQ  TIME                  REASON             SUBJECT                         DETAIL"
    );
    assert_eq!(
        lines[1],
        "1    2025-01-02T03:04:05Z  missing_attribute  herald.events.0.com.shop.order  missing required attribute `source`"
    );
    assert!(
        lines[2].ends_with(&format!("{}...", "x".repeat(77))),
        "{}",
        lines[2]
    );
}

#[test]
fn json_has_proto_field_names_and_text_payloads() {
    let page = pb::ListRejectedEventsResponse {
        rejected_events: vec![rejected(3, "bad")],
        next_page_token: "3".to_owned(),
    };
    let value = rejected_json(&page);
    assert_eq!(value["next_page_token"], "3");
    let first = &value["rejected_events"][0];
    assert_eq!(first["sequence"], "3");
    assert_eq!(first["original_sequence"], "7");
    assert_eq!(first["payload"], "{\"total\":1}");
    assert_eq!(first["headers"]["ce-id"], "1");
    assert_eq!(first["time"], "2025-01-02T03:04:05Z");
}
