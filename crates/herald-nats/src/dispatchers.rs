//! Dispatcher replicas and who delivers for each subscription: membership leases in the KV
//! bucket `herald_dispatchers`, claims in the KV bucket `herald_claims`.
//!
//! A member entry `member.<replica id>.<epoch>` lives while its replica rewrites it: the bucket's
//! `max_age` is the lease TTL (history 1), so each rewrite is a new message whose age starts
//! again, and an entry not rewritten within the TTL is removed by the server. The epoch numbers
//! one process's incarnations: a replica whose lease lapsed joins again under a new epoch, so
//! claims written under the old one are recognisably dead even while the replica lives.
//!
//! A claim `claim.<subscription id>` names the replica (and epoch) that delivers for the
//! subscription; a subscription split into parts has one claim per part instead,
//! `claim.<subscription id>.p<index>of<count>` (`herald_core::WorkId`). Claims live in a bucket of their own without `max_age`: they are written only
//! when ownership changes and must outlive every lease, or an owner would lose them silently.
//! Every write is a compare-and-set; a lost race is [`ErrorCode::Aborted`]. The revision of a
//! claim is its fencing token.
//!
//! This module only stores and reads; deciding who should own what is the dispatcher's.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use herald_core::{ErrorCode, WorkId};

use crate::{Error, Nats, Result};

/// Name of the membership bucket: one entry per live dispatcher incarnation.
pub const MEMBERS_BUCKET: &str = "herald_dispatchers";
/// Name of the claims bucket: one entry per subscription ever claimed.
pub const CLAIMS_BUCKET: &str = "herald_claims";
/// The shortest lease the membership bucket accepts.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(1);

const MEMBER_PREFIX: &str = "member.";
const CLAIM_PREFIX: &str = "claim.";
const MAX_REPLICA_ID_LEN: usize = 128;

/// One incarnation of a dispatcher replica.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId {
    /// Unique per process start; letters, digits, `-` and `_` only.
    pub replica_id: String,
    /// Counts the process's joins from 1; a lapsed lease is never renewed, its replica joins
    /// again under the next epoch.
    pub epoch: u64,
}

/// A change of membership seen by [`Dispatchers::watch_members`]. Expiry is not reported (the
/// server removes expired entries silently): list the members to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Written (joined, or rewritten).
    Written(MemberId),
    /// Deleted by its replica (a graceful leave).
    Deleted(MemberId),
}

/// Who delivers for a subscription or a part of one; stored as JSON in `claim.<work id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The owner's replica id.
    pub owner: String,
    /// The owner's epoch when it claimed: the claim counts only while that membership lives.
    pub epoch: u64,
    /// When the claim was written (informational, the writer's clock).
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_at: OffsetDateTime,
}

/// What a claim entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimState {
    /// Held by the named member.
    Held(Claim),
    /// Released by its owner (deleted): anyone may take it.
    Released,
    /// Not a claim Herald can read (written by something else): held by no live member.
    Unreadable,
}

/// A claim with the revision it was read at, the token for the next compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimEntry {
    /// The subscription, or the part of one, it is the claim of.
    pub work: WorkId,
    pub state: ClaimState,
    pub revision: u64,
}

/// The membership and claims buckets; cheap to clone.
#[derive(Clone)]
pub struct Dispatchers {
    members: kv::Store,
    claims: kv::Store,
}

/// The members bucket: entries expire `lease_ttl` after their last write.
pub(crate) fn members_config(
    events: &async_nats::jetstream::stream::Config,
    lease_ttl: Duration,
) -> kv::Config {
    kv::Config {
        bucket: MEMBERS_BUCKET.to_owned(),
        description: "Herald: live dispatcher replicas, member.<replica id>.<epoch>".to_owned(),
        history: 1,
        max_age: lease_ttl,
        storage: events.storage,
        num_replicas: events.num_replicas,
        ..Default::default()
    }
}

