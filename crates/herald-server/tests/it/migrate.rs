//! Rolling upgrades: only `herald migrate` creates or changes the NATS streams and buckets.
//! Roles started with other settings (another version's) wait for it, then use what it wrote
//! as it is, so two versions side by side never rewrite each other's stream configuration.

use std::process::Stdio;
use std::time::Duration;

use herald_nats::{EVENTS_STREAM, Nats, StreamSettings, TopologyNeeds};
use herald_test_support::{NatsServer, eventually, nats_config};

use crate::process::{self, Ports};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Opens the topology without migrating it (a role's view); `None` while it is not usable.
async fn existing(url: &str) -> Option<Nats> {
    Nats::connect_existing(
        &nats_config(url),
        &herald_nats::ConnectOptions::default(),
        TopologyNeeds::default(),
        Duration::ZERO,
    )
    .await
    .ok()
}

async fn events_settings(nats: &Nats) -> StreamSettings {
    nats.stream_settings(EVENTS_STREAM)
        .await
        .expect("the events stream should be readable")
}

fn migrate(ports: &Ports, retention: &str) {
    let output = process::migrate(ports, &[("HERALD_NATS__EVENTS__RETENTION", retention)]);
    assert!(
        output.status.success(),
        "herald migrate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn post_one(ports: &Ports, id: &str) -> reqwest::StatusCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .unwrap()
        .post(ports.ingest_url())
        .bearer_auth(process::API_TOKEN)
        .header("content-type", "application/cloudevents+json")
        .body(herald_test_support::structured_event(id, "com.upgrade"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn roles_of_another_version_wait_for_migrate_and_never_rewrite_the_streams_it_configured() {
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let log = std::env::temp_dir().join(format!(
        "herald-migrate-{}-{}.log",
        std::process::id(),
        ports.ingest
    ));
    // Version B (events kept 2 days) rolls out before anything migrated: its ingest waits and
    // creates nothing.
    let version_b = [
        ("HERALD_NATS__EVENTS__RETENTION", "2d"),
        ("HERALD_LOG", "info"),
    ];
    let mut ingest_b = process::spawn(
        "ingest",
        &ports,
        &version_b,
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    eventually(
        "ingest saying what it waits for",
        Duration::from_secs(30),
        || {
            let path = log.clone();
            async move {
                let text = std::fs::read_to_string(path).ok()?;
                text.contains("waiting for `herald migrate`").then_some(())
            }
        },
    )
    .await;
    assert!(
        existing(&ports.nats_url).await.is_none(),
        "a waiting role created streams"
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", ports.ingest))
            .await
            .is_err(),
        "ingest listened before its streams existed"
    );

    // Version A's migrate (events kept 1 day) runs: B's ingest starts on A's streams as they are.
    migrate(&ports, "1d");
    ingest_b.wait_listening(ports.ingest).await;
    assert_eq!(post_one(&ports, "during-upgrade").await, 202);
    let nats = existing(&ports.nats_url)
        .await
        .expect("migrate made the streams");
    assert_eq!(events_settings(&nats).await.max_age, DAY);

    // More of version B, every role, next to it: still A's configuration.
    let mut control_b = process::spawn("control", &ports, &version_b, Stdio::null());
    let dispatch_b = process::spawn("dispatch", &ports, &version_b, Stdio::null());
    control_b.wait_listening(ports.control).await;
    eventually(
        "the version-B dispatcher ready",
        Duration::from_secs(60),
        || {
            let url = format!("http://127.0.0.1:{}/readyz", dispatch_b.admin);
            async move {
                let response = reqwest::get(url).await.ok()?;
                response.status().is_success().then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        events_settings(&nats).await.max_age,
        DAY,
        "a role rewrote the stream configuration migrate wrote"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(
        text.contains("HERALD_EVENTS max_age"),
        "ingest reports the difference it leaves alone: {text}"
    );

    // Version B's migrate is what changes it, under the running roles.
    migrate(&ports, "2d");
    assert_eq!(events_settings(&nats).await.max_age, 2 * DAY);
    assert_eq!(post_one(&ports, "after-upgrade").await, 202);

    // And a version-A role still running (or restarted) does not turn it back.
    let mut ingest_a = process::spawn(
        "ingest",
        &Ports {
            ingest: process::free_port(),
            ..ports.clone()
        },
        &[("HERALD_NATS__EVENTS__RETENTION", "1d")],
        Stdio::null(),
    );
    let admin_a = ingest_a.admin;
    eventually(
        "the version-A ingest ready",
        Duration::from_secs(60),
        || {
            let url = format!("http://127.0.0.1:{admin_a}/readyz");
            async move {
                let response = reqwest::get(url).await.ok()?;
                response.status().is_success().then_some(())
            }
        },
    )
    .await;
    assert_eq!(events_settings(&nats).await.max_age, 2 * DAY);
    ingest_a.child.kill().await.unwrap();
}

#[tokio::test]
async fn a_role_gives_up_with_a_clear_error_when_migrate_never_runs() {
    let nats_server = NatsServer::start().await;
    let ports = Ports::new(nats_server.url());
    let mut ingest = process::spawn(
        "ingest",
        &ports,
        &[("HERALD_STARTUP__TOPOLOGY_WAIT", "2s")],
        Stdio::piped(),
    );
    let status = tokio::time::timeout(Duration::from_secs(120), ingest.child.wait())
        .await
        .expect("the role should give up after its topology wait")
        .unwrap();
    assert!(!status.success());
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(ingest.child.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(
        stderr.contains("run `herald migrate`") && stderr.contains("HERALD_EVENTS"),
        "{stderr}"
    );
    assert!(existing(&ports.nats_url).await.is_none());
}
