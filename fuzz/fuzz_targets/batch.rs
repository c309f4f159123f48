//! Batch mode (`application/cloudevents-batch+json`): a JSON array whose members are each
//! decoded as a structured event, split as ingest's `routes::parse_batch` splits it (members as
//! raw JSON slices of the body, each given to `Event::from_structured`).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let Ok(members) = serde_json::from_slice::<Vec<&RawValue>>(&body) else {
        return;
    };
    for member in members {
        let bytes = body.slice_ref(member.get().as_bytes());
        if let Ok(event) = herald_core::Event::from_structured(bytes) {
            herald_fuzz::exercise(&event);
        }
    }
});
