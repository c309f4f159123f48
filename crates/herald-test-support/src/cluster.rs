//! A nats-server cluster private to one test: JetStream on every node, routes on loopback,
//! each node's store in its own temporary directory.
//!
//! Nodes are addressed by index (`0..size`) and named `n0`, `n1`, ... in the cluster. The
//! cluster is observed through each node's HTTP monitoring endpoint (`/jsz`), so the test kit
//! needs no NATS client of its own.

use std::net::TcpListener;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use herald_runtime::nats_server::{self, ClusterOptions, ServerOptions};

use crate::eventually;

/// How long a cluster may take to elect a JetStream meta leader (nominal, scaled by
/// [`crate::patience`]).
const LEADER_TIMEOUT: Duration = Duration::from_secs(45);

/// A cluster of nats-servers with JetStream, private to one test. Killed when dropped.
pub struct NatsCluster {
    nodes: Vec<Node>,
}

struct Node {
    server: Option<nats_server::NatsServer>,
    options: ServerOptions,
    cluster: ClusterOptions,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes on free loopback ports, fully routed, and waits until every node
    /// agrees on a JetStream meta leader, so streams of `size` replicas can be created at once.
    pub async fn start(size: usize) -> NatsCluster {
        assert!(size > 0, "a cluster needs at least one node");
        // Route ports are picked free before any node starts (every node's routes name them
        // all), so another process may take one meanwhile: the node that cannot bind it exits,
        // and the cluster starts again on new ports.
        let mut attempts = 0;
        let nodes = loop {
            attempts += 1;
            match NatsCluster::start_nodes(size).await {
                Ok(nodes) => break nodes,
                // Its log says why; the next try picks other ports.
                Err(nats_server::Error::Exited { .. }) if attempts < 3 => {}
                Err(err) => panic!("nats-server should start: {err}"),
            }
        };
        let cluster = NatsCluster { nodes };
        cluster.wait_for_meta_leader().await;
        cluster
    }

    /// Starts every node on new ports; a node that fails stops them all (dropped, killed).
    async fn start_nodes(size: usize) -> Result<Vec<Node>, nats_server::Error> {
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut starting = JoinSet::new();
        for index in 0..size {
            let dir = tempfile::tempdir().expect("creating a temporary directory should work");
            let options = ServerOptions {
                host: "127.0.0.1".to_owned(),
                port: 0,
                data_dir: dir.path().to_path_buf(),
                config_file: None,
            };
            let cluster = ClusterOptions {
                server_name: server_name(index),
                cluster_name: "herald-test".to_owned(),
                cluster_port: cluster_ports[index],
                routes: cluster_ports
                    .iter()
                    .enumerate()
                    .filter(|(peer, _)| *peer != index)
                    .map(|(_, port)| format!("nats://127.0.0.1:{port}"))
                    .collect(),
                monitor_port: 0,
            };
            // Started together: a node alone waits for its peers, one after the other would
            // only add up their start-up times.
            starting.spawn(async move {
                let started = nats_server::NatsServer::start_in_cluster(&options, &cluster).await;
                started.map(|server| (index, server, options, cluster, dir))
            });
        }
        let mut nodes: Vec<Option<Node>> = (0..size).map(|_| None).collect();
        while let Some(started) = starting.join_next().await {
            let (index, server, options, cluster, dir) =
                started.expect("starting a nats-server should not panic")?;
            // Restarts reuse the client and monitoring ports, so clients reconnect to the same
            // URLs.
            let options = ServerOptions {
                port: server.port(),
                ..options
            };
            let cluster = ClusterOptions {
                monitor_port: server.monitor_url().and_then(port_of).unwrap_or(0),
                ..cluster
            };
            nodes[index] = Some(Node {
                server: Some(server),
                options,
                cluster,
                _dir: dir,
            });
        }
        Ok(nodes.into_iter().flatten().collect())
    }

