//! `heraldctl dlq ...`, `attempts ...`, `status` and `replay`: delivery commands over the
//! control plane's Deliveries API.
//!
//! Flags become request messages here ([`attempts_request`], [`replay_request`]); answers are
//! rendered by `output`. `replay` prints each progress report as it arrives.

use std::time::Duration;

use futures::StreamExt as _;
use time::OffsetDateTime;

use herald_proto::v1 as pb;

use crate::args::{
    AttemptsCommand, AttemptsListArgs, DlqCommand, DlqSelection, OutcomeArg, OutputFormat,
    ReplayArgs, StatusArgs,
};
use crate::client::DeliveryClient;
use crate::output;

#[cfg(test)]
mod tests;

/// Runs one `dlq` command and returns what to print.
pub(crate) async fn dlq(
    client: &mut DeliveryClient,
    command: DlqCommand,
    format: OutputFormat,
) -> anyhow::Result<String> {
    let text = match command {
        DlqCommand::List {
            subscription,
            page_size,
            page_token,
        } => {
            let request = pb::ListDeadLettersRequest {
                subscription_id: subscription,
                page_size,
                page_token,
            };
            let page = client.list_dead_letters(request).await?.into_inner();
            match format {
                OutputFormat::Table => with_next_page(
                    output::dead_letters_table(&page.dead_letters),
                    &page.next_page_token,
                ),
                OutputFormat::Json => output::json_text(&output::dead_letters_json(&page)),
            }
        }
        DlqCommand::Redrive(selection) => {
            let request = pb::RedriveDeadLettersRequest {
                subscription_id: selection.subscription.clone(),
                sequences: selection.sequences.clone(),
                all: selection.all,
            };
            let answer = client.redrive_dead_letters(request).await?.into_inner();
            count_text(&selection, "redriven", answer.redriven, format)
        }
        DlqCommand::Purge(selection) => {
            let request = pb::PurgeDeadLettersRequest {
                subscription_id: selection.subscription.clone(),
                sequences: selection.sequences.clone(),
                all: selection.all,
            };
            let answer = client.purge_dead_letters(request).await?.into_inner();
            count_text(&selection, "purged", answer.purged, format)
        }
    };
    Ok(text)
}

/// Runs one `attempts` command and returns what to print.
pub(crate) async fn attempts(
    client: &mut DeliveryClient,
    command: AttemptsCommand,
    format: OutputFormat,
) -> anyhow::Result<String> {
    let AttemptsCommand::List(args) = command;
    let request = attempts_request(&args, OffsetDateTime::now_utc());
    let page = client.list_attempts(request).await?.into_inner();
    Ok(match format {
        OutputFormat::Table => with_next_page(
            output::attempts_table(&page.attempts),
            &page.next_page_token,
        ),
        OutputFormat::Json => output::json_text(&output::attempts_json(&page)),
    })
}

/// Runs `status` and returns what to print.
pub(crate) async fn status(
    client: &mut DeliveryClient,
    args: StatusArgs,
    format: OutputFormat,
) -> anyhow::Result<String> {
    let request = pb::GetEventDeliveryStatusRequest {
        event_id: args.event_id,
        event_source: args.source.unwrap_or_default(),
    };
    let statuses = client
        .get_event_delivery_status(request)
        .await?
        .into_inner()
        .statuses;
    Ok(match format {
        OutputFormat::Table => output::statuses_table(&statuses),
        OutputFormat::Json => output::json_text(&output::statuses_json(&statuses)),
    })
}

/// Runs `replay`, handing each progress line to `print` as it arrives.
pub(crate) async fn replay(
    client: &mut DeliveryClient,
    args: ReplayArgs,
    format: OutputFormat,
    print: impl Fn(&str),
) -> anyhow::Result<()> {
    let request = replay_request(&args, OffsetDateTime::now_utc());
    let mut progress = client.replay_events(request).await?.into_inner();
    while let Some(report) = progress.next().await {
        print(&output::progress_line(&report?, format));
    }
    Ok(())
}

/// Returns the `ListAttempts` request the flags describe; `--since` counts back from `now`.
pub(crate) fn attempts_request(
    args: &AttemptsListArgs,
    now: OffsetDateTime,
) -> pb::ListAttemptsRequest {
    let outcome = args
        .outcome
        .map_or(pb::AttemptOutcome::Unspecified, |outcome| match outcome {
            OutcomeArg::Delivered => pb::AttemptOutcome::Delivered,
            OutcomeArg::Retry => pb::AttemptOutcome::Retry,
            OutcomeArg::Dead => pb::AttemptOutcome::Dead,
            OutcomeArg::Gone => pb::AttemptOutcome::Gone,
            OutcomeArg::Test => pb::AttemptOutcome::Test,
        });
    pb::ListAttemptsRequest {
        subscription_id: args.subscription.clone().unwrap_or_default(),
        event_id: args.event.clone().unwrap_or_default(),
        outcome: outcome as i32,
        start_time: args.since.map(|since| ago(now, since)),
        end_time: None,
        page_size: args.page_size,
        page_token: args.page_token.clone(),
    }
}

/// Returns the `ReplayEvents` request the flags describe; `--since` counts back from `now`.
pub(crate) fn replay_request(args: &ReplayArgs, now: OffsetDateTime) -> pb::ReplayEventsRequest {
    use pb::replay_events_request::{From as Start, To as End};
    let from = if let Some(sequence) = args.from_sequence {
        Some(Start::StartSequence(sequence))
    } else if let Some(time) = args.from_time {
        Some(Start::StartTime(herald_proto::timestamp_to_pb(time)))
    } else {
        args.since.map(|since| Start::StartTime(ago(now, since)))
    };
    let to = if let Some(sequence) = args.until_sequence {
        Some(End::EndSequence(sequence))
    } else {
        args.until_time
            .map(|time| End::EndTime(herald_proto::timestamp_to_pb(time)))
    };
    pb::ReplayEventsRequest {
        subscription_id: args.subscription.clone(),
        from,
        to,
    }
}

fn ago(now: OffsetDateTime, since: Duration) -> prost_types::Timestamp {
    let since = time::Duration::try_from(since).unwrap_or(time::Duration::MAX);
    herald_proto::timestamp_to_pb(now.checked_sub(since).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

fn with_next_page(table: String, next_page_token: &str) -> String {
    if next_page_token.is_empty() {
        table
    } else {
        format!("{table}\nmore: --page-token {next_page_token}")
    }
}

fn count_text(selection: &DlqSelection, verb: &str, count: u64, format: OutputFormat) -> String {
    match format {
        OutputFormat::Table => format!("{verb} {count} dead letters of {}", selection.subscription),
        OutputFormat::Json => output::json_text(&serde_json::json!({
            "subscription_id": selection.subscription,
            verb: count.to_string(),
        })),
    }
}
