//! Conversions between `herald.v1` messages and `herald-core` types, used at the gRPC edge.
//!
//! Converting a filter only checks what the wire format cannot express (a filter without a
//! dialect); what a valid filter is stays `herald_core::filter::validate`'s decision. Error paths
//! use the same notation as the core validator (`filters[1].any[0]`), so a caller sees one
//! consistent way of naming the offending expression.

use herald_core::filter::FilterError;
use herald_core::{Filter, Subscription};
use time::OffsetDateTime;

use crate::v1 as pb;

#[cfg(test)]
mod tests;

/// The only delivery protocol Herald speaks, as `Subscription.protocol` names it.
pub const PROTOCOL_HTTP: &str = "HTTP";

/// Whether a converted subscription carries its signing secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretVisibility {
    /// Include the secret: only in the answer to `CreateSubscription`.
    Reveal,
    /// Leave `secret` empty: every other answer.
    Omit,
}

/// Returns the wire form of a stored subscription at `revision`, with its effective retry
/// policy, delivery settings and state; `health` is left unset for the caller to fill.
pub fn subscription_to_pb(
    subscription: &Subscription,
    revision: u64,
    secret: SecretVisibility,
) -> pb::Subscription {
    let secret = match secret {
        SecretVisibility::Reveal => subscription.secret.expose().to_owned(),
        SecretVisibility::Omit => String::new(),
    };
    let (state, state_reason, state_change_time) =
        crate::delivery::state_to_pb(&subscription.state);
    pb::Subscription {
        id: subscription.id.to_string(),
        sink: subscription.sink.as_str().to_owned(),
        filters: filters_to_pb(&subscription.filters),
        secret,
        description: subscription.description.clone(),
        create_time: Some(timestamp_to_pb(subscription.created_at)),
        update_time: Some(timestamp_to_pb(subscription.updated_at)),
        revision,
        protocol: PROTOCOL_HTTP.to_owned(),
        retry_policy: Some(crate::delivery::retry_policy_to_pb(
            &subscription.retry_policy,
        )),
        state: state as i32,
        state_reason,
        state_change_time,
        health: None,
        delivery: Some(crate::delivery::delivery_settings_to_pb(
            &subscription.delivery,
        )),
        signature_scheme: scheme_to_pb(subscription.secret.scheme()) as i32,
        public_key: subscription.secret.public_key().unwrap_or_default(),
        retired_secrets: subscription
            .retired_secrets
            .iter()
            .map(|retired| pb::RetiredSecret {
                signature_scheme: scheme_to_pb(retired.secret.scheme()) as i32,
                public_key: retired.secret.public_key().unwrap_or_default(),
                expire_time: Some(timestamp_to_pb(retired.valid_until)),
            })
            .collect(),
        warnings: Vec::new(),
        consent: crate::consent::consent_mode_to_pb(subscription.consent) as i32,
        endpoint_consent: subscription
            .endpoint_consent
            .as_ref()
            .map(|consent| crate::consent::endpoint_consent_to_pb(consent, &subscription.sink)),
        tenant: subscription.tenant.to_string(),
        header_names: subscription
            .headers
            .iter()
            .map(|header| header.name.clone())
            .collect(),
        client_certificate: subscription
            .client_certificate
            .as_ref()
            .map(client_certificate_info_to_pb),
    }
}

/// What answers show of a client certificate: its fingerprint, subject and expiry, never its
/// key.
pub fn client_certificate_info_to_pb(
    certificate: &herald_core::subscription::ClientCertificate,
) -> pb::ClientCertificateInfo {
    pb::ClientCertificateInfo {
        fingerprint_sha256: certificate.fingerprint.clone(),
        subject: certificate.subject.clone(),
        not_after: Some(timestamp_to_pb(certificate.not_after)),
    }
}

/// Converts a request's custom headers; [`herald_core::subscription::headers::validate`] checks
/// them with the rest of the subscription.
pub fn custom_headers_from_pb(
    headers: &[pb::CustomHeader],
) -> Vec<herald_core::subscription::CustomHeader> {
    headers
        .iter()
        .map(|header| {
            herald_core::subscription::CustomHeader::new(header.name.clone(), header.value.clone())
        })
        .collect()
}

/// Returns the wire form of a signature scheme.
pub fn scheme_to_pb(scheme: herald_core::subscription::Scheme) -> pb::SignatureScheme {
    match scheme {
        herald_core::subscription::Scheme::V1 => pb::SignatureScheme::V1,
        herald_core::subscription::Scheme::V1a => pb::SignatureScheme::V1a,
    }
}

/// Converts a request's signature scheme; `None` when unspecified, an error naming `field`
/// when unknown.
pub fn scheme_from_pb(
    value: i32,
    field: &str,
) -> Result<Option<herald_core::subscription::Scheme>, herald_core::subscription::SubscriptionError>
{
    match pb::SignatureScheme::try_from(value) {
        Ok(pb::SignatureScheme::Unspecified) => Ok(None),
        Ok(pb::SignatureScheme::V1) => Ok(Some(herald_core::subscription::Scheme::V1)),
        Ok(pb::SignatureScheme::V1a) => Ok(Some(herald_core::subscription::Scheme::V1a)),
        Err(_) => Err(herald_core::subscription::SubscriptionError::new(
            field,
            format!("unknown signature scheme {value}"),
        )),
    }
}

