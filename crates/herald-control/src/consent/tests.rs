//! Consent settings: the re-check defaults and the bounds their validation holds.

use std::time::Duration;

use super::ConsentConfig;

#[test]
fn rechecks_default_to_a_minute_doubling_to_an_hour_and_their_maximum_is_at_least_the_first() {
    let defaults = ConsentConfig::default();
    assert_eq!(defaults.recheck_first, Duration::from_secs(60));
    assert_eq!(defaults.recheck_max, Duration::from_secs(3600));
    assert!(defaults.problems().is_empty(), "{:?}", defaults.problems());
    let backwards = ConsentConfig {
        recheck_first: Duration::from_secs(600),
        recheck_max: Duration::from_secs(60),
        ..ConsentConfig::default()
    };
    assert_eq!(
        backwards.problems(),
        ["consent.recheck_max 60s must be at least consent.recheck_first 600s"]
    );
    let off = ConsentConfig {
        recheck_first: Duration::ZERO,
        recheck_max: Duration::ZERO,
        ..ConsentConfig::default()
    };
    assert!(off.problems().is_empty(), "{:?}", off.problems());
}
