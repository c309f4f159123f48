//! `heraldctl sub ...` against a running control service.

use crate::support::{Control, TOKEN, command, failure_of, heraldctl, stdout_of};

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
    assert_eq!(listed, "ID  SINK  FILTERS  DELIVERY  CREATED\n");
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

#[tokio::test]
async fn sets_and_changes_delivery_settings_with_flags() {
    let control = Control::start(true).await;
    let created = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "create",
            "--sink",
            SINK,
            "--rate-limit",
            "50",
            "--max-in-flight",
            "8",
            "--ordering",
            "key",
            "--on-dead-letter",
            "skip",
        ])
        .await;
    let created: serde_json::Value = serde_json::from_str(&stdout_of(&created)).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["delivery"],
        serde_json::json!({
            "rate_limit": {"per_second": 50, "burst": 50},
            "max_in_flight": 8,
            "ordering": "ORDERING_KEY",
            "on_dead_letter": "ON_DEAD_LETTER_SKIP",
            "content_mode": "CONTENT_MODE_STRUCTURED",
            "parts": 1,
        })
    );

    let shown = stdout_of(&control.heraldctl(&["sub", "get", &id]).await);
    assert!(
        shown.contains(
            "\ndelivery     rate 50/s burst 50, max in flight 8, ordered by key, dead letters skip\n"
        ),
        "{shown}"
    );
    let listed = stdout_of(&control.heraldctl(&["sub", "list"]).await);
    assert!(
        listed.contains("  50/s, 8 in flight, by key (skip)  "),
        "{listed}"
    );

    // Flags not given keep their current values; leaving key order resets dead-letter handling.
    let updated = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "update",
            &id,
            "--burst",
            "10",
            "--ordering",
            "none",
        ])
        .await;
    let updated: serde_json::Value = serde_json::from_str(&stdout_of(&updated)).unwrap();
    assert_eq!(
        updated["delivery"],
        serde_json::json!({
            "rate_limit": {"per_second": 50, "burst": 10},
            "max_in_flight": 8,
            "ordering": "ORDERING_NONE",
            "on_dead_letter": "ON_DEAD_LETTER_BLOCK",
            "content_mode": "CONTENT_MODE_STRUCTURED",
            "parts": 1,
        })
    );
    let cleared = control
        .heraldctl(&[
            "sub",
            "update",
            &id,
            "--rate-limit",
            "none",
            "--max-in-flight",
            "default",
        ])
        .await;
    assert!(
        stdout_of(&cleared)
            .contains("delivery     no rate limit, default max in flight, unordered"),
        "{}",
        stdout_of(&cleared)
    );
}

