//! Every refusal is an `application/problem+json` document naming what is at fault, and a
//! refused request leaves its connection usable.

use herald_test_support::{NatsServer, structured_event};

use crate::support::{Answer, TestIngest, Timeouts, post_structured, request};

/// A structured event with the extension `name` set to the JSON text `value`.
fn event_with_extension(id: &str, name: &str, value: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/herald/tests","type":"t","{name}":{value}}}"#
    )
}

fn assert_refused(answer: &Answer, status: u16, problem_type: &str, detail: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    let problem = answer.problem();
    assert_eq!(problem["type"], problem_type, "{problem}");
    let actual = problem["detail"].as_str().unwrap_or_default();
    assert!(
        actual.contains(detail),
        "detail `{actual}` should name {detail}"
    );
}

// Issue 10, defect 2: these values pass the first, delimiting parse of an event and used to
// panic in the second, dropping the connection without an answer.
#[tokio::test]
async fn refuses_out_of_range_and_too_deep_extension_values_and_keeps_the_connection() {
    let server = NatsServer::start().await;
    let ingest = TestIngest::start(&server.url(), Timeouts::default()).await;
    let mut http = ingest.connect().await;
    let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases = [
        (
            "out of range",
            event_with_extension("e1", "big", "1e400"),
            "attribute `big`",
        ),
        (
            "too deep",
            event_with_extension("e2", "deep", &too_deep),
            "attribute `deep`",
        ),
    ];
    for (name, event, detail) in &cases {
        let answer = http.send(&post_structured(event)).await;
        assert_refused(&answer, 400, "urn:herald:problem:invalid-event", detail);
        assert_eq!(answer.header("connection"), None, "{name}: kept alive");
    }
    for (name, event, detail) in &cases {
        let batch = format!("[{},{event}]", structured_event("fine", "t"));
        let answer = http
            .send(&request(
                "POST",
                "/v1/events",
                &[("content-type", "application/cloudevents-batch+json")],
                batch.as_bytes(),
            ))
            .await;
        assert_refused(
            &answer,
            400,
            "urn:herald:problem:invalid-batch",
            "1 of its events",
        );
        let problem = answer.problem();
        assert_eq!(problem["errors"][0]["index"], 1, "{name}: {problem}");
        let entry = problem["errors"][0]["detail"].as_str().unwrap_or_default();
        assert!(
            entry.contains(detail),
            "{name}: `{entry}` should name {detail}"
        );
    }
    let answer = http
        .send(&post_structured(&structured_event("after", "t")))
        .await;
    assert_eq!(
        answer.status, 202,
        "the same connection still serves: {answer:?}"
    );
    assert_eq!(
        ingest.events_stored().await,
        1,
        "only the valid event is stored"
    );
}

// Issue 10, defect 9: `ce-id: a` and `ce-id: b` used to be accepted as event `b`, while a proxy
// reading the first copy saw event `a`.
#[tokio::test]
async fn refuses_repeated_ce_and_content_type_headers_naming_them() {
    let server = NatsServer::start().await;
    let ingest = TestIngest::start(&server.url(), Timeouts::default()).await;
    let mut http = ingest.connect().await;
    let binary = |extra: &[(&'static str, &'static str)]| {
        let mut fields = vec![
            ("ce-specversion", "1.0"),
            ("ce-source", "/herald/tests"),
            ("ce-type", "t"),
            ("content-type", "application/json"),
        ];
        fields.extend_from_slice(extra);
        request("POST", "/v1/events", &fields, b"{}")
    };
    let cases = [
        (
            "ce-id twice",
            binary(&[("ce-id", "a"), ("ce-id", "b")]),
            "`ce-id`",
        ),
        (
            "ce-id in two cases",
            binary(&[("ce-id", "a"), ("CE-Id", "a")]),
            "`ce-id`",
        ),
        (
            "an extension twice",
            binary(&[("ce-id", "a"), ("ce-tenant", "x"), ("ce-tenant", "y")]),
            "`ce-tenant`",
        ),
        (
            "binary content-type twice",
            binary(&[("ce-id", "a"), ("content-type", "text/plain")]),
            "`content-type`",
        ),
        (
            "structured content-type twice",
            request(
                "POST",
                "/v1/events",
                &[
                    ("content-type", "application/cloudevents+json"),
                    ("content-type", "application/json"),
                ],
                structured_event("s", "t").as_bytes(),
            ),
            "`content-type`",
        ),
    ];
    for (name, request, header) in &cases {
        let answer = http.send(request).await;
        assert_eq!(answer.status, 400, "{name}: {answer:?}");
        assert_refused(&answer, 400, "urn:herald:problem:repeated-header", header);
    }
    let answer = http.send(&binary(&[("ce-id", "a")])).await;
    assert_eq!(answer.status, 202, "each header once is fine: {answer:?}");
    assert_eq!(answer.json()["id"], "a");
    assert_eq!(
        ingest.events_stored().await,
        1,
        "no refused request is stored"
    );
}

