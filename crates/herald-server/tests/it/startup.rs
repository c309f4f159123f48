//! Start-up checks: invalid configuration exits with 64 and a one-line reason.

use std::process::Command;

fn herald(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the herald binary should run")
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
