//! Tree-walking evaluator for parsed CESQL expressions (CESQL
//! specification, sections "Errors", "Operators", "Evaluation of the
//! expression" and "Type casting"). Reads attributes through
//! [`EventAttributes`]; no I/O.
//!
//! Error semantics: every node produces a value and at most one error (the
//! first one met, in evaluation order).
//!
//! * When an operand or argument fails to evaluate, the operator or function
//!   does not compute anything: it yields the zero value of its return type
//!   and passes the error on (section "CloudEvent context identifiers and
//!   types": `1 / missing` is `0` with a missing attribute error, not a math
//!   error).
//! * When the operator itself raises an error (a failed implicit cast, a
//!   division by zero, a function rejecting its arguments), the result is the
//!   value the specification defines for that case: a failed cast
//!   contributes the zero value of the target type and the operator carries
//!   on with it (`NOT 10` is `true` with a cast error), a division by zero is
//!   `0`, and so on.
//! * `AND` and `OR` short-circuit: the right operand is not evaluated when
//!   the left one (cast to Boolean) decides the result.

use crate::EventAttributes;
use crate::ast::{BinaryOp, Expr};
use crate::error::{ErrorKind, EvalError};
use crate::value::{self, Type, Val};

/// A value and the first error met while computing it.
pub(crate) struct Out<'a> {
    pub(crate) value: Val<'a>,
    pub(crate) error: Option<EvalError>,
}

impl<'a> Out<'a> {
    fn ok(value: Val<'a>) -> Self {
        Self { value, error: None }
    }

    fn with(value: Val<'a>, error: Option<EvalError>) -> Self {
        Self { value, error }
    }

    /// The result of an operator whose operand failed: the zero value of
    /// the operator's return type and the operand's error.
    fn failed(ty: Type, error: EvalError) -> Self {
        Self {
            value: Val::zero(ty),
            error: Some(error),
        }
    }
}

/// Evaluates `expr` against `event`.
pub(crate) fn eval<'a>(expr: &'a Expr, event: &dyn EventAttributes) -> Out<'a> {
    match expr {
        Expr::Literal(value) => Out::ok(Val::borrowed(value)),
        Expr::Attribute(name) => match event.attribute(name) {
            Some(value) => Out::ok(Val::owned(value)),
            // The type of the enclosing expression is not known here, so
            // Boolean is assumed (section "CloudEvent context identifiers
            // and types"); operators replace it with their own zero value.
            None => Out::failed(
                Type::Boolean,
                EvalError::new(
                    ErrorKind::MissingAttribute,
                    format!("missing attribute '{name}'"),
                ),
            ),
        },
        Expr::Exists(name) => Out::ok(Val::Boolean(event.has_attribute(name))),
        Expr::Not(operand) => {
            let operand = eval(operand, event);
            if let Some(error) = operand.error {
                return Out::failed(Type::Boolean, error);
            }
            let (b, error) = value::to_boolean_implicit(&operand.value);
            Out::with(Val::Boolean(!b), error)
        }
        Expr::Negate(operand) => {
            let operand = eval(operand, event);
            if let Some(error) = operand.error {
                return Out::failed(Type::Integer, error);
            }
            let (i, error) = value::to_integer(&operand.value);
            match i.checked_neg() {
                Some(negated) => Out::with(Val::Integer(negated), error),
                None => Out::with(
                    Val::Integer(0),
                    error.or_else(|| Some(EvalError::math("integer overflow in unary '-'"))),
                ),
            }
        }
        Expr::Binary { first, rest } => {
            let mut acc = eval(first, event);
            for (op, rhs) in rest {
                acc = binary(*op, acc, rhs, event);
            }
            acc
        }
        Expr::Like {
            operand,
            pattern,
            negated,
        } => {
            let operand = eval(operand, event);
            if let Some(error) = operand.error {
                return Out::failed(Type::Boolean, error);
            }
            let text = value::to_string(operand.value);
            Out::ok(Val::Boolean(pattern.matches(&text) != *negated))
        }
        Expr::In {
            operand,
            set,
            negated,
        } => in_set(operand, set, *negated, event),
        Expr::Call {
            name,
            function,
            args,
            ..
        } => {
            let Some(function) = function else {
                // Section "Functions": an invocation that cannot be
                // dispatched is `false` with a missing function error.
                return Out::failed(
                    Type::Boolean,
                    EvalError::new(
                        ErrorKind::MissingFunction,
                        format!(
                            "no function {name} accepting {} argument{}",
                            args.len(),
                            if args.len() == 1 { "" } else { "s" }
                        ),
                    ),
                );
            };
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                let arg = eval(arg, event);
                if let Some(error) = arg.error {
                    return Out::failed(function.return_type(), error);
                }
                values.push(arg.value);
            }
            let (value, error) = function.call(values);
            Out::with(value, error)
        }
    }
}