#[tokio::test]
async fn refuses_out_of_bounds_delivery_settings_naming_the_field() {
    let control = Control::start(true).await;
    let cases: [(&[&str], &str); 3] = [
        (
            &["--max-in-flight", "0"],
            "error: INVALID_ARGUMENT: delivery.max_in_flight: must be between 1 and 1024\n",
        ),
        (
            &["--rate-limit", "100001"],
            "error: INVALID_ARGUMENT: delivery.rate_limit.per_second: must be between 1 and \
             100000\n",
        ),
        (
            &["--on-dead-letter", "skip"],
            "error: INVALID_ARGUMENT: delivery.on_dead_letter: applies only to ordered \
             subscriptions (ordering: key)\n",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["sub", "create", "--sink", SINK];
        args.extend_from_slice(flags);
        assert_eq!(failure_of(&control.heraldctl(&args).await), expected);
    }
    let listed = stdout_of(&control.heraldctl(&["sub", "list"]).await);
    assert_eq!(
        listed.lines().count(),
        1,
        "nothing invalid is stored: {listed}"
    );
}

#[tokio::test]
async fn create_refuses_a_call_of_an_unknown_function_with_its_position() {
    // Issue 14's example: stored, it would silently never match.
    let control = Control::start(true).await;
    let output = control
        .heraldctl(&["sub", "create", "--sink", SINK, "--filter", "sql:FOO(type)"])
        .await;
    assert_eq!(
        failure_of(&output),
        "error: INVALID_ARGUMENT: filters[0].sql: at position 0: unknown function FOO\n"
    );
}

#[tokio::test]
async fn explain_shows_which_filter_decided_and_why() {
    let control = Control::start(true).await;
    let created = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "create",
            "--sink",
            SINK,
            "--type-prefix",
            "com.shop.",
            "--filter",
            "sql:priority > 3",
            "--filter",
            "cel:data.total > 100",
        ])
        .await;
    let created: serde_json::Value = serde_json::from_str(&stdout_of(&created)).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let small = std::env::temp_dir().join(format!("herald-explain-{}.json", std::process::id()));
    std::fs::write(
        &small,
        r#"{"specversion":"1.0","id":"order-1","source":"/shop","type":"com.shop.order.created","region":"us","data":{"total":42}}"#,
    )
    .unwrap();
    let small_path = small.clone();
    let small = small.to_str().unwrap();

    let shown = stdout_of(
        &control
            .heraldctl(&["sub", "explain", &id, "--event", small])
            .await,
    );
    let expected = format!(
        "event order-1 (com.shop.order.created) for {id}: does not match: decided by filters[2]\n\
         FILTER      DIALECT  OUTCOME      VALUE                              ERROR\n\
         filters[0]  prefix   matched      {{\"type\":\"com.shop.order.created\"}}\n\
         filters[1]  sql      unknown      false                              \
         missing_attribute: missing attribute 'priority'\n\
         filters[2]  cel      not matched  false\n"
    );
    assert_eq!(shown, expected);
    std::fs::remove_file(small_path).unwrap();

    // `--event -` reads standard input.
    let big = r#"{"specversion":"1.0","id":"order-2","source":"/shop","type":"com.shop.order.created","priority":5,"data":{"total":420}}"#;
    let mut explain = command(&[
        "--server",
        &control.server,
        "--output",
        "json",
        "sub",
        "explain",
        &id,
        "--event",
        "-",
    ]);
    let mut child = explain
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, big.as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let json = child.wait_with_output().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&json)).unwrap();
    assert_eq!(json["matched"], true);
    assert_eq!(json["decided_by"], serde_json::Value::Null);
    let outcomes: Vec<(&str, &str)> = json["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            (
                step["outcome"].as_str().unwrap(),
                step["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("matched", r#"{"type":"com.shop.order.created"}"#),
            ("matched", "true"),
            ("matched", "true"),
        ]
    );

    let not_an_event = control
        .heraldctl(&["sub", "explain", &id, "--event", "/nonexistent/event.json"])
        .await;
    assert!(failure_of(&not_an_event).starts_with("error: failed to read the event from"),);
}

#[tokio::test]
async fn rotates_a_secret_and_creates_v1a_subscriptions_with_a_public_key() {
    let control = Control::start(true).await;
    let created = control
        .heraldctl(&["--output", "json", "sub", "create", "--sink", SINK])
        .await;
    let created: serde_json::Value = serde_json::from_str(&stdout_of(&created)).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["signature_scheme"], "v1");

    let rotated = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "rotate-secret",
            &id,
            "--overlap",
            "2h",
        ])
        .await;
    let rotated: serde_json::Value = serde_json::from_str(&stdout_of(&rotated)).unwrap();
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != created["secret"]);
    assert_eq!(
        rotated["retired_secrets"].as_array().unwrap().len(),
        1,
        "{rotated}"
    );

    let shown = stdout_of(&control.heraldctl(&["sub", "get", &id]).await);
    assert!(!shown.contains("whsec_"), "{shown}");
    assert!(shown.contains("signing      v1; also v1 until "), "{shown}");

    let asymmetric = control
        .heraldctl(&[
            "--output", "json", "sub", "create", "--sink", SINK, "--scheme", "v1a",
        ])
        .await;
    let asymmetric: serde_json::Value = serde_json::from_str(&stdout_of(&asymmetric)).unwrap();
    assert!(asymmetric["secret"].as_str().unwrap().starts_with("whsk_"));
    let public_key = asymmetric["public_key"].as_str().unwrap();
    assert!(public_key.starts_with("whpk_"));
    let id = asymmetric["id"].as_str().unwrap();
    let shown = stdout_of(&control.heraldctl(&["sub", "get", id]).await);
    assert!(
        shown.contains(&format!("signing      v1a, public key {public_key}")),
        "{shown}"
    );
    assert!(!shown.contains("whsk_"), "{shown}");

    let refused = control
        .heraldctl(&["sub", "rotate-secret", id, "--overlap", "40days"])
        .await;
    assert!(
        failure_of(&refused).contains("overlap"),
        "{}",
        failure_of(&refused)
    );
}

