//! Sinks are logged and recorded by host only: customers put tokens in their paths and queries
//! (issue 10, defect 5). A delivery to an unreachable sink fails, is retried, dead-lettered and
//! announced, and its path and query appear in no log line, attempt record, dead letter or
//! `dev.herald.attempt.exhausted` event.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::SubscriptionId;
use herald_nats::AttemptQuery;
use herald_test_support::{TestReceiver, eventually, structured_event};

use crate::cluster::{TestCluster, exact_type};

const PATH_SECRET: &str = "path_5ecret_tok";
const QUERY_SECRET: &str = "query_5ecret_tok";

/// Log output captured by a tracing subscriber that is the default on this test's thread;
/// the test runtime is single-threaded, so every role's task logs here.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Returns a loopback port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [PATH_SECRET, QUERY_SECRET] {
        assert!(
            !text.contains(secret),
            "{what} shows the sink's {secret}:\n{text}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_sinks_path_and_query_appear_in_no_log_record_or_announcement() {
    // tracing decides whether a callsite is enabled when it is first hit; while one dispatcher
    // is registered it asks only the hitting thread's, so a callsite another test's thread hit
    // first would stay disabled here as well. A second, silent dispatcher kept alive makes it
    // ask every registered one.
    let _silent = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let cluster = TestCluster::start().await;
    let operator = TestReceiver::start().await;
    cluster
        .subscribe(
            operator.url(),
            vec![exact_type("dev.herald.attempt.exhausted")],
        )
        .await;
    let authority = format!("127.0.0.1:{}", closed_port().await);
    let sink = format!("http://{authority}/hooks/{PATH_SECRET}?token={QUERY_SECRET}");
    // Three attempts, 200 ms and 500 ms apart, then a dead letter and an announcement.
    let subscription = cluster
        .subscribe(&sink, vec![exact_type("com.private.sink")])
        .await;
    cluster
        .post_structured(&structured_event("private-1", "com.private.sink"))
        .await;

    let announced = operator.wait_for(1, Duration::from_secs(30)).await;
    let announcement = announced[0].json();
    assert_eq!(announcement["data"]["event_id"], "private-1");
    let last_error = announcement["data"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(last_error.contains("Connection refused"), "{announcement}");
    assert_no_secret("the exhausted announcement", &announcement.to_string());

    let id = SubscriptionId::parse(&subscription.id).unwrap();
    let records = cluster.nats.records();
    let query = AttemptQuery {
        subscription_id: Some(id.clone()),
        limit: 100,
        ..AttemptQuery::default()
    };
    let attempts = eventually("three attempt records", Duration::from_secs(10), || async {
        let page = records.attempts(&query).await.ok()?;
        (page.items.len() == 3).then_some(page.items)
    })
    .await;
    for (_, attempt) in &attempts {
        assert_eq!(attempt.result_class, "connect", "{attempt:?}");
        assert!(attempt.error.is_some(), "{attempt:?}");
        assert_no_secret(
            "an attempt record",
            &serde_json::to_string(attempt).unwrap(),
        );
    }
    let dead_letters = records.dead_letters(&id, None, 10).await.unwrap().items;
    assert_eq!(dead_letters.len(), 1, "{dead_letters:?}");
    assert!(!dead_letters[0].last_error.is_empty());
    assert_no_secret("the dead letter", &format!("{:?}", dead_letters[0]));

    cluster.shutdown().await;
    let text = logs.text();
    // The capture works, and names the sink by its host.
    assert!(text.contains("attempt failed"), "{text}");
    assert!(text.contains(&authority), "{text}");
    assert_no_secret("the logs", &text);
}
