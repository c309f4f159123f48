//! Which network addresses webhooks may be delivered to (server-side request forgery guard).
//!
//! By default Herald refuses to deliver to loopback, private, link-local (cloud metadata
//! endpoints live there), shared, documentation, multicast and unspecified addresses: a
//! subscription must not turn Herald into a proxy into its own network. Dev mode allows
//! loopback and private ranges. An IPv6 address that embeds an IPv4 address (IPv4-mapped,
//! IPv4-compatible, IPv4-translated, NAT64, 6to4, Teredo, ISATAP) is judged by the embedded
//! address too, since a host or a translator on the way may deliver it there. Cloud metadata
//! endpoints (`169.254.169.254`, `fd00:ec2::254`, `metadata.google.internal`, ...) are refused
//! whatever the policy says. An operator opens exactly the networks they need with an
//! allow-list (`network.allow`), which wins over every range but cloud metadata. Pure
//! classification; the dispatcher's resolver and control's sink validation apply it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

#[cfg(test)]
mod tests;

/// A class of special-purpose addresses (IANA special-purpose registries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Range {
    Loopback,
    Private,
    LinkLocal,
    /// Carrier-grade NAT (100.64.0.0/10) and similar shared space.
    Shared,
    Unspecified,
    Multicast,
    Broadcast,
    Documentation,
    /// Benchmarking networks, 198.18.0.0/15 and 2001:2::/48.
    Benchmark,
    Reserved,
    /// A cloud provider's instance metadata service: never allowed.
    Metadata,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Range::Loopback => "loopback",
            Range::Private => "private-network",
            Range::LinkLocal => "link-local",
            Range::Shared => "shared (CGNAT)",
            Range::Unspecified => "unspecified",
            Range::Multicast => "multicast",
            Range::Broadcast => "broadcast",
            Range::Documentation => "documentation",
            Range::Benchmark => "benchmarking",
            Range::Reserved => "reserved",
            Range::Metadata => "cloud metadata",
        })
    }
}

/// Which special ranges are allowed as delivery targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    allow_loopback: bool,
    allow_private: bool,
    /// Networks allowed whatever their range, cloud metadata excepted.
    allowed: Vec<Network>,
}

impl NetworkPolicy {
    /// The production default: only public unicast addresses.
    pub fn public_only() -> NetworkPolicy {
        NetworkPolicy {
            allow_loopback: false,
            allow_private: false,
            allowed: Vec::new(),
        }
    }

    /// Builds a policy from the two operator switches.
    pub fn new(allow_loopback: bool, allow_private: bool) -> NetworkPolicy {
        NetworkPolicy {
            allow_loopback,
            allow_private,
            allowed: Vec::new(),
        }
    }

    /// Returns this policy with `networks` allowed whatever their range (`network.allow`),
    /// except cloud metadata addresses, which nothing opens.
    pub fn with_allowed(mut self, networks: Vec<Network>) -> NetworkPolicy {
        self.allowed = networks;
        self
    }

    /// Returns whether the operator switches allow a whole range.
    pub fn allows(&self, range: Range) -> bool {
        match range {
            Range::Loopback => self.allow_loopback,
            Range::Private | Range::Shared => self.allow_private,
            _ => false,
        }
    }

    /// Returns the range that makes `ip` a forbidden target, or `None` when it is allowed.
    ///
    /// An address can be in several ranges (a local-use NAT64 address is private, and so may
    /// be the IPv4 address it embeds): it is allowed only when the policy allows every one, or
    /// when it lies in an allowed network and is no cloud metadata address. An IPv4-mapped
    /// address (`::ffff:a.b.c.d`) is the IPv4 address for the allow-list; other IPv6 forms
    /// that embed an allowed IPv4 address are not opened by it.
    pub fn denied_range(&self, ip: IpAddr) -> Option<Range> {
        if ranges(ip).any(|range| range == Range::Metadata) {
            return Some(Range::Metadata);
        }
        let canonical = ip.to_canonical();
        if self
            .allowed
            .iter()
            .any(|network| network.contains(canonical))
        {
            return None;
        }
        ranges(ip).find(|range| !self.allows(*range))
    }

    /// Returns the range that makes a URL host a forbidden target before any name is resolved,
    /// or `None` when it may be tried: an IP literal by its address, `localhost` and names
    /// under `.localhost` (RFC 6761) as loopback, and the names of cloud metadata services.
    /// Other names are judged by the addresses they resolve to, at every connection.
    pub fn denied_host(&self, host: &url::Host<&str>) -> Option<Range> {
        match host {
            url::Host::Ipv4(ip) => self.denied_range(IpAddr::V4(*ip)),
            url::Host::Ipv6(ip) => self.denied_range(IpAddr::V6(*ip)),
            url::Host::Domain(name) => self.denied_name(name),
        }
    }

