//! A subscription's delivery settings, applied by the dispatcher's scheduler: the rate limit and
//! the concurrency limit as the endpoint sees them, a `Retry-After` that slows the whole
//! subscription, per-key ordering through failures and retries, and a dead letter that blocks
//! its key until it is redriven.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use herald_proto::v1 as pb;
use herald_test_support::{Recorded, Reply, TestReceiver, eventually};
use serde_json::json;

use crate::cluster::{TestCluster, exact_type, fixed_retry_policy};
use crate::wait_until_settled;

#[allow(
    clippy::print_stderr,
    reason = "the figure is part of the test's report"
)]
fn report(line: &str) {
    eprintln!("{line}");
}

fn settings(
    rate: Option<(u32, u32)>,
    max_in_flight: u32,
    ordering: pb::delivery_settings::Ordering,
    on_dead_letter: pb::delivery_settings::OnDeadLetter,
) -> pb::DeliverySettings {
    pb::DeliverySettings {
        rate_limit: rate.map(|(per_second, burst)| pb::RateLimit { per_second, burst }),
        max_in_flight: Some(max_in_flight),
        ordering: ordering as i32,
        on_dead_letter: on_dead_letter as i32,
        ..Default::default()
    }
}

async fn subscribe(
    cluster: &TestCluster,
    sink: &str,
    event_type: &str,
    retry_policy: pb::RetryPolicy,
    delivery: pb::DeliverySettings,
) -> pb::Subscription {
    let request = pb::CreateSubscriptionRequest {
        sink: sink.to_owned(),
        filters: vec![exact_type(event_type)],
        retry_policy: Some(retry_policy),
        delivery: Some(delivery),
        ..Default::default()
    };
    cluster.create_subscription(request).await
}

fn keyed_event(id: &str, event_type: &str, key: &str) -> String {
    json!({
        "specversion": "1.0", "id": id, "source": "/herald/tests", "type": event_type,
        "partitionkey": key, "datacontenttype": "application/json", "data": {"id": id},
    })
    .to_string()
}

fn event_id(recorded: &Recorded) -> String {
    recorded.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_rate_limited_subscription_keeps_to_its_rate_and_its_concurrency() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_delay(Duration::from_millis(30));
    let (rate, burst, max_in_flight) = (20, 4, 2);
    let subscription = subscribe(
        &cluster,
        receiver.url(),
        "com.paced",
        fixed_retry_policy(&[100], 5),
        settings(
            Some((rate, burst)),
            max_in_flight,
            pb::delivery_settings::Ordering::None,
            pb::delivery_settings::OnDeadLetter::Unspecified,
        ),
    )
    .await;
    let events = 50;
    for n in 0..events {
        cluster
            .post_structured(&herald_test_support::structured_event(
                &format!("paced-{n}"),
                "com.paced",
            ))
            .await;
    }
    let requests = receiver.wait_for(events, Duration::from_secs(60)).await;
    wait_until_settled(&cluster, &subscription.id).await;
    assert_eq!(receiver.count(), events, "each event once");
    assert!(
        receiver.max_concurrent() <= max_in_flight as usize,
        "the endpoint saw {} requests at once",
        receiver.max_concurrent()
    );
    // Over any window of a second or more, at most rate × window + burst requests arrive. The
    // slack allows for requests that left on time and arrived bunched up on a busy machine.
    let arrivals: Vec<Instant> = requests.iter().map(|r| r.received_at).collect();
    let slack = Duration::from_millis(500);
    for (first, start) in arrivals.iter().enumerate() {
        for (last, end) in arrivals.iter().enumerate().skip(first) {
            let window = end.duration_since(*start);
            if window < Duration::from_secs(1) {
                continue;
            }
            let count = (last - first + 1) as f64;
            let bound = f64::from(rate) * (window + slack).as_secs_f64() + f64::from(burst);
            assert!(
                count <= bound,
                "{count} requests in {window:?}, bound {bound}"
            );
        }
    }
    let span = arrivals[events - 1].duration_since(arrivals[0]);
    report(&format!(
        "rate limit {rate}/s burst {burst}: {events} deliveries in {span:?} ({:.1}/s), at most {} at once",
        (events - 1) as f64 / span.as_secs_f64(),
        receiver.max_concurrent()
    ));
    cluster.shutdown().await;
}

