//! CEL filter expressions: parsing and the static check (`filter::validate`), compilation and
//! evaluation on events with and without JSON data (`filter::compile`, `matches`, `explain`).
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
    let filters = [Filter::Cel(text.to_owned())];
    let _ = filter::validate(&filters);
    if let Ok(compiled) = filter::compile(&filters) {
        for event in events() {
            let _ = compiled.matches(event);
            let _ = compiled.explain(event);
        }
    }
});
