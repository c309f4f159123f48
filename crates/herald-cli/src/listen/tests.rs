//! Tests of `listen`: what it reports for signed, tampered and unsigned webhooks, the answer it
//! gives, and the abuse-protection handshake.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::Request as HttpRequest;
use time::macros::datetime;
use tower::ServiceExt as _;

use super::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &str =
    r#"{"specversion":"1.0","id":"evt-1","source":"/shop","type":"com.example.order.created"}"#;
const NOW: OffsetDateTime = datetime!(2025-01-02 03:04:05 UTC);

fn secret() -> Secret {
    Secret::parse(SECRET).unwrap()
}

/// Returns the headers of a webhook signed with [`SECRET`] at `timestamp`.
fn signed_headers(body: &str, timestamp: i64) -> HeaderMap {
    let signature = herald_signing::sign(&secret(), "msg_1", timestamp, body.as_bytes());
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        "application/cloudevents+json".parse().unwrap(),
    );
    headers.insert(herald_signing::HEADER_ID, "msg_1".parse().unwrap());
    headers.insert(
        herald_signing::HEADER_TIMESTAMP,
        timestamp.to_string().parse().unwrap(),
    );
    headers.insert(herald_signing::HEADER_SIGNATURE, signature.parse().unwrap());
    headers
}

fn check_inspection(
    secret: Option<&Secret>,
    headers: &HeaderMap,
    body: &str,
    expected_status: StatusCode,
    expected_report: &str,
) {
    let inspection = inspect(secret, "/hooks", headers, body.as_bytes(), NOW);
    assert_eq!(inspection.report, expected_report);
    assert_eq!(inspection.status, expected_status);
}

#[test]
fn signed_webhook_is_verified() {
    check_inspection(
        Some(&secret()),
        &signed_headers(BODY, NOW.unix_timestamp()),
        BODY,
        StatusCode::NO_CONTENT,
        "\
2025-01-02T03:04:05Z POST /hooks
  webhook-id: msg_1
  event: type=com.example.order.created id=evt-1 source=/shop
  signature: verified",
    );
}

#[test]
fn tampered_body_is_invalid() {
    let tampered = BODY.replace("evt-1", "evt-2");
    check_inspection(
        Some(&secret()),
        &signed_headers(BODY, NOW.unix_timestamp()),
        &tampered,
        StatusCode::UNAUTHORIZED,
        "\
2025-01-02T03:04:05Z POST /hooks
  webhook-id: msg_1
  event: type=com.example.order.created id=evt-2 source=/shop
  signature: INVALID (no v1 signature matches)",
    );
}

#[test]
fn stale_signature_is_invalid() {
    let inspection = inspect(
        Some(&secret()),
        "/",
        &signed_headers(BODY, NOW.unix_timestamp() - 3600),
        BODY.as_bytes(),
        NOW,
    );
    assert_eq!(inspection.status, StatusCode::UNAUTHORIZED);
    assert!(
        inspection.report.ends_with(
            "signature: INVALID (webhook-timestamp is 3600 s away from now, beyond the tolerance)"
        ),
        "{}",
        inspection.report
    );
}

#[test]
fn missing_signature_headers_are_invalid_when_a_secret_is_given() {
    let inspection = inspect(
        Some(&secret()),
        "/",
        &HeaderMap::new(),
        BODY.as_bytes(),
        NOW,
    );
    assert_eq!(inspection.status, StatusCode::UNAUTHORIZED);
    assert!(
        inspection
            .report
            .ends_with("signature: INVALID (no webhook-id header)"),
        "{}",
        inspection.report
    );
}

#[test]
fn signature_is_not_checked_without_a_secret() {
    check_inspection(
        None,
        &HeaderMap::new(),
        "not json",
        StatusCode::NO_CONTENT,
        "\
2025-01-02T03:04:05Z POST /hooks
  webhook-id: -
  event: not a CloudEvent (8 bytes, not JSON)
  signature: not checked (no --secret)",
    );
}

