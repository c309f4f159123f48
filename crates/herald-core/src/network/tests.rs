//! Address classification tests.

use super::*;

#[test]
fn classifies_special_purpose_addresses() {
    let cases: &[(&str, Option<Range>)] = &[
        ("127.0.0.1", Some(Range::Loopback)),
        ("10.0.0.1", Some(Range::Private)),
        ("172.16.5.4", Some(Range::Private)),
        ("192.168.1.1", Some(Range::Private)),
        ("169.254.169.254", Some(Range::LinkLocal)),
        ("100.64.0.1", Some(Range::Shared)),
        ("0.0.0.0", Some(Range::Unspecified)),
        ("224.0.0.1", Some(Range::Multicast)),
        ("255.255.255.255", Some(Range::Broadcast)),
        ("192.0.2.1", Some(Range::Documentation)),
        ("240.0.0.1", Some(Range::Reserved)),
        ("8.8.8.8", None),
        ("::1", Some(Range::Loopback)),
        ("::", Some(Range::Unspecified)),
        ("fd00::1", Some(Range::Private)),
        ("fe80::1", Some(Range::LinkLocal)),
        ("fec0::1", Some(Range::Private)),
        ("2001:db8::1", Some(Range::Documentation)),
        ("3fff::1", Some(Range::Documentation)),
        ("3fff:1000::1", None),
        ("100::1", Some(Range::Reserved)),
        ("ff02::1", Some(Range::Multicast)),
        ("2606:4700::1111", None),
        // IPv4-mapped, ::ffff:0:0/96.
        ("::ffff:127.0.0.1", Some(Range::Loopback)),
        ("::ffff:169.254.169.254", Some(Range::LinkLocal)),
        ("::ffff:8.8.8.8", None),
        // IPv4-compatible, ::/96.
        ("::127.0.0.1", Some(Range::Loopback)),
        ("::10.0.0.1", Some(Range::Private)),
        ("::0.0.0.2", Some(Range::Unspecified)),
        ("::8.8.8.8", None),
        // IPv4-translated, ::ffff:0:0:0/96.
        ("::ffff:0:127.0.0.1", Some(Range::Loopback)),
        ("::ffff:0:169.254.169.254", Some(Range::LinkLocal)),
        ("::ffff:0:8.8.8.8", None),
        // NAT64, 64:ff9b::/96.
        ("64:ff9b::a00:1", Some(Range::Private)),
        ("64:ff9b::127.0.0.1", Some(Range::Loopback)),
        ("64:ff9b::8.8.8.8", None),
        // Local-use NAT64, 64:ff9b:1::/48: private whatever it embeds.
        ("64:ff9b:1::8.8.8.8", Some(Range::Private)),
        // 6to4, 2002::/16.
        ("2002:7f00:1::", Some(Range::Loopback)),
        ("2002:a9fe:a9fe::1", Some(Range::LinkLocal)),
        ("2002:808:808::1", None),
        // Teredo, 2001::/32: server 65.54.227.120, client 127.0.0.1 inverted.
        (
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            Some(Range::Loopback),
        ),
        // Client 8.8.8.8, public; then server 10.0.0.1.
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", None),
        ("2001:0:a00:1:8000:63bf:f7f7:f7f7", Some(Range::Private)),
        // ISATAP interface identifiers.
        ("2606:4700::5efe:a9fe:a9fe", Some(Range::LinkLocal)),
        ("2606:4700::200:5efe:7f00:1", Some(Range::Loopback)),
        ("2606:4700::200:5efe:808:808", None),
    ];
    for (text, expected) in cases {
        let ip: IpAddr = text.parse().unwrap();
        assert_eq!(classify(ip), *expected, "{text}");
    }
}

#[test]
fn policy_allows_only_what_it_names() {
    let dev = NetworkPolicy::new(true, true);
    assert_eq!(dev.denied_range("127.0.0.1".parse().unwrap()), None);
    assert_eq!(dev.denied_range("10.0.0.1".parse().unwrap()), None);
    assert_eq!(
        dev.denied_range("169.254.169.254".parse().unwrap()),
        Some(Range::LinkLocal)
    );
    let strict = NetworkPolicy::public_only();
    assert_eq!(
        strict.denied_range("127.0.0.1".parse().unwrap()),
        Some(Range::Loopback)
    );
    assert_eq!(strict.denied_range("1.1.1.1".parse().unwrap()), None);
}

#[test]
fn dev_policy_still_allows_ipv6_loopback() {
    // `::1` and `::` are not IPv4-compatible addresses of 0.0.0.1 and 0.0.0.0.
    let dev = NetworkPolicy::new(true, true);
    assert_eq!(dev.denied_range("::1".parse().unwrap()), None);
    assert_eq!(dev.denied_range("::ffff:127.0.0.1".parse().unwrap()), None);
}