#[tokio::test]
async fn sets_replaces_and_removes_a_client_certificate_from_pem_files_never_showing_its_key() {
    let control = Control::start(true).await;
    let ca = herald_test_support::TestCa::new("client-ca");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (certificate, key) = ca.issue("herald-client");
    let (cert_file, key_file) = (write("cert.pem", &certificate), write("key.pem", &key));
    // A line of the key's base64, which no output may hold.
    let key_line = key.lines().nth(1).unwrap().to_owned();

    let created = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "create",
            "--sink",
            SINK,
            "--client-cert",
            &cert_file,
            "--client-key",
            &key_file,
        ])
        .await;
    let created_text = stdout_of(&created);
    assert!(!created_text.contains(&key_line), "{created_text}");
    let created: serde_json::Value = serde_json::from_str(&created_text).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["client_certificate"]["subject"], "CN=herald-client");
    let fingerprint = created["client_certificate"]["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fingerprint.len(), 64, "{created}");
    let shown = stdout_of(&control.heraldctl(&["sub", "get", &id]).await);
    assert!(
        shown.contains(&format!(
            "client cert  CN=herald-client, sha256 {fingerprint}, expires "
        )),
        "{shown}"
    );
    assert!(!shown.contains(&key_line), "{shown}");

    // Another certificate replaces it; --remove-client-cert removes it.
    let (renewed, renewed_key) = ca.issue("herald-client-renewed");
    let (cert_file, key_file) = (
        write("renewed.pem", &renewed),
        write("renewed-key.pem", &renewed_key),
    );
    let updated = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "update",
            &id,
            "--client-cert",
            &cert_file,
            "--client-key",
            &key_file,
        ])
        .await;
    let updated: serde_json::Value = serde_json::from_str(&stdout_of(&updated)).unwrap();
    assert_eq!(
        updated["client_certificate"]["subject"],
        "CN=herald-client-renewed"
    );
    assert_ne!(
        updated["client_certificate"]["fingerprint_sha256"],
        fingerprint
    );
    let removed = control
        .heraldctl(&[
            "--output",
            "json",
            "sub",
            "update",
            &id,
            "--remove-client-cert",
        ])
        .await;
    let removed: serde_json::Value = serde_json::from_str(&stdout_of(&removed)).unwrap();
    assert!(removed.get("client_certificate").is_none(), "{removed}");

    // A key without its certificate is refused before anything is sent; a key that is not
    // the certificate's is refused by Herald naming the field, neither quoting the key.
    let alone = control
        .heraldctl(&["sub", "create", "--sink", SINK, "--client-key", &key_file])
        .await;
    let usage = String::from_utf8_lossy(&alone.stderr);
    assert_eq!(alone.status.code(), Some(2), "{usage}");
    assert!(usage.contains("--client-cert"), "{usage}");
    let (cert_file, other_key_file) = (write("cert-again.pem", &certificate), key_file);
    let mismatched = control
        .heraldctl(&[
            "sub",
            "create",
            "--sink",
            SINK,
            "--client-cert",
            &cert_file,
            "--client-key",
            &other_key_file,
        ])
        .await;
    let failure = failure_of(&mismatched);
    assert!(
        failure.starts_with("error: INVALID_ARGUMENT: client_certificate.key: "),
        "{failure}"
    );
    assert!(!failure.contains(&key_line), "{failure}");
}
