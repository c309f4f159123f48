//! The SSRF guard proven on a corpus: every spelling of a forbidden host, names a test lookup
//! table resolves to forbidden addresses, DNS rebinding and redirects, each sent through the
//! real delivery client while canary listeners on the loopback forms count connections.
//!
//! Nothing here leaves loopback: names are resolved by a fixed table (unknown names fail
//! without a lookup), and addresses outside loopback are refused before any connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use herald_core::network::{Network, NetworkPolicy};

use super::super::resolver::{Lookup, Lookups};
use super::*;

/// Names resolved from a fixed table, which tests may change; records every name asked for.
#[derive(Default)]
pub(super) struct TableLookups {
    table: Mutex<HashMap<String, Vec<IpAddr>>>,
    asked: Mutex<Vec<String>>,
}

impl TableLookups {
    pub(super) fn with(entries: &[(&str, &[&str])]) -> Arc<TableLookups> {
        let lookups = Arc::new(TableLookups::default());
        for (name, addresses) in entries {
            lookups.set(name, addresses);
        }
        lookups
    }

    fn set(&self, name: &str, addresses: &[&str]) {
        let addresses = addresses.iter().map(|text| text.parse().unwrap()).collect();
        self.table
            .lock()
            .unwrap()
            .insert(name.to_owned(), addresses);
    }

    pub(super) fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Lookups for TableLookups {
    fn lookup(&self, host: &str) -> Lookup {
        self.asked.lock().unwrap().push(host.to_owned());
        let found = self.table.lock().unwrap().get(host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not in table"))
        })
    }
}

/// A listener that counts connections and answers each request with a fixed response.
struct Canary {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Canary {
    async fn start(ip: &str) -> Canary {
        Canary::answering(ip, "HTTP/1.1 204 No Content\r\n\r\n".to_owned()).await
    }