/// The claims bucket.
pub(crate) fn claims_config(events: &async_nats::jetstream::stream::Config) -> kv::Config {
    kv::Config {
        bucket: CLAIMS_BUCKET.to_owned(),
        description: "Herald: which dispatcher delivers for a subscription, claim.<id>".to_owned(),
        history: 1,
        storage: events.storage,
        num_replicas: events.num_replicas,
        ..Default::default()
    }
}

/// Why a members bucket whose entries live `max_age` cannot serve a replica leasing
/// `lease_ttl`: the server would drop the replica's entry while the replica still trusts it.
pub(crate) fn lease_problem(max_age: Duration, lease_ttl: Duration) -> Option<String> {
    (!max_age.is_zero() && max_age < lease_ttl).then(|| {
        format!(
            "bucket {MEMBERS_BUCKET} keeps entries {max_age:?}, less than dispatcher.lease_ttl \
             {lease_ttl:?}: run `herald migrate` with this lease_ttl"
        )
    })
}

/// The informational value of a member entry (only the key is read back).
#[derive(Serialize)]
struct MemberRecord<'a> {
    replica_id: &'a str,
    epoch: u64,
    #[serde(with = "time::serde::rfc3339")]
    written_at: OffsetDateTime,
}

/// Returns `InvalidArgument` unless `replica_id` can name a member: 1 to 128 ASCII letters,
/// digits, `-` or `_`.
pub fn validate_replica_id(replica_id: &str) -> Result<()> {
    let valid_chars = replica_id
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if replica_id.is_empty() || replica_id.len() > MAX_REPLICA_ID_LEN || !valid_chars {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "replica id `{replica_id}` must be 1 to {MAX_REPLICA_ID_LEN} letters, digits, \
                 `-` or `_`"
            ),
        ));
    }
    Ok(())
}

