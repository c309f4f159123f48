//! The `herald.v1.CredentialService` and `herald.v1.AuditService` implementations: producer
//! keys and operator tokens over `herald-nats`'s [`CredentialStore`], and the audit stream over
//! [`AuditLog`]. Only admins reach them (`auth.rs`).
//!
//! A token is made from 32 bytes of the OS random source (`herald_signing::random_token_bytes`)
//! and returned once, in the Create answer; only its SHA-256 is stored, and neither is logged.
//! Revoking marks the stored credential revoked (it stays listed): ingest and control drop it
//! from the set they authenticate against as soon as their watch delivers the change.

use std::future::Future;

use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use herald_core::credential::{
    Access, Credential, CredentialId, CredentialKind, IssuedToken, OperatorToken, ProducerKey,
    TenantId,
};
use herald_nats::{AuditLog, AuditOrder, CredentialStore, Start};
use herald_proto::v1 as pb;

use crate::subscriptions::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, observe};
use crate::{Error, Metrics, Result};

/// Serves the Credentials and Audit APIs; cheap to clone.
#[derive(Clone)]
pub(crate) struct CredentialApi {
    store: CredentialStore,
    audit: AuditLog,
    metrics: Metrics,
}

impl CredentialApi {
    pub(crate) fn new(store: CredentialStore, audit: AuditLog, metrics: Metrics) -> CredentialApi {
        CredentialApi {
            store,
            audit,
            metrics,
        }
    }

    async fn observe<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> std::result::Result<Response<T>, Status> {
        observe(&self.metrics, method, call).await
    }

    async fn create_producer_key(
        &self,
        request: pb::CreateProducerKeyRequest,
    ) -> Result<pb::CreateProducerKeyResponse> {
        let tenant = TenantId::parse(&request.tenant, "tenant")?;
        let issued = issue(CredentialKind::ProducerKey)?;
        let key = ProducerKey {
            id: issued.id.clone(),
            tenant,
            description: request.description,
            source_prefixes: request.source_prefixes,
            type_prefixes: request.type_prefixes,
            rate_limit: herald_proto::rate_limit_from_pb(request.rate_limit.as_ref()),
            token_hash: issued.hash.clone(),
            created_at: OffsetDateTime::now_utc(),
            revoked_at: None,
        };
        key.validate()?;
        let revision = self
            .store
            .create(&Credential::ProducerKey(key.clone()))
            .await?;
        crate::auth::note(key.id.as_str(), Some(&key.tenant), None, Some(revision));
        tracing::info!(credential = %key.id, tenant = %key.tenant, "producer key created");
        Ok(pb::CreateProducerKeyResponse {
            key: Some(herald_proto::producer_key_to_pb(&key, revision)),
            token: issued.token,
        })
    }

    async fn create_operator_token(
        &self,
        request: pb::CreateOperatorTokenRequest,
    ) -> Result<pb::CreateOperatorTokenResponse> {
        let tenant = if request.tenant.is_empty() {
            None
        } else {
            Some(TenantId::parse(&request.tenant, "tenant")?)
        };
        let issued = issue(CredentialKind::OperatorToken)?;
        let token = OperatorToken {
            id: issued.id.clone(),
            tenant,
            access: if request.read_only {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            },
            description: request.description,
            token_hash: issued.hash.clone(),
            created_at: OffsetDateTime::now_utc(),
            revoked_at: None,
        };
        token.validate()?;
        let revision = self
            .store
            .create(&Credential::OperatorToken(token.clone()))
            .await?;
        crate::auth::note(
            token.id.as_str(),
            token.tenant.as_ref(),
            None,
            Some(revision),
        );
        tracing::info!(credential = %token.id, admin = token.tenant.is_none(), "operator token created");
        Ok(pb::CreateOperatorTokenResponse {
            token: Some(herald_proto::operator_token_to_pb(&token, revision)),
            secret: issued.token,
        })
    }

