//! A corpus of malformed requests, each on its own connection: every one answers a 4xx problem
//! document, none publishes anything, and the service answers a valid event afterwards.

use herald_test_support::{NatsServer, structured_event};

use crate::support::{Answer, TestIngest, Timeouts, request};

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";

/// One malformed request and how it is sent.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// Whether the client stops sending (half-closes) after these bytes.
    truncated: bool,
}

fn case(name: &'static str, bytes: Vec<u8>) -> Case {
    Case {
        name,
        bytes,
        truncated: false,
    }
}

fn structured(name: &'static str, body: &[u8]) -> Case {
    case(
        name,
        request("POST", "/v1/events", &[("content-type", STRUCTURED)], body),
    )
}

fn batch(name: &'static str, body: &[u8]) -> Case {
    case(
        name,
        request("POST", "/v1/events", &[("content-type", BATCH)], body),
    )
}

/// A binary-mode request: a valid set of `ce-` headers with `changes` laid over it (a `None`
/// value removes the header), then `extra` fields as given, repeats included.
fn binary(name: &'static str, changes: &[(&str, Option<&str>)], extra: &[(&str, &str)]) -> Case {
    let mut fields: Vec<(&str, &str)> = vec![
        ("ce-specversion", "1.0"),
        ("ce-id", "binary-1"),
        ("ce-source", "/herald/tests"),
        ("ce-type", "com.corpus"),
        ("content-type", "application/json"),
    ];
    for (header, value) in changes {
        fields.retain(|(field, _)| field != header);
        if let Some(value) = value {
            fields.push((header, value));
        }
    }
    fields.extend_from_slice(extra);
    case(name, request("POST", "/v1/events", &fields, br#"{"n":1}"#))
}

/// A structured event with the attribute `name` set to the JSON text `value` (or removed).
fn event_with(name: &str, value: Option<&str>) -> String {
    let mut event: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&structured_event("corpus-1", "com.corpus")).unwrap();
    event.remove(name);
    let mut text = serde_json::to_string(&event).unwrap();
    if let Some(value) = value {
        text.pop();
        text.push_str(&format!(r#","{name}":{value}}}"#));
    }
    text
}

fn corpus() -> Vec<Case> {
    let valid = structured_event("corpus-valid", "com.corpus");
    let deep = format!(
        r#"{{"specversion":"1.0","id":"deep","source":"/s","type":"t","data":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let long_type = "a.".repeat(600) + "b";
    let too_many: Vec<String> = (0..101)
        .map(|n| structured_event(&format!("many-{n}"), "com.corpus"))
        .collect();
    let mut bad_utf8 = valid.clone().into_bytes();
    let at = bad_utf8.len() - 3;
    bad_utf8.splice(at..at, [0xff, 0xfe]);
    let mut header_utf8 = request(
        "POST",
        "/v1/events",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "PLACEHOLDER"),
            ("ce-source", "/herald/tests"),
            ("ce-type", "com.corpus"),
        ],
        b"{}",
    );
    let at = header_utf8
        .windows(11)
        .position(|window| window == b"PLACEHOLDER")
        .unwrap();
    header_utf8.splice(at..at + 11, [0xc3, 0x28, 0xff]);
    let mut truncated = request(
        "POST",
        "/v1/events",
        &[("content-type", STRUCTURED)],
        valid.as_bytes(),
    );
    truncated.truncate(truncated.len() - valid.len() / 2);
    let chunked_oversize = {
        let chunk = "x".repeat(32 * 1024);
        let mut bytes = format!(
            "POST /v1/events HTTP/1.1\r\nhost: herald.test\r\ncontent-type: {STRUCTURED}\r\n\
             transfer-encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        for _ in 0..3 {
            bytes.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        bytes
    };

    vec![
        // Structured mode: not JSON, not an event.
        structured("an empty structured body", b""),
        structured("JSON cut short", br#"{"specversion":"1.0","id":"#),
        structured("not JSON at all", b"hello, herald"),
        structured("a JSON array in structured mode", b"[]"),
        structured("a JSON string", br#""an event""#),
        structured("a JSON null", b"null"),
        structured(
            "trailing bytes after the event",
            format!("{valid} {{}}").as_bytes(),
        ),
        structured("invalid UTF-8 in the body", &bad_utf8),
        structured(
            "a lone surrogate escape",
            event_with("id", Some(r#""\ud800""#)).as_bytes(),
        ),
        structured("data nested 100,000 deep", deep.as_bytes()),
        // Structured mode: required attributes missing or wrong.
        structured("no specversion", event_with("specversion", None).as_bytes()),
        structured(
            "specversion 0.3",
            event_with("specversion", Some(r#""0.3""#)).as_bytes(),
        ),
        structured("no id", event_with("id", None).as_bytes()),
        structured("an empty id", event_with("id", Some(r#""""#)).as_bytes()),
        structured(
            "an id that is an object",
            event_with("id", Some("{}")).as_bytes(),
        ),
        structured("no source", event_with("source", None).as_bytes()),
        structured(
            "an empty source",
            event_with("source", Some(r#""""#)).as_bytes(),
        ),
        structured("no type", event_with("type", None).as_bytes()),
        structured(
            "a type that is a number",
            event_with("type", Some("5")).as_bytes(),
        ),
        structured(
            "a type too long for a subject",
            event_with("type", Some(&format!(r#""{long_type}""#))).as_bytes(),
        ),
        structured(
            "a time that is not RFC 3339",
            event_with("time", Some(r#""yesterday""#)).as_bytes(),
        ),
        structured(
            "an extension name with capitals and a dash",
            event_with("Bad-Name", Some(r#""x""#)).as_bytes(),
        ),
        structured(
            "an extension value that is an object",
            event_with("extobject", Some(r#"{"a":1}"#)).as_bytes(),
        ),
        structured(
            "an extension number out of range",
            event_with("extbig", Some("1e400")).as_bytes(),
        ),
        structured(
            "data_base64 that is not base64",
            event_with("data_base64", Some(r#""***""#)).as_bytes(),
        ),
        // Media types.
        case(
            "no content type and no ce- headers",
            request("POST", "/v1/events", &[], valid.as_bytes()),
        ),
        case(
            "text/plain without ce- headers",
            request(
                "POST",
                "/v1/events",
                &[("content-type", "text/plain")],
                valid.as_bytes(),
            ),
        ),
        case(
            "an unknown cloudevents format",
            request(
                "POST",
                "/v1/events",
                &[("content-type", "application/cloudevents+xml")],
                b"<event/>",
            ),
        ),
        case(
            "a content type that is not a media type",
            request(
                "POST",
                "/v1/events",
                &[("content-type", "///")],
                valid.as_bytes(),
            ),
        ),
        case(
            "a gzip content encoding that is not gzip",
            request(
                "POST",
                "/v1/events",
                &[("content-type", STRUCTURED), ("content-encoding", "gzip")],
                valid.as_bytes(),
            ),
        ),
        case(
            "a brotli content encoding",
            request(
                "POST",
                "/v1/events",
                &[("content-type", STRUCTURED), ("content-encoding", "br")],
                valid.as_bytes(),
            ),
        ),
        binary(
            "binary data gzip-encoded",
            &[],
            &[("content-encoding", "identity, gzip")],
        ),
        // Batch mode.
        batch("a batch that is an object", valid.as_bytes()),
        batch("an empty batch", b"[]"),
        batch("a batch of numbers", b"[1,2,3]"),
        batch("a batch cut short", format!("[{valid},").as_bytes()),
        batch(
            "a batch whose last event has no id",
            format!("[{valid},{}]", event_with("id", None)).as_bytes(),
        ),
        batch(
            "a batch whose last event's type is too long for a subject",
            format!(
                "[{valid},{}]",
                event_with("type", Some(&format!(r#""{long_type}""#)))
            )
            .as_bytes(),
        ),
        batch(
            "a batch over max_batch_events",
            format!("[{}]", too_many.join(",")).as_bytes(),
        ),
        // Binary mode.
        binary("binary without ce-id", &[("ce-id", None)], &[]),
        binary("binary without ce-source", &[("ce-source", None)], &[]),
        binary(
            "binary with ce-specversion 2.0",
            &[("ce-specversion", Some("2.0"))],
            &[],
        ),
        binary(
            "binary with an empty ce-type",
            &[("ce-type", Some(""))],
            &[],
        ),
        binary(
            "binary with a bad ce-time",
            &[("ce-time", Some("12:00"))],
            &[],
        ),
        binary("a repeated ce-id", &[], &[("ce-id", "binary-2")]),
        binary("a repeated ce-type", &[], &[("ce-type", "com.other")]),
        binary(
            "a repeated content-type",
            &[],
            &[("content-type", "text/plain")],
        ),
        binary(
            "a ce- extension name with a dash",
            &[],
            &[("ce-bad-name", "x")],
        ),
        case("a ce-id that is not UTF-8", header_utf8),
        // Sizes and framing.
        structured("a body over max_body_bytes", &vec![b' '; 65 * 1024]),
        case("a chunked body over max_body_bytes", chunked_oversize),
        case(
            "a content-length of twenty digits",
            format!(
                "POST /v1/events HTTP/1.1\r\nhost: herald.test\r\ncontent-type: {STRUCTURED}\r\n\
                 content-length: 99999999999999999999\r\n\r\n"
            )
            .into_bytes(),
        ),
        case(
            "two different content-lengths",
            format!(
                "POST /v1/events HTTP/1.1\r\nhost: herald.test\r\ncontent-type: {STRUCTURED}\r\n\
                 content-length: 2\r\ncontent-length: 3\r\n\r\n{{}}"
            )
            .into_bytes(),
        ),
        case(
            "a header of 200 kB",
            request(
                "POST",
                "/v1/events",
                &[
                    ("content-type", STRUCTURED),
                    ("x-big", &"b".repeat(200_000)),
                ],
                valid.as_bytes(),
            ),
        ),
        case(
            "a request line that is not HTTP",
            b"HELLO HERALD\r\n\r\n".to_vec(),
        ),
        case(
            "an unknown path",
            request(
                "POST",
                "/v1/event",
                &[("content-type", STRUCTURED)],
                valid.as_bytes(),
            ),
        ),
        case(
            "PUT on the events path",
            request(
                "PUT",
                "/v1/events",
                &[("content-type", STRUCTURED)],
                valid.as_bytes(),
            ),
        ),
        Case {
            name: "a body cut short by the client",
            bytes: truncated,
            truncated: true,
        },
    ]
}

#[tokio::test]
async fn malformed_requests_answer_4xx_problems_and_publish_nothing() {
    let server = NatsServer::start().await;
    let ingest = TestIngest::start(&server.url(), Timeouts::default()).await;
    let cases = corpus();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        // Some refusals close the connection: one connection per case.
        let mut http = ingest.connect().await;
        let answer = if case.truncated {
            http.send_then_close(&case.bytes).await
        } else {
            http.send(&case.bytes).await
        };
        if let Err(failure) = check(&answer) {
            failures.push(format!("{}: {failure}", case.name));
        }
        let stored = ingest.events_stored().await;
        if stored > 0 {
            failures.push(format!("{}: published, {stored} events stored", case.name));
            break;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(ingest.events_stored().await, 0, "nothing was published");
    // Still serving, heads of 32 KiB included, and identity is no coding.
    let mut http = ingest.connect().await;
    let padding = "p".repeat(32 * 1024);
    let answer = http
        .send(&request(
            "POST",
            "/v1/events",
            &[
                ("content-type", STRUCTURED),
                ("content-encoding", "identity"),
                ("x-padding", &padding),
            ],
            structured_event("after-the-corpus", "com.corpus").as_bytes(),
        ))
        .await;
    assert_eq!(answer.status, 202, "still serving: {answer:?}");
    assert_eq!(ingest.events_stored().await, 1);
}

/// Checks that `answer` is a 4xx problem document whose `status` is the answer's.
fn check(answer: &Answer) -> Result<(), String> {
    if !(400..500).contains(&answer.status) {
        return Err(format!(
            "answered {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    if answer.header("content-type") != Some("application/problem+json") {
        return Err(format!("not a problem document: {answer:?}"));
    }
    let problem: serde_json::Value = serde_json::from_slice(&answer.body)
        .map_err(|err| format!("the problem is not JSON ({err}): {answer:?}"))?;
    if problem["status"] != answer.status || !problem["type"].is_string() {
        return Err(format!("a problem without its status or type: {problem}"));
    }
    Ok(())
}