#[tokio::test]
async fn retry_after_on_429_holds_the_whole_subscription_back() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::WithHeaders(
        StatusCode::TOO_MANY_REQUESTS,
        vec![("retry-after".to_owned(), "2".to_owned())],
    ));
    let subscription = subscribe(
        &cluster,
        receiver.url(),
        "com.slow",
        // Retry-After is honoured up to the policy's longest delay.
        fixed_retry_policy(&[5000], 5),
        settings(
            None,
            1,
            pb::delivery_settings::Ordering::None,
            pb::delivery_settings::OnDeadLetter::Unspecified,
        ),
    )
    .await;
    for n in 0..3 {
        cluster
            .post_structured(&herald_test_support::structured_event(
                &format!("slow-{n}"),
                "com.slow",
            ))
            .await;
    }
    let first = receiver.wait_for(1, Duration::from_secs(20)).await;
    receiver.set_reply(Reply::Status(StatusCode::OK));
    let requests = receiver.wait_for(4, Duration::from_secs(30)).await;
    wait_until_settled(&cluster, &subscription.id).await;
    let held = requests[1].received_at.duration_since(first[0].received_at);
    assert!(
        held >= Duration::from_millis(1900),
        "the next request, for another event, came {held:?} after the 429"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn retry_after_on_429_to_one_part_of_a_split_subscription_holds_every_part_back() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    // Only the very first request is told to wait, so only one part hears it from the endpoint.
    receiver.set_reply(Reply::WithHeadersFirst {
        count: 1,
        status: StatusCode::TOO_MANY_REQUESTS,
        headers: vec![("retry-after".to_owned(), "3".to_owned())],
    });
    let mut delivery = settings(
        // 5/s for each part: without the shared pause the other part would send about a dozen
        // requests while the first one waits.
        Some((10, 2)),
        2,
        pb::delivery_settings::Ordering::None,
        pb::delivery_settings::OnDeadLetter::Unspecified,
    );
    delivery.parts = 2;
    subscribe(
        &cluster,
        receiver.url(),
        "com.split.slow",
        fixed_retry_policy(&[5000], 5),
        delivery,
    )
    .await;
    // Keys of both parts (part i takes the partitions p with p % 2 == i), 15 each.
    let mut keys = [Vec::new(), Vec::new()];
    for n in 0.. {
        let key = format!("k{n}");
        let part = herald_core::subject::partition_of(&key) as usize % 2;
        if keys[part].len() < 15 {
            keys[part].push(key);
        }
        if keys.iter().all(|keys| keys.len() == 15) {
            break;
        }
    }
    let events: Vec<String> = keys[0]
        .iter()
        .zip(&keys[1])
        .flat_map(|(even, odd)| [even, odd])
        .enumerate()
        .map(|(n, key)| keyed_event(&format!("split-{n}"), "com.split.slow", key))
        .collect();
    for event in &events {
        cluster.post_structured(event).await;
    }
    // Every event once, and the first one again after its 429.
    let requests = receiver
        .wait_for(events.len() + 1, Duration::from_secs(60))
        .await;
    assert_eq!(requests[0].status, StatusCode::TOO_MANY_REQUESTS);
    let told = requests[0].received_at;
    // Requests the other part had already sent may arrive just after the 429; from then on
    // nothing comes until the pause ends, from either part.
    let during: Vec<Duration> = requests[1..]
        .iter()
        .map(|request| request.received_at.duration_since(told))
        .filter(|after| (Duration::from_millis(500)..Duration::from_millis(2900)).contains(after))
        .collect();
    assert!(
        during.is_empty(),
        "requests arrived during the pause, after {during:?}"
    );
    let delivered: std::collections::BTreeSet<String> =
        requests.iter().skip(1).map(event_id).collect();
    assert_eq!(delivered.len(), events.len(), "every event delivered");
    cluster.shutdown().await;
}

