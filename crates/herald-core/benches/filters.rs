//! Filter evaluation cost per event, for each dialect: `cargo bench -p herald-core --bench
//! filters`. Filters are compiled once, as the dispatcher does per subscription revision; each
//! iteration evaluates one event. Not part of `make test`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};

use herald_core::Event;
use herald_core::filter::{self, Filter};

fn event() -> Event {
    let json = r#"{"specversion":"1.0","id":"order-1","source":"/shop/eu","type":"com.shop.order.created","subject":"order-1","region":"eu","priority":5,"datacontenttype":"application/json","data":{"total":150,"currency":"EUR","items":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}}"#;
    Event::from_structured(Bytes::from_static(json.as_bytes())).expect("the event should be valid")
}

fn cases() -> Vec<(&'static str, Filter)> {
    let parse =
        |json: &str| -> Filter { serde_json::from_str(json).expect("the filter should parse") };
    vec![
        (
            "exact",
            parse(r#"{"exact":{"type":"com.shop.order.created"}}"#),
        ),
        ("prefix", parse(r#"{"prefix":{"type":"com.shop."}}"#)),
        ("suffix", parse(r#"{"suffix":{"type":".created"}}"#)),
        (
            "all_any_not_tree",
            parse(
                r#"{"all":[{"prefix":{"type":"com.shop."}},{"any":[{"exact":{"region":"us"}},{"exact":{"region":"eu"}}]},{"not":{"suffix":{"source":"/test"}}}]}"#,
            ),
        ),
        (
            "sql",
            Filter::Sql("type LIKE 'com.shop.%' AND region = 'eu' AND priority > 3".to_owned()),
        ),
        (
            "cel_attributes",
            Filter::Cel(
                r#"type.startsWith("com.shop.") && region == "eu" && priority > 3"#.to_owned(),
            ),
        ),
        (
            "cel_data",
            Filter::Cel(r#"type.startsWith("com.shop.") && data.total > 100"#.to_owned()),
        ),
    ]
}

fn filters(criterion: &mut Criterion) {
    let event = event();
    let mut group = criterion.benchmark_group("filter_per_event");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, filter) in cases() {
        let compiled = filter::compile(&[filter]).expect("the filter should compile");
        assert!(
            compiled.matches(&event).matched,
            "{name} should match the event"
        );
        group.bench_function(name, |bencher| {
            bencher.iter(|| std::hint::black_box(compiled.matches(std::hint::black_box(&event))));
        });
    }
    group.finish();
}

criterion_group!(benches, filters);
criterion_main!(benches);
