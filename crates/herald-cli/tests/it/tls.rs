//! `heraldctl` against a control plane served over TLS that requires client certificates
//! (`--server https://...`, `--ca-file`, `--cert`, `--key`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use herald_core::network::NetworkPolicy;
use herald_nats::Nats;
use herald_runtime::tls::{ServerTls, TlsConfig};
use herald_test_support::{NatsServer, TestCa};

use crate::support::{TOKEN, failure_of, heraldctl, stdout_of};

/// Writes a leaf for `localhost` issued by `ca` as `<name>.pem` and `<name>-key.pem`.
fn leaf(dir: &Path, name: &str, ca: &TestCa) -> (String, String) {
    let (cert, key) = ca.issue(name);
    let cert_file = dir.join(format!("{name}.pem"));
    let key_file = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    (
        cert_file.display().to_string(),
        key_file.display().to_string(),
    )
}

#[tokio::test]
async fn talks_to_a_control_plane_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("herald server ca");
    let client_ca = TestCa::new("herald operator ca");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &server_ca.pem).unwrap();
    let client_ca_file = dir.path().join("operators.pem");
    std::fs::write(&client_ca_file, &client_ca.pem).unwrap();
    let (server_cert, server_key) = leaf(dir.path(), "server", &server_ca);
    let (client_cert, client_key) = leaf(dir.path(), "operator", &client_ca);

    let nats_server = NatsServer::start().await;
    let nats = Box::pin(Nats::connect(&herald_test_support::nats_config(
        &nats_server.url(),
    )))
    .await
    .unwrap();
    let config = herald_control::Config {
        auth: herald_control::AuthConfig {
            disabled: false,
            api_tokens: vec![TOKEN.to_owned()],
        },
    };
    let service = Box::pin(herald_control::build(
        Arc::new(config),
        nats,
        NetworkPolicy::public_only(),
        &prometheus::Registry::new(),
    ))
    .await
    .unwrap();
    let tls = ServerTls::load(
        &TlsConfig {
            cert_file: server_cert.into(),
            key_file: server_key.into(),
            client_ca_file: Some(client_ca_file),
            reload_interval: Duration::from_secs(5),
        },
        &[b"h2"],
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = tls.listen(tcp, shutdown.clone()).unwrap();
    let server = format!("https://localhost:{}", listener.local_addr().port());
    let served = tokio::spawn(service.run_incoming(listener.into_incoming(), shutdown.clone()));

    let ca_file = ca_file.display().to_string();
    let with_certificate = [
        "--server",
        server.as_str(),
        "--token",
        TOKEN,
        "--ca-file",
        ca_file.as_str(),
        "--cert",
        client_cert.as_str(),
        "--key",
        client_key.as_str(),
    ];
    let created = heraldctl(
        &[
            &with_certificate[..],
            &[
                "--output",
                "json",
                "sub",
                "create",
                "--sink",
                "https://hooks.example.com/herald",
            ],
        ]
        .concat(),
    )
    .await;
    let created: serde_json::Value = serde_json::from_str(&stdout_of(&created)).unwrap();
    let id = created["id"].as_str().unwrap();
    let listed = stdout_of(&heraldctl(&[&with_certificate[..], &["sub", "list"]].concat()).await);
    assert!(listed.contains(id), "{listed}");

    // Without a client certificate the handshake is refused.
    let refused = failure_of(
        &heraldctl(&[
            "--server",
            server.as_str(),
            "--token",
            TOKEN,
            "--ca-file",
            ca_file.as_str(),
            "sub",
            "list",
        ])
        .await,
    );
    assert!(refused.starts_with("error: "), "{refused}");
    // TLS files make no sense for a plain http:// server.
    let plain = failure_of(
        &heraldctl(&[
            "--server",
            "http://127.0.0.1:1",
            "--ca-file",
            ca_file.as_str(),
            "sub",
            "list",
        ])
        .await,
    );
    assert!(plain.contains("need an https:// server"), "{plain}");

    shutdown.cancel();
    served.await.unwrap().unwrap();
}