impl Dispatchers {
    /// Opens both buckets. On a handle that manages the topology ([`Nats::connect`]: `herald
    /// migrate`, `herald dev` and `herald all`, tests) it creates or updates them first (history
    /// 1, the events stream's replicas and storage; members with `max_age` = `lease_ttl`); on
    /// one that does not ([`Nats::connect_existing`]) it only opens what migrate made, and
    /// refuses a members bucket whose `max_age` is shorter than `lease_ttl`.
    ///
    /// Every replica must use the same `lease_ttl`: a replica whose lease is longer than the
    /// bucket's `max_age` would believe in its membership after the server dropped it.
    pub async fn open(nats: &Nats, lease_ttl: Duration) -> Result<Dispatchers> {
        if lease_ttl < MIN_LEASE_TTL {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("the lease ttl must be at least {MIN_LEASE_TTL:?}, not {lease_ttl:?}"),
            ));
        }
        if !nats.manages_topology {
            return Dispatchers::open_existing(nats, lease_ttl).await;
        }
        let events = &nats.events.cached_info().config;
        let members = nats
            .jetstream
            .create_or_update_key_value(members_config(events, lease_ttl))
            .await
            .map_err(Error::unavailable(
                "failed to create or update the dispatchers bucket",
            ))?;
        let claims = nats
            .jetstream
            .create_or_update_key_value(claims_config(events))
            .await
            .map_err(Error::unavailable(
                "failed to create or update the claims bucket",
            ))?;
        Ok(Dispatchers { members, claims })
    }

    /// Opens the buckets `herald migrate` created, refusing a members bucket whose `max_age`
    /// is shorter than `lease_ttl` (the server would drop a membership this replica still
    /// believes in).
    async fn open_existing(nats: &Nats, lease_ttl: Duration) -> Result<Dispatchers> {
        let members = nats
            .jetstream
            .get_key_value(MEMBERS_BUCKET)
            .await
            .map_err(Error::unavailable("failed to open the dispatchers bucket"))?;
        let max_age = nats
            .stream_settings(&format!("KV_{MEMBERS_BUCKET}"))
            .await?
            .max_age;
        if let Some(problem) = lease_problem(max_age, lease_ttl) {
            return Err(Error::new(ErrorCode::InvalidArgument, problem));
        }
        let claims = nats
            .jetstream
            .get_key_value(CLAIMS_BUCKET)
            .await
            .map_err(Error::unavailable("failed to open the claims bucket"))?;
        Ok(Dispatchers { members, claims })
    }

    /// Writes a new member entry; returns its revision. `Aborted` if it exists already.
    pub async fn join(&self, member: &MemberId) -> Result<u64> {
        let key = member_key(member)?;
        self.members
            .create(&key, member_value(member)?)
            .await
            .map_err(|err| match err.kind() {
                kv::CreateErrorKind::AlreadyExists => {
                    Error::new(ErrorCode::Aborted, format!("member {key} exists already"))
                }
                _ => Error::unavailable("failed to write the member entry")(err),
            })
    }

    /// Rewrites a member entry if it is still at `expected_revision`, which restarts its age;
    /// returns the new revision. `Aborted` when the entry expired or was deleted since: the
    /// membership lapsed and must not be renewed.
    pub async fn renew(&self, member: &MemberId, expected_revision: u64) -> Result<u64> {
        let key = member_key(member)?;
        self.members
            .update(&key, member_value(member)?, expected_revision)
            .await
            .map_err(|err| match err.kind() {
                kv::UpdateErrorKind::WrongLastRevision => Error::new(
                    ErrorCode::Aborted,
                    format!("member {key} is no longer at revision {expected_revision}"),
                ),
                _ => Error::unavailable("failed to rewrite the member entry")(err),
            })
    }

    /// Deletes a member entry (a graceful leave); deleting an expired one succeeds.
    pub async fn leave(&self, member: &MemberId) -> Result<()> {
        let key = member_key(member)?;
        self.members
            .delete(&key)
            .await
            .map_err(Error::unavailable("failed to delete the member entry"))
    }

    /// Lists the live members, read from the stream leader: an entry that expired or was
    /// deleted before the listing began is not in it.
    pub async fn members(&self) -> Result<Vec<MemberId>> {
        let keys: Vec<String> = self
            .members
            .keys()
            .await
            .map_err(Error::unavailable("failed to list dispatcher members"))?
            .try_collect()
            .await
            .map_err(Error::unavailable("failed to list dispatcher members"))?;
        let mut members: Vec<MemberId> = keys
            .iter()
            .filter_map(|key| parse_member_key(key))
            .collect();
        members.sort();
        Ok(members)
    }

    /// Streams membership changes from now on (writes and deletes, never expiry).
    pub async fn watch_members(
        &self,
    ) -> Result<impl Stream<Item = Result<MemberChange>> + Send + use<>> {
        let watch = self
            .members
            .watch(format!("{MEMBER_PREFIX}>"))
            .await
            .map_err(Error::unavailable("failed to watch dispatcher members"))?;
        Ok(watch.filter_map(|entry| async move {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => return Some(Err(Error::unavailable("member watch failed")(err))),
            };
            let member = parse_member_key(&entry.key)?;
            match entry.operation {
                kv::Operation::Put => Some(Ok(MemberChange::Written(member))),
                kv::Operation::Delete | kv::Operation::Purge => {
                    Some(Ok(MemberChange::Deleted(member)))
                }
            }
        }))
    }

    /// Reads a subscription's claim; `None` when it was never claimed.
    pub async fn claim(&self, id: &WorkId) -> Result<Option<ClaimEntry>> {
        let entry = self
            .claims
            .entry(claim_key(id))
            .await
            .map_err(Error::unavailable("failed to read the claim"))?;
        Ok(entry.and_then(|entry| claim_entry(&entry)))
    }

    /// Claims a subscription that was never claimed or whose claim was released; returns the
    /// claim's revision. `Aborted` when it is held.
    pub async fn create_claim(&self, id: &WorkId, claim: &Claim) -> Result<u64> {
        self.claims
            .create(claim_key(id), claim_value(claim)?)
            .await
            .map_err(|err| match err.kind() {
                kv::CreateErrorKind::AlreadyExists => Error::new(
                    ErrorCode::Aborted,
                    format!("subscription {id} is claimed already"),
                ),
                _ => Error::unavailable("failed to write the claim")(err),
            })
    }

    /// Replaces a claim (released, or held by a member that is gone) if it is still at
    /// `expected_revision`; returns the new revision. `Aborted` when it changed.
    pub async fn update_claim(
        &self,
        id: &WorkId,
        claim: &Claim,
        expected_revision: u64,
    ) -> Result<u64> {
        self.claims
            .update(claim_key(id), claim_value(claim)?, expected_revision)
            .await
            .map_err(|err| match err.kind() {
                kv::UpdateErrorKind::WrongLastRevision => Error::new(
                    ErrorCode::Aborted,
                    format!("the claim of {id} changed since revision {expected_revision}"),
                ),
                _ => Error::unavailable("failed to write the claim")(err),
            })
    }

    /// Releases a claim if it is still at `expected_revision`. `Aborted` when it changed.
    pub async fn delete_claim(&self, id: &WorkId, expected_revision: u64) -> Result<()> {
        self.claims
            .delete_expect_revision(claim_key(id), Some(expected_revision))
            .await
            .map_err(|err| match err.kind() {
                kv::UpdateErrorKind::WrongLastRevision => Error::new(
                    ErrorCode::Aborted,
                    format!("the claim of {id} changed since revision {expected_revision}"),
                ),
                _ => Error::unavailable("failed to release the claim")(err),
            })
    }

    /// Streams the current state of every claim, then every later change.
    pub async fn watch_claims(
        &self,
    ) -> Result<impl Stream<Item = Result<ClaimEntry>> + Send + use<>> {
        let watch = self
            .claims
            .watch_with_history(format!("{CLAIM_PREFIX}>"))
            .await
            .map_err(Error::unavailable("failed to watch claims"))?;
        Ok(watch.filter_map(|entry| async move {
            match entry {
                Ok(entry) => claim_entry(&entry).map(Ok),
                Err(err) => Some(Err(Error::unavailable("claim watch failed")(err))),
            }
        }))
    }
}

