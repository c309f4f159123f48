//! The system under test: a nats-server with a durability profile and a temporary store, and
//! Herald's roles as separate `herald ingest`, `herald dispatch` and `herald control` processes
//! (so each one's CPU and memory can be read from `/proc`), configured by a generated TOML file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::{Child, Command};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use herald_proto::v1 as pb;
use herald_proto::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::v1::subscription_service_client::SubscriptionServiceClient;
use herald_runtime::nats_server::{NatsServer, ServerOptions};

use crate::stats::{MachineSample, ProcessSample, sample_machine, sample_process};

/// The bearer token the roles accept, on ingest and control alike, and that every request of
/// the load generator and every gRPC call carries: outside `herald dev` neither API may go
/// without one, loopback included.
pub(crate) const API_TOKEN: &str = "herald-bench-api-token";

/// The key-encryption key the benchmark's roles seal signing secrets under: a JSON list of one
/// `ID:BASE64` entry of 32 bytes (not a secret: the benchmark's subscriptions protect nothing).
const BENCH_KEK: &str = r#"["bench:YmVuY2gta2V5LW5vdC1hLXNlY3JldC0wMDAwMDAwMDA="]"#;

/// A Subscriptions API client that sends [`API_TOKEN`].
pub(crate) type ControlClient = SubscriptionServiceClient<InterceptedService<Channel, BearerToken>>;