/// Applies `left op rhs`, evaluating `rhs` only when needed.
fn binary<'a>(op: BinaryOp, left: Out<'a>, rhs: &'a Expr, event: &dyn EventAttributes) -> Out<'a> {
    if let Some(error) = left.error {
        return Out::failed(op.return_type(), error);
    }
    match op {
        BinaryOp::And | BinaryOp::Or => {
            let (l, cast_error) = value::to_boolean_implicit(&left.value);
            // AND stops at false, OR stops at true (section "Binary
            // operators").
            let decided = if op == BinaryOp::And { !l } else { l };
            if decided {
                return Out::with(Val::Boolean(l), cast_error);
            }
            let right = eval(rhs, event);
            if let Some(error) = right.error {
                return Out::failed(Type::Boolean, cast_error.unwrap_or(error));
            }
            let (r, right_cast_error) = value::to_boolean_implicit(&right.value);
            Out::with(Val::Boolean(r), cast_error.or(right_cast_error))
        }
        _ => {
            let right = eval(rhs, event);
            if let Some(error) = right.error {
                return Out::failed(op.return_type(), error);
            }
            compute(op, left.value, right.value)
        }
    }
}

/// The non-short-circuit binary operators on two successfully evaluated
/// operands.
fn compute<'a>(op: BinaryOp, left: Val<'a>, right: Val<'a>) -> Out<'a> {
    match op {
        BinaryOp::Xor => {
            let (l, left_error) = value::to_boolean_implicit(&left);
            let (r, right_error) = value::to_boolean_implicit(&right);
            Out::with(Val::Boolean(l != r), left_error.or(right_error))
        }
        BinaryOp::Equal | BinaryOp::NotEqual => {
            // `=` is overloaded for all three types: the right operand's
            // type selects the definition and the left operand is cast to it
            // (section "Type casting").
            let (equal, error) = value::equal_as(&right, left);
            Out::with(Val::Boolean(equal == (op == BinaryOp::Equal)), error)
        }
        _ => {
            let (l, left_error) = value::to_integer(&left);
            let (r, right_error) = value::to_integer(&right);
            let cast_error = left_error.or(right_error);
            let (value, error) = integer_op(op, l, r);
            Out::with(value, cast_error.or(error))
        }
    }
}

/// Integer comparisons and arithmetic. Division and remainder by zero and
/// results outside the 32-bit range give `0` and a math error.
fn integer_op(op: BinaryOp, l: i32, r: i32) -> (Val<'static>, Option<EvalError>) {
    let arithmetic = match op {
        BinaryOp::Less => return (Val::Boolean(l < r), None),
        BinaryOp::LessOrEqual => return (Val::Boolean(l <= r), None),
        BinaryOp::Greater => return (Val::Boolean(l > r), None),
        BinaryOp::GreaterOrEqual => return (Val::Boolean(l >= r), None),
        BinaryOp::Add => l.checked_add(r),
        BinaryOp::Subtract => l.checked_sub(r),
        BinaryOp::Multiply => l.checked_mul(r),
        BinaryOp::Divide | BinaryOp::Remainder if r == 0 => {
            return (Val::Integer(0), Some(EvalError::math("division by zero")));
        }
        // Truncating division; the remainder has the sign of the dividend.
        BinaryOp::Divide => l.checked_div(r),
        // i32::MIN % -1 is mathematically 0, only the machine op overflows.
        BinaryOp::Remainder => Some(l.checked_rem(r).unwrap_or(0)),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Equal | BinaryOp::NotEqual => {
            // Handled by the caller; answer as if the operands were
            // incomparable rather than panicking.
            return (
                Val::Boolean(false),
                Some(EvalError::new(
                    ErrorKind::Generic,
                    format!("operator {} is not an integer operator", op.symbol()),
                )),
            );
        }
    };
    match arithmetic {
        Some(result) => (Val::Integer(result), None),
        None => (
            Val::Integer(0),
            Some(EvalError::math(format!(
                "integer overflow in '{}'",
                op.symbol()
            ))),
        ),
    }
}

/// `x IN (y1, ...)`: every element is evaluated, cast to the type of `x` and
/// compared with `=` semantics (section "In operator").
fn in_set<'a>(
    operand: &'a Expr,
    set: &'a [Expr],
    negated: bool,
    event: &dyn EventAttributes,
) -> Out<'a> {
    let operand = eval(operand, event);
    if let Some(error) = operand.error {
        return Out::failed(Type::Boolean, error);
    }
    let mut found = false;
    let mut first_error: Option<EvalError> = None;
    for element in set {
        let element = eval(element, event);
        if let Some(error) = element.error {
            return Out::failed(Type::Boolean, first_error.unwrap_or(error));
        }
        let (equal, error) = value::equal_as(&operand.value, element.value);
        if first_error.is_none() {
            first_error = error;
        }
        found |= equal;
    }
    Out::with(Val::Boolean(found != negated), first_error)
}

