//! The control process's per-subscription gauges on its `/metrics`: consumer lag, dead letters
//! and the retry backlog as NATS holds them, and no series left once the subscription is deleted.

use std::time::Duration;

use bytes::Bytes;
use time::OffsetDateTime;

use herald_core::{Event, SubscriptionId};
use herald_nats::{ConsumerSpec, RetryOf};
use herald_proto::v1 as pb;
use herald_test_support::NatsServer;

use crate::process::{self, Ports};

/// Events published for the subscription while nothing consumes them.
const UNCONSUMED: usize = 7;

#[tokio::test]
async fn control_metrics_show_a_subscriptions_lag_dead_letters_and_retries_until_it_is_deleted() {
    let server = NatsServer::start().await;
    let ports = Ports::new(server.url());
    let mut control = process::start_with(
        "control",
        &ports,
        &[("HERALD_SUBSCRIPTION_METRICS__INTERVAL", "200ms")],
    );
    control.wait_listening(ports.control).await;
    let nats = process::nats(&server.url()).await;
    let mut client = process::control_client(&ports).await;
    let id = client
        .create_subscription(pb::CreateSubscriptionRequest {
            sink: "http://127.0.0.1:9/hook".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let subscription_id = SubscriptionId::parse(&id).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Metrics {
        url: format!("http://127.0.0.1:{}/metrics", control.admin),
        http: reqwest::Client::builder().build().unwrap(),
    };

    // No dispatcher runs: the consumer is set up as one would, and nothing pulls from it.
    nats.ensure_consumer(&ConsumerSpec {
        name: id.clone(),
        filter_subjects: vec!["herald.events.>".to_owned()],
        start_time: OffsetDateTime::now_utc() - time::Duration::hours(1),
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 32,
    })
    .await
    .unwrap();
    let publisher = nats.publisher();
    for n in 0..UNCONSUMED {
        let event = herald_test_support::structured_event(&format!("lag-{n}"), "com.metrics");
        let event = Event::from_structured(Bytes::from(event)).unwrap();
        publisher.publish(&event).await.unwrap();
    }
    let events = [
        ("subscription_id", id.as_str()),
        ("stream", "HERALD_EVENTS"),
    ];
    metrics
        .wait_for("the lag of every unconsumed event", |text| {
            gauge(text, "herald_subscription_consumer_lag", &events) == Some(UNCONSUMED as f64)
                && gauge(text, "herald_subscription_consumer_ack_pending", &events) == Some(0.0)
                && gauge(
                    text,
                    "herald_subscription_dead_letters",
                    &[("subscription_id", &id)],
                ) == Some(0.0)
        })
        .await;

    nats.records()
        .dead_letter(
            &subscription_id,
            Bytes::from(herald_test_support::structured_event(
                "dead-1",
                "com.metrics",
            )),
            1,
            5,
            "exhausted",
            "503 Service Unavailable",
            None,
        )
        .await
        .unwrap();
    metrics
        .wait_for("the dead letter", |text| {
            gauge(
                text,
                "herald_subscription_dead_letters",
                &[("subscription_id", &id)],
            ) == Some(1.0)
        })
        .await;

    nats.retries()
        .schedule(
            &herald_core::WorkId::whole(subscription_id.clone()),
            RetryOf {
                event: Bytes::from(herald_test_support::structured_event(
                    "retry-1",
                    "com.metrics",
                )),
                attempts: 1,
                event_sequence: 2,
                published: OffsetDateTime::now_utc(),
                trace: None,
            },
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        )
        .await
        .unwrap();
    let scheduled = [("subscription_id", id.as_str()), ("state", "scheduled")];
    metrics
        .wait_for("the scheduled retry", |text| {
            gauge(text, "herald_subscription_retry_backlog", &scheduled) == Some(1.0)
                && gauge(text, "herald_control_subscriptions", &[]) == Some(1.0)
        })
        .await;

    client
        .delete_subscription(pb::DeleteSubscriptionRequest {
            id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Its consumer and its retry stay behind (no dispatcher runs to remove them): the series
    // go because the subscription does.
    let text = metrics
        .wait_for("no series of the deleted subscription", |text| {
            !text.contains(&id) && gauge(text, "herald_control_subscriptions", &[]) == Some(0.0)
        })
        .await;
    assert!(
        gauge(
            &text,
            "herald_control_subscription_gauge_refreshes_total",
            &[("result", "ok")]
        )
        .is_some_and(|reads| reads >= 4.0),
        "{text}"
    );
    control.terminate().await;
}

/// The control process's `/metrics`.
struct Metrics {
    url: String,
    http: reqwest::Client,
}

impl Metrics {
    /// Polls `/metrics` until `check` holds for its text, and returns that text.
    async fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let check = &check;
        herald_test_support::eventually(what, Duration::from_secs(30), || async move {
            let text = self
                .http
                .get(&self.url)
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            check(&text).then_some(text)
        })
        .await
    }
}

/// The value of the series `name` whose labels include `labels`, in Prometheus text format.
fn gauge(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (series_labels, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let matches = labels
            .iter()
            .all(|(label, wanted)| series_labels.contains(&format!("{label}=\"{wanted}\"")));
        matches.then(|| value.trim().parse().ok()).flatten()
    })
}