/// A Deliveries API client that sends [`API_TOKEN`].
type DeliveryClient = DeliveryServiceClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <API_TOKEN>` to each gRPC call.
#[derive(Clone)]
pub(crate) struct BearerToken(AsciiMetadataValue);

impl BearerToken {
    fn new() -> anyhow::Result<BearerToken> {
        let value = format!("Bearer {API_TOKEN}")
            .parse()
            .context("the bench token should be printable ASCII")?;
        Ok(BearerToken(value))
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// One Herald role process.
pub(crate) struct Role {
    pub(crate) name: &'static str,
    pub(crate) pid: u32,
    /// The admin listener (`/readyz`, `/metrics`).
    admin: String,
    child: Child,
}

/// A nats-server and the three Herald roles, all on loopback.
pub(crate) struct Cluster {
    pub(crate) nats_url: String,
    pub(crate) nats_pid: u32,
    pub(crate) ingest_url: String,
    pub(crate) roles: Vec<Role>,
    control_url: String,
    nats: Option<NatsServer>,
    _dir: tempfile::TempDir,
}

/// CPU and memory of every process of the cluster at one moment.
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub(crate) samples: HashMap<&'static str, ProcessSample>,
    pub(crate) machine: MachineSample,
}

impl Cluster {
    /// Starts nats-server with `profile` (a nats-server configuration file), then the roles.
    /// Role logs go to `logs`, which is emptied first.
    /// `env` is added to the roles' environment (Herald settings as `HERALD_*__*`).
    pub(crate) async fn start(
        herald: &Path,
        profile: &Path,
        logs: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("herald-bench-").tempdir()?;
        let _ = std::fs::remove_dir_all(logs);
        std::fs::create_dir_all(logs)?;
        let options = ServerOptions {
            host: "127.0.0.1".to_owned(),
            port: 0,
            data_dir: dir.path().join("nats"),
            config_file: Some(profile.to_path_buf()),
        };
        let nats = NatsServer::start(&options)
            .await
            .context("failed to start nats-server")?;
        let nats_url = nats.url().to_owned();
        let nats_pid = nats_pid(&dir.path().join("nats/ports"))?;
        let config = dir.path().join("herald.toml");
        std::fs::write(&config, CONFIG)?;
        let ingest_listen = format!("127.0.0.1:{}", free_port()?);
        let control_listen = format!("127.0.0.1:{}", free_port()?);
        let api_tokens = format!(r#"["{API_TOKEN}"]"#);
        // The streams and buckets first, as a deployment does: the roles wait for them.
        let migrate = Command::new(herald)
            .arg("migrate")
            .arg("--config")
            .arg(&config)
            .args(["--nats-url", &nats_url])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(logs.join("migrate.log"))?)
            .status()
            .await
            .with_context(|| format!("failed to run {} migrate", herald.display()))?;
        anyhow::ensure!(
            migrate.success(),
            "herald migrate failed ({migrate}): see {}",
            logs.join("migrate.log").display()
        );
        let mut roles = Vec::new();
        for (name, subcommand) in [
            ("control", "control"),
            ("dispatcher", "dispatch"),
            ("ingest", "ingest"),
        ] {
            let admin = format!("127.0.0.1:{}", free_port()?);
            let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
            let child = Command::new(herald)
                .arg(subcommand)
                .arg("--config")
                .arg(&config)
                .args(["--nats-url", &nats_url])
                .args(["--ingest-listen", &ingest_listen])
                .args(["--control-listen", &control_listen])
                .args(["--admin-listen", &admin])
                .env("HERALD_INGEST__AUTH__API_TOKENS", &api_tokens)
                .env("HERALD_CONTROL__AUTH__API_TOKENS", &api_tokens)
                // Outside dev mode dispatch and control seal signing secrets under a KEK.
                .env("HERALD_SECRETS__KEYS", BENCH_KEK)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("failed to start {}", herald.display()))?;
            let pid = child.id().context("a started child should have a pid")?;
            wait_ready(&format!("http://{admin}/readyz"), name).await?;
            roles.push(Role {
                name,
                pid,
                admin,
                child,
            });
        }
        Ok(Cluster {
            nats_url,
            nats_pid,
            ingest_url: format!("http://{ingest_listen}/v1/events"),
            roles,
            control_url: format!("http://{control_listen}"),
            nats: Some(nats),
            _dir: dir,
        })
    }

    /// Returns the pid of a role.
    pub(crate) fn pid(&self, name: &str) -> u32 {
        self.roles
            .iter()
            .find(|role| role.name == name)
            .map(|role| role.pid)
            .unwrap_or_default()
    }

    /// Reads one unlabelled metric of a role from its `/metrics` (`None` when it cannot).
    pub(crate) async fn metric(&self, role: &str, metric: &str) -> Option<f64> {
        let admin = &self.roles.iter().find(|each| each.name == role)?.admin;
        let client = crate::load::client(1).ok()?;
        let text = client
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().find_map(|line| {
            let value = line.strip_prefix(metric)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// Samples CPU and memory of nats-server and every role.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut samples = HashMap::new();
        samples.insert("nats", sample_process(self.nats_pid));
        for role in &self.roles {
            samples.insert(role.name, sample_process(role.pid));
        }
        // This process: the load generator and the receiver.
        samples.insert("bench", sample_process(std::process::id()));
        Snapshot {
            samples,
            machine: sample_machine(),
        }
    }

    /// Returns a gRPC client of the control plane, sending [`API_TOKEN`].
    pub(crate) async fn control(&self) -> anyhow::Result<ControlClient> {
        let channel = self.channel().await?;
        Ok(SubscriptionServiceClient::with_interceptor(
            channel,
            BearerToken::new()?,
        ))
    }

    /// Returns a Deliveries API client of the control plane, sending [`API_TOKEN`].
    async fn deliveries(&self) -> anyhow::Result<DeliveryClient> {
        let channel = self.channel().await?;
        Ok(DeliveryServiceClient::with_interceptor(
            channel,
            BearerToken::new()?,
        ))
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        let channel = Channel::from_shared(self.control_url.clone())?
            .connect()
            .await?;
        Ok(channel)
    }

    /// Returns how many attempts of a subscription were counted as failed (outcome retry).
    pub(crate) async fn failed_attempts(&self, subscription_id: &str) -> anyhow::Result<usize> {
        let mut deliveries = self.deliveries().await?;
        let mut failed = 0;
        let mut page_token = String::new();
        loop {
            let page = deliveries
                .list_attempts(pb::ListAttemptsRequest {
                    subscription_id: subscription_id.to_owned(),
                    outcome: pb::AttemptOutcome::Retry.into(),
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            failed += page.attempts.len();
            if page.next_page_token.is_empty() {
                return Ok(failed);
            }
            page_token = page.next_page_token;
        }
    }

    /// Stops the roles (SIGTERM, then kill) and the nats-server.
    pub(crate) async fn stop(mut self) {
        for role in self.roles.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &role.pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(10), role.child.wait())
                .await
                .is_err()
            {
                let _ = role.child.kill().await;
            }
        }
        if let Some(nats) = self.nats.take() {
            nats.stop(Duration::from_secs(10)).await;
        }
    }
}

/// How a benchmark subscription retries and schedules its deliveries.
#[derive(Clone, Default)]
pub(crate) struct SubscriptionOptions {
    /// The one retry delay, repeated; unset gives the short schedule W5 needs (100 ms, then
    /// 200 ms).
    pub(crate) retry_delay: Option<Duration>,
    /// Ordering and rate limit; unset gives Herald's default delivery settings.
    pub(crate) delivery: Option<pb::DeliverySettings>,
}

/// Creates a subscription to `event_type` delivering to `sink`, with the short retry schedule
/// and the default delivery settings; returns its id.
pub(crate) async fn subscribe(
    control: &mut ControlClient,
    sink: &str,
    event_type: &str,
    secret: &str,
) -> anyhow::Result<String> {
    subscribe_with(
        control,
        sink,
        event_type,
        secret,
        &SubscriptionOptions::default(),
    )
    .await
}

/// Creates a subscription to `event_type` delivering to `sink`; returns its id.
pub(crate) async fn subscribe_with(
    control: &mut ControlClient,
    sink: &str,
    event_type: &str,
    secret: &str,
    options: &SubscriptionOptions,
) -> anyhow::Result<String> {
    let filter = pb::Filter {
        dialect: Some(pb::filter::Dialect::Exact(pb::AttributeFilter {
            attributes: [("type".to_owned(), event_type.to_owned())].into(),
        })),
    };
    let request = pb::CreateSubscriptionRequest {
        sink: sink.to_owned(),
        filters: vec![filter],
        secret: secret.to_owned(),
        description: "herald-bench".to_owned(),
        retry_policy: Some(pb::RetryPolicy {
            backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
                delays: retry_delays(options.retry_delay),
            })),
            jitter_percent: Some(0),
            max_attempts: 50,
            max_age: None,
            terminal_status_codes: Vec::new(),
        }),
        delivery: options.delivery,
        consent: pb::ConsentMode::Off as i32,
        // Fields added later (custom headers, client certificate, ...) stay unset.
        ..Default::default()
    };
    let created = control.create_subscription(request).await?.into_inner();
    Ok(created.id)
}

/// Returns the fixed backoff: `delay` alone, or by default a short schedule, so W5's retries
/// finish within the run.
fn retry_delays(delay: Option<Duration>) -> Vec<prost_types::Duration> {
    let Some(delay) = delay else {
        return vec![
            prost_types::Duration {
                seconds: 0,
                nanos: 100_000_000,
            },
            prost_types::Duration {
                seconds: 0,
                nanos: 200_000_000,
            },
        ];
    };
    vec![prost_types::Duration {
        seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(delay.subsec_nanos()).unwrap_or_default(),
    }]
}

/// Deletes a subscription.
pub(crate) async fn unsubscribe(control: &mut ControlClient, id: &str) -> anyhow::Result<()> {
    let request = pb::DeleteSubscriptionRequest {
        id: id.to_owned(),
        expected_revision: 0,
    };
    control.delete_subscription(request).await?;
    Ok(())
}

/// The generated Herald configuration: delivery to loopback allowed, quiet logs (the API tokens
/// come as `HERALD_*__AUTH__API_TOKENS`, see [`API_TOKEN`]). Subscriptions carry a short retry
/// policy for the retries workload.
const CONFIG: &str = r#"# Generated by herald-bench.
[network]
allow_loopback = true

[dispatcher]

[shutdown]
# Nothing balances load onto the bench's ingest: stop at once.
pre_stop_delay = "0s"

[log]
filter = "warn"
"#;

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// nats-server names its ports file `<executable>_<pid>.ports`.
fn nats_pid(ports_dir: &Path) -> anyhow::Result<u32> {
    let entries: Vec<PathBuf> = std::fs::read_dir(ports_dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    entries
        .iter()
        .find_map(|path| {
            let stem = path.file_stem()?.to_str()?;
            stem.rsplit('_').next()?.parse().ok()
        })
        .context("the nats-server ports file should name its pid")
}

async fn wait_ready(url: &str, name: &str) -> anyhow::Result<()> {
    let client = crate::load::client(1)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("herald {name} did not become ready at {url} within 60 s")
}
