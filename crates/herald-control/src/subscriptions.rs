//! The `herald.v1.SubscriptionService` implementation over the JetStream KV subscription store.
//!
//! Every request is converted to `herald-core` types and validated completely before the store
//! is touched, so an invalid request never changes anything. Writes use the KV revision for
//! optimistic concurrency: a caller-supplied `expected_revision` is checked strictly, and without
//! one a read-modify-write that loses a race is retried a few times. Secrets are returned only by
//! `CreateSubscription` and `RotateSecret` (the new one) and never logged; sinks are logged by
//! authority only (their path and query may carry tokens).

use std::future::Future;

use time::OffsetDateTime;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use herald_core::network::NetworkPolicy;
use herald_core::record::EndpointHealth;
use herald_core::retry::RetryPolicy;
use herald_core::subscription::{MAX_ROTATION_OVERLAP, Scheme, SubscriptionError, WebhookSecret};
use herald_core::{DeliverySettings, ErrorCode, Filter, Sink, State, Subscription, SubscriptionId};
use herald_nats::{EventTypeStore, Records, SubscriptionStore, TestSends, Versioned};
use herald_proto::v1 as pb;
use herald_proto::{SecretVisibility, subscription_to_pb};

use crate::{Error, Metrics, Result};

/// Page size of the list calls (`ListSubscriptions`, `ListDeadLetters`, `ListAttempts`) when the
/// request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Largest page a list call returns; larger requests are capped.
pub const MAX_PAGE_SIZE: usize = 1000;

/// How long a rotated-out secret keeps signing when `RotateSecret` does not say.
pub const DEFAULT_ROTATION_OVERLAP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How many times an update or delete without `expected_revision` re-reads and retries after
/// losing a race with another writer.
const MAX_WRITE_ATTEMPTS: u32 = 3;

/// Serves the Subscriptions API; cheap to clone.
#[derive(Clone)]
pub(crate) struct SubscriptionApi {
    store: SubscriptionStore,
    records: Records,
    /// Read to warn about subscriptions to deprecated event types.
    event_types: EventTypeStore,
    network: NetworkPolicy,
    metrics: Metrics,
    /// Asks a dispatcher for test sends.
    test_sends: TestSends,
    /// Asks endpoints for consent, through a dispatcher.
    consent: crate::consent::Consent,
}

/// The changes of an `UpdateSubscription` request; the sink, filters, retry policy and delivery
/// settings are validated, the description is checked with the whole subscription by
/// `Subscription::validate`.
struct Changes {
    sink: Option<Sink>,
    filters: Option<Vec<Filter>>,
    description: Option<String>,
    retry_policy: Option<RetryPolicy>,
    delivery: Option<DeliverySettings>,
    consent: Option<herald_core::subscription::ConsentMode>,
    /// Whether the request's delivery settings name `parts`.
    parts_given: bool,
    /// Custom headers added or replaced by name, then those removed.
    set_headers: Vec<herald_core::subscription::CustomHeader>,
    remove_headers: Vec<String>,
    /// A new client certificate (`Some(Some(_))`), its removal (`Some(None)`), or neither.
    client_certificate: Option<Option<herald_core::subscription::ClientCertificate>>,
}

impl SubscriptionApi {
    pub(crate) fn new(
        store: SubscriptionStore,
        records: Records,
        event_types: EventTypeStore,
        network: NetworkPolicy,
        metrics: Metrics,
        test_sends: TestSends,
        consent: crate::consent::Consent,
    ) -> SubscriptionApi {
        SubscriptionApi {
            store,
            records,
            event_types,
            network,
            metrics,
            test_sends,
            consent,
        }
    }

    async fn observe<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> std::result::Result<Response<T>, Status> {
        observe(&self.metrics, method, call).await
    }

