//! Several `herald dispatch` processes share the subscriptions, and their limits and per-key
//! order hold while one is killed (`kill -9`) and another is stopped (SIGSTOP) for longer than
//! its lease, then woken up (SIGCONT).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use herald_proto::v1 as pb;
use herald_test_support::{NatsServer, Recorded, TestReceiver, eventually};

use crate::process::{self, API_TOKEN, Ports};

#[allow(
    clippy::print_stderr,
    reason = "the figures are part of the test's report"
)]
fn report(line: &str) {
    eprintln!("{line}");
}

const RATE: u32 = 40;
const BURST: u32 = 5;
const MAX_IN_FLIGHT: u32 = 2;
const KEYS: usize = 8;
const PER_KEY: usize = 25;

async fn subscribe(ports: &Ports, nats: &herald_nats::Nats, sink: &str) -> String {
    let request = pb::CreateSubscriptionRequest {
        sink: sink.to_owned(),
        retry_policy: Some(pb::RetryPolicy {
            backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
                delays: vec![prost_types::Duration {
                    seconds: 0,
                    nanos: 200_000_000,
                }],
            })),
            jitter_percent: Some(0),
            max_attempts: 100,
            ..Default::default()
        }),
        delivery: Some(pb::DeliverySettings {
            rate_limit: Some(pb::RateLimit {
                per_second: RATE,
                burst: BURST,
            }),
            max_in_flight: Some(MAX_IN_FLIGHT),
            ordering: pb::delivery_settings::Ordering::Key as i32,
            on_dead_letter: pb::delivery_settings::OnDeadLetter::Block as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    create(ports, nats, request).await
}

/// Creates a subscription through the control API and waits for its consumer; returns its id.
async fn create(
    ports: &Ports,
    nats: &herald_nats::Nats,
    request: pb::CreateSubscriptionRequest,
) -> String {
    let mut client = process::control_client(ports).await;
    let id = client
        .create_subscription(request)
        .await
        .unwrap()
        .into_inner()
        .id;
    eventually(
        "the subscription's consumer",
        Duration::from_secs(20),
        || {
            let nats = nats.clone();
            let id = id.clone();
            async move { nats.consumer_progress(&id).await.ok() }
        },
    )
    .await;
    id
}

/// Posts every event, keys interleaved, in batches of `KEYS` (one event per key).
async fn post_events(ports: &Ports) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().unwrap();
    for n in 0..PER_KEY {
        let batch: Vec<serde_json::Value> = (0..KEYS)
            .map(|key| {
                serde_json::json!({
                    "specversion": "1.0", "id": format!("k{key}-{n:03}"), "source": "/replicas",
                    "type": "com.replicas", "partitionkey": format!("k{key}"),
                })
            })
            .collect();
        let response = http
            .post(ports.ingest_url())
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&batch).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
}

