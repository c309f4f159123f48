//! The `dispatcher.egress_proxy` setting: what is accepted, what is refused and how, and that
//! the user and password never show.

use super::EgressProxy;

#[test]
fn proxy_urls_are_taken_apart_into_address_name_and_credentials() {
    let cases = [
        (
            "http://proxy.internal:3128",
            "proxy.internal:3128",
            Some("proxy.internal"),
            None,
        ),
        (
            "https://proxy.internal",
            "proxy.internal:443",
            Some("proxy.internal"),
            None,
        ),
        (
            "http://proxy.internal/",
            "proxy.internal:80",
            Some("proxy.internal"),
            None,
        ),
        ("http://10.0.0.5:3128", "10.0.0.5:3128", None, None),
        ("http://[fd00::5]:3128", "[fd00::5]:3128", None, None),
        (
            "http://herald:s3cret@proxy.internal:3128",
            "proxy.internal:3128",
            Some("proxy.internal"),
            Some(("herald", "s3cret")),
        ),
        (
            "http://her%40ld:p%3Ass%2Fw0rd@proxy.internal:3128",
            "proxy.internal:3128",
            Some("proxy.internal"),
            Some(("her@ld", "p:ss/w0rd")),
        ),
        (
            "http://herald@proxy.internal:3128",
            "proxy.internal:3128",
            Some("proxy.internal"),
            Some(("herald", "")),
        ),
    ];
    for (text, address, name, credentials) in cases {
        let endpoint = EgressProxy::new(text)
            .endpoint()
            .unwrap_or_else(|err| panic!("{text}: {err}"))
            .unwrap_or_else(|| panic!("{text} should be a proxy"));
        assert_eq!(endpoint.address, address, "{text}");
        assert_eq!(endpoint.name.as_deref(), name, "{text}");
        let found = endpoint
            .credentials
            .as_ref()
            .map(|found| (found.user.as_str(), found.password.as_str()));
        assert_eq!(found, credentials, "{text}");
        assert_eq!(endpoint.url.username(), "", "{text}");
        assert_eq!(endpoint.url.password(), None, "{text}");
    }
}

#[test]
fn an_empty_setting_is_no_proxy() {
    for text in ["", "  "] {
        let endpoint = EgressProxy::new(text).endpoint().unwrap();
        assert!(endpoint.is_none(), "{text:?}");
    }
}

#[test]
fn bad_proxy_urls_are_refused_naming_the_setting_without_quoting_it() {
    let cases = [
        ("proxy.internal:3128", "must be an http:// or https:// URL"),
        ("s3cret-proxy", "is not a URL"),
        (
            "socks5://u:s3cret@proxy.internal:1080",
            "must be an http:// or https:// URL",
        ),
        ("ftp://proxy.internal", "must be an http:// or https:// URL"),
        (
            "http://u:s3cret@proxy.internal:3128/path",
            "without a path, query or fragment",
        ),
        (
            "http://proxy.internal:3128?s3cret=1",
            "without a path, query or fragment",
        ),
        (
            "http://proxy.internal:3128#s3cret",
            "without a path, query or fragment",
        ),
        ("http://u:s3cret@:3128", "is not a URL"),
        ("http://proxy.internal:99999", "is not a URL"),
        ("http://u:%FF%FEs3cret@proxy.internal", "must be UTF-8"),
    ];
    for (text, expected) in cases {
        let Err(problem) = EgressProxy::new(text).endpoint() else {
            panic!("{text} should be refused");
        };
        assert!(
            problem.starts_with("dispatcher.egress_proxy"),
            "{text}: {problem}"
        );
        assert!(problem.contains(expected), "{text}: {problem}");
        assert!(!problem.contains("s3cret"), "{text}: {problem}");
        assert!(!problem.contains("proxy.internal"), "{text}: {problem}");
    }
}

#[test]
fn debug_never_shows_the_user_or_password() {
    let setting = EgressProxy::new("http://herald:s3cret@proxy.internal:3128");
    let shown = format!("{setting:?}");
    assert!(shown.contains("http://proxy.internal:3128"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("herald"), "{shown}");
    let endpoint = setting.endpoint().unwrap().unwrap();
    let shown = format!("{endpoint:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    let invalid = format!(
        "{:?}",
        EgressProxy::new("http://u:s3cret@proxy.internal/path")
    );
    assert!(!invalid.contains("s3cret"), "{invalid}");
    assert_eq!(format!("{:?}", EgressProxy::new("")), "EgressProxy(off)");
}
