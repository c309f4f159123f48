//! Tenants and the credentials scoped to them: producer keys (who may publish which events, into
//! which tenant, how fast) and operator tokens (who may read or change which tenant's
//! subscriptions), and the audit record of a control-plane mutation.
//!
//! Pure: tokens are built from random bytes the caller passes in, and only their SHA-256 is
//! kept ([`TokenHash`]); a presented token is found by the credential id it carries and checked
//! against that hash in constant time. The serde forms of [`Credential`] and [`AuditRecord`]
//! are Herald's storage formats (the `herald_credentials` bucket, the `HERALD_AUDIT` stream):
//! fields are only added, with defaults. No form holds a token.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::subscription::RateLimit;

#[cfg(test)]
mod tests;

/// The tenant of subscriptions stored before tenants existed, of events published with the
/// bootstrap tokens of `ingest.auth`, and of subscriptions an admin creates without naming one.
pub const DEFAULT_TENANT: &str = "default";

/// The NATS header ingest stores each event's tenant in, taken from the producer key that
/// published it, never from the event. Absent (direct NATS producers, bootstrap tokens): the
/// default tenant.
pub const TENANT_HEADER: &str = "Herald-Tenant";

/// Longest tenant id, in bytes: it must fit a NATS subject token with room to spare.
pub const MAX_TENANT_LEN: usize = 63;

/// Most `source` or `type` prefixes a producer key may carry.
pub const MAX_PREFIXES: usize = 32;

/// Longest prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 256;

/// Longest description of a credential, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// Bytes of randomness in a token: 256 bits, so its SHA-256 needs no salt or stretching.
pub const TOKEN_SECRET_BYTES: usize = 32;

/// Why a credential, or its part, was refused: the field at fault and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CredentialError {
    pub field: String,
    pub reason: String,
}

impl CredentialError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> CredentialError {
        CredentialError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A tenant (an application, in Svix's terms): lower-case letters, digits and `-`, starting
/// with a letter or digit, at most 63 bytes, so it is usable as a NATS subject token and a KV key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Parses a tenant id; `field` names it in the error.
    pub fn parse(text: &str, field: &str) -> Result<TenantId, CredentialError> {
        let mut bytes = text.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit());
        let rest_ok = text
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if text.len() > MAX_TENANT_LEN || !first_ok || !rest_ok {
            return Err(CredentialError::new(
                field,
                format!(
                    "a tenant is 1 to {MAX_TENANT_LEN} lower-case letters, digits and `-`, \
                     starting with a letter or digit"
                ),
            ));
        }
        Ok(TenantId(text.to_owned()))
    }

    /// Returns the tenant `default` ([`DEFAULT_TENANT`]).
    pub fn default_tenant() -> TenantId {
        TenantId(DEFAULT_TENANT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> TenantId {
        TenantId::default_tenant()
    }
}

impl TryFrom<String> for TenantId {
    type Error = CredentialError;

    fn try_from(text: String) -> Result<TenantId, CredentialError> {
        TenantId::parse(&text, "tenant")
    }
}

impl From<TenantId> for String {
    fn from(tenant: TenantId) -> String {
        tenant.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// The two kinds of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// Publishes events through ingest: id `pk_<ULID>`, token `hpk_<ULID>_<secret>`.
    ProducerKey,
    /// Calls the control plane: id `ot_<ULID>`, token `hot_<ULID>_<secret>`.
    OperatorToken,
}

impl CredentialKind {
    fn id_prefix(self) -> &'static str {
        match self {
            CredentialKind::ProducerKey => "pk_",
            CredentialKind::OperatorToken => "ot_",
        }
    }

    fn token_prefix(self) -> &'static str {
        match self {
            CredentialKind::ProducerKey => "hpk_",
            CredentialKind::OperatorToken => "hot_",
        }
    }
}

/// A credential's id, `pk_<ULID>` or `ot_<ULID>`: what logs, listings and audit records name.
/// Not a secret.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialId(String);

impl CredentialId {
    /// Returns the id of a new credential of `kind`.
    pub fn new(kind: CredentialKind, ulid: ulid::Ulid) -> CredentialId {
        CredentialId(format!("{}{ulid}", kind.id_prefix()))
    }

