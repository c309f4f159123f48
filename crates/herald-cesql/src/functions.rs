//! The built-in CESQL functions (CESQL specification, section "Functions":
//! string manipulation, math, and the casting functions `INT`, `BOOL`,
//! `STRING`, `IS_INT` and `IS_BOOL`). Pure computations, no I/O.
//!
//! Functions are resolved by name (case-insensitively) and arity when the
//! expression is parsed; an unknown name or an arity no definition accepts
//! is reported as a missing function error at evaluation time.

use std::borrow::Cow;

use crate::error::EvalError;
use crate::value::{self, Type, Val};

/// A built-in function, already resolved for a valid arity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    /// `LENGTH(x): String -> Integer`
    Length,
    /// `CONCAT(x1, ...): String^n -> String`, n >= 0
    Concat,
    /// `CONCAT_WS(delimiter, x1, ...): String x String^n -> String`
    ConcatWs,
    /// `LOWER(x): String -> String`
    Lower,
    /// `UPPER(x): String -> String`
    Upper,
    /// `TRIM(x): String -> String`
    Trim,
    /// `LEFT(x, y): String x Integer -> String`
    Left,
    /// `RIGHT(x, y): String x Integer -> String`
    Right,
    /// `SUBSTRING(x, pos)` and `SUBSTRING(x, pos, len)`
    Substring,
    /// `ABS(x): Integer -> Integer`
    Abs,
    /// `INT(x): Any -> Integer`, the explicit cast
    Int,
    /// `BOOL(x): Any -> Boolean`, the explicit cast
    Bool,
    /// `STRING(x): Any -> String`, the explicit cast
    String,
    /// `IS_INT(x): String -> Boolean`, whether `INT(x)` would succeed
    IsInt,
    /// `IS_BOOL(x): String -> Boolean`, whether `BOOL(x)` would succeed
    IsBool,
}

impl Function {
    /// Finds the built-in called `name` (any letter case) that accepts
    /// `arity` arguments.
    pub(crate) fn resolve(name: &str, arity: usize) -> Option<Self> {
        let (function, accepts) = match name.to_ascii_uppercase().as_str() {
            "LENGTH" => (Self::Length, arity == 1),
            "CONCAT" => (Self::Concat, true),
            "CONCAT_WS" => (Self::ConcatWs, arity >= 1),
            "LOWER" => (Self::Lower, arity == 1),
            "UPPER" => (Self::Upper, arity == 1),
            "TRIM" => (Self::Trim, arity == 1),
            "LEFT" => (Self::Left, arity == 2),
            "RIGHT" => (Self::Right, arity == 2),
            "SUBSTRING" => (Self::Substring, arity == 2 || arity == 3),
            "ABS" => (Self::Abs, arity == 1),
            "INT" => (Self::Int, arity == 1),
            "BOOL" => (Self::Bool, arity == 1),
            "STRING" => (Self::String, arity == 1),
            "IS_INT" => (Self::IsInt, arity == 1),
            "IS_BOOL" => (Self::IsBool, arity == 1),
            _ => return None,
        };
        accepts.then_some(function)
    }

