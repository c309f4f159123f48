//! Address classification tests.

use super::*;

#[test]
fn classifies_special_purpose_addresses() {
    let cases: &[(&str, Option<Range>)] = &[
        ("127.0.0.1", Some(Range::Loopback)),
        ("10.0.0.1", Some(Range::Private)),
        ("172.16.5.4", Some(Range::Private)),
        ("192.168.1.1", Some(Range::Private)),
        ("169.254.169.254", Some(Range::Metadata)),
        ("169.254.1.1", Some(Range::LinkLocal)),
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
        ("::ffff:169.254.169.254", Some(Range::Metadata)),
        ("::ffff:8.8.8.8", None),
        // IPv4-compatible, ::/96.
        ("::127.0.0.1", Some(Range::Loopback)),
        ("::10.0.0.1", Some(Range::Private)),
        ("::0.0.0.2", Some(Range::Unspecified)),
        ("::8.8.8.8", None),
        // IPv4-translated, ::ffff:0:0:0/96.
        ("::ffff:0:127.0.0.1", Some(Range::Loopback)),
        ("::ffff:0:169.254.169.254", Some(Range::Metadata)),
        ("::ffff:0:8.8.8.8", None),
        // NAT64, 64:ff9b::/96.
        ("64:ff9b::a00:1", Some(Range::Private)),
        ("64:ff9b::127.0.0.1", Some(Range::Loopback)),
        ("64:ff9b::8.8.8.8", None),
        // Local-use NAT64, 64:ff9b:1::/48: private whatever it embeds.
        ("64:ff9b:1::8.8.8.8", Some(Range::Private)),
        // 6to4, 2002::/16.
        ("2002:7f00:1::", Some(Range::Loopback)),
        ("2002:a9fe:a9fe::1", Some(Range::Metadata)),
        ("2002:a9fe:101::1", Some(Range::LinkLocal)),
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
        ("2606:4700::5efe:a9fe:a9fe", Some(Range::Metadata)),
        ("2606:4700::5efe:a9fe:101", Some(Range::LinkLocal)),
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
        Some(Range::Metadata)
    );
    assert_eq!(
        dev.denied_range("169.254.1.1".parse().unwrap()),
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
        Some(Range::Metadata)
    );
}