fn event_id(recorded: &Recorded) -> String {
    recorded.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Checks that, per key (the id's text before its `-`), the first delivery of each event came
/// in publish order; returns how many keys were seen.
fn assert_first_deliveries_in_key_order(requests: &[Recorded]) -> usize {
    let mut first: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for request in requests {
        let id = event_id(request);
        if seen.insert(id.clone()) {
            let key = id.split('-').next().unwrap_or_default().to_owned();
            first.entry(key).or_default().push(id);
        }
    }
    for (key, ids) in &first {
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "key {key} out of order: {ids:?}"
        );
    }
    first.len()
}

/// Checks that over any window of a second or more the endpoint received at most
/// `rate × window + burst` requests (with half a second of slack for requests that left on
/// time and arrived bunched up).
fn assert_within_rate(requests: &[Recorded], rate: u32, burst: u32) {
    let arrivals: Vec<Instant> = requests.iter().map(|r| r.received_at).collect();
    for (first, start) in arrivals.iter().enumerate() {
        for (last, end) in arrivals.iter().enumerate().skip(first) {
            let window = end.duration_since(*start);
            if window < Duration::from_secs(1) {
                continue;
            }
            let count = (last - first + 1) as f64;
            let bound = f64::from(rate) * (window.as_secs_f64() + 0.5) + f64::from(burst);
            assert!(count <= bound, "{count} requests in {window:?}");
        }
    }
}

async fn signal(role: &process::Role, signal: &str) {
    let pid = role.child.id().expect("the process should be running");
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn three_dispatchers_keep_order_and_limits_through_a_kill_and_a_stall_past_the_lease() {
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let nats = process::nats(&ports.nats_url).await;
    // Migrated with the dispatchers' lease, which sets how long the server keeps a member.
    let lease = [("HERALD_DISPATCHER__LEASE_TTL", "2s")];
    let mut control = process::start_with("control", &ports, &lease);
    let mut ingest = process::start("ingest", &ports);
    control.wait_listening(ports.control).await;
    ingest.wait_listening(ports.ingest).await;
    let mut dispatchers: Vec<Option<process::Role>> = (0..3)
        .map(|_| Some(process::start_with("dispatch", &ports, &lease)))
        .collect();
    let receivers: Vec<TestReceiver> =
        futures::future::join_all((0..6).map(|_| TestReceiver::start())).await;
    for receiver in &receivers {
        receiver.set_delay(Duration::from_millis(10));
        subscribe(&ports, &nats, receiver.url()).await;
    }
    let started = Instant::now();
    post_events(&ports).await;
    let total = KEYS * PER_KEY;
    // Let every replica take its share, then kill one and stop another past its lease.
    eventually("deliveries under way", Duration::from_secs(30), || async {
        (receivers.iter().map(TestReceiver::count).sum::<usize>() >= 6 * 20).then_some(())
    })
    .await;
    let killed_at = Instant::now();
    if let Some(killed) = dispatchers[0].take() {
        killed.kill().await;
    }
    let stalled = dispatchers[1].as_ref().expect("the second dispatcher runs");
    signal(stalled, "STOP").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    signal(stalled, "CONT").await;

    for receiver in &receivers {
        receiver.wait_for(total, Duration::from_secs(120)).await;
        eventually(
            "every event delivered",
            Duration::from_secs(120),
            || async {
                let ids: BTreeSet<String> = receiver.requests().iter().map(event_id).collect();
                (ids.len() == total).then_some(())
            },
        )
        .await;
    }
    let finished = started.elapsed();

    let mut duplicates = 0;
    // The longest silence an endpoint saw after the kill: how long its work took to move.
    let mut longest_gap = Duration::ZERO;
    for receiver in &receivers {
        let after_kill: Vec<Instant> = receiver
            .requests()
            .iter()
            .map(|r| r.received_at)
            .filter(|at| *at >= killed_at)
            .collect();
        if let Some(first) = after_kill.first() {
            longest_gap = longest_gap.max(first.duration_since(killed_at));
        }
        for pair in after_kill.windows(2) {
            longest_gap = longest_gap.max(pair[1].duration_since(pair[0]));
        }
    }
    for receiver in &receivers {
        let requests = receiver.requests();
        duplicates += requests.len() - total;
        assert_first_deliveries_in_key_order(&requests);
        assert!(
            receiver.max_concurrent() <= MAX_IN_FLIGHT as usize,
            "{} requests at once",
            receiver.max_concurrent()
        );
        // Across every replica.
        assert_within_rate(&requests, RATE, BURST);
    }
    report(&format!(
        "3 dispatchers, 6 ordered subscriptions at {RATE}/s, {total} events each: all delivered in order after {finished:?} \
         (kill -9 and a 5 s SIGSTOP at {:?}; longest silence of an endpoint afterwards, the time its work took to move: {longest_gap:?}), \
         {duplicates} duplicates, at most {MAX_IN_FLIGHT} at once",
        killed_at.duration_since(started)
    ));
}

/// Posts `count` unordered events in batches of 100.
async fn post_unordered(ports: &Ports, count: usize) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().unwrap();
    for start in (0..count).step_by(100) {
        let batch: Vec<serde_json::Value> = (start..(start + 100).min(count))
            .map(|n| {
                serde_json::json!({
                    "specversion": "1.0", "id": format!("paced-{n:04}"), "source": "/replicas",
                    "type": "com.paced",
                })
            })
            .collect();
        let response = http
            .post(ports.ingest_url())
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&batch).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
}

/// Runs `dispatchers` dispatcher processes against a subscription limited to 20 events a
/// second, with far more events waiting than it may send, and counts what the endpoint
/// receives over 30 s of steady state.
async fn endpoint_rate_over_thirty_seconds(dispatchers: usize) -> usize {
    const LIMIT: u32 = 20;
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let nats = process::nats(&ports.nats_url).await;
    // Migrated with the dispatchers' lease, which sets how long the server keeps a member.
    let lease = [("HERALD_DISPATCHER__LEASE_TTL", "2s")];
    let mut control = process::start_with("control", &ports, &lease);
    let mut ingest = process::start("ingest", &ports);
    control.wait_listening(ports.control).await;
    ingest.wait_listening(ports.ingest).await;
    let _dispatchers: Vec<process::Role> = (0..dispatchers)
        .map(|_| process::start_with("dispatch", &ports, &lease))
        .collect();
    let receiver = TestReceiver::start().await;
    let request = pb::CreateSubscriptionRequest {
        sink: receiver.url().to_owned(),
        delivery: Some(pb::DeliverySettings {
            // A burst of a few lets a send that woke late be made up (with a burst of 1, every
            // late timer wake-up is lost for good, and the rate sits a few percent below).
            rate_limit: Some(pb::RateLimit {
                per_second: LIMIT,
                burst: 5,
            }),
            max_in_flight: Some(4),
            ..Default::default()
        }),
        ..Default::default()
    };
    create(&ports, &nats, request).await;
    // 50 s worth of events: the limit, not the supply, sets the pace throughout.
    post_unordered(&ports, 1000).await;
    // Past the start (ownership settling, the first pull), then 30 s of steady state.
    let warm = receiver.wait_for(20, Duration::from_secs(60)).await;
    let from = warm[19].received_at;
    tokio::time::sleep(Duration::from_secs(31)).await;
    let until = from + Duration::from_secs(30);
    receiver
        .requests()
        .iter()
        .filter(|r| r.received_at >= from && r.received_at < until)
        .count()
}

#[tokio::test]
async fn a_rate_limit_holds_within_five_percent_over_thirty_seconds_with_one_dispatcher() {
    let received = Box::pin(endpoint_rate_over_thirty_seconds(1)).await;
    report(&format!(
        "1 dispatcher, limit 20/s: {received} requests in 30 s (target 600 ± 5 %)"
    ));
    assert!(
        (570..=630).contains(&received),
        "{received} requests in 30 s"
    );
}

#[tokio::test]
async fn a_rate_limit_holds_within_five_percent_over_thirty_seconds_with_three_dispatchers() {
    let received = Box::pin(endpoint_rate_over_thirty_seconds(3)).await;
    report(&format!(
        "3 dispatchers, limit 20/s: {received} requests in 30 s (target 600 ± 5 %)"
    ));
    assert!(
        (570..=630).contains(&received),
        "{received} requests in 30 s"
    );
}

/// Posts `per_key` events for each of `keys` keys, keys interleaved, 500 to a batch.
async fn post_keyed(ports: &Ports, keys: usize, per_key: usize) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().unwrap();
    let events: Vec<serde_json::Value> = (0..per_key)
        .flat_map(|n| {
            (0..keys).map(move |key| {
                serde_json::json!({
                    "specversion": "1.0", "id": format!("k{key:02}-{n:03}"), "source": "/ordering",
                    "type": "com.ordering", "partitionkey": format!("k{key:02}"),
                })
            })
        })
        .collect();
    for batch in events.chunks(500) {
        let response = http
            .post(ports.ingest_url())
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(batch).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
}

// Several worker threads: the receiver answers 10,000 requests while the test polls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_keys_stay_in_order_through_random_failures_while_one_failing_key_holds_back_only_itself()
 {
    const KEYS: usize = 50;
    const PER_KEY: usize = 200;
    const IN_FLIGHT: u32 = 16;
    let failing_key = "k07";
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let nats = process::nats(&ports.nats_url).await;
    // Migrated with the dispatchers' lease, which sets how long the server keeps a member.
    let lease = [("HERALD_DISPATCHER__LEASE_TTL", "2s")];
    let mut control = process::start_with("control", &ports, &lease);
    let mut ingest = process::start("ingest", &ports);
    control.wait_listening(ports.control).await;
    ingest.wait_listening(ports.ingest).await;
    let _dispatchers: Vec<process::Role> = (0..3)
        .map(|_| process::start_with("dispatch", &ports, &lease))
        .collect();
    let receiver = TestReceiver::start().await;
    // One key's requests all fail; about 20 % of the others fail at random.
    receiver.set_reply(herald_test_support::Reply::FailKeyUntil {
        key: failing_key.to_owned(),
        until: Instant::now() + Duration::from_secs(3600),
        percent: 20,
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
    });
    let request = pb::CreateSubscriptionRequest {
        sink: receiver.url().to_owned(),
        retry_policy: Some(pb::RetryPolicy {
            backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
                delays: vec![prost_types::Duration {
                    seconds: 0,
                    nanos: 100_000_000,
                }],
            })),
            jitter_percent: Some(0),
            max_attempts: 1000,
            ..Default::default()
        }),
        delivery: Some(pb::DeliverySettings {
            max_in_flight: Some(IN_FLIGHT),
            ordering: pb::delivery_settings::Ordering::Key as i32,
            on_dead_letter: pb::delivery_settings::OnDeadLetter::Block as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = create(&ports, &nats, request).await;
    let started = Instant::now();
    post_keyed(&ports, KEYS, PER_KEY).await;
    let posted = started.elapsed();

    let delivered_of = |key_filter: &dyn Fn(&str) -> bool| {
        let ok: BTreeSet<String> = receiver
            .requests()
            .iter()
            .filter(|r| r.status == axum::http::StatusCode::OK)
            .map(event_id)
            .filter(|id| key_filter(id))
            .collect();
        ok.len()
    };
    let others = |id: &str| !id.starts_with(failing_key);
    // The other 49 keys finish while the failing key's endpoint path keeps failing (for at
    // least 10 s): were it holding them back, they would never finish.
    // Counting is cheap, collecting the ids is not: only once enough succeeded.
    eventually(
        "the other keys delivered",
        Duration::from_secs(240),
        || async {
            (receiver.count_ok() >= (KEYS - 1) * PER_KEY
                && delivered_of(&others) == (KEYS - 1) * PER_KEY)
                .then_some(())
        },
    )
    .await;
    let others_done = started.elapsed();
    let failing_delivered = delivered_of(&|id: &str| id.starts_with(failing_key));
    assert_eq!(
        failing_delivered, 0,
        "the failing key delivered nothing yet"
    );
    let failing_attempts = receiver
        .requests()
        .iter()
        .filter(|r| event_id(r).starts_with(failing_key))
        .map(event_id)
        .collect::<BTreeSet<_>>();
    assert_eq!(
        failing_attempts.into_iter().collect::<Vec<_>>(),
        [format!("{failing_key}-000")],
        "only the failing key's head was tried"
    );
    let remaining = Duration::from_secs(10).saturating_sub(started.elapsed());
    tokio::time::sleep(remaining).await;
    let recovered_at = started.elapsed();
    receiver.set_reply(herald_test_support::Reply::FailRandomly {
        percent: 20,
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
    });
    eventually(
        "the failing key delivered once its endpoint recovers",
        Duration::from_secs(240),
        || async {
            (receiver.count_ok() >= KEYS * PER_KEY && delivered_of(&|_| true) == KEYS * PER_KEY)
                .then_some(())
        },
    )
    .await;
    let finished = started.elapsed();

    // Per key, the first successful delivery of each event comes in publish order.
    let requests = receiver.requests();
    let mut first: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for request in requests
        .iter()
        .filter(|r| r.status == axum::http::StatusCode::OK)
    {
        let id = event_id(request);
        if seen.insert(id.clone()) {
            let key = id.split('-').next().unwrap_or_default().to_owned();
            first.entry(key).or_default().push(id);
        }
    }
    assert_eq!(first.len(), KEYS);
    for (key, ids) in &first {
        assert_eq!(ids.len(), PER_KEY, "key {key}");
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "key {key} out of order: {ids:?}"
        );
    }
    assert!(
        receiver.max_concurrent() <= IN_FLIGHT as usize,
        "{} requests at once",
        receiver.max_concurrent()
    );
    let failed = requests
        .iter()
        .filter(|r| r.status != axum::http::StatusCode::OK)
        .count();
    let id = herald_core::SubscriptionId::parse(&id).unwrap();
    let held = nats
        .retries()
        .held_keys(&herald_core::WorkId::whole(id))
        .await
        .unwrap();
    assert!(held.is_empty(), "every hold emptied");
    report(&format!(
        "ordering at scale: {KEYS} keys × {PER_KEY} events posted in {posted:?}, {failed} failed attempts (20 % at random, and key {failing_key} failing until {recovered_at:?}): \
         the other {} keys finished after {others_done:?} while {failing_key} waited, everything after {finished:?}, each key's first deliveries in publish order, at most {} of {IN_FLIGHT} requests at once",
        KEYS - 1,
        receiver.max_concurrent()
    ));
}

