//! Rendering of answers as text: aligned tables and key/value lines for people, JSON for scripts.
//!
//! Rendering is pure (values in, `String` out) so it is tested without a server; [`print`] is the
//! one place that writes to standard output. JSON uses the proto field names (`create_time`),
//! proto3's JSON forms for timestamps (RFC 3339) and `uint64` (a string), and the CloudEvents
//! Subscriptions API encoding for filters, the same one `--filter` accepts.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use herald_core::Filter;
use herald_proto::v1 as pb;

#[cfg(test)]
mod tests;

/// Writes rendered output, followed by a newline, to standard output.
#[allow(clippy::print_stdout, reason = "the CLI's output is its purpose")]
pub(crate) fn print(text: &str) {
    println!("{text}");
}

/// Returns one subscription as aligned key/value lines.
pub(crate) fn subscription_lines(subscription: &pb::Subscription) -> String {
    let mut pairs = vec![("id", subscription.id.clone())];
    if !subscription.secret.is_empty() {
        pairs.push(("secret", subscription.secret.clone()));
    }
    pairs.extend([
        ("sink", subscription.sink.clone()),
        ("filters", filters_summary(&subscription.filters)),
        ("description", subscription.description.clone()),
        ("revision", subscription.revision.to_string()),
        ("created", time_summary(subscription.create_time.as_ref())),
        ("updated", time_summary(subscription.update_time.as_ref())),
    ]);
    let width = pairs.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {value}").trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Returns subscriptions as a table with columns ID, SINK, FILTERS and CREATED.
pub(crate) fn subscriptions_table(subscriptions: &[pb::Subscription]) -> String {
    let rows: Vec<Vec<String>> = subscriptions
        .iter()
        .map(|subscription| {
            vec![
                subscription.id.clone(),
                subscription.sink.clone(),
                filters_summary(&subscription.filters),
                time_summary(subscription.create_time.as_ref()),
            ]
        })
        .collect();
    table(&["ID", "SINK", "FILTERS", "CREATED"], &rows)
}

/// Returns one subscription as JSON.
pub(crate) fn subscription_json(subscription: &pb::Subscription) -> Value {
    let mut object = json!({
        "id": subscription.id,
        "sink": subscription.sink,
        "filters": subscription.filters.iter().map(filter_json).collect::<Vec<_>>(),
        "description": subscription.description,
        "create_time": time_json(subscription.create_time.as_ref()),
        "update_time": time_json(subscription.update_time.as_ref()),
        "revision": subscription.revision.to_string(),
        "protocol": subscription.protocol,
    });
    if !subscription.secret.is_empty() {
        object["secret"] = Value::String(subscription.secret.clone());
    }
    object
}

/// Returns a list of subscriptions as JSON, shaped like `ListSubscriptionsResponse`.
pub(crate) fn subscriptions_json(subscriptions: &[pb::Subscription]) -> Value {
    json!({
        "subscriptions": subscriptions.iter().map(subscription_json).collect::<Vec<_>>(),
    })
}

/// Returns a JSON value as indented text.
pub(crate) fn json_text(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("a JSON value should serialize")
}

/// Returns columns padded to their widest cell, separated by two spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header_cells: Vec<String> = headers.iter().map(|header| (*header).to_owned()).collect();
    std::iter::once(&header_cells)
        .chain(rows)
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Returns a one-line summary of filters: `name=value` for exact, `^=` for prefix, `$=` for
/// suffix, `&` for all, `|` for any, `!` for not, `sql(...)` and `cel(...)` for expressions;
/// `*` when every event matches.
pub(crate) fn filters_summary(filters: &[pb::Filter]) -> String {
    if filters.is_empty() {
        return "*".to_owned();
    }
    match herald_proto::filters_from_pb(filters) {
        Ok(filters) if filters.len() == 1 => render(&filters[0]).0,
        Ok(filters) => join(&filters, " & ", Precedence::And),
        Err(err) => format!("<unreadable filters: {err}>"),
    }
}

/// How tightly a rendered filter binds, to decide where parentheses are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precedence {
    Atom,
    And,
    Or,
}

fn render(filter: &Filter) -> (String, Precedence) {
    let attributes = |pairs: &std::collections::BTreeMap<String, String>, operator: &str| {
        let text = pairs
            .iter()
            .map(|(name, value)| format!("{name}{operator}{value}"))
            .collect::<Vec<_>>()
            .join(" & ");
        let precedence = if pairs.len() > 1 {
            Precedence::And
        } else {
            Precedence::Atom
        };
        (text, precedence)
    };
    match filter {
        Filter::Exact(pairs) => attributes(pairs, "="),
        Filter::Prefix(pairs) => attributes(pairs, "^="),
        Filter::Suffix(pairs) => attributes(pairs, "$="),
        Filter::All(filters) if filters.len() == 1 => render(&filters[0]),
        Filter::Any(filters) if filters.len() == 1 => render(&filters[0]),
        Filter::All(filters) => (join(filters, " & ", Precedence::And), Precedence::And),
        Filter::Any(filters) => (join(filters, " | ", Precedence::Or), Precedence::Or),
        Filter::Sql(expression) => (format!("sql({expression})"), Precedence::Atom),
        Filter::Cel(expression) => (format!("cel({expression})"), Precedence::Atom),
        Filter::Not(filter) => {
            let (text, precedence) = render(filter);
            match precedence {
                Precedence::Atom => (format!("!{text}"), Precedence::Atom),
                _ => (format!("!({text})"), Precedence::Atom),
            }
        }
    }
}

/// Joins filters with `separator`, parenthesizing those that bind more loosely than, or
/// differently from, the surrounding operator.
fn join(filters: &[Filter], separator: &str, context: Precedence) -> String {
    filters
        .iter()
        .map(|filter| {
            let (text, precedence) = render(filter);
            if precedence == Precedence::Atom || precedence == context {
                text
            } else {
                format!("({text})")
            }
        })
        .collect::<Vec<_>>()
        .join(separator)
}

fn filter_json(filter: &pb::Filter) -> Value {
    match Filter::try_from(filter) {
        Ok(filter) => serde_json::to_value(filter).expect("a filter should serialize"),
        Err(err) => Value::String(format!("<unreadable filter: {err}>")),
    }
}

fn instant(timestamp: Option<&prost_types::Timestamp>) -> Option<OffsetDateTime> {
    timestamp.and_then(|timestamp| herald_proto::timestamp_from_pb(timestamp).ok())
}

/// Returns a timestamp to the second, `2025-01-02T03:04:05Z`, or `-` when absent.
pub(crate) fn time_summary(timestamp: Option<&prost_types::Timestamp>) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    instant(timestamp)
        .and_then(|instant| instant.format(&format).ok())
        .unwrap_or_else(|| "-".to_owned())
}

pub(crate) fn time_json(timestamp: Option<&prost_types::Timestamp>) -> Value {
    instant(timestamp)
        .and_then(|instant| instant.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}
