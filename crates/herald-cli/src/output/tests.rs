//! Snapshots of rendered subscriptions: key/value lines, the list table, JSON and filter
//! summaries.

use herald_proto::v1 as pb;

use super::*;

fn filter(json: &str) -> pb::Filter {
    let filter: Filter = serde_json::from_str(json).unwrap();
    pb::Filter::from(filter)
}

fn subscription(id: &str, sink: &str, filters: Vec<pb::Filter>) -> pb::Subscription {
    pb::Subscription {
        id: id.to_owned(),
        sink: sink.to_owned(),
        filters,
        secret: String::new(),
        description: "orders".to_owned(),
        create_time: Some(prost_types::Timestamp {
            seconds: 1_735_787_045,
            nanos: 123_000_000,
        }),
        update_time: Some(prost_types::Timestamp {
            seconds: 1_735_787_046,
            nanos: 0,
        }),
        revision: 3,
        protocol: "HTTP".to_owned(),
        ..Default::default()
    }
}

fn check_summary(filters: &[&str], expected: &str) {
    let filters: Vec<pb::Filter> = filters.iter().map(|json| filter(json)).collect();
    assert_eq!(filters_summary(&filters), expected);
}

#[test]
fn single_subscription_renders_as_aligned_key_value_lines() {
    let mut created = subscription(
        "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "https://example.com/hooks",
        vec![filter(
            r#"{"exact": {"type": "com.example.order.created"}}"#,
        )],
    );
    created.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
    let expected = "\
id           sub_01ARZ3NDEKTSV4RRFFQ69G5FAV
secret       whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
sink         https://example.com/hooks
filters      type=com.example.order.created
description  orders
revision     3
created      2025-01-02T03:04:05Z
updated      2025-01-02T03:04:06Z";
    assert_eq!(subscription_lines(&created), expected);
}

#[test]
fn list_renders_as_a_table_with_aligned_columns() {
    let subscriptions = [
        subscription(
            "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "https://example.com/hooks",
            vec![filter(r#"{"prefix": {"type": "com.example."}}"#)],
        ),
        subscription("sub_01ARZ3NDEKTSV4RRFFQ69G5FAW", "http://a.io/", Vec::new()),
    ];
    let expected = "\
ID                              SINK                       FILTERS             CREATED
sub_01ARZ3NDEKTSV4RRFFQ69G5FAV  https://example.com/hooks  type^=com.example.  2025-01-02T03:04:05Z
sub_01ARZ3NDEKTSV4RRFFQ69G5FAW  http://a.io/               *                   2025-01-02T03:04:05Z";
    assert_eq!(subscriptions_table(&subscriptions), expected);
}

#[test]
fn empty_list_renders_the_header_only() {
    assert_eq!(subscriptions_table(&[]), "ID  SINK  FILTERS  CREATED");
}

#[test]
fn subscription_json_uses_proto_field_names_and_spec_filters() {
    let subscription = subscription(
        "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "https://example.com/hooks",
        vec![filter(
            r#"{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]}"#,
        )],
    );
    let expected = json!({
        "id": "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "sink": "https://example.com/hooks",
        "filters": [{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]}],
        "description": "orders",
        "create_time": "2025-01-02T03:04:05.123Z",
        "update_time": "2025-01-02T03:04:06Z",
        "revision": "3",
        "protocol": "HTTP",
    });
    assert_eq!(subscription_json(&subscription), expected);
}

#[test]
fn subscription_json_includes_the_secret_only_when_present() {
    let mut subscription = subscription("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV", "http://a.io/", vec![]);
    assert!(subscription_json(&subscription).get("secret").is_none());
    subscription.secret = "whsec_x".to_owned();
    assert_eq!(subscription_json(&subscription)["secret"], "whsec_x");
}

#[test]
fn filter_summaries_show_structure() {
    check_summary(&[], "*");
    check_summary(&[r#"{"exact": {"type": "a"}}"#], "type=a");
    check_summary(
        &[r#"{"exact": {"type": "a", "source": "/s"}}"#],
        "source=/s & type=a",
    );
    check_summary(
        &[
            r#"{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]}"#,
            r#"{"prefix": {"type": "com."}}"#,
        ],
        "(type=a | type=b) & type^=com.",
    );
    check_summary(
        &[
            r#"{"any": [{"exact": {"type": "a", "source": "/s"}}, {"suffix": {"subject": ".pdf"}}]}"#,
        ],
        "(source=/s & type=a) | subject$=.pdf",
    );
    check_summary(&[r#"{"not": {"exact": {"type": "a"}}}"#], "!type=a");
    check_summary(
        &[r#"{"not": {"all": [{"exact": {"type": "a"}}, {"exact": {"source": "/s"}}]}}"#],
        "!(type=a & source=/s)",
    );
    check_summary(
        &[
            r#"{"sql": "source LIKE '/shop/%'"}"#,
            r#"{"not": {"cel": "data.total > 100"}}"#,
        ],
        "sql(source LIKE '/shop/%') & !cel(data.total > 100)",
    );
}

#[test]
fn table_pads_every_column_but_the_last() {
    let rows = vec![
        vec!["a".to_owned(), "bbb".to_owned()],
        vec!["cccc".to_owned(), "d".to_owned()],
    ];
    assert_eq!(table(&["X", "Y"], &rows), "X     Y\na     bbb\ncccc  d");
}
