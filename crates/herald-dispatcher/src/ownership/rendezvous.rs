//! Rendezvous (highest random weight) hashing: every replica computes each subscription's
//! preferred owner from the same member list, so a join or a leave moves only the
//! subscriptions that hash to the member that came or went.
//!
//! The score is part of the replicas' shared contract: replicas that computed it differently
//! would each prefer themselves. It is FNV-1a 64 over the replica id, a `0xff` byte (which
//! neither id contains) and the subscription id, followed by MurmurHash3's 64-bit finalizer so
//! that ids differing only in their last characters still spread over the whole range. No I/O.

use herald_core::WorkId;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Returns the weight of `replica_id` for `work` (a subscription, hashed by its id, or a part
/// of one, by `WorkId::name`); the highest weight wins.
pub(super) fn score(replica_id: &str, work: &WorkId) -> u64 {
    let name = work.name();
    let bytes = replica_id
        .as_bytes()
        .iter()
        .chain(std::iter::once(&0xff))
        .chain(name.as_bytes());
    let mut hash = FNV_OFFSET_BASIS;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    finalize(hash)
}

/// Returns the member that should own `subscription_id`: the highest score, ties broken by the
/// greater replica id; `None` when there are no members.
pub(super) fn preferred<'a>(
    replica_ids: impl IntoIterator<Item = &'a str>,
    subscription_id: &WorkId,
) -> Option<&'a str> {
    replica_ids
        .into_iter()
        .max_by_key(|replica_id| (score(replica_id, subscription_id), *replica_id))
}

/// MurmurHash3's `fmix64`.
fn finalize(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}
