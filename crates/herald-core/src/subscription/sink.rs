//! Where a subscription delivers ([`Sink`], an `http` or `https` URL) and what may be kept of
//! it where the URL must not be: its scheme and host ([`Sink::scheme_and_host`], what logs and
//! records show) and its SHA-256 ([`SinkDigest`], what a consent answer records and what the
//! consent callback compares without opening a sealed document). Customers put tokens in sink
//! paths and queries, so neither form holds them; [`Sink`]'s `Debug` shows the host only.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{MAX_SINK_LEN, SubscriptionError};
use crate::network::{self, NetworkPolicy};

/// Where deliveries go: an absolute `http` or `https` URL.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sink(url::Url);

/// The SHA-256 of a sink's URL, 64 lowercase hex digits: enough to tell whether something is
/// about a given sink, without the URL and without a key. Compared in constant time.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SinkDigest(String);

impl Sink {
    /// Parses a sink URL, refusing what can never be delivered to.
    pub fn parse(text: &str) -> Result<Sink, SubscriptionError> {
        let error = |reason: &str| SubscriptionError::new("sink", reason);
        if text.is_empty() {
            return Err(error("must not be empty"));
        }
        if text.len() > MAX_SINK_LEN {
            return Err(error("must be at most 2048 bytes"));
        }
        let url = url::Url::parse(text).map_err(|err| error(&format!("not a valid URL: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(error("scheme must be http or https"));
        }
        if url.host().is_none() {
            return Err(error("must name a host"));
        }
        if url.fragment().is_some() {
            return Err(error("must not have a fragment"));
        }
        Ok(Sink(url))
    }

    /// Checks a sink against the network policy when its host is an IP literal; names are
    /// checked when they are resolved, at every delivery.
    pub fn check_policy(&self, policy: &NetworkPolicy) -> Result<(), SubscriptionError> {
        let ip: Option<IpAddr> = match self.0.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(range) = ip.and_then(|ip| policy.denied_range(ip)) {
            return Err(SubscriptionError::new(
                "sink",
                format!("{range} addresses are not allowed as delivery targets"),
            ));
        }
        if self.0.host_str() == Some("localhost") && !policy.allows(network::Range::Loopback) {
            return Err(SubscriptionError::new(
                "sink",
                "loopback addresses are not allowed as delivery targets",
            ));
        }
        Ok(())
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Returns the host (and port), safe to log: the path and query may carry tokens.
    pub fn authority(&self) -> String {
        match (self.0.host_str(), self.0.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        }
    }

    /// Returns `scheme://host[:port]`, safe to store in the clear and to log: the
    /// [`Sink::authority`] logs show, with the scheme.
    pub fn scheme_and_host(&self) -> String {
        format!("{}://{}", self.0.scheme(), self.authority())
    }

    /// Returns the SHA-256 of the URL.
    pub fn digest(&self) -> SinkDigest {
        SinkDigest::of_url(self.as_str())
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sink({}/…)", self.scheme_and_host())
    }
}

impl TryFrom<String> for Sink {
    type Error = SubscriptionError;
    fn try_from(text: String) -> Result<Sink, SubscriptionError> {
        Sink::parse(&text)
    }
}

impl From<Sink> for String {
    fn from(sink: Sink) -> String {
        sink.0.into()
    }
}

impl SinkDigest {
    const HEX_LEN: usize = 64;

    fn of_url(url: &str) -> SinkDigest {
        SinkDigest(crate::digest::sha256_hex(url.as_bytes()))
    }

    /// Whether this is the digest of `sink`.
    pub fn is_of(&self, sink: &Sink) -> bool {
        *self == sink.digest()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for SinkDigest {
    fn eq(&self, other: &SinkDigest) -> bool {
        super::consent::constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for SinkDigest {}

impl fmt::Debug for SinkDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SinkDigest({})", self.0)
    }
}

/// Reads a stored digest; a sink URL, the form stored before digests existed, is read as its
/// digest, so documents of before compare the same. Errors never quote the text.
impl TryFrom<String> for SinkDigest {
    type Error = SubscriptionError;
    fn try_from(text: String) -> Result<SinkDigest, SubscriptionError> {
        let is_digest = text.len() == SinkDigest::HEX_LEN
            && text
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        if is_digest {
            return Ok(SinkDigest(text));
        }
        let sink = Sink::parse(&text).map_err(|_| {
            SubscriptionError::new("sink_digest", "is neither a SHA-256 in hex nor a sink URL")
        })?;
        Ok(sink.digest())
    }
}

impl From<SinkDigest> for String {
    fn from(digest: SinkDigest) -> String {
        digest.0
    }
}

#[cfg(test)]
mod tests;
