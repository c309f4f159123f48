//! The `herald.v1.EventTypeService` implementation over `herald-nats`'s [`EventTypeStore`]: the
//! event-type catalog, registered and deprecated here and watched by ingest.
//!
//! A type is converted from its wire form (JSON text parsed, naming the field) and checked by
//! `herald_core::catalog::EventType::validate` (schemas compile, examples satisfy them) before
//! the store is touched, so an invalid request stores nothing. Also answers, for the
//! Subscriptions API, which exact type filters name deprecated types.

use tonic::{Request, Response, Status};

use herald_core::Filter;
use herald_core::catalog::EventType;
use herald_nats::{EventTypeStore, Versioned};
use herald_proto::v1 as pb;
use herald_proto::{event_type_from_pb, event_type_to_pb};

use crate::{Error, Metrics, Result};

/// What a deprecation says when the caller gives no reason.
const DEFAULT_DEPRECATION_REASON: &str = "deprecated";

/// Serves the EventTypes API; cheap to clone.
#[derive(Clone)]
pub(crate) struct EventTypeApi {
    store: EventTypeStore,
    metrics: Metrics,
}

impl EventTypeApi {
    pub(crate) fn new(store: EventTypeStore, metrics: Metrics) -> EventTypeApi {
        EventTypeApi { store, metrics }
    }

    async fn create(&self, request: pb::CreateEventTypeRequest) -> Result<pb::EventType> {
        let event_type = event_type_from_pb(&request)?;
        event_type.validate()?;
        let revision = self.store.create(&event_type).await?;
        tracing::info!(event_type = %event_type.name, revision, "event type registered");
        crate::auth::note(&event_type.name, None, None, Some(revision));
        Ok(event_type_to_pb(&event_type, revision))
    }

    async fn get(&self, request: pb::GetEventTypeRequest) -> Result<pb::EventType> {
        let stored = self.read(&request.name).await?;
        Ok(event_type_to_pb(&stored.value, stored.revision))
    }

    async fn list(&self) -> Result<pb::ListEventTypesResponse> {
        let event_types = self
            .store
            .list()
            .await?
            .iter()
            .map(|stored| event_type_to_pb(&stored.value, stored.revision))
            .collect();
        Ok(pb::ListEventTypesResponse { event_types })
    }

    async fn deprecate(&self, request: pb::DeprecateEventTypeRequest) -> Result<pb::EventType> {
        let reason = match request.reason.trim() {
            "" => DEFAULT_DEPRECATION_REASON.to_owned(),
            reason => reason.to_owned(),
        };
        if reason.len() > herald_core::catalog::MAX_DESCRIPTION_LEN {
            return Err(Error::invalid_argument(
                "reason",
                format!(
                    "is longer than {} bytes",
                    herald_core::catalog::MAX_DESCRIPTION_LEN
                ),
            ));
        }
        let Versioned {
            value: mut event_type,
            revision,
        } = self.read(&request.name).await?;
        if request.expected_revision != 0 && request.expected_revision != revision {
            return Err(Error::EventTypeChanged {
                name: event_type.name,
                expected: request.expected_revision,
                actual: revision,
            });
        }
        event_type.deprecated = Some(reason);
        let old_revision = revision;
        let revision = self.store.update(&event_type, revision).await?;
        tracing::info!(event_type = %event_type.name, revision, "event type deprecated");
        crate::auth::note(&event_type.name, None, Some(old_revision), Some(revision));
        Ok(event_type_to_pb(&event_type, revision))
    }

    async fn read(&self, name: &str) -> Result<Versioned<EventType>> {
        self.store
            .get(name)
            .await?
            .ok_or_else(|| Error::EventTypeNotFound(name.to_owned()))
    }
}

#[tonic::async_trait]
impl pb::event_type_service_server::EventTypeService for EventTypeApi {
    async fn create_event_type(
        &self,
        request: Request<pb::CreateEventTypeRequest>,
    ) -> std::result::Result<Response<pb::EventType>, Status> {
        let call = self.create(request.into_inner());
        crate::subscriptions::observe(&self.metrics, "CreateEventType", call).await
    }

    async fn get_event_type(
        &self,
        request: Request<pb::GetEventTypeRequest>,
    ) -> std::result::Result<Response<pb::EventType>, Status> {
        let call = self.get(request.into_inner());
        crate::subscriptions::observe(&self.metrics, "GetEventType", call).await
    }

    async fn list_event_types(
        &self,
        _request: Request<pb::ListEventTypesRequest>,
    ) -> std::result::Result<Response<pb::ListEventTypesResponse>, Status> {
        crate::subscriptions::observe(&self.metrics, "ListEventTypes", self.list()).await
    }

    async fn deprecate_event_type(
        &self,
        request: Request<pb::DeprecateEventTypeRequest>,
    ) -> std::result::Result<Response<pb::EventType>, Status> {
        let call = self.deprecate(request.into_inner());
        crate::subscriptions::observe(&self.metrics, "DeprecateEventType", call).await
    }
}

/// Returns a warning for each event type that `filters` name exactly (`exact` on `type`, also
/// inside `any` and `all`) and that is deprecated. Best effort: a catalog that cannot be read
/// gives no warnings, and the failure is logged.
pub(crate) async fn deprecation_warnings(
    store: &EventTypeStore,
    filters: &[Filter],
) -> Vec<String> {
    let mut names = Vec::new();
    exact_types(filters, &mut names);
    names.sort();
    names.dedup();
    let mut warnings = Vec::new();
    for name in names {
        match store.get(&name).await {
            Ok(Some(stored)) => {
                if let Some(reason) = &stored.value.deprecated {
                    tracing::warn!(event_type = %name, "subscribing to a deprecated event type");
                    warnings.push(format!("event type `{name}` is deprecated: {reason}"));
                }
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(event_type = %name, error = %err, "failed to read the catalog");
            }
        }
    }
    warnings
}

/// Collects the types named by `exact` filters on `type`, outside `not`.
fn exact_types(filters: &[Filter], names: &mut Vec<String>) {
    for filter in filters {
        match filter {
            Filter::Exact(attributes) => {
                if let Some(name) = attributes.get("type") {
                    names.push(name.clone());
                }
            }
            Filter::Any(nested) | Filter::All(nested) => exact_types(nested, names),
            _ => {}
        }
    }
}
