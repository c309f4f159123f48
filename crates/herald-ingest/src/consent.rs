//! Consent callbacks: `GET` or `POST /v1/consent/<token>`, the URL Herald offers an endpoint in
//! `WebHook-Request-Callback` (CloudEvents HTTP Web Hooks, section 4.1.3). An endpoint (or a
//! person, in a browser) confirms there that it consents; the request may carry
//! `WebHook-Allowed-Rate`. No bearer token: the unguessable token is the credential.
//!
//! The token names the subscription and holds a random secret; the subscription stores only
//! the secret's SHA-256, with an expiry. A valid one records the consent and activates a
//! pending subscription, by compare-and-set on the consent part of the stored document only
//! (`SubscriptionStore::update_consent`), so this public listener never opens a signing
//! secret. Unknown tokens are `404`, expired ones `410`, both `application/problem+json`.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use time::OffsetDateTime;

use herald_core::ErrorCode;
use herald_core::subscription::consent::{ALLOWED_RATE, CallbackRefusal, CallbackToken};
use herald_nats::SubscriptionStore;

use crate::error::{PROBLEM_CONTENT_TYPE, Problem, status_of};

/// Deadline of one callback, reading and writing the subscription included.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The callback routes, served beside `/v1/events` without its bearer-token check.
pub(crate) fn router(store: SubscriptionStore) -> Router {
    let confirm = get(confirm)
        .post(confirm)
        .fallback(method_not_allowed)
        .with_state(store);
    Router::new().route("/v1/consent/{token}", confirm)
}

async fn confirm(
    State(store): State<SubscriptionStore>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let answer = tokio::time::timeout(CALLBACK_TIMEOUT, record(&store, &token, &headers)).await;
    match answer {
        Ok(Ok(())) => {
            let body = serde_json::json!({
                "consent": "granted",
                "detail": "Herald will deliver events to this endpoint",
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Ok(Err(refusal)) => refusal.into_response(),
        Err(_elapsed) => {
            Refusal::Unavailable("the callback took too long; try again".to_owned()).into_response()
        }
    }
}

async fn record(
    store: &SubscriptionStore,
    token: &str,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let token = CallbackToken::parse(token).ok_or(Refusal::Callback(CallbackRefusal::Unknown))?;
    let allowed_rate = match headers.get(ALLOWED_RATE) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            Refusal::Callback(CallbackRefusal::BadRate(
                "WebHook-Allowed-Rate is not text".to_owned(),
            ))
        })?),
    };
    let now = OffsetDateTime::now_utc();
    let changed = store
        .update_consent(&token.subscription_id, |view| {
            view.confirm(&token, allowed_rate, now)
        })
        .await
        .map_err(|err| Refusal::Unavailable(err.to_string()))?;
    match changed {
        None => Err(Refusal::Callback(CallbackRefusal::Unknown)),
        Some(Err(refusal)) => Err(Refusal::Callback(refusal)),
        Some(Ok(())) => {
            tracing::info!(
                subscription_id = %token.subscription_id,
                "the endpoint consented through its callback"
            );
            Ok(())
        }
    }
}

async fn method_not_allowed() -> Response {
    let mut response = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        ErrorCode::InvalidArgument,
        "confirm consent with GET or POST".to_owned(),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    response
}

/// Why a callback is refused.
enum Refusal {
    Callback(CallbackRefusal),
    /// The subscription could not be read or written.
    Unavailable(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Callback(refusal @ CallbackRefusal::Unknown) => problem(
                status_of(ErrorCode::NotFound),
                "consent-callback-unknown",
                ErrorCode::NotFound,
                refusal.to_string(),
            ),
            // Gone: it existed, and asking again (VerifyEndpoint) issues a new one.
            Refusal::Callback(refusal @ CallbackRefusal::Expired(_)) => problem(
                StatusCode::GONE,
                "consent-callback-expired",
                ErrorCode::NotFound,
                refusal.to_string(),
            ),
            Refusal::Callback(refusal @ CallbackRefusal::BadRate(_)) => problem(
                status_of(ErrorCode::InvalidArgument),
                "bad-request",
                ErrorCode::InvalidArgument,
                refusal.to_string(),
            ),
            Refusal::Unavailable(detail) => {
                tracing::warn!(error = %detail, "a consent callback failed");
                let mut response = problem(
                    status_of(ErrorCode::Unavailable),
                    "unavailable",
                    ErrorCode::Unavailable,
                    format!("the consent could not be recorded ({detail}); try again"),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
        }
    }
}

fn problem(status: StatusCode, slug: &str, code: ErrorCode, detail: String) -> Response {
    let problem = Problem {
        problem_type: format!("urn:herald:problem:{slug}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.as_str().to_owned(),
        pointer: None,
        errors: Vec::new(),
    };
    // A document of strings and integers always serializes; the fallback is unreachable.
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    response
}
