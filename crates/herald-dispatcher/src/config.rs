//! Dispatcher configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use self::egress_proxy::EgressProxy;
pub(crate) use self::egress_proxy::ProxyEndpoint;

mod egress_proxy;

/// Settings of the dispatcher role; defaults live in the server's `herald.default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Deadline of one delivery attempt, from connecting to the end of the response.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Deadline for establishing the connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Idle keep-alive connections to endpoints are closed after this long: shorter than
    /// common servers' keep-alive timeouts (Node's is 5 s), so requests do not go out on
    /// connections the server is closing. Zero keeps no idle connections.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// At most this much of a response body is read.
    pub max_response_body_bytes: usize,
    /// A subscription whose endpoint has failed continuously for this long is disabled.
    #[serde(with = "humantime_serde")]
    pub disable_after: Duration,
    /// Deliveries in flight per subscription.
    pub max_in_flight_per_subscription: usize,
    /// Requests in flight to one endpoint host (scheme, host and port) at most, across all
    /// subscriptions: the connections the dispatcher opens to one host. A subscription's own
    /// `max_in_flight` is reached only while the host has room.
    pub max_in_flight_per_host: usize,
    /// How long in-flight attempts may run after shutdown begins.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace_period: Duration,
    /// A replica's membership lasts this long after its last rewrite (every `lease_ttl / 3`):
    /// a dead replica's subscriptions move after at most about `lease_ttl + lease_ttl / 3`.
    /// Every replica must use the same value.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// A subscription with nothing to do for this long parks: it drops its pull and is woken
    /// by the next event stored for it (`parking.rs`). Zero never parks.
    #[serde(with = "humantime_serde")]
    pub park_after: Duration,
    /// A parked subscription looks at its consumer this often whatever it was told: the last
    /// resort should a wake-up be lost without trace.
    #[serde(with = "humantime_serde")]
    pub parked_recheck: Duration,
    /// An HTTP or HTTPS proxy every delivery, test send and consent handshake goes through,
    /// `http://[user:password@]host[:port]`; absent or empty sends directly. The user and
    /// password are a secret, never shown.
    #[serde(default)]
    pub egress_proxy: Option<EgressProxy>,
    /// A PEM file of certificate authorities endpoints' certificates may also be signed by
    /// (an internal CA), trusted beside the platform's roots for deliveries, test sends and
    /// consent handshakes. Absent or empty trusts the platform's roots only.
    #[serde(default)]
    pub endpoint_ca_file: Option<PathBuf>,
}

impl Config {
    /// Returns the consumer's ack wait: longer than an attempt can take, counting the time a
    /// pulled message may wait for a free slot (one more attempt), so JetStream never
    /// redelivers an event whose attempt is still running.
    pub fn ack_wait(&self) -> Duration {
        self.request_timeout * 2 + self.connect_timeout + Duration::from_secs(5)
    }

    /// Returns every problem with the configuration, empty when it is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.request_timeout.is_zero() {
            problems.push("dispatcher.request_timeout must be positive".to_owned());
        }
        if self.max_in_flight_per_subscription == 0 {
            problems.push("dispatcher.max_in_flight_per_subscription must be positive".to_owned());
        }
        if self.max_in_flight_per_host == 0 {
            problems.push("dispatcher.max_in_flight_per_host must be positive".to_owned());
        }
        if self.disable_after.is_zero() {
            problems.push("dispatcher.disable_after must be positive".to_owned());
        }
        if self.parked_recheck.is_zero() {
            problems.push("dispatcher.parked_recheck must be positive".to_owned());
        }
        if self.lease_ttl < herald_nats::MIN_LEASE_TTL {
            problems.push(format!(
                "dispatcher.lease_ttl must be at least {}",
                humantime_serde::re::humantime::format_duration(herald_nats::MIN_LEASE_TTL)
            ));
        }
        if let Some(proxy) = &self.egress_proxy
            && let Err(problem) = proxy.endpoint()
        {
            problems.push(problem);
        }
        if let Err(problem) = self.endpoint_roots() {
            problems.push(problem);
        }
        problems
    }

    /// Returns the certificate authorities of `endpoint_ca_file`, empty when it is not set;
    /// `Err` names the setting and the file for one that cannot be read or holds no PEM
    /// certificate.
    pub(crate) fn endpoint_roots(&self) -> Result<Vec<reqwest::Certificate>, String> {
        let Some(path) = self
            .endpoint_ca_file
            .as_deref()
            .filter(|path| !path.as_os_str().is_empty())
        else {
            return Ok(Vec::new());
        };
        read_roots(path)
    }

    /// Returns the egress proxy deliveries go through, `None` to send directly; `Err` for a
    /// setting [`Config::problems`] refuses.
    pub(crate) fn egress_proxy(&self) -> Result<Option<ProxyEndpoint>, String> {
        match &self.egress_proxy {
            Some(proxy) => proxy.endpoint(),
            None => Ok(None),
        }
    }
}

/// Reads the PEM certificates of `path`, at least one.
fn read_roots(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|err| {
        format!(
            "dispatcher.endpoint_ca_file: cannot read {} ({err})",
            path.display()
        )
    })?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
        format!(
            "dispatcher.endpoint_ca_file: {} is not a PEM certificate bundle",
            path.display()
        )
    })?;
    if roots.is_empty() {
        return Err(format!(
            "dispatcher.endpoint_ca_file: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(roots)
}
