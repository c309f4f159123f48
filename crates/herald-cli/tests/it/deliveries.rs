//! `heraldctl` retry flags, pause and resume, dead letters, attempts, status and replay against
//! a running control service.

use bytes::Bytes;
use time::OffsetDateTime;

use herald_core::record::AttemptRecord;
use herald_core::{Event, SubscriptionId};

use crate::support::{Control, stdout_of};

const SINK: &str = "https://hooks.example.com/herald";

async fn create(control: &Control, args: &[&str]) -> SubscriptionId {
    let mut full = vec!["--output", "json", "sub", "create", "--sink", SINK];
    full.extend_from_slice(args);
    let created: serde_json::Value =
        serde_json::from_str(&stdout_of(&control.heraldctl(&full).await)).unwrap();
    SubscriptionId::parse(created["id"].as_str().unwrap()).unwrap()
}

fn event(id: &str, event_type: &str) -> Event {
    let json = herald_test_support::structured_event(id, event_type);
    Event::from_structured(Bytes::from(json)).unwrap()
}

#[tokio::test]
async fn retry_flags_pause_and_resume_show_in_sub_get() {
    let control = Control::start(true).await;
    let id = create(
        &control,
        &[
            "--max-attempts",
            "3",
            "--retry-delays",
            "1s,1m",
            "--terminal-status",
            "400,404",
        ],
    )
    .await;
    let shown = stdout_of(&control.heraldctl(&["sub", "get", id.as_str()]).await);
    assert!(shown.contains("state        active"), "{shown}");
    assert!(
        shown.contains(
            "retry        3 attempts, delays 1s 1m, jitter 20%, max age 3days, terminal 400 404"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("health       healthy, last success -"),
        "{shown}"
    );

    let updated = stdout_of(
        &control
            .heraldctl(&["sub", "update", id.as_str(), "--max-age", "1h"])
            .await,
    );
    assert!(
        updated.contains(
            "retry        3 attempts, delays 1s 1m, jitter 20%, max age 1h, terminal 400 404"
        ),
        "{updated}"
    );

    let paused = stdout_of(&control.heraldctl(&["sub", "pause", id.as_str()]).await);
    assert!(paused.contains("state        paused since "), "{paused}");
    let resumed = stdout_of(
        &control
            .heraldctl(&["--output", "json", "sub", "resume", id.as_str()])
            .await,
    );
    let resumed: serde_json::Value = serde_json::from_str(&resumed).unwrap();
    assert_eq!(resumed["state"], "SUBSCRIPTION_STATE_ACTIVE");
}

#[tokio::test]
async fn dead_letters_attempts_and_status_are_listed_and_redriven() {
    let control = Control::start(true).await;
    let id = create(&control, &[]).await;
    let records = control.nats.records();
    let dead = event("e-dead", "com.example.a");
    records
        .dead_letter(
            &id,
            dead.structured().clone(),
            1,
            8,
            "exhausted",
            "503",
            None,
        )
        .await
        .unwrap();
    records
        .record_attempt(&AttemptRecord {
            subscription_id: id.to_string(),
            event_id: "e-dead".to_owned(),
            event_source: "/herald/tests".to_owned(),
            event_type: "com.example.a".to_owned(),
            message_id: "msg_1".to_owned(),
            attempt: 8,
            started_at: OffsetDateTime::now_utc(),
            duration_ms: 40,
            status: Some(503),
            result_class: "5xx".to_owned(),
            error: None,
            response_headers: Default::default(),
            response_body: String::new(),
            outcome: "dead".to_owned(),
            next_attempt_at: None,
        })
        .await
        .unwrap();

    let listed = stdout_of(&control.heraldctl(&["dlq", "list", id.as_str()]).await);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("SEQ "), "{listed}");
    assert!(
        lines[1].contains("e-dead") && lines[1].contains("exhausted"),
        "{listed}"
    );

    let attempts = stdout_of(
        &control
            .heraldctl(&[
                "attempts",
                "list",
                "--subscription",
                id.as_str(),
                "--outcome",
                "dead",
                "--since",
                "1h",
            ])
            .await,
    );
    let lines: Vec<&str> = attempts.lines().collect();
    assert_eq!(lines.len(), 2, "{attempts}");
    assert!(
        lines[1].contains("e-dead") && lines[1].contains("503"),
        "{attempts}"
    );

    let status = stdout_of(&control.heraldctl(&["status", "e-dead"]).await);
    let row = status
        .lines()
        .find(|line| line.starts_with(id.as_str()))
        .unwrap_or_else(|| panic!("no row for {id}: {status}"));
    assert!(row.contains("dead") && row.contains("503"), "{status}");

    let redriven = stdout_of(
        &control
            .heraldctl(&["--output", "json", "dlq", "redrive", id.as_str(), "--all"])
            .await,
    );
    let redriven: serde_json::Value = serde_json::from_str(&redriven).unwrap();
    assert_eq!(redriven["redriven"], "1");
    let listed = stdout_of(&control.heraldctl(&["dlq", "list", id.as_str()]).await);
    assert_eq!(listed.lines().count(), 1, "{listed}");
}

#[tokio::test]
async fn replay_prints_progress_until_done() {
    let control = Control::start(true).await;
    let id = create(&control, &["--type", "com.example.a"]).await;
    let publisher = control.nats.publisher();
    for n in 0..3 {
        publisher
            .publish(&event(&format!("a-{n}"), "com.example.a"))
            .await
            .unwrap();
        publisher
            .publish(&event(&format!("b-{n}"), "com.example.b"))
            .await
            .unwrap();
    }
    let output = stdout_of(
        &control
            .heraldctl(&["replay", id.as_str(), "--from-sequence", "1"])
            .await,
    );
    let last = output.lines().last().unwrap();
    assert!(
        last.starts_with("done: scanned 3, replayed 3, at sequence "),
        "{output}"
    );
}