    async fn create(&self, request: pb::CreateSubscriptionRequest) -> Result<pb::Subscription> {
        let sink = self.parse_sink(&request.sink)?;
        let filters = parse_filters(&request.filters)?;
        let retry_policy = parse_retry_policy(request.retry_policy.as_ref())?
            .unwrap_or_else(RetryPolicy::standard);
        let delivery = parse_delivery(request.delivery.as_ref())?.unwrap_or_default();
        let consent = herald_proto::consent_mode_from_pb(request.consent)?
            .unwrap_or(herald_core::subscription::ConsentMode::Optional);
        let secret = new_secret(&request.secret, None, Scheme::V1)?;
        let tenant = crate::auth::tenant_to_create_in(&request.tenant)?;
        let now = OffsetDateTime::now_utc();
        let mut subscription = Subscription {
            id: SubscriptionId::from_ulid(ulid::Ulid::generate()),
            sink,
            filters,
            secret,
            description: request.description,
            created_at: now,
            updated_at: now,
            retry_policy,
            state: State::Active,
            delivery,
            retired_secrets: Vec::new(),
            consent,
            endpoint_consent: None,
            tenant,
            headers: herald_proto::custom_headers_from_pb(&request.headers),
            client_certificate: request
                .client_certificate
                .as_ref()
                .map(|given| crate::client_certificate::parse(given, "client_certificate", now))
                .transpose()?,
        };
        subscription.validate()?;
        record_subscription_id(&subscription.id);
        let prepared = self.consent.prepare(&mut subscription, now)?;
        let revision = self.store.create(&subscription).await?;
        tracing::info!(sink = %subscription.sink.authority(), revision, "subscription created");
        let (subscription, revision) = match prepared {
            Some(prepared) => {
                let written = Versioned {
                    value: subscription,
                    revision,
                };
                // Boxed: a NATS request and the writes after it make a large future.
                let stored = Box::pin(self.consent.ask(&self.store, written, prepared)).await;
                (stored.value, stored.revision)
            }
            None => (subscription, revision),
        };
        crate::auth::note(
            subscription.id.as_str(),
            Some(&subscription.tenant),
            None,
            Some(revision),
        );
        let mut created = subscription_to_pb(&subscription, revision, SecretVisibility::Reveal);
        created.warnings = self.deprecation_warnings(&subscription.filters).await;
        Ok(created)
    }

    async fn get(&self, request: pb::GetSubscriptionRequest) -> Result<pb::Subscription> {
        let id = parse_id(&request.id)?;
        record_subscription_id(&id);
        let stored = self.read(&id).await?;
        let mut subscription =
            subscription_to_pb(&stored.value, stored.revision, SecretVisibility::Omit);
        // Health is informative: a subscription stays readable when its health is not.
        match self.records.health(&id).await {
            Ok(health) => subscription.health = Some(herald_proto::health_to_pb(&health)),
            Err(err) => tracing::warn!(error = %err, "failed to read endpoint health"),
        }
        Ok(subscription)
    }

