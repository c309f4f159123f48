//! Subscription filters: the CloudEvents Subscriptions API filter dialects (section 3.2.4).
//!
//! A subscription holds a list of filters, all of which must match. The `exact`, `prefix` and
//! `suffix` dialects compare attributes by their canonical string form; `all`, `any` and `not`
//! compose them; `sql` is a CESQL v1 expression (`herald-cesql`); `cel` is Herald's extension
//! for payload filters, a Common Expression Language expression over the attributes and the JSON
//! `data`. The serde form of [`Filter`] is the specification's JSON encoding
//! (`{"exact": {"type": "com.example"}}`, `{"sql": "..."}`, `{"cel": "..."}`) and is what Herald
//! stores.
//!
//! Filters are validated once, when a subscription is created or updated ([`validate`], which
//! also refuses expressions that would fail on every event), compiled once per subscription
//! revision into [`CompiledFilters`] ([`compile`], which accepts what was stored before those
//! checks existed), and then only evaluated. No I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::subject;

mod cel;
mod compiled;
mod explain;
mod sql;

#[cfg(test)]
mod tests;

pub use compiled::{CompiledFilters, EvaluationError, Match, compile};
pub use explain::{Explanation, Outcome, Step};

/// Deepest nesting of `all`, `any` and `not` accepted.
pub const MAX_DEPTH: usize = 32;

/// Longest `sql` or `cel` expression accepted, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 4096;

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
    /// A CESQL v1 expression that evaluates to `true` without error.
    Sql(String),
    /// Herald extension: a CEL expression over the attributes and the JSON `data` that
    /// evaluates to `true` without error.
    Cel(String),
}

/// The expression languages whose evaluation can fail on an event, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sql,
    Cel,
}

impl Dialect {
    /// Returns the dialect name, a bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sql => "sql",
            Dialect::Cel => "cel",
        }
    }
}

/// How strictly [`Filter::compile_at`] checks `sql` and `cel` expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// Everything the dialect refuses, plus what would fail on every event: calls of unknown
    /// functions (or, in CESQL, with the wrong number of arguments) and, in CEL, variables no
    /// event can bind. For filters about to be stored.
    Static,
    /// Only what the dialect refuses: filters stored before the static checks existed still
    /// compile (and fail on every event, as they always did).
    Stored,
}

/// Why a filter was refused, with the path of the offending expression (`filters[1].any[0]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FilterError {
    pub path: String,
    pub reason: String,
}

impl Filter {
    /// Returns a filter on one attribute value, the most common case (`exact` on `type`).
    pub fn exact(attribute: &str, value: &str) -> Filter {
        Filter::Exact(BTreeMap::from([(attribute.to_owned(), value.to_owned())]))
    }

    /// Returns a prefix filter on one attribute.
    pub fn prefix(attribute: &str, value: &str) -> Filter {
        Filter::Prefix(BTreeMap::from([(attribute.to_owned(), value.to_owned())]))
    }

    /// Checks this filter and compiles it into its evaluable form; errors name `path`.
    fn compile_at(
        &self,
        path: &str,
        depth: usize,
        checks: Checks,
    ) -> Result<compiled::Node, FilterError> {
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
                Ok(compiled::Node::attributes(self, pairs))
            }
            Filter::All(filters) | Filter::Any(filters) => {
                let dialect = self.dialect();
                if filters.is_empty() {
                    return Err(error(&format!("{dialect} needs at least one filter")));
                }
                let mut nodes = Vec::with_capacity(filters.len());
                for (index, filter) in filters.iter().enumerate() {
                    nodes.push(filter.compile_at(
                        &format!("{path}.{dialect}[{index}]"),
                        depth + 1,
                        checks,
                    )?);
                }
                match self {
                    Filter::All(_) => Ok(compiled::Node::All(nodes)),
                    _ => Ok(compiled::Node::Any(nodes)),
                }
            }
            Filter::Not(filter) => {
                let node = filter.compile_at(&format!("{path}.not"), depth + 1, checks)?;
                Ok(compiled::Node::Not(Box::new(node)))
            }
            Filter::Sql(expression) => {
                check_expression_len(path, "sql", expression)?;
                let expression =
                    sql::compile(expression, checks).map_err(|reason| FilterError {
                        path: format!("{path}.sql"),
                        reason,
                    })?;
                Ok(compiled::Node::Sql(expression))
            }
            Filter::Cel(expression) => {
                check_expression_len(path, "cel", expression)?;
                let program = cel::compile(expression).map_err(|reason| FilterError {
                    path: format!("{path}.cel"),
                    reason,
                })?;
                if checks == Checks::Static {
                    cel::check(expression, &program).map_err(|reason| FilterError {
                        path: format!("{path}.cel"),
                        reason,
                    })?;
                }
                Ok(compiled::Node::Cel(program))
            }
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
            Filter::Sql(_) => "sql",
            Filter::Cel(_) => "cel",
        }
    }
}

/// Validates a subscription's filter list before it is stored: parses `sql` and `cel`
/// expressions and refuses what would fail on every event (unknown functions, CESQL calls with
/// the wrong number of arguments, CEL variables no event binds), naming the filter and the
/// position. An empty list matches every event.
pub fn validate(filters: &[Filter]) -> Result<(), FilterError> {
    compiled::compile_checked(filters, Checks::Static).map(drop)
}

fn check_expression_len(path: &str, dialect: &str, expression: &str) -> Result<(), FilterError> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(FilterError {
            path: format!("{path}.{dialect}"),
            reason: format!("expression is longer than {MAX_EXPRESSION_LEN} bytes"),
        });
    }
    Ok(())
}
