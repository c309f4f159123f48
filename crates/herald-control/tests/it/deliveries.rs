//! The Deliveries API over real records: dead letters, the attempt log, delivery status and
//! replay, plus the retry policy and state of subscriptions.

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt as _;
use time::OffsetDateTime;

use herald_core::record::{AttemptRecord, EndpointHealth};
use herald_core::{Event, SubscriptionId};
use herald_nats::Start;
use herald_proto::v1 as pb;

use crate::support::{
    Control, Options, PUBLIC_SINK, check_invalid_argument, create_request, filter,
};

fn seconds(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

async fn create(control: &Control, filters: Vec<pb::Filter>) -> SubscriptionId {
    let created = control
        .create(pb::CreateSubscriptionRequest {
            filters,
            ..create_request(PUBLIC_SINK)
        })
        .await;
    SubscriptionId::parse(&created.id).unwrap()
}

fn event(id: &str, event_type: &str) -> Event {
    let json = herald_test_support::structured_event(id, event_type);
    Event::from_structured(Bytes::from(json)).unwrap()
}

async fn dead_letter(control: &Control, id: &SubscriptionId, event_id: &str, event_sequence: u64) {
    let event = event(event_id, "com.example.a");
    control
        .nats
        .records()
        .dead_letter(
            id,
            event.structured().clone(),
            event_sequence,
            8,
            "exhausted",
            "503 service unavailable",
            None,
        )
        .await
        .unwrap();
}

/// Returns the ids of the events republished on a subscription's redelivery subject.
async fn redelivered_ids(control: &Control, id: &SubscriptionId) -> Vec<String> {
    let subject = herald_nats::redeliver_subject(id);
    let scanned: Vec<herald_nats::Scanned> = control
        .nats
        .scan_events(vec![subject], Start::Sequence(1), None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    scanned
        .into_iter()
        .map(|message| {
            Event::from_structured(message.payload)
                .unwrap()
                .id()
                .to_owned()
        })
        .collect()
}

async fn list_dead_letters(
    control: &Control,
    id: &SubscriptionId,
    page_size: u32,
    page_token: &str,
) -> pb::ListDeadLettersResponse {
    control
        .deliveries()
        .list_dead_letters(pb::ListDeadLettersRequest {
            subscription_id: id.to_string(),
            page_size,
            page_token: page_token.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn create_keeps_a_custom_retry_policy_and_fills_defaults() {
    let control = Control::start(Options::default()).await;
    let created = control
        .create(pb::CreateSubscriptionRequest {
            retry_policy: Some(pb::RetryPolicy {
                backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
                    delays: vec![seconds(1), seconds(30)],
                })),
                max_attempts: 3,
                terminal_status_codes: vec![400, 404],
                ..Default::default()
            }),
            ..create_request(PUBLIC_SINK)
        })
        .await;
    let fetched = control
        .client()
        .get_subscription(pb::GetSubscriptionRequest { id: created.id })
        .await
        .unwrap()
        .into_inner();
    let policy = fetched.retry_policy.clone().unwrap();
    assert_eq!(
        policy.backoff,
        Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
            delays: vec![seconds(1), seconds(30)],
        }))
    );
    assert_eq!(policy.max_attempts, 3);
    assert_eq!(policy.jitter_percent, Some(20));
    assert_eq!(policy.max_age, Some(seconds(3 * 24 * 3600)));
    assert_eq!(policy.terminal_status_codes, [400, 404]);
    assert_eq!(fetched.state(), pb::SubscriptionState::Active);
    assert_eq!(fetched.health, Some(pb::EndpointHealth::default()));
}

#[tokio::test]
async fn invalid_retry_policies_name_the_field_and_store_nothing() {
    let control = Control::start(Options::default()).await;
    let cases = [
        (
            "retry_policy.fixed.delays[1]",
            pb::RetryPolicy {
                backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
                    delays: vec![seconds(1), seconds(-1)],
                })),
                ..Default::default()
            },
        ),
        (
            "retry_policy.max_attempts",
            pb::RetryPolicy {
                max_attempts: 5000,
                ..Default::default()
            },
        ),
        (
            "retry_policy.exponential.multiplier",
            pb::RetryPolicy {
                backoff: Some(pb::retry_policy::Backoff::Exponential(
                    pb::ExponentialBackoff {
                        initial: Some(seconds(1)),
                        multiplier: 0.5,
                        max_delay: Some(seconds(60)),
                    },
                )),
                ..Default::default()
            },
        ),
    ];
    for (field, policy) in cases {
        let status = control
            .client()
            .create_subscription(pb::CreateSubscriptionRequest {
                retry_policy: Some(policy),
                ..create_request(PUBLIC_SINK)
            })
            .await
            .unwrap_err();
        check_invalid_argument(&status, field);
    }
    assert!(control.stored_ids().await.is_empty());
}

