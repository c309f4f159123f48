//! Who calls, and what they may do: a tower layer in front of every `herald.v1` service.
//!
//! A call presents `authorization: Bearer <token>`: a bootstrap token of `control.auth` (an
//! admin, read-write, named `config.<n>`), or an operator token from the credentials bucket,
//! found by the id it carries and checked against its SHA-256 in constant time in the set that
//! [`herald_nats::CredentialStore::follow`] keeps current in memory, so no call reads KV and a
//! revocation counts from the moment the watch delivers it. No token, or one that is unknown,
//! wrong or revoked, is `UNAUTHENTICATED`. Then [`required_access`] decides by the method alone:
//! a read-only token calling a mutation, or a tenant's token calling an admin method
//! (credentials, audit, rejected events, catalog changes), is `PERMISSION_DENIED`, before any
//! handler runs. Health checks and reflection stay open.
//!
//! The call then runs inside a task-local [`Call`]: handlers read the caller's scope with
//! [`caller`] (`read_subscription` answers `NOT_FOUND` for another tenant's subscription, so a
//! tenant cannot even learn that an id exists), and each mutation that succeeded records what it
//! changed with [`note`]. Once the handler answered, the layer appends that note to the audit
//! stream with the caller's credential id, never the token. A call outside any [`Call`] has no
//! caller: [`caller`] fails, so nothing is served without a checked scope.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use time::OffsetDateTime;
use tokio::sync::watch;

use herald_core::auth::bearer_token;
use herald_core::credential::{Access, AuditRecord, CredentialSet, OperatorScope, TenantId};
use herald_nats::AuditLog;

use crate::metrics::Metrics;
use crate::{AuthConfig, Error, Result};

#[cfg(test)]
mod tests;

/// What a method needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Required {
    /// Any credential; the handler limits what it shows to the caller's tenant.
    Read,
    /// A read-write credential; the handler limits what it changes to the caller's tenant.
    Write,
    /// An admin credential.
    AdminRead,
    /// A read-write admin credential.
    AdminWrite,
}

/// Returns what `method` (`Service/Method`, without the package) needs. A method this table
/// does not know needs a read-write admin, so a new RPC is never open by accident.
pub(crate) fn required_access(method: &str) -> Required {
    match method {
        "SubscriptionService/GetSubscription"
        | "SubscriptionService/ListSubscriptions"
        | "DeliveryService/ListDeadLetters"
        | "DeliveryService/ListAttempts"
        | "DeliveryService/GetEventDeliveryStatus"
        | "EventTypeService/GetEventType"
        | "EventTypeService/ListEventTypes" => Required::Read,
        "SubscriptionService/CreateSubscription"
        | "SubscriptionService/UpdateSubscription"
        | "SubscriptionService/DeleteSubscription"
        | "SubscriptionService/PauseSubscription"
        | "SubscriptionService/ResumeSubscription"
        | "SubscriptionService/RotateSecret"
        | "SubscriptionService/SendTestEvent"
        | "SubscriptionService/VerifyEndpoint"
        | "DeliveryService/RedriveDeadLetters"
        | "DeliveryService/PurgeDeadLetters"
        | "DeliveryService/ReplayEvents" => Required::Write,
        "EventService/ListRejectedEvents"
        | "CredentialService/ListProducerKeys"
        | "CredentialService/ListOperatorTokens"
        | "AuditService/ListAuditRecords" => Required::AdminRead,
        _ => Required::AdminWrite,
    }
}

/// One call in progress: who makes it, and what it changed.
pub(crate) struct Call {
    scope: OperatorScope,
    rpc: String,
    note: Mutex<Option<Note>>,
}

/// What a mutation changed, for its audit record.
#[derive(Debug, Clone)]
struct Note {
    resource: String,
    tenant: Option<TenantId>,
    old_revision: Option<u64>,
    new_revision: Option<u64>,
}

tokio::task_local! {
    static CALL: Arc<Call>;
}

/// Returns the scope of the caller of the call in progress; `Internal` outside a call, so a
/// handler reached without the layer serves nothing.
pub(crate) fn caller() -> Result<OperatorScope> {
    CALL.try_with(|call| call.scope.clone())
        .map_err(|_| Error::Internal("a call reached a handler without its caller".to_owned()))
}

/// Records what the call in progress changed: `resource` (an id) of `tenant`, from
/// `old_revision` to `new_revision`. The layer appends it to the audit stream once the call
/// answered. Outside a call it does nothing.
pub(crate) fn note(
    resource: &str,
    tenant: Option<&TenantId>,
    old_revision: Option<u64>,
    new_revision: Option<u64>,
) {
    let _ = CALL.try_with(|call| {
        if let Ok(mut slot) = call.note.lock() {
            *slot = Some(Note {
                resource: resource.to_owned(),
                tenant: tenant.cloned(),
                old_revision,
                new_revision,
            });
        }
    });
}

/// Returns `PERMISSION_DENIED` unless the caller may see `tenant`'s resources, naming neither.
pub(crate) fn check_tenant_field(scope: &OperatorScope, tenant: &TenantId) -> Result<()> {
    if scope.sees(tenant) {
        return Ok(());
    }
    Err(Error::PermissionDenied(
        "this operator token is scoped to another tenant".to_owned(),
    ))
}

/// Returns the tenant a `CreateSubscription` asking for `requested` creates in: a tenant's
/// token creates in its own tenant (naming another is `PERMISSION_DENIED`); an admin in the one
/// it names, or `default`.
pub(crate) fn tenant_to_create_in(requested: &str) -> Result<TenantId> {
    let scope = caller()?;
    if requested.is_empty() {
        return Ok(scope.tenant.unwrap_or_default());
    }
    let tenant = TenantId::parse(requested, "tenant")?;
    check_tenant_field(&scope, &tenant)?;
    Ok(tenant)
}

