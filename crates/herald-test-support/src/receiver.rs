//! `TestReceiver`: a real HTTP endpoint on loopback that records every request and answers as
//! the test scripts it (status, latency, failures, a restart on the same port). It answers the
//! CloudEvents webhook validation handshake (`OPTIONS`) with `405`, as an endpoint that does
//! not support it does, and does not record it: it is no delivery.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub received_at: Instant,
    /// The status the receiver answered with.
    pub status: StatusCode,
}

impl Recorded {
    /// Returns a header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Returns the body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the delivered body should be JSON")
    }
}

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Always this status.
    Status(StatusCode),
    /// This status for the next `count` requests, then 200.
    FailFirst { count: usize, status: StatusCode },
    /// This status with extra response headers.
    WithHeaders(StatusCode, Vec<(String, String)>),
    /// This status with extra response headers for the next `count` requests, then 200.
    WithHeadersFirst {
        count: usize,
        status: StatusCode,
        headers: Vec<(String, String)>,
    },
    /// This status for about `percent` % of requests, picked pseudo-randomly (reproducibly),
    /// 200 for the rest.
    FailRandomly { percent: u64, status: StatusCode },
    /// This status for the events whose CloudEvents `id` is listed, 200 for the others.
    FailIds {
        ids: std::collections::BTreeSet<String>,
        status: StatusCode,
    },
    /// This status for the events whose `partitionkey` is `key` until `until`, and for about
    /// `percent` % of the other requests (pseudo-randomly, reproducibly); 200 for the rest.
    FailKeyUntil {
        key: String,
        until: Instant,
        percent: u64,
        status: StatusCode,
    },
}

struct Inner {
    requests: Vec<Recorded>,
    reply: Reply,
    delay: Duration,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: usize,
    max_in_flight: usize,
}

/// A recording webhook endpoint. Stops when dropped.
pub struct TestReceiver {
    url: String,
    address: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: CancellationToken,
    instance: Mutex<Option<Instance>>,
    /// Connections of replaced instances reset so far.
    resets: Arc<AtomicUsize>,
}

/// The server currently listening on the receiver's port.
struct Instance {
    serving: JoinHandle<()>,
    /// Set when the instance is replaced: its connections reset the next request they carry.
    replaced: Arc<AtomicBool>,
}

impl TestReceiver {
    /// Starts a receiver on a free loopback port, answering 200.
    pub async fn start() -> TestReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port should work");
        let address = listener
            .local_addr()
            .expect("a bound listener should have an address");
        let inner = Arc::new(Mutex::new(Inner {
            requests: Vec::new(),
            reply: Reply::Status(StatusCode::OK),
            delay: Duration::ZERO,
            in_flight: 0,
            max_in_flight: 0,
        }));
        let stop = CancellationToken::new();
        let resets = Arc::new(AtomicUsize::new(0));
        let instance = Instance::start(listener, Arc::clone(&inner), &stop, &resets);
        TestReceiver {
            url: format!("http://{address}/hook"),
            address,
            inner,
            stop,
            instance: Mutex::new(Some(instance)),
            resets,
        }
    }

    /// Restarts the endpoint on the same port, as a redeployed service behind NAT or a load
    /// balancer looks to its clients: the old server stops listening, and its connections are
    /// not closed but reset the next request they carry, unread and unrecorded; new
    /// connections reach the new server. Recorded requests and the reply are kept.
    pub async fn restart(&self) {
        let old = self
            .instance
            .lock()
            .expect("the receiver's instance lock should not be poisoned")
            .take();
        if let Some(old) = old {
            old.replaced.store(true, Ordering::SeqCst);
            // The connections' own tasks live on; only the accepting loop (and its listener)
            // ends.
            old.serving.abort();
            let _ = old.serving.await;
        }
        let listener = TcpListener::bind(self.address)
            .await
            .expect("binding the receiver's port again should work");
        let instance = Instance::start(listener, Arc::clone(&self.inner), &self.stop, &self.resets);
        *self
            .instance
            .lock()
            .expect("the receiver's instance lock should not be poisoned") = Some(instance);
    }

    /// Returns how many connections of servers replaced by [`TestReceiver::restart`] have been
    /// reset, each on the request it carried.
    pub fn resets(&self) -> usize {
        self.resets.load(Ordering::SeqCst)
    }

    /// Returns the URL to subscribe with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sets how the receiver answers from now on.
    pub fn set_reply(&self, reply: Reply) {
        self.lock().reply = reply;
    }

    /// Sets how long the receiver waits before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Returns every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The most requests the receiver was answering at once.
    pub fn max_concurrent(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Returns the number of requests received so far.
    pub fn count(&self) -> usize {
        self.lock().requests.len()
    }

    /// Returns the number of requests answered 200 so far, without copying them: cheap enough
    /// to poll while thousands of requests arrive.
    pub fn count_ok(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|request| request.status == StatusCode::OK)
            .count()
    }

    /// Waits until at least `count` requests arrived, returning them.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Recorded> {
        crate::eventually(
            &format!("{count} requests at {}", self.url),
            timeout,
            || async {
                let requests = self.requests();
                (requests.len() >= count).then_some(requests)
            },
        )
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("the receiver lock should not be poisoned")
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Instance {
    fn start(
        listener: TcpListener,
        inner: Arc<Mutex<Inner>>,
        stop: &CancellationToken,
        resets: &Arc<AtomicUsize>,
    ) -> Instance {
        let replaced = Arc::new(AtomicBool::new(false));
        let router = Router::new().fallback(record).with_state(inner);
        let listener = InstanceListener {
            listener,
            replaced: Arc::clone(&replaced),
            resets: Arc::clone(resets),
        };
        let stop = stop.clone();
        let serving = tokio::spawn(async move {
            let serve =
                axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
            let _ = serve.await;
        });
        Instance { serving, replaced }
    }
}

