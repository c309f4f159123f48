//! Herald's NATS connection over TLS with a private CA (`nats_connection.tls_ca_file`), and a
//! client certificate (`tls_cert_file`, `tls_key_file`) for a server that verifies clients,
//! against real nats-servers configured with certificates generated here (rcgen).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use herald_nats::{ConnectOptions, Nats};
use herald_runtime::nats_server::{NatsServer, ServerOptions};

use crate::process::{self, Ports};

/// A CA; returns its certificate's PEM and the issuer of its leaves.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, Issuer::new(params, key))
}

/// Writes a leaf for 127.0.0.1 and `localhost` issued by `issuer` as `<name>.pem` and
/// `<name>-key.pem` in `dir`; returns both paths.
fn leaf(dir: &Path, name: &str, issuer: &Issuer<'static, KeyPair>) -> (PathBuf, PathBuf) {
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, issuer).unwrap();
    let cert_file = dir.join(format!("{name}.pem"));
    let key_file = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert_file, certificate.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (cert_file, key_file)
}

/// Certificates of one test: the server's CA and pair, and a client CA and pair.
struct Certificates {
    dir: tempfile::TempDir,
    server_ca_file: PathBuf,
    client_ca_file: PathBuf,
    client_cert_file: PathBuf,
    client_key_file: PathBuf,
    server_cert_file: PathBuf,
    server_key_file: PathBuf,
}

impl Certificates {
    fn new() -> Certificates {
        let dir = tempfile::tempdir().unwrap();
        let (server_ca, server_issuer) = ca("nats server ca");
        let (client_ca, client_issuer) = ca("nats client ca");
        let server_ca_file = dir.path().join("server-ca.pem");
        let client_ca_file = dir.path().join("client-ca.pem");
        std::fs::write(&server_ca_file, server_ca).unwrap();
        std::fs::write(&client_ca_file, client_ca).unwrap();
        let (server_cert_file, server_key_file) = leaf(dir.path(), "nats", &server_issuer);
        let (client_cert_file, client_key_file) = leaf(dir.path(), "herald", &client_issuer);
        Certificates {
            dir,
            server_ca_file,
            client_ca_file,
            client_cert_file,
            client_key_file,
            server_cert_file,
            server_key_file,
        }
    }

    /// Starts a nats-server with JetStream serving TLS only, verifying client certificates
    /// against the client CA when `verify_clients`.
    async fn server(&self, verify_clients: bool) -> NatsServer {
        let mut tls = format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n",
            self.server_cert_file.display(),
            self.server_key_file.display()
        );
        if verify_clients {
            tls.push_str(&format!(
                "  ca_file: \"{}\"\n  verify: true\n",
                self.client_ca_file.display()
            ));
        }
        tls.push_str("}\n");
        let name = if verify_clients { "mtls" } else { "tls" };
        let config = self.dir.path().join(format!("{name}.conf"));
        std::fs::write(&config, tls).unwrap();
        NatsServer::start(&ServerOptions {
            host: "127.0.0.1".to_owned(),
            port: 0,
            data_dir: self.dir.path().join(format!("{name}-data")),
            config_file: Some(config),
        })
        .await
        .expect("nats-server should start")
    }
}

fn config(url: &str) -> herald_nats::Config {
    let mut config = herald_test_support::nats_config(url);
    // A refused connection shows as the first JetStream call timing out.
    config.request_timeout = Duration::from_secs(2);
    config
}

#[tokio::test]
async fn connects_over_tls_trusting_a_private_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certificates = Certificates::new();
    let server = certificates.server(false).await;
    let options = ConnectOptions {
        tls_ca_file: Some(certificates.server_ca_file.clone()),
        ..ConnectOptions::default()
    };
    assert!(options.problems("nats_connection").is_empty());
    let nats = Nats::connect_with(&config(server.url()), &options)
        .await
        .expect("the private CA should be trusted");
    assert!(nats.is_connected());
    // The topology is in place, and an event goes through the TLS connection.
    let event = herald_core::Event::from_structured(bytes::Bytes::from(
        herald_test_support::structured_event("over-tls", "com.tls"),
    ))
    .unwrap();
    nats.publisher().publish(&event).await.unwrap();
    assert_eq!(nats.events_stored().await.unwrap(), 1);
    // Without the CA, the server's certificate is not trusted; another CA does not help.
    assert!(
        Nats::connect_with(&config(server.url()), &ConnectOptions::default())
            .await
            .is_err()
    );
    let other = ConnectOptions {
        tls_ca_file: Some(certificates.client_ca_file.clone()),
        ..ConnectOptions::default()
    };
    assert!(
        Nats::connect_with(&config(server.url()), &other)
            .await
            .is_err()
    );
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn presents_a_client_certificate_to_a_server_that_verifies_clients() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certificates = Certificates::new();
    let server = certificates.server(true).await;
    let with_certificate = ConnectOptions {
        tls_ca_file: Some(certificates.server_ca_file.clone()),
        tls_cert_file: Some(certificates.client_cert_file.clone()),
        tls_key_file: Some(certificates.client_key_file.clone()),
        ..ConnectOptions::default()
    };
    assert!(with_certificate.problems("nats_connection").is_empty());
    let nats = Nats::connect_with(&config(server.url()), &with_certificate)
        .await
        .expect("the client certificate should be accepted");
    assert!(nats.is_connected());
    let without_certificate = ConnectOptions {
        tls_ca_file: Some(certificates.server_ca_file.clone()),
        ..ConnectOptions::default()
    };
    assert!(
        Nats::connect_with(&config(server.url()), &without_certificate)
            .await
            .is_err()
    );
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn herald_ingest_publishes_over_a_tls_nats_connection() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certificates = Certificates::new();
    let server = certificates.server(true).await;
    let ports = Ports::new(server.url().to_owned());
    let env = [
        (
            "HERALD_NATS_CONNECTION__TLS_CA_FILE",
            certificates.server_ca_file.display().to_string(),
        ),
        (
            "HERALD_NATS_CONNECTION__TLS_CERT_FILE",
            certificates.client_cert_file.display().to_string(),
        ),
        (
            "HERALD_NATS_CONNECTION__TLS_KEY_FILE",
            certificates.client_key_file.display().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    let mut ingest = process::start_with("ingest", &ports, &env);
    ingest.wait_listening(ports.ingest).await;
    let http = reqwest::Client::builder().build().unwrap();
    let response = http
        .post(ports.ingest_url())
        .bearer_auth(process::API_TOKEN)
        .header("content-type", "application/cloudevents+json")
        .body(herald_test_support::structured_event(
            "through-tls-nats",
            "com.tls",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let nats = Nats::connect_with(&config(server.url()), &{
        ConnectOptions {
            tls_ca_file: Some(certificates.server_ca_file.clone()),
            tls_cert_file: Some(certificates.client_cert_file.clone()),
            tls_key_file: Some(certificates.client_key_file.clone()),
            ..ConnectOptions::default()
        }
    })
    .await
    .unwrap();
    assert_eq!(nats.events_stored().await.unwrap(), 1);
    drop(ingest);
    server.stop(Duration::from_secs(5)).await;
}
