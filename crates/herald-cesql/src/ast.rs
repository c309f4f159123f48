//! The abstract syntax tree produced by the parser and walked by the
//! evaluator. Plain data, no I/O.

use crate::functions::Function;
use crate::like::LikePattern;
use crate::value::{Type, Value};

/// One expression node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    Literal(Value),
    /// A context attribute or extension, by lowercase name.
    Attribute(String),
    /// `EXISTS name`.
    Exists(String),
    /// `NOT x`.
    Not(Box<Expr>),
    /// `-x`.
    Negate(Box<Expr>),
    /// A left-associative sequence of binary operators that all share one
    /// precedence level: `first op1 e1 op2 e2 ...` means
    /// `((first op1 e1) op2 e2) ...`. Keeping the sequence flat means long
    /// `a OR b OR c ...` chains do not deepen the tree. `rest` is never
    /// empty.
    Binary {
        first: Box<Expr>,
        rest: Vec<(BinaryOp, Expr)>,
    },
    /// `x LIKE 'pattern'` or `x NOT LIKE 'pattern'`.
    Like {
        operand: Box<Expr>,
        pattern: LikePattern,
        negated: bool,
    },
    /// `x IN (a, b, ...)` or `x NOT IN (...)`; `set` is never empty.
    In {
        operand: Box<Expr>,
        set: Vec<Expr>,
        negated: bool,
    },
    /// A function invocation. `function` is `None` when no function with
    /// that name and arity exists, which is reported at evaluation time as
    /// a missing function error (section "Functions"), and by
    /// [`crate::Expression::check`] before that. `position` is where the
    /// function name starts in the expression text.
    Call {
        name: String,
        function: Option<Function>,
        args: Vec<Expr>,
        position: usize,
    },
}

/// Binary operators (section "Binary operators").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    And,
    Or,
    Xor,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
}

/// Precedence levels of binary operators, loosest first (section
/// "Evaluation of the expression").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Precedence {
    Logic,
    Comparison,
    Additive,
    Multiplicative,
}

impl BinaryOp {
    pub(crate) fn precedence(self) -> Precedence {
        match self {
            Self::And | Self::Or | Self::Xor => Precedence::Logic,
            Self::Equal
            | Self::NotEqual
            | Self::Less
            | Self::LessOrEqual
            | Self::Greater
            | Self::GreaterOrEqual => Precedence::Comparison,
            Self::Add | Self::Subtract => Precedence::Additive,
            Self::Multiply | Self::Divide | Self::Remainder => Precedence::Multiplicative,
        }
    }

    /// The operator's return type, whose zero value is the result when an
    /// operand fails to evaluate.
    pub(crate) fn return_type(self) -> Type {
        match self.precedence() {
            Precedence::Logic | Precedence::Comparison => Type::Boolean,
            Precedence::Additive | Precedence::Multiplicative => Type::Integer,
        }
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::And => "AND",
            Self::Or => "OR",
            Self::Xor => "XOR",
            Self::Equal => "=",
            Self::NotEqual => "!=",
            Self::Less => "<",
            Self::LessOrEqual => "<=",
            Self::Greater => ">",
            Self::GreaterOrEqual => ">=",
            Self::Add => "+",
            Self::Subtract => "-",
            Self::Multiply => "*",
            Self::Divide => "/",
            Self::Remainder => "%",
        }
    }
}

impl Expr {
    /// Returns the first call, in reading order, of a function that does not
    /// exist with that number of arguments: its name, its arity and where
    /// the name starts.
    pub(crate) fn first_missing_function(&self) -> Option<(&str, usize, usize)> {
        match self {
            Self::Literal(_) | Self::Attribute(_) | Self::Exists(_) => None,
            Self::Not(inner) | Self::Negate(inner) => inner.first_missing_function(),
            Self::Binary { first, rest } => first.first_missing_function().or_else(|| {
                rest.iter()
                    .find_map(|(_, operand)| operand.first_missing_function())
            }),
            Self::Like { operand, .. } => operand.first_missing_function(),
            Self::In { operand, set, .. } => operand
                .first_missing_function()
                .or_else(|| set.iter().find_map(Expr::first_missing_function)),
            Self::Call {
                name,
                function,
                args,
                position,
            } => match function {
                None => Some((name, args.len(), *position)),
                Some(_) => args.iter().find_map(Expr::first_missing_function),
            },
        }
    }

    /// Appends the names of the attributes this expression reads (including
    /// `EXISTS` operands) to `names`, skipping duplicates.
    pub(crate) fn collect_attributes<'a>(&'a self, names: &mut Vec<&'a str>) {
        match self {
            Self::Literal(_) => {}
            Self::Attribute(name) | Self::Exists(name) => {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
            Self::Not(inner) | Self::Negate(inner) => inner.collect_attributes(names),
            Self::Binary { first, rest } => {
                first.collect_attributes(names);
                for (_, operand) in rest {
                    operand.collect_attributes(names);
                }
            }
            Self::Like { operand, .. } => operand.collect_attributes(names),
            Self::In { operand, set, .. } => {
                operand.collect_attributes(names);
                for element in set {
                    element.collect_attributes(names);
                }
            }
            Self::Call { args, .. } => {
                for arg in args {
                    arg.collect_attributes(names);
                }
            }
        }
    }
}