/// Every spelling of a forbidden host that a URL can carry, with the host `url::Url` makes of
/// it (WHATWG URL parsing turns decimal, octal, hex, short, mixed, percent-encoded, full-width
/// and trailing-dot IPv4 spellings into the dotted quad, and compresses IPv6) and the range
/// that refuses it.
const FORBIDDEN_URLS: &[(&str, &str, Range)] = &[
    // Loopback, every numeric spelling of 127.0.0.1.
    ("http://127.0.0.1/", "127.0.0.1", Range::Loopback),
    ("http://2130706433/", "127.0.0.1", Range::Loopback),
    ("http://0177.0.0.1/", "127.0.0.1", Range::Loopback),
    ("http://00000177.0.0.01/", "127.0.0.1", Range::Loopback),
    ("http://017700000001/", "127.0.0.1", Range::Loopback),
    ("http://0x7f.0.0.1/", "127.0.0.1", Range::Loopback),
    ("http://0X7F.0.0.1/", "127.0.0.1", Range::Loopback),
    ("http://0x7f000001/", "127.0.0.1", Range::Loopback),
    ("http://0x00007f.0x0.0x0.0x1/", "127.0.0.1", Range::Loopback),
    ("http://127.1/", "127.0.0.1", Range::Loopback),
    ("http://127.0.1/", "127.0.0.1", Range::Loopback),
    ("http://0x7f.1/", "127.0.0.1", Range::Loopback),
    ("http://0177.1/", "127.0.0.1", Range::Loopback),
    ("http://127.0x0.01/", "127.0.0.1", Range::Loopback),
    ("http://0x7f.0.0.1.:8080/", "127.0.0.1", Range::Loopback),
    ("http://127.0.0.1./", "127.0.0.1", Range::Loopback),
    ("http://%31%32%37.0.0.1/", "127.0.0.1", Range::Loopback),
    (
        "http://\u{ff11}\u{ff12}\u{ff17}\u{ff0e}\u{ff10}\u{ff0e}\u{ff10}\u{ff0e}\u{ff11}/",
        "127.0.0.1",
        Range::Loopback,
    ),
    (
        "http://user:pass@127.0.0.1:80/",
        "127.0.0.1",
        Range::Loopback,
    ),
    (
        "http://127.255.255.254/",
        "127.255.255.254",
        Range::Loopback,
    ),
    ("http://[::1]/", "[::1]", Range::Loopback),
    ("http://[0:0:0:0:0:0:0:1]/", "[::1]", Range::Loopback),
    // IPv6 forms that embed 127.0.0.1.
    (
        "http://[::ffff:127.0.0.1]/",
        "[::ffff:7f00:1]",
        Range::Loopback,
    ),
    (
        "http://[0:0:0:0:0:ffff:7f00:1]/",
        "[::ffff:7f00:1]",
        Range::Loopback,
    ),
    ("http://[::127.0.0.1]/", "[::7f00:1]", Range::Loopback),
    (
        "http://[::ffff:0:127.0.0.1]/",
        "[::ffff:0:7f00:1]",
        Range::Loopback,
    ),
    (
        "http://[64:ff9b::127.0.0.1]/",
        "[64:ff9b::7f00:1]",
        Range::Loopback,
    ),
    (
        "http://[2002:7f00:1::]/",
        "[2002:7f00:1::]",
        Range::Loopback,
    ),
    (
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        Range::Loopback,
    ),
    (
        "http://[fe80::5efe:127.0.0.1]/",
        "[fe80::5efe:7f00:1]",
        Range::LinkLocal,
    ),
    // Unspecified.
    ("http://0/", "0.0.0.0", Range::Unspecified),
    ("http://0.0.0.0/", "0.0.0.0", Range::Unspecified),
    ("http://0x0/", "0.0.0.0", Range::Unspecified),
    ("http://[::]/", "[::]", Range::Unspecified),
    // Private, link-local, shared.
    ("http://10.0.0.1/", "10.0.0.1", Range::Private),
    ("http://167772161/", "10.0.0.1", Range::Private),
    ("http://012.1/", "10.0.0.1", Range::Private),
    ("http://172.16.0.1/", "172.16.0.1", Range::Private),
    ("http://0xac.0x10.1/", "172.16.0.1", Range::Private),
    ("http://192.168.0.1/", "192.168.0.1", Range::Private),
    ("http://192.168.1/", "192.168.0.1", Range::Private),
    ("http://[fd12:3456::1]/", "[fd12:3456::1]", Range::Private),
    ("http://[fec0::1]/", "[fec0::1]", Range::Private),
    (
        "http://[::ffff:10.0.0.1]/",
        "[::ffff:a00:1]",
        Range::Private,
    ),
    (
        "http://[64:ff9b:1::a00:1]/",
        "[64:ff9b:1::a00:1]",
        Range::Private,
    ),
    ("http://169.254.1.1/", "169.254.1.1", Range::LinkLocal),
    ("http://[fe80::1]/", "[fe80::1]", Range::LinkLocal),
    ("http://100.64.0.1/", "100.64.0.1", Range::Shared),
    ("http://[2002:6440:1::]/", "[2002:6440:1::]", Range::Shared),
    // Cloud metadata, every spelling.
    (
        "http://169.254.169.254/",
        "169.254.169.254",
        Range::Metadata,
    ),
    ("http://2852039166/", "169.254.169.254", Range::Metadata),
    ("http://0xa9fea9fe/", "169.254.169.254", Range::Metadata),
    (
        "http://0251.0376.0251.0376/",
        "169.254.169.254",
        Range::Metadata,
    ),
    ("http://169.254.43518/", "169.254.169.254", Range::Metadata),
    (
        "http://0xa9.0xfe.0xa9fe/",
        "169.254.169.254",
        Range::Metadata,
    ),
    (
        "http://[::ffff:169.254.169.254]/",
        "[::ffff:a9fe:a9fe]",
        Range::Metadata,
    ),
    (
        "http://[64:ff9b::a9fe:a9fe]/",
        "[64:ff9b::a9fe:a9fe]",
        Range::Metadata,
    ),
    (
        "http://[2002:a9fe:a9fe::]/",
        "[2002:a9fe:a9fe::]",
        Range::Metadata,
    ),
    (
        "http://[fd00:ec2::254]/",
        "[fd00:ec2::254]",
        Range::Metadata,
    ),
    (
        "http://169.254.170.2/v2/credentials",
        "169.254.170.2",
        Range::Metadata,
    ),
    (
        "http://100.100.100.200/",
        "100.100.100.200",
        Range::Metadata,
    ),
    ("http://192.0.0.192/", "192.0.0.192", Range::Metadata),
    // Benchmarking, documentation, multicast, broadcast, reserved.
    ("http://198.18.0.1/", "198.18.0.1", Range::Benchmark),
    ("http://198.19.255.254/", "198.19.255.254", Range::Benchmark),
    ("http://[2001:2::1]/", "[2001:2::1]", Range::Benchmark),
    ("http://192.0.2.1/", "192.0.2.1", Range::Documentation),
    ("http://198.51.100.1/", "198.51.100.1", Range::Documentation),
    ("http://203.0.113.1/", "203.0.113.1", Range::Documentation),
    (
        "http://[2001:db8::1]/",
        "[2001:db8::1]",
        Range::Documentation,
    ),
    ("http://224.0.0.1/", "224.0.0.1", Range::Multicast),
    (
        "http://239.255.255.250/",
        "239.255.255.250",
        Range::Multicast,
    ),
    ("http://[ff02::1]/", "[ff02::1]", Range::Multicast),
    (
        "http://255.255.255.255/",
        "255.255.255.255",
        Range::Broadcast,
    ),
    ("http://4294967295/", "255.255.255.255", Range::Broadcast),
    ("http://240.0.0.1/", "240.0.0.1", Range::Reserved),
    ("http://192.0.0.8/", "192.0.0.8", Range::Reserved),
    ("http://192.88.99.1/", "192.88.99.1", Range::Reserved),
    ("http://[100::1]/", "[100::1]", Range::Reserved),
    ("http://[2001:10::1]/", "[2001:10::1]", Range::Reserved),
    ("http://[2001:20::1]/", "[2001:20::1]", Range::Reserved),
    // Names refused by their spelling, before any lookup.
    ("http://localhost/", "localhost", Range::Loopback),
    ("http://LOCALHOST/", "localhost", Range::Loopback),
    ("http://localhost./", "localhost.", Range::Loopback),
    ("http://api.localhost/", "api.localhost", Range::Loopback),
    (
        "http://metadata.google.internal/computeMetadata/v1/",
        "metadata.google.internal",
        Range::Metadata,
    ),
    (
        "http://METADATA.GOOGLE.INTERNAL./",
        "metadata.google.internal.",
        Range::Metadata,
    ),
    ("http://metadata/", "metadata", Range::Metadata),
    (
        "http://instance-data.ec2.internal/",
        "instance-data.ec2.internal",
        Range::Metadata,
    ),
];

