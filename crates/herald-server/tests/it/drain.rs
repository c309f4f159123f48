//! SIGTERM as Kubernetes sends it to a pod: readiness turns false first, ingest keeps serving
//! through `shutdown.pre_stop_delay` while the load balancer drains it, then every role stops at
//! once and the process exits within one grace period, not one per role.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use herald_test_support::{NatsServer, TestReceiver, eventually};

use crate::process::{self, Ports};

const PRE_STOP_DELAY: Duration = Duration::from_secs(4);
const GRACE_PERIOD: Duration = Duration::from_secs(8);
/// What app.rs adds to the grace period for a role, and allows for closing NATS.
const ROLE_MARGIN: Duration = Duration::from_secs(5);
const CLOSE: Duration = Duration::from_secs(5);

async fn readyz(admin: u16) -> Option<reqwest::StatusCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://127.0.0.1:{admin}/readyz");
    reqwest::get(url)
        .await
        .ok()
        .map(|response| response.status())
}

async fn post_one(ports: &Ports, id: &str) -> Result<reqwest::StatusCode, reqwest::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().unwrap();
    let response = http
        .post(ports.ingest_url())
        .bearer_auth(process::API_TOKEN)
        .header("content-type", "application/cloudevents+json")
        .body(herald_test_support::structured_event(id, "com.drain"))
        .send()
        .await?;
    Ok(response.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_before_the_ingest_listener_closes_and_exits_within_one_grace_period()
 {
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let pre_stop = format!("{}s", PRE_STOP_DELAY.as_secs());
    let grace = format!("{}s", GRACE_PERIOD.as_secs());
    let env = [
        ("HERALD_SHUTDOWN__PRE_STOP_DELAY", pre_stop.as_str()),
        ("HERALD_DISPATCHER__SHUTDOWN_GRACE_PERIOD", grace.as_str()),
        // Attempts and requests that outlast the grace period, so each role needs all of it.
        ("HERALD_DISPATCHER__REQUEST_TIMEOUT", "30s"),
        ("HERALD_INGEST__REQUEST_TIMEOUT", "60s"),
    ];
    // Every role in one process: they must drain together.
    let mut herald = process::start_with("all", &ports, &env);
    herald.wait_listening(ports.ingest).await;
    herald.wait_listening(ports.control).await;
    let admin = herald.admin;
    eventually("herald ready", Duration::from_secs(60), || async move {
        (readyz(admin).await? == reqwest::StatusCode::OK).then_some(())
    })
    .await;

    // The dispatcher has an attempt in flight that its endpoint holds for a minute...
    let nats = process::nats(&ports.nats_url).await;
    let receiver = TestReceiver::start().await;
    receiver.set_delay(Duration::from_secs(60));
    process::subscribe(&ports, &nats, receiver.url()).await;
    assert_eq!(post_one(&ports, "held").await.unwrap(), 202);
    receiver.wait_for(1, Duration::from_secs(30)).await;
    // ...and ingest a request whose body never finishes arriving.
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", ports.ingest))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: herald\r\nauthorization: Bearer {}\r\n\
         content-type: application/cloudevents+json\r\ncontent-length: 1000\r\n\r\n{{",
        process::API_TOKEN
    );
    stalled.write_all(head.as_bytes()).await.unwrap();

    let signalled = Instant::now();
    herald.terminate().await;
    // Not ready at once, while ingest still takes events.
    eventually("/readyz failing", Duration::from_secs(3), || async move {
        (readyz(admin).await? == reqwest::StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    let not_ready_after = signalled.elapsed();
    assert_eq!(
        post_one(&ports, "during-pre-stop").await.unwrap(),
        202,
        "ingest stopped serving before its pre-stop delay ended"
    );
    let served_after = signalled.elapsed();
    assert!(
        served_after < PRE_STOP_DELAY,
        "the check ran past the pre-stop delay ({served_after:?}), it proves nothing"
    );
    // Then the listener closes.
    eventually(
        "the ingest listener closed",
        PRE_STOP_DELAY + GRACE_PERIOD,
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", ports.ingest))
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    let closed_after = signalled.elapsed();
    assert!(
        closed_after >= PRE_STOP_DELAY,
        "the listener closed after {closed_after:?}, within the pre-stop delay"
    );

    // Ingest (the stalled request) and the dispatcher (the held attempt) each need the whole
    // grace period: stopped one after the other they would take two.
    let one_grace_period = PRE_STOP_DELAY + GRACE_PERIOD + ROLE_MARGIN + CLOSE;
    let status = tokio::time::timeout(one_grace_period * 2, herald.child.wait())
        .await
        .expect("herald should exit")
        .unwrap();
    let exited_after = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        exited_after < one_grace_period,
        "exited {exited_after:?} after SIGTERM, beyond one grace period ({one_grace_period:?})"
    );
    assert!(
        exited_after >= PRE_STOP_DELAY + GRACE_PERIOD,
        "exited after {exited_after:?}: the stalled request and the held attempt should have \
         kept the roles for their grace period"
    );
    drop(stalled);
    report(&format!(
        "SIGTERM: not ready after {not_ready_after:?}, 202 at {served_after:?}, listener closed \
         at {closed_after:?}, exited at {exited_after:?} (pre-stop {PRE_STOP_DELAY:?}, grace \
         {GRACE_PERIOD:?} + {ROLE_MARGIN:?})"
    ));
}

#[allow(
    clippy::print_stderr,
    reason = "the figures are part of the test's report"
)]
fn report(line: &str) {
    eprintln!("{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_is_ready_only_while_nats_answers() {
    let mut nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let mut ingest = process::start("ingest", &ports);
    ingest.wait_listening(ports.ingest).await;
    let admin = ingest.admin;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let checks = move || async move {
        let url = format!("http://127.0.0.1:{admin}/readyz");
        let response = reqwest::get(url).await.ok()?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.ok()?;
        Some((status, body["checks"]["nats_connected"].as_bool()))
    };
    eventually("ingest ready", Duration::from_secs(60), || async move {
        let (status, _) = checks().await?;
        (status == reqwest::StatusCode::OK).then_some(())
    })
    .await;

    nats_server.kill().await;
    eventually("ingest not ready", Duration::from_secs(30), || async move {
        let (status, connected) = checks().await?;
        (status == reqwest::StatusCode::SERVICE_UNAVAILABLE && connected == Some(false))
            .then_some(())
    })
    .await;

    nats_server.restart().await;
    eventually(
        "ingest ready again",
        Duration::from_secs(60),
        || async move {
            let (status, _) = checks().await?;
            (status == reqwest::StatusCode::OK).then_some(())
        },
    )
    .await;
    assert_eq!(post_one(&ports, "after-nats-restart").await.unwrap(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_is_ready_only_once_the_consumers_of_its_subscriptions_are_set_up() {
    use herald_proto::v1 as pb;
    const SUBSCRIPTIONS: usize = 30;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let mut control = process::start("control", &ports);
    control.wait_listening(ports.control).await;
    let mut client = process::control_client(&ports).await;
    let mut ids = Vec::new();
    for _ in 0..SUBSCRIPTIONS {
        let request = pb::CreateSubscriptionRequest {
            sink: "http://127.0.0.1:9/hook".to_owned(),
            ..Default::default()
        };
        ids.push(
            client
                .create_subscription(request)
                .await
                .unwrap()
                .into_inner()
                .id,
        );
    }
    let nats = herald_nats::Nats::connect_existing(
        &herald_test_support::nats_config(&ports.nats_url),
        &herald_nats::ConnectOptions::default(),
        herald_nats::TopologyNeeds::default(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(
        nats.consumer_progress(&ids[0]).await.is_err(),
        "no dispatcher ran: no consumer yet"
    );

    let dispatcher = process::start("dispatch", &ports);
    let admin = dispatcher.admin;
    // The first moment it says ready, every consumer exists.
    eventually(
        "the dispatcher ready",
        Duration::from_secs(60),
        || async move { (readyz(admin).await? == reqwest::StatusCode::OK).then_some(()) },
    )
    .await;
    let mut missing = Vec::new();
    for id in &ids {
        if nats.consumer_progress(id).await.is_err() {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "ready with {} of {SUBSCRIPTIONS} consumers missing: {missing:?}",
        missing.len()
    );
}