/// Returns the headers of a binary-mode webhook of `body`, signed with [`SECRET`] at [`NOW`].
fn binary_headers(body: &[u8], content_type: &str) -> HeaderMap {
    let signature = herald_signing::sign(&secret(), "msg_1", NOW.unix_timestamp(), body);
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("ce-specversion", "1.0"),
        ("ce-type", "com.example.a"),
        ("ce-id", "order%2042"),
        ("ce-source", "/s"),
        ("content-type", content_type),
        (herald_signing::HEADER_ID, "msg_1"),
        (herald_signing::HEADER_SIGNATURE, &signature),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    headers.insert(
        herald_signing::HEADER_TIMESTAMP,
        NOW.unix_timestamp().to_string().parse().unwrap(),
    );
    headers
}

#[test]
fn binary_mode_webhook_is_described_from_its_headers_and_verified_over_its_data() {
    // Not UTF-8: the signature covers the bytes as sent.
    let data = [0_u8, 159, 255];
    let headers = binary_headers(&data, "application/octet-stream");
    let inspection = inspect(Some(&secret()), "/hooks", &headers, &data, NOW);
    assert_eq!(
        inspection.report,
        "\
2025-01-02T03:04:05Z POST /hooks
  webhook-id: msg_1
  event: type=com.example.a id=order 42 source=/s (binary mode, application/octet-stream, 3 \
         bytes of data)
  signature: verified"
    );
    assert_eq!(inspection.status, StatusCode::NO_CONTENT);
}

#[test]
fn tampered_binary_data_is_invalid() {
    let headers = binary_headers(br#"{"total":1}"#, "application/json");
    let inspection = inspect(Some(&secret()), "/", &headers, br#"{"total":2}"#, NOW);
    assert_eq!(inspection.status, StatusCode::UNAUTHORIZED);
    assert!(
        inspection.report.contains(
            "event: type=com.example.a id=order 42 source=/s (binary mode, application/json, 11 bytes of data)"
        ),
        "{}",
        inspection.report
    );
    assert!(
        inspection
            .report
            .ends_with("signature: INVALID (no v1 signature matches)"),
        "{}",
        inspection.report
    );
}

#[test]
fn binary_mode_request_that_is_not_a_cloudevent_says_why() {
    let mut headers = HeaderMap::new();
    headers.insert("ce-type", "com.example.a".parse().unwrap());
    headers.insert("ce-id", "7".parse().unwrap());
    let inspection = inspect(None, "/", &headers, b"{}", NOW);
    assert!(
        inspection.report.contains(
            "event: not a valid binary-mode CloudEvent: missing required attribute `specversion`"
        ),
        "{}",
        inspection.report
    );
}

/// Returns a router that collects its reports.
fn collecting_router(secret: Option<Secret>) -> (Router, Arc<Mutex<Vec<String>>>) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let report: Report = Arc::new(move |text| sink.lock().unwrap().push(text));
    (router(secret, report), reports)
}

#[tokio::test]
async fn listener_answers_204_to_a_signed_post_and_401_to_a_forged_one() {
    let (router, reports) = collecting_router(Some(secret()));
    let now = OffsetDateTime::now_utc().unix_timestamp();

    let mut request = HttpRequest::post("/any/path")
        .body(Body::from(BODY))
        .unwrap();
    *request.headers_mut() = signed_headers(BODY, now);
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let mut forged = HttpRequest::post("/").body(Body::from(BODY)).unwrap();
    *forged.headers_mut() = signed_headers("something else", now);
    let response = router.oneshot(forged).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports[0].contains("POST /any/path"), "{}", reports[0]);
    assert!(
        reports[0].ends_with("signature: verified"),
        "{}",
        reports[0]
    );
    assert!(reports[1].contains("signature: INVALID"), "{}", reports[1]);
}

#[tokio::test]
async fn listener_answers_the_abuse_protection_handshake() {
    let (router, reports) = collecting_router(None);
    let request = HttpRequest::options("/hooks")
        .header("WebHook-Request-Origin", "herald.example.com")
        .header("WebHook-Request-Rate", "120")
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["webhook-allowed-origin"], "herald.example.com");
    assert_eq!(headers["webhook-allowed-rate"], "*");
    assert!(reports.lock().unwrap().is_empty());
}

#[tokio::test]
async fn listener_refuses_other_methods() {
    let (router, _reports) = collecting_router(None);
    let request = HttpRequest::get("/").body(Body::empty()).unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}
