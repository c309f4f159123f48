//! Herald on a 3-node R3 nats-server cluster: `kill -9` of one node mid-run and its restart lose
//! no acknowledged event, and delivery goes on (issue 11, "A cluster to test on").

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use herald_test_support::{NatsCluster, TestReceiver, eventually, structured_event};

use crate::process::{self, Ports};

/// Every stream Herald creates, the KV buckets' streams included: each must be R3.
const STREAMS: [&str; 6] = [
    herald_nats::EVENTS_STREAM,
    herald_nats::REJECTED_STREAM,
    herald_nats::DEAD_LETTERS_STREAM,
    herald_nats::ATTEMPTS_STREAM,
    "KV_herald_subscriptions",
    "KV_herald_endpoint_health",
];

/// How many concurrent producers post, and how long each waits between two posts: a steady
/// trickle (at most a few hundred events/s) that leaves the two cores to the cluster. After an
/// answer other than 202 a producer waits longer, as one honouring `Retry-After` would.
const PRODUCERS: usize = 2;
const PAUSE: Duration = Duration::from_millis(10);
const PAUSE_AFTER_REFUSAL: Duration = Duration::from_millis(100);

/// What the producers saw: which events were acknowledged (202) and when, and when ingest
/// answered 503.
#[derive(Default)]
struct Posted {
    acknowledged: Vec<(String, Instant)>,
    unavailable: Vec<Instant>,
    /// Answers other than 202 and 503, and requests that got no answer.
    failed: usize,
}

impl Posted {
    fn record(&mut self, id: String, status: Option<StatusCode>, answered_at: Instant) {
        match status {
            Some(StatusCode::ACCEPTED) => self.acknowledged.push((id, answered_at)),
            Some(StatusCode::SERVICE_UNAVAILABLE) => self.unavailable.push(answered_at),
            _ => self.failed += 1,
        }
    }