fn member_key(member: &MemberId) -> Result<String> {
    validate_replica_id(&member.replica_id)?;
    Ok(format!(
        "{MEMBER_PREFIX}{}.{}",
        member.replica_id, member.epoch
    ))
}

fn parse_member_key(key: &str) -> Option<MemberId> {
    let (replica_id, epoch) = key.strip_prefix(MEMBER_PREFIX)?.rsplit_once('.')?;
    validate_replica_id(replica_id).ok()?;
    Some(MemberId {
        replica_id: replica_id.to_owned(),
        epoch: epoch.parse().ok()?,
    })
}

fn member_value(member: &MemberId) -> Result<Bytes> {
    let record = MemberRecord {
        replica_id: &member.replica_id,
        epoch: member.epoch,
        written_at: OffsetDateTime::now_utc(),
    };
    serde_json::to_vec(&record).map(Bytes::from).map_err(|err| {
        Error::new(
            ErrorCode::Internal,
            format!("failed to serialize a member entry: {err}"),
        )
    })
}

fn claim_key(id: &WorkId) -> String {
    format!("{CLAIM_PREFIX}{id}")
}

fn claim_value(claim: &Claim) -> Result<Bytes> {
    serde_json::to_vec(claim).map(Bytes::from).map_err(|err| {
        Error::new(
            ErrorCode::Internal,
            format!("failed to serialize a claim: {err}"),
        )
    })
}

/// Returns the claim an entry holds; `None` for keys that name no subscription.
fn claim_entry(entry: &kv::Entry) -> Option<ClaimEntry> {
    let work = entry
        .key
        .strip_prefix(CLAIM_PREFIX)
        .and_then(|id| WorkId::parse(id).ok())?;
    let state = match entry.operation {
        kv::Operation::Delete | kv::Operation::Purge => ClaimState::Released,
        kv::Operation::Put => match serde_json::from_slice(&entry.value) {
            Ok(claim) => ClaimState::Held(claim),
            Err(err) => {
                tracing::warn!(%work, error = %err, "unreadable claim");
                ClaimState::Unreadable
            }
        },
    };
    Some(ClaimEntry {
        work,
        state,
        revision: entry.revision,
    })
}
