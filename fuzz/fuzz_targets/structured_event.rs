//! Structured-mode CloudEvents JSON (`Event::from_structured`): what ingest reads from a
//! request body and what the dispatcher reads from a stored message.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = herald_core::Event::from_structured(Bytes::copy_from_slice(data)) {
        herald_fuzz::exercise(&event);
    }
});
