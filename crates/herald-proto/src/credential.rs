//! Conversions of producer keys, operator tokens and audit records to their wire form. None
//! carries a token: the plaintext goes only into the Create answers, beside these messages.

use herald_core::credential::{Access, AuditRecord, OperatorToken, ProducerKey};
use herald_core::subscription::RateLimit;

use crate::timestamp_to_pb;
use crate::v1 as pb;

/// Returns the wire form of a stored producer key at `revision`.
pub fn producer_key_to_pb(key: &ProducerKey, revision: u64) -> pb::ProducerKey {
    pb::ProducerKey {
        id: key.id.to_string(),
        tenant: key.tenant.to_string(),
        description: key.description.clone(),
        source_prefixes: key.source_prefixes.clone(),
        type_prefixes: key.type_prefixes.clone(),
        rate_limit: key.rate_limit.map(|limit| pb::RateLimit {
            per_second: limit.per_second,
            burst: limit.burst,
        }),
        create_time: Some(timestamp_to_pb(key.created_at)),
        revoke_time: key.revoked_at.map(timestamp_to_pb),
        revision,
    }
}

/// Returns a request's rate limit; a burst of 0 means the same as `per_second`.
pub fn rate_limit_from_pb(limit: Option<&pb::RateLimit>) -> Option<RateLimit> {
    limit.map(|limit| RateLimit {
        per_second: limit.per_second,
        burst: if limit.burst == 0 {
            limit.per_second
        } else {
            limit.burst
        },
    })
}

/// Returns the wire form of a stored operator token at `revision`.
pub fn operator_token_to_pb(token: &OperatorToken, revision: u64) -> pb::OperatorToken {
    pb::OperatorToken {
        id: token.id.to_string(),
        tenant: token
            .tenant
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        read_only: token.access == Access::ReadOnly,
        description: token.description.clone(),
        create_time: Some(timestamp_to_pb(token.created_at)),
        revoke_time: token.revoked_at.map(timestamp_to_pb),
        revision,
    }
}

/// Returns the wire form of an audit record stored at `sequence`.
pub fn audit_record_to_pb(sequence: u64, record: &AuditRecord) -> pb::AuditRecord {
    let tenant_text = |tenant: &Option<herald_core::credential::TenantId>| {
        tenant.as_ref().map(ToString::to_string).unwrap_or_default()
    };
    pb::AuditRecord {
        sequence,
        time: Some(timestamp_to_pb(record.time)),
        credential: record.credential.clone(),
        credential_tenant: tenant_text(&record.credential_tenant),
        rpc: record.rpc.clone(),
        resource: record.resource.clone(),
        tenant: tenant_text(&record.tenant),
        old_revision: record.old_revision.unwrap_or_default(),
        new_revision: record.new_revision.unwrap_or_default(),
    }
}
