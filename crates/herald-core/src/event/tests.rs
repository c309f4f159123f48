//! Event validation tests: a table of bad events and the attribute each names, and the
//! structured form of binary-mode events checked by an independent parser (cloudevents-sdk).

use bytes::Bytes;

use super::*;

fn structured(json: &str) -> Result<Event, EventError> {
    Event::from_structured(Bytes::copy_from_slice(json.as_bytes()))
}

fn binary(
    headers: &[(&str, &str)],
    content_type: Option<&str>,
    body: &str,
) -> Result<Event, EventError> {
    Event::from_binary(
        headers.iter().map(|(k, v)| (*k, v.as_bytes())),
        content_type,
        body.as_bytes(),
    )
}

const BASE: &[(&str, &str)] = &[
    ("ce-specversion", "1.0"),
    ("ce-id", "1"),
    ("ce-source", "/shop"),
    ("ce-type", "order.created"),
];

#[test]
fn accepts_a_minimal_structured_event_and_keeps_its_bytes() {
    let json = r#"{"specversion":"1.0","id":"1","source":"/shop","type":"order.created","data":{"total":12345678901234567890123}}"#;
    let event = structured(json).unwrap();
    assert_eq!(event.ty(), "order.created");
    assert_eq!(event.structured().as_ref(), json.as_bytes());
}

#[test]
fn rejects_bad_structured_events_naming_the_attribute() {
    let cases = [
        ("[]", "body is not a JSON object"),
        ("{", "body is not a JSON object"),
        (
            r#"{"id":"1","source":"/s","type":"t"}"#,
            "missing required attribute `specversion`",
        ),
        (
            r#"{"specversion":"0.3","id":"1","source":"/s","type":"t"}"#,
            "unsupported specversion `0.3`",
        ),
        (
            r#"{"specversion":"1.0","source":"/s","type":"t"}"#,
            "missing required attribute `id`",
        ),
        (
            r#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#,
            "attribute `id`: must not be empty",
        ),
        (
            r#"{"specversion":"1.0","id":"1","type":"t"}"#,
            "missing required attribute `source`",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s"}"#,
            "missing required attribute `type`",
        ),
        (
            r#"{"specversion":"1.0","id":7,"source":"/s","type":"t"}"#,
            "attribute `id`: must be a string",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"a b","type":"t"}"#,
            "attribute `source`: must be a URI-reference",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"yesterday"}"#,
            "attribute `time`: must be an RFC 3339 timestamp",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","dataschema":"rel/path"}"#,
            "attribute `dataschema`: must be an absolute URI",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"json"}"#,
            "attribute `datacontenttype`: must be a media type",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad":"x"}"#,
            "attribute `Bad`: extension names must be",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":{"a":1}}"#,
            "attribute `ext`: an extension must be",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":1.5}"#,
            "attribute `ext`: a number extension must be a 32-bit integer",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}"#,
            "mutually exclusive",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"%%%"}"#,
            "attribute `data_base64`: must be valid base64",
        ),
        (
            r#"{"specversion":"1.0","id":"1\u0001","source":"/s","type":"t"}"#,
            "attribute `id`: must not contain control characters",
        ),
    ];
    for (json, expected) in cases {
        let error = structured(json).expect_err(json).to_string();
        assert!(
            error.contains(expected),
            "{json}: got `{error}`, expected `{expected}`"
        );
    }
}

