//! The benchmark's webhook receiver: a keep-alive axum endpoint that verifies every Standard
//! Webhooks signature, counts unique `(slot, event id)` pairs and duplicates, and records the
//! end-to-end latency from the `data.sent_ns` the load generator put in each event.
//!
//! Each subscription points at `/hook/<slot>`, so fan-out deliveries of one event count once per
//! subscription. A workload resets the recorder and may ask for a share of requests to fail
//! with `503`, to exercise retries, or restart the receiver on the same port the way a
//! redeployed endpoint behind NAT looks to its clients (W4r).

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::stats::unix_nanos;

/// What the receiver saw since the last reset.
#[derive(Debug, Default)]
pub(crate) struct Recording {
    pub(crate) unique: u64,
    pub(crate) duplicates: u64,
    pub(crate) failed_on_purpose: u64,
    pub(crate) bad_signatures: u64,
    pub(crate) latencies_ns: Vec<u64>,
    pub(crate) last_receipt: Option<Instant>,
}

struct Inner {
    seen: HashSet<(u32, String)>,
    recording: Recording,
}

/// The shared receiver state; cheap to clone.
#[derive(Clone)]
pub(crate) struct Receiver {
    address: SocketAddr,
    secret: Arc<herald_signing::Secret>,
    inner: Arc<Mutex<Inner>>,
    unique: Arc<AtomicU64>,
    /// Share of requests answered 503, in millionths.
    fail_per_million: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    /// The server listening now, replaced by [`Receiver::restart`].
    serving: Arc<Mutex<Option<Serving>>>,
    /// Connections of replaced servers reset so far.
    resets: Arc<AtomicU64>,
}

/// One server instance on the receiver's port.
struct Serving {
    task: JoinHandle<()>,
    /// Set when the instance is replaced: its connections reset the next request they carry.
    replaced: Arc<AtomicBool>,
}

#[derive(serde::Deserialize)]
struct EventView {
    id: String,
    data: DataView,
}

#[derive(serde::Deserialize)]
struct DataView {
    sent_ns: u64,
}