/// The string form of a value, for assertions.
#[cfg(test)]
pub(crate) fn display(value: &Val<'_>) -> String {
    value::to_string(value.clone()).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::Value;

    fn run(expression: &str, event: &HashMap<String, Value>) -> (String, Option<ErrorKind>) {
        let expr = crate::parser::parse(expression).expect("expression should parse");
        let out = eval(&expr, event);
        (display(&out.value), out.error.map(|e| e.kind()))
    }

    fn run_empty(expression: &str) -> (String, Option<ErrorKind>) {
        run(expression, &HashMap::new())
    }

    #[test]
    fn operand_error_yields_zero_value_of_operator_type() {
        assert_eq!(
            run_empty("missing / 0"),
            ("0".into(), Some(ErrorKind::MissingAttribute))
        );
        assert_eq!(
            run_empty("missing != 2"),
            ("false".into(), Some(ErrorKind::MissingAttribute))
        );
        assert_eq!(
            run_empty("NOT missing"),
            ("false".into(), Some(ErrorKind::MissingAttribute))
        );
        assert_eq!(
            run_empty("LOWER(missing)"),
            ("".into(), Some(ErrorKind::MissingAttribute))
        );
        assert_eq!(
            run_empty("1 != 1 / 0"),
            ("false".into(), Some(ErrorKind::Math))
        );
    }

    #[test]
    fn operator_cast_error_continues_with_zero_value() {
        assert_eq!(run_empty("NOT 10"), ("true".into(), Some(ErrorKind::Cast)));
        assert_eq!(run_empty("'abc' + 1"), ("1".into(), Some(ErrorKind::Cast)));
    }

    #[test]
    fn and_or_short_circuit_skips_right_operand_errors() {
        assert_eq!(run_empty("false AND missing"), ("false".into(), None));
        assert_eq!(run_empty("true OR 1 / 0 = 0"), ("true".into(), None));
        assert_eq!(
            run_empty("true AND missing"),
            ("false".into(), Some(ErrorKind::MissingAttribute))
        );
    }

    #[test]
    fn first_error_wins() {
        assert_eq!(
            run_empty("'x' + (1 / 0)"),
            ("0".into(), Some(ErrorKind::Math))
        );
        assert_eq!(
            run_empty("('x' + 1) = LEFT('a', -1)"),
            ("false".into(), Some(ErrorKind::Cast))
        );
        assert_eq!(
            run_empty("1 IN ('a', missing)"),
            ("false".into(), Some(ErrorKind::Cast))
        );
    }

    #[test]
    fn arithmetic_overflow_is_a_math_error() {
        assert_eq!(
            run_empty("2147483647 + 1"),
            ("0".into(), Some(ErrorKind::Math))
        );
        assert_eq!(
            run_empty("-2147483648 - 1"),
            ("0".into(), Some(ErrorKind::Math))
        );
        assert_eq!(
            run_empty("-2147483648 / -1"),
            ("0".into(), Some(ErrorKind::Math))
        );
        assert_eq!(
            run_empty("-(-2147483648)"),
            ("0".into(), Some(ErrorKind::Math))
        );
        assert_eq!(
            run_empty("65536 * 65536"),
            ("0".into(), Some(ErrorKind::Math))
        );
        assert_eq!(run_empty("-2147483648 % -1"), ("0".into(), None));
        assert_eq!(run_empty("-7 % 3"), ("-1".into(), None));
        assert_eq!(run_empty("-7 / 2"), ("-3".into(), None));
    }

    #[test]
    fn in_casts_elements_to_the_left_operand_type() {
        assert_eq!(
            run_empty("'true' IN (TRUE, 'false')"),
            ("true".into(), None)
        );
        assert_eq!(run_empty("1 IN ('1', '2')"), ("true".into(), None));
        assert_eq!(run_empty("1 NOT IN (2, 3)"), ("true".into(), None));
        assert_eq!(
            run_empty("1 NOT IN (missing)"),
            ("false".into(), Some(ErrorKind::MissingAttribute))
        );
    }

    #[test]
    fn unknown_function_is_false_with_missing_function_error() {
        assert_eq!(
            run_empty("NOPE(1, 2)"),
            ("false".into(), Some(ErrorKind::MissingFunction))
        );
        assert_eq!(
            run_empty("ABS(1, 2)"),
            ("false".into(), Some(ErrorKind::MissingFunction))
        );
        assert_eq!(
            run_empty("ABS()"),
            ("false".into(), Some(ErrorKind::MissingFunction))
        );
    }

    #[test]
    fn attributes_are_read_by_lowercase_name() {
        let event = HashMap::from([("myext".to_owned(), Value::Integer(7))]);
        assert_eq!(run("MyExt + 1", &event), ("8".into(), None));
        assert_eq!(run("EXISTS MYEXT", &event), ("true".into(), None));
    }
}
