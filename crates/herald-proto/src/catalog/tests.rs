//! Round trips of event types through their wire form.

use super::*;

fn request(schema: &str, examples: &[&str]) -> pb::CreateEventTypeRequest {
    pb::CreateEventTypeRequest {
        name: "com.example.order.created".to_owned(),
        description: "An order was placed".to_owned(),
        owner: "orders-team".to_owned(),
        versions: vec![pb::EventTypeVersion {
            version: "1".to_owned(),
            dataschema: String::new(),
            schema: schema.to_owned(),
            examples: examples
                .iter()
                .map(|example| (*example).to_owned())
                .collect(),
        }],
    }
}

#[test]
fn event_type_round_trips_through_the_wire_form() {
    let event_type = event_type_from_pb(&request(
        r#"{"type":"object","required":["total"]}"#,
        &[r#"{"total":42}"#],
    ))
    .unwrap();
    assert_eq!(event_type.versions[0].dataschema, None);
    assert_eq!(
        event_type.versions[0].examples,
        vec![serde_json::json!({"total": 42})]
    );
    let wire = event_type_to_pb(&event_type, 3);
    assert_eq!(wire.revision, 3);
    assert!(!wire.deprecated);
    assert_eq!(
        wire.versions[0].examples,
        vec![r#"{"total":42}"#.to_owned()]
    );
    let again = event_type_from_pb(&pb::CreateEventTypeRequest {
        name: wire.name,
        description: wire.description,
        owner: wire.owner,
        versions: wire.versions,
    })
    .unwrap();
    assert_eq!(again, event_type);
}

#[test]
fn json_that_does_not_parse_names_its_field() {
    let error = event_type_from_pb(&request(r#"{"type":"object"}"#, &["{}", "{oops"])).unwrap_err();
    assert_eq!(error.field, "versions[0].examples[1]");
    assert!(error.reason.starts_with("is not JSON: "), "{error}");
    let error = event_type_from_pb(&request("", &[])).unwrap_err();
    assert_eq!(error.field, "versions[0].schema");
}

#[test]
fn deprecation_is_carried_with_its_reason() {
    let mut event_type = event_type_from_pb(&request("true", &[])).unwrap();
    event_type.deprecated = Some("use com.example.order.placed".to_owned());
    let wire = event_type_to_pb(&event_type, 1);
    assert!(wire.deprecated);
    assert_eq!(wire.deprecation_reason, "use com.example.order.placed");
}