    /// Returns the range a host name belongs to by its spelling alone, when the policy denies
    /// it; see [`NetworkPolicy::denied_host`].
    pub fn denied_name(&self, name: &str) -> Option<Range> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if METADATA_NAMES.contains(&name.as_str()) {
            return Some(Range::Metadata);
        }
        let loopback = name == "localhost" || name.ends_with(".localhost");
        (loopback && !self.allows(Range::Loopback)).then_some(Range::Loopback)
    }
}

/// Names of cloud instance metadata services, refused by name as well as by address.
const METADATA_NAMES: [&str; 5] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Addresses of cloud instance metadata services: AWS, GCP, Azure, OpenStack and
/// DigitalOcean (169.254.169.254), AWS ECS task credentials (169.254.170.2) and EKS pod
/// identity (169.254.170.23), Alibaba Cloud (100.100.100.200), Oracle Cloud (192.0.0.192).
const METADATA_V4: [Ipv4Addr; 5] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 170, 23),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(192, 0, 0, 192),
];

/// AWS's IPv6 instance metadata (fd00:ec2::254) and EKS pod identity (fd00:ec2::23).
const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254),
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x23),
];

/// An IP network in CIDR notation (`10.1.0.0/16`, `fd12:3456::/48`; a bare address is a
/// single host), as `network.allow` lists them. Addresses are written as the standard library
/// reads them: four decimal octets, no octal, hex or short forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Network {
    address: IpAddr,
    prefix_len: u8,
}

/// Why a network's text is not a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a network: {reason}")]
pub struct NetworkError {
    text: String,
    reason: String,
}

impl Network {
    /// Parses `ADDRESS/PREFIX` or a bare address; host bits must be zero.
    pub fn parse(text: &str) -> Result<Network, NetworkError> {
        let error = |reason: &str| NetworkError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = IpAddr::from_str(address_text)
            .map_err(|_| error("expected an IPv4 or IPv6 address, then optionally /PREFIX"))?;
        let max_len: u8 = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix_text {
            None => max_len,
            Some(prefix) => {
                let valid_digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
                match prefix.parse::<u8>() {
                    Ok(len) if valid_digits && len <= max_len => len,
                    _ => return Err(error(&format!("the prefix must be 0 to {max_len}"))),
                }
            }
        };
        let network = Network {
            address,
            prefix_len,
        };
        if network.first_address() != address {
            return Err(error(&format!(
                "host bits are set; did you mean {}/{prefix_len}?",
                network.first_address()
            )));
        }
        Ok(network)
    }

    /// Returns whether `ip` lies in this network (an IPv4 network holds no IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    fn first_address(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(ip) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(ip) & mask))
            }
            IpAddr::V6(ip) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(ip) & mask))
            }
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl FromStr for Network {
    type Err = NetworkError;
    fn from_str(text: &str) -> Result<Network, NetworkError> {
        Network::parse(text)
    }
}

impl TryFrom<String> for Network {
    type Error = NetworkError;
    fn try_from(text: String) -> Result<Network, NetworkError> {
        Network::parse(&text)
    }
}

impl From<Network> for String {
    fn from(network: Network) -> String {
        network.to_string()
    }
}

/// Returns the special-purpose range `ip` belongs to, or `None` for a public unicast address.
///
/// An IPv6 address in no special range itself that embeds an IPv4 address gets the embedded
/// address's range: `::ffff:127.0.0.1`, `::127.0.0.1`, `64:ff9b::127.0.0.1` and
/// `2002:7f00:1::` are loopback.
pub fn classify(ip: IpAddr) -> Option<Range> {
    ranges(ip).next()
}

/// Returns every range that makes `ip` special: its own, then those of the IPv4 addresses it
/// embeds; nothing for a public unicast address.
fn ranges(ip: IpAddr) -> impl Iterator<Item = Range> {
    let (own, embedded) = match ip {
        IpAddr::V4(ip) => (classify_v4(ip), Embedded::default()),
        IpAddr::V6(ip) => (classify_v6(ip), embedded_v4(ip)),
    };
    own.into_iter().chain(embedded.ranges())
}

fn classify_v4(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, c, _] = ip.octets();
    let range = if METADATA_V4.contains(&ip) {
        Range::Metadata
    } else if ip.is_loopback() {
        Range::Loopback
    } else if ip.is_private() {
        Range::Private
    } else if ip.is_link_local() {
        Range::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        Range::Shared
    } else if ip.is_unspecified() || a == 0 {
        Range::Unspecified
    } else if ip.is_multicast() {
        Range::Multicast
    } else if ip.is_broadcast() {
        Range::Broadcast
    } else if ip.is_documentation() {
        Range::Documentation
    } else if a == 198 && (b == 18 || b == 19) {
        Range::Benchmark
    } else if a >= 240 || (a == 192 && b == 0 && c == 0) || (a == 192 && b == 88 && c == 99) {
        // Reserved, the IETF protocol assignments (192.0.0.0/24) and the deprecated 6to4 relay
        // anycast (192.88.99.0/24).
        Range::Reserved
    } else {
        return None;
    };
    Some(range)
}

