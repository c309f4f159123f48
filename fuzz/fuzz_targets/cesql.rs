//! CESQL expressions: `herald_cesql::parse`, the static `check` run before a filter is stored,
//! and evaluation on events, directly and as a `sql` filter (`filter::validate`, `compile`).
#![no_main]

use std::sync::OnceLock;

use herald_core::{Event, Filter, filter};
use libfuzzer_sys::fuzz_target;

fn events() -> &'static [Event; 2] {
    static EVENTS: OnceLock<[Event; 2]> = OnceLock::new();
    EVENTS.get_or_init(herald_fuzz::sample_events)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expression) = herald_cesql::parse(text) {
        let _ = expression.check();
        let _ = expression.referenced_attributes();
        for event in events() {
            let _ = expression.evaluate(event.attributes()).matches();
        }
    }
    let filters = [Filter::Sql(text.to_owned())];
    let _ = filter::validate(&filters);
    if let Ok(compiled) = filter::compile(&filters) {
        for event in events() {
            let _ = compiled.matches(event);
            let _ = compiled.explain(event);
        }
    }
});