// Issue 10, defect 10: these used to come back with empty bodies.
#[tokio::test]
async fn answers_unknown_paths_and_methods_with_problem_documents() {
    let server = NatsServer::start().await;
    let ingest = TestIngest::start(&server.url(), Timeouts::default()).await;
    let mut http = ingest.connect().await;
    for (method, path) in [("GET", "/"), ("POST", "/v1/event"), ("GET", "/v1/events/1")] {
        let answer = http.send(&request(method, path, &[], b"")).await;
        assert_refused(&answer, 404, "urn:herald:problem:not-found", path);
    }
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let answer = http.send(&request(method, "/v1/events", &[], b"")).await;
        assert_refused(
            &answer,
            405,
            "urn:herald:problem:method-not-allowed",
            method,
        );
        let allow = answer.header("allow").unwrap_or_default();
        assert!(allow.contains("POST"), "{method}: Allow `{allow}`");
    }
}

// Issue 10, defect 10: hyper refuses these heads itself, before any handler runs; its answers
// used to have empty bodies.
#[tokio::test]
async fn answers_oversized_and_malformed_request_heads_with_problem_documents() {
    let server = NatsServer::start().await;
    let ingest = TestIngest::start(&server.url(), Timeouts::default()).await;
    let many_fields: Vec<(String, String)> = (0..150)
        .map(|n| (format!("x-field-{n}"), "v".to_owned()))
        .collect();
    let many_fields: Vec<(&str, &str)> = many_fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let long_target = format!("/v1/events?{}", "q".repeat(70_000));
    let cases = [
        (
            "150 header fields",
            post_structured_with(&many_fields),
            431,
            "urn:herald:problem:header-too-large",
        ),
        (
            "a 70 kB request target",
            request("POST", &long_target, &[], b""),
            414,
            "urn:herald:problem:uri-too-long",
        ),
        (
            "a header line without a colon",
            b"POST /v1/events HTTP/1.1\r\nhost: herald.test\r\nnot a field\r\n\r\n".to_vec(),
            400,
            "urn:herald:problem:bad-request",
        ),
    ];
    for (name, request, status, problem_type) in &cases {
        // hyper closes the connection after refusing a head: one connection per case.
        let mut http = ingest.connect().await;
        let answer = http.send(request).await;
        assert_eq!(answer.status, *status, "{name}: {answer:?}");
        let problem = answer.problem();
        assert_eq!(problem["type"], *problem_type, "{name}: {problem}");
    }
    let mut http = ingest.connect().await;
    let answer = http
        .send(&post_structured(&structured_event("after", "t")))
        .await;
    assert_eq!(
        answer.status, 202,
        "other connections are served: {answer:?}"
    );
}

fn post_structured_with(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut all = vec![("content-type", "application/cloudevents+json")];
    all.extend_from_slice(fields);
    request(
        "POST",
        "/v1/events",
        &all,
        structured_event("many", "t").as_bytes(),
    )
}
