//! Certificates generated in tests (rcgen): a CA that issues leaves for `localhost`.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA that issues certificates for `localhost` and 127.0.0.1.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate's PEM, for clients and servers that trust it.
    pub pem: String,
}

impl TestCa {
    /// A self-signed CA named `name`.
    pub fn new(name: &str) -> TestCa {
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
    pub fn issue(&self, common_name: &str) -> (String, String) {
        self.issue_valid(common_name, None)
    }

    /// Issues a leaf certificate named `common_name` valid from `not_before` to `not_after`
    /// (rcgen's default validity when `None`); returns its PEM and its key's PEM.
    pub fn issue_valid(
        &self,
        common_name: &str,
        validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
    ) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        if let Some((not_before, not_after)) = validity {
            params.not_before = not_before;
            params.not_after = not_after;
        }
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    /// A TLS server configuration presenting a certificate of this CA named `common_name` (for
    /// `localhost` and 127.0.0.1); with `client_ca`, the server accepts only clients presenting
    /// a certificate it issued (mutual TLS).
    pub fn server_config(
        &self,
        common_name: &str,
        client_ca: Option<&TestCa>,
    ) -> Arc<rustls::ServerConfig> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (certificate, key) = self.issue(common_name);
        let chain = CertificateDer::pem_slice_iter(certificate.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder();
        let builder = match client_ca {
            Some(client_ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(CertificateDer::from_pem_slice(client_ca.pem.as_bytes()).unwrap())
                    .unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(builder.with_single_cert(chain, key).unwrap())
    }
}
