//! Snapshots of the rendered catalog: the table, one type, and the Markdown documentation.

use super::*;

fn order_created(deprecated: bool) -> pb::EventType {
    pb::EventType {
        name: "com.example.order.created".to_owned(),
        description: "An order was placed | paid later".to_owned(),
        owner: "orders-team".to_owned(),
        versions: vec![
            pb::EventTypeVersion {
                version: "1".to_owned(),
                dataschema: String::new(),
                schema: r#"{"type":"object"}"#.to_owned(),
                examples: Vec::new(),
            },
            pb::EventTypeVersion {
                version: "2".to_owned(),
                dataschema: "https://example.com/schemas/order-created-2.json".to_owned(),
                schema: r#"{"type":"object","required":["total"]}"#.to_owned(),
                examples: vec![r#"{"total":42}"#.to_owned()],
            },
        ],
        deprecated,
        deprecation_reason: if deprecated {
            "use com.example.order.placed".to_owned()
        } else {
            String::new()
        },
        revision: 4,
    }
}

#[test]
fn table_shows_name_versions_owner_status_and_description() {
    let table = types_table(&[order_created(false), order_created(true)]);
    assert_eq!(
        table,
        "NAME                       VERSIONS  OWNER        STATUS      DESCRIPTION\n\
         com.example.order.created  1,2       orders-team  active      An order was placed | paid later\n\
         com.example.order.created  1,2       orders-team  deprecated  An order was placed | paid later"
    );
}

#[test]
fn one_type_shows_each_version_with_its_schema_and_examples() {
    let lines = type_lines(&order_created(true));
    assert_eq!(
        lines,
        "name         com.example.order.created\n\
         description  An order was placed | paid later\n\
         owner        orders-team\n\
         versions     1,2\n\
         revision     4\n\
         deprecated   use com.example.order.placed\n\
         \n\
         version 1\n\
         \x20 schema   {\"type\":\"object\"}\n\
         \n\
         version 2 (dataschema https://example.com/schemas/order-created-2.json)\n\
         \x20 schema   {\"type\":\"object\",\"required\":[\"total\"]}\n\
         \x20 example  {\"total\":42}"
    );
}

#[test]
fn json_carries_schemas_and_examples_as_json() {
    let value = type_json(&order_created(false));
    assert_eq!(value["versions"][1]["schema"]["required"], json!(["total"]));
    assert_eq!(value["versions"][1]["examples"][0], json!({"total": 42}));
    assert_eq!(value["revision"], json!("4"));
}

#[test]
fn docs_index_every_type_then_document_each_version() {
    let markdown = docs_markdown("Shop events", &[order_created(true)]);
    // Schemas are stored as JSON values, so their keys come back sorted.
    let expected = r#"# Shop events

| Type | Latest version | Owner | Description |
|---|---|---|---|
| `com.example.order.created` | 2 | orders-team | **Deprecated.** An order was placed \| paid later |

An event names the version of its `data` with `dataschema` (the URI a version lists) or the `dataversion` extension attribute; an event naming neither is of the latest version.

## `com.example.order.created`

> **Deprecated:** use com.example.order.placed

An order was placed | paid later

Owner: orders-team

### Version `1`

Schema of `data`:

```json
{
  "type": "object"
}
```

### Version `2`

`dataschema`: `https://example.com/schemas/order-created-2.json`

Schema of `data`:

```json
{
  "required": [
    "total"
  ],
  "type": "object"
}
```

Example 1:

```json
{
  "total": 42
}
```

"#;
    assert_eq!(markdown, expected);
}

#[test]
fn docs_of_an_empty_catalog_say_so() {
    assert_eq!(
        docs_markdown("Event types", &[]),
        "# Event types\n\nNo event types are registered.\n"
    );
}