/// Converts a request's filter list, naming the offending entry `filters[<index>]...`.
pub fn filters_from_pb(filters: &[pb::Filter]) -> Result<Vec<Filter>, FilterError> {
    filters
        .iter()
        .enumerate()
        .map(|(index, filter)| filter_from_pb(filter, &format!("filters[{index}]")))
        .collect()
}

/// Converts a filter list to its wire form.
pub fn filters_to_pb(filters: &[Filter]) -> Vec<pb::Filter> {
    filters.iter().map(pb::Filter::from).collect()
}

/// Returns the wire form of an instant.
pub fn timestamp_to_pb(instant: OffsetDateTime) -> prost_types::Timestamp {
    // Seconds and nanoseconds of the same instant: `time`'s range fits an i64 of seconds, and
    // sub-second nanoseconds are below 10^9.
    let seconds = instant.unix_timestamp();
    let subsec_nanos = instant.nanosecond();
    prost_types::Timestamp {
        seconds,
        nanos: i32::try_from(subsec_nanos).unwrap_or(999_999_999),
    }
}

/// Returns the instant a wire timestamp denotes, or an error when it is out of range.
pub fn timestamp_from_pb(
    timestamp: &prost_types::Timestamp,
) -> Result<OffsetDateTime, time::error::ComponentRange> {
    let nanos = i128::from(timestamp.seconds) * 1_000_000_000 + i128::from(timestamp.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
}

impl TryFrom<&pb::Filter> for Filter {
    type Error = FilterError;

    /// Converts one filter; errors name its parts from `filter` (`filter.any[0]`).
    fn try_from(filter: &pb::Filter) -> Result<Filter, FilterError> {
        filter_from_pb(filter, "filter")
    }
}

impl TryFrom<pb::Filter> for Filter {
    type Error = FilterError;

    fn try_from(filter: pb::Filter) -> Result<Filter, FilterError> {
        Filter::try_from(&filter)
    }
}

impl From<&Filter> for pb::Filter {
    fn from(filter: &Filter) -> pb::Filter {
        use pb::filter::Dialect;
        let attributes = |pairs: &std::collections::BTreeMap<String, String>| pb::AttributeFilter {
            attributes: pairs.clone(),
        };
        let list = |filters: &[Filter]| pb::FilterList {
            filters: filters_to_pb(filters),
        };
        let dialect = match filter {
            Filter::Exact(pairs) => Dialect::Exact(attributes(pairs)),
            Filter::Prefix(pairs) => Dialect::Prefix(attributes(pairs)),
            Filter::Suffix(pairs) => Dialect::Suffix(attributes(pairs)),
            Filter::All(filters) => Dialect::All(list(filters)),
            Filter::Any(filters) => Dialect::Any(list(filters)),
            Filter::Not(filter) => Dialect::Not(Box::new(pb::Filter::from(filter.as_ref()))),
            Filter::Sql(expression) => Dialect::Sql(expression.clone()),
            Filter::Cel(expression) => Dialect::Cel(expression.clone()),
        };
        pb::Filter {
            dialect: Some(dialect),
        }
    }
}

impl From<Filter> for pb::Filter {
    fn from(filter: Filter) -> pb::Filter {
        pb::Filter::from(&filter)
    }
}

fn filter_from_pb(filter: &pb::Filter, path: &str) -> Result<Filter, FilterError> {
    use pb::filter::Dialect;
    let Some(dialect) = &filter.dialect else {
        return Err(FilterError {
            path: path.to_owned(),
            reason: "empty dialect: set one of exact, prefix, suffix, all, any, not, sql, cel"
                .to_owned(),
        });
    };
    let list = |name: &str, list: &pb::FilterList| -> Result<Vec<Filter>, FilterError> {
        list.filters
            .iter()
            .enumerate()
            .map(|(index, nested)| filter_from_pb(nested, &format!("{path}.{name}[{index}]")))
            .collect()
    };
    let filter = match dialect {
        Dialect::Exact(pairs) => Filter::Exact(pairs.attributes.clone()),
        Dialect::Prefix(pairs) => Filter::Prefix(pairs.attributes.clone()),
        Dialect::Suffix(pairs) => Filter::Suffix(pairs.attributes.clone()),
        Dialect::All(filters) => Filter::All(list("all", filters)?),
        Dialect::Any(filters) => Filter::Any(list("any", filters)?),
        Dialect::Not(nested) => {
            Filter::Not(Box::new(filter_from_pb(nested, &format!("{path}.not"))?))
        }
        Dialect::Sql(expression) => Filter::Sql(expression.clone()),
        Dialect::Cel(expression) => Filter::Cel(expression.clone()),
    };
    Ok(filter)
}
