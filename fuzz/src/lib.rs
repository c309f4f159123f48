//! What the fuzz targets share: splitting one input into binary-mode parts, and what every
//! decoded event must survive (the dispatcher lays each one out in binary mode, builds its
//! subject and message id, and filters evaluate on it).

use bytes::Bytes;
use herald_core::Event;

/// An event the filters below are evaluated on, with JSON data.
pub const JSON_EVENT: &str = r#"{"specversion":"1.0","id":"fuzz-1","source":"/fuzz","type":"com.example.fuzz","subject":"s","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","partitionkey":"k","n":5,"flag":true,"data":{"a":{"b":[1,2,{"c":"d"}]},"n":-3.5,"s":"text"}}"#;

/// An event with data that is not JSON.
pub const TEXT_EVENT: &str = r#"{"specversion":"1.0","id":"fuzz-2","source":"/fuzz","type":"com.example.text","datacontenttype":"text/plain","data":"hello"}"#;

/// Returns the two fixed events filters are evaluated on.
pub fn sample_events() -> [Event; 2] {
    [JSON_EVENT, TEXT_EVENT].map(|text| {
        Event::from_structured(Bytes::from_static(text.as_bytes()))
            .expect("the sample events should be valid")
    })
}

/// Binary-mode parts read from one input: `name: value` lines (the value's bytes as sent),
/// a `content-type` line taken as the content type, then an empty line and the body.
pub struct BinaryParts<'a> {
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// Splits `data` into binary-mode parts; header names that are not UTF-8 are skipped, as an
/// HTTP server or the NATS client would never hand them over.
pub fn binary_parts(data: &[u8]) -> BinaryParts<'_> {
    let (head, body) = match data.windows(2).position(|pair| pair == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = Vec::new();
    let mut content_type = None;
    for line in head.split(|byte| *byte == b'\n') {
        let Some(colon) = line.iter().position(|byte| *byte == b':') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&line[..colon]) else {
            continue;
        };
        let value = line[colon + 1..].strip_prefix(b" ").unwrap_or(&line[colon + 1..]);
        if name.eq_ignore_ascii_case("content-type") {
            content_type = std::str::from_utf8(value).ok();
        } else {
            headers.push((name, value));
        }
    }
    BinaryParts {
        headers,
        content_type,
        body,
    }
}

/// Uses a decoded event as Herald does after accepting it: its message id, ordering key and
/// subject, and its binary-mode form, which must decode back to the same event.
pub fn exercise(event: &Event) {
    let _ = event.message_id();
    let key = event.partition_key();
    let partition = key.as_deref().map_or(0, herald_core::subject::partition_of);
    if let Some(subject) = herald_core::subject::event_subject(partition, event.ty()) {
        assert_eq!(
            herald_core::subject::event_type_of(&subject).as_deref(),
            Some(event.ty()),
            "the subject should carry the event's type"
        );
    }
    for name in ["id", "source", "type", "time", "subject", "datacontenttype", "partitionkey"] {
        let _ = event.attribute(name);
    }
    if let Ok(form) = event.to_binary() {
        let headers = form
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()));
        let again = Event::from_binary(headers, form.content_type.as_deref(), &form.body)
            .expect("an event's binary-mode form should decode");
        assert_eq!(again.id(), event.id());
        assert_eq!(again.source(), event.source());
        assert_eq!(again.ty(), event.ty());
    }
}