/// Every IPv6 form that carries `v4` at a position known from its prefix alone.
fn exact_embeddings(v4: Ipv4Addr) -> Vec<(&'static str, Ipv6Addr)> {
    let [a, b, c, d] = v4.octets();
    let high = u16::from_be_bytes([a, b]);
    let low = u16::from_be_bytes([c, d]);
    let mut forms = vec![
        ("mapped", v4.to_ipv6_mapped()),
        (
            "translated",
            Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, high, low),
        ),
        ("nat64", Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, high, low)),
        ("6to4", Ipv6Addr::new(0x2002, high, low, 0, 0, 0, 0, 1)),
        (
            "teredo client",
            Ipv6Addr::new(0x2001, 0, 0x4136, 0xe378, 0x8000, 0x63bf, !high, !low),
        ),
        (
            "isatap",
            Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0x200, 0x5efe, high, low),
        ),
    ];
    if high != 0 || low > 1 {
        forms.push(("compatible", Ipv6Addr::new(0, 0, 0, 0, 0, 0, high, low)));
    }
    forms
}

/// `v4` under the local-use NAT64 prefix with each prefix length of RFC 6052.
fn local_nat64_embeddings(v4: Ipv4Addr) -> Vec<(&'static str, Ipv6Addr)> {
    let [a, b, c, d] = v4.octets();
    let prefix = [0x00, 0x64, 0xff, 0x9b, 0x00, 0x01];
    let mut forms = Vec::new();
    for (name, positions) in [
        ("local nat64 /48", [6, 7, 9, 10]),
        ("local nat64 /56", [7, 9, 10, 11]),
        ("local nat64 /64", [9, 10, 11, 12]),
        ("local nat64 /96", [12, 13, 14, 15]),
    ] {
        let mut octets = [0_u8; 16];
        octets[..6].copy_from_slice(&prefix);
        for (position, value) in positions.into_iter().zip([a, b, c, d]) {
            octets[position] = value;
        }
        forms.push((name, Ipv6Addr::from(octets)));
    }
    forms
}

#[test]
fn every_form_that_embeds_an_ipv4_address_is_judged_by_it() {
    let addresses = [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "8.8.8.8",
    ];
    let dev = NetworkPolicy::new(true, true);
    let no_loopback = NetworkPolicy::new(false, true);
    let strict = NetworkPolicy::public_only();
    for text in addresses {
        let v4: Ipv4Addr = text.parse().unwrap();
        let expected = classify_v4(v4);
        for (form, ip) in exact_embeddings(v4) {
            assert_eq!(classify(IpAddr::V6(ip)), expected, "{text} {form} {ip}");
            for policy in [&dev, &no_loopback, &strict] {
                assert_eq!(
                    policy.denied_range(IpAddr::V6(ip)),
                    policy.denied_range(IpAddr::V4(v4)),
                    "{text} {form} {ip} {policy:?}"
                );
            }
        }
        for (form, ip) in local_nat64_embeddings(v4) {
            // Private in itself: refused unless private networks are allowed, and then refused
            // when the embedded address is refused, wherever the prefix length puts it.
            assert!(
                strict.denied_range(IpAddr::V6(ip)).is_some(),
                "{text} {form} {ip}"
            );
            for policy in [&dev, &no_loopback] {
                let embedded_denied = policy.denied_range(IpAddr::V4(v4)).is_some();
                let unspecified = expected == Some(Range::Unspecified);
                if embedded_denied && !unspecified {
                    assert!(
                        policy.denied_range(IpAddr::V6(ip)).is_some(),
                        "{text} {form} {ip} {policy:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn local_use_nat64_needs_every_range_it_touches_allowed() {
    let ip = |text: &str| -> IpAddr { text.parse().unwrap() };
    // Private allowed, loopback not: the embedded loopback address decides.
    let no_loopback = NetworkPolicy::new(false, true);
    assert_eq!(
        no_loopback.denied_range(ip("64:ff9b:1::7f00:1")),
        Some(Range::Loopback)
    );
    assert_eq!(no_loopback.denied_range(ip("64:ff9b:1::808:808")), None);
    // Loopback allowed, private not: the prefix itself decides.
    let loopback_only = NetworkPolicy::new(true, false);
    assert_eq!(
        loopback_only.denied_range(ip("64:ff9b:1::7f00:1")),
        Some(Range::Private)
    );
    // Cloud metadata behind a /64 translator, under the dev policy.
    let dev = NetworkPolicy::new(true, true);
    assert_eq!(
        dev.denied_range(ip("64:ff9b:1:0:a9:fea9:fe00:0")),
        Some(Range::LinkLocal)
    );
}