    /// Lists the credentials of `kind`, of `tenant` when one is given.
    async fn list(&self, kind: CredentialKind, tenant: &str) -> Result<Vec<(Credential, u64)>> {
        let tenant = if tenant.is_empty() {
            None
        } else {
            Some(TenantId::parse(tenant, "tenant")?)
        };
        let stored = self.store.list().await?;
        Ok(stored
            .into_iter()
            .filter(|entry| entry.value.id().kind() == kind)
            .filter(|entry| {
                let own = match &entry.value {
                    Credential::ProducerKey(key) => Some(&key.tenant),
                    Credential::OperatorToken(token) => token.tenant.as_ref(),
                };
                tenant.is_none() || own == tenant.as_ref()
            })
            .map(|entry| (entry.value, entry.revision))
            .collect())
    }

    /// Marks a credential of `kind` revoked; revoking a revoked one changes nothing.
    async fn revoke(&self, kind: CredentialKind, id_text: &str) -> Result<(Credential, u64)> {
        let id = CredentialId::parse(id_text, "id")?;
        if id.kind() != kind {
            return Err(Error::invalid_argument(
                "id",
                match kind {
                    CredentialKind::ProducerKey => "is not a producer key (pk_...)",
                    CredentialKind::OperatorToken => "is not an operator token (ot_...)",
                },
            ));
        }
        loop {
            let stored = self
                .store
                .get(&id)
                .await?
                .ok_or_else(|| Error::CredentialNotFound(id.to_string()))?;
            let mut credential = stored.value;
            if credential.revoked_at().is_some() {
                return Ok((credential, stored.revision));
            }
            credential.revoke(OffsetDateTime::now_utc());
            match self.store.update(&credential, stored.revision).await {
                Ok(revision) => {
                    let tenant = match &credential {
                        Credential::ProducerKey(key) => Some(&key.tenant),
                        Credential::OperatorToken(token) => token.tenant.as_ref(),
                    };
                    crate::auth::note(id.as_str(), tenant, Some(stored.revision), Some(revision));
                    tracing::info!(credential = %id, "credential revoked");
                    return Ok((credential, revision));
                }
                Err(err) if err.code() == herald_core::ErrorCode::Aborted => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }

    async fn audit_page(
        &self,
        request: pb::ListAuditRecordsRequest,
    ) -> Result<pb::ListAuditRecordsResponse> {
        let limit = match request.page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            requested => requested.min(MAX_PAGE_SIZE),
        };
        let sequence = if request.page_token.is_empty() {
            None
        } else {
            Some(request.page_token.parse::<u64>().map_err(|_| {
                Error::invalid_argument("page_token", "not a token from a previous answer")
            })?)
        };
        let since = match &request.since {
            None => None,
            Some(since) => Some(
                herald_proto::timestamp_from_pb(since)
                    .map_err(|_| Error::invalid_argument("since", "is out of range"))?,
            ),
        };
        let order = if request.oldest_first {
            AuditOrder::OldestFirst(match (sequence, since) {
                (Some(sequence), _) => Start::Sequence(sequence),
                (None, Some(since)) => Start::Time(since),
                (None, None) => Start::Sequence(1),
            })
        } else {
            AuditOrder::NewestFirst { before: sequence }
        };
        let page = self.audit.page(order, since, limit).await?;
        Ok(pb::ListAuditRecordsResponse {
            records: page
                .items
                .iter()
                .map(|(sequence, record)| herald_proto::audit_record_to_pb(*sequence, record))
                .collect(),
            next_page_token: page
                .next_sequence
                .map(|sequence| sequence.to_string())
                .unwrap_or_default(),
        })
    }
}

/// Issues a new token of `kind` from the OS random source.
fn issue(kind: CredentialKind) -> Result<IssuedToken> {
    let secret = herald_signing::random_token_bytes().map_err(Error::Secret)?;
    Ok(IssuedToken::issue(kind, ulid::Ulid::generate(), &secret))
}

fn producer_key_of(credential: &Credential, revision: u64) -> Option<pb::ProducerKey> {
    match credential {
        Credential::ProducerKey(key) => Some(herald_proto::producer_key_to_pb(key, revision)),
        Credential::OperatorToken(_) => None,
    }
}

fn operator_token_of(credential: &Credential, revision: u64) -> Option<pb::OperatorToken> {
    match credential {
        Credential::OperatorToken(token) => {
            Some(herald_proto::operator_token_to_pb(token, revision))
        }
        Credential::ProducerKey(_) => None,
    }
}

#[tonic::async_trait]
impl pb::credential_service_server::CredentialService for CredentialApi {
    async fn create_producer_key(
        &self,
        request: Request<pb::CreateProducerKeyRequest>,
    ) -> std::result::Result<Response<pb::CreateProducerKeyResponse>, Status> {
        let call = self.create_producer_key(request.into_inner());
        self.observe("CreateProducerKey", call).await
    }

