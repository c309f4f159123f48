//! Reliable delivery: retries on schedule, Retry-After, deadlines, 410 Gone, dead letters and
//! redrive, the attempt log, delivery status and replay, all through the public APIs.

use std::time::Duration;

use axum::http::StatusCode;
use herald_proto::v1 as pb;
use herald_test_support::{Recorded, Reply, TestReceiver, eventually, structured_event};

use crate::cluster::{TestCluster, dispatcher_config, exact_type, fixed_retry_policy, type_prefix};
use crate::{ids, unique, wait_until_settled};

/// Groups deliveries by event id, in arrival order.
fn attempts_by_event(recorded: &[Recorded]) -> std::collections::BTreeMap<String, Vec<&Recorded>> {
    let mut by_event: std::collections::BTreeMap<String, Vec<&Recorded>> = Default::default();
    for request in recorded {
        let id = request.json()["id"].as_str().unwrap_or_default().to_owned();
        by_event.entry(id).or_default().push(request);
    }
    by_event
}

#[tokio::test]
async fn every_event_is_delivered_despite_random_failures_and_retries_follow_the_schedule() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::FailRandomly {
        percent: 30,
        status: StatusCode::INTERNAL_SERVER_ERROR,
    });
    let policy = fixed_retry_policy(&[200, 400], 20);
    let subscription = cluster.subscribe_with(receiver.url(), vec![], policy).await;
    for n in 0..60 {
        cluster
            .post_structured(&structured_event(&format!("flaky-{n}"), "com.flaky"))
            .await;
    }
    eventually("every event delivered", Duration::from_secs(60), || async {
        let delivered: Vec<String> = receiver
            .requests()
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        (unique(&delivered).len() == 60).then_some(())
    })
    .await;
    wait_until_settled(&cluster, &subscription.id).await;
    let requests = receiver.requests();
    let failures = requests
        .iter()
        .filter(|r| r.status != StatusCode::OK)
        .count();
    assert!(
        failures > 0,
        "the receiver should have failed some attempts"
    );
    for (event_id, attempts) in attempts_by_event(&requests) {
        // Exactly one success per event, and it is the last attempt.
        let successes = attempts
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(successes, 1, "{event_id}");
        assert_eq!(
            attempts.last().unwrap().status,
            StatusCode::OK,
            "{event_id}"
        );
        // No retry came before its scheduled delay: 200 ms after the first failure, then 400 ms.
        for (index, pair) in attempts.windows(2).enumerate() {
            let gap = pair[1].received_at - pair[0].received_at;
            let scheduled = if index == 0 {
                Duration::from_millis(200)
            } else {
                Duration::from_millis(400)
            };
            assert!(
                gap >= scheduled,
                "{event_id}: retry {} after {gap:?}, scheduled {scheduled:?}",
                index + 1
            );
        }
        // The same webhook-id on every attempt, with a fresh timestamp and signature.
        let webhook_ids: std::collections::BTreeSet<_> =
            attempts.iter().map(|r| r.header("webhook-id")).collect();
        assert_eq!(webhook_ids.len(), 1, "{event_id}");
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn events_sent_while_the_receiver_is_down_are_all_delivered_when_it_returns() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::Status(StatusCode::SERVICE_UNAVAILABLE));
    let subscription = cluster
        .subscribe_with(receiver.url(), vec![], fixed_retry_policy(&[100, 300], 100))
        .await;
    for n in 0..30 {
        cluster
            .post_structured(&structured_event(&format!("down-{n}"), "com.down"))
            .await;
    }
    receiver.wait_for(30, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    receiver.set_reply(Reply::Status(StatusCode::OK));
    wait_until_settled(&cluster, &subscription.id).await;
    let delivered: Vec<String> = receiver
        .requests()
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unique(&delivered).len(), 30);
    assert_eq!(
        delivered.len(),
        30,
        "each event is delivered once after the receiver returns"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::WithHeaders(
        StatusCode::TOO_MANY_REQUESTS,
        vec![("retry-after".to_owned(), "2".to_owned())],
    ));
    let subscription = cluster
        .subscribe_with(receiver.url(), vec![], fixed_retry_policy(&[100, 5000], 5))
        .await;
    cluster
        .post_structured(&structured_event("limited", "com.limited"))
        .await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    receiver.set_reply(Reply::Status(StatusCode::OK));
    let requests = receiver.wait_for(2, Duration::from_secs(10)).await;
    let gap = requests[1].received_at - requests[0].received_at;
    // The policy alone would have retried after 100 ms.
    assert!(
        gap >= Duration::from_secs(2),
        "retried after {gap:?}, the endpoint asked for 2 s"
    );
    wait_until_settled(&cluster, &subscription.id).await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_hanging_attempt_is_cut_at_the_deadline_and_never_overlaps_its_retry() {
    let mut config = dispatcher_config();
    config.request_timeout = Duration::from_millis(800);
    let cluster = TestCluster::start_with(config).await;
    let receiver = TestReceiver::start().await;
    receiver.set_delay(Duration::from_secs(30));
    let subscription = cluster
        .subscribe_with(receiver.url(), vec![], fixed_retry_policy(&[100], 10))
        .await;
    cluster
        .post_structured(&structured_event("hanging", "com.hanging"))
        .await;
    let requests = receiver.wait_for(3, Duration::from_secs(20)).await;
    for pair in requests.windows(2) {
        let gap = pair[1].received_at - pair[0].received_at;
        // The previous attempt was cut at 800 ms, then the retry waited 100 ms.
        assert!(
            gap >= Duration::from_millis(900),
            "attempts overlapped or came early: {gap:?}"
        );
    }
    receiver.set_delay(Duration::ZERO);
    wait_until_settled(&cluster, &subscription.id).await;
    let attempts = cluster
        .deliveries()
        .await
        .list_attempts(pb::ListAttemptsRequest {
            subscription_id: subscription.id.clone(),
            outcome: pb::AttemptOutcome::Retry as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .attempts;
    assert!(attempts.len() >= 3, "{attempts:?}");
    for attempt in &attempts {
        assert_eq!(attempt.result_class, "timeout", "{attempt:?}");
        // Cut by the 800 ms deadline, not by the receiver's 30 s hang. Only a coarse upper bound:
        // how much later than the deadline the cut lands depends on the machine's load.
        let duration = attempt.duration.as_ref().unwrap();
        assert!(
            duration.seconds < 10,
            "cut at the deadline, not after the hang: {duration:?}"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn gone_disables_the_subscription_and_tells_the_operator() {
    let cluster = TestCluster::start().await;
    let operator = TestReceiver::start().await;
    let operator_subscription = cluster
        .subscribe(operator.url(), vec![type_prefix("dev.herald.")])
        .await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::Status(StatusCode::GONE));
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type("com.gone")])
        .await;
    cluster
        .post_structured(&structured_event("gone-1", "com.gone"))
        .await;

    let announcements = operator.wait_for(2, Duration::from_secs(20)).await;
    let types: Vec<String> = announcements
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        types.contains(&"dev.herald.subscription.disabled".to_owned()),
        "{types:?}"
    );
    assert!(
        types.contains(&"dev.herald.attempt.exhausted".to_owned()),
        "{types:?}"
    );
    let disabled = announcements
        .iter()
        .find(|r| r.json()["type"] == "dev.herald.subscription.disabled")
        .unwrap();
    crate::verify_delivery(disabled, &operator_subscription.secret);
    assert_eq!(
        disabled.json()["data"]["subscription_id"],
        subscription.id.as_str()
    );

    let stored = cluster
        .control()
        .await
        .get_subscription(pb::GetSubscriptionRequest {
            id: subscription.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.state, pb::SubscriptionState::Disabled as i32);
    assert!(
        stored.state_reason.contains("410"),
        "{}",
        stored.state_reason
    );
    // Disabled: further events are not attempted.
    cluster
        .post_structured(&structured_event("gone-2", "com.gone"))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1);
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_exhausted_event_is_dead_lettered_and_redrive_delivers_it() {
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    receiver.set_reply(Reply::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let subscription = cluster
        .subscribe_with(
            receiver.url(),
            vec![exact_type("com.doomed")],
            fixed_retry_policy(&[100], 3),
        )
        .await;
    cluster
        .post_structured(&structured_event("doomed", "com.doomed"))
        .await;
    receiver.wait_for(3, Duration::from_secs(10)).await;
    wait_until_settled(&cluster, &subscription.id).await;
    assert_eq!(receiver.count(), 3, "max_attempts is 3");

    let mut deliveries = cluster.deliveries().await;
    let dead_letters = deliveries
        .list_dead_letters(pb::ListDeadLettersRequest {
            subscription_id: subscription.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(dead_letters.len(), 1, "{dead_letters:?}");
    let dead = &dead_letters[0];
    assert_eq!(dead.event_id, "doomed");
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.reason, "exhausted");
    assert!(dead.last_error.contains("500"), "{}", dead.last_error);

    receiver.set_reply(Reply::Status(StatusCode::OK));
    let redriven = deliveries
        .redrive_dead_letters(pb::RedriveDeadLettersRequest {
            subscription_id: subscription.id.clone(),
            all: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redriven.redriven, 1);
    let requests = receiver.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(requests[3].status, StatusCode::OK);
    crate::verify_delivery(&requests[3], &subscription.secret);
    assert_eq!(
        requests[3].header("webhook-id"),
        requests[0].header("webhook-id")
    );
    let left = deliveries
        .list_dead_letters(pb::ListDeadLettersRequest {
            subscription_id: subscription.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert!(left.is_empty(), "{left:?}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn attempt_log_and_delivery_status_answer_where_an_event_stands() {
    let cluster = TestCluster::start().await;
    let good = TestReceiver::start().await;
    let failing = TestReceiver::start().await;
    failing.set_reply(Reply::Status(StatusCode::BAD_GATEWAY));
    let delivered_to = cluster
        .subscribe(good.url(), vec![exact_type("com.status")])
        .await;
    let failing_to = cluster
        .subscribe_with(
            failing.url(),
            vec![exact_type("com.status")],
            fixed_retry_policy(&[60_000], 5),
        )
        .await;
    let elsewhere = cluster
        .subscribe(good.url(), vec![exact_type("com.other")])
        .await;
    cluster
        .post_structured(&structured_event("tracked", "com.status"))
        .await;
    good.wait_for(1, Duration::from_secs(10)).await;
    failing.wait_for(1, Duration::from_secs(10)).await;

    let mut deliveries = cluster.deliveries().await;
    let status = eventually("both attempts recorded", Duration::from_secs(10), || {
        let mut deliveries = deliveries.clone();
        async move {
            let statuses = deliveries
                .get_event_delivery_status(pb::GetEventDeliveryStatusRequest {
                    event_id: "tracked".to_owned(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .statuses;
            let attempted = statuses.iter().filter(|s| s.last_attempt.is_some()).count();
            (attempted == 2).then_some(statuses)
        }
    })
    .await;
    let state_of = |id: &str| {
        status
            .iter()
            .find(|s| s.subscription_id == id)
            .map(|s| s.state)
    };
    assert_eq!(
        state_of(&delivered_to.id),
        Some(pb::DeliveryState::Delivered as i32)
    );
    assert_eq!(
        state_of(&failing_to.id),
        Some(pb::DeliveryState::Retrying as i32)
    );
    assert_eq!(
        state_of(&elsewhere.id),
        Some(pb::DeliveryState::NotAttempted as i32)
    );
    let retrying = status
        .iter()
        .find(|s| s.subscription_id == failing_to.id)
        .unwrap();
    let last = retrying.last_attempt.as_ref().unwrap();
    assert_eq!(last.status_code, 502);
    assert!(last.next_attempt_time.is_some());

    let attempts = deliveries
        .list_attempts(pb::ListAttemptsRequest {
            event_id: "tracked".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .attempts;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let failed = deliveries
        .list_attempts(pb::ListAttemptsRequest {
            subscription_id: failing_to.id.clone(),
            outcome: pb::AttemptOutcome::Retry as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .attempts;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].event_id, "tracked");
    assert_eq!(failed[0].attempt, 1);
    cluster.shutdown().await;
}

#[tokio::test]
async fn replay_from_a_time_redelivers_exactly_the_retained_matching_events() {
    let cluster = TestCluster::start().await;
    for n in 0..5 {
        cluster
            .post_structured(&structured_event(&format!("old-{n}"), "com.replay"))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let from = time::OffsetDateTime::now_utc();
    for n in 0..10 {
        cluster
            .post_structured(&structured_event(&format!("new-{n}"), "com.replay"))
            .await;
        cluster
            .post_structured(&structured_event(&format!("other-{n}"), "com.unrelated"))
            .await;
    }
    // Subscribed after the fact: live delivery starts now, replay brings the past.
    let receiver = TestReceiver::start().await;
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type("com.replay")])
        .await;
    let last = cluster
        .replay(
            &subscription.id,
            pb::replay_events_request::From::StartTime(herald_proto::convert::timestamp_to_pb(
                from,
            )),
        )
        .await;
    assert!(last.done);
    assert_eq!(last.replayed, 10, "{last:?}");
    receiver.wait_for(10, Duration::from_secs(10)).await;
    wait_until_settled(&cluster, &subscription.id).await;
    let mut delivered = ids(&receiver.requests());
    delivered.sort();
    let mut expected: Vec<String> = (0..10).map(|n| format!("new-{n}")).collect();
    expected.sort();
    assert_eq!(delivered, expected);
    cluster.shutdown().await;
}

#[tokio::test]
async fn delivery_goes_on_when_the_attempt_log_cannot_be_written_and_the_miss_is_counted() {
    // The attempt log is best effort: delivery never waits on it, and a miss is counted.
    let cluster = TestCluster::start().await;
    let receiver = TestReceiver::start().await;
    let subscription = cluster
        .subscribe(receiver.url(), vec![exact_type("com.unlogged")])
        .await;
    crate::run_nats_py(
        "delete_stream.py",
        &[&cluster.nats_server.url(), herald_nats::ATTEMPTS_STREAM],
        "",
    )
    .await;
    cluster
        .post_structured(&structured_event("unlogged-1", "com.unlogged"))
        .await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    wait_until_settled(&cluster, &subscription.id).await;
    assert_eq!(receiver.count(), 1, "delivered once, and acknowledged");
    let line = "herald_dispatch_records_failed_total{kind=\"attempt\"} 1";
    eventually(
        "the miss to be counted",
        Duration::from_secs(10),
        || async { cluster.dispatcher_metrics().contains(line).then_some(()) },
    )
    .await;
    cluster.shutdown().await;
}
