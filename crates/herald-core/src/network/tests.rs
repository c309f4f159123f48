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
        ("::ffff:127.0.0.1", Some(Range::Loopback)),
        ("64:ff9b::a00:1", Some(Range::Private)),
        ("2606:4700::1111", None),
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