#[tokio::test]
async fn update_replaces_the_retry_policy_only_when_given() {
    let control = Control::start(Options::default()).await;
    let id = create(&control, Vec::new()).await;
    let updated = control
        .client()
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: id.to_string(),
            retry_policy: Some(pb::RetryPolicy {
                max_attempts: 2,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.retry_policy.as_ref().unwrap().max_attempts, 2);
    let described = control
        .client()
        .update_subscription(pb::UpdateSubscriptionRequest {
            id: id.to_string(),
            description: Some("kept policy".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.retry_policy, updated.retry_policy);
}

#[tokio::test]
async fn pause_and_resume_change_the_state_and_resume_resets_health() {
    let control = Control::start(Options::default()).await;
    let id = create(&control, Vec::new()).await;
    let mut failing = EndpointHealth::default();
    failing.failed(OffsetDateTime::now_utc());
    control
        .nats
        .records()
        .set_health(&id, &failing)
        .await
        .unwrap();

    let paused = control
        .client()
        .pause_subscription(pb::PauseSubscriptionRequest { id: id.to_string() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.state(), pb::SubscriptionState::Paused);
    assert!(paused.state_change_time.is_some());
    assert!(!paused.state_reason.is_empty());
    let fetched = control
        .client()
        .get_subscription(pb::GetSubscriptionRequest { id: id.to_string() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.health.unwrap().consecutive_failures, 1);

    let resumed = control
        .client()
        .resume_subscription(pb::ResumeSubscriptionRequest { id: id.to_string() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed.state(), pb::SubscriptionState::Active);
    assert_eq!(resumed.state_change_time, None);
    let health = control.nats.records().health(&id).await.unwrap();
    assert_eq!(health, EndpointHealth::default());
}

#[tokio::test]
async fn dead_letters_page_redrive_and_purge() {
    let control = Control::start(Options::default()).await;
    let id = create(&control, Vec::new()).await;
    let other = create(&control, Vec::new()).await;
    dead_letter(&control, &id, "e-1", 1).await;
    dead_letter(&control, &other, "e-other", 2).await;
    dead_letter(&control, &id, "e-2", 3).await;

    let first = list_dead_letters(&control, &id, 1, "").await;
    assert_eq!(first.dead_letters.len(), 1);
    assert_eq!(first.dead_letters[0].event_id, "e-1");
    assert_eq!(first.dead_letters[0].reason, "exhausted");
    assert_eq!(first.dead_letters[0].attempts, 8);
    assert!(!first.next_page_token.is_empty());
    let second = list_dead_letters(&control, &id, 1, &first.next_page_token).await;
    assert_eq!(second.dead_letters.len(), 1);
    assert_eq!(second.dead_letters[0].event_id, "e-2");
    let all = list_dead_letters(&control, &id, 0, "").await;
    assert_eq!(all.dead_letters.len(), 2);
    assert_eq!(all.next_page_token, "");

    let redriven = control
        .deliveries()
        .redrive_dead_letters(pb::RedriveDeadLettersRequest {
            subscription_id: id.to_string(),
            sequences: vec![first.dead_letters[0].sequence],
            all: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redriven.redriven, 1);
    let left = list_dead_letters(&control, &id, 0, "").await;
    let left_ids: Vec<&str> = left
        .dead_letters
        .iter()
        .map(|d| d.event_id.as_str())
        .collect();
    assert_eq!(left_ids, ["e-2"]);
    assert_eq!(redelivered_ids(&control, &id).await, ["e-1"]);

    let purged = control
        .deliveries()
        .purge_dead_letters(pb::PurgeDeadLettersRequest {
            subscription_id: id.to_string(),
            sequences: Vec::new(),
            all: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(purged.purged, 1);
    assert!(
        list_dead_letters(&control, &id, 0, "")
            .await
            .dead_letters
            .is_empty()
    );
    assert_eq!(
        list_dead_letters(&control, &other, 0, "")
            .await
            .dead_letters
            .len(),
        1
    );
}

#[tokio::test]
async fn dead_letters_of_an_unknown_subscription_are_not_found() {
    let control = Control::start(Options::default()).await;
    let status = control
        .deliveries()
        .list_dead_letters(pb::ListDeadLettersRequest {
            subscription_id: "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let id = create(&control, Vec::new()).await;
    let status = control
        .deliveries()
        .redrive_dead_letters(pb::RedriveDeadLettersRequest {
            subscription_id: id.to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    check_invalid_argument(&status, "sequences");
}

fn attempt(
    id: &SubscriptionId,
    event_id: &str,
    number: u32,
    outcome: &str,
    started_at: OffsetDateTime,
) -> AttemptRecord {
    AttemptRecord {
        subscription_id: id.to_string(),
        event_id: event_id.to_owned(),
        event_source: "/herald/tests".to_owned(),
        event_type: "com.example.a".to_owned(),
        message_id: format!("msg_{event_id}"),
        attempt: number,
        started_at,
        duration_ms: 12,
        status: (outcome != "retry").then_some(200),
        result_class: if outcome == "retry" { "timeout" } else { "2xx" }.to_owned(),
        error: None,
        response_headers: Default::default(),
        response_body: String::new(),
        outcome: outcome.to_owned(),
        next_attempt_at: None,
    }
}

async fn list_attempts(control: &Control, request: pb::ListAttemptsRequest) -> Vec<(String, u32)> {
    control
        .deliveries()
        .list_attempts(request)
        .await
        .unwrap()
        .into_inner()
        .attempts
        .into_iter()
        .map(|attempt| (attempt.event_id, attempt.attempt))
        .collect()
}

#[tokio::test]
async fn attempts_filter_by_subscription_event_outcome_and_time() {
    let control = Control::start(Options::default()).await;
    let id = create(&control, Vec::new()).await;
    let other = create(&control, Vec::new()).await;
    let records = control.nats.records();
    let early = OffsetDateTime::now_utc();
    records
        .record_attempt(&attempt(&id, "e-1", 1, "retry", early))
        .await
        .unwrap();
    // Attempts are stored as they finish: a time filter selects by when they were recorded.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = OffsetDateTime::now_utc();
    for record in [
        attempt(&id, "e-1", 2, "delivered", later),
        attempt(&other, "e-1", 1, "delivered", later),
        attempt(&id, "e-2", 1, "delivered", later),
    ] {
        records.record_attempt(&record).await.unwrap();
    }

    let by_subscription = list_attempts(
        &control,
        pb::ListAttemptsRequest {
            subscription_id: id.to_string(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        by_subscription,
        [
            ("e-1".to_owned(), 1),
            ("e-1".to_owned(), 2),
            ("e-2".to_owned(), 1)
        ]
    );
    let by_event = list_attempts(
        &control,
        pb::ListAttemptsRequest {
            event_id: "e-1".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_event.len(), 3);
    let retries = list_attempts(
        &control,
        pb::ListAttemptsRequest {
            outcome: pb::AttemptOutcome::Retry as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(retries, [("e-1".to_owned(), 1)]);
    let late = list_attempts(
        &control,
        pb::ListAttemptsRequest {
            subscription_id: id.to_string(),
            start_time: Some(herald_proto::timestamp_to_pb(later)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(late, [("e-1".to_owned(), 2), ("e-2".to_owned(), 1)]);

    let page = control
        .deliveries()
        .list_attempts(pb::ListAttemptsRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.attempts.len(), 2);
    let rest = list_attempts(
        &control,
        pb::ListAttemptsRequest {
            page_token: page.next_page_token,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(rest.len(), 2);
}

#[tokio::test]
async fn delivery_status_tells_each_subscription_where_an_event_stands() {
    let control = Control::start(Options::default()).await;
    let delivered = create(&control, Vec::new()).await;
    let retrying = create(&control, Vec::new()).await;
    let dead = create(&control, Vec::new()).await;
    let untouched = create(&control, Vec::new()).await;
    let now = OffsetDateTime::now_utc();
    let records = control.nats.records();
    for record in [
        attempt(&delivered, "e-1", 1, "retry", now),
        attempt(&delivered, "e-1", 2, "delivered", now),
        attempt(&retrying, "e-1", 1, "retry", now),
        attempt(&dead, "e-1", 3, "dead", now),
    ] {
        records.record_attempt(&record).await.unwrap();
    }
    let status_of = |source: &str| {
        let request = pb::GetEventDeliveryStatusRequest {
            event_id: "e-1".to_owned(),
            event_source: source.to_owned(),
        };
        let mut client = control.deliveries();
        async move {
            client
                .get_event_delivery_status(request)
                .await
                .unwrap()
                .into_inner()
                .statuses
        }
    };
    let statuses = status_of("").await;
    let state = |id: &SubscriptionId| {
        let status = statuses
            .iter()
            .find(|status| status.subscription_id == id.as_str())
            .unwrap();
        (
            status.state(),
            status.last_attempt.as_ref().map(|a| a.attempt),
        )
    };
    assert_eq!(state(&delivered), (pb::DeliveryState::Delivered, Some(2)));
    assert_eq!(state(&retrying), (pb::DeliveryState::Retrying, Some(1)));
    assert_eq!(state(&dead), (pb::DeliveryState::Dead, Some(3)));
    assert_eq!(state(&untouched), (pb::DeliveryState::NotAttempted, None));

    let elsewhere = status_of("/another/source").await;
    assert!(
        elsewhere
            .iter()
            .all(|status| status.state() == pb::DeliveryState::NotAttempted),
        "{elsewhere:?}"
    );
}

#[tokio::test]
async fn replay_redelivers_exactly_the_matching_events() {
    let control = Control::start(Options::default()).await;
    let publisher = control.nats.publisher();
    publisher
        .publish(&event("old", "com.example.a"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let from = OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let id = create(
        &control,
        vec![filter(r#"{"prefix": {"type": "com.example."}}"#)],
    )
    .await;
    let mut matching = Vec::new();
    for n in 0..150 {
        let event_id = format!("m-{n}");
        let event_type = if n % 2 == 0 {
            "com.example.a"
        } else {
            "com.example.b"
        };
        publisher
            .publish(&event(&event_id, event_type))
            .await
            .unwrap();
        matching.push(event_id);
        publisher
            .publish(&event(&format!("x-{n}"), "org.other.c"))
            .await
            .unwrap();
    }

    let progress: Vec<pb::ReplayProgress> = control
        .deliveries()
        .replay_events(pb::ReplayEventsRequest {
            subscription_id: id.to_string(),
            from: Some(pb::replay_events_request::From::StartTime(
                herald_proto::timestamp_to_pb(from),
            )),
            to: None,
        })
        .await
        .unwrap()
        .into_inner()
        .try_collect()
        .await
        .unwrap();

    let last = progress.last().unwrap();
    assert!(last.done, "{progress:?}");
    assert_eq!((last.scanned, last.replayed), (150, 150));
    assert!(
        progress.len() >= 2,
        "expected intermediate progress: {progress:?}"
    );
    assert!(progress[..progress.len() - 1].iter().all(|p| !p.done));
    let mut redelivered = redelivered_ids(&control, &id).await;
    redelivered.sort();
    matching.sort();
    assert_eq!(redelivered, matching);
}

#[tokio::test]
async fn replay_evaluates_filters_beyond_the_subject_and_stops_at_the_end_sequence() {
    let control = Control::start(Options::default()).await;
    let publisher = control.nats.publisher();
    let id = create(&control, vec![filter(r#"{"suffix": {"id": "-keep"}}"#)]).await;
    let mut receipts = Vec::new();
    for event_id in ["1-keep", "2-drop", "3-keep", "4-keep"] {
        receipts.push(
            publisher
                .publish(&event(event_id, "com.example.a"))
                .await
                .unwrap(),
        );
    }
    let progress: Vec<pb::ReplayProgress> = control
        .deliveries()
        .replay_events(pb::ReplayEventsRequest {
            subscription_id: id.to_string(),
            from: Some(pb::replay_events_request::From::StartSequence(1)),
            to: Some(pb::replay_events_request::To::EndSequence(
                receipts[2].sequence,
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .try_collect()
        .await
        .unwrap();
    let last = progress.last().unwrap();
    assert_eq!((last.scanned, last.replayed, last.done), (3, 2, true));
    assert_eq!(redelivered_ids(&control, &id).await, ["1-keep", "3-keep"]);
}

#[tokio::test]
async fn replay_refuses_a_missing_start_and_an_unknown_subscription() {
    let control = Control::start(Options::default()).await;
    let id = create(&control, Vec::new()).await;
    let status = control
        .deliveries()
        .replay_events(pb::ReplayEventsRequest {
            subscription_id: id.to_string(),
            from: None,
            to: None,
        })
        .await
        .unwrap_err();
    check_invalid_argument(&status, "from");
    let status = control
        .deliveries()
        .replay_events(pb::ReplayEventsRequest {
            subscription_id: "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
            from: Some(pb::replay_events_request::From::StartSequence(1)),
            to: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
}
