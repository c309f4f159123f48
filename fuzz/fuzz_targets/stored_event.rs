//! Stored messages (`Event::from_stored`), the one decoder the dispatcher and replay use for
//! what the events stream holds: structured when the content type says so, otherwise binary
//! mode (`ce-` headers) as direct NATS producers may publish. The first line of the input is the
//! content type (empty: none), then header lines, an empty line and the payload.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|byte| *byte == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let content_type = std::str::from_utf8(first).ok().filter(|text| !text.is_empty());
    let parts = herald_fuzz::binary_parts(rest);
    let payload = Bytes::copy_from_slice(parts.body);
    let event =
        herald_core::Event::from_stored(content_type, parts.headers.iter().copied(), &payload);
    if let Ok(event) = event {
        herald_fuzz::exercise(&event);
    }
});
