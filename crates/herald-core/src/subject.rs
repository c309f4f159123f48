//! The NATS subject scheme: where each event lives in JetStream and how a subscription's
//! filters become server-side filter subjects.
//!
//! An event of the default tenant is stored on `herald.events.<partition>.<type tokens>`, and
//! an event of tenant `t` on `herald.t.<t>.<partition>.<type tokens>`: each tenant has a root of
//! its own ([`events_root`]), so a subscription's consumer filters on its tenant's root only and
//! NATS never hands it another tenant's event. The default tenant's root is `herald.events`, as
//! it was before tenants had subjects, so its subscriptions, consumers and stored events are
//! unchanged. `herald.t.default.…` is no root: the events stream stores what is published there
//! on `herald.events.…` ([`DEFAULT_TENANT_WILDCARD`]).
//! - `<partition>` is a decimal in `0..PARTITIONS`, the FNV-1a hash of the event's ordering key
//!   (the `partitionkey` extension) modulo [`PARTITIONS`]; events without a key use the hash of
//!   their message id, spreading them evenly. Ordered delivery consumes one partition at a time.
//! - `<type tokens>` is the event type split on `.`, each part encoded with [`encode_token`], so
//!   `com.shop.order.created` is stored on `herald.events.3.com.shop.order.created`. A prefix
//!   filter that ends on a dot (`com.shop.`) becomes `herald.events.*.com.shop.>`, and JetStream
//!   hands the consumer only those events.
//!
//! This module is pure: it builds strings; `herald-nats` uses them.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::credential::{DEFAULT_TENANT, TenantId};
use crate::filter::Filter;

#[cfg(test)]
mod tests;

/// The root of every subject Herald uses.
pub const ROOT: &str = "herald";

/// The root of the default tenant's events, and of every event stored before tenants had
/// subjects of their own.
pub const EVENTS_ROOT: &str = "herald.events";

/// The default tenant's events: `herald.events.>`.
pub const EVENTS_WILDCARD: &str = "herald.events.>";

/// The prefix of every tenant's root but the default one's: `herald.t.<tenant>`.
pub const TENANTS_PREFIX: &str = "herald.t";

/// Every tenant's events but the default tenant's: `herald.t.>`, the events stream's second
/// event subject.
pub const TENANTS_WILDCARD: &str = "herald.t.>";

/// `herald.t.default.>`: no root, as the default tenant's is `herald.events`. The events stream
/// stores what is published there on `herald.events.>` (a subject transform), so a direct
/// producer of the default tenant that publishes on it loses nothing.
pub const DEFAULT_TENANT_WILDCARD: &str = "herald.t.default.>";

/// The number of ordering partitions of the events stream. Part of the subject scheme: changing
/// it moves keys between partitions.
pub const PARTITIONS: u32 = 16;

/// Longest subject accepted for an event, in bytes; longer event types are refused at ingest.
pub const MAX_SUBJECT_LEN: usize = 1024;

/// Returns the partition of an ordering key.
pub fn partition_of(key: &str) -> u32 {
    // FNV-1a, 32 bit: tiny, stable across versions and languages, documented for producers.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % PARTITIONS
}

/// Returns a subject token naming an ordering key: 32 hex digits, the first 128 bits of SHA-256
/// over the key. Keys are free text of any length, so they cannot be subject tokens themselves;
/// at 128 bits two keys of one subscription never share a token in practice.
pub fn key_token(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    let mut token = String::with_capacity(32);
    crate::digest::push_hex(&mut token, digest.get(..16).unwrap_or_default());
    token
}

/// Returns the root of `tenant`'s event subjects: `herald.events` for the default tenant,
/// `herald.t.<tenant>` for any other (a tenant id is always one valid subject token).
pub fn events_root(tenant: &TenantId) -> String {
    if tenant.as_str() == DEFAULT_TENANT {
        EVENTS_ROOT.to_owned()
    } else {
        format!("{TENANTS_PREFIX}.{tenant}")
    }
}

/// Returns every subject of `tenant`'s events: `<root>.>`.
pub fn events_wildcard(tenant: &TenantId) -> String {
    format!("{}.>", events_root(tenant))
}

/// Returns the subject an event of the default tenant of type `event_type` in `partition` is
/// stored on, or `None` when the encoded subject would exceed [`MAX_SUBJECT_LEN`].
pub fn event_subject(partition: u32, event_type: &str) -> Option<String> {
    subject_under(EVENTS_ROOT, &partition.to_string(), event_type)
}

