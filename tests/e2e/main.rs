//! End-to-end tests: every Herald role in-process against a real nats-server (one per test) and
//! real HTTP endpoints on loopback. Signatures are checked with an independent Standard
//! Webhooks implementation (the `standardwebhooks` crate), delivered bodies with an independent
//! CloudEvents implementation (`cloudevents-sdk`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    reason = "a test fails by panicking"
)]
#![allow(
    clippy::large_futures,
    reason = "a test cluster starts once per test; boxing its futures buys nothing"
)]

mod cluster;
mod docs_metrics;
mod e2e_bad_input;
mod e2e_catalog;
mod e2e_consent;
mod e2e_container_image;
mod e2e_content_mode;
mod e2e_control_watch;
mod e2e_egress_proxy;
mod e2e_endpoint_restart;
mod e2e_filters;
mod e2e_ingest_handshake;
mod e2e_ingest_to_delivery;
mod e2e_mtls;
mod e2e_nats_producers;
mod e2e_parking;
mod e2e_restart;
mod e2e_retry_and_dlq;
mod e2e_scheduling;
mod e2e_security;
mod e2e_sink_privacy;
mod e2e_ssrf;
mod e2e_tenants;
mod e2e_test_send;
mod tidy;

use std::collections::BTreeSet;
use std::time::Duration;

use herald_test_support::{Recorded, eventually};

use crate::cluster::TestCluster;

/// Asserts that a delivery carries a valid Standard Webhooks signature for `secret`, checked by
/// an independent implementation, and a structured CloudEvent body; returns the event id.
fn verify_delivery(recorded: &Recorded, secret: &str) -> String {
    let webhook = standardwebhooks::Webhook::new(secret).expect("the secret should be a whsec_");
    webhook
        .verify(&recorded.body, &recorded.headers)
        .unwrap_or_else(|err| panic!("signature should verify: {err:?}"));
    assert_eq!(
        recorded.header("content-type"),
        Some("application/cloudevents+json")
    );
    let event: cloudevents::Event =
        serde_json::from_slice(&recorded.body).expect("the body should be a structured CloudEvent");
    use cloudevents::AttributesReader as _;
    let expected_id = herald_core::MessageId::derive(&event.source().to_string(), event.id());
    assert_eq!(recorded.header("webhook-id"), Some(expected_id.as_str()));
    event.id().to_owned()
}

/// Returns the event ids of the deliveries.
fn ids(recorded: &[Recorded]) -> Vec<String> {
    recorded
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn unique(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

/// Waits until a subscription's consumer has nothing left to deliver or acknowledge: every
/// event it will ever see has been handled.
async fn wait_until_settled(cluster: &TestCluster, subscription_id: &str) {
    let nats = cluster.nats.clone();
    eventually("the consumer to settle", Duration::from_secs(20), || {
        let nats = nats.clone();
        let id = subscription_id.to_owned();
        async move {
            let progress = nats.consumer_progress(&id).await.ok()?;
            (progress.num_pending == 0 && progress.num_ack_pending == 0).then_some(())
        }
    })
    .await;
}

/// Runs one of the nats-py fixture scripts (`tests/e2e/fixtures/`) with `args` and `stdin`;
/// returns what it printed. nats-py is an independent NATS client: the tests act through it as
/// a producer or an operator would. Fails, never skips, when python or nats-py is missing.
async fn run_nats_py(script: &str, args: &[&str], stdin: &str) -> String {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package should sit in the workspace root")
        .to_path_buf();
    let python = root.join(".tools/venv/bin/python");
    let script = root.join("tests/e2e/fixtures").join(script);
    let hint =
        "install it with `make tools` (deploy/nats/provision.sh puts nats-py into .tools/venv)";
    assert!(python.exists(), "{} is missing: {hint}", python.display());
    let mut child = tokio::process::Command::new(&python)
        .arg(&script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{} should start ({hint}): {err}", python.display()));
    let mut input = child.stdin.take().expect("stdin should be piped");
    tokio::io::AsyncWriteExt::write_all(&mut input, stdin.as_bytes())
        .await
        .unwrap();
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{} should finish within 60 s", script.display()))
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'nats'"),
        "nats-py is not installed in {}: {hint}",
        python.display()
    );
    assert!(
        output.status.success(),
        "{} failed: {stderr}",
        script.display()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `script`, Python source using the `standardwebhooks` package, with a JSON object on
/// stdin: `secret`, the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers of
/// `recorded`, and `body` as the caller encoded it; returns what it printed. Fails, never skips,
/// when python or the package is missing.
async fn run_standardwebhooks_py(
    script: &str,
    recorded: &Recorded,
    secret: &str,
    body: String,
) -> String {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package should sit in the workspace root")
        .to_path_buf();
    let python = root.join(".tools/venv/bin/python");
    let hint = "install it with `make tools` on a fresh checkout (deploy/nats/provision.sh puts \
                standardwebhooks into .tools/venv), or `.tools/venv/bin/pip install \
                standardwebhooks==1.1.0`";
    assert!(python.exists(), "{} is missing: {hint}", python.display());
    let headers: serde_json::Map<String, serde_json::Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|name| {
                let value = recorded.header(name).unwrap_or_default().to_owned();
                ((*name).to_owned(), serde_json::Value::String(value))
            })
            .collect();
    let input = serde_json::json!({ "secret": secret, "headers": headers, "body": body });
    let mut child = tokio::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{} should start ({hint}): {err}", python.display()));
    let mut stdin = child.stdin.take().expect("stdin should be piped");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, input.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("python should finish within 60 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'standardwebhooks'"),
        "standardwebhooks is not installed: {hint}"
    );
    assert!(output.status.success(), "{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
