//! `heraldctl rejected ...`: messages producers published to NATS directly that Herald moved to
//! the rejected-events stream, with the reason, over the control-plane Events API.

use serde_json::{Value, json};

use herald_proto::v1 as pb;

use crate::args::{OutputFormat, RejectedCommand};
use crate::client::EventClient;
use crate::output;

#[cfg(test)]
mod tests;

/// Longest detail shown in a table cell; JSON output has it whole.
const DETAIL_WIDTH: usize = 80;

/// Runs one `rejected` command and returns what to print.
pub(crate) async fn run(
    client: &mut EventClient,
    command: RejectedCommand,
    format: OutputFormat,
) -> anyhow::Result<String> {
    let RejectedCommand::List { limit, after } = command;
    let request = pb::ListRejectedEventsRequest {
        page_size: limit,
        page_token: if after == 0 {
            String::new()
        } else {
            after.to_string()
        },
    };
    let page = client.list_rejected_events(request).await?.into_inner();
    Ok(match format {
        OutputFormat::Table => rejected_table(&page.rejected_events),
        OutputFormat::Json => output::json_text(&rejected_json(&page)),
    })
}

/// Returns rejected messages as a table with columns SEQ, TIME, REASON, SUBJECT and DETAIL.
pub(crate) fn rejected_table(rejected: &[pb::RejectedEvent]) -> String {
    let rows: Vec<Vec<String>> = rejected
        .iter()
        .map(|event| {
            let mut detail = event.detail.clone();
            if detail.chars().count() > DETAIL_WIDTH {
                detail = detail.chars().take(DETAIL_WIDTH - 3).collect::<String>() + "...";
            }
            vec![
                event.sequence.to_string(),
                output::time_summary(event.time.as_ref()),
                event.reason.clone(),
                event.subject.clone(),
                detail,
            ]
        })
        .collect();
    output::table(&["SEQ", "TIME", "REASON", "SUBJECT", "DETAIL"], &rows)
}

/// Returns a page as JSON with proto field names; payloads as text when they are UTF-8.
pub(crate) fn rejected_json(page: &pb::ListRejectedEventsResponse) -> Value {
    let events: Vec<Value> = page
        .rejected_events
        .iter()
        .map(|event| {
            json!({
                "sequence": event.sequence.to_string(),
                "subject": event.subject,
                "reason": event.reason,
                "detail": event.detail,
                "time": output::time_json(event.time.as_ref()),
                "original_sequence": event.original_sequence.to_string(),
                "payload": String::from_utf8_lossy(&event.payload),
                "payload_truncated": event.payload_truncated,
                "headers": event.headers,
            })
        })
        .collect();
    json!({
        "rejected_events": events,
        "next_page_token": page.next_page_token,
    })
}