/// Returns the subject an event of `tenant` of type `event_type` in `partition` is stored on,
/// under the tenant's root ([`events_root`]), or `None` when it would exceed
/// [`MAX_SUBJECT_LEN`].
pub fn tenant_event_subject(tenant: &TenantId, partition: u32, event_type: &str) -> Option<String> {
    subject_under(&events_root(tenant), &partition.to_string(), event_type)
}

/// `<root>.<partition token>.<type tokens>`, if it fits.
fn subject_under(root: &str, partition: &str, event_type: &str) -> Option<String> {
    let mut subject = format!("{root}.{partition}");
    for token in event_type.split('.') {
        subject.push('.');
        encode_token_into(token, &mut subject);
    }
    (subject.len() <= MAX_SUBJECT_LEN).then_some(subject)
}

/// Splits an events subject into its root (`herald.events` or `herald.t.<tenant>`) and what
/// follows the root's dot; `None` for any other subject (`herald.redeliver.…`).
pub fn split_root(subject: &str) -> Option<(&str, &str)> {
    if let Some(rest) = subject.strip_prefix("herald.events.") {
        return Some((EVENTS_ROOT, rest));
    }
    let tenant_and_rest = subject.strip_prefix("herald.t.")?;
    let (tenant, rest) = tenant_and_rest.split_once('.')?;
    if tenant.is_empty() {
        return None;
    }
    let root_len = "herald.t.".len() + tenant.len();
    Some((subject.get(..root_len)?, rest))
}

/// The tenant of an event stored on `subject` whose `Herald-Tenant` header is `header`, or
/// `None` when the subject is no events subject or the two disagree.
///
/// On a tenant's root (`herald.t.<t>.…`) the subject is the proof, as a producer key is at
/// ingest: NATS permissions let only that tenant's producers publish there, so an event without
/// the header (a direct NATS producer's) is the subject's tenant's, and a header naming another
/// tenant makes the event nobody's. On `herald.events.…` the header decides, and none means the
/// default tenant (direct NATS producers, bootstrap tokens, and events a tenant's key published
/// before tenants had subjects).
pub fn tenant_of<'a>(subject: &'a str, header: Option<&'a str>) -> Option<&'a str> {
    let (root, _rest) = split_root(subject)?;
    match root.strip_prefix("herald.t.") {
        Some(tenant) => match header {
            Some(named) if named != tenant => None,
            _ => Some(tenant),
        },
        None => Some(header.unwrap_or(DEFAULT_TENANT)),
    }
}

/// Recovers the event type from an event subject, under either root.
pub fn event_type_of(subject: &str) -> Option<String> {
    let (_root, rest) = split_root(subject)?;
    let (_partition, type_tokens) = rest.split_once('.')?;
    let mut event_type = String::with_capacity(type_tokens.len());
    for (index, token) in type_tokens.split('.').enumerate() {
        if index > 0 {
            event_type.push('.');
        }
        event_type.push_str(&decode_token(token)?);
    }
    Some(event_type)
}

/// Encodes one dot-free part of an event type as a NATS subject token.
///
/// ASCII letters, digits and `-` stand for themselves; every other byte is written `_HH` (two
/// upper-case hex digits); the empty part is the lone token `_`. The encoding is reversible and
/// never produces `.`, `*`, `>` or whitespace, which NATS reserves.
pub fn encode_token(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    encode_token_into(part, &mut out);
    out
}

fn encode_token_into(part: &str, out: &mut String) {
    if part.is_empty() {
        out.push('_');
        return;
    }
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "_{byte:02X}");
        }
    }
}