/// Returns the range of an IPv6 address itself, not counting an IPv4 address it embeds.
fn classify_v6(ip: Ipv6Addr) -> Option<Range> {
    let [first, second, third, ..] = ip.segments();
    let range = if METADATA_V6.contains(&ip) {
        Range::Metadata
    } else if ip.is_loopback() {
        Range::Loopback
    } else if ip.is_unspecified() {
        Range::Unspecified
    } else if ip.is_multicast() {
        Range::Multicast
    } else if first & 0xfe00 == 0xfc00 {
        // Unique local addresses, fc00::/7.
        Range::Private
    } else if first & 0xffc0 == 0xfe80 {
        Range::LinkLocal
    } else if first & 0xffc0 == 0xfec0 {
        // Site-local addresses, fec0::/10: deprecated, still routed inside sites.
        Range::Private
    } else if (first == 0x2001 && second == 0x0db8) || (first == 0x3fff && second & 0xf000 == 0) {
        // 2001:db8::/32 and 3fff::/20.
        Range::Documentation
    } else if first == 0x2001 && second == 0x0002 && third == 0 {
        // 2001:2::/48.
        Range::Benchmark
    } else if first == 0x2001 && matches!(second & 0xfff0, 0x0010 | 0x0020) {
        // ORCHID and ORCHIDv2, 2001:10::/28 and 2001:20::/28: identifiers, never routed.
        Range::Reserved
    } else if first == 0x0064 && second == 0xff9b && third == 0x0001 {
        // Local-use NAT64, 64:ff9b:1::/48: translated into the operator's own IPv4 network.
        Range::Private
    } else if matches!(ip.segments(), [0x0100, 0, 0, 0, ..]) {
        // Discard-only, 100::/64.
        Range::Reserved
    } else {
        return None;
    };
    Some(range)
}

/// The IPv4 addresses an IPv6 address carries, by the formats that embed one.
#[derive(Default)]
struct Embedded {
    /// Addresses at fixed positions, judged as they are: the prefix format's (two for
    /// Teredo), then an ISATAP interface identifier's.
    exact: [Option<Ipv4Addr>; 3],
    /// Addresses where a local-use NAT64 prefix of each possible length would put it; the
    /// prefix length is the operator's choice, so every position is judged, except those
    /// reading `0.0.0.0/8`, which is the padding of another prefix length.
    guessed: [Option<Ipv4Addr>; 4],
}

impl Embedded {
    fn ranges(self) -> impl Iterator<Item = Range> {
        let exact = self.exact.into_iter().flatten().filter_map(classify_v4);
        let guessed = self
            .guessed
            .into_iter()
            .flatten()
            .filter_map(classify_v4)
            .filter(|range| *range != Range::Unspecified);
        exact.chain(guessed)
    }
}

/// Returns the IPv4 addresses `ip` embeds.
fn embedded_v4(ip: Ipv6Addr) -> Embedded {
    let segments = ip.segments();
    let octets = ip.octets();
    let v4 = |bytes: [u8; 4]| Some(Ipv4Addr::from(bytes));
    let low = v4([octets[12], octets[13], octets[14], octets[15]]);
    let mut embedded = Embedded::default();
    match segments {
        // IPv4-mapped, ::ffff:0:0/96.
        [0, 0, 0, 0, 0, 0xffff, _, _]
        // IPv4-translated (SIIT), ::ffff:0:0:0/96.
        | [0, 0, 0, 0, 0xffff, 0, _, _]
        // NAT64 well-known prefix, 64:ff9b::/96.
        | [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => embedded.exact[0] = low,
        // IPv4-compatible, ::/96 (deprecated); `::` and `::1` are not IPv4 addresses.
        [0, 0, 0, 0, 0, 0, high, rest] if high != 0 || rest > 1 => embedded.exact[0] = low,
        // 6to4, 2002::/16: the IPv4 address follows the prefix.
        [0x2002, ..] => embedded.exact[0] = v4([octets[2], octets[3], octets[4], octets[5]]),
        // Teredo, 2001::/32: the server's address, then the client's, inverted.
        [0x2001, 0, ..] => {
            embedded.exact[0] = v4([octets[4], octets[5], octets[6], octets[7]]);
            embedded.exact[1] = v4([!octets[12], !octets[13], !octets[14], !octets[15]]);
        }
        // Local-use NAT64, 64:ff9b:1::/48, with a /48, /56, /64 or /96 prefix (RFC 6052: bits
        // 64 to 71 are always zero).
        [0x0064, 0xff9b, 0x0001, ..] => {
            embedded.guessed = [
                v4([octets[6], octets[7], octets[9], octets[10]]),
                v4([octets[7], octets[9], octets[10], octets[11]]),
                v4([octets[9], octets[10], octets[11], octets[12]]),
                low,
            ];
        }
        _ => {}
    }
    // ISATAP interface identifiers, `::0:5efe:a.b.c.d` and `::200:5efe:a.b.c.d` in any /64
    // (RFC 5214), are tunnelled to the embedded address inside the site.
    if segments[4] & 0xfcff == 0 && segments[5] == 0x5efe {
        embedded.exact[2] = low;
    }
    embedded
}