/// Accepts connections that belong to one instance.
struct InstanceListener {
    listener: TcpListener,
    replaced: Arc<AtomicBool>,
    resets: Arc<AtomicUsize>,
}

impl axum::serve::Listener for InstanceListener {
    type Io = InstanceConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (InstanceConnection, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, address)) => {
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

/// A connection of one instance; once the instance is replaced, reading from it resets it.
struct InstanceConnection {
    stream: TcpStream,
    replaced: Arc<AtomicBool>,
    resets: Arc<AtomicUsize>,
}

impl AsyncRead for InstanceConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.replaced.load(Ordering::SeqCst) {
            // Closed with SO_LINGER 0 when dropped: the client gets a reset, not an answer.
            let _ = self.stream.set_zero_linger();
            self.resets.fetch_add(1, Ordering::SeqCst);
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let received_at = Instant::now();
    let (status, extra_headers, delay) = {
        let mut inner = inner
            .lock()
            .expect("the receiver lock should not be poisoned");
        let index = inner.requests.len() as u64;
        let (status, extra_headers) = match &mut inner.reply {
            Reply::Status(status) => (*status, Vec::new()),
            Reply::FailFirst { count, status } => {
                if *count > 0 {
                    *count -= 1;
                    (*status, Vec::new())
                } else {
                    (StatusCode::OK, Vec::new())
                }
            }
            Reply::WithHeaders(status, headers) => (*status, headers.clone()),
            Reply::WithHeadersFirst {
                count,
                status,
                headers,
            } => {
                if *count > 0 {
                    *count -= 1;
                    (*status, headers.clone())
                } else {
                    (StatusCode::OK, Vec::new())
                }
            }
            Reply::FailRandomly { percent, status } => {
                let draw = splitmix(index) % 100;
                if draw < *percent {
                    (*status, Vec::new())
                } else {
                    (StatusCode::OK, Vec::new())
                }
            }
            Reply::FailIds { ids, status } => {
                let id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|event| event["id"].as_str().map(str::to_owned));
                if id.is_some_and(|id| ids.contains(&id)) {
                    (*status, Vec::new())
                } else {
                    (StatusCode::OK, Vec::new())
                }
            }
            Reply::FailKeyUntil {
                key,
                until,
                percent,
                status,
            } => {
                let keyed = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .is_some_and(|event| event["partitionkey"].as_str() == Some(key.as_str()));
                if (keyed && received_at < *until) || (!keyed && splitmix(index) % 100 < *percent) {
                    (*status, Vec::new())
                } else {
                    (StatusCode::OK, Vec::new())
                }
            }
        };
        inner.requests.push(Recorded {
            headers,
            body,
            received_at,
            status,
        });
        inner.in_flight += 1;
        inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        (status, extra_headers, inner.delay)
    };
    // Counted out when the answer is sent, or when the client gives up on it.
    let _answering = Answering(Arc::clone(&inner));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = status.into_response();
    for (name, value) in extra_headers {
        if let (Ok(name), Ok(value)) = (
            name.parse::<axum::http::HeaderName>(),
            value.parse::<axum::http::HeaderValue>(),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// One request being answered.
struct Answering(Arc<Mutex<Inner>>);

impl Drop for Answering {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.0.lock() {
            inner.in_flight = inner.in_flight.saturating_sub(1);
        }
    }
}

/// A reproducible pseudo-random number per request index.
fn splitmix(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
