//! `heraldctl types ...` against a running control service: the catalog from registration to
//! deprecation and its Markdown documentation, refusals naming the field, and the warning of a
//! subscription to a deprecated type.

use crate::support::{Control, failure_of, stdout_of};

const SCHEMA: &str =
    r#"{"type":"object","required":["total"],"properties":{"total":{"type":"integer"}}}"#;

/// Writes `contents` to a file in a new temporary directory; returns both (the directory lives
/// as long as its handle).
fn file(name: &str, contents: &str) -> (tempfile::TempDir, String) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join(name);
    std::fs::write(&path, contents).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (directory, path)
}

#[tokio::test]
async fn manages_the_catalog_from_registration_to_docs() {
    let control = Control::start(true).await;
    let (_schema_dir, schema) = file("schema.json", SCHEMA);
    let (_example_dir, example) = file("example.json", r#"{"total": 42}"#);

    let created = control
        .heraldctl(&[
            "types",
            "create",
            "com.example.order.created",
            "--schema",
            &schema,
            "--example",
            &example,
            "--description",
            "An order was placed",
            "--owner",
            "orders-team",
        ])
        .await;
    let created = stdout_of(&created);
    assert!(
        created.starts_with("name         com.example.order.created\n"),
        "{created}"
    );
    assert!(created.contains("  example  {\"total\":42}"), "{created}");

    let (_type_dir, whole) = file(
        "type.json",
        r#"{"name": "com.example.order.shipped", "owner": "logistics", "versions": [
            {"version": "1", "schema": {"type": "object"}},
            {"version": "2", "dataschema": "https://example.com/shipped-2.json",
             "schema": {"type": "object", "required": ["carrier"]},
             "examples": [{"carrier": "ups"}]}]}"#,
    );
    stdout_of(
        &control
            .heraldctl(&["types", "create", "--file", &whole])
            .await,
    );

    let listed = stdout_of(&control.heraldctl(&["types", "list"]).await);
    assert_eq!(
        listed,
        "NAME                       VERSIONS  OWNER        STATUS  DESCRIPTION\n\
         com.example.order.created  1         orders-team  active  An order was placed\n\
         com.example.order.shipped  1,2       logistics    active\n"
    );

    let deprecated = control
        .heraldctl(&[
            "types",
            "deprecate",
            "com.example.order.created",
            "--reason",
            "use com.example.order.placed",
        ])
        .await;
    assert!(
        stdout_of(&deprecated).contains("deprecated   use com.example.order.placed"),
        "{}",
        stdout_of(&deprecated)
    );
    let fetched = control
        .heraldctl(&[
            "--output",
            "json",
            "types",
            "get",
            "com.example.order.created",
        ])
        .await;
    let fetched: serde_json::Value = serde_json::from_str(&stdout_of(&fetched)).unwrap();
    assert_eq!(fetched["deprecated"], true);
    assert_eq!(fetched["versions"][0]["examples"][0]["total"], 42);

    let docs_dir = tempfile::tempdir().unwrap();
    let docs_path = docs_dir.path().join("events.md");
    let written = control
        .heraldctl(&["types", "docs", "--out", docs_path.to_str().unwrap()])
        .await;
    assert_eq!(stdout_of(&written), "");
    let docs = std::fs::read_to_string(&docs_path).unwrap();
    assert!(docs.starts_with("# Event types\n\n| Type |"), "{docs}");
    assert!(
        docs.contains("> **Deprecated:** use com.example.order.placed"),
        "{docs}"
    );
    assert!(
        docs.contains("`dataschema`: `https://example.com/shipped-2.json`"),
        "{docs}"
    );
    assert_eq!(
        stdout_of(&control.heraldctl(&["types", "docs"]).await),
        docs + "\n"
    );
}

