//! Start-up checks: invalid configuration exits with 64 and a one-line reason.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `herald` until it exits. One still running after a minute started although it should
/// have been refused: it is killed, and its status carries no exit code.
fn herald(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the herald binary should run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waiting should work").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Refused after the child exited; a started herald is stopped here.
    let _ = child.kill();
    child.wait_with_output().expect("the output should be read")
}

#[test]
fn refuses_to_start_without_credentials_outside_dev_mode() {
    let output = herald(&["ingest", "--nats-url", "nats://127.0.0.1:1"], &[]);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ingest.auth.api_tokens is empty"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("control.auth"),
        "a lone ingest needs no control tokens: {stderr}"
    );
    let output = herald(&["all", "--nats-url", "nats://127.0.0.1:1"], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("control.auth.api_tokens is empty"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn refuses_to_start_without_a_key_encryption_key_outside_dev_mode() {
    let tokens = r#"["a-long-enough-token-0123456789"]"#;
    let base = [
        ("HERALD_NATS__URL", "nats://127.0.0.1:1"),
        ("HERALD_INGEST__AUTH__API_TOKENS", tokens),
        ("HERALD_CONTROL__AUTH__API_TOKENS", tokens),
    ];
    for role in ["all", "dispatch", "control"] {
        let output = herald(&[role], &base);
        assert_eq!(output.status.code(), Some(64), "{role}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("secrets.keys is required outside dev mode")
                && stderr.contains("HERALD_SECRETS__KEYS"),
            "{role}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
    // A short key is refused, and the refusal does not repeat it.
    let mut env = base.to_vec();
    env.push(("HERALD_SECRETS__KEYS", r#"["k1:c2hvcnQta2V5LXNlY3JldA=="]"#));
    let output = herald(&["control"], &env);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("secrets.keys: key-encryption key `k1` must be 32 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("c2hvcnQta2V5LXNlY3JldA"), "{stderr}");
}

#[test]
fn rejects_unknown_and_malformed_settings() {
    let output = herald(&["dev"], &[("HERALD_INGEST__MAX_BODY_BYTE", "10")]);
    assert_eq!(output.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .to_lowercase()
            .contains("max_body_byte")
    );
    let output = herald(&["dev"], &[("HERALD_DISPATCHER__REQUEST_TIMEOUT", "soon")]);
    assert_eq!(output.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .to_lowercase()
            .contains("request_timeout")
    );
}

#[test]
fn refuses_a_malformed_egress_proxy_without_showing_its_credentials() {
    let refused = [
        (
            "socks5://herald:s3cret@proxy.internal:1080",
            "dispatcher.egress_proxy must be an http:// or https:// URL",
        ),
        (
            "http://herald:s3cret@proxy.internal:3128/s3cret-path",
            "dispatcher.egress_proxy must be scheme://[user:password@]host[:port]",
        ),
        (
            "http://herald:s3cret@proxy.internal:99999",
            "dispatcher.egress_proxy is not a URL",
        ),
    ];
    for (proxy, expected) in refused {
        let output = herald(&["dev"], &[("HERALD_DISPATCHER__EGRESS_PROXY", proxy)]);
        assert_eq!(output.status.code(), Some(64), "{proxy}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{proxy}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{proxy}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn refuses_an_endpoint_ca_file_it_cannot_read_or_that_holds_no_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-pem.pem");
    std::fs::write(&not_pem, "just text, no certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    for (path, expected) in [
        (&missing, "dispatcher.endpoint_ca_file: cannot read"),
        (&not_pem, "holds no PEM certificate"),
    ] {
        let output = herald(
            &["dev"],
            &[(
                "HERALD_DISPATCHER__ENDPOINT_CA_FILE",
                path.to_str().unwrap(),
            )],
        );
        assert_eq!(output.status.code(), Some(64), "{}", path.display());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    }
}

// Issue 10, defect 11: `auth.disabled` used to be honoured outside dev mode, on listeners every
// host can reach.
#[test]
fn refuses_disabled_auth_outside_dev_mode_on_a_listener_other_hosts_reach() {
    let nats = ("HERALD_NATS__URL", "nats://127.0.0.1:1");
    let output = herald(
        &["ingest"],
        &[nats, ("HERALD_INGEST__AUTH__DISABLED", "true")],
    );
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ingest.auth.disabled is only for dev mode"),
        "{stderr}"
    );
    assert!(
        stderr.contains("set HERALD_INGEST__AUTH__API_TOKENS"),
        "says what to do instead: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    let output = herald(
        &["control"],
        &[nats, ("HERALD_CONTROL__AUTH__DISABLED", "true")],
    );
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("control.auth.disabled is only for dev mode"),
        "{stderr}"
    );
    assert!(
        stderr.contains("set HERALD_CONTROL__AUTH__API_TOKENS"),
        "says what to do instead: {stderr}"
    );

    let output = herald(
        &["ingest", "--ingest-listen", "[::]:8080"],
        &[nats, ("HERALD_INGEST__AUTH__DISABLED", "true")],
    );
    assert_eq!(output.status.code(), Some(64), "every interface, IPv6");
}

// Issue 10, defect 11: a first fix still let loopback listeners go without credentials, which
// every local user and process reaches; only `herald dev` may.
#[test]
fn refuses_disabled_auth_outside_dev_mode_even_on_loopback() {
    let output = herald(
        &[
            "all",
            "--nats-url",
            "nats://127.0.0.1:1",
            "--ingest-listen",
            "127.0.0.1:8080",
            "--control-listen",
            "[::1]:50051",
        ],
        &[
            ("HERALD_INGEST__AUTH__DISABLED", "true"),
            ("HERALD_CONTROL__AUTH__DISABLED", "true"),
        ],
    );
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ingest.auth.disabled is only for dev mode"),
        "{stderr}"
    );
    assert!(
        stderr.contains("control.auth.disabled is only for dev mode"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    // Tokens next to the setting do not make it acceptable: it would still let everyone in.
    let output = herald(
        &[
            "ingest",
            "--nats-url",
            "nats://127.0.0.1:1",
            "--ingest-listen",
            "127.0.0.1:8080",
        ],
        &[
            ("HERALD_INGEST__AUTH__DISABLED", "true"),
            (
                "HERALD_INGEST__AUTH__API_TOKENS",
                r#"["a-producer-token-0123456789"]"#,
            ),
        ],
    );
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ingest.auth.disabled is only for dev mode"),
        "{stderr}"
    );
}

#[test]
fn accepts_disabled_auth_in_dev_mode() {
    // A setting that is invalid everywhere makes the start stop at validation, and shows which
    // problems were found.
    let output = herald(
        &["dev"],
        &[
            ("HERALD_INGEST__MAX_BODY_BYTES", "0"),
            ("HERALD_INGEST__AUTH__DISABLED", "true"),
            ("HERALD_CONTROL__AUTH__DISABLED", "true"),
        ],
    );
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ingest.max_body_bytes"), "{stderr}");
    assert!(!stderr.contains("auth"), "dev mode disables auth: {stderr}");
}
