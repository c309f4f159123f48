//! The admin listener: `/livez`, `/healthz`, `/readyz` and `/metrics` on their own port.
//!
//! Readiness is the conjunction of named checks registered by the roles (NATS connected,
//! topology ensured, listener bound) and flips to not-ready as soon as shutdown begins, so load
//! balancers stop sending work before the process drains.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// The process's readiness: named checks plus a draining flag. Cheap to clone.
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<Mutex<BTreeMap<String, Check>>>,
    draining: Arc<AtomicBool>,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    /// Adds (or replaces) a readiness check.
    pub fn register(&self, name: &str, check: impl Fn() -> bool + Send + Sync + 'static) {
        // Checks are inserted in one step: a poisoned lock still holds a valid map.
        let mut checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        checks.insert(name.to_owned(), Arc::new(check));
    }

    /// Marks the process as shutting down: it reports not-ready from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Returns each check's state, and `draining` when shutdown has begun.
    pub fn report(&self) -> (bool, BTreeMap<String, bool>) {
        let checks: Vec<(String, Check)> = {
            let guard = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
            guard
                .iter()
                .map(|(name, check)| (name.clone(), Arc::clone(check)))
                .collect()
        };
        let mut states: BTreeMap<String, bool> = checks
            .into_iter()
            .map(|(name, check)| (name, check()))
            .collect();
        let draining = self.draining.load(Ordering::SeqCst);
        states.insert("not_draining".to_owned(), !draining);
        let ready = states.values().all(|ok| *ok);
        (ready, states)
    }
}

#[derive(Clone)]
struct AdminState {
    health: Health,
    registry: prometheus::Registry,
}

/// Builds the admin router.
pub fn router(health: Health, registry: prometheus::Registry) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState { health, registry })
}

/// Serves the admin router until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    registry: prometheus::Registry,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(health, registry))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let (ready, checks) = state.health.report();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "ready": ready, "checks": checks });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let families = state.registry.gather();
    match prometheus::TextEncoder::new().encode_to_string(&families) {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "failed to encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
