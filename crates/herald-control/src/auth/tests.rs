//! Tests of bearer-token checking.

use super::*;

fn authenticator(disabled: bool) -> Authenticator {
    let config = AuthConfig {
        disabled,
        api_tokens: vec!["0123456789abcdef".to_owned()],
    };
    let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
    Authenticator::new(&config, metrics)
}

#[test]
fn accepts_only_a_known_bearer_token() {
    let authenticator = authenticator(false);
    assert!(authenticator.accepts(Some("Bearer 0123456789abcdef")));
    assert!(authenticator.accepts(Some("bearer 0123456789abcdef")));
    assert!(!authenticator.accepts(Some("Bearer 0123456789abcdeF")));
    assert!(!authenticator.accepts(Some("Bearer 0123456789abcde")));
    assert!(!authenticator.accepts(Some("0123456789abcdef")));
    assert!(!authenticator.accepts(None));
}

#[test]
fn accepts_anything_when_disabled() {
    assert!(authenticator(true).accepts(None));
}
