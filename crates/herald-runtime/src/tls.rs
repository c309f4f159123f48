//! TLS for Herald's listeners (rustls, ring): a certificate and key read from PEM files and
//! served again when the files change, and optional client-certificate authentication
//! against a CA file.
//!
//! The files are polled (modification time and length, every `reload_interval`): a renewed
//! certificate (cert-manager, certbot) is served to new connections without a restart, and a
//! pair that does not load (half written, key and certificate not matching) is logged and the
//! previous one kept. Handshakes run concurrently, each bounded by `HANDSHAKE_TIMEOUT`, so a
//! client that never finishes its handshake holds no other connection back.
//!
//! Depends on nothing of Herald's roles; the ingest and control listeners use it.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

#[cfg(test)]
mod tests;

/// The longest a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server's certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with the CA certificates client certificates must chain to; when set, a client
    /// without a valid certificate is refused during the handshake.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// How often the certificate and key files are checked for changes.
    #[serde(with = "humantime_serde", default = "default_reload_interval")]
    pub reload_interval: Duration,
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(5)
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("the certificate in {cert} and the key in {key} do not form a usable pair: {reason}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A server TLS setup whose certificate follows its files; cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    config: TlsConfig,
    resolver: Arc<FileResolver>,
    acceptor: TlsAcceptor,
}

impl ServerTls {
    /// Loads the certificate, key and client CA, offering `alpn` (`h2`, `http/1.1`).
    pub fn load(config: &TlsConfig, alpn: &[&[u8]]) -> Result<ServerTls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load_pair(&config.cert_file, &config.key_file, &provider)?;
        let resolver = Arc::new(FileResolver {
            current: RwLock::new(loaded),
        });
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| Error::Config(err.to_string()))?;
        let builder = match &config.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for certificate in read_certificates(path)? {
                    roots.add(certificate).map_err(|err| Error::File {
                        path: path.clone(),
                        reason: err.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|err| Error::Config(err.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server_config =
            builder.with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        server_config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(ServerTls {
            config: config.clone(),
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(server_config)),
        })
    }

    /// Polls the certificate and key files until `shutdown` and serves a changed pair that
    /// loads; a pair that does not load is logged and the one being served kept.
    pub async fn watch(self, shutdown: CancellationToken) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut seen = stamps(&self.config).await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.reload_interval) => {}
            }
            let now = stamps(&self.config).await;
            if now == seen {
                continue;
            }
            let cert = self.config.cert_file.clone();
            let key = self.config.key_file.clone();
            let provider = Arc::clone(&provider);
            let loaded =
                tokio::task::spawn_blocking(move || load_pair(&cert, &key, &provider)).await;
            match loaded {
                Ok(Ok(pair)) => {
                    *self
                        .resolver
                        .current
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = pair;
                    seen = now;
                    tracing::info!(
                        cert_file = %self.config.cert_file.display(),
                        "tls certificate reloaded"
                    );
                }
                Ok(Err(err)) => {
                    // Perhaps half written: tried again at the next poll, the old pair served.
                    tracing::warn!(error = %err, "tls certificate not reloaded");
                }
                Err(err) => tracing::warn!(error = %err, "tls certificate reload failed"),
            }
        }
    }

    /// Accepts connections on `tcp` and completes their handshakes concurrently; the
    /// returned listener yields only established TLS connections. The accept task ends with
    /// `shutdown` or when the listener is dropped.
    pub fn listen(&self, tcp: TcpListener, shutdown: CancellationToken) -> io::Result<TlsListener> {
        let local_addr = tcp.local_addr()?;
        let (sender, receiver) = mpsc::channel(64);
        let acceptor = self.acceptor.clone();
        tokio::spawn(accept_loop(tcp, acceptor, sender, shutdown));
        Ok(TlsListener {
            receiver,
            local_addr,
        })
    }
}

/// Established TLS connections, for axum (`axum::serve::Listener`) and tonic
/// (`into_incoming`).
pub struct TlsListener {
    receiver: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the next established connection; `None` once the accept task ended.
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.receiver.recv().await
    }

    /// The connections as a stream, as tonic's `serve_with_incoming` takes them.
    pub fn into_incoming(
        self,
    ) -> impl futures::Stream<Item = io::Result<TlsStream<TcpStream>>> + Send + 'static {
        futures::stream::unfold(self, |mut listener| async move {
            let (stream, _) = listener.next().await?;
            Some((Ok(stream), listener))
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.next().await {
            Some(connection) => connection,
            // The accept task ended (shutdown): axum's serve loop waits here until its own
            // graceful shutdown, which the same token triggers, stops it.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            () = sender.closed() => return,
            accepted = tcp.accept() => accepted,
        };
        let (stream, address) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %err, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "failed to set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = sender.send((tls, address)).await;
                }
                Ok(Err(err)) => tracing::debug!(error = %err, %address, "tls handshake failed"),
                Err(_) => tracing::debug!(%address, "tls handshake timed out"),
            }
        });
    }
}

/// Serves whatever pair was loaded last.
#[derive(Debug)]
struct FileResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for FileResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// What tells a changed file: its modification time and length (`None` when unreadable).
type Stamp = Option<(SystemTime, u64)>;

async fn stamps(config: &TlsConfig) -> (Stamp, Stamp) {
    let stamp = |path: PathBuf| async move {
        let metadata = tokio::fs::metadata(&path).await.ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    };
    (
        stamp(config.cert_file.clone()).await,
        stamp(config.key_file.clone()).await,
    )
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let file_error = |reason: String| Error::File {
        path: path.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| file_error(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| file_error(err.to_string()))?;
    if certificates.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>> {
    let certificates = read_certificates(cert)?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|err| Error::File {
        path: key.to_owned(),
        reason: err.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(certificates, private_key, provider).map_err(|err| Error::Pair {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: err.to_string(),
        })?;
    Ok(Arc::new(certified))
}
