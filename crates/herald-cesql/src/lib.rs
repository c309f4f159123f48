//! CloudEvents SQL Expression Language v1 (CESQL): a parser and evaluator
//! for the predicates subscriptions use to filter CloudEvents. This crate is
//! a pure library: it does no I/O, spawns nothing and is not async.
//!
//! An expression is parsed once with [`parse`] into an [`Expression`] and
//! then evaluated any number of times with [`Expression::evaluate`] against
//! anything that implements [`EventAttributes`]. Following the CESQL
//! specification (section "Errors"), evaluation always produces a value and,
//! additionally, possibly an error; [`Evaluation::matches`] is the filter
//! decision (a Boolean `true` and no error).
//!
//! ```
//! use std::collections::HashMap;
//! use herald_cesql::{parse, Value};
//!
//! let filter = parse("type LIKE 'com.example.%' AND EXISTS subject")
//!     .expect("the filter should parse");
//! let event = HashMap::from([
//!     ("type".to_owned(), Value::from("com.example.created")),
//!     ("subject".to_owned(), Value::from("order-1")),
//! ]);
//! assert!(filter.evaluate(&event).matches());
//! ```

// Decoders, filters and subjects read untrusted input: no indexing that could panic.
#![warn(clippy::indexing_slicing)]

mod ast;
mod error;
mod eval;
mod functions;
mod lexer;
mod like;
mod parser;
mod value;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;

pub use error::{CheckError, ErrorKind, EvalError, ParseError};
pub use value::Value;

/// Maximum nesting depth of an expression accepted by [`parse`].
pub const MAX_NESTING_DEPTH: usize = parser::MAX_DEPTH;

/// Read access to the context attributes and extensions of one event.
///
/// Names are looked up in lowercase, as CloudEvents attribute names are
/// lowercase; the expression's identifiers are lowercased when parsed.
/// Attributes whose type is not a CESQL primitive (URI, URI-reference,
/// timestamp, binary) should be returned as [`Value::String`] in their
/// canonical string form.
pub trait EventAttributes {
    /// The value of the attribute or extension `name`, or `None` if the
    /// event does not carry it.
    fn attribute(&self, name: &str) -> Option<Value>;

    /// Whether the event carries `name` (used by `EXISTS`). Implementations
    /// can override this to avoid building the value.
    fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }
}

impl<S: BuildHasher> EventAttributes for HashMap<String, Value, S> {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }

    fn has_attribute(&self, name: &str) -> bool {
        self.contains_key(name)
    }
}

impl EventAttributes for BTreeMap<String, Value> {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }

    fn has_attribute(&self, name: &str) -> bool {
        self.contains_key(name)
    }
}

/// Parses a CESQL expression.
///
/// Syntax errors, integer literals outside the 32-bit range, `LIKE` patterns
/// that are not string literals, malformed identifiers and nesting deeper
/// than [`MAX_NESTING_DEPTH`] are parse errors. Calls of unknown functions
/// (or with an unsupported number of arguments) parse fine and evaluate to
/// `false` with an [`ErrorKind::MissingFunction`] error, as the conformance
/// suite requires.
pub fn parse(input: &str) -> Result<Expression, ParseError> {
    let root = parser::parse(input)?;
    Ok(Expression {
        source: input.to_owned(),
        root,
    })
}

/// A parsed CESQL expression, ready to be evaluated many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    source: String,
    root: ast::Expr,
}

impl Expression {
    /// Evaluates the expression against one event.
    pub fn evaluate(&self, event: &dyn EventAttributes) -> Evaluation {
        let out = eval::eval(&self.root, event);
        Evaluation {
            value: out.value.into_value(),
            error: out.error,
        }
    }

    /// Checks what can be checked without an event, as the specification
    /// advises (section "Errors": "some error checks SHOULD be done at
    /// compile time"): a call of a function that does not exist, or not
    /// with that number of arguments, would be `false` with a missing
    /// function error on every event. Returns the first such call, in
    /// reading order, with the position of its name.
    ///
    /// [`parse`] accepts these expressions because the conformance suite
    /// evaluates them; callers that store expressions for later use (a
    /// subscription's filter) call this too and refuse them.
    pub fn check(&self) -> Result<(), CheckError> {
        let Some((name, arity, position)) = self.root.first_missing_function() else {
            return Ok(());
        };
        let plural = if arity == 1 { "" } else { "s" };
        let message = match functions::Function::arity_of(name) {
            Some(accepted) => {
                format!("function {name} takes {accepted}, not {arity} argument{plural}")
            }
            None => format!("unknown function {name}"),
        };
        Err(CheckError::new(
            ErrorKind::MissingFunction,
            position,
            message,
        ))
    }

    /// The names of the attributes the expression reads, including `EXISTS`
    /// operands, lowercase, without duplicates, in order of first
    /// appearance.
    pub fn referenced_attributes(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.root.collect_attributes(&mut names);
        names
    }

    /// The expression text as it was given to [`parse`].
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Shows the original expression text.
impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Expression {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// The outcome of evaluating an expression: always a value, plus the first
/// error met during evaluation, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The result. When an error occurred this is the value the
    /// specification defines for that case, often the zero value of the
    /// expression's type.
    pub value: Value,
    /// The first error raised during evaluation.
    pub error: Option<EvalError>,
}

impl Evaluation {
    /// The filter decision: the value is Boolean `true` and no error
    /// occurred (CESQL specification, section "Relation to the
    /// Subscriptions API").
    pub fn matches(&self) -> bool {
        self.error.is_none() && self.value.is_true()
    }
}