    /// How many arguments the built-in called `name` (any letter case)
    /// accepts, in words, or `None` when there is no such built-in.
    pub(crate) fn arity_of(name: &str) -> Option<&'static str> {
        let arity = match name.to_ascii_uppercase().as_str() {
            "CONCAT" => "any number of arguments",
            "CONCAT_WS" => "at least 1 argument",
            "LEFT" | "RIGHT" => "2 arguments",
            "SUBSTRING" => "2 or 3 arguments",
            "LENGTH" | "LOWER" | "UPPER" | "TRIM" | "ABS" | "INT" | "BOOL" | "STRING"
            | "IS_INT" | "IS_BOOL" => "1 argument",
            _ => return None,
        };
        Some(arity)
    }

    /// The return type, whose zero value is the result when an argument
    /// fails to evaluate.
    pub(crate) fn return_type(self) -> Type {
        match self {
            Self::Length | Self::Abs | Self::Int => Type::Integer,
            Self::Bool | Self::IsInt | Self::IsBool => Type::Boolean,
            Self::Concat
            | Self::ConcatWs
            | Self::Lower
            | Self::Upper
            | Self::Trim
            | Self::Left
            | Self::Right
            | Self::Substring
            | Self::String => Type::String,
        }
    }

    /// Applies the function to already evaluated arguments, whose number
    /// was validated by [`Function::resolve`]. Arguments are cast to the
    /// parameter types first (section "Type casting"); a failed cast uses
    /// the zero value of the parameter type and the first error is
    /// returned next to the result.
    pub(crate) fn call(self, args: Vec<Val<'_>>) -> (Val<'_>, Option<EvalError>) {
        let mut args = Args {
            values: args.into_iter(),
            error: None,
        };
        let result = match self {
            Self::Length => Val::Integer(char_count(&args.string())),
            Self::Concat => {
                let mut out = String::new();
                while let Some(part) = args.next_string() {
                    out.push_str(&part);
                }
                Val::String(Cow::Owned(out))
            }
            Self::ConcatWs => {
                let delimiter = args.string();
                let mut out = String::new();
                let mut first = true;
                while let Some(part) = args.next_string() {
                    if !first {
                        out.push_str(&delimiter);
                    }
                    out.push_str(&part);
                    first = false;
                }
                Val::String(Cow::Owned(out))
            }
            Self::Lower => Val::String(Cow::Owned(args.string().to_lowercase())),
            Self::Upper => Val::String(Cow::Owned(args.string().to_uppercase())),
            Self::Trim => {
                let text = args.string();
                let start = text.len() - text.trim_start().len();
                let end = text.trim_end().len().max(start);
                Val::String(slice(text, start, end))
            }
            Self::Left => {
                let text = args.string();
                let count = args.integer();
                Val::String(left(text, count, &mut args.error))
            }
            Self::Right => {
                let text = args.string();
                let count = args.integer();
                Val::String(right(text, count, &mut args.error))
            }
            Self::Substring => {
                let text = args.string();
                let position = args.integer();
                let length = args.next_integer();
                Val::String(substring(text, position, length, &mut args.error))
            }
            Self::Abs => {
                let x = args.integer();
                match x.checked_abs() {
                    Some(abs) => Val::Integer(abs),
                    None => {
                        args.fail(EvalError::math("abs: integer overflow"));
                        Val::Integer(i32::MAX)
                    }
                }
            }
            Self::Int => {
                let (x, error) = value::to_integer(&args.raw());
                args.fail_opt(error);
                Val::Integer(x)
            }
            Self::Bool => {
                let (x, error) = value::to_boolean_explicit(&args.raw());
                args.fail_opt(error);
                Val::Boolean(x)
            }
            Self::String => Val::String(args.string()),
            Self::IsInt => Val::Boolean(value::parse_integer(&args.string()).is_some()),
            Self::IsBool => Val::Boolean(value::parse_boolean(&args.string()).is_some()),
        };
        (result, args.error)
    }
}

/// Hands out the arguments in order, cast to the requested type, and keeps
/// the first error.
struct Args<'a> {
    values: std::vec::IntoIter<Val<'a>>,
    error: Option<EvalError>,
}

impl<'a> Args<'a> {
    fn fail(&mut self, error: EvalError) {
        self.error.get_or_insert(error);
    }

    fn fail_opt(&mut self, error: Option<EvalError>) {
        if let Some(error) = error {
            self.fail(error);
        }
    }

