//! Bad input gets a precise problem document and publishes nothing; an unpersisted event is
//! never answered 202.

use std::time::Duration;

use herald_test_support::structured_event;

use crate::cluster::TestCluster;

struct BadRequest {
    name: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    problem_type: &'static str,
    detail: &'static str,
}

fn structured() -> Vec<(&'static str, &'static str)> {
    vec![("content-type", "application/cloudevents+json")]
}

fn binary(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut headers = vec![
        ("ce-specversion", "1.0"),
        ("ce-id", "1"),
        ("ce-source", "/s"),
    ];
    headers.extend_from_slice(extra);
    headers
}

#[tokio::test]
async fn refuses_bad_requests_with_problem_details_and_publishes_nothing() {
    let cluster = TestCluster::start().await;
    let cases = vec![
        BadRequest {
            name: "structured without id",
            headers: structured(),
            body: br#"{"specversion":"1.0","source":"/s","type":"t"}"#.to_vec(),
            status: 400,
            problem_type: "urn:herald:problem:invalid-event",
            detail: "missing required attribute `id`",
        },
        BadRequest {
            name: "structured that is not JSON",
            headers: structured(),
            body: b"{oops".to_vec(),
            status: 400,
            problem_type: "urn:herald:problem:invalid-event",
            detail: "body is not a JSON object",
        },
        BadRequest {
            name: "unsupported specversion",
            headers: structured(),
            body: br#"{"specversion":"0.3","id":"1","source":"/s","type":"t"}"#.to_vec(),
            status: 400,
            problem_type: "urn:herald:problem:invalid-event",
            detail: "unsupported specversion `0.3`",
        },
        BadRequest {
            name: "bad time",
            headers: structured(),
            body: br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"noon"}"#
                .to_vec(),
            status: 400,
            problem_type: "urn:herald:problem:invalid-event",
            detail: "attribute `time`",
        },
        BadRequest {
            name: "binary without type",
            headers: binary(&[("content-type", "application/json")]),
            body: b"{}".to_vec(),
            status: 400,
            problem_type: "urn:herald:problem:invalid-event",
            detail: "missing required attribute `type`",
        },
        BadRequest {
            name: "binary JSON that is not JSON",
            headers: binary(&[("ce-type", "t"), ("content-type", "application/json")]),
            body: b"{oops".to_vec(),
            status: 400,
            problem_type: "urn:herald:problem:invalid-event",
            detail: "the content type is JSON but the body is not",
        },
        BadRequest {
            name: "plain body without ce- headers",
            headers: vec![("content-type", "text/plain")],
            body: b"hello".to_vec(),
            status: 415,
            problem_type: "urn:herald:problem:unsupported-media-type",
            detail: "no ce-specversion header",
        },
        BadRequest {
            name: "unsupported event format",
            headers: vec![("content-type", "application/cloudevents+avro")],
            body: b"x".to_vec(),
            status: 415,
            problem_type: "urn:herald:problem:unsupported-media-type",
            detail: "event format `application/cloudevents+avro` is not supported",
        },
        BadRequest {
            name: "body over the limit",
            headers: structured(),
            body: structured_event(&"x".repeat(70 * 1024), "t").into_bytes(),
            status: 413,
            problem_type: "urn:herald:problem:payload-too-large",
            detail: "exceeds the limit of 65536 bytes",
        },
        BadRequest {
            name: "batch with one bad event",
            headers: vec![("content-type", "application/cloudevents-batch+json")],
            body: format!(
                "[{},{{\"specversion\":\"1.0\"}}]",
                structured_event("ok", "t")
            )
            .into_bytes(),
            status: 400,
            problem_type: "urn:herald:problem:invalid-batch",
            detail: "1 of its events are invalid",
        },
        BadRequest {
            name: "batch that is not an array",
            headers: vec![("content-type", "application/cloudevents-batch+json")],
            body: structured_event("ok", "t").into_bytes(),
            status: 400,
            problem_type: "urn:herald:problem:bad-request",
            detail: "a batch must be a JSON array of events",
        },
    ];
    for case in cases {
        let mut request = cluster
            .http
            .post(&cluster.ingest_url)
            .body(case.body.clone());
        for (name, value) in &case.headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{}",
            case.name
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"], case.problem_type,
            "{}: {problem}",
            case.name
        );
        assert_eq!(problem["status"], case.status, "{}", case.name);
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(case.detail),
            "{}: detail `{detail}`",
            case.name
        );
        if case.problem_type.ends_with("invalid-batch") {
            assert_eq!(problem["errors"][0]["index"], 1, "{problem}");
        }
    }
    assert_eq!(
        cluster.nats.events_stored().await.unwrap(),
        0,
        "nothing may be published"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn answers_503_not_202_while_jetstream_cannot_persist() {
    let mut cluster = TestCluster::start().await;
    cluster
        .post_structured(&structured_event("before", "t"))
        .await;
    cluster.nats_server.kill().await;
    let response = cluster
        .http
        .post(&cluster.ingest_url)
        .header("content-type", "application/cloudevents+json")
        .body(structured_event("during", "t"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:herald:problem:unavailable");

    cluster.nats_server.restart().await;
    let http = cluster.http.clone();
    let url = cluster.ingest_url.clone();
    herald_test_support::eventually("ingest to accept again", Duration::from_secs(30), || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let response = http
                .post(&url)
                .header("content-type", "application/cloudevents+json")
                .body(structured_event("after", "t"))
                .send()
                .await
                .ok()?;
            (response.status() == 202).then_some(())
        }
    })
    .await;
    cluster.shutdown().await;
}