    /// Parses `pk_<ULID>` or `ot_<ULID>`; `field` names it in the error.
    pub fn parse(text: &str, field: &str) -> Result<CredentialId, CredentialError> {
        let valid = [CredentialKind::ProducerKey, CredentialKind::OperatorToken]
            .into_iter()
            .any(|kind| {
                text.strip_prefix(kind.id_prefix())
                    .is_some_and(|ulid| ulid::Ulid::from_string(ulid).is_ok())
            });
        if !valid {
            return Err(CredentialError::new(
                field,
                "must be `pk_` or `ot_` followed by a ULID",
            ));
        }
        Ok(CredentialId(text.to_owned()))
    }

    pub fn kind(&self) -> CredentialKind {
        if self.0.starts_with(CredentialKind::ProducerKey.id_prefix()) {
            CredentialKind::ProducerKey
        } else {
            CredentialKind::OperatorToken
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CredentialId {
    type Error = CredentialError;

    fn try_from(text: String) -> Result<CredentialId, CredentialError> {
        CredentialId::parse(&text, "id")
    }
}

impl From<CredentialId> for String {
    fn from(id: CredentialId) -> String {
        id.0
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialId({})", self.0)
    }
}

/// The SHA-256 of a token, `sha256:<hex>`: all that is stored of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(String);

impl TokenHash {
    /// Returns the hash of `token`.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(format!(
            "sha256:{}",
            crate::digest::sha256_hex(token.as_bytes())
        ))
    }

    /// Returns true when `token` hashes to this, comparing the hashes in constant time.
    pub fn matches(&self, token: &str) -> bool {
        constant_time_eq(TokenHash::of(token).0.as_bytes(), self.0.as_bytes())
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// A newly issued token: its plaintext, shown to the caller once, and its hash, stored.
pub struct IssuedToken {
    pub id: CredentialId,
    /// `hpk_<ULID>_<base64url secret>` or `hot_...`; never stored, never logged.
    pub token: String,
    pub hash: TokenHash,
}

impl IssuedToken {
    /// Builds the token of a new credential of `kind` from `secret`, random bytes from the OS.
    pub fn issue(
        kind: CredentialKind,
        ulid: ulid::Ulid,
        secret: &[u8; TOKEN_SECRET_BYTES],
    ) -> IssuedToken {
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let token = format!("{}{ulid}_{encoded}", kind.token_prefix());
        let hash = TokenHash::of(&token);
        IssuedToken {
            id: CredentialId::new(kind, ulid),
            token,
            hash,
        }
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Returns the id a token of `kind` names, when it has the token's shape; says nothing about
/// whether the token is genuine.
pub fn id_of_token(kind: CredentialKind, token: &str) -> Option<CredentialId> {
    let rest = token.strip_prefix(kind.token_prefix())?;
    let (ulid, secret) = rest.split_once('_')?;
    let ulid = ulid::Ulid::from_string(ulid).ok()?;
    (secret.len() == 43).then(|| CredentialId::new(kind, ulid))
}

/// Whether an operator token may change things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Reads only: every mutation answers `PERMISSION_DENIED`.
    ReadOnly,
    ReadWrite,
}

/// A producer key: publishes into `tenant` the events whose `source` and `type` start with one
/// of its prefixes (no prefixes: any), at most `rate_limit` events a second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerKey {
    pub id: CredentialId,
    pub tenant: TenantId,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub source_prefixes: Vec<String>,
    #[serde(default)]
    pub type_prefixes: Vec<String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    pub token_hash: TokenHash,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Why an event is outside a producer key's scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the producer key may not publish this event: its {attribute} `{value}` starts with none of the key's prefixes"
)]
pub struct ScopeRefusal {
    /// `source` or `type`.
    pub attribute: &'static str,
    pub value: String,
}

impl ProducerKey {
    /// Checks the settings an operator chose.
    pub fn validate(&self) -> Result<(), CredentialError> {
        validate_description(&self.description)?;
        validate_prefixes(&self.source_prefixes, "source_prefixes")?;
        validate_prefixes(&self.type_prefixes, "type_prefixes")?;
        if let Some(limit) = &self.rate_limit {
            let max = crate::subscription::MAX_RATE;
            if !(1..=max).contains(&limit.per_second) {
                return Err(CredentialError::new(
                    "rate_limit.per_second",
                    format!("must be between 1 and {max}"),
                ));
            }
            if !(1..=max).contains(&limit.burst) {
                return Err(CredentialError::new(
                    "rate_limit.burst",
                    format!("must be between 1 and {max}"),
                ));
            }
        }
        Ok(())
    }

