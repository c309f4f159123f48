//! `TestReceiver`: a real HTTP endpoint on loopback that records every request and answers as
//! the test scripts it (status, latency, failures).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
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
    /// This status for about `percent` % of requests, picked pseudo-randomly (reproducibly),
    /// 200 for the rest.
    FailRandomly { percent: u64, status: StatusCode },
}

struct Inner {
    requests: Vec<Recorded>,
    reply: Reply,
    delay: Duration,
}

/// A recording webhook endpoint. Stops when dropped.
pub struct TestReceiver {
    url: String,
    inner: Arc<Mutex<Inner>>,
    stop: CancellationToken,
}

impl TestReceiver {
    /// Starts a receiver on a free loopback port, answering 200.
    pub async fn start() -> TestReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port should work");
        let address = listener
            .local_addr()
            .expect("a bound listener should have an address");
        let inner = Arc::new(Mutex::new(Inner {
            requests: Vec::new(),
            reply: Reply::Status(StatusCode::OK),
            delay: Duration::ZERO,
        }));
        let stop = CancellationToken::new();
        let router = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&inner));
        let shutdown = stop.clone();
        tokio::spawn(async move {
            let serve =
                axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned());
            let _ = serve.await;
        });
        TestReceiver {
            url: format!("http://{address}/hook"),
            inner,
            stop,
        }
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

    /// Returns the number of requests received so far.
    pub fn count(&self) -> usize {
        self.lock().requests.len()
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

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
            Reply::FailRandomly { percent, status } => {
                let draw = splitmix(index) % 100;
                if draw < *percent {
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
        (status, extra_headers, inner.delay)
    };
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

/// A reproducible pseudo-random number per request index.
fn splitmix(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
