//! `TestProxy`: a small real HTTP proxy on loopback, the kind companies put in front of
//! webhooks: `CONNECT host:port` is answered `200` and tunnelled byte for byte (TLS stays end to
//! end between client and endpoint), an absolute-form request (`POST http://host:port/path`) is
//! forwarded in origin form with `Connection: close`. Every request is recorded before it is
//! acted on, so a test can prove what the proxy was, or was never, asked for.
//!
//! Names are resolved from the proxy's own table when it has one (`TestProxy::resolving`), so
//! a test decides what the proxy's DNS says, and by the system resolver otherwise. A proxy
//! started with `TestProxy::requiring` answers `407` to every request without the expected
//! `Proxy-Authorization`.
//!
//! One request per client connection: enough for a client that opens a new connection after
//! `Connection: close`, as reqwest does.
//!
//! `TestProxy::tls` serves the proxy itself over TLS (an `https://` proxy URL), with a
//! certificate for 127.0.0.1 from a [`crate::TestCa`]: what the client says to the proxy is
//! then encrypted too, and a tunnelled `https://` request is TLS inside TLS.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Longest request head the proxy reads.
const MAX_HEAD: usize = 64 * 1024;

/// One request the proxy was asked to carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// `CONNECT` for a tunnel, the request's method otherwise.
    pub method: String,
    /// The request target: `host:port` for `CONNECT`, the absolute URL otherwise.
    pub target: String,
    /// The `Proxy-Authorization` header, if the client sent one.
    pub authorization: Option<String>,
}

/// An HTTP proxy on 127.0.0.1 that records what it is asked for; stops when dropped.
pub struct TestProxy {
    port: u16,
    /// Whether the proxy speaks TLS to its clients.
    tls: bool,
    requests: Arc<Mutex<Vec<ProxiedRequest>>>,
    accepting: tokio::task::JoinHandle<()>,
}

/// What the proxy shares between its connections.
struct Shared {
    requests: Arc<Mutex<Vec<ProxiedRequest>>>,
    /// Names the proxy resolves itself, lowercase.
    hosts: HashMap<String, IpAddr>,
    /// The `Proxy-Authorization` every request must carry, if any.
    required: Option<String>,
}

impl TestProxy {
    /// Starts a proxy on a free loopback port that resolves names with the system resolver.
    pub async fn start() -> TestProxy {
        TestProxy::resolving(&[]).await
    }

    /// Starts a proxy that resolves each of `hosts` (name, address) to its address, other names
    /// with the system resolver.
    pub async fn resolving(hosts: &[(&str, &str)]) -> TestProxy {
        TestProxy::started(hosts, None, None).await
    }

    /// Starts a proxy that its clients reach over TLS, with a certificate of `ca` for
    /// 127.0.0.1, resolving `hosts` as [`TestProxy::resolving`] does; [`TestProxy::url`] is
    /// then `https://`.
    pub async fn tls(ca: &crate::TestCa, hosts: &[(&str, &str)]) -> TestProxy {
        let config = ca.server_config("test-proxy", None);
        TestProxy::started(hosts, None, Some(TlsAcceptor::from(config))).await
    }

    /// Starts a proxy that answers `407 Proxy Authentication Required` to every request whose
    /// `Proxy-Authorization` is not `authorization` (still recording it).
    pub async fn requiring(authorization: &str) -> TestProxy {
        TestProxy::started(&[], Some(authorization.to_owned()), None).await
    }

    async fn started(
        hosts: &[(&str, &str)],
        required: Option<String>,
        tls: Option<TlsAcceptor>,
    ) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            requests: Arc::clone(&requests),
            hosts: hosts
                .iter()
                .map(|(name, ip)| (name.to_ascii_lowercase(), ip.parse().unwrap()))
                .collect(),
            required,
        });
        let serves_tls = tls.is_some();
        let accepting = tokio::spawn(accept(listener, shared, tls));
        TestProxy {
            port,
            tls: serves_tls,
            requests,
            accepting,
        }
    }

    /// The proxy's URL, `http://127.0.0.1:<port>` (`https://` for [`TestProxy::tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request the proxy was asked to carry, in order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The targets of every request, in order.
    pub fn targets(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .map(|request| request.target)
            .collect()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    while let Ok((stream, _)) = listener.accept().await {
        let shared = Arc::clone(&shared);
        match &tls {
            None => {
                tokio::spawn(serve(stream, shared));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(stream, shared).await;
                    }
                });
            }
        }
    }
}

/// Carries one request: records it, then tunnels or forwards it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut client: S, shared: Arc<Shared>) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let Some(request) = parse_head(&head) else {
        let _ = client
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    shared.requests.lock().unwrap().push(request.clone());
    if let Some(required) = &shared.required
        && request.authorization.as_deref() != Some(required.as_str())
    {
        let refusal = "HTTP/1.1 407 Proxy Authentication Required\r\n\
                       Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n";
        let _ = client.write_all(refusal.as_bytes()).await;
        return;
    }
    if request.method == "CONNECT" {
        tunnel(client, &shared, &request.target, rest).await;
    } else {
        forward(client, &shared, &head, &request.target, rest).await;
    }
}

/// Connects to `host:port`, the host looked up in the proxy's table first.
async fn connect(shared: &Shared, authority: &str) -> Option<TcpStream> {
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match shared.hosts.get(&host.to_ascii_lowercase()) {
        Some(ip) => TcpStream::connect(SocketAddr::new(*ip, port)).await.ok(),
        None => TcpStream::connect((host, port)).await.ok(),
    }
}

/// Connects to `authority`, answers `200`, then copies bytes both ways until either side ends.
async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    shared: &Shared,
    authority: &str,
    rest: Vec<u8>,
) {
    let Some(mut upstream) = connect(shared, authority).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    let established = b"HTTP/1.1 200 Connection Established\r\n\r\n";
    if client.write_all(established).await.is_err() {
        return;
    }
    if !rest.is_empty() && upstream.write_all(&rest).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Sends the request to its target in origin form, without the proxy's own headers and with
/// `Connection: close`, then copies the rest of the exchange both ways.
async fn forward<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    shared: &Shared,
    head: &str,
    target: &str,
    rest: Vec<u8>,
) {
    let Some((authority, path)) = split_absolute(target) else {
        let _ = client
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    let Some(mut upstream) = connect(shared, &authority).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let method = request_line.split(' ').next().unwrap_or_default();
    let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
    for line in lines.filter(|line| !line.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "proxy-authorization" | "proxy-connection" | "connection" | "keep-alive"
        ) {
            continue;
        }
        forwarded.push_str(line);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    if upstream.write_all(forwarded.as_bytes()).await.is_err() {
        return;
    }
    if !rest.is_empty() && upstream.write_all(&rest).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Reads up to the end of the request head; returns the head (without the blank line) and the
/// bytes read after it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8(buffer[..end].to_vec()).ok()?;
            return Some((head, buffer[end + 4..].to_vec()));
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0_u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
}

fn parse_head(head: &str) -> Option<ProxiedRequest> {
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let authorization = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    Some(ProxiedRequest {
        method,
        target,
        authorization,
    })
}

/// Splits `http://host:port/path?query` into `host:port` (port 80 when absent) and
/// `/path?query`.
fn split_absolute(target: &str) -> Option<(String, String)> {
    let rest = target.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Some((authority, path.to_owned()))
}
