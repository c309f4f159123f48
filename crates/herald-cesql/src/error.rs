//! Error types of the CESQL engine: parse errors returned by [`crate::parse`]
//! and evaluation errors reported next to an evaluation result. This module
//! only defines data types and does no I/O.

use std::fmt;

/// The error categories every CESQL engine has to distinguish (CESQL
/// specification, section "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The expression text is not valid CESQL.
    Parse,
    /// A math operation failed, for example a division by zero or an
    /// integer overflow.
    Math,
    /// An implicit or explicit type cast failed.
    Cast,
    /// A function was invoked that does not exist with that arity.
    MissingFunction,
    /// A built-in function rejected its arguments.
    FunctionEvaluation,
    /// The expression read an attribute the event does not carry.
    MissingAttribute,
    /// Any other error.
    Generic,
}

impl ErrorKind {
    /// A stable snake_case name, suitable for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Math => "math",
            Self::Cast => "cast",
            Self::MissingFunction => "missing_function",
            Self::FunctionEvaluation => "function_evaluation",
            Self::MissingAttribute => "missing_attribute",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An expression could not be parsed.
///
/// `position` is the 0-based index, counted in characters (Unicode scalar
/// values), of the place in the input where the problem was detected. For
/// ASCII input this is also the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct ParseError {
    position: usize,
    message: String,
}

impl ParseError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }

    /// 0-based character position of the error in the expression text.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Lowercase description of the problem, without position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Always [`ErrorKind::Parse`].
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Parse
    }
}

/// A static check of a parsed expression failed ([`crate::Expression::check`]):
/// the expression parses, but would fail on every event in the same way.
///
/// `position` counts characters from 0, like [`ParseError::position`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct CheckError {
    kind: ErrorKind,
    position: usize,
    message: String,
}

impl CheckError {
    pub(crate) fn new(kind: ErrorKind, position: usize, message: impl Into<String>) -> Self {
        Self {
            kind,
            position,
            message: message.into(),
        }
    }

    /// The error evaluation would report: [`ErrorKind::MissingFunction`].
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// 0-based character position of the problem in the expression text.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Lowercase description of the problem, without position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// An error raised while evaluating an expression against an event.
///
/// Evaluation never aborts: the evaluator still produces a value (see
/// [`crate::Evaluation`]) and reports the first error it met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    kind: ErrorKind,
    message: String,
}

impl EvalError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn math(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Math, message)
    }

    pub(crate) fn cast(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cast, message)
    }

    pub(crate) fn function(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FunctionEvaluation, message)
    }

    /// The category of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Lowercase description of the problem.
    pub fn message(&self) -> &str {
        &self.message
    }
}
