//! Binary-mode events (`Event::from_binary`): `ce-` headers with percent-encoded values, the
//! content type and the body, as ingest reads an HTTP request and `heraldctl listen` a delivery.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parts = herald_fuzz::binary_parts(data);
    for (_, value) in &parts.headers {
        if let Ok(decoded) = herald_core::event::decode_header_value(value) {
            let encoded = herald_core::event::encode_header_value(&decoded);
            assert_eq!(
                herald_core::event::decode_header_value(encoded.as_bytes()).as_deref(),
                Ok(decoded.as_str()),
                "a header value should survive encoding"
            );
        }
    }
    let event =
        herald_core::Event::from_binary(parts.headers.iter().copied(), parts.content_type, parts.body);
    if let Ok(event) = event {
        herald_fuzz::exercise(&event);
    }
});
