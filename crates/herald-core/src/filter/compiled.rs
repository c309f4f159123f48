//! Compiled filters: a subscription's filter list parsed once per revision ([`compile`]) and then
//! evaluated against each event ([`CompiledFilters::matches`]).
//!
//! Evaluation uses three-valued logic so that an expression failing on an event never turns into
//! a match: a `sql` or `cel` leaf that fails is *unknown*; `all` is false if any member is false,
//! else unknown if any is unknown; `any` is true if any member is true, else unknown if any is
//! unknown; `not` keeps unknown unknown. Only a known true matches. Members are evaluated in
//! order and stop at the first deciding one, so `[{"exact": {"datacontenttype":
//! "application/json"}}, {"cel": "data.total > 100"}]` never evaluates the CEL expression on
//! other payloads. Every failure met is reported with its dialect for metrics. No I/O.

use herald_cesql::Expression;

use crate::event::Event;
use crate::filter::cel::{Activation, CelProgram};
use crate::filter::{Checks, Dialect, Filter, FilterError, sql};

/// A subscription's filters, ready to evaluate; all must match. Build with [`compile`].
#[derive(Debug, Default)]
pub struct CompiledFilters {
    pub(super) nodes: Vec<Node>,
    pub(super) reads_data: bool,
}

/// The decision for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// True when every filter matched, with no evaluation error deciding the result.
    pub matched: bool,
    /// The `sql` and `cel` expressions that failed to evaluate on this event.
    pub errors: Vec<EvaluationError>,
}

/// An expression that failed to evaluate on an event: the event does not match it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} filter failed to evaluate: {message}", dialect.as_str())]
pub struct EvaluationError {
    pub dialect: Dialect,
    pub message: String,
}

/// Validates a filter list and compiles it: `sql` and `cel` expressions are parsed here, once.
/// Stored filters are compiled with this; new ones are checked with [`crate::filter::validate`].
pub fn compile(filters: &[Filter]) -> Result<CompiledFilters, FilterError> {
    compile_checked(filters, Checks::Stored)
}

pub(super) fn compile_checked(
    filters: &[Filter],
    checks: Checks,
) -> Result<CompiledFilters, FilterError> {
    let mut nodes = Vec::with_capacity(filters.len());
    for (index, filter) in filters.iter().enumerate() {
        nodes.push(filter.compile_at(&format!("filters[{index}]"), 1, checks)?);
    }
    let reads_data = nodes.iter().any(Node::reads_data);
    Ok(CompiledFilters { nodes, reads_data })
}

impl CompiledFilters {
    /// Returns whether `event` matches every filter, and the evaluation errors met.
    pub fn matches(&self, event: &Event) -> Match {
        let mut evaluation = Evaluation {
            event,
            reads_data: self.reads_data,
            activation: None,
            errors: Vec::new(),
        };
        let truth = evaluation.all(&self.nodes);
        Match {
            matched: truth == Truth::True,
            errors: evaluation.errors,
        }
    }

    /// Returns true when the list is empty: every event matches.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// One compiled filter expression.
#[derive(Debug)]
pub(super) enum Node {
    Exact(Vec<(String, String)>),
    Prefix(Vec<(String, String)>),
    Suffix(Vec<(String, String)>),
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Sql(Expression),
    Cel(CelProgram),
}

impl Node {
    /// Returns the node of an attribute dialect (`exact`, `prefix` or `suffix`).
    pub(super) fn attributes(
        filter: &Filter,
        pairs: &std::collections::BTreeMap<String, String>,
    ) -> Node {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        match filter {
            Filter::Prefix(_) => Node::Prefix(pairs),
            Filter::Suffix(_) => Node::Suffix(pairs),
            _ => Node::Exact(pairs),
        }
    }

    /// Returns the dialect name, as [`Filter::dialect`] spells it.
    pub(super) fn dialect(&self) -> &'static str {
        match self {
            Node::Exact(_) => "exact",
            Node::Prefix(_) => "prefix",
            Node::Suffix(_) => "suffix",
            Node::All(_) => "all",
            Node::Any(_) => "any",
            Node::Not(_) => "not",
            Node::Sql(_) => "sql",
            Node::Cel(_) => "cel",
        }
    }

    fn reads_data(&self) -> bool {
        match self {
            Node::All(nodes) | Node::Any(nodes) => nodes.iter().any(Node::reads_data),
            Node::Not(node) => node.reads_data(),
            Node::Cel(program) => program.reads_data(),
            Node::Exact(_) | Node::Prefix(_) | Node::Suffix(_) | Node::Sql(_) => false,
        }
    }
}

/// Kleene's three truth values: `Unknown` is an expression that failed to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Truth {
    True,
    False,
    Unknown,
}

impl From<bool> for Truth {
    fn from(value: bool) -> Truth {
        if value { Truth::True } else { Truth::False }
    }
}

pub(super) struct Evaluation<'e> {
    pub(super) event: &'e Event,
    pub(super) reads_data: bool,
    /// The CEL variables, built on the first `cel` leaf and reused by the others.
    pub(super) activation: Option<Activation>,
    pub(super) errors: Vec<EvaluationError>,
}

impl Evaluation<'_> {
    fn all(&mut self, nodes: &[Node]) -> Truth {
        let mut result = Truth::True;
        for node in nodes {
            match self.node(node) {
                Truth::False => return Truth::False,
                Truth::Unknown => result = Truth::Unknown,
                Truth::True => {}
            }
        }
        result
    }

    fn any(&mut self, nodes: &[Node]) -> Truth {
        let mut result = Truth::False;
        for node in nodes {
            match self.node(node) {
                Truth::True => return Truth::True,
                Truth::Unknown => result = Truth::Unknown,
                Truth::False => {}
            }
        }
        result
    }

    pub(super) fn node(&mut self, node: &Node) -> Truth {
        let attributes = self.event.attributes();
        match node {
            Node::Exact(pairs) => Truth::from(pairs.iter().all(|(name, value)| {
                attributes
                    .get(name)
                    .is_some_and(|actual| actual.as_ref() == value)
            })),
            Node::Prefix(pairs) => Truth::from(pairs.iter().all(|(name, value)| {
                attributes
                    .get(name)
                    .is_some_and(|actual| actual.starts_with(value.as_str()))
            })),
            Node::Suffix(pairs) => Truth::from(pairs.iter().all(|(name, value)| {
                attributes
                    .get(name)
                    .is_some_and(|actual| actual.ends_with(value.as_str()))
            })),
            Node::All(nodes) => self.all(nodes),
            Node::Any(nodes) => self.any(nodes),
            Node::Not(node) => match self.node(node) {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Unknown => Truth::Unknown,
            },
            Node::Sql(expression) => {
                let result = sql::evaluate(expression, attributes);
                self.record(Dialect::Sql, result)
            }
            Node::Cel(program) => {
                let (event, reads_data) = (self.event, self.reads_data);
                let activation = self
                    .activation
                    .get_or_insert_with(|| Activation::new(event, reads_data));
                let result = program.evaluate(activation);
                self.record(Dialect::Cel, result)
            }
        }
    }

    fn record(&mut self, dialect: Dialect, result: Result<bool, String>) -> Truth {
        match result {
            Ok(matched) => Truth::from(matched),
            Err(message) => {
                self.errors.push(EvaluationError { dialect, message });
                Truth::Unknown
            }
        }
    }
}
