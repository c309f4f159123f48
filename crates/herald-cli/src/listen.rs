//! `heraldctl listen`: a local webhook receiver for development.
//!
//! It accepts `POST` on any path, prints one block per webhook (time, `webhook-id`, the
//! CloudEvent's type, id and source, in structured or binary mode (`ce-` headers, the data's
//! media type and size), and whether the Standard Webhooks signature over the body verified), and
//! answers `204` when the signature verified or none is checked, `401` when it is invalid. It
//! also answers the CloudEvents webhook abuse-protection handshake (`OPTIONS` with
//! `WebHook-Request-Origin`). [`inspect`] is pure, so the reporting is tested without sockets.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use herald_signing::Secret;

use crate::args::ListenArgs;

#[cfg(test)]
mod tests;

/// Largest webhook body accepted, in bytes.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Where reports go: standard output in the binary, a buffer in tests.
pub(crate) type Report = Arc<dyn Fn(String) + Send + Sync>;

/// What `listen` concluded about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inspection {
    /// The lines to print.
    pub(crate) report: String,
    /// The status to answer with.
    pub(crate) status: StatusCode,
}

#[derive(Clone)]
struct ListenState {
    secret: Option<Arc<Secret>>,
    report: Report,
}

/// Serves until Ctrl-C.
pub(crate) async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let secret = args
        .secret
        .as_deref()
        .map(Secret::parse)
        .transpose()
        .context("--secret must be a `whsec_<base64>` secret")?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let address = listener.local_addr()?;
    let checking = if secret.is_some() {
        "verifying signatures"
    } else {
        "not verifying signatures (no --secret)"
    };
    crate::output::print(&format!(
        "listening on http://{address}/ ({checking}); Ctrl-C to stop"
    ));
    let report: Report = Arc::new(|text: String| crate::output::print(&text));
    axum::serve(listener, router(secret, report))
        .with_graceful_shutdown(async {
            // An error here means no signal handler could be installed: then stop right away.
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the listener failed")
}

/// Returns the receiver: every path, `POST` and `OPTIONS`.
pub(crate) fn router(secret: Option<Secret>, report: Report) -> Router {
    let state = ListenState {
        secret: secret.map(Arc::new),
        report,
    };
    Router::new()
        .fallback(receive)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn receive(State(state): State<ListenState>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    match method {
        Method::OPTIONS => handshake(&headers),
        Method::POST => {
            let body = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
                Ok(body) => body,
                Err(err) => {
                    (state.report)(format!("POST {path}: cannot read the body: {err}"));
                    return StatusCode::BAD_REQUEST.into_response();
                }
            };
            let now = OffsetDateTime::now_utc();
            let inspection = inspect(state.secret.as_deref(), &path, &headers, &body, now);
            (state.report)(inspection.report);
            inspection.status.into_response()
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST, OPTIONS")],
        )
            .into_response(),
    }
}

/// Answers the abuse-protection handshake (CloudEvents HTTP Web Hooks, section 4.1): every
/// requesting origin is allowed, at any rate.
fn handshake(headers: &HeaderMap) -> Response {
    let Some(origin) = headers.get("webhook-request-origin") else {
        return (StatusCode::OK, [(header::ALLOW, "POST, OPTIONS")]).into_response();
    };
    let mut response = (StatusCode::OK, [(header::ALLOW, "POST, OPTIONS")]).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert("webhook-allowed-origin", origin.clone());
    if headers.contains_key("webhook-request-rate") {
        response_headers.insert("webhook-allowed-rate", HeaderValue::from_static("*"));
    }
    response
}

/// Describes one webhook and decides the answer; `now` is the verifier's clock.
pub(crate) fn inspect(
    secret: Option<&Secret>,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Inspection {
    let header_text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let time_format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let time = now.format(&time_format).unwrap_or_default();
    let webhook_id = header_text(herald_signing::HEADER_ID).unwrap_or("-");
    let (signature, status) = match secret {
        None => (
            "not checked (no --secret)".to_owned(),
            StatusCode::NO_CONTENT,
        ),
        Some(secret) => match verify(secret, &header_text, body, now) {
            Ok(()) => ("verified".to_owned(), StatusCode::NO_CONTENT),
            Err(reason) => (format!("INVALID ({reason})"), StatusCode::UNAUTHORIZED),
        },
    };
    let report = [
        format!("{time} POST {path}"),
        format!("  webhook-id: {webhook_id}"),
        format!("  event: {}", event_summary(headers, body)),
        format!("  signature: {signature}"),
    ]
    .join("\n");
    Inspection { report, status }
}

fn verify<'a>(
    secret: &Secret,
    header_text: &impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), String> {
    let required = |name: &str| header_text(name).ok_or_else(|| format!("no {name} header"));
    let msg_id = required(herald_signing::HEADER_ID)?;
    let timestamp = required(herald_signing::HEADER_TIMESTAMP)?;
    let signatures = required(herald_signing::HEADER_SIGNATURE)?;
    herald_signing::verify(
        secret,
        msg_id,
        timestamp,
        signatures,
        body,
        now.unix_timestamp(),
        herald_signing::DEFAULT_TOLERANCE_SECS,
    )
    .map_err(|err| err.to_string())
}

/// Returns `type=... id=... source=...` from `ce-` headers (binary mode, decoded and checked as
/// Herald reads binary-mode events, with the data's media type and size) or the JSON body
/// (structured mode), or says why it could not.
fn event_summary(headers: &HeaderMap, body: &[u8]) -> String {
    let is_binary = headers.keys().any(|name| name.as_str().starts_with("ce-"));
    if is_binary {
        return binary_summary(headers, body);
    }
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(body) else {
        return format!("not a CloudEvent ({} bytes, not JSON)", body.len());
    };
    let attribute = |event: &serde_json::Value, name: &str| {
        event
            .get(name)
            .and_then(|value| value.as_str())
            .unwrap_or("-")
            .to_owned()
    };
    let summary = |event: &serde_json::Value| {
        format!(
            "type={} id={} source={}",
            attribute(event, "type"),
            attribute(event, "id"),
            attribute(event, "source"),
        )
    };
    match &document {
        serde_json::Value::Array(events) => {
            let summaries: Vec<String> = events.iter().map(summary).collect();
            format!("batch of {}: {}", events.len(), summaries.join("; "))
        }
        event => summary(event),
    }
}

/// Describes a binary-mode event: its attributes percent-decoded, then the data's media type
/// and size; or why it is not a valid binary-mode CloudEvent.
fn binary_summary(headers: &HeaderMap, body: &[u8]) -> String {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let pairs = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()));
    match herald_core::Event::from_binary(pairs, content_type, body) {
        Ok(event) => format!(
            "type={} id={} source={} (binary mode, {}, {} bytes of data)",
            event.ty(),
            event.id(),
            event.source(),
            content_type.unwrap_or("no content type"),
            body.len(),
        ),
        Err(err) => format!("not a valid binary-mode CloudEvent: {err}"),
    }
}
