//! While NATS does not acknowledge, ingest answers `503` with `Retry-After` within
//! `ingest.request_timeout`, and says that the events may be stored all the same.

use std::time::{Duration, Instant};

use herald_test_support::{NatsServer, eventually, structured_event};

use crate::support::{Partition, TestIngest, Timeouts, post_structured};

// Issue 10, defect 6: ingest.request_timeout used to be applied nowhere, so producers waited
// nats.request_timeout for the acknowledgement. The answer must come well before the 30 s of
// nats.request_timeout; how soon after 300 ms is not asserted, the machine may be busy.
#[tokio::test]
async fn answers_503_within_the_request_timeout_while_nats_is_silent() {
    let server = NatsServer::start().await;
    let partition = Partition::start(&server.url()).await;
    let timeouts = Timeouts {
        request: Duration::from_millis(300),
        nats: Duration::from_secs(30),
    };
    let ingest = TestIngest::start(&partition.url(), timeouts).await;
    let mut http = ingest.connect().await;
    let answer = http
        .send(&post_structured(&structured_event("before", "t")))
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");

    partition.cut();
    let started = Instant::now();
    let answer = http
        .send(&post_structured(&structured_event("during", "t")))
        .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(20),
        "answered after {elapsed:?}: the acknowledgement's 30 s deadline, not the request's 300 ms"
    );
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert_eq!(answer.problem()["type"], "urn:herald:problem:unavailable");
    assert!(
        answer.detail().contains("ingest.request_timeout (300ms)"),
        "{}",
        answer.detail()
    );
}

// Issue 10, defect 7: the NATS client keeps a publish made while it is disconnected and sends
// it once it reconnects, after ingest answered 503. The answer says so, and the retry it asks
// for is stored once.
#[tokio::test]
async fn a_503_says_the_event_may_be_stored_and_its_retry_is_stored_once() {
    let mut server = NatsServer::start().await;
    let timeouts = Timeouts {
        request: Duration::from_millis(500),
        nats: Duration::from_secs(5),
    };
    let ingest = TestIngest::start(&server.url(), timeouts).await;
    server.kill().await;
    let nats = ingest.nats.clone();
    eventually(
        "the client to notice the disconnect",
        Duration::from_secs(10),
        || {
            let nats = nats.clone();
            async move { (!nats.is_connected()).then_some(()) }
        },
    )
    .await;
    let mut http = ingest.connect().await;
    let event = structured_event("during-outage", "t");
    let answer = http.send(&post_structured(&event)).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("1"));
    let detail = answer.detail();
    assert!(detail.contains("may be stored all the same"), "{detail}");
    assert!(
        detail.contains("retry with the same source and id"),
        "{detail}"
    );

    server.restart().await;
    eventually(
        "the refused event to be stored after all",
        Duration::from_secs(30),
        || {
            let nats = nats.clone();
            async move { (nats.events_stored().await.ok()? == 1).then_some(()) }
        },
    )
    .await;
    let answer = http.send(&post_structured(&event)).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(
        answer.json()["duplicate"],
        true,
        "the retry is deduplicated"
    );
    assert_eq!(ingest.events_stored().await, 1);
}
