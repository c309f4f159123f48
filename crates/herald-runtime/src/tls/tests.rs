//! TLS listener tests with certificates generated here (rcgen): HTTPS through axum, gRPC
//! through tonic with and without client certificates, and a replaced certificate served
//! without a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio_util::sync::CancellationToken;

use super::*;

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

    /// Issues a leaf certificate named `common_name`; returns its PEM and its key's PEM.
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

fn write(path: &Path, text: &str) {
    // Written aside and renamed, as certificate managers do, so no reader sees half a file.
    let staging = path.with_extension("tmp");
    std::fs::write(&staging, text).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

fn config(dir: &Path, ca: &TestCa, common_name: &str) -> TlsConfig {
    let (cert, key) = ca.issue(common_name);
    let config = TlsConfig {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server-key.pem"),
        client_ca_file: None,
        reload_interval: Duration::from_millis(100),
    };
    write(&config.cert_file, &cert);
    write(&config.key_file, &key);
    config
}

/// Connects with a TLS client trusting `ca_pem` and returns the common name of the
/// certificate the server presented.
async fn presented_name(address: SocketAddr, ca_pem: &str) -> String {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (_, connection) = tls.get_ref();
    let leaf = &connection.peer_certificates().unwrap()[0];
    // The common name is stored as a UTF8String or PrintableString: find it by its text.
    let der = leaf.as_ref();
    ["first", "second"]
        .into_iter()
        .find(|name| {
            der.windows(name.len())
                .any(|window| window == name.as_bytes())
        })
        .unwrap_or("unknown")
        .to_owned()
}

async fn serve_https(tls: &ServerTls, shutdown: &CancellationToken) -> SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = tls.listen(tcp, shutdown.clone()).unwrap();
    let address = listener.local_addr();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    });
    address
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("herald test ca");
    let config = config(dir.path(), &ca, "first");
    let tls = ServerTls::load(&config, &[b"h2", b"http/1.1"]).unwrap();
    let shutdown = CancellationToken::new();
    let address = serve_https(&tls, &shutdown).await;
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/", address.port());
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
    // A client that does not trust the CA is refused, and so is plain HTTP.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(TestCa::new("other").pem.as_bytes()).unwrap(),
        ])
        .build()
        .unwrap();
    assert!(untrusting.get(&url).send().await.is_err());
    let plain = reqwest::Client::builder()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}/", address.port()))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("herald test ca");
    let config = config(dir.path(), &ca, "first");
    let tls = ServerTls::load(&config, &[b"http/1.1"]).unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(tls.clone().watch(shutdown.clone()));
    let address = serve_https(&tls, &shutdown).await;
    assert_eq!(presented_name(address, &ca.pem).await, "first");
    // A key that does not match the certificate is not served: the old pair stays.
    let (second_cert, second_key) = ca.issue("second");
    let (_, unrelated_key) = ca.issue("unrelated");
    write(&config.key_file, &unrelated_key);
    write(&config.cert_file, &second_cert);
    tokio::time::sleep(config.reload_interval * 5).await;
    assert_eq!(presented_name(address, &ca.pem).await, "first");
    // The matching key arrives: the new certificate is served to new connections.
    write(&config.key_file, &second_key);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if presented_name(address, &ca.pem).await == "second" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
}

#[tokio::test]
async fn grpc_requires_a_client_certificate_from_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("herald server ca");
    let client_ca = TestCa::new("herald client ca");
    let mut config = config(dir.path(), &ca, "first");
    let client_ca_file = dir.path().join("client-ca.pem");
    write(&client_ca_file, &client_ca.pem);
    config.client_ca_file = Some(client_ca_file);
    let tls = ServerTls::load(&config, &[b"h2"]).unwrap();
    let shutdown = CancellationToken::new();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = tls.listen(tcp, shutdown.clone()).unwrap();
    let address = listener.local_addr();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let stop = shutdown.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(listener.into_incoming(), async move {
                stop.cancelled().await;
            }),
    );
    let check = |identity: Option<(String, String)>| {
        let ca_pem = ca.pem.clone();
        async move {
            let mut tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
                .domain_name("localhost");
            if let Some((cert, key)) = identity {
                tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            let channel = tonic::transport::Channel::from_shared(format!(
                "https://localhost:{}",
                address.port()
            ))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .map_err(|err| err.to_string())?;
            let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
            client
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map(|response| response.into_inner().status)
                .map_err(|status| status.to_string())
        }
    };
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(check(Some(client_ca.issue("client"))).await, Ok(serving));
    // No client certificate, or one from another CA: refused in the handshake.
    assert!(check(None).await.is_err());
    assert!(check(Some(ca.issue("client"))).await.is_err());
    shutdown.cancel();
}

#[test]
fn a_certificate_and_a_key_that_do_not_match_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("herald test ca");
    let config = config(dir.path(), &ca, "first");
    let (_, other_key) = ca.issue("other");
    write(&config.key_file, &other_key);
    let err = ServerTls::load(&config, &[]).err().unwrap();
    assert!(matches!(err, Error::Pair { .. }), "{err}");
    write(&config.cert_file, "not a certificate");
    let err = ServerTls::load(&config, &[]).err().unwrap();
    assert!(matches!(err, Error::NoCertificate { .. }), "{err}");
    let missing = TlsConfig {
        cert_file: dir.path().join("missing.pem"),
        ..config
    };
    let err = ServerTls::load(&missing, &[]).err().unwrap();
    assert!(err.to_string().contains("missing.pem"), "{err}");
}
