//! The SSRF guard's address classification on arbitrary host strings: hosts as the URL parser
//! reads them (every numeric spelling: decimal, octal, hex, short forms, IPv6 with embedded
//! IPv4), sink URLs, and `network.allow` entries. An address the standard library itself calls
//! loopback, private, link-local, unspecified, broadcast or multicast must be refused by the
//! default policy whatever its spelling.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use herald_core::Sink;
use herald_core::network::{Network, NetworkPolicy};
use libfuzzer_sys::fuzz_target;

fn obviously_internal_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
}

fn obviously_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || ip.to_ipv4_mapped().is_some_and(obviously_internal_v4)
}

fn check_host(host: &url::Host<&str>) {
    let strict = NetworkPolicy::public_only();
    let open = NetworkPolicy::new(true, true);
    let denied = strict.denied_host(host);
    let _ = open.denied_host(host);
    let internal = match host {
        url::Host::Ipv4(ip) => obviously_internal_v4(*ip),
        url::Host::Ipv6(ip) => obviously_internal_v6(*ip),
        url::Host::Domain(_) => false,
    };
    if internal {
        assert!(denied.is_some(), "{host} should be refused by the default policy");
    }
    if let url::Host::Ipv4(ip) = host {
        assert_eq!(denied, strict.denied_range(IpAddr::V4(*ip)));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(host) = url::Host::parse(text) {
        let host = match &host {
            url::Host::Domain(name) => url::Host::Domain(name.as_str()),
            url::Host::Ipv4(ip) => url::Host::Ipv4(*ip),
            url::Host::Ipv6(ip) => url::Host::Ipv6(*ip),
        };
        check_host(&host);
    }
    if let Ok(url) = url::Url::parse(&format!("https://{text}/hook")) {
        if let Some(host) = url.host() {
            check_host(&host);
        }
    }
    if let Ok(sink) = Sink::parse(text) {
        let _ = sink.check_policy(&NetworkPolicy::public_only());
    }
    let _ = NetworkPolicy::public_only().denied_name(text);
    if let Ok(network) = Network::parse(text) {
        let policy = NetworkPolicy::public_only().with_allowed(vec![network]);
        for ip in [
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            let _ = network.contains(ip);
            let _ = policy.denied_range(ip);
        }
    }
});
