//! Which network addresses webhooks may be delivered to (server-side request forgery guard).
//!
//! By default Herald refuses to deliver to loopback, private, link-local (cloud metadata
//! endpoints live there), shared, documentation, multicast and unspecified addresses: a
//! subscription must not turn Herald into a proxy into its own network. Dev mode allows
//! loopback and private ranges. Pure classification; the dispatcher's resolver applies it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    Reserved,
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
            Range::Reserved => "reserved",
        })
    }
}

/// Which special ranges are allowed as delivery targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    allow_loopback: bool,
    allow_private: bool,
}

impl NetworkPolicy {
    /// The production default: only public unicast addresses.
    pub fn public_only() -> NetworkPolicy {
        NetworkPolicy {
            allow_loopback: false,
            allow_private: false,
        }
    }

    /// Builds a policy from the two operator switches.
    pub fn new(allow_loopback: bool, allow_private: bool) -> NetworkPolicy {
        NetworkPolicy {
            allow_loopback,
            allow_private,
        }
    }

    pub fn allows(&self, range: Range) -> bool {
        match range {
            Range::Loopback => self.allow_loopback,
            Range::Private | Range::Shared => self.allow_private,
            _ => false,
        }
    }

    /// Returns the range that makes `ip` a forbidden target, or `None` when it is allowed.
    pub fn denied_range(&self, ip: IpAddr) -> Option<Range> {
        classify(ip).filter(|range| !self.allows(*range))
    }
}

/// Returns the special-purpose range `ip` belongs to, or `None` for a public unicast address.
pub fn classify(ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, c, _] = ip.octets();
    let range = if ip.is_loopback() {
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
    } else if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) {
        Range::Documentation
    } else if a >= 240 || (a == 192 && b == 0 && c == 0) {
        Range::Reserved
    } else {
        return None;
    };
    Some(range)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Range> {
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return classify_v4(mapped);
    }
    let first = ip.segments()[0];
    let range = if ip.is_loopback() {
        Range::Loopback
    } else if ip.is_unspecified() {
        Range::Unspecified
    } else if ip.is_multicast() {
        Range::Multicast
    } else if first & 0xfe00 == 0xfc00 {
        Range::Private
    } else if first & 0xffc0 == 0xfe80 {
        Range::LinkLocal
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Range::Documentation
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 embeds an IPv4 address: judge that one.
        let [.., a, b] = ip.segments();
        let embedded = Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
        return classify_v4(embedded);
    } else {
        return None;
    };
    Some(range)
}