#[test]
fn refuses_extension_values_that_only_a_full_parse_rejects() {
    // The first parse only delimits members; these fail when the value is read (they panicked).
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let cases = [
        r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":1e400}"#.to_owned(),
        r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":-1e400}"#.to_owned(),
        format!(r#"{{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":{deep}}}"#),
    ];
    for json in &cases {
        let error = structured(json).expect_err(json);
        assert_eq!(error.reason(), "invalid_attribute", "{json}: {error}");
        assert!(error.to_string().contains("attribute `ext`"), "{error}");
    }
}

#[test]
fn binary_mode_embeds_json_payload_raw() {
    let event = binary(BASE, Some("application/json"), r#"{"n": 1.0e3}"#).unwrap();
    let text = std::str::from_utf8(event.structured()).unwrap();
    assert_eq!(
        text,
        r#"{"specversion":"1.0","id":"1","source":"/shop","type":"order.created","datacontenttype":"application/json","data":{"n": 1.0e3}}"#
    );
}

#[test]
fn binary_mode_output_parses_with_an_independent_implementation() {
    let mut headers = BASE.to_vec();
    headers.extend([
        ("CE-Subject", "a%20b%22c"),
        ("ce-partitionkey", "customer-7"),
        ("ce-time", "2026-11-22T10:00:00Z"),
    ]);
    for (content_type, body) in [
        (Some("application/json"), r#"{"a":[1,2]}"#),
        (Some("text/plain"), "héllo"),
        (Some("application/octet-stream"), "\u{0}\u{1}"),
    ] {
        let event = binary(&headers, content_type, body).unwrap();
        let parsed: cloudevents::Event = serde_json::from_slice(event.structured()).unwrap();
        use cloudevents::AttributesReader;
        assert_eq!(parsed.subject(), Some("a b\"c"));
        assert_eq!(parsed.id(), "1");
        let data = match parsed.data().unwrap() {
            cloudevents::Data::Binary(bytes) => bytes.clone(),
            cloudevents::Data::String(text) => text.clone().into_bytes(),
            cloudevents::Data::Json(json) => serde_json::to_vec(json).unwrap(),
        };
        assert_eq!(data, body.as_bytes(), "{content_type:?}");
    }
}

/// Headers, content type, body, and the expected error text.
type BinaryCase<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str, &'a str);

#[test]
fn rejects_bad_binary_events() {
    let cases: &[BinaryCase<'_>] = &[
        (
            &[("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t")],
            None,
            "",
            "missing required attribute `specversion`",
        ),
        (&BASE[..3], None, "", "missing required attribute `type`"),
        (
            BASE,
            Some("application/json"),
            "{not json",
            "data: the content type is JSON but the body is not",
        ),
        (
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "%zz"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
            ],
            None,
            "",
            "attribute `id`: invalid percent-escape",
        ),
        (
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
                ("ce-time", "now"),
            ],
            None,
            "",
            "attribute `time`",
        ),
    ];
    for (headers, content_type, body, expected) in cases {
        let error = binary(headers, *content_type, body)
            .expect_err(expected)
            .to_string();
        assert!(
            error.contains(expected),
            "got `{error}`, expected `{expected}`"
        );
    }
}

#[test]
fn header_values_round_trip_through_percent_encoding() {
    for value in ["plain", "with space", "quote\"and%percent", "ünïcødé ✓", ""] {
        assert_eq!(
            decode_header_value(encode_header_value(value).as_bytes()).unwrap(),
            value
        );
    }
    assert_eq!(
        decode_header_value(br#""quoted \"x\"""#).unwrap(),
        "quoted \"x\""
    );
}

#[test]
fn message_id_depends_on_source_and_id_without_ambiguity() {
    let a = MessageId::derive("/a", "b/c");
    assert_eq!(a, MessageId::derive("/a", "b/c"));
    assert_ne!(a, MessageId::derive("/ab", "/c"));
    assert_ne!(a, MessageId::derive("/a", "b/d"));
    assert!(a.as_str().starts_with("msg_") && a.as_str().len() == 36 && !a.as_str().contains('.'));
}

#[test]
fn attributes_have_canonical_string_forms() {
    let json = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","flag":true,"count":-3,"partitionkey":"k"}"#;
    let event = structured(json).unwrap();
    assert_eq!(event.attribute("flag").as_deref(), Some("true"));
    assert_eq!(event.attribute("count").as_deref(), Some("-3"));
    assert_eq!(event.attribute("specversion").as_deref(), Some("1.0"));
    assert_eq!(event.attribute("subject"), None);
    assert_eq!(event.partition_key().as_deref(), Some("k"));
}

/// Returns the binary form's headers as `(name, value)` string pairs, in order.
fn header_pairs(form: &BinaryForm) -> Vec<(&str, &str)> {
    form.headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

#[test]
fn binary_form_puts_attributes_in_percent_encoded_headers_and_json_data_as_stored() {
    let json = r#"{"specversion":"1.0","id":"e 1","source":"/shop","type":"order.created","subject":"order 42 ✓","time":"2026-11-22T10:00:00Z","dataschema":"https://example.com/s","flag":true,"count":-3,"region":"eu","data":{"total": 12.50}}"#;
    let form = structured(json).unwrap().to_binary().unwrap();
    assert_eq!(
        header_pairs(&form),
        [
            ("ce-specversion", "1.0"),
            ("ce-id", "e%201"),
            ("ce-source", "/shop"),
            ("ce-type", "order.created"),
            ("ce-dataschema", "https://example.com/s"),
            ("ce-subject", "order%2042%20%E2%9C%93"),
            ("ce-time", "2026-11-22T10:00:00Z"),
            ("ce-count", "-3"),
            ("ce-flag", "true"),
            ("ce-region", "eu"),
        ]
    );
    assert_eq!(
        form.content_type.as_deref(),
        Some("application/json"),
        "JSON data without datacontenttype is application/json"
    );
    assert_eq!(form.body.as_ref(), br#"{"total": 12.50}"#, "byte for byte");
}

#[test]
fn binary_form_sends_text_as_text_and_base64_data_as_its_bytes() {
    let cases: [(&str, Option<&str>, &[u8]); 5] = [
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"h\u00e9llo \"x\""}"#,
            Some("text/plain"),
            "héllo \"x\"".as_bytes(),
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/json","data":"a string"}"#,
            Some("application/json"),
            br#""a string""#,
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="}"#,
            Some("application/octet-stream"),
            &[0, 1, 2, 255],
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":null}"#,
            None,
            b"",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/xml"}"#,
            Some("application/xml"),
            b"",
        ),
    ];
    for (json, content_type, body) in cases {
        let form = structured(json).unwrap().to_binary().unwrap();
        assert_eq!(form.content_type.as_deref(), content_type, "{json}");
        assert_eq!(form.body.as_ref(), body, "{json}");
    }
}

#[test]
fn binary_form_decodes_back_to_the_same_event() {
    let mut headers = BASE.to_vec();
    headers.extend([("ce-subject", "a%20b%22c"), ("ce-partitionkey", "k 7")]);
    for (content_type, body) in [
        (Some("application/json"), &br#"{"a": [1, 2.50]}"#[..]),
        (Some("text/plain; charset=utf-8"), "héllo".as_bytes()),
        (Some("application/octet-stream"), &[0, 159, 255][..]),
        (Some("text/plain"), &[0xff, 0xfe][..]),
        (None, &b""[..]),
    ] {
        let event = Event::from_binary(
            headers.iter().map(|(k, v)| (*k, v.as_bytes())),
            content_type,
            body,
        )
        .unwrap();
        let form = event.to_binary().unwrap();
        assert_eq!(form.body.as_ref(), body, "{content_type:?}");
        assert_eq!(form.content_type.as_deref(), content_type);
        let decoded = Event::from_binary(
            form.headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
            form.content_type.as_deref(),
            &form.body,
        )
        .unwrap();
        assert_eq!(decoded, event, "{content_type:?}");
    }
}

#[test]
fn binary_data_without_a_content_type_decodes_back_from_its_binary_form() {
    // Found by the `batch` fuzz target: `data_base64` and no `datacontenttype` became a body
    // with no content type, which binary mode then read as JSON and refused.
    for structured in [
        &br#"{"specversion":"1.0","id":"4","source":"/","type":"d","data_base64":"aG8="}"#[..],
        br#"{"specversion":"1.0","id":"5","source":"/","type":"d","data_base64":"AJ//"}"#,
    ] {
        let event = Event::from_structured(Bytes::from_static(structured)).unwrap();
        let form = event.to_binary().unwrap();
        assert_eq!(form.content_type, None);
        let decoded = Event::from_binary(
            form.headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
            None,
            &form.body,
        )
        .unwrap();
        assert_eq!(decoded.to_binary().unwrap().body, form.body);
        assert_eq!(decoded, event);
    }
    // Without a content type, a body that is JSON is still JSON data.
    let event = Event::from_binary(
        BASE.iter().map(|(k, v)| (*k, v.as_bytes())),
        None,
        br#"{"a":1}"#,
    )
    .unwrap();
    assert!(event.structured().ends_with(br#","data":{"a":1}}"#));
}