    /// Returns the number of nodes, running or not.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Returns the client URLs of every node, comma separated: a seed list for `nats.url`.
    pub fn urls(&self) -> String {
        (0..self.size())
            .map(|index| self.url(index))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Returns the client URL of node `index`.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].options.port)
    }

    /// Returns the name of node `index` in the cluster (`n<index>`), as `/jsz` reports it.
    pub fn server_name(&self, index: usize) -> &str {
        &self.nodes[index].cluster.server_name
    }

    /// Returns the log file of node `index`.
    pub fn log_file(&self, index: usize) -> std::path::PathBuf {
        self.nodes[index].options.data_dir.join("nats-server.log")
    }

    /// Herald's test settings ([`crate::nats_config`]) for this cluster: every node as a seed,
    /// and every stream and bucket replicated on every node.
    pub fn nats_config(&self) -> herald_nats::Config {
        let mut config = crate::nats_config(&self.urls());
        config.events.replicas = self.size();
        config
    }

    /// Kills node `index` at once (SIGKILL), keeping its store for [`NatsCluster::restart`].
    pub async fn kill(&mut self, index: usize) {
        if let Some(server) = self.nodes[index].server.take() {
            server.kill().await;
        }
    }

    /// Starts node `index` again on the same ports and store. It rejoins the cluster and
    /// catches up on its own; [`NatsCluster::wait_for_meta_leader`] waits until it has.
    pub async fn restart(&mut self, index: usize) {
        self.kill(index).await;
        let node = &mut self.nodes[index];
        let server = nats_server::NatsServer::start_in_cluster(&node.options, &node.cluster)
            .await
            .unwrap_or_else(|err| panic!("nats-server {index} should restart: {err}"));
        node.server = Some(server);
    }

    /// Returns the JetStream meta leader, when every running node names the same running
    /// node as leader.
    pub async fn meta_leader(&self) -> Option<usize> {
        let mut agreed = None;
        for jsz in self.running_jsz("/jsz").await? {
            let leader = self.index_of(jsz["meta_cluster"]["leader"].as_str()?)?;
            if agreed.is_some_and(|agreed| agreed != leader) {
                return None;
            }
            agreed = Some(leader);
        }
        agreed.filter(|leader| self.nodes[*leader].server.is_some())
    }

    /// Waits until every running node agrees on a running JetStream meta leader and returns
    /// it. After a restart this also means the restarted node has rejoined.
    pub async fn wait_for_meta_leader(&self) -> usize {
        eventually("a JetStream meta leader", LEADER_TIMEOUT, || {
            self.meta_leader()
        })
        .await
    }

    /// Returns the leader of stream `stream`, as the first running node that knows it says.
    pub async fn stream_leader(&self, stream: &str) -> Option<usize> {
        let cluster = self.stream_cluster(stream).await?;
        self.index_of(cluster["leader"].as_str()?)
    }

    /// Returns how many nodes hold stream `stream` (a KV bucket `b` is stream `KV_b`).
    pub async fn stream_replicas(&self, stream: &str) -> Option<usize> {
        let cluster = self.stream_cluster(stream).await?;
        // The reporting node lists its peers, not itself.
        Some(1 + cluster["replicas"].as_array().map_or(0, Vec::len))
    }

    /// Returns the `cluster` object `/jsz` reports for stream `stream` on a node that has a
    /// leader for it.
    async fn stream_cluster(&self, stream: &str) -> Option<serde_json::Value> {
        let reports = self.running_jsz("/jsz?streams=true").await?;
        reports.into_iter().find_map(|jsz| {
            jsz["account_details"]
                .as_array()?
                .iter()
                .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
                .find(|detail| detail["name"] == stream && detail["cluster"]["leader"].is_string())
                .map(|detail| detail["cluster"].clone())
        })
    }

    /// Returns `path` of every running node's monitoring endpoint, or `None` when one does not
    /// answer.
    async fn running_jsz(&self, path: &str) -> Option<Vec<serde_json::Value>> {
        let mut reports = Vec::new();
        for node in &self.nodes {
            let Some(server) = &node.server else {
                continue;
            };
            reports.push(get_json(server.monitor_url()?, path).await?);
        }
        Some(reports)
    }

    fn index_of(&self, server_name: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|node| node.cluster.server_name == server_name)
    }
}

fn server_name(index: usize) -> String {
    format!("n{index}")
}

/// A free loopback port (bound then released: a small race tests can live with).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding a loopback port should work")
        .port()
}

fn port_of(url: &str) -> Option<u16> {
    url.rsplit(':').next()?.parse().ok()
}

/// GETs `path` from `base` (`http://host:port`) and parses the body as JSON. Plain HTTP/1.0
/// over a TCP stream: the monitoring endpoint needs no more, and the kit no HTTP client.
async fn get_json(base: &str, path: &str) -> Option<serde_json::Value> {
    let authority = base.strip_prefix("http://")?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()??;
    let text = String::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}
