//! Unit tests of the rewriting of hyper's automatic refusals.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const HYPER_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
    date: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n";

fn counter() -> IntCounterVec {
    IntCounterVec::new(
        prometheus::Opts::new("test_rejected_total", "test"),
        &["status"],
    )
    .unwrap()
}

#[test]
fn recognises_hyper_refusals_only() {
    assert_eq!(
        automatic_refusal(HYPER_431),
        Some((HeadRefusal::TooLarge, HYPER_431.len()))
    );
    let invalid = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(
        automatic_refusal(invalid),
        Some((HeadRefusal::Invalid, invalid.len()))
    );
    let herald_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\n\
        content-length: 2\r\n\r\n{}";
    assert_eq!(automatic_refusal(herald_400), None, "Herald's own answer");
    let accepted = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(automatic_refusal(accepted), None, "not a refusal");
    let body_bytes = b"{\"id\":\"HTTP/1.1 431 \"}";
    assert_eq!(automatic_refusal(body_bytes), None, "not a head");
    let partial_head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-len";
    assert_eq!(automatic_refusal(partial_head), None, "an incomplete head");
}

#[test]
fn rewrites_a_refusal_with_a_problem_document() {
    let rewritten = rewrite(HeadRefusal::TooLarge, HYPER_431);
    let text = std::str::from_utf8(&rewritten).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT"),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/problem+json"),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\ncontent-length: {}", body.len())),
        "{head}"
    );
    assert!(!head.contains("content-length: 0"), "{head}");
    let problem: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["type"], "urn:herald:problem:header-too-large");
    assert_eq!(problem["status"], 431);
}

#[tokio::test]
async fn writes_the_whole_replacement_through_a_narrow_pipe() {
    // A 16-byte pipe forces partial writes and pending ones.
    let (client, server) = tokio::io::duplex(16);
    let mut connection = Connection {
        inner: server,
        replacement: None,
        requests_rejected: counter(),
    };
    let writer = tokio::spawn(async move {
        connection.write_all(HYPER_431).await.unwrap();
        connection.shutdown().await.unwrap();
        connection.requests_rejected
    });
    let mut received = Vec::new();
    let mut client = client;
    client.read_to_end(&mut received).await.unwrap();
    let requests_rejected = writer.await.unwrap();
    assert_eq!(received, rewrite(HeadRefusal::TooLarge, HYPER_431).to_vec());
    assert_eq!(requests_rejected.with_label_values(&["431"]).get(), 1);
}

#[tokio::test]
async fn passes_other_writes_through_unchanged() {
    let (mut client, server) = tokio::io::duplex(1024);
    let mut connection = Connection {
        inner: server,
        replacement: None,
        requests_rejected: counter(),
    };
    let answer = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}";
    connection.write_all(answer).await.unwrap();
    connection.shutdown().await.unwrap();
    let mut received = Vec::new();
    client.read_to_end(&mut received).await.unwrap();
    assert_eq!(received, answer);
}
