//! The benchmark's webhook receiver: a keep-alive axum endpoint that verifies every Standard
//! Webhooks signature, counts unique `(slot, event id)` pairs and duplicates, and records the
//! end-to-end latency from the `data.sent_ns` the load generator put in each event.
//!
//! Each subscription points at `/hook/<slot>`, so fan-out deliveries of one event count once per
//! subscription. A workload resets the recorder and may ask for a share of requests to fail
//! with `503`, to exercise retries.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
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
        };
        let app = Router::new()
            .route("/hook/{slot}", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Ok(receiver)
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
