//! Catalog tests: what registration refuses, and which version an event is checked against,
//! with the JSON path of a violation.

use bytes::Bytes;
use serde_json::json;

use super::*;

fn order_created() -> EventType {
    EventType {
        name: "com.shop.order.created".to_owned(),
        description: "An order was placed.".to_owned(),
        owner: "team-orders".to_owned(),
        versions: vec![
            Version {
                version: "1".to_owned(),
                dataschema: Some("https://schemas.example.com/order/1".to_owned()),
                schema: json!({
                    "type": "object",
                    "required": ["total"],
                    "properties": {"total": {"type": "integer"}}
                }),
                examples: vec![json!({"total": 42})],
            },
            Version {
                version: "2".to_owned(),
                dataschema: None,
                schema: json!({
                    "type": "object",
                    "required": ["total", "currency"],
                    "properties": {
                        "total": {"type": "number", "minimum": 0},
                        "currency": {"type": "string", "enum": ["EUR", "USD"]},
                        "items": {"type": "array", "items": {"type": "object", "required": ["sku"]}}
                    }
                }),
                examples: vec![json!({"total": 4.2, "currency": "EUR"})],
            },
        ],
        deprecated: None,
    }
}

fn event(extra: &str) -> Event {
    let json = format!(
        r#"{{"specversion":"1.0","id":"1","source":"/shop","type":"com.shop.order.created"{extra}}}"#
    );
    Event::from_structured(Bytes::from(json)).unwrap()
}

fn catalog() -> CompiledCatalog {
    let (catalog, errors) = CompiledCatalog::compile([&order_created()]);
    assert!(errors.is_empty(), "{errors:?}");
    catalog
}

fn violation(verdict: Verdict) -> Violation {
    match verdict {
        Verdict::Invalid(violation) => violation,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn registration_refuses_what_cannot_be_checked_naming_the_field() {
    let mut cases: Vec<(EventType, &str)> = Vec::new();
    let mut no_name = order_created();
    no_name.name = String::new();
    cases.push((no_name, "name"));
    let mut no_versions = order_created();
    no_versions.versions.clear();
    cases.push((no_versions, "versions"));
    let mut twice = order_created();
    twice.versions[1].version = "1".to_owned();
    cases.push((twice, "versions[1].version"));
    let mut bad_schema = order_created();
    bad_schema.versions[1].schema = json!({"type": 12});
    cases.push((bad_schema, "versions[1].schema"));
    let mut remote = order_created();
    remote.versions[0].schema = json!({"$ref": "https://schemas.example.com/remote.json"});
    cases.push((remote, "versions[0].schema"));
    let mut bad_example = order_created();
    bad_example.versions[1].examples = vec![
        json!({"total": 1, "currency": "EUR"}),
        json!({"total": "x"}),
    ];
    cases.push((bad_example, "versions[1].examples[1]"));
    for (event_type, field) in cases {
        let error = event_type.validate().unwrap_err();
        assert_eq!(error.field, field, "{error}");
    }
    assert_eq!(order_created().validate(), Ok(()));
}

#[test]
fn an_event_is_checked_against_the_version_it_names() {
    let catalog = catalog();
    // No version named: the latest, 2, which needs a currency.
    let latest = violation(catalog.check(&event(r#","data":{"total":42}"#)));
    assert_eq!(latest.version.as_deref(), Some("2"));
    assert_eq!(latest.pointer, "/data");
    assert!(latest.message.contains("currency"), "{}", latest.message);
    // `dataschema` names version 1.
    let by_schema =
        event(r#","dataschema":"https://schemas.example.com/order/1","data":{"total":42}"#);
    assert_eq!(catalog.check(&by_schema), Verdict::Valid);
    // The `dataversion` extension names version 1 too.
    assert_eq!(
        catalog.check(&event(r#","dataversion":"1","data":{"total":42}"#)),
        Verdict::Valid
    );
    let by_extension =
        violation(catalog.check(&event(r#","dataversion":"1","data":{"total":"42"}"#)));
    assert_eq!(
        (
            by_extension.version.as_deref(),
            by_extension.pointer.as_str()
        ),
        (Some("1"), "/data/total")
    );
}

#[test]
fn a_violation_points_at_the_failing_json_path() {
    let catalog = catalog();
    let cases = [
        (r#","data":{"total":-1,"currency":"EUR"}"#, "/data/total"),
        (r#","data":{"total":1,"currency":"GBP"}"#, "/data/currency"),
        (
            r#","data":{"total":1,"currency":"EUR","items":[{"sku":"a"},{}]}"#,
            "/data/items/1",
        ),
        (r#","data":"not an object""#, "/data"),
        ("", "/data"),
        (
            r#","datacontenttype":"text/plain","data":"total=1""#,
            "/data",
        ),
        (r#","dataversion":"7","data":{}"#, "/dataversion"),
        (
            r#","dataschema":"https://elsewhere.example.com/x","data":{}"#,
            "/dataschema",
        ),
    ];
    for (extra, pointer) in cases {
        let violation = violation(catalog.check(&event(extra)));
        assert_eq!(violation.pointer, pointer, "{extra}: {violation}");
    }
    assert_eq!(
        catalog.check(&event(
            r#","data":{"total":1.5,"currency":"USD","items":[{"sku":"a"}]}"#
        )),
        Verdict::Valid
    );
}

#[test]
fn other_types_are_unregistered() {
    let other = Event::from_structured(Bytes::from_static(
        br#"{"specversion":"1.0","id":"1","source":"/shop","type":"com.shop.order.deleted"}"#,
    ))
    .unwrap();
    assert_eq!(catalog().check(&other), Verdict::Unregistered);
    assert_eq!(
        CompiledCatalog::default().check(&event("")),
        Verdict::Unregistered
    );
}

#[test]
fn the_storage_form_round_trips() {
    let mut event_type = order_created();
    event_type.deprecated = Some("use com.shop.order.placed".to_owned());
    let json = serde_json::to_string(&event_type).unwrap();
    assert_eq!(
        serde_json::from_str::<EventType>(&json).unwrap(),
        event_type
    );
}
