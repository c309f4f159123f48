//! Tests of how delivery flags become requests, and of what clap accepts.

use clap::Parser as _;
use time::macros::datetime;

use herald_proto::v1 as pb;

use super::*;
use crate::args::{Cli, Command};

const NOW: OffsetDateTime = datetime!(2025-01-02 03:04:05 UTC);

fn parse(args: &[&str]) -> Command {
    let mut full = vec!["heraldctl"];
    full.extend_from_slice(args);
    Cli::try_parse_from(full).unwrap().command
}

fn replay_of(args: &[&str]) -> pb::ReplayEventsRequest {
    let mut full = vec!["replay", "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV"];
    full.extend_from_slice(args);
    let Command::Replay(args) = parse(&full) else {
        panic!("expected replay");
    };
    replay_request(&args, NOW)
}

#[test]
fn replay_since_counts_back_from_now() {
    let request = replay_of(&["--since", "1h"]);
    assert_eq!(
        request.from,
        Some(pb::replay_events_request::From::StartTime(
            herald_proto::timestamp_to_pb(datetime!(2025-01-02 02:04:05 UTC))
        ))
    );
    assert_eq!(request.to, None);
}

#[test]
fn replay_takes_sequences_and_times() {
    let request = replay_of(&[
        "--from-sequence",
        "7",
        "--until-time",
        "2025-01-02T00:00:00Z",
    ]);
    assert_eq!(
        request.from,
        Some(pb::replay_events_request::From::StartSequence(7))
    );
    assert_eq!(
        request.to,
        Some(pb::replay_events_request::To::EndTime(
            herald_proto::timestamp_to_pb(datetime!(2025-01-02 00:00:00 UTC))
        ))
    );
    let request = replay_of(&[
        "--from-time",
        "2025-01-01T00:00:00Z",
        "--until-sequence",
        "9",
    ]);
    assert_eq!(
        request.to,
        Some(pb::replay_events_request::To::EndSequence(9))
    );
}

#[test]
fn replay_needs_exactly_one_start() {
    let base = ["heraldctl", "replay", "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV"];
    assert!(Cli::try_parse_from(base).is_err());
    let mut both = base.to_vec();
    both.extend(["--since", "1h", "--from-sequence", "3"]);
    assert!(Cli::try_parse_from(both).is_err());
}

#[test]
fn dlq_redrive_needs_sequences_or_all() {
    let base = [
        "heraldctl",
        "dlq",
        "redrive",
        "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    ];
    assert!(Cli::try_parse_from(base).is_err());
    let Command::Dlq(DlqCommand::Redrive(selection)) =
        parse(&["dlq", "redrive", "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV", "3", "5"])
    else {
        panic!("expected dlq redrive");
    };
    assert_eq!(selection.sequences, [3, 5]);
    assert!(!selection.all);
    let mut both = base.to_vec();
    both.extend(["--all", "3"]);
    assert!(Cli::try_parse_from(both).is_err());
}

#[test]
fn attempt_flags_become_a_filtered_query() {
    let Command::Attempts(AttemptsCommand::List(args)) = parse(&[
        "attempts",
        "list",
        "--subscription",
        "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "--event",
        "e-1",
        "--outcome",
        "dead",
        "--since",
        "30m",
    ]) else {
        panic!("expected attempts list");
    };
    let request = attempts_request(&args, NOW);
    assert_eq!(
        request,
        pb::ListAttemptsRequest {
            subscription_id: "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
            event_id: "e-1".to_owned(),
            outcome: pb::AttemptOutcome::Dead as i32,
            start_time: Some(herald_proto::timestamp_to_pb(
                datetime!(2025-01-02 02:34:05 UTC)
            )),
            end_time: None,
            page_size: 100,
            page_token: String::new(),
        }
    );
}

#[test]
fn retry_flags_parse_durations_lists_and_exponential_triples() {
    let Command::Sub(crate::args::SubCommand::Create(args)) = parse(&[
        "sub",
        "create",
        "--sink",
        "https://example.com/",
        "--retry-delays",
        "1s,5s,1m",
        "--terminal-status",
        "400,404",
        "--max-age",
        "1h",
        "--max-attempts",
        "4",
    ]) else {
        panic!("expected sub create");
    };
    assert_eq!(
        args.retry.retry_delays,
        [
            Duration::from_secs(1),
            Duration::from_secs(5),
            Duration::from_secs(60)
        ]
    );
    assert_eq!(args.retry.terminal_status, [400, 404]);
    assert_eq!(args.retry.max_age, Some(Duration::from_secs(3600)));
    assert_eq!(args.retry.max_attempts, Some(4));

    let exponential = crate::args::parse_exponential("500ms, 2.5, 10m").unwrap();
    assert_eq!(exponential.initial, Duration::from_millis(500));
    assert!((exponential.multiplier - 2.5).abs() < f64::EPSILON);
    assert_eq!(exponential.max_delay, Duration::from_secs(600));
    assert!(crate::args::parse_exponential("1s,2").is_err());
    assert!(crate::args::parse_exponential("1s,two,1h").is_err());

    let conflicting = Cli::try_parse_from([
        "heraldctl",
        "sub",
        "create",
        "--sink",
        "https://example.com/",
        "--retry-delays",
        "1s",
        "--retry-exponential",
        "1s,2,1h",
    ]);
    assert!(conflicting.is_err());
}