#[tokio::test]
async fn refuses_bad_schemas_and_examples_naming_the_field() {
    let control = Control::start(true).await;
    let (_bad_schema_dir, bad_schema) = file("schema.json", r#"{"type": "no-such-type"}"#);
    let refused = control
        .heraldctl(&["types", "create", "com.example.a", "--schema", &bad_schema])
        .await;
    let refused = failure_of(&refused);
    assert!(
        refused
            .starts_with("error: INVALID_ARGUMENT: versions[0].schema: not a usable JSON Schema"),
        "{refused}"
    );

    let (_schema_dir, schema) = file("schema.json", SCHEMA);
    let (_example_dir, example) = file("example.json", r#"{"total": "forty-two"}"#);
    let refused = control
        .heraldctl(&[
            "types",
            "create",
            "com.example.a",
            "--schema",
            &schema,
            "--example",
            &example,
        ])
        .await;
    let refused = failure_of(&refused);
    assert!(
        refused.starts_with(
            "error: INVALID_ARGUMENT: versions[0].examples[0]: does not satisfy the schema at `/total`"
        ),
        "{refused}"
    );

    let (_not_json_dir, not_json) = file("schema.json", "{oops");
    let refused = failure_of(
        &control
            .heraldctl(&["types", "create", "com.example.a", "--schema", &not_json])
            .await,
    );
    assert!(
        refused.starts_with("error: INVALID_ARGUMENT: versions[0].schema: is not JSON"),
        "{refused}"
    );

    // Nothing was stored.
    let listed = stdout_of(&control.heraldctl(&["types", "list"]).await);
    assert_eq!(listed, "NAME  VERSIONS  OWNER  STATUS  DESCRIPTION\n");
    let missing = failure_of(&control.heraldctl(&["types", "get", "com.example.a"]).await);
    assert_eq!(
        missing,
        "error: NOT_FOUND: event type com.example.a not found\n"
    );
    let (_schema_dir2, schema) = file("schema.json", SCHEMA);
    stdout_of(
        &control
            .heraldctl(&["types", "create", "com.example.a", "--schema", &schema])
            .await,
    );
    let taken = failure_of(
        &control
            .heraldctl(&["types", "create", "com.example.a", "--schema", &schema])
            .await,
    );
    assert_eq!(
        taken,
        "error: ALREADY_EXISTS: event type com.example.a already exists\n"
    );
}

#[tokio::test]
async fn subscribing_to_a_deprecated_type_succeeds_with_a_warning() {
    let control = Control::start(true).await;
    let (_schema_dir, schema) = file("schema.json", SCHEMA);
    for name in ["com.example.old", "com.example.new"] {
        stdout_of(
            &control
                .heraldctl(&["types", "create", name, "--schema", &schema])
                .await,
        );
    }
    stdout_of(
        &control
            .heraldctl(&[
                "types",
                "deprecate",
                "com.example.old",
                "--reason",
                "use com.example.new",
            ])
            .await,
    );
    let sink = "https://hooks.example.com/herald";
    let created = control
        .heraldctl(&[
            "sub",
            "create",
            "--sink",
            sink,
            "--type",
            "com.example.old",
            "--type",
            "com.example.new",
        ])
        .await;
    let created = stdout_of(&created);
    assert!(
        created.contains(
            "\nwarning      event type `com.example.old` is deprecated: use com.example.new"
        ),
        "{created}"
    );
    let fresh = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "create",
            "--sink",
            sink,
            "--type",
            "com.example.new",
        ])
        .await;
    let fresh: serde_json::Value = serde_json::from_str(&stdout_of(&fresh)).unwrap();
    assert_eq!(fresh.get("warnings"), None, "{fresh}");
    let id = fresh["id"].as_str().unwrap();
    let updated = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "update",
            id,
            "--type",
            "com.example.old",
        ])
        .await;
    let updated: serde_json::Value = serde_json::from_str(&stdout_of(&updated)).unwrap();
    assert_eq!(
        updated["warnings"],
        serde_json::json!(["event type `com.example.old` is deprecated: use com.example.new"])
    );
}