impl Receiver {
    /// Starts the receiver on a free loopback port.
    pub(crate) async fn start(secret: herald_signing::Secret) -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Receiver {
            address: listener.local_addr()?,
            secret: Arc::new(secret),
            inner: Arc::new(Mutex::new(Inner {
                seen: HashSet::new(),
                recording: Recording::default(),
            })),
            unique: Arc::new(AtomicU64::new(0)),
            fail_per_million: Arc::new(AtomicU64::new(0)),
            requests: Arc::new(AtomicU64::new(0)),
            serving: Arc::new(Mutex::new(None)),
            resets: Arc::new(AtomicU64::new(0)),
        };
        receiver.serve(listener);
        Ok(receiver)
    }

    /// Restarts the receiver on the same port as a redeployed endpoint behind NAT or a load
    /// balancer looks to its clients: nothing closes the old server's keep-alive connections,
    /// and each resets the next request it carries, unread; new connections reach the new
    /// server.
    pub(crate) async fn restart(&self) -> anyhow::Result<()> {
        let old = self.lock_serving().take();
        if let Some(old) = old {
            old.replaced.store(true, Ordering::SeqCst);
            // Ends the accept loop and its listener; the connections' tasks live on.
            old.task.abort();
            let _ = old.task.await;
        }
        let listener = TcpListener::bind(self.address).await?;
        self.serve(listener);
        Ok(())
    }

    /// Returns how many connections of replaced servers have been reset, each on the request
    /// it carried.
    pub(crate) fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    fn serve(&self, listener: TcpListener) {
        let replaced = Arc::new(AtomicBool::new(false));
        let app = Router::new()
            .route("/hook/{slot}", post(receive))
            .with_state(self.clone());
        let listener = InstanceListener {
            listener,
            replaced: Arc::clone(&replaced),
            resets: Arc::clone(&self.resets),
        };
        // Never shut down gracefully: when `restart` aborts the accept loop, plain `serve` would
        // have its idle connections closed (a graceful restart, which clients notice); here they
        // are left open, as nothing tells a client when a server behind NAT went away.
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(std::future::pending());
            let _ = serve.await;
        });
        *self.lock_serving() = Some(Serving { task, replaced });
    }

    fn lock_serving(&self) -> std::sync::MutexGuard<'_, Option<Serving>> {
        self.serving
            .lock()
            .expect("receiver lock should not be poisoned")
    }

    /// Returns the sink URL of `slot`.
    pub(crate) fn sink(&self, slot: u32) -> String {
        format!("http://{}/hook/{slot}", self.address)
    }

    /// Forgets everything and sets the share of requests to fail on purpose.
    pub(crate) fn reset(&self, fail_ratio: f64) {
        let mut inner = self
            .inner
            .lock()
            .expect("receiver lock should not be poisoned");
        inner.seen.clear();
        inner.recording = Recording::default();
        self.unique.store(0, Ordering::SeqCst);
        self.fail_per_million
            .store((fail_ratio * 1e6) as u64, Ordering::SeqCst);
    }

    /// Returns the number of unique deliveries so far.
    pub(crate) fn unique(&self) -> u64 {
        self.unique.load(Ordering::Relaxed)
    }

    /// Waits until `expected` unique deliveries arrived, or `timeout` passed; returns whether
    /// they all arrived.
    pub(crate) async fn wait_for(&self, expected: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.unique() < expected {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Takes the recording, leaving an empty one.
    pub(crate) fn take(&self) -> Recording {
        let mut inner = self
            .inner
            .lock()
            .expect("receiver lock should not be poisoned");
        std::mem::take(&mut inner.recording)
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    Path(slot): Path<u32>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let received_ns = unix_nanos();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    };
    let now_secs = (received_ns / 1_000_000_000) as i64;
    let verified = herald_signing::verify(
        &receiver.secret,
        header(herald_signing::HEADER_ID),
        header(herald_signing::HEADER_TIMESTAMP),
        header(herald_signing::HEADER_SIGNATURE),
        &body,
        now_secs,
        herald_signing::DEFAULT_TOLERANCE_SECS,
    );
    let event: Option<EventView> = serde_json::from_slice(&body).ok();
    let fail_per_million = receiver.fail_per_million.load(Ordering::Relaxed);
    let request_number = receiver.requests.fetch_add(1, Ordering::Relaxed);
    let fail = fail_per_million > 0 && mix(request_number) % 1_000_000 < fail_per_million;
    let mut inner = receiver
        .inner
        .lock()
        .expect("receiver lock should not be poisoned");
    let (Ok(()), Some(event)) = (verified, event) else {
        inner.recording.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    };
    if fail {
        inner.recording.failed_on_purpose += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if inner.seen.insert((slot, event.id)) {
        inner.recording.unique += 1;
        inner
            .recording
            .latencies_ns
            .push(received_ns.saturating_sub(event.data.sent_ns));
        inner.recording.last_receipt = Some(Instant::now());
        receiver.unique.fetch_add(1, Ordering::Relaxed);
    } else {
        inner.recording.duplicates += 1;
    }
    StatusCode::NO_CONTENT
}

/// SplitMix64: a well-spread pseudo-random number from a counter.
fn mix(counter: u64) -> u64 {
    let mut z = counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Accepts connections that belong to one server instance, with TCP_NODELAY.
struct InstanceListener {
    listener: TcpListener,
    replaced: Arc<AtomicBool>,
    resets: Arc<AtomicU64>,
}

impl axum::serve::Listener for InstanceListener {
    type Io = InstanceConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (InstanceConnection, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, address)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = InstanceConnection {
                        stream,
                        replaced: Arc::clone(&self.replaced),
                        resets: Arc::clone(&self.resets),
                    };
                    return (connection, address);
                }
                // Out of descriptors or an aborted handshake: try again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection of one server instance; once the instance is replaced, reading resets it.
struct InstanceConnection {
    stream: TcpStream,
    replaced: Arc<AtomicBool>,
    resets: Arc<AtomicU64>,
}

impl AsyncRead for InstanceConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.replaced.load(Ordering::Relaxed) {
            // Closed with SO_LINGER 0 when dropped: the client gets a reset, not an answer.
            let _ = self.stream.set_zero_linger();
            self.resets.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for InstanceConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