#[tokio::test]
async fn each_key_is_delivered_one_at_a_time_in_order_through_failures_and_retries() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::FailRandomly {
        percent: 20,
        status: StatusCode::INTERNAL_SERVER_ERROR,
    });
    let subscription = subscribe(
        &cluster,
        receiver.url(),
        "com.ordered",
        fixed_retry_policy(&[50, 100], 100),
        settings(
            None,
            8,
            pb::delivery_settings::Ordering::Key,
            pb::delivery_settings::OnDeadLetter::Block,
        ),
    )
    .await;
    let (keys, per_key) = (6, 15);
    for n in 0..per_key {
        for key in 0..keys {
            cluster
                .post_structured(&keyed_event(
                    &format!("k{key}-{n:03}"),
                    "com.ordered",
                    &format!("k{key}"),
                ))
                .await;
        }
    }
    eventually("every event delivered", Duration::from_secs(90), || async {
        let delivered = receiver
            .requests()
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        (delivered >= keys * per_key).then_some(())
    })
    .await;
    wait_until_settled(&cluster, &subscription.id).await;
    // Per key, every request (failed ones included) is for the same event or a later one than
    // the request before it: retries keep their place, and no event overtakes an earlier one.
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in receiver.requests() {
        let id = event_id(&request);
        let key = id.split('-').next().unwrap_or_default().to_owned();
        by_key.entry(key).or_default().push(id);
    }
    assert_eq!(by_key.len(), keys);
    for (key, ids) in &by_key {
        assert!(
            ids.windows(2).all(|pair| pair[0] <= pair[1]),
            "key {key} out of order: {ids:?}"
        );
    }
    let failures = receiver
        .requests()
        .iter()
        .filter(|r| r.status != StatusCode::OK)
        .count();
    report(&format!(
        "ordered: {keys} keys × {per_key} events in order through {failures} failed attempts"
    ));
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_failing_keys_later_events_wait_in_its_hold_while_every_other_key_finishes() {
    // Before holds, a failing key's later events stayed pulled in its lane: with 60 of them and
    // a window of 32, the window filled with that key and the other keys stopped.
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::FailKeyUntil {
        key: "bad".to_owned(),
        until: Instant::now() + Duration::from_secs(3600),
        percent: 0,
        status: StatusCode::SERVICE_UNAVAILABLE,
    });
    let subscription = subscribe(
        &cluster,
        receiver.url(),
        "com.held",
        // Short retries: nak'd, not in the backlog; the key holds all the same.
        fixed_retry_policy(&[300], 1000),
        settings(
            None,
            2,
            pb::delivery_settings::Ordering::Key,
            pb::delivery_settings::OnDeadLetter::Block,
        ),
    )
    .await;
    let (bad, keys, per_key) = (60, 10, 10);
    for n in 0..bad {
        cluster
            .post_structured(&keyed_event(&format!("bad-{n:03}"), "com.held", "bad"))
            .await;
    }
    for n in 0..per_key {
        for key in 0..keys {
            cluster
                .post_structured(&keyed_event(
                    &format!("k{key}-{n:03}"),
                    "com.held",
                    &format!("k{key}"),
                ))
                .await;
        }
    }
    eventually(
        "every other key delivered while key bad fails",
        Duration::from_secs(60),
        || async {
            let delivered = receiver
                .requests()
                .iter()
                .filter(|r| r.status == StatusCode::OK)
                .count();
            (delivered >= keys * per_key).then_some(())
        },
    )
    .await;
    let metrics = cluster.dispatcher_metrics();
    let held = metric_value(&metrics, "herald_dispatch_events_held_total");
    assert!(held >= 1.0, "key bad's later events were held: {held}");
    let failed_before = receiver
        .requests()
        .iter()
        .filter(|r| r.status != StatusCode::OK)
        .map(event_id)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        failed_before.into_iter().collect::<Vec<_>>(),
        ["bad-000"],
        "only the key's head was attempted while it failed"
    );

    receiver.set_reply(Reply::Status(StatusCode::OK));
    eventually("key bad delivered", Duration::from_secs(60), || async {
        let delivered = receiver
            .requests()
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        (delivered >= keys * per_key + bad).then_some(())
    })
    .await;
    wait_until_settled(&cluster, &subscription.id).await;
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in receiver.requests() {
        let id = event_id(&request);
        let key = id.split('-').next().unwrap_or_default().to_owned();
        by_key.entry(key).or_default().push(id);
    }
    for (key, ids) in &by_key {
        assert!(
            ids.windows(2).all(|pair| pair[0] <= pair[1]),
            "key {key} out of order: {ids:?}"
        );
    }
    let bad_ids: std::collections::BTreeSet<&String> = by_key["bad"].iter().collect();
    assert_eq!(bad_ids.len(), bad, "every held event delivered");
    let metrics = cluster.dispatcher_metrics();
    let released = metric_value(&metrics, "herald_dispatch_events_released_total");
    assert!(released >= held, "released {released} of {held} held");
    report(&format!(
        "hold: {held} events of a failing key held, {released} released, {} other events delivered meanwhile",
        keys * per_key
    ));
    cluster.shutdown().await;
}

fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_dead_letter_blocks_its_key_until_redriven_while_other_keys_go_on() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    // The first request, for key a's first event, is refused with a terminal status.
    receiver.set_reply(Reply::FailFirst {
        count: 1,
        status: StatusCode::BAD_REQUEST,
    });
    let mut policy = fixed_retry_policy(&[100], 5);
    policy.terminal_status_codes = vec![400];
    let subscription = subscribe(
        &cluster,
        receiver.url(),
        "com.blocking",
        policy,
        settings(
            None,
            1,
            pb::delivery_settings::Ordering::Key,
            pb::delivery_settings::OnDeadLetter::Block,
        ),
    )
    .await;
    for id in ["a-1", "a-2", "b-1", "b-2"] {
        let key = &id[..1];
        cluster
            .post_structured(&keyed_event(id, "com.blocking", key))
            .await;
    }
    receiver.wait_for(3, Duration::from_secs(20)).await;
    // Key b is done; key a waits behind its dead letter.
    eventually("key b delivered", Duration::from_secs(20), || async {
        let ids: Vec<String> = receiver.requests().iter().map(event_id).collect();
        (ids.contains(&"b-2".to_owned())).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = receiver.requests().iter().map(event_id).collect();
    assert_eq!(
        ids,
        ["a-1", "b-1", "b-2"],
        "a-2 waits for a-1's dead letter"
    );

    let redriven = cluster
        .deliveries()
        .await
        .redrive_dead_letters(pb::RedriveDeadLettersRequest {
            subscription_id: subscription.id.clone(),
            all: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redriven.redriven, 1);
    let requests = receiver.wait_for(5, Duration::from_secs(20)).await;
    let ids: Vec<String> = requests.iter().map(event_id).collect();
    assert_eq!(
        ids,
        ["a-1", "b-1", "b-2", "a-1", "a-2"],
        "the redriven event goes first"
    );
    wait_until_settled(&cluster, &subscription.id).await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn events_waiting_for_a_long_retry_leave_the_subscription_free_for_the_others() {
    // Before the retry backlog, 40 events nak'd into a 10-minute delay filled the consumer's
    // window (2 × max_in_flight, at least 32) and the 160 healthy events after them waited too.
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    let (events, failing) = (200, 40);
    let failing_ids: std::collections::BTreeSet<String> =
        (0..failing).map(|n| format!("long-{n:03}")).collect();
    receiver.set_reply(Reply::FailIds {
        ids: failing_ids.clone(),
        status: StatusCode::SERVICE_UNAVAILABLE,
    });
    let subscription = subscribe(
        &cluster,
        receiver.url(),
        "com.long",
        fixed_retry_policy(&[600_000], 5),
        settings(
            None,
            4,
            pb::delivery_settings::Ordering::None,
            pb::delivery_settings::OnDeadLetter::Unspecified,
        ),
    )
    .await;
    // The failing events come first, so they are pulled before the healthy ones.
    for n in 0..events {
        cluster
            .post_structured(&herald_test_support::structured_event(
                &format!("long-{n:03}"),
                "com.long",
            ))
            .await;
    }
    eventually(
        "every healthy event delivered",
        Duration::from_secs(60),
        || async {
            let delivered = receiver
                .requests()
                .iter()
                .filter(|r| r.status == StatusCode::OK)
                .count();
            (delivered >= events - failing).then_some(())
        },
    )
    .await;
    // The live consumer is done with all of them: the failing ones wait in the retry backlog.
    wait_until_settled(&cluster, &subscription.id).await;
    assert_eq!(receiver.count(), events, "one attempt each so far");
    let metrics = cluster.dispatcher_metrics();
    let line = format!("herald_dispatch_retries_scheduled_total {failing}");
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_retry_from_the_backlog_comes_back_at_its_time_as_the_next_attempt_in_its_keys_order() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::FailIds {
        ids: ["later-1".to_owned()].into(),
        status: StatusCode::SERVICE_UNAVAILABLE,
    });
    let subscription = subscribe(
        &cluster,
        receiver.url(),
        "com.later",
        // Long enough to go through the retry backlog rather than a nak.
        fixed_retry_policy(&[2_000], 5),
        settings(
            None,
            4,
            pb::delivery_settings::Ordering::Key,
            pb::delivery_settings::OnDeadLetter::Block,
        ),
    )
    .await;
    for id in ["later-1", "later-2"] {
        cluster
            .post_structured(&keyed_event(id, "com.later", "k"))
            .await;
    }
    let first = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(event_id(&first[0]), "later-1");
    // The failing event waits in the backlog; the key's next event waits for it.
    receiver.set_reply(Reply::Status(StatusCode::OK));
    let requests = receiver.wait_for(3, Duration::from_secs(30)).await;
    let ids: Vec<String> = requests.iter().map(event_id).collect();
    assert_eq!(ids, ["later-1", "later-1", "later-2"]);
    let waited = requests[1]
        .received_at
        .duration_since(requests[0].received_at);
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}"
    );
    assert_eq!(
        requests[1].header("webhook-id"),
        requests[0].header("webhook-id")
    );
    wait_until_settled(&cluster, &subscription.id).await;
    let attempts = cluster
        .deliveries()
        .await
        .list_attempts(pb::ListAttemptsRequest {
            event_id: "later-1".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .attempts;
    let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2], "the backlog carries the attempt count");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_key_waiting_for_a_backlog_retry_still_waits_after_the_dispatcher_restarts() {
    let mut cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::FailIds {
        ids: ["restart-1".to_owned()].into(),
        status: StatusCode::SERVICE_UNAVAILABLE,
    });
    let subscription = subscribe(
        &cluster,
        receiver.url(),
        "com.restart",
        fixed_retry_policy(&[4_000], 5),
        settings(
            None,
            4,
            pb::delivery_settings::Ordering::Key,
            pb::delivery_settings::OnDeadLetter::Block,
        ),
    )
    .await;
    for id in ["restart-1", "restart-2", "restart-3"] {
        cluster
            .post_structured(&keyed_event(id, "com.restart", "k"))
            .await;
    }
    receiver.wait_for(1, Duration::from_secs(20)).await;
    eventually(
        "the retry in the backlog",
        Duration::from_secs(10),
        || async {
            let metrics = cluster.dispatcher_metrics();
            metrics
                .contains("herald_dispatch_retries_scheduled_total 1")
                .then_some(())
        },
    )
    .await;
    // A new dispatcher finds the key's first event in the retry backlog, and holds the others.
    cluster.stop_dispatcher().await;
    cluster.start_dispatcher().await;
    receiver.set_reply(Reply::Status(StatusCode::OK));
    let requests = receiver.wait_for(4, Duration::from_secs(30)).await;
    wait_until_settled(&cluster, &subscription.id).await;
    let ids: Vec<String> = requests.iter().map(event_id).collect();
    assert_eq!(ids, ["restart-1", "restart-1", "restart-2", "restart-3"]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn endpoint_health_written_by_another_replica_is_merged_not_overwritten() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let subscription = subscribe(
        &cluster,
        receiver.url(),
        "com.health",
        fixed_retry_policy(&[600_000], 5),
        settings(
            None,
            1,
            pb::delivery_settings::Ordering::None,
            pb::delivery_settings::OnDeadLetter::Unspecified,
        ),
    )
    .await;
    // Another replica saw this endpoint fail for an hour before the hand-over.
    let id = herald_core::SubscriptionId::parse(&subscription.id).unwrap();
    let an_hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let theirs = herald_core::record::EndpointHealth {
        consecutive_failures: 50,
        failing_since: Some(an_hour_ago),
        last_success_at: None,
        last_failure_at: Some(an_hour_ago),
    };
    let records = cluster.nats.records();
    records.set_health(&id, &theirs).await.unwrap();
    cluster
        .post_structured(&herald_test_support::structured_event(
            "health-1",
            "com.health",
        ))
        .await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let merged = eventually("the merged health", Duration::from_secs(10), || {
        let records = records.clone();
        let id = id.clone();
        async move {
            let health = records.health(&id).await.ok()?;
            (health.last_failure_at > Some(an_hour_ago)).then_some(health)
        }
    })
    .await;
    assert_eq!(merged.failing_since, Some(an_hour_ago), "{merged:?}");
    assert_eq!(merged.consecutive_failures, 50, "{merged:?}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn subscriptions_to_one_host_share_its_bound_and_wait_for_it_without_failing_an_attempt() {
    // Four subscriptions of 8 in flight each to one host held to 3 at once, and an attempt
    // deadline far shorter than the queue for the host: waiting for the host must be waiting
    // in the lanes, never an attempt that times out.
    let mut config = crate::cluster::dispatcher_config();
    config.max_in_flight_per_host = 3;
    config.request_timeout = Duration::from_secs(1);
    let cluster = TestCluster::start_with(config).await;
    let receiver = TestReceiver::start().await;
    receiver.set_delay(Duration::from_millis(200));
    let mut subscriptions = Vec::new();
    for _ in 0..4 {
        subscriptions.push(
            subscribe(
                &cluster,
                receiver.url(),
                "com.shared.host",
                fixed_retry_policy(&[100], 5),
                settings(
                    None,
                    8,
                    pb::delivery_settings::Ordering::None,
                    pb::delivery_settings::OnDeadLetter::Unspecified,
                ),
            )
            .await,
        );
    }
    let events = 20;
    for n in 0..events {
        cluster
            .post_structured(&herald_test_support::structured_event(
                &format!("shared-{n}"),
                "com.shared.host",
            ))
            .await;
    }
    let deliveries = events * subscriptions.len();
    receiver
        .wait_for(deliveries, Duration::from_secs(120))
        .await;
    for subscription in &subscriptions {
        wait_until_settled(&cluster, &subscription.id).await;
    }
    assert_eq!(receiver.count(), deliveries, "each delivery once");
    assert!(
        receiver.max_concurrent() <= 3,
        "the host saw {} requests at once",
        receiver.max_concurrent()
    );
    let metrics = cluster.dispatcher_metrics();
    let attempts: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("herald_dispatch_attempts_total{"))
        .collect();
    assert!(
        attempts
            .iter()
            .all(|line| line.contains(r#"outcome="delivered""#) || line.ends_with(" 0")),
        "every attempt delivered, none failed waiting for the host: {attempts:?}"
    );
    cluster.shutdown().await;
}