#[test]
fn url_parsing_normalises_every_spelling_and_the_policy_refuses_it() {
    assert!(FORBIDDEN_URLS.len() >= 40, "{}", FORBIDDEN_URLS.len());
    let strict = NetworkPolicy::public_only();
    for (text, expected_host, expected_range) in FORBIDDEN_URLS {
        let url = url::Url::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        assert_eq!(url.host_str(), Some(*expected_host), "{text}");
        let host = url.host().unwrap_or_else(|| panic!("{text} has a host"));
        assert_eq!(strict.denied_host(&host), Some(*expected_range), "{text}");
    }
}

#[test]
fn spellings_url_parsing_refuses_never_reach_the_policy() {
    // Out-of-range parts and too many parts are not hosts at all in a special URL.
    for text in [
        "http://127.0.0.1.1/",
        "http://256.0.0.1/",
        "http://127.0.0.09/",
        "http://0x100000000/",
        "http://4294967296/",
        "http://127.16777216/",
        "http://[::1%25lo]/",
        "http://[::ffff:127.0.0.1.1]/",
    ] {
        assert!(url::Url::parse(text).is_err(), "{text}");
    }
}

#[test]
fn public_addresses_and_names_pass() {
    let strict = NetworkPolicy::public_only();
    for text in [
        "http://8.8.8.8/",
        "http://134744072/",
        "http://[2606:4700::1111]/",
        "http://[::ffff:8.8.8.8]/",
        "http://example.com/",
        "http://localhost.example.com/",
        "http://metadata.example.com/",
    ] {
        let url = url::Url::parse(text).unwrap();
        assert_eq!(strict.denied_host(&url.host().unwrap()), None, "{text}");
    }
}

