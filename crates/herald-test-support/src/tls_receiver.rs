//! An HTTPS webhook endpoint on loopback, for tests of deliveries over TLS: it serves a
//! certificate for `localhost` issued by a [`TestCa`], may require a client certificate issued
//! by another (mutual TLS), and records every request with the SHA-256 fingerprint of the client
//! certificate it came on. Handshakes it refused (no client certificate, or an untrusted one)
//! are counted, never recorded as requests. Answers 200, and 405 to `OPTIONS` (the consent
//! handshake) without recording it, as [`crate::TestReceiver`] does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::TestCa;

/// A request the endpoint received.
#[derive(Debug, Clone)]
pub struct TlsRecorded {
    pub method: Method,
    pub path: String,
    /// SHA-256 of the DER of the client certificate the connection presented, lowercase hex.
    pub client_fingerprint: Option<String>,
    pub body: Bytes,
}

/// A recording HTTPS endpoint. Stops when dropped.
pub struct TlsReceiver {
    url: String,
    requests: Arc<Mutex<Vec<TlsRecorded>>>,
    refused: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl TlsReceiver {
    /// Starts an endpoint on a free loopback port with a certificate of `server_ca` for
    /// `localhost`; with `client_ca`, only clients presenting a certificate it issued get
    /// through the handshake.
    pub async fn start(server_ca: &TestCa, client_ca: Option<&TestCa>) -> TlsReceiver {
        let acceptor = TlsAcceptor::from(server_ca.server_config("test-endpoint", client_ca));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (established, handshaken) = mpsc::channel(64);
        tokio::spawn(accept_loop(
            listener,
            acceptor,
            established,
            Arc::clone(&refused),
            stop.clone(),
        ));
        let router = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&requests));
        let serving_stop = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(
                Handshaken(handshaken),
                router.into_make_service_with_connect_info::<Peer>(),
            )
            .with_graceful_shutdown(serving_stop.cancelled_owned())
            .await;
        });
        TlsReceiver {
            url: format!("https://localhost:{port}/hook"),
            requests,
            refused,
            stop,
        }
    }

    /// Returns the URL to subscribe with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns the requests received so far, oldest first.
    pub fn requests(&self) -> Vec<TlsRecorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Returns how many TLS handshakes the endpoint refused.
    pub fn refused_handshakes(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` requests arrived; panics after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<TlsRecorded> {
        crate::eventually("requests at the TLS endpoint", timeout, || async {
            let requests = self.requests();
            (requests.len() >= count).then_some(requests)
        })
        .await
    }

    /// Waits until at least `count` handshakes were refused; panics after `timeout`.
    pub async fn wait_for_refusals(&self, count: usize, timeout: Duration) {
        crate::eventually(
            "handshakes refused by the TLS endpoint",
            timeout,
            || async { (self.refused_handshakes() >= count).then_some(()) },
        )
        .await;
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Accepts TCP connections and runs each handshake in a task of its own, so a stalled one holds
/// no other back; established connections go to the server through `established`.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    established: mpsc::Sender<(TlsStream<TcpStream>, Peer)>,
    refused: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, address)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let established = established.clone();
        let refused = Arc::clone(&refused);
        tokio::spawn(async move {
            match acceptor.accept(stream).await {
                Ok(stream) => {
                    let client_fingerprint = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| herald_core::digest::sha256_hex(leaf.as_ref()));
                    let peer = Peer {
                        address,
                        client_fingerprint,
                    };
                    let _ = established.send((stream, peer)).await;
                }
                Err(_) => {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
}

/// The connections whose handshake completed, as axum's listener.
struct Handshaken(mpsc::Receiver<(TlsStream<TcpStream>, Peer)>);

impl axum::serve::Listener for Handshaken {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.0.recv().await {
            Some(connection) => connection,
            // The accepting loop ended (the receiver stops): wait for the shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// Who a connection came from: its address and the fingerprint of its client certificate.
#[derive(Debug, Clone)]
struct Peer {
    #[allow(dead_code, reason = "kept for debugging output")]
    address: SocketAddr,
    client_fingerprint: Option<String>,
}

impl Connected<IncomingStream<'_, Handshaken>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Handshaken>) -> Peer {
        stream.remote_addr().clone()
    }
}

async fn record(
    State(requests): State<Arc<Mutex<Vec<TlsRecorded>>>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    requests.lock().unwrap().push(TlsRecorded {
        method,
        path: uri.path().to_owned(),
        client_fingerprint: peer.client_fingerprint,
        body,
    });
    StatusCode::OK.into_response()
}
