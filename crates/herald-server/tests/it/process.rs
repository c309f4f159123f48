//! Running `herald` role processes for tests.

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A free loopback port (bound then released: a small race tests can live with).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bearer token every started role accepts, on ingest and control alike: outside
/// `herald dev` neither API may go without one, loopback included.
pub(crate) const API_TOKEN: &str = "herald-process-test-token";

/// A running `herald <role>` process.
pub(crate) struct Role {
    pub(crate) child: Child,
    /// The admin listener's port (`/livez`, `/readyz`).
    pub(crate) admin: u16,
}

/// Addresses of a test deployment.
#[derive(Clone)]
pub(crate) struct Ports {
    pub(crate) nats_url: String,
    pub(crate) ingest: u16,
    pub(crate) control: u16,
    /// Set once `herald migrate` made the streams and buckets (shared by clones).
    pub(crate) migrated: Arc<AtomicBool>,
}

impl Ports {
    pub(crate) fn new(nats_url: String) -> Ports {
        Ports {
            nats_url,
            ingest: free_port(),
            control: free_port(),
            migrated: Arc::default(),
        }
    }

    pub(crate) fn ingest_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/events", self.ingest)
    }

    pub(crate) fn control_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.control)
    }
}

/// The key-encryption key of the process tests, as `secrets.keys`.
pub(crate) const TEST_KEKS: &str = r#"["it:aXQta2V5LWVuY3J5cHRpb24ta2V5LTAxMjM0NTY3ODk="]"#;

/// Starts `herald <role>` with test settings: [`API_TOKEN`] as the ingest and control token,
/// loopback delivery allowed, short timeouts (attempt 2 s, so the ack wait is 10 s), a 5 s grace period.
pub(crate) fn start(role: &str, ports: &Ports) -> Role {
    start_with(role, ports, &[])
}

/// Starts `herald <role>` as [`start`] does, with `env` on top of the test settings.
///
/// The first single role started on `ports` runs `herald migrate` first, with the same `env`,
/// as a deployment runs it before its roles (which wait for it); `all` migrates itself.
pub(crate) fn start_with(role: &str, ports: &Ports, env: &[(&str, &str)]) -> Role {
    if role != "all" && !ports.migrated.swap(true, Ordering::SeqCst) {
        let output = migrate(ports, env);
        assert!(
            output.status.success(),
            "herald migrate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    spawn(role, ports, env, Stdio::inherit())
}

/// Starts `herald <role>` with the test settings and `env`, its standard error to `stderr`,
/// without migrating first.
pub(crate) fn spawn(role: &str, ports: &Ports, env: &[(&str, &str)], stderr: Stdio) -> Role {
    let api_tokens = format!(r#"["{API_TOKEN}"]"#);
    let admin = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg(role)
        .args(["--nats-url", &ports.nats_url])
        .args(["--ingest-listen", &format!("127.0.0.1:{}", ports.ingest)])
        .args(["--control-listen", &format!("127.0.0.1:{}", ports.control)])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .env("HERALD_INGEST__AUTH__API_TOKENS", &api_tokens)
        .env("HERALD_CONTROL__AUTH__API_TOKENS", &api_tokens)
        .env("HERALD_SECRETS__KEYS", TEST_KEKS)
        .env("HERALD_NETWORK__ALLOW_LOOPBACK", "true")
        .env("HERALD_DISPATCHER__REQUEST_TIMEOUT", "2s")
        .env("HERALD_DISPATCHER__CONNECT_TIMEOUT", "1s")
        .env("HERALD_DISPATCHER__SHUTDOWN_GRACE_PERIOD", "5s")
        .env("HERALD_DISPATCHER__MAX_IN_FLIGHT_PER_SUBSCRIPTION", "64")
        // Stopping at once: only the SIGTERM test waits for load balancers.
        .env("HERALD_SHUTDOWN__PRE_STOP_DELAY", "0s")
        .env(
            "HERALD_LOG",
            std::env::var("TEST_HERALD_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("the herald binary should start");
    Role { child, admin }
}

/// Runs `herald migrate` against `ports`' NATS with `env` and waits for it to exit (it blocks
/// the caller: a migration is a few JetStream calls, done before anything else runs).
pub(crate) fn migrate(ports: &Ports, env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("migrate")
        .args(["--nats-url", &ports.nats_url])
        .env(
            "HERALD_LOG",
            std::env::var("TEST_HERALD_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("herald migrate should run")
}

impl Role {
    /// Waits until the role accepts connections on `port`, failing at once if it exits first.
    ///
    /// A role listens only once its NATS topology is in place, which on a loaded machine with a
    /// three-node cluster (every stream and bucket a raft group) can take well beyond any fixed
    /// bound a test would pick; what tells a broken start from a slow one is the process ending,
    /// so that is what is watched. The outer bound only stops a start that hangs for good.
    pub(crate) async fn wait_listening(&mut self, port: u16) {
        let hung = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the role exited with {status} before listening on port {port}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < hung,
                "the role hung before listening on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM.
    pub(crate) async fn terminate(&self) {
        let pid = self.child.id().expect("the process should be running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub(crate) async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

pub(crate) async fn nats(url: &str) -> herald_nats::Nats {
    let config = herald_test_support::nats_config(url);
    herald_nats::Nats::connect(&config)
        .await
        .expect("nats should connect")
}

/// Adds `authorization: Bearer <API_TOKEN>` to a gRPC call.
pub(crate) fn authorize(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    let value = format!("Bearer {API_TOKEN}")
        .parse()
        .expect("the test token should be ASCII");
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// A `SubscriptionService` client of the control process, with the test token.
pub(crate) type ControlClient =
    herald_proto::v1::subscription_service_client::SubscriptionServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
        >,
    >;

/// Connects to the control process's gRPC API with the test token.
pub(crate) async fn control_client(ports: &Ports) -> ControlClient {
    let channel = tonic::transport::Channel::from_shared(ports.control_url())
        .expect("the control URL should be valid")
        .connect()
        .await
        .expect("control should accept connections");
    herald_proto::v1::subscription_service_client::SubscriptionServiceClient::with_interceptor(
        channel,
        authorize as fn(_) -> _,
    )
}

/// Creates a subscription through the control process and waits for its consumer.
pub(crate) async fn subscribe(ports: &Ports, nats: &herald_nats::Nats, sink: &str) -> String {
    use herald_proto::v1 as pb;
    let mut client = control_client(ports).await;
    let request = pb::CreateSubscriptionRequest {
        sink: sink.to_owned(),
        ..Default::default()
    };
    let id = client
        .create_subscription(request)
        .await
        .unwrap()
        .into_inner()
        .id;
    herald_test_support::eventually(
        "the subscription's consumer",
        Duration::from_secs(20),
        || {
            let nats = nats.clone();
            let id = id.clone();
            async move { nats.consumer_progress(&id).await.ok() }
        },
    )
    .await;
    id
}

/// Posts events in batches of 100.
pub(crate) async fn post_batches(ports: &Ports, prefix: &str, count: usize) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().unwrap();
    for start in (0..count).step_by(100) {
        let batch: Vec<serde_json::Value> = (start..(start + 100).min(count))
            .map(|n| {
                serde_json::from_str(&herald_test_support::structured_event(
                    &format!("{prefix}-{n}"),
                    "com.process",
                ))
                .unwrap()
            })
            .collect();
        let response = http
            .post(ports.ingest_url())
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&batch).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
}
