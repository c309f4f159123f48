//! The benchmark's webhook receiver: a keep-alive axum endpoint that verifies every Standard
//! Webhooks signature, counts unique `(slot, event id)` pairs and duplicates, and records the
//! end-to-end latency from the `data.sent_ns` the load generator put in each event.
//!
//! Each subscription points at `/hook/<slot>`, so fan-out deliveries of one event count once per
//! subscription. A workload resets the recorder and may ask for a share of requests to fail
//! with `503`, to exercise retries, or restart the receiver on the same port the way a
//! redeployed endpoint behind NAT looks to its clients (W4r).
//!
//! Two modes serve the scheduling workloads: *poison* answers `500` every time to the events
//! whose index (the number after the last `-` of the id the load generator gave it) is a
//! multiple of n, so they fail permanently (W8); and for events with a `partitionkey`, the
//! recording counts first deliveries that arrive after a later-published event of their key
//! (W7b, whose single sender publishes in index order).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
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

use crate::stats::{mix, unix_nanos};

/// What the receiver saw since the last reset.
#[derive(Debug, Default)]
pub(crate) struct Recording {
    pub(crate) unique: u64,
    pub(crate) duplicates: u64,
    pub(crate) failed_on_purpose: u64,
    /// First deliveries of a keyed event that arrived after one of a higher index of its key.
    pub(crate) out_of_order: u64,
    pub(crate) bad_signatures: u64,
    pub(crate) latencies_ns: Vec<u64>,
    pub(crate) last_receipt: Option<Instant>,
}

struct Inner {
    seen: HashSet<(u32, String)>,
    /// The highest event index delivered so far per `(slot, partitionkey)`.
    last_index: HashMap<(u32, String), u64>,
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
    /// Events whose index is a multiple of this fail every time; 0 turns poison off.
    poison_one_in: Arc<AtomicU64>,
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
    #[serde(default)]
    partitionkey: Option<String>,
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
                last_index: HashMap::new(),
                recording: Recording::default(),
            })),
            unique: Arc::new(AtomicU64::new(0)),
            fail_per_million: Arc::new(AtomicU64::new(0)),
            poison_one_in: Arc::new(AtomicU64::new(0)),
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

    /// Forgets everything, turns poison off and sets the share of requests to fail on purpose.
    pub(crate) fn reset(&self, fail_ratio: f64) {
        let mut inner = self
            .inner
            .lock()
            .expect("receiver lock should not be poisoned");
        inner.seen.clear();
        inner.last_index.clear();
        inner.recording = Recording::default();
        self.poison_one_in.store(0, Ordering::SeqCst);
        self.unique.store(0, Ordering::SeqCst);
        self.fail_per_million
            .store((fail_ratio * 1e6) as u64, Ordering::SeqCst);
    }

    /// Fails every event whose index is a multiple of `one_in`, on every attempt, until the next
    /// reset; of the indices `0..n`, [`poisoned_among`] fail.
    pub(crate) fn poison(&self, one_in: u64) {
        self.poison_one_in.store(one_in, Ordering::SeqCst);
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
    let poison_one_in = receiver.poison_one_in.load(Ordering::Relaxed);
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
    // The index is read only when a mode needs it, so other workloads' receiver CPU is as before.
    let index = if poison_one_in > 0 || event.partitionkey.is_some() {
        event_index(&event.id)
    } else {
        None
    };
    if poison_one_in > 0 && index.is_some_and(|index| index % poison_one_in == 0) {
        inner.recording.failed_on_purpose += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if inner.seen.insert((slot, event.id)) {
        if let (Some(key), Some(index)) = (event.partitionkey, index) {
            let arrived_late = match inner.last_index.entry((slot, key)) {
                Entry::Occupied(highest) if index < *highest.get() => true,
                Entry::Occupied(mut highest) => {
                    *highest.get_mut() = index;
                    false
                }
                Entry::Vacant(first) => {
                    first.insert(index);
                    false
                }
            };
            if arrived_late {
                inner.recording.out_of_order += 1;
            }
        }
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

/// Returns how many of the event indices `0..num_events` [`Receiver::poison`] fails.
pub(crate) fn poisoned_among(num_events: u64, one_in: u64) -> u64 {
    if one_in == 0 {
        return 0;
    }
    num_events.div_ceil(one_in)
}

/// Returns the index the load generator put after the last `-` of an event id.
fn event_index(id: &str) -> Option<u64> {
    id.rsplit_once('-')?.1.parse().ok()
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

#[cfg(test)]
mod tests {
    use super::{event_index, poisoned_among};

    #[test]
    fn poison_counts_the_indices_it_fails() {
        for (num_events, one_in) in [(100, 20), (101, 20), (5_000, 20), (7, 1), (7, 0)] {
            let failed = (0..num_events)
                .filter(|index| one_in > 0 && index % one_in == 0)
                .count() as u64;
            assert_eq!(poisoned_among(num_events, one_in), failed);
        }
    }

    #[test]
    fn the_index_is_the_number_after_the_last_dash() {
        assert_eq!(event_index("w8-default-1234"), Some(1234));
        assert_eq!(event_index("warmup-bench.w8-0"), Some(0));
        assert_eq!(event_index("no-index-here"), None);
    }
}