/// Reads who holds each part's claim; `None` until every part is claimed.
async fn part_owners(
    dispatchers: &herald_nats::Dispatchers,
    works: &[herald_core::WorkId],
) -> Option<Vec<String>> {
    let mut owners = Vec::with_capacity(works.len());
    for work in works {
        match dispatchers.claim(work).await.ok()??.state {
            herald_nats::ClaimState::Held(claim) => owners.push(claim.owner),
            _ => return None,
        }
    }
    Some(owners)
}

// Several worker threads: the receiver answers while the test polls it and the claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_subscription_is_delivered_by_several_dispatchers_at_once_in_key_order_within_its_limits()
 {
    const PARTS: u32 = 16;
    const IN_FLIGHT: u32 = 16;
    const RATE: u32 = 400;
    const BURST: u32 = 16;
    const KEYS: usize = 48;
    const PER_KEY: usize = 25;
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let nats = process::nats(&ports.nats_url).await;
    let lease_ttl = Duration::from_secs(2);
    let lease = [("HERALD_DISPATCHER__LEASE_TTL", "2s")];
    let mut control = process::start_with("control", &ports, &lease);
    let mut ingest = process::start("ingest", &ports);
    control.wait_listening(ports.control).await;
    ingest.wait_listening(ports.ingest).await;
    let mut dispatchers: Vec<Option<process::Role>> = (0..3)
        .map(|_| Some(process::start_with("dispatch", &ports, &lease)))
        .collect();
    let receiver = TestReceiver::start().await;
    receiver.set_delay(Duration::from_millis(5));
    let request = pb::CreateSubscriptionRequest {
        sink: receiver.url().to_owned(),
        retry_policy: Some(pb::RetryPolicy {
            backoff: Some(pb::retry_policy::Backoff::Fixed(pb::FixedBackoff {
                delays: vec![prost_types::Duration {
                    seconds: 0,
                    nanos: 200_000_000,
                }],
            })),
            jitter_percent: Some(0),
            max_attempts: 100,
            ..Default::default()
        }),
        delivery: Some(pb::DeliverySettings {
            rate_limit: Some(pb::RateLimit {
                per_second: RATE,
                burst: BURST,
            }),
            max_in_flight: Some(IN_FLIGHT),
            ordering: pb::delivery_settings::Ordering::Key as i32,
            parts: PARTS,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut client = process::control_client(&ports).await;
    let created = client
        .create_subscription(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.delivery.as_ref().map(|d| d.parts), Some(PARTS));
    let id = herald_core::SubscriptionId::parse(&created.id).unwrap();
    let works: Vec<herald_core::WorkId> = (0..PARTS)
        .map(|index| {
            let part = herald_core::subscription::Part::new(index, PARTS).unwrap();
            herald_core::WorkId::new(id.clone(), part)
        })
        .collect();
    // Every part gets a consumer of its own and is claimed by one of the replicas.
    for work in &works {
        eventually("the part's consumer", Duration::from_secs(30), || {
            let nats = nats.clone();
            let name = work.consumer_name();
            async move { nats.consumer_progress(&name).await.ok() }
        })
        .await;
    }
    let claims = herald_nats::Dispatchers::open(&nats, lease_ttl)
        .await
        .unwrap();
    // Rendezvous hashing spreads 16 parts over 3 replicas (all on one has odds of 3 in 3^16),
    // once each replica knows the others: a replica that starts first, or sees the others
    // late on a busy machine, claims every part and hands over those it no longer prefers
    // when the others join, so the spread is a state reached, not the first one seen.
    let owners = eventually(
        "every part claimed, over more than one replica",
        Duration::from_secs(60),
        || async {
            let owners = part_owners(&claims, &works).await?;
            let distinct: BTreeSet<&String> = owners.iter().collect();
            (distinct.len() >= 2).then_some(owners)
        },
    )
    .await;
    let distinct: BTreeSet<&String> = owners.iter().collect();

    let started = Instant::now();
    post_keyed(&ports, KEYS, PER_KEY).await;
    let total = KEYS * PER_KEY;
    eventually("deliveries under way", Duration::from_secs(60), || async {
        (receiver.count() >= total / 4).then_some(())
    })
    .await;
    // Kill the owner of part 0: its parts move to the two others.
    let victim = dispatchers
        .iter()
        .position(|role| {
            role.as_ref()
                .and_then(|role| role.child.id())
                .is_some_and(|pid| owners[0].contains(&format!("-{pid}-")))
        })
        .expect("part 0's owner is one of the dispatchers");
    let moved_parts = owners.iter().filter(|owner| **owner == owners[0]).count();
    let killed_at = Instant::now();
    if let Some(killed) = dispatchers[victim].take() {
        killed.kill().await;
    }
    let after = eventually(
        "the killed replica's parts taken over",
        Duration::from_secs(60),
        || async {
            part_owners(&claims, &works)
                .await
                .filter(|now| now.iter().all(|owner| *owner != owners[0]))
        },
    )
    .await;
    let moved_in = killed_at.elapsed();
    eventually(
        "every event delivered",
        Duration::from_secs(180),
        || async {
            let ids: BTreeSet<String> = receiver.requests().iter().map(event_id).collect();
            (ids.len() == total).then_some(())
        },
    )
    .await;
    let finished = started.elapsed();

    let requests = receiver.requests();
    // Per key, in publish order across the hand-over.
    assert_eq!(assert_first_deliveries_in_key_order(&requests), KEYS);
    // The subscription's limits hold across the replicas that share its parts.
    assert!(
        receiver.max_concurrent() <= IN_FLIGHT as usize,
        "{} requests at once",
        receiver.max_concurrent()
    );
    assert_within_rate(&requests, RATE, BURST);
    let survivors: BTreeSet<&String> = after.iter().collect();
    report(&format!(
        "a subscription in {PARTS} parts over 3 dispatchers ({} owning parts, {moved_parts} parts on the killed one): \
         {total} events of {KEYS} keys delivered in key order in {finished:?}, at most {} at once (limit {IN_FLIGHT}); \
         kill -9 of a replica, its parts taken by {} others in {moved_in:?}; {} duplicates",
        distinct.len(),
        receiver.max_concurrent(),
        survivors.len(),
        requests.len() - total,
    ));
}
