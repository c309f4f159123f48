//! TLS on the ingest and control listeners (`[tls.ingest]`, `[tls.control]`), with certificates
//! generated here (rcgen): HTTPS ingest, gRPC over TLS with client certificates required,
//! certificates replaced on disk and served without a restart, and files that do not load
//! refused at start with 64.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use herald_proto::v1 as pb;
use herald_test_support::NatsServer;

use crate::process::{self, Ports};

/// A CA that issues certificates for `localhost` and 127.0.0.1.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        TestCa {
            pem: certificate.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Issues a leaf certificate; returns its PEM and its key's PEM.
    fn issue(&self, common_name: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

/// Writes `text` aside and renames it into place, as certificate managers do.
fn write(path: &Path, text: &str) {
    let staging = path.with_extension("staging");
    std::fs::write(&staging, text).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

/// A listener's certificate and key files in `dir`, issued by `ca`.
struct ServerFiles {
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl ServerFiles {
    fn issue(dir: &Path, name: &str, ca: &TestCa) -> ServerFiles {
        let files = ServerFiles {
            cert_file: dir.join(format!("{name}.pem")),
            key_file: dir.join(format!("{name}-key.pem")),
        };
        files.replace(ca);
        files
    }

    /// Replaces the pair with a new one from `ca`, the key first: a poll between the two
    /// writes sees a pair that does not match, which is not served.
    fn replace(&self, ca: &TestCa) {
        let (cert, key) = ca.issue("herald");
        write(&self.key_file, &key);
        write(&self.cert_file, &cert);
    }

    /// The settings of `[tls.<section>]` as environment variables.
    fn env(&self, section: &str) -> Vec<(String, String)> {
        let prefix = format!("HERALD_TLS__{}", section.to_ascii_uppercase());
        vec![
            (
                format!("{prefix}__CERT_FILE"),
                self.cert_file.display().to_string(),
            ),
            (
                format!("{prefix}__KEY_FILE"),
                self.key_file.display().to_string(),
            ),
            (format!("{prefix}__RELOAD_INTERVAL"), "100ms".to_owned()),
        ]
    }
}

fn start(role: &str, ports: &Ports, env: &[(String, String)]) -> process::Role {
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    process::start_with(role, ports, &env)
}

/// An HTTPS client trusting only `ca`.
fn https_client(ca: &TestCa) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

async fn post_event(client: &reqwest::Client, url: &str, id: &str) -> reqwest::Result<u16> {
    let response = client
        .post(url)
        .bearer_auth(process::API_TOKEN)
        .header("content-type", "application/cloudevents+json")
        .body(herald_test_support::structured_event(id, "com.tls.test"))
        .send()
        .await?;
    Ok(response.status().as_u16())
}

/// Connects to control over TLS trusting `ca`, presenting `identity` (certificate and key PEM)
/// when given, and lists subscriptions; returns how many, or why it failed.
async fn list_subscriptions(
    port: u16,
    ca: &TestCa,
    identity: Option<(String, String)>,
) -> Result<usize, String> {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca.pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
    }
    let channel = tonic::transport::Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|err| format!("connect: {err:?}"))?;
    let mut client = pb::subscription_service_client::SubscriptionServiceClient::with_interceptor(
        channel,
        process::authorize,
    );
    client
        .list_subscriptions(pb::ListSubscriptionsRequest::default())
        .await
        .map(|response| response.into_inner().subscriptions.len())
        .map_err(|status| format!("call: {status:?}"))
}

#[tokio::test]
async fn ingest_and_control_serve_tls_and_follow_replaced_certificates() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("herald server ca");
    let client_ca = TestCa::new("herald operator ca");
    let ingest_files = ServerFiles::issue(dir.path(), "ingest", &server_ca);
    let control_files = ServerFiles::issue(dir.path(), "control", &server_ca);
    let client_ca_file = dir.path().join("operators.pem");
    write(&client_ca_file, &client_ca.pem);

    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let mut ingest = start("ingest", &ports, &ingest_files.env("ingest"));
    let mut control_env = control_files.env("control");
    control_env.push((
        "HERALD_TLS__CONTROL__CLIENT_CA_FILE".to_owned(),
        client_ca_file.display().to_string(),
    ));
    let mut control = start("control", &ports, &control_env);
    ingest.wait_listening(ports.ingest).await;
    control.wait_listening(ports.control).await;

    // Ingest answers HTTPS from a client trusting its CA, and only that.
    let url = format!("https://localhost:{}/v1/events", ports.ingest);
    let trusting = https_client(&server_ca);
    assert_eq!(post_event(&trusting, &url, "tls-1").await.unwrap(), 202);
    let nats = process::nats(&nats_server.url()).await;
    let stored = nats.events_stored().await.unwrap();
    assert_eq!(stored, 1);
    let plain = reqwest::Client::builder()
        .build()
        .unwrap()
        .post(ports.ingest_url())
        .bearer_auth(process::API_TOKEN)
        .header("content-type", "application/cloudevents+json")
        .body(herald_test_support::structured_event(
            "plain",
            "com.tls.test",
        ))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP on a TLS listener: {plain:?}");
    let other_ca = TestCa::new("another ca");
    assert!(
        post_event(&https_client(&other_ca), &url, "untrusted")
            .await
            .is_err()
    );

    // hyper's refusal of an oversized head is still a problem document over TLS.
    let response = trusting
        .post(&url)
        .bearer_auth(process::API_TOKEN)
        .header("x-padding", "a".repeat(512 * 1024))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    // Control requires a client certificate from the operators' CA.
    assert_eq!(
        list_subscriptions(ports.control, &server_ca, Some(client_ca.issue("operator"))).await,
        Ok(0)
    );
    let without = list_subscriptions(ports.control, &server_ca, None).await;
    assert!(without.is_err(), "no client certificate: {without:?}");
    let foreign = list_subscriptions(ports.control, &server_ca, Some(other_ca.issue("x"))).await;
    assert!(
        foreign.is_err(),
        "a certificate from another CA: {foreign:?}"
    );

    // Both certificates are replaced by ones from a new CA: new connections get them, without
    // a restart.
    let renewed_ca = TestCa::new("herald renewed ca");
    ingest_files.replace(&renewed_ca);
    control_files.replace(&renewed_ca);
    let renewed = https_client(&renewed_ca);
    herald_test_support::eventually(
        "ingest serving the renewed certificate",
        Duration::from_secs(30),
        || {
            let renewed = renewed.clone();
            let url = url.clone();
            async move { post_event(&renewed, &url, "tls-2").await.ok() }
        },
    )
    .await;
    assert_eq!(post_event(&renewed, &url, "tls-3").await.unwrap(), 202);
    assert!(
        post_event(&https_client(&server_ca), &url, "old-ca")
            .await
            .is_err(),
        "the old certificate is no longer served"
    );
    let (renewed_ca, client_ca) = (&renewed_ca, &client_ca);
    herald_test_support::eventually(
        "control serving the renewed certificate",
        Duration::from_secs(30),
        || async move {
            list_subscriptions(ports.control, renewed_ca, Some(client_ca.issue("operator")))
                .await
                .ok()
        },
    )
    .await;
    assert!(
        ingest.child.try_wait().unwrap().is_none(),
        "ingest still runs"
    );
    assert!(
        control.child.try_wait().unwrap().is_none(),
        "control still runs"
    );
}