    async fn list_producer_keys(
        &self,
        request: Request<pb::ListProducerKeysRequest>,
    ) -> std::result::Result<Response<pb::ListProducerKeysResponse>, Status> {
        let tenant = request.into_inner().tenant;
        let call = async {
            let listed = self.list(CredentialKind::ProducerKey, &tenant).await?;
            Ok(pb::ListProducerKeysResponse {
                keys: listed
                    .iter()
                    .filter_map(|(credential, revision)| producer_key_of(credential, *revision))
                    .collect(),
            })
        };
        self.observe("ListProducerKeys", call).await
    }

    async fn revoke_producer_key(
        &self,
        request: Request<pb::RevokeCredentialRequest>,
    ) -> std::result::Result<Response<pb::ProducerKey>, Status> {
        let id = request.into_inner().id;
        let call = async {
            let (credential, revision) = self.revoke(CredentialKind::ProducerKey, &id).await?;
            producer_key_of(&credential, revision)
                .ok_or_else(|| Error::Internal("a revoked producer key changed kind".to_owned()))
        };
        self.observe("RevokeProducerKey", call).await
    }

    async fn create_operator_token(
        &self,
        request: Request<pb::CreateOperatorTokenRequest>,
    ) -> std::result::Result<Response<pb::CreateOperatorTokenResponse>, Status> {
        let call = self.create_operator_token(request.into_inner());
        self.observe("CreateOperatorToken", call).await
    }

    async fn list_operator_tokens(
        &self,
        request: Request<pb::ListOperatorTokensRequest>,
    ) -> std::result::Result<Response<pb::ListOperatorTokensResponse>, Status> {
        let tenant = request.into_inner().tenant;
        let call = async {
            let listed = self.list(CredentialKind::OperatorToken, &tenant).await?;
            Ok(pb::ListOperatorTokensResponse {
                tokens: listed
                    .iter()
                    .filter_map(|(credential, revision)| operator_token_of(credential, *revision))
                    .collect(),
            })
        };
        self.observe("ListOperatorTokens", call).await
    }

    async fn revoke_operator_token(
        &self,
        request: Request<pb::RevokeCredentialRequest>,
    ) -> std::result::Result<Response<pb::OperatorToken>, Status> {
        let id = request.into_inner().id;
        let call = async {
            let (credential, revision) = self.revoke(CredentialKind::OperatorToken, &id).await?;
            operator_token_of(&credential, revision)
                .ok_or_else(|| Error::Internal("a revoked operator token changed kind".to_owned()))
        };
        self.observe("RevokeOperatorToken", call).await
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for CredentialApi {
    async fn list_audit_records(
        &self,
        request: Request<pb::ListAuditRecordsRequest>,
    ) -> std::result::Result<Response<pb::ListAuditRecordsResponse>, Status> {
        // Boxed: scanning the stream is a large future.
        let call = Box::pin(self.audit_page(request.into_inner()));
        self.observe("ListAuditRecords", call).await
    }
}