    /// The next argument uncast. Arity was checked at parse time; a missing
    /// argument would read as `false`.
    fn raw(&mut self) -> Val<'a> {
        self.values
            .next()
            .unwrap_or_else(|| Val::zero(Type::Boolean))
    }

    fn next_string(&mut self) -> Option<Cow<'a, str>> {
        self.values.next().map(value::to_string)
    }

    fn string(&mut self) -> Cow<'a, str> {
        self.next_string().unwrap_or(Cow::Borrowed(""))
    }

    fn next_integer(&mut self) -> Option<i32> {
        let value = self.values.next()?;
        let (x, error) = value::to_integer(&value);
        self.fail_opt(error);
        Some(x)
    }

    fn integer(&mut self) -> i32 {
        self.next_integer().unwrap_or(0)
    }
}

/// Number of characters, saturating at `i32::MAX`.
fn char_count(text: &str) -> i32 {
    i32::try_from(text.chars().count()).unwrap_or(i32::MAX)
}

/// Byte offset of the character with index `chars`, or the length of `text`
/// when it has fewer characters.
fn byte_offset(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(offset, _)| offset)
}

/// `text[start..end]` (byte offsets on char boundaries), borrowing when the
/// input is borrowed.
fn slice(text: Cow<'_, str>, start: usize, end: usize) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(&s[start..end]),
        Cow::Owned(s) => Cow::Owned(s[start..end].to_owned()),
    }
}

/// `LEFT(x, y)`: the first `y` characters; `x` and an error when `y < 0`.
fn left<'a>(text: Cow<'a, str>, count: i32, error: &mut Option<EvalError>) -> Cow<'a, str> {
    let Ok(count) = usize::try_from(count) else {
        error.get_or_insert(EvalError::function("left: length must not be negative"));
        return text;
    };
    let end = byte_offset(&text, count);
    slice(text, 0, end)
}

/// `RIGHT(x, y)`: the last `y` characters; `x` and an error when `y < 0`.
fn right<'a>(text: Cow<'a, str>, count: i32, error: &mut Option<EvalError>) -> Cow<'a, str> {
    let Ok(count) = usize::try_from(count) else {
        error.get_or_insert(EvalError::function("right: length must not be negative"));
        return text;
    };
    let total = text.chars().count();
    let start = byte_offset(&text, total.saturating_sub(count));
    let end = text.len();
    slice(text, start, end)
}