#[tokio::test]
async fn refuses_to_start_with_tls_files_that_do_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("herald server ca");
    let files = ServerFiles::issue(dir.path(), "server", &ca);
    let missing = dir.path().join("missing.pem");
    let (_, unrelated_key) = ca.issue("unrelated");
    let unrelated_key_file = dir.path().join("unrelated-key.pem");
    write(&unrelated_key_file, &unrelated_key);
    let cases = [
        (
            "control",
            vec![
                (
                    "HERALD_TLS__CONTROL__CERT_FILE",
                    missing.display().to_string(),
                ),
                (
                    "HERALD_TLS__CONTROL__KEY_FILE",
                    files.key_file.display().to_string(),
                ),
            ],
            "missing.pem",
        ),
        (
            "ingest",
            vec![
                (
                    "HERALD_TLS__INGEST__CERT_FILE",
                    files.cert_file.display().to_string(),
                ),
                (
                    "HERALD_TLS__INGEST__KEY_FILE",
                    unrelated_key_file.display().to_string(),
                ),
            ],
            "do not form a usable pair",
        ),
        (
            "all",
            vec![
                (
                    "HERALD_TLS__CONTROL__CERT_FILE",
                    files.cert_file.display().to_string(),
                ),
                (
                    "HERALD_TLS__CONTROL__KEY_FILE",
                    files.key_file.display().to_string(),
                ),
                (
                    "HERALD_TLS__CONTROL__CLIENT_CA_FILE",
                    missing.display().to_string(),
                ),
            ],
            "tls.control",
        ),
    ];
    for (role, env, reason) in cases {
        let tokens = format!(r#"["{}"]"#, process::API_TOKEN);
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([role, "--nats-url", "nats://127.0.0.1:1"])
            .env("HERALD_INGEST__AUTH__API_TOKENS", &tokens)
            .env("HERALD_CONTROL__AUTH__API_TOKENS", &tokens)
            .env("HERALD_SECRETS__KEYS", process::TEST_KEKS)
            .envs(env)
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
        assert_eq!(output.status.code(), Some(64), "{role}: {stderr}");
        assert!(stderr.contains(reason), "{role}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}