    /// Returns whether the key may publish an event with this `source` and `type`.
    pub fn permits(&self, source: &str, event_type: &str) -> Result<(), ScopeRefusal> {
        let within = |prefixes: &[String], value: &str| {
            prefixes.is_empty() || prefixes.iter().any(|prefix| value.starts_with(prefix))
        };
        if !within(&self.source_prefixes, source) {
            return Err(ScopeRefusal {
                attribute: "source",
                value: source.to_owned(),
            });
        }
        if !within(&self.type_prefixes, event_type) {
            return Err(ScopeRefusal {
                attribute: "type",
                value: event_type.to_owned(),
            });
        }
        Ok(())
    }
}

/// An operator token: reads, and with [`Access::ReadWrite`] changes, the subscriptions, dead
/// letters and attempts of `tenant`, or of every tenant when `tenant` is `None` (an admin
/// token, which also manages credentials and reads the audit stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorToken {
    pub id: CredentialId,
    #[serde(default)]
    pub tenant: Option<TenantId>,
    pub access: Access,
    #[serde(default)]
    pub description: String,
    pub token_hash: TokenHash,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl OperatorToken {
    /// Checks the settings an operator chose.
    pub fn validate(&self) -> Result<(), CredentialError> {
        validate_description(&self.description)
    }

    /// Returns what a caller holding this token may do.
    pub fn scope(&self) -> OperatorScope {
        OperatorScope {
            credential: self.id.as_str().to_owned(),
            tenant: self.tenant.clone(),
            access: self.access,
        }
    }
}

/// A stored credential, as the `herald_credentials` bucket holds it (key: its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    ProducerKey(ProducerKey),
    OperatorToken(OperatorToken),
}

impl Credential {
    pub fn id(&self) -> &CredentialId {
        match self {
            Credential::ProducerKey(key) => &key.id,
            Credential::OperatorToken(token) => &token.id,
        }
    }

    pub fn revoked_at(&self) -> Option<OffsetDateTime> {
        match self {
            Credential::ProducerKey(key) => key.revoked_at,
            Credential::OperatorToken(token) => token.revoked_at,
        }
    }

    /// Marks it revoked at `now`: it stays listed, and no longer authenticates anyone.
    pub fn revoke(&mut self, now: OffsetDateTime) {
        let revoked_at = match self {
            Credential::ProducerKey(key) => &mut key.revoked_at,
            Credential::OperatorToken(token) => &mut token.revoked_at,
        };
        revoked_at.get_or_insert(now);
    }
}

/// What an operator's call may touch: the tenant it is scoped to (`None`: every tenant, an
/// admin) and whether it may change things. `credential` names the credential in audit records
/// and logs: a credential id, `config.<n>` for the n-th bootstrap token of `control.auth`, or
/// `anonymous` when authentication is disabled (dev mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorScope {
    pub credential: String,
    pub tenant: Option<TenantId>,
    pub access: Access,
}

impl OperatorScope {
    /// The scope of a bootstrap token from the configuration: admin, read-write.
    pub fn bootstrap(index: usize) -> OperatorScope {
        OperatorScope {
            credential: format!("config.{index}"),
            tenant: None,
            access: Access::ReadWrite,
        }
    }

