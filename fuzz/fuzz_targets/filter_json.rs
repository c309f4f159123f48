//! Subscription filters as they arrive: the CloudEvents Subscriptions API JSON (heraldctl's
//! `--filter`, the stored subscription) and the gRPC `Filter` message (protobuf), then
//! validation, the NATS subjects they narrow to, compilation and evaluation.
#![no_main]

use std::sync::OnceLock;

use herald_core::{Event, Filter, filter};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fn events() -> &'static [Event; 2] {
    static EVENTS: OnceLock<[Event; 2]> = OnceLock::new();
    EVENTS.get_or_init(herald_fuzz::sample_events)
}

fn use_filters(filters: &[Filter]) {
    let _ = filter::validate(filters);
    let _ = herald_core::subject::filter_subjects(filters);
    if let Ok(compiled) = filter::compile(filters) {
        for event in events() {
            let _ = compiled.matches(event);
            let _ = compiled.explain(event);
        }
    }
    let json = serde_json::to_string(filters).expect("filters should serialize");
    let again: Vec<Filter> = serde_json::from_str(&json).expect("serialized filters should parse");
    assert_eq!(again, filters, "the storage form should round-trip");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(filters) = serde_json::from_slice::<Vec<Filter>>(data) {
        use_filters(&filters);
    } else if let Ok(one) = serde_json::from_slice::<Filter>(data) {
        use_filters(&[one]);
    }
    if let Ok(list) = herald_proto::v1::FilterList::decode(data) {
        if let Ok(filters) = herald_proto::filters_from_pb(&list.filters) {
            use_filters(&filters);
        }
    }
});
