//! Unit tests of the gauges' label bound and series removal.

use std::collections::BTreeMap;

use herald_core::SubscriptionId;
use herald_nats::{Backlog, ConsumerLevel};

use super::{Gauges, OTHER, bounded};
use crate::metrics::Metrics;

fn id(n: u8) -> SubscriptionId {
    SubscriptionId::parse(&format!("sub_01JBZ7M4Q3N5W8X9Y2Z6A0B1C{n}")).unwrap()
}

fn lagging(pending: u64) -> Backlog {
    Backlog {
        events: Some(ConsumerLevel {
            pending,
            ack_pending: 1,
        }),
        dead_letters: 2,
        ..Backlog::default()
    }
}

#[test]
fn every_subscription_has_its_own_series_within_the_limit() {
    let read: BTreeMap<_, _> = (0..3).map(|n| (id(n), lagging(u64::from(n)))).collect();
    let labelled = bounded(&read, 3);
    assert_eq!(labelled.len(), 3);
    assert!(!labelled.contains_key(OTHER));
    assert_eq!(labelled[id(2).as_str()], lagging(2));
}

#[test]
fn beyond_the_limit_those_with_most_waiting_keep_theirs_and_the_rest_are_summed() {
    // Waiting: 0 → 3, 1 → 13, 2 → 103, 3 → 3 (ties with 0, which sorts first by id).
    let read: BTreeMap<_, _> = [(0, 0), (1, 10), (2, 100), (3, 0)]
        .into_iter()
        .map(|(n, pending)| (id(n), lagging(pending)))
        .collect();
    let labelled = bounded(&read, 3);
    let keys: Vec<&str> = labelled.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [OTHER, id(0).as_str(), id(1).as_str(), id(2).as_str()]
    );
    assert_eq!(labelled[OTHER], lagging(0));

    let labelled = bounded(&read, 1);
    assert_eq!(labelled.len(), 2);
    assert_eq!(labelled[id(2).as_str()], lagging(100));
    let other = &labelled[OTHER];
    assert_eq!(
        other.events,
        Some(ConsumerLevel {
            pending: 10,
            ack_pending: 3
        })
    );
    assert_eq!(other.dead_letters, 6);
    assert_eq!(
        other.retries, None,
        "no summed subscription had a retry consumer"
    );
}

#[test]
fn series_of_a_subscription_no_longer_read_are_removed() {
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry).unwrap();
    let mut gauges = Gauges::new(&metrics, 10);
    let read: BTreeMap<_, _> = (0..2).map(|n| (id(n), lagging(7))).collect();
    gauges.update(&read);
    let text = exported(&registry);
    assert!(
        text.contains(&format!(
            "herald_subscription_consumer_lag{{stream=\"HERALD_EVENTS\",subscription_id=\"{}\"}} 7",
            id(1).as_str()
        )),
        "{text}"
    );
    assert!(text.contains("herald_control_subscriptions 2"), "{text}");

    let read: BTreeMap<_, _> = [(id(0), lagging(7))].into_iter().collect();
    gauges.update(&read);
    let text = exported(&registry);
    assert!(!text.contains(id(1).as_str()), "{text}");
    assert!(text.contains(id(0).as_str()), "{text}");
    assert!(
        !text.contains("stream=\"HERALD_RETRIES\""),
        "a subscription without a retry consumer has no retry-consumer series: {text}"
    );
}

fn exported(registry: &prometheus::Registry) -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap()
}

#[test]
fn a_limit_of_zero_exports_only_the_sum() {
    let read: BTreeMap<_, _> = (0..2).map(|n| (id(n), lagging(5))).collect();
    let labelled = bounded(&read, 0);
    let keys: Vec<&str> = labelled.keys().map(String::as_str).collect();
    assert_eq!(keys, [OTHER]);
    assert_eq!(labelled[OTHER].dead_letters, 4);
    assert!(bounded(&BTreeMap::new(), 0).is_empty());
}