/// Returns the tenant a list call asking for `requested` is limited to, beside the caller's
/// own scope: none when it asks for none; naming a tenant the caller may not see is
/// `PERMISSION_DENIED`.
pub(crate) fn tenant_to_list(scope: &OperatorScope, requested: &str) -> Result<Option<TenantId>> {
    if requested.is_empty() {
        return Ok(None);
    }
    let tenant = TenantId::parse(requested, "tenant")?;
    check_tenant_field(scope, &tenant)?;
    Ok(Some(tenant))
}

/// Checks the credentials of every `herald.v1` call and runs it inside its [`Call`].
#[derive(Clone)]
pub(crate) struct AccessLayer {
    shared: Arc<Shared>,
}

struct Shared {
    bootstrap: AuthConfig,
    credentials: watch::Receiver<Arc<CredentialSet>>,
    audit: AuditLog,
    metrics: Metrics,
}

impl AccessLayer {
    pub(crate) fn new(
        bootstrap: &AuthConfig,
        credentials: watch::Receiver<Arc<CredentialSet>>,
        audit: AuditLog,
        metrics: Metrics,
    ) -> AccessLayer {
        AccessLayer {
            shared: Arc::new(Shared {
                bootstrap: bootstrap.clone(),
                credentials,
                audit,
                metrics,
            }),
        }
    }
}

/// Returns the scope of the credential an `authorization` value presents, if any.
fn authenticate(
    bootstrap: &AuthConfig,
    credentials: &CredentialSet,
    authorization: Option<&str>,
) -> Option<OperatorScope> {
    // An operator token counts even with authentication disabled (dev mode), so its scope
    // does too.
    if let Some(token) =
        bearer_token(authorization).and_then(|token| credentials.operator_token(token))
    {
        return Some(token.scope());
    }
    if bootstrap.disabled {
        return Some(OperatorScope::anonymous());
    }
    bootstrap
        .bootstrap_index(authorization)
        .map(OperatorScope::bootstrap)
}

/// Decides whether a call to `method` may proceed, and as whom.
fn admit(
    bootstrap: &AuthConfig,
    credentials: &CredentialSet,
    method: &str,
    authorization: Option<&str>,
) -> Result<OperatorScope> {
    let scope =
        authenticate(bootstrap, credentials, authorization).ok_or(Error::Unauthenticated)?;
    let required = required_access(method);
    let admin_only = matches!(required, Required::AdminRead | Required::AdminWrite);
    if admin_only && !scope.is_admin() {
        return Err(Error::PermissionDenied(format!(
            "{method} needs an admin token; this one is scoped to a tenant"
        )));
    }
    let writes = matches!(required, Required::Write | Required::AdminWrite);
    if writes && scope.access == Access::ReadOnly {
        return Err(Error::PermissionDenied(format!(
            "{method} changes things; this token is read-only"
        )));
    }
    Ok(scope)
}

impl Shared {
    fn admit(&self, method: &str, authorization: Option<&str>) -> Result<OperatorScope> {
        let credentials = Arc::clone(&self.credentials.borrow());
        admit(&self.bootstrap, &credentials, method, authorization)
    }

    /// Appends the audit record of a call that noted a change. A record that cannot be stored
    /// is logged with what it would have said (ids and revisions, no secret): the change
    /// itself stands.
    async fn audit(&self, call: &Call) {
        let note = call.note.lock().ok().and_then(|mut slot| slot.take());
        let Some(note) = note else {
            return;
        };
        let record = AuditRecord {
            time: OffsetDateTime::now_utc(),
            credential: call.scope.credential.clone(),
            credential_tenant: call.scope.tenant.clone(),
            rpc: call.rpc.clone(),
            resource: note.resource,
            tenant: note.tenant,
            old_revision: note.old_revision,
            new_revision: note.new_revision,
        };
        if let Err(err) = self.audit.append(&record).await {
            tracing::error!(
                error = %err,
                rpc = %record.rpc,
                resource = %record.resource,
                credential = %record.credential,
                "failed to store an audit record"
            );
            self.metrics.record(&record.rpc, "audit_failed");
        }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> AccessService<S> {
        AccessService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`AccessLayer`] wraps around tonic's routes.
#[derive(Clone)]
pub(crate) struct AccessService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Package prefix of the paths this layer checks.
const PACKAGE_PREFIX: &str = "/herald.v1.";

impl<S, B> tower::Service<http::Request<B>> for AccessService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone that was made ready is the one that serves this call (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(method) = request.uri().path().strip_prefix(PACKAGE_PREFIX) else {
            return Box::pin(inner.call(request));
        };
        let method = method.to_owned();
        let shared = Arc::clone(&self.shared);
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let rpc = method.rsplit('/').next().unwrap_or_default().to_owned();
        let scope = match shared.admit(&method, authorization) {
            Ok(scope) => scope,
            Err(error) => {
                let label = if matches!(error, Error::Unauthenticated) {
                    crate::metrics::UNKNOWN_METHOD
                } else {
                    rpc.as_str()
                };
                shared.metrics.record(label, error.code().as_str());
                let status = tonic::Status::from(error);
                return Box::pin(async move { Ok(status.into_http()) });
            }
        };
        let call = Arc::new(Call {
            scope,
            rpc,
            note: Mutex::new(None),
        });
        Box::pin(async move {
            let response = CALL.scope(Arc::clone(&call), inner.call(request)).await;
            shared.audit(&call).await;
            response
        })
    }
}