    fn acknowledged_since(&self, since: Instant) -> BTreeSet<String> {
        self.acknowledged
            .iter()
            .filter(|(_, at)| *at >= since)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Producers posting single structured events until stopped.
struct Producers {
    posted: Arc<Mutex<Posted>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Producers {
    fn start(ports: &Ports) -> Producers {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Longer than ingest.request_timeout (30 s): ingest answers every request itself.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()
            .unwrap();
        let posted = Arc::new(Mutex::new(Posted::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let tasks = (0..PRODUCERS)
            .map(|_| {
                let (http, posted, stop, next) =
                    (http.clone(), posted.clone(), stop.clone(), next.clone());
                let url = ports.ingest_url();
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let id = format!("cluster-{}", next.fetch_add(1, Ordering::SeqCst));
                        let response = http
                            .post(&url)
                            .bearer_auth(process::API_TOKEN)
                            .header("content-type", "application/cloudevents+json")
                            .body(structured_event(&id, "com.cluster"))
                            .send()
                            .await;
                        let status = response.map(|response| response.status()).ok();
                        let accepted = status == Some(StatusCode::ACCEPTED);
                        posted.lock().unwrap().record(id, status, Instant::now());
                        let pause = if accepted { PAUSE } else { PAUSE_AFTER_REFUSAL };
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Producers {
            posted,
            stop,
            tasks,
        }
    }

    async fn stop(self) -> Posted {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.posted)
            .ok()
            .expect("the producers have ended")
            .into_inner()
            .unwrap()
    }
}

/// Returns the number of successful deliveries and the distinct event ids among them.
fn delivered_ids(receiver: &TestReceiver) -> (usize, BTreeSet<String>) {
    let requests = receiver.requests();
    let ok: Vec<String> = requests
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    (ok.len(), ok.into_iter().collect())
}

/// Waits until at least `count` of the events acknowledged since `since` have been delivered.
async fn wait_for_delivery_since(
    what: &str,
    receiver: &TestReceiver,
    posted: &Mutex<Posted>,
    since: Instant,
    count: usize,
) {
    eventually(what, Duration::from_secs(60), || async {
        let acknowledged = posted.lock().unwrap().acknowledged_since(since);
        let (_, delivered) = delivered_ids(receiver);
        (acknowledged.intersection(&delivered).count() >= count).then_some(())
    })
    .await;
}

fn seconds_after(start: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(start).as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_nats_server_in_an_r3_cluster_loses_no_acknowledged_event_and_delivery_goes_on()
{
    let mut cluster = NatsCluster::start(3).await;
    let ports = Ports::new(cluster.urls());
    let replicas = [("HERALD_NATS__EVENTS__REPLICAS", "3")];
    // Ingest warns of every 503 during the failover; the test counts them instead.
    let ingest_log = std::env::var("TEST_HERALD_LOG").unwrap_or_else(|_| "error".to_owned());
    let ingest_env = [replicas[0], ("HERALD_LOG", ingest_log.as_str())];
    let mut control = process::start_with("control", &ports, &replicas);
    control.wait_listening(ports.control).await;
    // Herald's processes created the topology; every stream and bucket is on all three nodes.
    for stream in STREAMS {
        let found = eventually(&format!("stream {stream}"), Duration::from_secs(30), || {
            cluster.stream_replicas(stream)
        })
        .await;
        assert_eq!(found, 3, "stream {stream} should be R3");
    }
    let nats = herald_nats::Nats::connect(&cluster.nats_config())
        .await
        .expect("nats should connect through the seed list");
    let mut ingest = process::start_with("ingest", &ports, &ingest_env);
    let _dispatcher = process::start_with("dispatch", &ports, &replicas);
    ingest.wait_listening(ports.ingest).await;
    let receiver = TestReceiver::start().await;
    // A little latency keeps deliveries in flight when the node dies.
    receiver.set_delay(Duration::from_millis(20));
    process::subscribe(&ports, &nats, receiver.url()).await;

    let started = Instant::now();
    let producers = Producers::start(&ports);
    wait_for_delivery_since(
        "deliveries before the kill",
        &receiver,
        &producers.posted,
        started,
        200,
    )
    .await;

    // The events stream's leader is the node whose loss costs the most: its publishes stall
    // until a new leader is elected.
    let victim = cluster
        .stream_leader(herald_nats::EVENTS_STREAM)
        .await
        .unwrap_or(0);
    let meta_leader = cluster.meta_leader().await;
    cluster.kill(victim).await;
    let killed_at = Instant::now();
    let acknowledged_at_kill = producers.posted.lock().unwrap().acknowledged.len();
    let delivered_at_kill = receiver.count();
    wait_for_delivery_since(
        "deliveries of events acknowledged after the kill",
        &receiver,
        &producers.posted,
        killed_at,
        100,
    )
    .await;
    let resumed_after = killed_at.elapsed();

    let restarted_after = killed_at.elapsed();
    cluster.restart(victim).await;
    cluster.wait_for_meta_leader().await;
    let restarted_at = Instant::now();
    wait_for_delivery_since(
        "deliveries of events acknowledged after the restart",
        &receiver,
        &producers.posted,
        restarted_at,
        300,
    )
    .await;
    let posted = producers.stop().await;

    let acknowledged: BTreeSet<String> = posted
        .acknowledged
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let deadline =
        Instant::now() + Duration::from_secs(60).mul_f64(herald_test_support::patience());
    let (total, delivered, missing) = loop {
        let (total, delivered) = delivered_ids(&receiver);
        let missing: Vec<String> = acknowledged.difference(&delivered).cloned().collect();
        if missing.is_empty() || Instant::now() >= deadline {
            break (total, delivered, missing);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events were never delivered, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(10)]
    );

    let unavailable = match (posted.unavailable.first(), posted.unavailable.last()) {
        (Some(first), Some(last)) => format!(
            "{} answered 503, from {:.1} s to {:.1} s after the kill",
            posted.unavailable.len(),
            seconds_after(killed_at, *first),
            seconds_after(killed_at, *last),
        ),
        _ => "none answered 503".to_owned(),
    };
    let first_acknowledged_after_kill = posted
        .acknowledged
        .iter()
        .find(|(_, at)| *at >= killed_at)
        .map_or(f64::NAN, |(_, at)| seconds_after(killed_at, *at));
    report(&format!(
        "3-node R3 cluster, kill -9 of n{victim} (events stream leader; meta leader {}) after \
         {acknowledged_at_kill} acknowledged and {delivered_at_kill} delivered, restarted {:.1} s \
         later: {} acknowledged, 0 lost, {} delivered ({} distinct, {} duplicates, {} beyond the \
         acknowledged), {unavailable}, {} failed otherwise; first 202 {first_acknowledged_after_kill:.1} s \
         after the kill, 100 deliveries of post-kill events within {:.1} s",
        meta_leader.map_or("unknown".to_owned(), |leader| format!("n{leader}")),
        restarted_after.as_secs_f64(),
        acknowledged.len(),
        total,
        delivered.len(),
        total - delivered.len(),
        delivered.difference(&acknowledged).count(),
        posted.failed,
        resumed_after.as_secs_f64(),
    ));
}

#[allow(
    clippy::print_stderr,
    reason = "the figure is part of the test's report"
)]
fn report(line: &str) {
    eprintln!("{line}");
}