    async fn list(
        &self,
        request: pb::ListSubscriptionsRequest,
    ) -> Result<pb::ListSubscriptionsResponse> {
        let page_size = match request.page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            requested => requested.min(MAX_PAGE_SIZE),
        };
        // The token is the id of the last subscription of the previous page.
        let after_opt = if request.page_token.is_empty() {
            None
        } else {
            let after = SubscriptionId::parse(&request.page_token).map_err(|_| {
                Error::invalid_argument("page_token", "not a token from a previous answer")
            })?;
            Some(after)
        };
        let scope = crate::auth::caller()?;
        let tenant_opt = crate::auth::tenant_to_list(&scope, &request.tenant)?;
        let stored = self.store.list().await?;
        let remaining: Vec<Versioned<Subscription>> = stored
            .into_iter()
            .filter(|entry| {
                let tenant = &entry.value.tenant;
                scope.sees(tenant) && tenant_opt.as_ref().is_none_or(|listed| listed == tenant)
            })
            .filter(|entry| {
                after_opt
                    .as_ref()
                    .is_none_or(|after| entry.value.id > *after)
            })
            .collect();
        let has_more = remaining.len() > page_size;
        let page: Vec<pb::Subscription> = remaining
            .iter()
            .take(page_size)
            .map(|entry| subscription_to_pb(&entry.value, entry.revision, SecretVisibility::Omit))
            .collect();
        let next_page_token = match page.last() {
            Some(last) if has_more => last.id.clone(),
            _ => String::new(),
        };
        Ok(pb::ListSubscriptionsResponse {
            subscriptions: page,
            next_page_token,
        })
    }

    async fn update(&self, request: pb::UpdateSubscriptionRequest) -> Result<pb::Subscription> {
        let id = parse_id(&request.id)?;
        record_subscription_id(&id);
        let changes = self.parse_changes(&request)?;
        let expected_revision = request.expected_revision;
        let mut attempt = 1;
        loop {
            let Versioned {
                value: mut subscription,
                revision,
            } = self.read(&id).await?;
            check_revision(&id, expected_revision, revision)?;
            let parts = subscription.delivery.parts;
            let consent_was_off = subscription.consent.is_off();
            let now = OffsetDateTime::now_utc();
            changes.apply(&mut subscription, now);
            let prepared = self
                .consent
                .after_update(&mut subscription, consent_was_off, now)?;
            if subscription.delivery.parts != parts {
                // Moving keys between parts while their events wait in another part's window
                // would deliver them out of order.
                return Err(Error::invalid_argument(
                    "delivery.parts",
                    format!(
                        "is fixed when the subscription is created (it has {parts}); create a new subscription to split it another way"
                    ),
                ));
            }
            subscription.validate()?;
            match self.store.update(&subscription, revision).await {
                Ok(new_revision) => {
                    tracing::info!(
                        sink = %subscription.sink.authority(),
                        revision = new_revision,
                        "subscription updated"
                    );
                    crate::auth::note(
                        id.as_str(),
                        Some(&subscription.tenant),
                        Some(revision),
                        Some(new_revision),
                    );
                    let (subscription, new_revision) = match prepared {
                        Some(prepared) => {
                            let written = Versioned {
                                value: subscription,
                                revision: new_revision,
                            };
                            let asked = self.consent.ask(&self.store, written, prepared);
                            let stored = Box::pin(asked).await;
                            (stored.value, stored.revision)
                        }
                        None => (subscription, new_revision),
                    };
                    let mut updated =
                        subscription_to_pb(&subscription, new_revision, SecretVisibility::Omit);
                    updated.warnings = self.deprecation_warnings(&subscription.filters).await;
                    return Ok(updated);
                }
                Err(err) if should_retry(&err, expected_revision, attempt) => {
                    tracing::debug!(attempt, "subscription changed concurrently, retrying");
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    async fn delete(
        &self,
        request: pb::DeleteSubscriptionRequest,
    ) -> Result<pb::DeleteSubscriptionResponse> {
        let id = parse_id(&request.id)?;
        record_subscription_id(&id);
        let expected_revision = request.expected_revision;
        let mut attempt = 1;
        loop {
            let stored = self.read(&id).await?;
            check_revision(&id, expected_revision, stored.revision)?;
            match self.store.delete(&id, stored.revision).await {
                Ok(()) => {
                    tracing::info!(revision = stored.revision, "subscription deleted");
                    crate::auth::note(
                        id.as_str(),
                        Some(&stored.value.tenant),
                        Some(stored.revision),
                        None,
                    );
                    // Records age out anyway; a failure here leaves them to expire.
                    if let Err(err) = self.records.forget(&id).await {
                        tracing::warn!(error = %err, "failed to forget the subscription's records");
                    }
                    return Ok(pb::DeleteSubscriptionResponse {});
                }
                Err(err) if should_retry(&err, expected_revision, attempt) => {
                    tracing::debug!(attempt, "subscription changed concurrently, retrying");
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Sets a subscription's state (pause, resume), retrying concurrent changes.
    async fn set_state(
        &self,
        id_text: &str,
        state: fn(OffsetDateTime) -> State,
    ) -> Result<pb::Subscription> {
        let id = parse_id(id_text)?;
        record_subscription_id(&id);
        let mut attempt = 1;
        loop {
            let Versioned {
                value: mut subscription,
                revision,
            } = self.read(&id).await?;
            let now = OffsetDateTime::now_utc();
            subscription.state = state(now);
            // Resumed without the consent it requires, it waits for it.
            subscription.settle_consent(now);
            subscription.updated_at = now;
            match self.store.update(&subscription, revision).await {
                Ok(new_revision) => {
                    tracing::info!(state = ?subscription.state, revision = new_revision, "subscription state changed");
                    crate::auth::note(
                        id.as_str(),
                        Some(&subscription.tenant),
                        Some(revision),
                        Some(new_revision),
                    );
                    return Ok(subscription_to_pb(
                        &subscription,
                        new_revision,
                        SecretVisibility::Omit,
                    ));
                }
                Err(err) if should_retry(&err, 0, attempt) => attempt += 1,
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Replaces the secret; the current one keeps signing for the overlap. The answer reveals
    /// the new secret.
    async fn rotate(&self, request: pb::RotateSecretRequest) -> Result<pb::Subscription> {
        let id = parse_id(&request.id)?;
        record_subscription_id(&id);
        let overlap = match &request.overlap {
            None => DEFAULT_ROTATION_OVERLAP,
            Some(overlap) => herald_proto::duration_from_pb(overlap, "overlap")?,
        };
        if overlap > MAX_ROTATION_OVERLAP {
            return Err(Error::invalid_argument(
                "overlap",
                "must be at most 30 days",
            ));
        }
        let scheme = herald_proto::scheme_from_pb(request.signature_scheme, "signature_scheme")?;
        let expected_revision = request.expected_revision;
        let mut attempt = 1;
        loop {
            let Versioned {
                value: mut subscription,
                revision,
            } = self.read(&id).await?;
            check_revision(&id, expected_revision, revision)?;
            let secret = new_secret(&request.secret, scheme, subscription.secret.scheme())?;
            if secret == subscription.secret {
                return Err(Error::invalid_argument("secret", "is the current secret"));
            }
            subscription.rotate_secret(secret, overlap, OffsetDateTime::now_utc());
            match self.store.update(&subscription, revision).await {
                Ok(new_revision) => {
                    tracing::info!(
                        revision = new_revision,
                        overlap_secs = overlap.as_secs(),
                        scheme = subscription.secret.scheme().as_str(),
                        "subscription secret rotated"
                    );
                    crate::auth::note(
                        id.as_str(),
                        Some(&subscription.tenant),
                        Some(revision),
                        Some(new_revision),
                    );
                    return Ok(subscription_to_pb(
                        &subscription,
                        new_revision,
                        SecretVisibility::Reveal,
                    ));
                }
                Err(err) if should_retry(&err, expected_revision, attempt) => attempt += 1,
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Resets the endpoint's health, then resumes delivery: a dispatcher that sees the
    /// subscription active never sees the failures that disabled it.
    async fn resume(&self, id_text: &str) -> Result<pb::Subscription> {
        let id = parse_id(id_text)?;
        self.read(&id).await?;
        self.records
            .set_health(&id, &EndpointHealth::default())
            .await?;
        self.set_state(id_text, |_| State::Active).await
    }

    /// Warns about exact type filters naming deprecated event types (best effort).
    async fn deprecation_warnings(&self, filters: &[Filter]) -> Vec<String> {
        crate::event_types::deprecation_warnings(&self.event_types, filters).await
    }

    async fn read(&self, id: &SubscriptionId) -> Result<Versioned<Subscription>> {
        read_subscription(&self.store, id).await
    }

    /// Parses a sink and refuses a host the network policy denies before any name is
    /// resolved: an IP literal (`url::Url` has turned every numeric spelling into one), and
    /// `localhost`, `*.localhost` and cloud metadata names. Other names are judged by their
    /// addresses at every connection.
    fn parse_sink(&self, text: &str) -> Result<Sink> {
        let sink = Sink::parse(text)?;
        sink.check_policy(&self.network)?;
        if let Some(range) = sink
            .url()
            .host()
            .and_then(|host| self.network.denied_host(&host))
        {
            return Err(SubscriptionError::new(
                "sink",
                format!("{range} addresses are not allowed as delivery targets"),
            )
            .into());
        }
        Ok(sink)
    }

    fn parse_changes(&self, request: &pb::UpdateSubscriptionRequest) -> Result<Changes> {
        let sink = if request.sink.is_empty() {
            None
        } else {
            Some(self.parse_sink(&request.sink)?)
        };
        let filters = if request.replace_filters {
            Some(parse_filters(&request.filters)?)
        } else {
            None
        };
        let set_headers = herald_proto::custom_headers_from_pb(&request.set_headers);
        // Checked alone first, so a refusal names the request's own field; the headers that
        // result are checked with the subscription.
        herald_core::subscription::headers::validate(&set_headers).map_err(|err| {
            herald_core::subscription::SubscriptionError::new(
                format!("set_{}", err.field),
                err.reason,
            )
        })?;
        let client_certificate = match (
            &request.set_client_certificate,
            request.remove_client_certificate,
        ) {
            (Some(_), true) => {
                return Err(SubscriptionError::new(
                    "remove_client_certificate",
                    "cannot be combined with set_client_certificate",
                )
                .into());
            }
            (Some(given), false) => Some(Some(crate::client_certificate::parse(
                given,
                "set_client_certificate",
                OffsetDateTime::now_utc(),
            )?)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        Ok(Changes {
            sink,
            filters,
            description: request.description.clone(),
            retry_policy: parse_retry_policy(request.retry_policy.as_ref())?,
            delivery: parse_delivery(request.delivery.as_ref())?,
            consent: herald_proto::consent_mode_from_pb(request.consent)?,
            parts_given: request.delivery.as_ref().is_some_and(|d| d.parts != 0),
            set_headers,
            remove_headers: request.remove_headers.clone(),
            client_certificate,
        })
    }
}

impl Changes {
    fn apply(&self, subscription: &mut Subscription, now: OffsetDateTime) {
        if let Some(sink) = &self.sink
            && *sink != subscription.sink
        {
            // Consent is given for one sink: the new one is asked again.
            subscription.sink = sink.clone();
            subscription.endpoint_consent = None;
        }
        if let Some(mode) = self.consent {
            subscription.consent = mode;
        }
        if let Some(filters) = &self.filters {
            subscription.filters = filters.clone();
        }
        if let Some(description) = &self.description {
            subscription.description = description.clone();
        }
        herald_core::subscription::headers::apply_changes(
            &mut subscription.headers,
            self.set_headers.clone(),
            &self.remove_headers,
        );
        if let Some(client_certificate) = &self.client_certificate {
            subscription.client_certificate = client_certificate.clone();
        }
        if let Some(retry_policy) = &self.retry_policy {
            subscription.retry_policy = retry_policy.clone();
        }
        if let Some(delivery) = self.delivery {
            // Replaced whole, but for `parts` when the request leaves it unset (0): it is
            // fixed at creation, so callers changing a limit need not repeat it.
            let parts = subscription.delivery.parts;
            subscription.delivery = delivery;
            if !self.parts_given {
                subscription.delivery.parts = parts;
            }
        }
        subscription.updated_at = now;
    }
}

#[tonic::async_trait]
impl pb::subscription_service_server::SubscriptionService for SubscriptionApi {
    async fn pause_subscription(
        &self,
        request: Request<pb::PauseSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::Subscription>, Status> {
        let id = request.into_inner().id;
        let pause = self.set_state(&id, |since| State::Paused { since });
        self.observe("PauseSubscription", pause).await
    }

    async fn resume_subscription(
        &self,
        request: Request<pb::ResumeSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::Subscription>, Status> {
        let id = request.into_inner().id;
        self.observe("ResumeSubscription", self.resume(&id)).await
    }

    async fn rotate_secret(
        &self,
        request: Request<pb::RotateSecretRequest>,
    ) -> std::result::Result<Response<pb::Subscription>, Status> {
        self.observe("RotateSecret", self.rotate(request.into_inner()))
            .await
    }

    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::Subscription>, Status> {
        // Boxed: asking the endpoint for consent makes the create a large future.
        let create = Box::pin(self.create(request.into_inner()));
        self.observe("CreateSubscription", create).await
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::Subscription>, Status> {
        self.observe("GetSubscription", self.get(request.into_inner()))
            .await
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> std::result::Result<Response<pb::ListSubscriptionsResponse>, Status> {
        self.observe("ListSubscriptions", self.list(request.into_inner()))
            .await
    }

    async fn update_subscription(
        &self,
        request: Request<pb::UpdateSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::Subscription>, Status> {
        // Boxed: asking the endpoint for consent makes the update a large future.
        let update = Box::pin(self.update(request.into_inner()));
        self.observe("UpdateSubscription", update).await
    }

    async fn delete_subscription(
        &self,
        request: Request<pb::DeleteSubscriptionRequest>,
    ) -> std::result::Result<Response<pb::DeleteSubscriptionResponse>, Status> {
        self.observe("DeleteSubscription", self.delete(request.into_inner()))
            .await
    }

    async fn verify_endpoint(
        &self,
        request: Request<pb::VerifyEndpointRequest>,
    ) -> std::result::Result<Response<pb::Subscription>, Status> {
        let call = self.consent.verify(&self.store, request.into_inner());
        self.observe("VerifyEndpoint", call).await
    }

    async fn send_test_event(
        &self,
        request: Request<pb::SendTestEventRequest>,
    ) -> std::result::Result<Response<pb::SendTestEventResponse>, Status> {
        let call =
            crate::test_sends::send_test_event(&self.store, &self.test_sends, request.into_inner());
        self.observe("SendTestEvent", call).await
    }
}

/// Runs one call in its span, counts it, and converts its error to a status.
pub(crate) async fn observe<T>(
    metrics: &Metrics,
    method: &'static str,
    call: impl Future<Output = Result<T>>,
) -> std::result::Result<Response<T>, Status> {
    let span = tracing::info_span!("grpc", method, subscription_id = tracing::field::Empty);
    let result = call.instrument(span.clone()).await;
    let code = match &result {
        Ok(_) => "ok",
        Err(err) => err.code().as_str(),
    };
    metrics.record(method, code);
    span.in_scope(|| result.map(Response::new).map_err(Status::from))
}

/// Reads a stored subscription, or `NotFound`, also when it belongs to a tenant the caller may
/// not see (`auth.rs`): a tenant's operator cannot tell another tenant's ids from unused ones.
pub(crate) async fn read_subscription(
    store: &SubscriptionStore,
    id: &SubscriptionId,
) -> Result<Versioned<Subscription>> {
    let stored = store
        .get(id)
        .await?
        .ok_or_else(|| Error::NotFound(id.clone()))?;
    if !crate::auth::caller()?.sees(&stored.value.tenant) {
        return Err(Error::NotFound(id.clone()));
    }
    Ok(stored)
}

/// Returns the secret a request gives, or a generated one of its scheme (`default_scheme`
/// when it names none); a given secret must be of the scheme the request names, if any.
fn new_secret(
    given: &str,
    scheme: Option<Scheme>,
    default_scheme: Scheme,
) -> Result<WebhookSecret> {
    if given.is_empty() {
        let key = herald_signing::Key::generate(scheme.unwrap_or(default_scheme))
            .map_err(Error::Secret)?;
        return Ok(WebhookSecret::from_signing_key(key));
    }
    let secret = WebhookSecret::parse(given)?;
    if scheme.is_some_and(|scheme| scheme != secret.scheme()) {
        return Err(Error::invalid_argument(
            "signature_scheme",
            format!(
                "does not match the secret given, a {} secret",
                secret.scheme().as_str()
            ),
        ));
    }
    Ok(secret)
}

pub(crate) fn parse_id(text: &str) -> Result<SubscriptionId> {
    Ok(SubscriptionId::parse(text)?)
}

/// Converts and validates a request's retry policy; `None` when the request has none.
fn parse_retry_policy(policy: Option<&pb::RetryPolicy>) -> Result<Option<RetryPolicy>> {
    let Some(policy) = policy else {
        return Ok(None);
    };
    let policy = herald_proto::retry_policy_from_pb(policy)?;
    policy.validate()?;
    Ok(Some(policy))
}

/// Converts and validates a request's delivery settings; `None` when the request has none.
fn parse_delivery(settings: Option<&pb::DeliverySettings>) -> Result<Option<DeliverySettings>> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let settings = herald_proto::delivery_settings_from_pb(settings)?;
    settings.validate()?;
    Ok(Some(settings))
}

fn parse_filters(filters: &[pb::Filter]) -> Result<Vec<Filter>> {
    let filters = herald_proto::filters_from_pb(filters)?;
    herald_core::filter::validate(&filters)?;
    Ok(filters)
}

fn check_revision(id: &SubscriptionId, expected: u64, actual: u64) -> Result<()> {
    if expected != 0 && expected != actual {
        return Err(Error::RevisionMismatch {
            id: id.clone(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// Returns true when a write lost a race and the caller left concurrency control to us.
fn should_retry(error: &herald_nats::Error, expected_revision: u64, attempt: u32) -> bool {
    error.code() == ErrorCode::Aborted && expected_revision == 0 && attempt < MAX_WRITE_ATTEMPTS
}

pub(crate) fn record_subscription_id(id: &SubscriptionId) {
    tracing::Span::current().record("subscription_id", id.as_str());
}