/// `SUBSTRING(x, pos)` / `SUBSTRING(x, pos, len)` with 1-based positions,
/// negative positions counting from the end, and `pos = 0` meaning the empty
/// string. Out of range positions and negative lengths give the empty string
/// and an error.
fn substring<'a>(
    text: Cow<'a, str>,
    position: i32,
    length: Option<i32>,
    error: &mut Option<EvalError>,
) -> Cow<'a, str> {
    let total = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
    let position = i64::from(position);
    if position > total || position < -total {
        error.get_or_insert(EvalError::function("substring: position is out of range"));
        return Cow::Borrowed("");
    }
    if length.is_some_and(|length| length < 0) {
        error.get_or_insert(EvalError::function(
            "substring: length must not be negative",
        ));
        return Cow::Borrowed("");
    }
    if position == 0 {
        return Cow::Borrowed("");
    }
    let start = if position > 0 {
        position - 1
    } else {
        total + position
    };
    let end = match length {
        Some(length) => total.min(start + i64::from(length)),
        None => total,
    };
    // Both are within 0..=total, which came from a usize.
    let start_chars = usize::try_from(start).unwrap_or(0);
    let end_chars = usize::try_from(end).unwrap_or(0);
    let start = byte_offset(&text, start_chars);
    let end = byte_offset(&text, end_chars);
    slice(text, start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn s(text: &str) -> Val<'_> {
        Val::String(Cow::Borrowed(text))
    }

    fn call<'a>(name: &str, args: Vec<Val<'a>>) -> (Val<'a>, Option<ErrorKind>) {
        let function = Function::resolve(name, args.len()).expect("function should resolve");
        let (value, error) = function.call(args);
        (value, error.map(|e| e.kind()))
    }

    #[test]
    fn resolution_is_case_insensitive_and_checks_arity() {
        assert_eq!(Function::resolve("concat_ws", 1), Some(Function::ConcatWs));
        assert_eq!(Function::resolve("CONCAT_WS", 0), None);
        assert_eq!(Function::resolve("Substring", 3), Some(Function::Substring));
        assert_eq!(Function::resolve("SUBSTRING", 4), None);
        assert_eq!(Function::resolve("NOPE", 1), None);
    }

    #[test]
    fn every_built_in_states_its_arity() {
        for name in [
            "LENGTH",
            "CONCAT",
            "CONCAT_WS",
            "LOWER",
            "UPPER",
            "TRIM",
            "LEFT",
            "RIGHT",
            "SUBSTRING",
            "ABS",
            "INT",
            "BOOL",
            "STRING",
            "IS_INT",
            "IS_BOOL",
        ] {
            let resolves = (0..4).any(|arity| Function::resolve(name, arity).is_some());
            assert!(resolves, "{name}");
            assert!(Function::arity_of(name).is_some(), "{name}");
        }
        assert_eq!(Function::arity_of("substring"), Some("2 or 3 arguments"));
        assert_eq!(Function::arity_of("NOPE"), None);
    }

    #[test]
    fn substring_counts_characters_not_bytes() {
        assert_eq!(
            call(
                "SUBSTRING",
                vec![s("héllo"), Val::Integer(2), Val::Integer(3)]
            )
            .0,
            s("éll")
        );
        assert_eq!(
            call("SUBSTRING", vec![s("héllo"), Val::Integer(-4)]).0,
            s("éllo")
        );
        assert_eq!(
            call("SUBSTRING", vec![s("abcdef"), Val::Integer(6)]).0,
            s("f")
        );
    }

    #[test]
    fn substring_rejects_negative_length() {
        let (value, error) = call(
            "SUBSTRING",
            vec![s("abc"), Val::Integer(1), Val::Integer(-1)],
        );
        assert_eq!(value, s(""));
        assert_eq!(error, Some(ErrorKind::FunctionEvaluation));
    }

    #[test]
    fn substring_with_length_past_the_end_returns_the_rest() {
        assert_eq!(
            call(
                "SUBSTRING",
                vec![s("abc"), Val::Integer(2), Val::Integer(i32::MAX)]
            )
            .0,
            s("bc")
        );
    }

    #[test]
    fn trim_removes_unicode_whitespace_only() {
        assert_eq!(call("TRIM", vec![s("\u{2003} a \t\n")]).0, s("a"));
        assert_eq!(call("TRIM", vec![s("\u{0} a")]).0, s("\u{0} a"));
    }

    #[test]
    fn argument_cast_failure_uses_zero_value_and_reports_cast_error() {
        let (value, error) = call("LEFT", vec![s("abc"), s("x")]);
        assert_eq!(value, s(""));
        assert_eq!(error, Some(ErrorKind::Cast));
    }

    #[test]
    fn is_int_and_is_bool_test_castability() {
        assert_eq!(call("IS_INT", vec![s("-12")]).0, Val::Boolean(true));
        assert_eq!(call("IS_INT", vec![s("1.5")]).0, Val::Boolean(false));
        assert_eq!(call("IS_INT", vec![Val::Integer(3)]).0, Val::Boolean(true));
        assert_eq!(call("IS_BOOL", vec![s("False")]).0, Val::Boolean(true));
        assert_eq!(
            call("IS_BOOL", vec![Val::Integer(1)]).0,
            Val::Boolean(false)
        );
    }

    #[test]
    fn case_mapping_is_unicode_aware() {
        assert_eq!(call("UPPER", vec![s("straße")]).0, s("STRASSE"));
        assert_eq!(call("LOWER", vec![s("ÀB")]).0, s("àb"));
    }
}