/// Decodes a token written by [`encode_token`].
pub fn decode_token(token: &str) -> Option<String> {
    if token == "_" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'_' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Derives the narrowest complete set of JetStream filter subjects for a default-tenant
/// subscription's filters (see [`tenant_filter_subjects`]).
pub fn filter_subjects(filters: &[Filter]) -> Vec<String> {
    filter_subjects_under(EVENTS_ROOT, filters)
}

/// Derives the narrowest complete set of JetStream filter subjects for the filters of a
/// subscription of `tenant`, all under the tenant's root ([`events_root`]), so its consumer is
/// never handed another tenant's event.
///
/// Complete means every event the filters can match is on one of the subjects; the dispatcher
/// still evaluates the filters on what it receives. Type `exact` and `prefix` filters at the top
/// level or under `all` narrow the set; an `any` of type filters yields one subject per branch.
/// Everything else leaves the whole stream. The result has no overlapping subjects, which
/// JetStream refuses in a consumer's `filter_subjects`.
pub fn tenant_filter_subjects(tenant: &TenantId, filters: &[Filter]) -> Vec<String> {
    filter_subjects_under(&events_root(tenant), filters)
}

fn filter_subjects_under(root: &str, filters: &[Filter]) -> Vec<String> {
    let everything = || vec![format!("{root}.>")];
    let scope = scope_of_all(filters);
    let patterns = match scope {
        TypeScope::Unconstrained => return everything(),
        TypeScope::OneOf(patterns) => patterns,
    };
    let mut subjects: BTreeSet<String> = BTreeSet::new();
    for pattern in patterns {
        match pattern {
            TypePattern::Exact(event_type) => {
                match subject_under(root, "*", &event_type) {
                    Some(subject) => subjects.insert(subject),
                    // Too long to store: no event can have this type; keep the set complete
                    // without a subject JetStream would refuse.
                    None => continue,
                };
            }
            TypePattern::Prefix(prefix) => {
                let Some((complete, _partial)) = prefix.rsplit_once('.') else {
                    return everything();
                };
                let mut subject = format!("{root}.*");
                for token in complete.split('.') {
                    subject.push('.');
                    encode_token_into(token, &mut subject);
                }
                subject.push_str(".>");
                if subject.len() > MAX_SUBJECT_LEN {
                    continue;
                }
                subjects.insert(subject);
            }
        }
    }
    let subjects = remove_overlaps(subjects);
    if subjects.is_empty() {
        return everything();
    }
    subjects
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TypePattern {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TypeScope {
    /// Any event type may match.
    Unconstrained,
    /// Only types matching one of these patterns may match.
    OneOf(Vec<TypePattern>),
}

fn scope_of_all(filters: &[Filter]) -> TypeScope {
    // All must match, so any constrained member bounds the whole; pick the narrowest one:
    // fewest patterns, exact types before prefixes.
    filters
        .iter()
        .filter_map(|filter| match scope_of(filter) {
            TypeScope::Unconstrained => None,
            TypeScope::OneOf(patterns) => Some(patterns),
        })
        .min_by_key(|patterns| {
            let num_prefixes = patterns
                .iter()
                .filter(|p| matches!(p, TypePattern::Prefix(_)));
            (patterns.len(), num_prefixes.count())
        })
        .map_or(TypeScope::Unconstrained, TypeScope::OneOf)
}

fn scope_of(filter: &Filter) -> TypeScope {
    match filter {
        Filter::Exact(attributes) => match attributes.get("type") {
            Some(event_type) => TypeScope::OneOf(vec![TypePattern::Exact(event_type.clone())]),
            None => TypeScope::Unconstrained,
        },
        Filter::Prefix(attributes) => match attributes.get("type") {
            Some(prefix) => TypeScope::OneOf(vec![TypePattern::Prefix(prefix.clone())]),
            None => TypeScope::Unconstrained,
        },
        Filter::All(filters) => scope_of_all(filters),
        Filter::Any(filters) => {
            let mut union = Vec::new();
            for filter in filters {
                match scope_of(filter) {
                    TypeScope::Unconstrained => return TypeScope::Unconstrained,
                    TypeScope::OneOf(patterns) => union.extend(patterns),
                }
            }
            TypeScope::OneOf(union)
        }
        // Expressions could constrain the type, but reading that out of them soundly is not
        // worth the risk of excluding a matching event.
        Filter::Suffix(_) | Filter::Not(_) | Filter::Sql(_) | Filter::Cel(_) => {
            TypeScope::Unconstrained
        }
    }
}

/// Drops every subject that another subject of the set already covers.
fn remove_overlaps(subjects: BTreeSet<String>) -> Vec<String> {
    let all: Vec<String> = subjects.into_iter().collect();
    all.iter()
        .filter(|candidate| {
            !all.iter()
                .any(|other| other != *candidate && subject_covers(other, candidate))
        })
        .cloned()
        .collect()
}

/// Returns true when every subject matched by `narrow` is matched by `wide`.
pub fn subject_covers(wide: &str, narrow: &str) -> bool {
    let wide_tokens: Vec<&str> = wide.split('.').collect();
    let narrow_tokens: Vec<&str> = narrow.split('.').collect();
    for (index, wide_token) in wide_tokens.iter().enumerate() {
        if *wide_token == ">" {
            return narrow_tokens.len() > index;
        }
        let Some(narrow_token) = narrow_tokens.get(index) else {
            return false;
        };
        let token_covered =
            *wide_token == "*" && *narrow_token != ">" || wide_token == narrow_token;
        if !token_covered {
            return false;
        }
    }
    wide_tokens.len() == narrow_tokens.len()
}