    /// The scope of every call when authentication is disabled (dev mode): admin, read-write.
    pub fn anonymous() -> OperatorScope {
        OperatorScope {
            credential: "anonymous".to_owned(),
            tenant: None,
            access: Access::ReadWrite,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.tenant.is_none()
    }

    /// Returns true when the caller may see what belongs to `tenant`.
    pub fn sees(&self, tenant: &TenantId) -> bool {
        self.tenant.as_ref().is_none_or(|own| own == tenant)
    }
}

/// The credentials in force, as ingest and control hold them in memory, kept current by a
/// watch of the bucket: revoked credentials are left out, so they authenticate no one.
#[derive(Debug, Clone, Default)]
pub struct CredentialSet {
    producer_keys: HashMap<CredentialId, ProducerKey>,
    operator_tokens: HashMap<CredentialId, OperatorToken>,
}

impl CredentialSet {
    /// Applies a stored credential (a revoked one is removed).
    pub fn put(&mut self, credential: Credential) {
        let id = credential.id().clone();
        self.remove(&id);
        if credential.revoked_at().is_some() {
            return;
        }
        match credential {
            Credential::ProducerKey(key) => {
                self.producer_keys.insert(id, key);
            }
            Credential::OperatorToken(token) => {
                self.operator_tokens.insert(id, token);
            }
        }
    }

    /// Forgets a deleted credential.
    pub fn remove(&mut self, id: &CredentialId) {
        self.producer_keys.remove(id);
        self.operator_tokens.remove(id);
    }

    /// Returns the producer key `token` belongs to, when it is genuine and not revoked.
    pub fn producer_key(&self, token: &str) -> Option<&ProducerKey> {
        let id = id_of_token(CredentialKind::ProducerKey, token)?;
        self.producer_keys
            .get(&id)
            .filter(|key| key.token_hash.matches(token))
    }

    /// Returns the operator token `token` is, when it is genuine and not revoked.
    pub fn operator_token(&self, token: &str) -> Option<&OperatorToken> {
        let id = id_of_token(CredentialKind::OperatorToken, token)?;
        self.operator_tokens
            .get(&id)
            .filter(|stored| stored.token_hash.matches(token))
    }

    /// Returns the number of credentials in force.
    pub fn len(&self) -> usize {
        self.producer_keys.len() + self.operator_tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One mutation made through the control plane, as the `HERALD_AUDIT` stream holds it: who
/// (the credential's id, never its token), what (the RPC and the resource's id), the resource's
/// KV revision before and after (when it has one), and when. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The caller's credential ([`OperatorScope::credential`]).
    pub credential: String,
    /// The caller's tenant; `None` for an admin.
    #[serde(default)]
    pub credential_tenant: Option<TenantId>,
    /// The RPC's name, `CreateSubscription`.
    pub rpc: String,
    /// The id of what it changed: a subscription, credential or event type.
    pub resource: String,
    /// The tenant the resource belongs to, when it belongs to one.
    #[serde(default)]
    pub tenant: Option<TenantId>,
    /// Its KV revision before the change (none when created, or not kept in KV).
    #[serde(default)]
    pub old_revision: Option<u64>,
    /// Its KV revision after the change (none when deleted, or not kept in KV).
    #[serde(default)]
    pub new_revision: Option<u64>,
}

fn validate_description(description: &str) -> Result<(), CredentialError> {
    if description.len() > MAX_DESCRIPTION_LEN {
        return Err(CredentialError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_LEN} bytes"),
        ));
    }
    Ok(())
}

fn validate_prefixes(prefixes: &[String], field: &str) -> Result<(), CredentialError> {
    if prefixes.len() > MAX_PREFIXES {
        return Err(CredentialError::new(
            field,
            format!("at most {MAX_PREFIXES} prefixes"),
        ));
    }
    for (index, prefix) in prefixes.iter().enumerate() {
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            return Err(CredentialError::new(
                format!("{field}[{index}]"),
                format!("must be 1 to {MAX_PREFIX_LEN} bytes"),
            ));
        }
    }
    Ok(())
}

/// Compares without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