    async fn answering(ip: &str, response: String) -> Canary {
        let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
            .await
            .unwrap_or_else(|err| panic!("a canary should listen on {ip}: {err}"));
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let response = response.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    while read_request(&mut stream, &mut buffer).await.is_some() {
                        buffer.clear();
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Canary {
            address,
            connections,
        }
    }

    fn port(&self) -> u16 {
        self.address.port()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Every spelling of 127.0.0.1 (and `::1`) a sink URL may carry, `{port}` to be replaced.
const LOOPBACK_SPELLINGS: &[&str] = &[
    "http://127.0.0.1:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://0177.0.0.1:{port}/hook",
    "http://017700000001:{port}/hook",
    "http://0x7f.0.0.1:{port}/hook",
    "http://0x7f000001:{port}/hook",
    "http://127.1:{port}/hook",
    "http://127.0.1:{port}/hook",
    "http://0x7f.1:{port}/hook",
    "http://0177.0x0.1:{port}/hook",
    "http://127.0.0.1.:{port}/hook",
    "http://%31%32%37.0.0.1:{port}/hook",
    "http://\u{ff11}\u{ff12}\u{ff17}\u{ff0e}\u{ff11}:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://[::ffff:7f00:1]:{port}/hook",
    "http://[::127.0.0.1]:{port}/hook",
    "http://[::ffff:0:127.0.0.1]:{port}/hook",
    "http://[64:ff9b::127.0.0.1]:{port}/hook",
    "http://[2002:7f00:1::]:{port}/hook",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}/hook",
    "http://localhost:{port}/hook",
    "http://LocalHost.:{port}/hook",
    "http://api.localhost:{port}/hook",
];

fn spelled(template: &str, port: u16) -> String {
    template.replace("{port}", &port.to_string())
}

fn assert_denied(report: &AttemptReport, target: &str) {
    assert_eq!(
        failure_class(report),
        Some(FailureClass::DeniedAddress),
        "{target}: {:?}",
        report.error
    );
}

#[tokio::test]
async fn every_spelling_of_loopback_is_refused_without_connecting() {
    let canary = Canary::start("127.0.0.1").await;
    let canary_v6 = Canary::start("::1").await;
    let lookups = TableLookups::with(&[]);
    let client = DeliveryClient::with_lookups(
        &config(),
        NetworkPolicy::public_only(),
        Arc::clone(&lookups) as Arc<dyn Lookups>,
    )
    .unwrap();
    let mut targets: Vec<String> = LOOPBACK_SPELLINGS
        .iter()
        .map(|template| spelled(template, canary.port()))
        .collect();
    targets.push(format!("http://[::1]:{}/hook", canary_v6.port()));
    targets.push(format!(
        "http://[0:0:0:0:0:0:0:1]:{}/hook",
        canary_v6.port()
    ));
    for target in &targets {
        assert_denied(&send(&client, target).await, target);
    }
    assert_eq!(canary.connections(), 0);
    assert_eq!(canary_v6.connections(), 0);
    // `localhost` and its kin are refused by name: nothing was looked up.
    assert_eq!(lookups.asked(), Vec::<String>::new());
}

#[tokio::test]
async fn the_canaries_would_see_the_spellings_that_reach_loopback() {
    // The positive control: with loopback allowed, the IPv4 spellings and the IPv4-mapped
    // form do reach the canary, so its zero above means refused, not unreachable.
    let canary = Canary::start("127.0.0.1").await;
    let mut config = config();
    config.pool_idle_timeout = Duration::ZERO;
    let client = DeliveryClient::with_lookups(
        &config,
        NetworkPolicy::new(true, false),
        TableLookups::with(&[("localhost", &["127.0.0.1"])]),
    )
    .unwrap();
    let reaching = &LOOPBACK_SPELLINGS[..15];
    for template in reaching {
        let target = spelled(template, canary.port());
        let report = send(&client, &target).await;
        assert_eq!(status(&report), Some(204), "{target}: {:?}", report.error);
    }
    assert_eq!(canary.connections(), reaching.len());
}

#[tokio::test]
async fn literal_addresses_outside_loopback_are_refused_before_any_connection() {
    // A connection attempt to any of these would leave loopback; each is refused first.
    let client = DeliveryClient::with_lookups(
        &config(),
        NetworkPolicy::new(true, true),
        TableLookups::with(&[]),
    )
    .unwrap();
    for target in [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        "http://169.254.43518/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://100.100.100.200/latest/meta-data/",
        "http://192.0.0.192/opc/v2/instance/",
        "http://169.254.1.1/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://0/",
        "http://[::]/",
        "http://224.0.0.1/",
        "http://[ff02::1]/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://198.18.0.1/",
        "http://[2001:2::1]/",
        "http://192.0.2.1/",
        "http://[2001:db8::1]/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        assert_denied(&send(&client, target).await, target);
    }
    // Private and shared ranges, under the production policy.
    let client = DeliveryClient::with_lookups(
        &config(),
        NetworkPolicy::public_only(),
        TableLookups::with(&[]),
    )
    .unwrap();
    for target in [
        "http://10.0.0.1/",
        "http://167772161/",
        "http://012.1/",
        "http://172.16.0.1/",
        "http://192.168.1/",
        "http://100.64.0.1/",
        "http://[fd12:3456::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[2002:a00:1::]/",
        "http://[64:ff9b:1::a00:1]/",
    ] {
        assert_denied(&send(&client, target).await, target);
    }
}

#[tokio::test]
async fn names_that_resolve_to_forbidden_addresses_are_refused_at_connect() {
    let canary = Canary::start("127.0.0.1").await;
    let canary_v6 = Canary::start("::1").await;
    let lookups = TableLookups::with(&[
        ("loopback.test", &["127.0.0.1"]),
        ("loopback6.test", &["::1"]),
        ("mapped.test", &["::ffff:127.0.0.1"]),
        ("nat64.test", &["64:ff9b::7f00:1"]),
        ("metadata.test", &["169.254.169.254"]),
        ("metadata6.test", &["fd00:ec2::254"]),
        ("private.test", &["10.0.0.1", "192.168.1.1", "fd00::1"]),
        ("cgnat.test", &["100.64.0.1"]),
        ("unspecified.test", &["0.0.0.0", "::"]),
        ("multicast.test", &["224.0.0.1"]),
        ("metadata.google.internal", &["169.254.169.254"]),
    ]);
    let client = DeliveryClient::with_lookups(
        &config(),
        NetworkPolicy::public_only(),
        Arc::clone(&lookups) as Arc<dyn Lookups>,
    )
    .unwrap();
    for name in [
        "loopback.test",
        "mapped.test",
        "nat64.test",
        "metadata.test",
        "metadata6.test",
        "private.test",
        "cgnat.test",
        "unspecified.test",
        "multicast.test",
    ] {
        let target = format!("http://{name}:{}/hook", canary.port());
        let report = send(&client, &target).await;
        assert_denied(&report, &target);
        assert!(
            report
                .error
                .as_deref()
                .unwrap_or_default()
                .contains(DENIED_MARKER),
            "{target}: {:?}",
            report.error
        );
    }
    let target = format!("http://loopback6.test:{}/hook", canary_v6.port());
    assert_denied(&send(&client, &target).await, &target);
    // A cloud metadata name is refused by its spelling, before the table is consulted.
    let target = format!("http://metadata.google.internal:{}/", canary.port());
    assert_denied(&send(&client, &target).await, &target);
    assert_eq!(canary.connections(), 0);
    assert_eq!(canary_v6.connections(), 0);
    assert!(
        !lookups.asked().iter().any(|name| name.contains("google")),
        "{:?}",
        lookups.asked()
    );
}

#[tokio::test]
async fn a_name_rebound_to_a_forbidden_address_is_refused_on_the_next_connection() {
    // The operator allows 127.0.0.1 only; the name first resolves there, then to 127.0.0.2.
    let allowed = Canary::start("127.0.0.1").await;
    let forbidden =
        Canary::answering("127.0.0.2", "HTTP/1.1 204 No Content\r\n\r\n".to_owned()).await;
    let lookups = TableLookups::with(&[("rebind.test", &["127.0.0.1"])]);
    let mut config = config();
    // Every request on a new connection, so every request resolves the name again.
    config.pool_idle_timeout = Duration::ZERO;
    let policy =
        NetworkPolicy::public_only().with_allowed(vec![Network::parse("127.0.0.1").unwrap()]);
    let client =
        DeliveryClient::with_lookups(&config, policy, Arc::clone(&lookups) as Arc<dyn Lookups>)
            .unwrap();
    let first = send(&client, &format!("http://rebind.test:{}/", allowed.port())).await;
    assert_eq!(status(&first), Some(204), "{:?}", first.error);
    lookups.set("rebind.test", &["127.0.0.2"]);
    let second = send(
        &client,
        &format!("http://rebind.test:{}/", forbidden.port()),
    )
    .await;
    assert_denied(&second, "rebind.test after rebinding");
    assert_eq!(allowed.connections(), 1);
    assert_eq!(forbidden.connections(), 0);
}

#[tokio::test]
async fn the_allow_list_opens_exactly_its_networks_at_connect() {
    let allowed = Canary::start("127.0.0.1").await;
    let other = Canary::start("127.0.0.2").await;
    let other_v6 = Canary::start("::1").await;
    let policy =
        NetworkPolicy::public_only().with_allowed(vec![Network::parse("127.0.0.1/32").unwrap()]);
    let lookups = TableLookups::with(&[
        ("allowed.test", &["127.0.0.1"]),
        ("other.test", &["127.0.0.2"]),
    ]);
    let mut config = config();
    config.pool_idle_timeout = Duration::ZERO;
    let client = DeliveryClient::with_lookups(&config, policy, lookups).unwrap();
    for target in [
        format!("http://127.0.0.1:{}/", allowed.port()),
        format!("http://2130706433:{}/", allowed.port()),
        format!("http://[::ffff:127.0.0.1]:{}/", allowed.port()),
        format!("http://allowed.test:{}/", allowed.port()),
    ] {
        let report = send(&client, &target).await;
        assert_eq!(status(&report), Some(204), "{target}: {:?}", report.error);
    }
    for target in [
        format!("http://127.0.0.2:{}/", other.port()),
        format!("http://127.2:{}/", other.port()),
        format!("http://other.test:{}/", other.port()),
        format!("http://localhost:{}/", allowed.port()),
        format!("http://[::1]:{}/", other_v6.port()),
    ] {
        assert_denied(&send(&client, &target).await, &target);
    }
    assert_eq!(allowed.connections(), 4);
    assert_eq!(other.connections(), 0);
    assert_eq!(other_v6.connections(), 0);
}

#[tokio::test]
async fn redirects_are_never_followed() {
    // The canary is allowed: only the refusal to follow keeps the request from it.
    let canary = Canary::start("127.0.0.1").await;
    let lookups = TableLookups::with(&[("canary.test", &["127.0.0.1"])]);
    let client = DeliveryClient::with_lookups(
        &config(),
        NetworkPolicy::new(true, false),
        Arc::clone(&lookups) as Arc<dyn Lookups>,
    )
    .unwrap();
    let locations = [
        format!("http://127.0.0.1:{}/stolen", canary.port()),
        format!("http://canary.test:{}/stolen", canary.port()),
        format!("http://2130706433:{}/stolen", canary.port()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://metadata.google.internal/computeMetadata/v1/".to_owned(),
    ];
    for status_line in [
        "301 Moved Permanently",
        "302 Found",
        "303 See Other",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        for location in &locations {
            let response = format!(
                "HTTP/1.1 {status_line}\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n"
            );
            let redirector = Canary::answering("127.0.0.1", response).await;
            let target = format!("http://127.0.0.1:{}/hook", redirector.port());
            let report = send(&client, &target).await;
            let code: u16 = status_line[..3].parse().unwrap();
            assert_eq!(status(&report), Some(code), "{status_line} to {location}");
            assert_eq!(redirector.connections(), 1);
        }
    }
    assert_eq!(canary.connections(), 0);
    assert_eq!(lookups.asked(), Vec::<String>::new());
}
