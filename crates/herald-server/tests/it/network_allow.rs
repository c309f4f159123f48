//! `network.allow` from configuration: a malformed entry stops the process with 64, and a
//! listed network opens exactly itself, at create (control) and at delivery (dispatch).

use std::process::Stdio;
use std::time::Duration;

use herald_proto::v1 as pb;
use herald_test_support::{NatsServer, TestReceiver};

use crate::process::{self, Ports};

#[tokio::test]
async fn refuses_to_start_with_a_malformed_allowed_network() {
    for (entry, reason) in [
        ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ("0177.0.0.1", "expected an IPv4 or IPv6 address"),
        ("fd00::/200", "the prefix must be 0 to 128"),
    ] {
        let allow = format!(r#"["{entry}"]"#);
        let tokens = format!(r#"["{}"]"#, process::API_TOKEN);
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["control", "--nats-url", "nats://127.0.0.1:1"])
            .env("HERALD_CONTROL__AUTH__API_TOKENS", &tokens)
            .env("HERALD_SECRETS__KEYS", process::TEST_KEKS)
            .env("HERALD_NETWORK__ALLOW", &allow)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("a misconfigured herald should exit")
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{entry}: {stderr}");
        assert!(stderr.contains(reason), "{entry}: {stderr}");
        assert!(
            stderr.to_ascii_lowercase().contains("network.allow"),
            "{entry}: {stderr}"
        );
    }
}

#[tokio::test]
async fn an_allowed_network_opens_exactly_itself() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let nats = process::nats(&nats_server.url()).await;
    let receiver = TestReceiver::start().await;
    let env = [
        ("HERALD_NETWORK__ALLOW_LOOPBACK", "false"),
        ("HERALD_NETWORK__ALLOW", r#"["127.0.0.1/32"]"#),
    ];
    let mut herald = process::start_with("all", &ports, &env);
    herald.wait_listening(ports.control).await;
    herald.wait_listening(ports.ingest).await;

    let mut control = process::control_client(&ports).await;
    let port = receiver
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    for refused in [
        format!("http://127.0.0.2:{port}"),
        format!("http://127.1.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
        format!("http://10.0.0.1:{port}"),
        "http://169.254.169.254/".to_owned(),
    ] {
        let request = pb::CreateSubscriptionRequest {
            sink: refused.clone(),
            ..Default::default()
        };
        let status = control.create_subscription(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{refused}");
    }
    // The receiver listens on 127.0.0.1, the one allowed address, in any spelling.
    let sink = receiver.url().replace("127.0.0.1", "2130706433");
    process::subscribe(&ports, &nats, &sink).await;
    process::post_batches(&ports, "allowed", 1).await;
    let delivered = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(delivered.len(), 1);
    herald.kill().await;
}
