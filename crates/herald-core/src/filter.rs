//! Subscription filters: the CloudEvents Subscriptions API filter dialects (section 3.2.4).
//!
//! A subscription holds a list of filters, all of which must match. The `exact`, `prefix` and
//! `suffix` dialects compare attributes by their canonical string form; `all`, `any` and `not`
//! compose them. The serde form of [`Filter`] is the specification's JSON encoding
//! (`{"exact": {"type": "com.example"}}`) and is what Herald stores.
//!
//! Filters are validated once, when a subscription is created or updated, and then only
//! evaluated. No I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Attributes;
use crate::subject;

#[cfg(test)]
mod tests;

/// Deepest nesting of `all`, `any` and `not` accepted.
pub const MAX_DEPTH: usize = 32;

/// One filter expression, in one dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// Every named attribute equals its value (case sensitive).
    Exact(BTreeMap<String, String>),
    /// Every named attribute starts with its value.
    Prefix(BTreeMap<String, String>),
    /// Every named attribute ends with its value.
    Suffix(BTreeMap<String, String>),
    /// Every nested filter matches (at least one).
    All(Vec<Filter>),
    /// At least one nested filter matches.
    Any(Vec<Filter>),
    /// The nested filter does not match.
    Not(Box<Filter>),
}

/// Why a filter was refused, with the path of the offending expression (`filters[1].any[0]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FilterError {
    pub path: String,
    pub reason: String,
}

impl Filter {
    /// Returns true when the event's attributes satisfy this filter.
    pub fn matches(&self, attributes: &Attributes) -> bool {
        match self {
            Filter::Exact(expected) => expected.iter().all(|(name, value)| {
                attributes
                    .get(name)
                    .is_some_and(|actual| actual.as_ref() == value)
            }),
            Filter::Prefix(expected) => expected.iter().all(|(name, value)| {
                attributes
                    .get(name)
                    .is_some_and(|actual| actual.starts_with(value.as_str()))
            }),
            Filter::Suffix(expected) => expected.iter().all(|(name, value)| {
                attributes
                    .get(name)
                    .is_some_and(|actual| actual.ends_with(value.as_str()))
            }),
            Filter::All(filters) => filters.iter().all(|filter| filter.matches(attributes)),
            Filter::Any(filters) => filters.iter().any(|filter| filter.matches(attributes)),
            Filter::Not(filter) => !filter.matches(attributes),
        }
    }

    /// Returns a filter on one attribute value, the most common case (`exact` on `type`).
    pub fn exact(attribute: &str, value: &str) -> Filter {
        Filter::Exact(BTreeMap::from([(attribute.to_owned(), value.to_owned())]))
    }

    /// Returns a prefix filter on one attribute.
    pub fn prefix(attribute: &str, value: &str) -> Filter {
        Filter::Prefix(BTreeMap::from([(attribute.to_owned(), value.to_owned())]))
    }

    fn validate(&self, path: &str, depth: usize) -> Result<(), FilterError> {
        let error = |reason: &str| FilterError {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if depth > MAX_DEPTH {
            return Err(error("filters are nested too deeply"));
        }
        match self {
            Filter::Exact(pairs) | Filter::Prefix(pairs) | Filter::Suffix(pairs) => {
                let dialect = self.dialect();
                if pairs.is_empty() {
                    return Err(error(&format!("{dialect} needs at least one attribute")));
                }
                for (name, value) in pairs {
                    let valid_name = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
                    if !valid_name {
                        return Err(FilterError {
                            path: format!("{path}.{dialect}"),
                            reason: format!(
                                "attribute name `{name}` must be lower-case ASCII letters and digits"
                            ),
                        });
                    }
                    if value.is_empty() {
                        return Err(FilterError {
                            path: format!("{path}.{dialect}.{name}"),
                            reason: "value must not be empty".to_owned(),
                        });
                    }
                    if name == "type" && subject::event_subject(0, value).is_none() {
                        return Err(FilterError {
                            path: format!("{path}.{dialect}.{name}"),
                            reason: "value is longer than any event type Herald accepts".to_owned(),
                        });
                    }
                }
                Ok(())
            }
            Filter::All(filters) | Filter::Any(filters) => {
                let dialect = self.dialect();
                if filters.is_empty() {
                    return Err(error(&format!("{dialect} needs at least one filter")));
                }
                for (index, filter) in filters.iter().enumerate() {
                    filter.validate(&format!("{path}.{dialect}[{index}]"), depth + 1)?;
                }
                Ok(())
            }
            Filter::Not(filter) => filter.validate(&format!("{path}.not"), depth + 1),
        }
    }

    /// Returns the dialect name, as the specification spells it.
    pub fn dialect(&self) -> &'static str {
        match self {
            Filter::Exact(_) => "exact",
            Filter::Prefix(_) => "prefix",
            Filter::Suffix(_) => "suffix",
            Filter::All(_) => "all",
            Filter::Any(_) => "any",
            Filter::Not(_) => "not",
        }
    }
}

/// Validates a subscription's filter list; an empty list matches every event.
pub fn validate(filters: &[Filter]) -> Result<(), FilterError> {
    for (index, filter) in filters.iter().enumerate() {
        filter.validate(&format!("filters[{index}]"), 1)?;
    }
    Ok(())
}

/// Returns true when the event matches every filter of the list.
pub fn matches_all(filters: &[Filter], attributes: &Attributes) -> bool {
    filters.iter().all(|filter| filter.matches(attributes))
}
