//! Test kit: a real nats-server per test, a controllable webhook receiver, a test CA (`TestCa`),
//! an HTTPS endpoint that may require client certificates (`TlsReceiver`), an HTTP proxy that
//! records what it carries (`TestProxy`), and waiting helpers.
//!
//! Dev-only: no production crate depends on it. Tests never mock the broker: each one starts its
//! own nats-server with JetStream on a free port in a temporary directory, and a missing binary
//! fails the test with an install hint instead of skipping it. [`NatsCluster`] starts several
//! such servers as one JetStream cluster, for replication and failover tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    reason = "the test kit serves tests, which fail by panicking"
)]

mod cluster;
mod proxy;
mod receiver;
mod tls;
mod tls_receiver;

use std::future::Future;
use std::time::Duration;

use herald_runtime::nats_server::{self, ServerOptions};

pub use cluster::NatsCluster;
pub use proxy::{ProxiedRequest, TestProxy};
pub use receiver::{Recorded, Reply, TestReceiver};
pub use tls::TestCa;
pub use tls_receiver::{TlsReceiver, TlsRecorded};

/// A nats-server with JetStream, private to one test. Killed when dropped.
pub struct NatsServer {
    server: Option<nats_server::NatsServer>,
    options: ServerOptions,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server on a free loopback port, with its store in a fresh temporary directory.
    pub async fn start() -> NatsServer {
        let dir = tempfile::tempdir().expect("creating a temporary directory should work");
        let options = ServerOptions {
            host: "127.0.0.1".to_owned(),
            port: 0,
            data_dir: dir.path().to_path_buf(),
            config_file: None,
        };
        let server = nats_server::NatsServer::start(&options)
            .await
            .unwrap_or_else(|err| panic!("nats-server should start: {err}"));
        let port = server.port();
        // Later restarts reuse the port so clients reconnect to the same URL.
        let options = ServerOptions { port, ..options };
        NatsServer {
            server: Some(server),
            options,
            _dir: dir,
        }
    }

    /// Returns the client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.options.port)
    }

    /// Returns the directory the server stores JetStream in (`jetstream/$G/streams/<STREAM>`
    /// holds each stream's and bucket's messages), for tests that read what reached the disk.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.options.data_dir
    }

    /// Stops the server abruptly, keeping its data for [`NatsServer::restart`].
    pub async fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill().await;
        }
    }

    /// Starts the server again on the same port and store.
    pub async fn restart(&mut self) {
        self.kill().await;
        let server = nats_server::NatsServer::start(&self.options)
            .await
            .unwrap_or_else(|err| panic!("nats-server should restart: {err}"));
        self.server = Some(server);
    }
}

/// Settings for connecting Herald to a test's nats-server: file storage, short retention.
pub fn nats_config(url: &str) -> herald_nats::Config {
    let hour = Duration::from_secs(3600);
    herald_nats::Config {
        url: url.to_owned(),
        request_timeout: Duration::from_secs(5),
        events: herald_nats::EventsStreamConfig {
            retention: hour,
            duplicate_window: Duration::from_secs(120),
            storage: herald_nats::Storage::File,
            replicas: 1,
            atomic_batches: false,
        },
        attempt_retention: hour,
        dead_letter_retention: hour,
    }
}

/// How much longer than nominal the machine may need: `HERALD_TEST_PATIENCE` (a factor,
/// default 1).
pub fn patience() -> f64 {
    std::env::var("HERALD_TEST_PATIENCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0)
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout` (scaled by
/// [`patience`]).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout.mul_f64(patience());
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A structured CloudEvent as JSON text, with the given id and type.
pub fn structured_event(id: &str, event_type: &str) -> String {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "/herald/tests",
        "type": event_type,
        "datacontenttype": "application/json",
        "data": {"n": id},
    })
    .to_string()
}
