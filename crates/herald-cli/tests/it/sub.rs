//! `heraldctl sub ...` against a running control service.

use crate::support::{Control, TOKEN, failure_of, heraldctl, stdout_of};

const SINK: &str = "https://hooks.example.com/herald";

#[tokio::test]
async fn manages_a_subscription_from_create_to_delete() {
    let control = Control::start(true).await;

    let created = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "create",
            "--sink",
            SINK,
            "--type",
            "com.example.a",
            "--type",
            "com.example.b",
            "--description",
            "orders",
        ])
        .await;
    let created: serde_json::Value = serde_json::from_str(&stdout_of(&created)).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sub_"), "{created}");
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(
        created["filters"],
        serde_json::json!([{"any": [
            {"exact": {"type": "com.example.a"}},
            {"exact": {"type": "com.example.b"}},
        ]}])
    );

    let shown = stdout_of(&control.heraldctl(&["sub", "get", &id]).await);
    assert!(
        shown.starts_with(&format!("id           {id}\nsink ")),
        "{shown}"
    );
    assert!(
        !shown.contains("whsec_"),
        "get should not reveal the secret: {shown}"
    );
    assert!(
        shown.contains("filters      type=com.example.a | type=com.example.b"),
        "{shown}"
    );

    let listed = stdout_of(&control.heraldctl(&["sub", "list"]).await);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("ID "), "{listed}");
    assert!(lines[1].starts_with(&format!("{id}  {SINK}")), "{listed}");

    let updated = control
        .heraldctl(&[
            "sub",
            "update",
            &id,
            "--description",
            "renamed",
            "--clear-filters",
        ])
        .await;
    let updated = stdout_of(&updated);
    assert!(updated.contains("description  renamed"), "{updated}");
    assert!(updated.contains("filters      *"), "{updated}");

    let deleted = stdout_of(&control.heraldctl(&["sub", "delete", &id]).await);
    assert_eq!(deleted, format!("deleted {id}\n"));

    let missing = failure_of(&control.heraldctl(&["sub", "get", &id]).await);
    assert_eq!(
        missing,
        format!("error: NOT_FOUND: subscription {id} not found\n")
    );
}

#[tokio::test]
async fn reports_an_invalid_argument_on_one_line_naming_the_field() {
    let control = Control::start(true).await;
    let output = control
        .heraldctl(&["sub", "create", "--sink", "ftp://example.com/"])
        .await;
    assert_eq!(
        failure_of(&output),
        "error: INVALID_ARGUMENT: sink: scheme must be http or https\n"
    );
}

#[tokio::test]
async fn sends_the_token_as_a_bearer_credential() {
    let control = Control::start(false).await;
    let refused = failure_of(&control.heraldctl(&["sub", "list"]).await);
    assert!(refused.starts_with("error: UNAUTHENTICATED: "), "{refused}");
    let listed = stdout_of(&control.heraldctl(&["--token", TOKEN, "sub", "list"]).await);
    assert_eq!(listed, "ID  SINK  FILTERS  CREATED\n");
}

#[tokio::test]
async fn hints_at_make_run_when_the_control_plane_is_not_running() {
    // A port that was just free: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let output = heraldctl(&["--server", &server, "sub", "list"]).await;
    let error = failure_of(&output);
    let expected_start = format!("error: cannot connect to the control plane at {server}");
    assert!(error.starts_with(&expected_start), "{error}");
    assert!(error.contains("make run"), "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");
}

#[tokio::test]
async fn creates_expression_filters_and_refuses_invalid_ones_with_their_position() {
    let control = Control::start(true).await;
    let created = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "create",
            "--sink",
            SINK,
            "--filter",
            "sql:type LIKE 'com.shop.%' AND EXISTS subject",
            "--filter",
            r#"cel:type.startsWith("com.shop.") && data.total > 100"#,
        ])
        .await;
    let created: serde_json::Value = serde_json::from_str(&stdout_of(&created)).unwrap();
    assert_eq!(
        created["filters"],
        serde_json::json!([
            {"sql": "type LIKE 'com.shop.%' AND EXISTS subject"},
            {"cel": r#"type.startsWith("com.shop.") && data.total > 100"#},
        ])
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let shown = stdout_of(&control.heraldctl(&["sub", "get", &id]).await);
    assert!(
        shown.contains("filters      sql(type LIKE 'com.shop.%' AND EXISTS subject) & cel("),
        "{shown}"
    );

    let invalid_sql = control
        .heraldctl(&[
            "sub",
            "create",
            "--sink",
            SINK,
            "--filter",
            "sql:type = 'a' AND",
        ])
        .await;
    let error = failure_of(&invalid_sql);
    assert!(
        error.starts_with("error: INVALID_ARGUMENT: filters[0].sql: at position "),
        "{error}"
    );
    let invalid_cel = control
        .heraldctl(&[
            "sub",
            "create",
            "--sink",
            SINK,
            "--type",
            "a",
            "--filter",
            "cel:data.total >",
        ])
        .await;
    let error = failure_of(&invalid_cel);
    assert!(
        error.starts_with("error: INVALID_ARGUMENT: filters[1].cel: at position "),
        "{error}"
    );
    let listed = stdout_of(&control.heraldctl(&["sub", "list"]).await);
    assert_eq!(
        listed.lines().count(),
        2,
        "nothing invalid is stored: {listed}"
    );
}
