//! The test kit of ingest: the service against a real nats-server, a raw HTTP/1.1 connection,
//! and a TCP relay that can stop passing bytes, as a network partition does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use herald_nats::Nats;

/// How long a test waits for any one answer before failing.
const ANSWER_PATIENCE: Duration = Duration::from_secs(60);

/// Deadlines of a test's ingest.
pub(crate) struct Timeouts {
    /// `ingest.request_timeout`.
    pub(crate) request: Duration,
    /// `nats.request_timeout`, the publish acknowledgement's deadline.
    pub(crate) nats: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            request: Duration::from_secs(20),
            nats: Duration::from_secs(5),
        }
    }
}

/// The ingest service on a loopback port, connected to NATS at `nats_url`; stopped on drop.
pub(crate) struct TestIngest {
    pub(crate) address: SocketAddr,
    pub(crate) nats: Nats,
    stop: CancellationToken,
}

impl TestIngest {
    pub(crate) async fn start(nats_url: &str, timeouts: Timeouts) -> TestIngest {
        let nats_config = herald_nats::Config {
            request_timeout: timeouts.nats,
            ..herald_test_support::nats_config(nats_url)
        };
        let nats = Nats::connect(&nats_config)
            .await
            .expect("nats should connect");
        let config = herald_ingest::Config {
            max_body_bytes: 64 * 1024,
            max_batch_events: 100,
            request_timeout: timeouts.request,
            auth: herald_ingest::AuthConfig {
                disabled: true,
                api_tokens: Vec::new(),
            },
        };
        let registry = prometheus::Registry::new();
        let service = herald_ingest::build(Arc::new(config), nats.publisher(), &registry)
            .expect("ingest should build");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(service.run(listener, stop.clone()));
        TestIngest {
            address,
            nats,
            stop,
        }
    }

    /// Opens a keep-alive connection to the service.
    pub(crate) async fn connect(&self) -> HttpConnection {
        HttpConnection::open(self.address).await
    }

    /// Returns how many events the events stream holds, once NATS answers.
    pub(crate) async fn events_stored(&self) -> u64 {
        herald_test_support::eventually(
            "the events stream to answer",
            Duration::from_secs(30),
            || {
                let nats = self.nats.clone();
                async move { nats.events_stored().await.ok() }
            },
        )
        .await
    }
}

impl Drop for TestIngest {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One HTTP/1.1 connection, requests written as given and answers read by `content-length`.
pub(crate) struct HttpConnection {
    stream: BufReader<TcpStream>,
}

/// An answer as read off the wire.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl HttpConnection {
    pub(crate) async fn open(address: SocketAddr) -> HttpConnection {
        let stream = TcpStream::connect(address).await.unwrap();
        HttpConnection {
            stream: BufReader::new(stream),
        }
    }

    /// Writes `request` and reads the answer; fails when the server closes the connection
    /// instead of answering.
    pub(crate) async fn send(&mut self, request: &[u8]) -> Answer {
        tokio::time::timeout(ANSWER_PATIENCE, self.exchange(request))
            .await
            .expect("the answer should arrive")
            .unwrap_or_else(|err| panic!("the server should answer on this connection: {err}"))
    }

    /// Writes `request`, then closes the sending half of the connection, as a client that
    /// stops mid-request does, and reads the answer.
    pub(crate) async fn send_then_close(&mut self, request: &[u8]) -> Answer {
        let exchange = async {
            self.stream.get_mut().write_all(request).await?;
            self.stream.get_mut().shutdown().await?;
            self.read_answer().await
        };
        tokio::time::timeout(ANSWER_PATIENCE, exchange)
            .await
            .expect("the answer should arrive")
            .unwrap_or_else(|err| panic!("the server should answer on this connection: {err}"))
    }

    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<Answer> {
        self.stream.get_mut().write_all(request).await?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> std::io::Result<Answer> {
        let mut status_line = String::new();
        if self.stream.read_line(&mut status_line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns the problem document of a refusal, asserting its media type and status.
    pub(crate) fn problem(&self) -> serde_json::Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "a refusal is a problem document: {self:?}"
        );
        let problem: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("the body should be JSON ({err}): {self:?}"));
        assert_eq!(problem["status"], self.status, "{problem}");
        problem
    }

    /// Returns the problem's `detail`.
    pub(crate) fn detail(&self) -> String {
        self.problem()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| panic!("{err}: {self:?}"))
    }
}

/// Returns an HTTP/1.1 request with `Host` and `Content-Length`, the fields in order as given.
pub(crate) fn request(method: &str, path: &str, fields: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: herald.test\r\n");
    for (name, value) in fields {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

/// Returns a structured-mode `POST /v1/events` of `event`.
pub(crate) fn post_structured(event: &str) -> Vec<u8> {
    request(
        "POST",
        "/v1/events",
        &[("content-type", "application/cloudevents+json")],
        event.as_bytes(),
    )
}

/// A TCP relay between NATS clients and a nats-server that can stop passing bytes both ways
/// while keeping the connections open: the client sees no disconnect, only silence.
pub(crate) struct Partition {
    address: SocketAddr,
    cut: watch::Sender<bool>,
    stop: CancellationToken,
}

impl Partition {
    /// Relays to the server at `upstream_url` (`nats://host:port`).
    pub(crate) async fn start(upstream_url: &str) -> Partition {
        let upstream: SocketAddr = upstream_url
            .trim_start_matches("nats://")
            .parse()
            .expect("a nats://ip:port URL");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(false);
        let stop = CancellationToken::new();
        let relay_cut = cut.clone();
        let relay_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = relay_stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let stop = relay_stop.clone();
                tokio::spawn(pump(
                    client_read,
                    server_write,
                    relay_cut.subscribe(),
                    stop.clone(),
                ));
                tokio::spawn(pump(server_read, client_write, relay_cut.subscribe(), stop));
            }
        });
        Partition { address, cut, stop }
    }

    /// Returns the URL NATS clients connect to.
    pub(crate) fn url(&self) -> String {
        format!("nats://{}", self.address)
    }

    /// Stops passing bytes; what arrives meanwhile is held.
    pub(crate) fn cut(&self) {
        self.cut.send_replace(true);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut cut: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let mut buffer = vec![0; 16 * 1024];
    let relay = async {
        loop {
            let read = from.read(&mut buffer).await?;
            if read == 0 {
                return Ok::<(), std::io::Error>(());
            }
            if cut.wait_for(|cut| !*cut).await.is_err() {
                return Ok(());
            }
            to.write_all(&buffer[..read]).await?;
        }
    };
    tokio::select! {
        () = stop.cancelled() => {}
        _ = relay => {}
    }
}