#[test]
fn cloud_metadata_is_refused_whatever_the_policy_allows() {
    let everything = NetworkPolicy::new(true, true).with_allowed(vec![
        Network::parse("0.0.0.0/0").unwrap(),
        Network::parse("::/0").unwrap(),
    ]);
    for text in [
        "169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
        "::ffff:169.254.169.254",
    ] {
        let ip: IpAddr = text.parse().unwrap();
        assert_eq!(everything.denied_range(ip), Some(Range::Metadata), "{text}");
    }
    assert_eq!(
        everything.denied_name("metadata.google.internal"),
        Some(Range::Metadata)
    );
    // Everything else is open under that policy.
    assert_eq!(
        everything.denied_range("169.254.1.1".parse().unwrap()),
        None
    );
    assert_eq!(everything.denied_range("240.0.0.1".parse().unwrap()), None);
}

#[test]
fn the_allow_list_opens_exactly_its_networks() {
    let policy = NetworkPolicy::public_only().with_allowed(vec![
        Network::parse("10.1.2.0/24").unwrap(),
        Network::parse("127.0.0.1").unwrap(),
        Network::parse("fd12:3456::/32").unwrap(),
    ]);
    let ip = |text: &str| -> IpAddr { text.parse().unwrap() };
    assert_eq!(policy.denied_range(ip("10.1.2.3")), None);
    assert_eq!(policy.denied_range(ip("10.1.2.255")), None);
    assert_eq!(policy.denied_range(ip("10.1.3.1")), Some(Range::Private));
    assert_eq!(policy.denied_range(ip("10.0.0.1")), Some(Range::Private));
    assert_eq!(policy.denied_range(ip("127.0.0.1")), None);
    assert_eq!(policy.denied_range(ip("127.0.0.2")), Some(Range::Loopback));
    assert_eq!(policy.denied_range(ip("::1")), Some(Range::Loopback));
    assert_eq!(policy.denied_range(ip("fd12:3456:1::1")), None);
    assert_eq!(
        policy.denied_range(ip("fd12:3457::1")),
        Some(Range::Private)
    );
    // An IPv4-mapped address is its IPv4 address; other embeddings are not opened.
    assert_eq!(policy.denied_range(ip("::ffff:10.1.2.3")), None);
    assert_eq!(
        policy.denied_range(ip("2002:a01:203::")),
        Some(Range::Private)
    );
    assert_eq!(
        policy.denied_range(ip("64:ff9b::a01:203")),
        Some(Range::Private)
    );
    // Names are judged by what they resolve to, so the allow-list does not open `localhost`.
    assert_eq!(policy.denied_name("localhost"), Some(Range::Loopback));
}

#[test]
fn networks_parse_strictly() {
    let ok = |text: &str| Network::parse(text).unwrap().to_string();
    assert_eq!(ok("10.0.0.0/8"), "10.0.0.0/8");
    assert_eq!(ok("10.1.2.3"), "10.1.2.3/32");
    assert_eq!(ok("0.0.0.0/0"), "0.0.0.0/0");
    assert_eq!(ok("fd00::/8"), "fd00::/8");
    assert_eq!(ok("::1"), "::1/128");
    for (text, reason) in [
        ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ("10.0.0.0/33", "0 to 32"),
        ("fd00::/129", "0 to 128"),
        ("10.0.0.0/", "0 to 32"),
        ("10.0.0.0/+8", "0 to 32"),
        ("0177.0.0.1", "expected an IPv4 or IPv6 address"),
        ("127.1", "expected an IPv4 or IPv6 address"),
        ("localhost", "expected an IPv4 or IPv6 address"),
        ("", "expected an IPv4 or IPv6 address"),
    ] {
        let err = Network::parse(text).unwrap_err().to_string();
        assert!(err.contains(reason), "{text}: {err}");
    }
}
