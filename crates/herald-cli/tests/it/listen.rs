//! `heraldctl listen` as a process: it announces its address, verifies a signed webhook and
//! answers 204, and refuses a forged one with 401.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::support::command;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &str = r#"{"specversion":"1.0","id":"evt-1","source":"/shop","type":"com.example.a"}"#;

/// Sends a POST with the given signature over plain HTTP/1.1 and returns the status code.
async fn post(address: &str, signature: &str, timestamp: i64) -> u16 {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /hooks HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/cloudevents+json\r\n\
         webhook-id: msg_1\r\nwebhook-timestamp: {timestamp}\r\nwebhook-signature: {signature}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).expect("a status line");
    status.parse().unwrap()
}

#[tokio::test]
async fn verifies_signed_webhooks_and_refuses_forged_ones() {
    let mut child = command(&["listen", "--port", "0", "--secret", SECRET])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("heraldctl listen should start");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("heraldctl should print within 10 s")
            .unwrap()
            .expect("heraldctl should keep running")
    };

    let banner = next_line().await;
    let address = banner
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("unexpected banner: {banner}"))
        .to_owned();

    let secret = herald_signing::Secret::parse(SECRET).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = herald_signing::sign(&secret, "msg_1", now, BODY.as_bytes());
    assert_eq!(post(&address, &signature, now).await, 204);
    let report: Vec<String> = [
        next_line().await,
        next_line().await,
        next_line().await,
        next_line().await,
    ]
    .into();
    assert!(report[0].ends_with(" POST /hooks"), "{report:?}");
    assert_eq!(report[1], "  webhook-id: msg_1");
    assert_eq!(
        report[2],
        "  event: type=com.example.a id=evt-1 source=/shop"
    );
    assert_eq!(report[3], "  signature: verified");

    let forged = herald_signing::sign(&secret, "msg_1", now, b"another body");
    assert_eq!(post(&address, &forged, now).await, 401);
    let mut last = String::new();
    for _ in 0..4 {
        last = next_line().await;
    }
    assert_eq!(last, "  signature: INVALID (no v1 signature matches)");

    child.kill().await.unwrap();
}
